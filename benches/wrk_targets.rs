//! The servers `benches/wrk-ratio.sh` loads with wrk: the bare-axum baseline, the mock
//! Salesforce with 1,000 Contacts, the mock LLM with its zero-delay `instant` model, the chaos
//! proxy (no toxic) in front of the baseline, and the least a proxy can do
//! (`tokio::io::copy_bidirectional`) in front of it too, each on its own loopback port, in one
//! process on two worker threads. With `CRASHCART_WRK_SERVE=1` it prints one line per target
//! (`name method url header body`, tab separated), then `end`, and serves until its stdin
//! closes; run alone (`cargo bench`), it only says so.

mod support;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::{BufRead, Write};

use crashcart::proxy::ChaosProxy;
use crashcart_mocks::llm::DEFAULT_API_KEY;
use crashcart_mocks::{MockLlm, MockSalesforce};

const NOTE: &str = "Summarize this visit note. Patient reports chest pain since 3 days. Follow-up booked with Dr. Hopper.";

fn main() {
    if std::env::var_os("CRASHCART_WRK_SERVE").is_none() {
        println!(
            "wrk_targets: run benches/wrk-ratio.sh (it starts this with CRASHCART_WRK_SERVE=1)"
        );
        return;
    }
    let rt = support::runtime();
    let (_sf, _llm, _proxy, lines) = rt.block_on(async {
        let base = support::start_baseline().await;
        let upstream = base.trim_start_matches("http://").to_string();
        let proxy = ChaosProxy::new(1, false);
        let proxied = proxy
            .create("wrk", "127.0.0.1:0", &upstream, true)
            .await
            .expect("the chaos proxy");
        let minimal = support::minimal_proxy(upstream).await;
        let sf = MockSalesforce::builder()
            .daily_api_limit(u64::MAX)
            .start()
            .await
            .expect("mock Salesforce");
        let mut first = String::new();
        for i in 0..1000 {
            let id = sf
                .handle()
                .insert(
                    "Contact",
                    serde_json::json!({"FirstName": format!("Patient{i}"), "LastName": format!("Synthetic{i:04}"), "Patient_External_Id__c": format!("CC-{i:05}")}),
                )
                .expect("a Contact");
            if i == 0 {
                first = id;
            }
        }
        let token = support::salesforce_token(&sf.url()).await;
        let llm = MockLlm::builder().zero_delay().start().await.expect("mock LLM");
        let chat = serde_json::json!({"model": "instant", "messages": [{"role": "user", "content": NOTE}]});
        let lines = vec![
            format!("baseline\tGET\t{base}/constant\t-\t-"),
            format!(
                "record_get\tGET\t{}/services/data/v59.0/sobjects/Contact/{first}\tAuthorization: Bearer {token}\t-",
                sf.url()
            ),
            format!(
                "llm_chat\tPOST\t{}/v1/chat/completions\tAuthorization: Bearer {DEFAULT_API_KEY}\t{chat}",
                llm.url()
            ),
            format!("proxy\tGET\thttp://{}/constant\t-\t-", proxied.listen),
            format!("min_proxy\tGET\thttp://{minimal}/constant\t-\t-"),
            "end".to_string(),
        ];
        (sf, llm, proxy, lines)
    });
    let mut out = std::io::stdout().lock();
    for l in lines {
        writeln!(out, "{l}").expect("stdout");
    }
    out.flush().expect("stdout");
    drop(out);
    // Serve until the script closes our stdin.
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
    }
}

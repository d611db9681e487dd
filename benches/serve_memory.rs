//! Memory of `crashcart serve` over a long load: 1,000,000 requests (record reads, SOQL
//! queries, record updates and LLM chat completions, 32 keep-alive connections), its RSS read
//! from `/proc` every 100,000 requests. Run twice in the same bench: with the default bounded
//! history (100,000 records a mock, as many write-log entries) and, as the baseline, with
//! `--history` unbounded (every record kept, as before issue 15).
//!
//! The windows are full by about 500,000 requests (the LLM gets a quarter of the load, so its
//! 100,000 records take 400,000; the write log a quarter more than its 100,000 entries).
//! Target (issue 15): RSS flat from then on, growth from 500,000 to 1,000,000 requests under
//! 5% of the RSS at 500,000 (the unbounded baseline grows with every request).
//!
//! Run: `cargo bench --bench serve_memory` (Linux: reads `/proc/PID/status`). `SERVE_REQUESTS`
//! changes the total (default 1,000,000).

mod support;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use support::{client, drive, salesforce_token, Target};

const CONCURRENCY: u64 = 32;
const ROUND: u64 = 100_000;
/// Requests after which every window is full.
const FULL: u64 = 500_000;

/// A `crashcart serve` child and where its mocks listen.
struct Served {
    child: Child,
    salesforce: String,
    openai: String,
    api_key: String,
    model: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

fn serve(history: &str) -> Served {
    let mut child = Command::new(env!("CARGO_BIN_EXE_crashcart"))
        .args(["serve", "--port", "0", "--llm-port", "0", "--no-proxy"])
        .args(["--zero-delay", "--env", "--daily-api-limit", "1000000000"])
        .args(["--history", history])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("crashcart serve starts");
    let mut vars = std::collections::HashMap::new();
    let out = child.stdout.take().expect("stdout");
    for line in std::io::BufReader::new(out).lines() {
        let line = line.expect("serve prints its settings");
        if let Some((k, v)) = line.trim_start_matches("export ").split_once('=') {
            vars.insert(k.to_string(), v.trim_matches('\'').to_string());
        }
        if vars.contains_key("OLLAMA_HOST") {
            break;
        }
    }
    Served {
        child,
        salesforce: vars["SALESFORCE_INSTANCE_URL"].clone(),
        openai: vars["OPENAI_BASE_URL"].clone(),
        api_key: vars["OPENAI_API_KEY"].clone(),
        model: vars["LLM_MODEL"].clone(),
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

async fn targets(s: &Served) -> Vec<Target> {
    let token = salesforce_token(&s.salesforce).await;
    let base = format!("{}/services/data/v60.0", s.salesforce);
    let created: serde_json::Value = reqwest::Client::new()
        .post(format!("{base}/sobjects/Account"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"Name": "Load Clinic"}))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("create answer");
    let id = created["id"].as_str().expect("an id").to_string();
    let mut update = Target::post(
        format!("{base}/sobjects/Account/{id}"),
        Some(&token),
        &serde_json::json!({"Phone": "555-0100"}),
    );
    update.method = http::Method::PATCH;
    let query = format!("{base}/query?q=SELECT+Id,Name+FROM+Account+LIMIT+5");
    vec![
        Target::get(format!("{base}/sobjects/Account/{id}"), Some(&token)),
        Target::get(query, Some(&token)),
        update,
        Target::post(
            format!("{}/chat/completions", s.openai),
            Some(&s.api_key),
            &serde_json::json!({"model": s.model, "max_tokens": 8,
                "messages": [{"role": "user", "content": "Summarize the visit."}]}),
        ),
    ]
}

/// RSS (KiB) after each round of `ROUND` requests.
fn load(history: &str, total: u64) -> Vec<(u64, u64)> {
    let rt = support::runtime();
    let served = serve(history);
    let pid = served.child.id();
    let http = client(CONCURRENCY as usize);
    let targets = rt.block_on(targets(&served));
    let mut samples = vec![(0, rss_kib(pid))];
    let started = Instant::now();
    let mut sent = 0;
    while sent < total {
        for t in &targets {
            rt.block_on(drive(&http, t, ROUND / targets.len() as u64, CONCURRENCY));
        }
        sent += ROUND;
        samples.push((sent, rss_kib(pid)));
        eprintln!(
            "  --history {history}: {sent} requests, RSS {} MiB ({:.0} s)",
            samples.last().unwrap().1 / 1024,
            started.elapsed().as_secs_f64()
        );
    }
    samples
}

fn growth(samples: &[(u64, u64)]) -> (u64, u64, f64) {
    let at = |n: u64| samples.iter().find(|s| s.0 >= n).map_or(0, |s| s.1);
    let (from, to) = (at(FULL), samples.last().map_or(0, |s| s.1));
    (from, to, (to as f64 - from as f64) / from.max(1) as f64)
}

fn main() {
    let total = std::env::var("SERVE_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    println!("serve memory over {total} requests ({CONCURRENCY} connections):");
    let bounded = load("100000", total);
    let unbounded = load(&usize::MAX.to_string(), total);
    for (name, s) in [
        ("bounded (--history 100000)", &bounded),
        ("baseline (unbounded)", &unbounded),
    ] {
        let (from, to, g) = growth(s);
        println!(
            "  {name:<28} RSS at 500k {} MiB, at end {} MiB: growth {:+.1}%",
            from / 1024,
            to / 1024,
            g * 100.0
        );
    }
    let (_, _, g) = growth(&bounded);
    println!(
        "  bounded growth once the windows are full: {:+.1}% (target < 5%)",
        g * 100.0
    );
}

//! `crashcart serve` end to end as an operator runs it on a game day: it starts the mocks
//! behind chaos proxies with the Toxiproxy and fault APIs; `crashcart fault add|list|clear`
//! drives it; SIGTERM stops it cleanly, faults cleared.

use std::collections::HashMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_crashcart");

/// Start `crashcart serve` and read its banner (bounded wait) and `export` lines.
async fn serve() -> (Child, HashMap<String, String>, String) {
    let mut child = Command::new(BIN)
        .args(["serve", "--api-port", "0", "--zero-delay", "--env"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut api = String::new();
    let banner = tokio::time::timeout(Duration::from_secs(30), async {
        let mut text = String::new();
        while let Some(line) = err.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix("api") {
                api = rest.split_whitespace().next().unwrap().to_string();
            }
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("Ctrl-C") {
                break;
            }
        }
        text
    })
    .await
    .expect("serve prints its banner within 30 s");
    assert!(
        banner.contains("salesforce proxy") && banner.contains("llm proxy"),
        "{banner}"
    );
    let mut env = HashMap::new();
    while env.len() < 11 {
        let line = tokio::time::timeout(Duration::from_secs(10), out.next_line())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let (k, v) = line.trim_start_matches("export ").split_once('=').unwrap();
        env.insert(k.to_string(), v.trim_matches('\'').to_string());
    }
    // Keep draining stderr so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });
    (child, env, api)
}

async fn fault(args: &[&str], api: &str, stdin: Option<&str>) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("fault")
        .args(args)
        .env("CRASHCART_API", api)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(text) = stdin {
        use tokio::io::AsyncWriteExt;
        let mut si = child.stdin.take().unwrap();
        si.write_all(text.as_bytes()).await.unwrap();
        drop(si);
    }
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_adds_lists_and_clears_faults_on_a_running_serve() {
    let (mut child, env, api) = serve().await;
    let instance = &env["SALESFORCE_INSTANCE_URL"];
    assert!(env["OPENAI_BASE_URL"].ends_with("/v1"));
    let http = reqwest::Client::new();
    let versions = || {
        http.get(format!("{instance}/services/data"))
            .timeout(Duration::from_millis(500))
            .send()
    };
    assert_eq!(
        versions().await.unwrap().status(),
        200,
        "clients reach the mock through the proxy"
    );

    // A network fault by hand: the proxy in front of Salesforce partitions.
    let (code, out) = fault(
        &["add", "-"],
        &api,
        Some("fault: {kind: partition}\ntarget: {dependency: salesforce}\n"),
    )
    .await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"applied\":[1]"), "{out}");
    assert!(versions().await.unwrap_err().is_timeout());
    let (_, listed) = fault(&["list"], &api, None).await;
    assert!(listed.contains("partition"), "{listed}");
    // An HTTP fault inside the LLM mock.
    let (code, _) = fault(
        &["add", "-"],
        &api,
        Some("- name: llm-busy\n  fault: {kind: llm_overloaded, retry_after: 2s}\n"),
    )
    .await;
    assert_eq!(code, 0);
    let r = http.post(format!("{}/chat/completions", env["OPENAI_BASE_URL"])).bearer_auth(&env["OPENAI_API_KEY"]).json(&serde_json::json!({"model": "instant", "messages": [{"role": "user", "content": "hi"}]})).send().await.unwrap();
    assert_eq!(r.status(), 429);
    // Bad specs are refused with the key named, and exit 2.
    let (code, out) = fault(
        &["add", "-"],
        &api,
        Some("fault: {kind: http_error, status: 503, colour: red}\n"),
    )
    .await;
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("colour"), "{out}");
    let (code, out) = fault(
        &["add", "-"],
        &api,
        Some("fault: {kind: http_error, status: 42}\n"),
    )
    .await;
    assert_eq!(code, 2, "{out}");
    // Clear one, then all.
    let (code, _) = fault(&["clear", "1"], &api, None).await;
    assert_eq!(code, 0);
    assert_eq!(versions().await.unwrap().status(), 200);
    let (code, _) = fault(&["clear"], &api, None).await;
    assert_eq!(code, 0);
    let (_, listed) = fault(&["list"], &api, None).await;
    assert_eq!(listed.trim(), "[]");
    let (_, events) = fault(&["events"], &api, None).await;
    assert!(
        events.contains("\"event\":\"activated\"") && events.contains("llm-busy"),
        "{events}"
    );

    // A fault left in place is cleared by SIGTERM, and serve exits 0.
    let (code, _) = fault(
        &["add", "-"],
        &api,
        Some("fault: {kind: refuse_connections}\n"),
    )
    .await;
    assert_eq!(code, 0);
    let pid = child.id().unwrap() as i32;
    // SAFETY: sending SIGTERM to our own child process.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let (code, _) = fault(&["list"], &api, None).await;
    assert_eq!(code, 3, "the API is gone with the process");
}

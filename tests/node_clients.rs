//! Real Node clients, unmodified, against the mocks over real sockets: jsforce 3's sObject
//! Collections (`sobject().upsert([records], extIdField)`, `sobject().retrieve([ids])`) and
//! aggregate SOQL with relative dates and child subqueries (`query`), SOSL (`search`),
//! replication polling (`updated`), Bulk API 2.0 (`bulk2.loadAndWaitForResults`,
//! `bulk2.query`), Change Data Capture and platform events through the Streaming API
//! (`streaming.topic().subscribe`, a replaying client, `sobject('X__e').create`), and
//! openai-node's `runTools` agent loop. The packages are the zoo's, installed from its
//! lockfile by zoo/node-jsforce/setup.sh (Node.js 20 with npm).

mod support;

use std::path::{Path, PathBuf};

use crashcart_mocks::{MockLlm, MockSalesforce};
use support::run_json;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `node`, once the zoo's packages are installed.
fn node() -> PathBuf {
    let out = std::process::Command::new(root().join("zoo/node-jsforce/setup.sh"))
        .output()
        .expect("zoo/node-jsforce/setup.sh runs (Node.js 20 and npm)");
    assert!(
        out.status.success(),
        "npm ci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from("node")
}

fn flow() -> PathBuf {
    root().join("tests/node/clients_flow.cjs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsforce_collections_upsert_and_retrieve_unmodified() {
    let node = tokio::task::spawn_blocking(node).await.unwrap();
    let sf = MockSalesforce::builder().seed(3).start().await.unwrap();
    let s = sf.handle().connection_settings();
    let envs = [
        ("SALESFORCE_LOGIN_URL", s.login_url.as_str()),
        ("SALESFORCE_CLIENT_ID", &s.client_id),
        ("SALESFORCE_CLIENT_SECRET", &s.client_secret),
        ("SALESFORCE_USERNAME", &s.username),
        ("SALESFORCE_PASSWORD", &s.password),
        ("SALESFORCE_API_VERSION", &s.api_version),
    ];
    let out = run_json(&node, &flow(), &["collections"], &envs).await;
    let created: Vec<_> = out["firstUpsert"].as_array().unwrap().iter().collect();
    assert_eq!(created.len(), 3, "{out}");
    assert!(created
        .iter()
        .all(|r| r["success"] == true && r["created"] == true));
    let second = out["secondUpsert"].as_array().unwrap();
    assert_eq!(
        second
            .iter()
            .map(|r| r["created"].clone())
            .collect::<Vec<_>>(),
        [false, false, false, true],
        "{out}"
    );
    assert_eq!(second[0]["id"], created[0]["id"], "updated in place");
    let got = out["retrieved"].as_array().unwrap();
    assert_eq!(got.len(), 5, "one answer per id asked");
    assert_eq!(got[0]["FirstName"], "Grace");
    assert_eq!(got[0]["Patient_External_Id__c"], "CC-NODE-1");
    assert_eq!(got[3]["FirstName"], "Alan");
    assert!(got[4].is_null(), "an id of no record is null: {out}");
    // Without `fields` jsforce asked for every field of the describe.
    assert!(out["everyField"][0].as_u64().unwrap() > 10, "{out}");
    assert_eq!(out["badField"]["errorCode"], "INVALID_FIELD");
    assert_eq!(
        out["allOrNone"][0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(out["afterRollback"], 0, "the allOrNone upsert left nothing");
    assert_eq!(
        out["found"][0]["Patient_External_Id__c"], "CC-NODE-1",
        "{out}"
    );
    assert_eq!(out["found"].as_array().map(Vec::len), Some(1));
    assert!(out["updated"]["ids"].is_array(), "{out}");
    assert!(out["updated"]["latestDateCovered"].is_string(), "{out}");
    assert_eq!(out["children"]["totalSize"], 1, "{out}");
    assert_eq!(out["children"]["records"][0]["Subject"], "Checkup");
    assert_eq!(out["aggregate"]["n"], 4, "{out}");
    assert_eq!(out["aggregate"]["top"], "Grace");
    assert_eq!(out["aggregate"]["attributes"]["type"], "AggregateResult");
    assert_eq!(out["grouped"][0]["LastName"], "Synthetic", "{out}");
    assert_eq!(out["grouped"][0]["n"], 4);
    // The mock's own record agrees with what the client saw.
    let contacts = sf.handle().records("Contact");
    assert_eq!(contacts.len(), 4, "{contacts:?}");
}

fn salesforce_env(
    s: &crashcart_mocks::salesforce::ConnectionSettings,
) -> Vec<(&'static str, String)> {
    vec![
        ("SALESFORCE_LOGIN_URL", s.login_url.clone()),
        ("SALESFORCE_CLIENT_ID", s.client_id.clone()),
        ("SALESFORCE_CLIENT_SECRET", s.client_secret.clone()),
        ("SALESFORCE_USERNAME", s.username.clone()),
        ("SALESFORCE_PASSWORD", s.password.clone()),
        ("SALESFORCE_API_VERSION", s.api_version.clone()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsforce_bulk2_loads_and_queries_unmodified() {
    let node = tokio::task::spawn_blocking(node).await.unwrap();
    let sf = MockSalesforce::builder().seed(4).start().await.unwrap();
    let env = salesforce_env(&sf.handle().connection_settings());
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run_json(&node, &flow(), &["bulk"], &envs).await;
    assert_eq!(out["successful"], 120, "{out}");
    assert_eq!(out["failed"].as_array().map(Vec::len), Some(1), "{out}");
    let error = out["failed"][0]["sf__Error"].as_str().unwrap_or("");
    assert!(error.starts_with("REQUIRED_FIELD_MISSING"), "{out}");
    assert_eq!(out["unprocessed"], 0);
    assert_eq!(out["queried"], 120, "{out}");
    assert!(
        out["first"]["Id"].as_str().unwrap().starts_with("003"),
        "{out}"
    );
    assert_eq!(sf.handle().records("Contact").len(), 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jsforce_streaming_receives_change_events_and_replays_them() {
    let node = tokio::task::spawn_blocking(node).await.unwrap();
    let sf = MockSalesforce::builder().seed(6).start().await.unwrap();
    let env = salesforce_env(&sf.handle().connection_settings());
    let envs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = run_json(&node, &flow(), &["streaming"], &envs).await;
    let live = out["live"].as_array().unwrap();
    assert_eq!(live[0]["type"], "CREATE", "{out}");
    assert_eq!(live[0]["ids"][0], out["created"]);
    assert_eq!(live[1]["type"], "UPDATE");
    assert_eq!(
        live[1]["changed"],
        serde_json::json!(["Name.FirstName", "LastModifiedDate"])
    );
    assert!(
        live[1]["replayId"].as_u64() > live[0]["replayId"].as_u64(),
        "replay ids grow: {out}"
    );
    assert_eq!(
        out["replayed"][0], out["before"],
        "-2 replays what came before the subscription: {out}"
    );
    assert_eq!(out["published"]["success"], true, "{out}");
    assert_eq!(out["alert"]["reason"], "rebook");
    assert_eq!(
        out["alert"]["uuid"], out["published"]["uuid"],
        "the subscriber sees the event the publisher was told of"
    );
}

/// A zero-delay mock LLM seeded `seed`, and what the flow's `mode` printed against it.
async fn openai_node(node: &Path, seed: u64, mode: &str) -> (MockLlm, serde_json::Value) {
    let llm = MockLlm::builder()
        .seed(seed)
        .zero_delay()
        .start()
        .await
        .unwrap();
    let s = llm.handle().connection_settings();
    let envs = [
        ("OPENAI_BASE_URL", s.openai_base_url.as_str()),
        ("OPENAI_API_KEY", &s.api_key),
        ("MODEL", "llama3.1:8b"),
    ];
    let out = run_json(node, &flow(), &[mode], &envs).await;
    (llm, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_node_run_tools_ends_once_the_tool_has_answered() {
    let node = tokio::task::spawn_blocking(node).await.unwrap();
    let (llm, out) = openai_node(&node, 5, "tools").await;
    assert_eq!(out["calls"], 1, "the tool ran once: {out}");
    assert_eq!(
        out["roles"],
        serde_json::json!(["system", "user", "assistant", "tool", "assistant"])
    );
    assert!(!out["content"].as_str().unwrap_or("").is_empty(), "{out}");
    let chats = llm
        .handle()
        .history()
        .snapshot()
        .iter()
        .filter(|r| r.operation == "openai.chat")
        .count();
    assert_eq!(
        chats, 2,
        "one call that asks for the tool, one that answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_node_responses_api_works_unmodified() {
    let node = tokio::task::spawn_blocking(node).await.unwrap();
    let (_llm, out) = openai_node(&node, 2, "responses").await;
    assert_eq!(out["whole"]["status"], "completed", "{out}");
    assert!(out["whole"]["text"].as_str().unwrap().len() > 10, "{out}");
    let events = out["stream"]["events"].as_array().unwrap();
    assert_eq!(events[0], "response.created");
    assert_eq!(events[events.len() - 1], "response.completed");
    assert_eq!(out["stream"]["text"], out["stream"]["final"], "{out}");
    assert!(out["helper"].as_str().unwrap().len() > 10, "{out}");
}

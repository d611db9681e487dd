//! A real client, unmodified: simple-salesforce (Python) logs in to the mock over HTTPS with
//! SOAP, creates a Contact, queries it back with SOQL, updates it, then survives a session
//! expiry by logging in again; it also polls `updated` and `deleted` for the last hour. The
//! Python venv comes from tests/python/setup-venv.sh.

mod support;

use std::path::Path;

use support::venv_python;

use crashcart_mocks::{MockSalesforce, TlsMaterial};

/// A Contact written 20 minutes ago and one written 40 minutes ago and deleted 10 minutes
/// ago, on the org's clock (replication polling only covers whole past minutes).
fn backdated_contacts(sf: &MockSalesforce) -> (String, String) {
    use crashcart_mocks::salesforce::store::Actor;
    let at = |mins: i64| Actor {
        user_id: "005000000000001AAA".into(),
        username: None,
        now: chrono::Utc::now() - chrono::Duration::minutes(mins),
        at_us: 0,
    };
    sf.handle().with_org_mut(|o| {
        let obj = o.schema.object("Contact").unwrap().clone();
        let mut create = |last: &str, mins| {
            let mut values = serde_json::Map::new();
            values.insert("LastName".into(), serde_json::json!(last));
            o.data.create(&o.schema, &obj, values, &at(mins)).unwrap()
        };
        let kept = create("Kept", 20);
        let gone = create("Gone", 40);
        o.data.delete(&obj, &gone, &at(10)).unwrap();
        (kept, gone)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_works_unmodified_and_recovers_from_session_expiry() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let tls = TlsMaterial::self_signed().unwrap();
    let sf = MockSalesforce::builder()
        .seed(11)
        .tls(tls.clone())
        .start()
        .await
        .unwrap();
    let (kept, gone) = backdated_contacts(&sf);
    let dir = std::env::temp_dir().join(format!("crashcart-sfpy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = tls.write_cert(&dir.join("ca.pem")).unwrap();
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/simple_salesforce_flow.py");
    let base = sf.url();
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .args([
            "--base",
            &base,
            "--username",
            "integration@crashcart.test",
            "--password",
            "crashcart-Pa55",
        ])
        .args(["--token", "CRASHCARTTOKEN", "--external-id", "CC-PY-0001"])
        .env("REQUESTS_CA_BUNDLE", &ca)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "simple-salesforce flow failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let port = sf.local_addr().port();
    assert_eq!(out["instance"], format!("127.0.0.1:{port}"));
    assert_eq!(out["created"]["success"], true);
    let id = out["created"]["id"].as_str().unwrap();
    assert_eq!(out["query"]["totalSize"], 1);
    assert_eq!(out["query"]["records"][0]["Id"], id);
    assert_eq!(out["query"]["records"][0]["LastName"], "Synthetic");
    assert_eq!(
        out["aggregate"], 2,
        "COUNT(Id) with a relative date literal: Ada and the backdated Contact"
    );
    assert_eq!(
        out["updated"]["ids"],
        serde_json::json!([kept]),
        "{}",
        out["updated"]
    );
    assert_eq!(out["deleted"]["deletedRecords"][0]["id"], gone.as_str());
    assert_eq!(out["search"][0]["Id"], id, "{}", out["search"]);
    assert_eq!(out["search"][0]["LastName"], "Synthetic");
    assert_eq!(out["quick_search"], 1);
    assert_eq!(out["tree"]["hasErrors"], false, "{}", out["tree"]);
    assert_eq!(out["tree"]["results"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        out["batch"]["results"][0]["result"]["LastName"],
        "Synthetic"
    );
    assert_eq!(
        out["graph"]["graphs"][0]["isSuccessful"], true,
        "{}",
        out["graph"]
    );
    assert_eq!(out["update_status"], 204);
    assert_eq!(out["after_update"]["FirstName"], "Grace");
    assert!(
        out["api_usage"][0].as_u64().unwrap() >= 2,
        "simple-salesforce parsed Sforce-Limit-Info: {}",
        out["api_usage"]
    );
    assert_eq!(out["api_usage"][1], 15000);
    assert!(out["expired"].as_u64().unwrap() >= 1);
    assert_eq!(out["query_after_expiry"]["totalSize"], 1);
    assert_eq!(out["relogged_in"], true);
    assert_eq!(out["malformed"]["status"], 400);
    assert_eq!(
        out["malformed"]["content"][0]["errorCode"],
        "MALFORMED_QUERY"
    );

    // The mock saw it: a 401 INVALID_SESSION_ID, then a new SOAP login, then the query again.
    let h = sf.handle().history().snapshot();
    let logins: Vec<_> = h.iter().filter(|r| r.operation == "soap.login").collect();
    assert_eq!(logins.len(), 2, "initial login and the re-login");
    let expired = h
        .iter()
        .position(|r| r.error_code.as_deref() == Some("INVALID_SESSION_ID"))
        .expect("client hit INVALID_SESSION_ID");
    let relogin = h.iter().rposition(|r| r.operation == "soap.login").unwrap();
    assert!(relogin > expired);
    assert!(h[relogin + 1..]
        .iter()
        .any(|r| r.operation == "query" && r.status == 200));
    sf.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// simple-salesforce's `bulk2`: an insert with one bad row, its failed and successful
/// records, an upsert by external id, and a query paged by `max_records`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_salesforce_bulk2_loads_and_queries() {
    let python = tokio::task::spawn_blocking(venv_python).await.unwrap();
    let tls = TlsMaterial::self_signed().unwrap();
    let sf = MockSalesforce::builder()
        .seed(12)
        .tls(tls.clone())
        .start()
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("crashcart-bulk2-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = tls.write_cert(&dir.join("ca.pem")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/bulk2_flow.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .args([
            "--base",
            &sf.url(),
            "--username",
            "integration@crashcart.test",
        ])
        .args(["--password", "crashcart-Pa55", "--token", "CRASHCARTTOKEN"])
        .env("REQUESTS_CA_BUNDLE", &ca)
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "bulk2 flow failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let out: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let insert = &out["insert"][0];
    assert_eq!(insert["numberRecordsProcessed"], 251, "{out}");
    assert_eq!(insert["numberRecordsFailed"], 1);
    assert_eq!(out["failed"][0]["Patient_External_Id__c"], "CC-BULK-X");
    assert!(
        out["failed"][0]["sf__Error"]
            .as_str()
            .unwrap()
            .starts_with("REQUIRED_FIELD_MISSING"),
        "{}",
        out["failed"]
    );
    assert_eq!(out["successful"], 250);
    assert_eq!(out["upsert"][0]["numberRecordsFailed"], 0, "{out}");
    assert_eq!(out["query_count"], 250, "{out}");
    assert_eq!(out["query_pages"], 3, "250 records at 100 a page");
    assert_eq!(
        out["query_first"]["FirstName"], "Grace",
        "the upsert changed it"
    );
    let contacts = sf.handle().records("Contact");
    assert_eq!(contacts.len(), 251, "250 inserted and one upserted new");
    assert_eq!(sf.handle().bulk_records_today(), 253);
    sf.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

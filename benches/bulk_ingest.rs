//! Bulk API 2.0 ingest of 100,000 rows through the mock Salesforce on loopback: create the
//! job, upload the CSV, close it, poll until `JobComplete`, download `successfulResults`.
//! Target (issue 16): under 5 s of wall time on the 2-core machine. The baseline in the
//! same run is the same rows through sObject Collections, 200 records a request (500
//! requests), which is what an integration without Bulk would do.
//!
//! Run: `cargo bench --bench bulk_ingest` (release build). Prints both wall times, the
//! ratio, and whether the target is met.

mod support;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::{Duration, Instant};

use crashcart_mocks::MockSalesforce;
use serde_json::{json, Value};
use support::{runtime, salesforce_token};

const ROWS: usize = 100_000;

fn csv() -> String {
    let mut s = String::from("FirstName,LastName,Patient_External_Id__c,Preferred_Language__c\n");
    for i in 0..ROWS {
        s.push_str(&format!("Pat{i},Synthetic{i:06},CC-B{i:06},English\n"));
    }
    s
}

async fn bulk(base: &str, token: &str, http: &reqwest::Client) -> (Duration, usize) {
    let data = format!("{base}/services/data/v59.0/jobs/ingest");
    let started = Instant::now();
    let job: Value = http
        .post(&data)
        .bearer_auth(token)
        .json(&json!({"object": "Contact", "operation": "insert"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = job["id"].as_str().unwrap().to_string();
    let put = http
        .put(format!("{data}/{id}/batches"))
        .bearer_auth(token)
        .header("content-type", "text/csv")
        .body(csv())
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);
    http.patch(format!("{data}/{id}"))
        .bearer_auth(token)
        .json(&json!({"state": "UploadComplete"}))
        .send()
        .await
        .unwrap();
    loop {
        let info: Value = http
            .get(format!("{data}/{id}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if info["state"] == "JobComplete" {
            break;
        }
        assert_ne!(info["state"], "Failed", "{info}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let results = http
        .get(format!("{data}/{id}/successfulResults"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (started.elapsed(), results.lines().count() - 1)
}

async fn collections(base: &str, token: &str, http: &reqwest::Client) -> Duration {
    let url = format!("{base}/services/data/v59.0/composite/sobjects");
    let started = Instant::now();
    for chunk in 0..ROWS / 200 {
        let records: Vec<Value> = (0..200)
            .map(|k| {
                let i = chunk * 200 + k;
                json!({"attributes": {"type": "Contact"}, "FirstName": format!("Pat{i}"), "LastName": format!("Coll{i:06}"), "Patient_External_Id__c": format!("CC-C{i:06}"), "Preferred_Language__c": "English"})
            })
            .collect();
        let r = http
            .post(&url)
            .bearer_auth(token)
            .json(&json!({"allOrNone": false, "records": records}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    started.elapsed()
}

fn main() {
    let rt = runtime();
    rt.block_on(async {
        let mock = MockSalesforce::builder()
            .daily_api_limit(u64::MAX)
            .start()
            .await
            .unwrap();
        let base = mock.url();
        let token = salesforce_token(&base).await;
        let http = reqwest::Client::new();
        let (bulk_time, ok) = bulk(&base, &token, &http).await;
        assert_eq!(ok, ROWS, "every row succeeded");
        let baseline = collections(&base, &token, &http).await;
        println!(
            "bulk_ingest: {ROWS} rows in {:.2} s through Bulk API 2.0; baseline (sObject Collections, 500 requests of 200) {:.2} s; ratio {:.2}; target < 5 s: {}",
            bulk_time.as_secs_f64(),
            baseline.as_secs_f64(),
            bulk_time.as_secs_f64() / baseline.as_secs_f64(),
            if bulk_time < Duration::from_secs(5) { "met" } else { "NOT met" }
        );
        mock.shutdown().await;
    });
}

//! Bulk API 2.0 on the wire: ingest jobs through their states, results as CSV, query jobs
//! paged by locator, and the Bulk faults (a job stuck in `InProgress`, records that fail, the
//! daily allowance spent).

mod common;

use std::time::Duration;

use common::*;
use reqwest::Method;
use serde_json::{json, Value};

async fn put_csv(org: &Org, job: &str, csv: &str, content_type: &str) -> Resp {
    let r = org
        .http
        .put(org.data(&format!("/jobs/ingest/{job}/batches")))
        .bearer_auth(&org.token)
        .header("content-type", content_type)
        .body(csv.to_string())
        .send()
        .await
        .unwrap();
    read(r).await
}

async fn create(org: &Org, body: Value) -> String {
    let r = org.post("/jobs/ingest", body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["state"], "Open");
    r.json["id"].as_str().unwrap().to_string()
}

async fn close(org: &Org, job: &str) -> Resp {
    org.patch(
        &format!("/jobs/ingest/{job}"),
        json!({"state": "UploadComplete"}),
    )
    .await
}

/// Poll a job until its state is one of `states` (bounded: 10 s).
async fn until(org: &Org, path: &str, states: &[&str]) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let r = org.get(path).await;
        let state = r.json["state"].as_str().unwrap_or("").to_string();
        if states.contains(&state.as_str()) || tokio::time::Instant::now() > deadline {
            return r.json;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const PATIENTS: &str = "FirstName,LastName,Patient_External_Id__c\nAda,Lovelace,CC-1\nGrace,Hopper,CC-2\nNo,,CC-3\nAlan,Turing,CC-4\n";

#[tokio::test]
async fn an_ingest_job_goes_through_its_states_and_answers_its_results() {
    let org = Org::start().await;
    let job = create(
        &org,
        json!({"object": "Contact", "operation": "insert", "lineEnding": "LF"}),
    )
    .await;
    let wrong = put_csv(&org, &job, PATIENTS, "application/json").await;
    assert_eq!(
        (wrong.status.as_u16(), wrong.error_code()),
        (400, "INVALIDCONTENTTYPE")
    );
    assert_eq!(put_csv(&org, &job, PATIENTS, "text/csv").await.status, 201);
    let again = put_csv(&org, &job, PATIENTS, "text/csv").await;
    assert_eq!(again.status, 409, "one upload per job: {}", again.text);
    assert_eq!(close(&org, &job).await.json["state"], "UploadComplete");
    let info = until(&org, &format!("/jobs/ingest/{job}"), &["JobComplete"]).await;
    assert_eq!(info["numberRecordsProcessed"], 4, "{info}");
    assert_eq!(info["numberRecordsFailed"], 1);
    assert_eq!(info["jobType"], "V2Ingest");
    let ok = org
        .get(&format!("/jobs/ingest/{job}/successfulResults"))
        .await;
    assert_eq!(ok.header("content-type"), Some("text/csv"));
    let lines: Vec<&str> = ok.text.lines().collect();
    assert_eq!(
        lines[0],
        "\"sf__Id\",\"sf__Created\",\"FirstName\",\"LastName\",\"Patient_External_Id__c\""
    );
    assert_eq!(lines.len(), 4, "{}", ok.text);
    assert!(
        lines[1].starts_with("\"003") && lines[1].contains("\"true\",\"Ada\""),
        "{}",
        lines[1]
    );
    let failed = org.get(&format!("/jobs/ingest/{job}/failedResults")).await;
    assert!(
        failed
            .text
            .contains("REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]"),
        "{}",
        failed.text
    );
    assert_eq!(org.sf.handle().records("Contact").len(), 3);
    let listed = org.get("/jobs/ingest").await;
    assert_eq!(listed.json["records"][0]["id"], job.as_str());
    let del = org
        .call(Method::DELETE, &format!("/jobs/ingest/{job}"), None)
        .await;
    assert_eq!(del.status, 204);
    assert_eq!(org.get(&format!("/jobs/ingest/{job}")).await.status, 404);
}

#[tokio::test]
async fn upsert_and_delete_jobs() {
    let org = Org::start().await;
    let existing = org.contact("Before", "CC-2").await;
    let job = create(&org, json!({"object": "Contact", "operation": "upsert", "externalIdFieldName": "Patient_External_Id__c"})).await;
    put_csv(
        &org,
        &job,
        "LastName,Patient_External_Id__c\nAfter,CC-2\nNew,CC-9\n",
        "text/csv",
    )
    .await;
    close(&org, &job).await;
    until(&org, &format!("/jobs/ingest/{job}"), &["JobComplete"]).await;
    let ok = org
        .get(&format!("/jobs/ingest/{job}/successfulResults"))
        .await;
    assert!(
        ok.text
            .contains(&format!("\"{existing}\",\"false\",\"After\"")),
        "{}",
        ok.text
    );
    assert!(ok.text.contains("\"true\",\"New\""), "{}", ok.text);
    let del = create(&org, json!({"object": "Contact", "operation": "delete"})).await;
    put_csv(&org, &del, &format!("Id\n{existing}\n"), "text/csv").await;
    close(&org, &del).await;
    let info = until(&org, &format!("/jobs/ingest/{del}"), &["JobComplete"]).await;
    assert_eq!(info["numberRecordsFailed"], 0, "{info}");
    let gone = org.get(&format!("/sobjects/Contact/{existing}")).await;
    assert_eq!(gone.status, 404, "deleted: {}", gone.text);
    let bad = org
        .post(
            "/jobs/ingest",
            json!({"object": "Contact", "operation": "upsert"}),
        )
        .await;
    assert_eq!((bad.status.as_u16(), bad.error_code()), (400, "INVALIDJOB"));
    let bad = org
        .post(
            "/jobs/ingest",
            json!({"object": "Patient", "operation": "insert"}),
        )
        .await;
    assert_eq!(bad.error_code(), "INVALIDJOB");
}

#[tokio::test]
async fn bulk_faults_stall_fail_records_and_spend_the_allowance() {
    let org = Org::start().await;
    let h = org.sf.handle();
    // Stuck: the job stays InProgress until the fault is cleared, and can be aborted.
    h.set_bulk_stalled(true);
    let job = create(&org, json!({"object": "Contact", "operation": "insert"})).await;
    put_csv(&org, &job, PATIENTS, "text/csv").await;
    close(&org, &job).await;
    for _ in 0..5 {
        let state = org.get(&format!("/jobs/ingest/{job}")).await.json["state"].clone();
        assert!(
            state == "UploadComplete" || state == "InProgress",
            "{state}"
        );
        tokio::task::yield_now().await;
    }
    let early = org
        .get(&format!("/jobs/ingest/{job}/successfulResults"))
        .await;
    assert_eq!(early.status, 409, "no results before the job is done");
    h.set_bulk_stalled(false);
    until(&org, &format!("/jobs/ingest/{job}"), &["JobComplete"]).await;
    // Every second record fails as locked.
    h.set_bulk_fail_every(Some(2));
    let job = create(&org, json!({"object": "Contact", "operation": "insert"})).await;
    put_csv(&org, &job, "LastName\nA\nB\nC\nD\n", "text/csv").await;
    close(&org, &job).await;
    let info = until(&org, &format!("/jobs/ingest/{job}"), &["JobComplete"]).await;
    assert_eq!(info["numberRecordsFailed"], 2, "{info}");
    let failed = org.get(&format!("/jobs/ingest/{job}/failedResults")).await;
    assert_eq!(
        failed.text.matches("UNABLE_TO_LOCK_ROW").count(),
        2,
        "{}",
        failed.text
    );
    h.set_bulk_fail_every(None);
    // The daily allowance spent: the job fails with nothing written.
    h.set_bulk_record_limit(Some(h.bulk_records_today() + 1));
    let before = h.records("Contact").len();
    let job = create(&org, json!({"object": "Contact", "operation": "insert"})).await;
    put_csv(&org, &job, "LastName\nA\nB\n", "text/csv").await;
    close(&org, &job).await;
    let info = until(&org, &format!("/jobs/ingest/{job}"), &["Failed"]).await;
    assert_eq!(info["state"], "Failed", "{info}");
    assert!(
        info["errorMessage"]
            .as_str()
            .unwrap()
            .contains("ExceededQuota"),
        "{info}"
    );
    assert_eq!(h.records("Contact").len(), before);
}

#[tokio::test]
async fn query_jobs_page_by_locator() {
    let org = Org::start().await;
    for i in 0..5 {
        org.contact(&format!("P{i}"), &format!("CC-Q{i}")).await;
    }
    let r = org
        .post("/jobs/query", json!({"operation": "query", "query": "SELECT Id, LastName FROM Contact ORDER BY LastName"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let job = r.json["id"].as_str().unwrap().to_string();
    until(&org, &format!("/jobs/query/{job}"), &["JobComplete"]).await;
    let page = org
        .get(&format!("/jobs/query/{job}/results?maxRecords=2"))
        .await;
    assert_eq!(page.header("sforce-numberofrecords"), Some("2"));
    let locator = page.header("sforce-locator").unwrap().to_string();
    assert_ne!(locator, "null");
    assert_eq!(page.text.lines().next(), Some("\"Id\",\"LastName\""));
    assert!(
        page.text.contains("\"P0\"") && page.text.contains("\"P1\""),
        "{}",
        page.text
    );
    let rest = org
        .get(&format!(
            "/jobs/query/{job}/results?maxRecords=10&locator={locator}"
        ))
        .await;
    assert_eq!(rest.header("sforce-locator"), Some("null"));
    assert_eq!(rest.header("sforce-numberofrecords"), Some("3"));
    for (q, code) in [
        ("SELECT COUNT() FROM Contact", "INVALIDJOB"),
        (
            "SELECT LastName, COUNT(Id) FROM Contact GROUP BY LastName",
            "INVALIDJOB",
        ),
        ("SELECT Nope__c FROM Contact", "INVALID_FIELD"),
    ] {
        let r = org
            .post("/jobs/query", json!({"operation": "query", "query": q}))
            .await;
        assert_eq!(r.error_code(), code, "{q}: {}", r.text);
    }
}

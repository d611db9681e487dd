//! The REST data API of the mock Salesforce: status codes, headers and bodies of each resource
//! and each error, as clients see them on the wire.

mod common;

use common::*;
use crashcart_mocks::MockSalesforce;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn versions_resources_limits_and_sobjects() {
    let org = Org::start().await;
    let v = common::read(
        org.http
            .get(format!("{}/services/data/", org.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(v.status, 200, "the versions list needs no auth");
    let list = v.json.as_array().unwrap();
    assert_eq!(
        list[0],
        json!({"label": "Summer '14", "url": "/services/data/v31.0", "version": "31.0"})
    );
    assert_eq!(
        list.last().unwrap(),
        &json!({"label": "Winter '25", "url": "/services/data/v62.0", "version": "62.0"})
    );

    let res = org.get("").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.json["sobjects"], "/services/data/v59.0/sobjects");
    assert_eq!(res.json["query"], "/services/data/v59.0/query");

    let limits = org.get("/limits").await;
    let before = limits.json["DailyApiRequests"]["Remaining"]
        .as_u64()
        .unwrap();
    assert_eq!(limits.json["DailyApiRequests"]["Max"], 15000);
    let again = org.get("/limits").await;
    assert_eq!(
        again.json["DailyApiRequests"]["Remaining"]
            .as_u64()
            .unwrap(),
        before - 1,
        "live usage"
    );
    let header = again.header("sforce-limit-info").unwrap();
    assert_eq!(header, format!("api-usage={}/15000", 15000 - before + 1));

    let so = org.get("/sobjects").await;
    assert_eq!(so.json["encoding"], "UTF-8");
    assert_eq!(so.json["maxBatchSize"], 200);
    let names: Vec<&str> = so.json["sobjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    for n in ["Account", "Contact", "Case", "Event", "User"] {
        assert!(names.contains(&n), "{names:?}");
    }
    let d = org.get("/sobjects/Contact/describe").await;
    assert_eq!(d.json["name"], "Contact");
    assert_eq!(d.json["keyPrefix"], "003");
    let ext = d.json["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Patient_External_Id__c")
        .unwrap();
    assert_eq!(ext["externalId"], true);
    assert_eq!(ext["type"], "string");
    let lang = d.json["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Preferred_Language__c")
        .unwrap();
    assert_eq!(lang["restrictedPicklist"], true);
    assert_eq!(lang["picklistValues"][0]["value"], "English");
    let who = org.get("/sobjects/Event/describe").await;
    let whoid = who.json["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "WhoId")
        .unwrap();
    assert_eq!(whoid["relationshipName"], "Who");
    assert_eq!(whoid["referenceTo"], json!(["Contact"]));
    let unknown = org.get("/sobjects/Nope__c/describe").await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.error_code(), "NOT_FOUND");
}

#[tokio::test]
async fn crud_statuses_bodies_and_trailing_slashes() {
    let org = Org::start().await;
    let created = org
        .post(
            "/sobjects/Contact/",
            json!({"FirstName": "Ada", "LastName": "Synthetic", "Email": "ada@example.test"}),
        )
        .await;
    assert_eq!(created.status, 201);
    let id = created.json["id"].as_str().unwrap().to_string();
    assert_eq!(
        created.json,
        json!({"id": id, "success": true, "errors": []})
    );
    assert_eq!(id.len(), 18);
    assert!(id.starts_with("003"));
    assert_eq!(
        created.header("location"),
        Some(format!("/services/data/v59.0/sobjects/Contact/{id}").as_str())
    );

    let got = org.get(&format!("/sobjects/Contact/{id}/")).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.json["attributes"],
        json!({"type": "Contact", "url": format!("/services/data/v59.0/sobjects/Contact/{id}")})
    );
    assert_eq!(got.json["Name"], "Ada Synthetic", "compound Name");
    assert_eq!(got.json["OwnerId"].as_str().unwrap().get(..3), Some("005"));
    let keys: Vec<&String> = got.json.as_object().unwrap().keys().collect();
    assert_eq!(
        keys[0], "attributes",
        "attributes come first, as Salesforce sends them"
    );
    assert!(got.header("etag").unwrap().ends_with("-gzip\""));
    assert!(got.header("last-modified").unwrap().ends_with("GMT"));
    // The 15-character form of the id works too.
    assert_eq!(
        org.get(&format!("/sobjects/Contact/{}", &id[..15]))
            .await
            .status,
        200
    );

    let only = org
        .get(&format!("/sobjects/Contact/{id}?fields=LastName,Email"))
        .await;
    let keys: Vec<&String> = only.json.as_object().unwrap().keys().collect();
    assert_eq!(keys, vec!["attributes", "LastName", "Email"]);

    let upd = org
        .patch(
            &format!("/sobjects/Contact/{id}"),
            json!({"FirstName": "Grace"}),
        )
        .await;
    assert_eq!(upd.status, 204);
    assert!(upd.text.is_empty());
    assert_eq!(
        org.get(&format!("/sobjects/Contact/{id}")).await.json["FirstName"],
        "Grace"
    );

    let del = org.delete(&format!("/sobjects/Contact/{id}")).await;
    assert_eq!(del.status, 204);
    let again = org.delete(&format!("/sobjects/Contact/{id}")).await;
    assert_eq!(again.status, 404);
    assert_eq!(
        again.json,
        json!([{"message": "entity is deleted", "errorCode": "ENTITY_IS_DELETED"}])
    );
    assert_eq!(
        org.get(&format!("/sobjects/Contact/{id}"))
            .await
            .error_code(),
        "ENTITY_IS_DELETED"
    );

    let missing = org.get("/sobjects/Contact/003000000000999AAA").await;
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.json,
        json!([{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
    );
    let garbage = org.get("/sobjects/Contact/not-an-id").await;
    assert_eq!(garbage.status, 404);
    assert_eq!(garbage.error_code(), "NOT_FOUND");
}

#[tokio::test]
async fn upsert_by_external_id_creates_updates_and_reports_ambiguity() {
    let org = Org::start().await;
    let path = "/sobjects/Contact/Patient_External_Id__c/CC-TEST-1";
    let first = org.patch(path, json!({"LastName": "Synthetic"})).await;
    assert_eq!(first.status, 201);
    let id = first.json["id"].as_str().unwrap().to_string();
    assert_eq!(
        first.json,
        json!({"id": id, "success": true, "errors": [], "created": true})
    );
    let second = org.patch(path, json!({"FirstName": "Ada"})).await;
    assert_eq!(second.status, 200);
    assert_eq!(
        second.json,
        json!({"id": id, "success": true, "errors": [], "created": false})
    );
    // Before API v46 an update answered 204 No Content.
    let old = org
        .call(
            Method::PATCH,
            &format!("{}/services/data/v45.0{path}", org.base),
            Some(json!({"FirstName": "B"})),
        )
        .await;
    assert_eq!(old.status, 204);
    let by_ext = org.get(path).await;
    assert_eq!(by_ext.json["Id"], id.as_str());
    assert_eq!(
        org.with_count("Contact").await,
        1,
        "upserts never duplicate"
    );

    // Upsert on a field that is not an external id.
    let bad = org
        .patch(
            "/sobjects/Contact/LastName/Synthetic",
            json!({"FirstName": "X"}),
        )
        .await;
    assert_eq!(bad.status, 404);
    assert_eq!(bad.error_code(), "NOT_FOUND");
    assert!(bad
        .message()
        .contains("Provided external ID field does not exist"));

    // Several records with one external id value: 300 with their URLs. (Not unique on Case.)
    let h = org.sf.handle();
    h.insert("Account", json!({"Name": "Clinic", "AccountNumber": "A-1"}))
        .unwrap();
    h.with_org_mut(|o| {
        let acc = o.schema.object_mut("Account").unwrap();
        let mut f = acc.field("AccountNumber").unwrap().clone();
        f.external_id = true;
        acc.upsert_field(f);
    });
    h.insert(
        "Account",
        json!({"Name": "Clinic 2", "AccountNumber": "A-1"}),
    )
    .unwrap();
    let amb = org
        .patch("/sobjects/Account/AccountNumber/A-1", json!({"Name": "Z"}))
        .await;
    assert_eq!(amb.status, 300);
    assert_eq!(amb.json.as_array().unwrap().len(), 2);
}

impl Org {
    async fn with_count(&self, object: &str) -> u64 {
        let r = self.query(&format!("SELECT COUNT() FROM {object}")).await;
        r.json["totalSize"].as_u64().unwrap()
    }
}

#[tokio::test]
async fn conditional_updates_answer_412() {
    let org = Org::start().await;
    let id = org.contact("Synthetic", "CC-COND-1").await;
    let got = org.get(&format!("/sobjects/Contact/{id}")).await;
    let etag = got.header("etag").unwrap().to_string();
    let lm = got.header("last-modified").unwrap().to_string();
    let path = format!("/sobjects/Contact/{id}");

    let ok = org
        .call_with(
            Method::PATCH,
            &path,
            Some(json!({"FirstName": "A"})),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(ok.status, 204);
    let new_etag = ok.header("etag").unwrap().to_string();
    assert_ne!(new_etag, etag, "a write changes the ETag");
    let stale = org
        .call_with(
            Method::PATCH,
            &path,
            Some(json!({"FirstName": "B"})),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(stale.status, 412);
    assert_eq!(stale.error_code(), "PRECONDITION_FAILED");
    assert_eq!(
        org.get(&path).await.json["FirstName"],
        "A",
        "a failed precondition changes nothing"
    );

    let bad = org
        .call_with(
            Method::PATCH,
            &path,
            Some(json!({"FirstName": "B"})),
            &[("If-Match", "no-quotes")],
        )
        .await;
    assert_eq!(bad.status, 400);
    let bad = org
        .call_with(
            Method::PATCH,
            &path,
            Some(json!({"FirstName": "B"})),
            &[("If-Unmodified-Since", "yesterday")],
        )
        .await;
    assert_eq!(bad.status, 400);

    // If-Unmodified-Since in the past of the last write fails; in the future passes.
    let past = "Mon, 01 Jan 2001 00:00:00 GMT";
    let r = org
        .call_with(
            Method::PATCH,
            &path,
            Some(json!({"FirstName": "C"})),
            &[("If-Unmodified-Since", past)],
        )
        .await;
    assert_eq!(r.status, 412);
    let future = "Fri, 01 Jan 2100 00:00:00 GMT";
    let r = org
        .call_with(
            Method::PATCH,
            &path,
            Some(json!({"FirstName": "C"})),
            &[("If-Unmodified-Since", future)],
        )
        .await;
    assert_eq!(r.status, 204);
    let _ = lm;
    let not_modified = org
        .call_with(
            Method::GET,
            &path,
            None,
            &[(
                "If-None-Match",
                org.get(&path).await.header("etag").unwrap(),
            )],
        )
        .await;
    assert_eq!(not_modified.status, 304);

    // The write log records which writes were conditional.
    let writes = org.sf.handle().writes();
    let kinds: Vec<_> = writes
        .iter()
        .filter(|w| w.id == id)
        .map(|w| serde_json::to_value(w.precondition).unwrap())
        .collect();
    assert_eq!(
        kinds,
        vec![
            json!("none"),
            json!("if-match"),
            json!("if-unmodified-since")
        ]
    );
}

#[tokio::test]
async fn writes_are_validated_against_the_schema() {
    let org = Org::start().await;
    let cases = [
        (
            json!({"FirstName": "A"}),
            "REQUIRED_FIELD_MISSING",
            Some(json!(["LastName"])),
        ),
        (
            json!({"LastName": "A", "Nope__c": 1}),
            "INVALID_FIELD",
            None,
        ),
        (
            json!({"LastName": "A", "Preferred_Language__c": "Klingon"}),
            "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
            Some(json!(["Preferred_Language__c"])),
        ),
        (
            json!({"LastName": "A", "Birthdate": "someday"}),
            "JSON_PARSER_ERROR",
            None,
        ),
        (
            json!({"LastName": "A", "AccountId": "001000000000999AAA"}),
            "INVALID_CROSS_REFERENCE_KEY",
            Some(json!(["AccountId"])),
        ),
        (
            json!({"LastName": "A", "AccountId": "003000000000001AAA"}),
            "FIELD_INTEGRITY_EXCEPTION",
            Some(json!(["AccountId"])),
        ),
        (
            json!({"LastName": "A", "CreatedDate": "2024-01-01T00:00:00Z"}),
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            Some(json!(["CreatedDate"])),
        ),
    ];
    for (body, code, fields) in cases {
        let r = org.post("/sobjects/Contact", body.clone()).await;
        assert_eq!(r.status, 400, "{body}");
        assert_eq!(r.error_code(), code, "{body}: {}", r.text);
        if let Some(f) = fields {
            assert_eq!(r.json[0]["fields"], f, "{body}");
        }
    }
    org.contact("A", "CC-DUP").await;
    let dup = org
        .post(
            "/sobjects/Contact",
            json!({"LastName": "B", "Patient_External_Id__c": "CC-DUP"}),
        )
        .await;
    assert_eq!(dup.status, 400);
    assert_eq!(dup.error_code(), "DUPLICATE_VALUE");
    assert!(dup.message().starts_with(
        "duplicate value found: Patient_External_Id__c duplicates value on record with id: 003"
    ));
}

#[tokio::test]
async fn malformed_requests_get_salesforce_shaped_errors() {
    let org = Org::with(MockSalesforce::builder().config(
        crashcart_mocks::salesforce::SalesforceConfig {
            max_body_bytes: 1024,
            ..Default::default()
        },
    ))
    .await;
    let raw = |method: Method, path: &str, ct: &str, body: Vec<u8>| {
        org.http
            .request(method, org.data(path))
            .bearer_auth(&org.token)
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let r = common::read(
        raw(
            Method::POST,
            "/sobjects/Contact",
            "application/json",
            b"{\"LastName\": ".to_vec(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "JSON_PARSER_ERROR");
    assert!(r.message().contains("[line:1, column:"), "{}", r.text);
    let r = common::read(
        raw(
            Method::POST,
            "/sobjects/Contact",
            "application/json",
            b"[1,2]".to_vec(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(r.error_code(), "JSON_PARSER_ERROR");
    let r = common::read(
        raw(
            Method::POST,
            "/sobjects/Contact",
            "text/plain",
            b"LastName=x".to_vec(),
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.error_code(), "UNSUPPORTED_MEDIA_TYPE");
    let r = common::read(
        raw(
            Method::POST,
            "/sobjects/Contact",
            "application/json",
            vec![b' '; 4096],
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.error_code(), "REQUEST_ENTITY_TOO_LARGE");
    let r = org.post("/sobjects/Nope__c", json!({"Name": "x"})).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "NOT_FOUND");
    let r = org
        .call(
            Method::PUT,
            "/sobjects/Contact/003000000000001AAA",
            Some(json!({})),
        )
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.error_code(), "METHOD_NOT_ALLOWED");
    let r = org.get("/no/such/resource").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "NOT_FOUND");
    let r = common::read(
        org.http
            .get(format!("{}/services/data/latest/limits", org.base))
            .bearer_auth(&org.token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "NOT_FOUND");
    let r = common::read(
        org.http
            .get(format!("{}/totally/elsewhere", org.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.error_code(), "NOT_FOUND");
}

#[tokio::test]
async fn api_versions_outside_the_served_range() {
    let org = Org::start().await;
    let newer = org
        .call(
            Method::GET,
            &format!("{}/services/data/v99.0/limits", org.base),
            None,
        )
        .await;
    assert_eq!(newer.status, 404);
    assert_eq!(newer.error_code(), "NOT_FOUND");
    let retired = org
        .call(
            Method::GET,
            &format!("{}/services/data/v20.0/limits", org.base),
            None,
        )
        .await;
    assert_eq!(retired.status, 410);
    assert_eq!(retired.error_code(), "UNSUPPORTED_API_VERSION");
    // Retiring a version at run time (the drift fault's lever) makes it answer 410.
    org.sf.handle().retire_versions_below(60);
    let now_retired = org.get("/limits").await;
    assert_eq!(now_retired.status, 410);
    let listed = common::read(
        org.http
            .get(format!("{}/services/data", org.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(listed.json[0]["version"], "60.0");
}

#[tokio::test]
async fn daily_quota_exhaustion_answers_request_limit_exceeded() {
    let org = Org::with(MockSalesforce::builder().daily_api_limit(3)).await;
    for _ in 0..3 {
        assert_eq!(org.get("/limits").await.status, 200);
    }
    let r = org.get("/limits").await;
    assert_eq!(r.status, 403);
    assert_eq!(
        r.json,
        json!([{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
    );
    assert_eq!(r.header("sforce-limit-info"), Some("api-usage=3/3"));
    assert_eq!(org.sf.handle().api_usage(), (3, 3));
    org.sf.handle().set_api_limit(10);
    assert_eq!(org.get("/limits").await.status, 200);
}

#[tokio::test]
async fn https_with_a_generated_certificate() {
    let tls = crashcart_mocks::TlsMaterial::self_signed().unwrap();
    let sf = MockSalesforce::builder()
        .tls(tls.clone())
        .start()
        .await
        .unwrap();
    assert!(sf.url().starts_with("https://127.0.0.1:"));
    let cert = reqwest::Certificate::from_pem(tls.cert_pem().as_bytes()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(cert)
        .build()
        .unwrap();
    let r = client
        .get(format!("{}/services/data/", sf.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // An untrusting client is refused at the TLS layer.
    assert!(reqwest::Client::new()
        .get(format!("{}/services/data/", sf.url()))
        .send()
        .await
        .is_err());
    sf.shutdown().await;
}

/// A mock serving for hours keeps a bounded write log: the newest entries, numbered on.
#[tokio::test]
async fn a_bounded_write_log_keeps_the_newest_writes() {
    let mock = MockSalesforce::builder().start().await.unwrap();
    let h = mock.handle();
    h.set_write_capacity(8);
    for i in 0..100 {
        h.insert("Account", json!({"Name": format!("Clinic {i}")}))
            .unwrap();
    }
    let writes = h.writes();
    assert!((8..=10).contains(&writes.len()), "{} kept", writes.len());
    assert!(writes.windows(2).all(|w| w[1].seq == w[0].seq + 1));
    let state: serde_json::Value = reqwest::get(format!("{}/__crashcart/state", mock.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Every write is counted (the org's seeded records too), the newest kept.
    let logged = state["writes"].as_u64().unwrap();
    assert!(logged >= 100, "{state}");
    assert_eq!(writes.last().unwrap().seq + 1, logged);
}

/// Write `LastName` records as of `minutes_ago` on the org's clock (replication reads what
/// changed in past minutes); `delete_minutes_ago` deletes one of them later.
fn backdated(org: &Org, names: &[(&str, i64, Option<i64>)]) -> Vec<String> {
    let now = chrono::Utc::now();
    names
        .iter()
        .map(|(last, created, deleted)| {
            org.sf.handle().with_org_mut(|o| {
                let obj = o.schema.object("Contact").unwrap().clone();
                let actor = |ago: i64| crashcart_mocks::salesforce::store::Actor {
                    user_id: "005000000000001AAA".into(),
                    username: None,
                    now: now - chrono::Duration::minutes(ago),
                    at_us: 0,
                };
                let mut values = serde_json::Map::new();
                values.insert("LastName".into(), json!(last));
                let id = o
                    .data
                    .create(&o.schema, &obj, values, &actor(*created))
                    .unwrap();
                if let Some(ago) = deleted {
                    o.data.delete(&obj, &id, &actor(*ago)).unwrap();
                }
                id
            })
        })
        .collect()
}

#[tokio::test]
async fn updated_and_deleted_list_what_changed_in_a_window() {
    let org = Org::start().await;
    let ids = backdated(
        &org,
        &[
            ("Old", 120, None),
            ("Recent", 10, None),
            ("Gone", 30, Some(5)),
        ],
    );
    let iso = |mins: i64| {
        (chrono::Utc::now() - chrono::Duration::minutes(mins))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    };
    let updated = org
        .get(&format!(
            "/sobjects/Contact/updated/?start={}&end={}",
            iso(60),
            iso(-5)
        ))
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!(updated.json["ids"], json!([ids[1]]), "{}", updated.text);
    let covered = updated.json["latestDateCovered"].as_str().unwrap();
    assert!(
        covered.ends_with(":00.000+0000"),
        "whole minutes: {covered}"
    );
    let deleted = org
        .get(&format!(
            "/sobjects/Contact/deleted/?start={}&end={}",
            iso(60),
            iso(0)
        ))
        .await;
    assert_eq!(
        deleted.json["deletedRecords"][0]["id"],
        ids[2].as_str(),
        "{}",
        deleted.text
    );
    assert!(deleted.json["deletedRecords"][0]["deletedDate"].is_string());
    assert!(deleted.json["earliestDateAvailable"].is_string());
    for (query, code) in [
        (
            format!("start={}&end={}", iso(10), iso(10)),
            "INVALID_REPLICATION_DATE",
        ),
        (
            format!("start={}&end={}", iso(60 * 24 * 31), iso(0)),
            "INVALID_REPLICATION_DATE",
        ),
        (format!("start={}", iso(10)), "MISSING_ARGUMENT"),
        (
            "start=yesterday&end=today".to_string(),
            "INVALID_REPLICATION_DATE",
        ),
    ] {
        let r = org
            .get(&format!("/sobjects/Contact/updated/?{query}"))
            .await;
        assert_eq!(
            (r.status.as_u16(), r.error_code()),
            (400, code),
            "{query}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn sosl_search_and_parameterized_search() {
    let org = Org::start().await;
    let h = org.sf.handle();
    let grace = h
        .insert(
            "Contact",
            json!({"FirstName": "Grace", "LastName": "Hopper", "Email": "grace@navy.example"}),
        )
        .unwrap();
    h.insert(
        "Contact",
        json!({"FirstName": "Alan", "LastName": "Turing"}),
    )
    .unwrap();
    h.insert("Account", json!({"Name": "Hopper Clinic"}))
        .unwrap();
    let search = |q: &str| {
        let path = format!(
            "/search?q={}",
            q.replace(' ', "+").replace('{', "%7B").replace('}', "%7D")
        );
        let org = &org;
        async move { org.get(&path).await }
    };
    let r = search("FIND {hopper}").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let types: Vec<&str> = (r.json["searchRecords"].as_array().unwrap().iter())
        .filter_map(|x| x["attributes"]["type"].as_str())
        .collect();
    assert!(
        types.contains(&"Contact") && types.contains(&"Account"),
        "{}",
        r.text
    );
    let r = search("FIND {hopper} IN NAME FIELDS RETURNING Contact(FirstName, LastName)").await;
    let recs = r.json["searchRecords"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{}", r.text);
    assert_eq!(recs[0]["FirstName"], "Grace");
    assert!(
        recs[0].get("Id").is_none(),
        "only the fields asked for: {}",
        recs[0]
    );
    let r = search("FIND {grace@navy.example} IN EMAIL FIELDS RETURNING Contact(Id)").await;
    assert_eq!(
        r.json["searchRecords"][0]["Id"],
        grace.as_str(),
        "{}",
        r.text
    );
    let r =
        search("FIND {tur*} RETURNING Contact(LastName WHERE FirstName = 'Alan' LIMIT 1)").await;
    assert_eq!(
        r.json["searchRecords"][0]["LastName"], "Turing",
        "{}",
        r.text
    );
    for (q, code) in [
        ("FIND hopper", "MALFORMED_SEARCH"),
        ("FIND {h}", "MALFORMED_SEARCH"),
        ("FIND {hopper} RETURNING Contact(Nope__c)", "INVALID_FIELD"),
        ("FIND {hopper} RETURNING Patient", "INVALID_TYPE"),
    ] {
        let r = search(q).await;
        assert_eq!(
            (r.status.as_u16(), r.error_code()),
            (400, code),
            "{q}: {}",
            r.text
        );
    }
    let p = org
        .post(
            "/parameterizedSearch",
            json!({"q": "hopper", "in": "NAME", "sobjects": [{"name": "Contact", "fields": ["Id", "LastName"]}]}),
        )
        .await;
    assert_eq!(
        p.json["searchRecords"][0]["Id"],
        grace.as_str(),
        "{}",
        p.text
    );
    let g = org
        .get("/parameterizedSearch?q=hopper&sobject=Account&Account.fields=Name")
        .await;
    assert_eq!(
        g.json["searchRecords"][0]["Name"], "Hopper Clinic",
        "{}",
        g.text
    );
}

/// A body between axum's default cap (2 MB) and the mock's limit (8 MB) reaches Salesforce's
/// own validation; past the limit, Salesforce's 413 answer.
#[tokio::test]
async fn bodies_up_to_the_limit_are_read_whole() {
    let org = Org::start().await;
    let big = "x".repeat(3 * 1024 * 1024);
    let r = org
        .post(
            "/sobjects/Contact",
            json!({"LastName": "Big", "MailingCity": big}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", &r.text[..r.text.len().min(300)]);
    assert_eq!(r.error_code(), "STRING_TOO_LONG");
    let huge = "x".repeat(9 * 1024 * 1024);
    let r = org
        .post(
            "/sobjects/Contact",
            json!({"LastName": "Huge", "Description": huge}),
        )
        .await;
    assert_eq!(r.status, 413, "{}", &r.text[..r.text.len().min(300)]);
    assert!(
        r.json.is_array(),
        "Salesforce's error body: {}",
        &r.text[..r.text.len().min(300)]
    );
}

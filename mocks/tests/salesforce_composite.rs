//! Composite requests and sObject collections, including allOrNone rollback.

mod common;

use common::*;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn composite_resolves_references_in_order() {
    let org = Org::start().await;
    let owner = org.sf.handle().user_id("dr.okafor@crashcart.test").unwrap();
    let r = org
        .post(
            "/composite",
            json!({"allOrNone": true, "compositeRequest": [
                {"method": "PATCH", "url": "/services/data/v59.0/sobjects/Contact/Patient_External_Id__c/CC-P-1", "referenceId": "patient", "body": {"LastName": "Synthetic"}},
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Event", "referenceId": "appt", "body": {"Subject": "Visit", "WhoId": "@{patient.id}", "OwnerId": owner, "StartDateTime": "2030-01-01T09:00:00Z", "EndDateTime": "2030-01-01T09:30:00Z", "Booking_Key__c": "BK-1"}},
                {"method": "GET", "url": "/services/data/v59.0/sobjects/Event/@{appt.id}?fields=WhoId", "referenceId": "check"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let parts = r.json["compositeResponse"].as_array().unwrap();
    assert_eq!(parts[0]["httpStatusCode"], 201);
    assert_eq!(parts[0]["referenceId"], "patient");
    assert_eq!(parts[1]["httpStatusCode"], 201);
    assert!(parts[1]["httpHeaders"]["Location"]
        .as_str()
        .unwrap()
        .contains("/sobjects/Event/00U"));
    assert_eq!(parts[2]["httpStatusCode"], 200);
    assert_eq!(parts[2]["body"]["WhoId"], parts[0]["body"]["id"]);
}

#[tokio::test]
async fn composite_all_or_none_rolls_back_everything() {
    let org = Org::start().await;
    let r = org
        .post(
            "/composite",
            json!({"allOrNone": true, "compositeRequest": [
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact", "referenceId": "ok", "body": {"LastName": "Kept?"}},
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Event", "referenceId": "bad", "body": {"Subject": "no times"}},
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact", "referenceId": "after", "body": {"LastName": "Never"}}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200);
    let parts = r.json["compositeResponse"].as_array().unwrap();
    assert_eq!(parts[0]["httpStatusCode"], 400);
    assert_eq!(parts[0]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(parts[1]["httpStatusCode"], 400);
    assert_eq!(parts[1]["body"][0]["errorCode"], "REQUIRED_FIELD_MISSING");
    assert_eq!(parts[2]["body"][0]["errorCode"], "PROCESSING_HALTED");
    let count = org.query("SELECT COUNT() FROM Contact").await;
    assert_eq!(
        count.json["totalSize"], 0,
        "the first create was rolled back"
    );

    // Without allOrNone the first create stays and a dependent reference fails.
    let r = org
        .post(
            "/composite",
            json!({"allOrNone": false, "compositeRequest": [
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact", "referenceId": "ok", "body": {"LastName": "Kept"}},
                {"method": "POST", "url": "/services/data/v59.0/sobjects/Event", "referenceId": "bad", "body": {"Subject": "no times"}},
                {"method": "GET", "url": "/services/data/v59.0/sobjects/Event/@{bad.id}", "referenceId": "dep"}
            ]}),
        )
        .await;
    let parts = r.json["compositeResponse"].as_array().unwrap();
    assert_eq!(parts[0]["httpStatusCode"], 201);
    assert_eq!(parts[2]["body"][0]["errorCode"], "PROCESSING_HALTED");
    assert_eq!(
        org.query("SELECT COUNT() FROM Contact").await.json["totalSize"],
        1
    );
}

#[tokio::test]
async fn collections_create_update_delete_retrieve() {
    let org = Org::start().await;
    let r = org
        .post(
            "/composite/sobjects",
            json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Contact"}, "LastName": "One"},
                {"attributes": {"type": "Contact"}, "FirstName": "No last name"},
                {"attributes": {"type": "Account"}, "Name": "Clinic"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let res = r.json.as_array().unwrap();
    assert_eq!(res[0]["success"], true);
    assert_eq!(
        res[1],
        json!({"success": false, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING", "message": "Required fields are missing: [LastName]", "fields": ["LastName"]}]})
    );
    let contact = res[0]["id"].as_str().unwrap().to_string();
    let account = res[2]["id"].as_str().unwrap().to_string();

    let upd = org
        .call(Method::PATCH, "/composite/sobjects", Some(json!({"allOrNone": true, "records": [
            {"attributes": {"type": "Contact"}, "Id": contact, "FirstName": "Changed"},
            {"attributes": {"type": "Contact"}, "Id": "003000000000999AAA", "FirstName": "Ghost"}
        ]})))
        .await;
    let res = upd.json.as_array().unwrap();
    assert_eq!(
        res[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(res[1]["errors"][0]["statusCode"], "NOT_FOUND");
    assert!(
        org.get(&format!("/sobjects/Contact/{contact}")).await.json["FirstName"].is_null(),
        "rolled back"
    );

    let got = org
        .get(&format!(
            "/composite/sobjects/Contact?ids={contact}&fields=Id,LastName"
        ))
        .await;
    assert_eq!(got.json[0]["LastName"], "One");

    let del = org
        .delete(&format!(
            "/composite/sobjects?ids={contact},{account}&allOrNone=false"
        ))
        .await;
    assert_eq!(
        del.json,
        json!([{"id": contact, "success": true, "errors": []}, {"id": account, "success": true, "errors": []}])
    );

    let too_many: Vec<_> = (0..201)
        .map(|i| json!({"attributes": {"type": "Contact"}, "LastName": format!("N{i}")}))
        .collect();
    let r = org
        .post("/composite/sobjects", json!({"records": too_many}))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.error_code(), "EXCEEDED_ID_LIMIT");
}

#[tokio::test]
async fn collections_upsert_by_external_id() {
    let org = Org::start().await;
    let existing = org.contact("Before", "CC-UP-1").await;
    let path = "/composite/sobjects/Contact/Patient_External_Id__c";
    let r = org
        .patch(
            path,
            json!({"allOrNone": false, "records": [
                {"attributes": {"type": "Contact"}, "Patient_External_Id__c": "CC-UP-1", "LastName": "After"},
                {"attributes": {"type": "Contact"}, "Patient_External_Id__c": "CC-UP-2", "LastName": "New"},
                {"attributes": {"type": "Contact"}, "LastName": "No key"},
                {"attributes": {"type": "Account"}, "Patient_External_Id__c": "CC-UP-3", "Name": "Wrong type"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let res = r.json.as_array().unwrap();
    assert_eq!(
        res[0],
        json!({"id": existing, "success": true, "errors": [], "created": false})
    );
    assert_eq!(res[1]["created"], true);
    assert_eq!(res[1]["success"], true);
    assert_eq!(res[2]["errors"][0]["statusCode"], "MISSING_ARGUMENT");
    assert_eq!(res[3]["errors"][0]["statusCode"], "INVALID_INPUT");
    let after = org.get(&format!("/sobjects/Contact/{existing}")).await;
    assert_eq!(after.json["LastName"], "After");
    let new = org.query("SELECT Id FROM Contact WHERE Patient_External_Id__c = 'CC-UP-2'");
    assert_eq!(new.await.json["totalSize"], 1);

    // allOrNone: one refused record rolls the others back.
    let r = org
        .patch(
            path,
            json!({"allOrNone": true, "records": [
                {"attributes": {"type": "Contact"}, "Patient_External_Id__c": "CC-UP-4", "LastName": "Rolled back"},
                {"attributes": {"type": "Contact"}, "Patient_External_Id__c": "CC-UP-5"}
            ]}),
        )
        .await;
    assert_eq!(
        r.json[0]["errors"][0]["statusCode"],
        "ALL_OR_NONE_OPERATION_ROLLED_BACK"
    );
    assert_eq!(
        r.json[1]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    let gone = org.query("SELECT Id FROM Contact WHERE Patient_External_Id__c = 'CC-UP-4'");
    assert_eq!(gone.await.json["totalSize"], 0);

    // A field that is not an external id, and an API version before 46.0.
    let r = org
        .patch(
            "/composite/sobjects/Contact/LastName",
            json!({"records": [{"attributes": {"type": "Contact"}, "LastName": "X"}]}),
        )
        .await;
    assert_eq!(
        r.json[0]["errors"][0]["statusCode"], "NOT_FOUND",
        "{}",
        r.text
    );
    let old = org
        .call_with(
            Method::PATCH,
            &format!(
                "{}/services/data/v45.0/composite/sobjects/Contact/Patient_External_Id__c",
                org.base
            ),
            Some(json!({"records": []})),
            &[],
        )
        .await;
    assert_eq!(old.status, 404, "{}", old.text);
}

#[tokio::test]
async fn collections_retrieve_with_a_body() {
    let org = Org::start().await;
    let a = org.contact("Alpha", "CC-RT-1").await;
    let b = org.contact("Beta", "CC-RT-2").await;
    let r = org
        .post(
            "/composite/sobjects/Contact",
            json!({"ids": [a, "003000000000999AAA", b], "fields": ["Id", "LastName"]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json[0]["LastName"], "Alpha");
    assert!(r.json[1].is_null(), "an id that names no record gives null");
    assert_eq!(r.json[2]["LastName"], "Beta");
    assert_eq!(r.json[2]["attributes"]["type"], "Contact");

    let bad = org
        .post(
            "/composite/sobjects/Contact",
            json!({"ids": [a], "fields": ["NoSuch__c"]}),
        )
        .await;
    assert_eq!(
        (bad.status.as_u16(), bad.error_code()),
        (400, "INVALID_FIELD")
    );
    let no_fields = org
        .post("/composite/sobjects/Contact", json!({"ids": [a]}))
        .await;
    assert_eq!(no_fields.status, 400);
    let ids: Vec<String> = (0..2001).map(|i| format!("003{i:012}AAA")).collect();
    let many = org
        .post(
            "/composite/sobjects/Contact",
            json!({"ids": ids, "fields": ["Id"]}),
        )
        .await;
    assert_eq!(
        (many.status.as_u16(), many.error_code()),
        (400, "EXCEEDED_ID_LIMIT")
    );
}

#[tokio::test]
async fn composite_tree_creates_parents_then_children_or_nothing() {
    let org = Org::start().await;
    let tree = json!({"records": [{
        "attributes": {"type": "Account", "referenceId": "clinic"},
        "Name": "North Clinic",
        "Contacts": {"records": [
            {"attributes": {"type": "Contact", "referenceId": "ada"}, "LastName": "Lovelace",
             "Cases": {"records": [{"attributes": {"type": "Case", "referenceId": "case1"}, "Subject": "Follow-up"}]}},
            {"attributes": {"type": "Contact", "referenceId": "grace"}, "LastName": "Hopper"}
        ]}
    }]});
    let r = org.post("/composite/tree/Account", tree).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["hasErrors"], false);
    let results = r.json["results"].as_array().unwrap();
    let id_of = |reference: &str| {
        results
            .iter()
            .find(|x| x["referenceId"] == reference)
            .and_then(|x| x["id"].as_str())
            .unwrap()
            .to_string()
    };
    let (clinic, ada) = (id_of("clinic"), id_of("ada"));
    assert_eq!(results.len(), 4);
    let contact = org.get(&format!("/sobjects/Contact/{ada}")).await;
    assert_eq!(
        contact.json["AccountId"],
        clinic.as_str(),
        "children get the parent's id"
    );
    let case = org.get(&format!("/sobjects/Case/{}", id_of("case1"))).await;
    assert_eq!(case.json["ContactId"], ada.as_str());

    // One bad record: nothing is written, and the answer names it.
    let bad = json!({"records": [{
        "attributes": {"type": "Account", "referenceId": "south"}, "Name": "South Clinic",
        "Contacts": {"records": [{"attributes": {"type": "Contact", "referenceId": "nameless"}, "FirstName": "No last name"}]}
    }]});
    let r = org.post("/composite/tree/Account", bad).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.json["hasErrors"], true);
    assert_eq!(r.json["results"][0]["referenceId"], "nameless");
    assert_eq!(
        r.json["results"][0]["errors"][0]["statusCode"],
        "REQUIRED_FIELD_MISSING"
    );
    let accounts = org.query("SELECT COUNT() FROM Account").await;
    assert_eq!(
        accounts.json["totalSize"], 1,
        "the South Clinic was rolled back"
    );
    let many: Vec<_> = (0..201)
        .map(|i| json!({"attributes": {"type": "Account", "referenceId": format!("a{i}")}, "Name": format!("A{i}")}))
        .collect();
    let r = org
        .post("/composite/tree/Account", json!({"records": many}))
        .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn composite_batch_runs_independent_subrequests() {
    let org = Org::start().await;
    let id = org.contact("Batch", "CC-BATCH-1").await;
    let r = org
        .post(
            "/composite/batch",
            json!({"batchRequests": [
                {"method": "GET", "url": format!("v59.0/sobjects/Contact/{id}?fields=LastName")},
                {"method": "PATCH", "url": format!("v59.0/sobjects/Contact/{id}"), "richInput": {"FirstName": "Grace"}},
                {"method": "GET", "url": "v59.0/sobjects/Contact/003000000000999AAA"},
                {"method": "GET", "url": "v59.0/query?q=SELECT+Id+FROM+Contact"}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["hasErrors"], true);
    let res = r.json["results"].as_array().unwrap();
    assert_eq!(res[0]["statusCode"], 200);
    assert_eq!(res[0]["result"]["LastName"], "Batch");
    assert_eq!(res[1]["statusCode"], 204);
    assert_eq!(res[2]["statusCode"], 404);
    assert_eq!(
        res[3]["statusCode"], 200,
        "runs on after a failure: {}",
        r.text
    );
    let halted = org
        .post(
            "/composite/batch",
            json!({"haltOnError": true, "batchRequests": [
                {"method": "GET", "url": "v59.0/sobjects/Contact/003000000000999AAA"},
                {"method": "GET", "url": format!("v59.0/sobjects/Contact/{id}")}
            ]}),
        )
        .await;
    assert_eq!(
        halted.json["results"][1]["statusCode"], 412,
        "{}",
        halted.text
    );
    assert_eq!(
        halted.json["results"][1]["result"][0]["errorCode"],
        "BATCH_PROCESSING_HALTED"
    );
    let after = org.get(&format!("/sobjects/Contact/{id}")).await;
    assert_eq!(
        after.json["FirstName"], "Grace",
        "batch subrequests are not rolled back"
    );
}

#[tokio::test]
async fn composite_graph_rolls_back_a_failed_graph_only() {
    let org = Org::start().await;
    let r = org
        .post(
            "/composite/graph",
            json!({"graphs": [
                {"graphId": "good", "compositeRequest": [
                    {"method": "POST", "url": "/services/data/v59.0/sobjects/Account", "referenceId": "acct", "body": {"Name": "Graph Clinic"}},
                    {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact", "referenceId": "pat", "body": {"LastName": "Graph", "AccountId": "@{acct.id}"}}
                ]},
                {"graphId": "bad", "compositeRequest": [
                    {"method": "POST", "url": "/services/data/v59.0/sobjects/Account", "referenceId": "acct2", "body": {"Name": "Doomed"}},
                    {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact", "referenceId": "pat2", "body": {"FirstName": "No last name"}}
                ]}
            ]}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let graphs = r.json["graphs"].as_array().unwrap();
    assert_eq!(
        (
            graphs[0]["graphId"].clone(),
            graphs[0]["isSuccessful"].clone()
        ),
        (json!("good"), json!(true))
    );
    assert_eq!(graphs[1]["isSuccessful"], false);
    let pat = &graphs[0]["graphResponse"]["compositeResponse"][1];
    assert_eq!(pat["httpStatusCode"], 201, "{pat}");
    let names = org.query("SELECT Name FROM Account").await;
    assert_eq!(
        names.json["totalSize"], 1,
        "the bad graph left nothing: {}",
        names.text
    );
    assert_eq!(names.json["records"][0]["Name"], "Graph Clinic");
    let empty = org.post("/composite/graph", json!({"graphs": []})).await;
    assert_eq!(empty.status, 400);
}

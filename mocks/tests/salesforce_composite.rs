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

//! The reference integration in-process, on tokio's paused clock: mocks and integration are
//! routers joined by the in-process transport (no socket), so the booking saga, its
//! compensation and a defect can be checked exactly and instantly.

use std::sync::Arc;

use axum::Router;
use crashcart::reference::{Defect, Defects, Policy, Reference, Settings};
use crashcart::transport::{HttpRequest, Transport};
use crashcart_mocks::llm::MockLlm;
use crashcart_mocks::salesforce::{MockSalesforce, SalesforceHandle};
use crashcart_mocks::{Action, CannedResponse, FaultHook, RequestInfo, Verdict};
use http::StatusCode;
use serde_json::{json, Value};

const SF: &str = "http://salesforce.sim:443";
const LLM: &str = "http://llm.sim:11434";
const APP: &str = "http://reference.sim:8080";

/// Every Event write answers UNABLE_TO_LOCK_ROW.
struct LockedEvents;

impl FaultHook for LockedEvents {
    fn verdict(&self, r: &RequestInfo<'_>) -> Verdict {
        let write = r.method != http::Method::GET && r.method != http::Method::DELETE;
        if write && r.sobject == Some("Event") {
            return Verdict {
                action: Action::Respond(CannedResponse::json(
                    StatusCode::BAD_REQUEST,
                    &json!([{"message": "unable to obtain exclusive access to this record", "errorCode": "UNABLE_TO_LOCK_ROW", "fields": []}]),
                )),
                ..Verdict::default()
            };
        }
        Verdict::default()
    }
}

fn world(defects: Defects) -> (Transport, SalesforceHandle) {
    let (sf_router, sf) = MockSalesforce::builder()
        .seed(1)
        .build_in_process(SF)
        .unwrap();
    let (llm_router, llm) = MockLlm::builder()
        .zero_delay()
        .build_in_process(LLM)
        .unwrap();
    let mut pairs: Vec<(String, String)> = sf
        .connection_settings()
        .env_pairs()
        .into_iter()
        .chain(llm.connection_settings().env_pairs())
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    pairs.push(("CRASHCART_SEED".into(), "7".into()));
    let settings =
        Settings::from_lookup(|k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone()))
            .unwrap();
    let deps = Transport::in_process([
        ("salesforce.sim:443".to_string(), sf_router),
        ("llm.sim:11434".to_string(), llm_router),
    ]);
    let reference = Reference::new(
        settings,
        deps,
        Policy::default(),
        defects,
        Arc::new(|_line| {}),
    );
    let app: Router = crashcart::reference::flows::router(reference);
    (
        Transport::in_process([("reference.sim:8080".to_string(), app)]),
        sf,
    )
}

fn booking(key: &str) -> Value {
    json!({
        "booking_key": key,
        "patient": {"external_id": "CC-SYN-P-000001", "first_name": "Ada", "last_name": "Synthetic",
                     "birthdate": "1970-01-02", "language": "English"},
        "practitioner": "dr.adams@crashcart.test",
        "start": "2027-01-05T09:00:00.000+0000",
        "end": "2027-01-05T09:30:00.000+0000",
        "provenance": "crashcart-synthetic"
    })
}

fn live(sf: &SalesforceHandle, object: &str) -> Vec<Value> {
    sf.records(object)
        .into_iter()
        .filter(|r| r["IsDeleted"] != json!(true))
        .collect()
}

async fn book(app: &Transport, key: &str) -> (u16, Value) {
    let r = app
        .send(
            HttpRequest::new(http::Method::POST, format!("{APP}/appointments")).json(&booking(key)),
            None,
        )
        .await
        .unwrap();
    (r.status, r.json())
}

#[tokio::test(start_paused = true)]
async fn a_booking_is_whole_and_a_double_booking_is_refused() {
    let (app, sf) = world(Defects::none());
    let (status, body) = book(&app, "CC-SYN-OP-1").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["visit_prep"], true, "{body}");
    let events = live(&sf, "Event");
    let contacts = live(&sf, "Contact");
    assert_eq!((events.len(), contacts.len()), (1, 1));
    assert_eq!(events[0]["WhoId"], contacts[0]["Id"]);
    assert_eq!(
        events[0]["OwnerId"].as_str(),
        sf.user_id("dr.adams@crashcart.test").as_deref()
    );
    assert!(events[0]["Visit_Prep__c"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    // The same booking again is idempotent; another booking of the same slot is refused.
    assert_eq!(book(&app, "CC-SYN-OP-1").await.0, 201);
    assert_eq!(book(&app, "CC-SYN-OP-2").await.0, 409);
    assert_eq!(live(&sf, "Event").len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_booking_that_fails_half_way_is_compensated_unless_the_defect_is_on() {
    let (app, sf) = world(Defects::none());
    sf.set_fault_hook(Arc::new(LockedEvents));
    let (status, body) = book(&app, "CC-SYN-OP-3").await;
    assert_eq!(status, 502, "{body}");
    // Four attempts at the Event, then the Contact it created is deleted again.
    let event_writes = sf
        .history()
        .snapshot()
        .iter()
        .filter(|r| r.sobject.as_deref() == Some("Event") && r.method == "PATCH")
        .count();
    assert_eq!(event_writes, Policy::default().max_attempts as usize);
    assert!(live(&sf, "Contact").is_empty(), "compensated");
    assert!(live(&sf, "Event").is_empty());

    let (app, sf) = world([Defect::NoCompensation].into_iter().collect());
    sf.set_fault_hook(Arc::new(LockedEvents));
    assert_eq!(book(&app, "CC-SYN-OP-3").await.0, 502);
    assert_eq!(
        live(&sf, "Contact").len(),
        1,
        "the defect leaves the Contact"
    );
}

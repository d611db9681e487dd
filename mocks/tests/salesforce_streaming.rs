//! The Streaming API on the wire (CometD long polling): change events for every write with
//! replay ids, replay from `-2` or an id, and the change-event faults (subscribers dropped,
//! events lost, replay ids past retention). jsforce's own streaming client is driven in
//! `tests/node_clients.rs`.

mod common;

use common::*;
use serde_json::{json, Value};

const CHANNEL: &str = "/data/ContactChangeEvent";

/// A CometD client speaking to the mock.
struct Cometd<'a> {
    org: &'a Org,
    client: String,
}

impl<'a> Cometd<'a> {
    async fn send(org: &Org, messages: Value) -> Vec<Value> {
        let r = org
            .http
            .post(format!("{}/cometd/59.0", org.base))
            .bearer_auth(&org.token)
            .json(&messages)
            .send()
            .await
            .unwrap();
        let r = read(r).await;
        assert_eq!(r.status, 200, "{}", r.text);
        r.json.as_array().cloned().unwrap_or_default()
    }

    async fn handshake(org: &'a Org) -> Cometd<'a> {
        let out = Self::send(
            org,
            json!([{"channel": "/meta/handshake", "version": "1.0", "supportedConnectionTypes": ["long-polling"], "id": "1"}]),
        )
        .await;
        assert_eq!(out[0]["successful"], true, "{out:?}");
        let client = out[0]["clientId"].as_str().unwrap().to_string();
        Cometd { org, client }
    }

    /// Subscribe, replaying from `replay` when given; the subscribe answer.
    async fn subscribe(&self, channel: &str, replay: Option<i64>) -> Value {
        let mut m = json!({"channel": "/meta/subscribe", "clientId": self.client, "subscription": channel, "id": "2"});
        if let Some(r) = replay {
            m["ext"] = json!({"replay": {channel: r}});
        }
        Self::send(self.org, json!([m])).await.remove(0)
    }

    /// One `/meta/connect`: the events it carried, then its own answer.
    async fn connect(&self) -> (Vec<Value>, Value) {
        let mut out = Self::send(
            self.org,
            json!([{"channel": "/meta/connect", "clientId": self.client, "connectionType": "long-polling", "id": "3"}]),
        )
        .await;
        let answer = out.pop().unwrap();
        assert_eq!(answer["channel"], "/meta/connect");
        (out, answer)
    }
}

fn replay_id(e: &Value) -> u64 {
    e["data"]["event"]["replayId"].as_u64().unwrap()
}

#[tokio::test]
async fn subscribers_receive_each_change_of_their_object_with_growing_replay_ids() {
    let org = Org::start().await;
    let c = Cometd::handshake(&org).await;
    assert_eq!(c.subscribe(CHANNEL, None).await["successful"], true);
    let (_, first) = c.connect().await;
    assert_eq!(
        first["successful"], true,
        "the first connect answers at once"
    );
    let used = org.sf.handle().api_usage().0;
    let id = org.contact("Live", "CC-S-1").await;
    org.post("/sobjects/Account", json!({"Name": "Not a contact"}))
        .await;
    org.patch(
        &format!("/sobjects/Contact/{id}"),
        json!({"FirstName": "Ada"}),
    )
    .await;
    let (events, answer) = c.connect().await;
    assert_eq!(answer["successful"], true);
    assert_eq!(
        events.len(),
        2,
        "the Account is not on this channel: {events:?}"
    );
    let header = |i: usize| &events[i]["data"]["payload"]["ChangeEventHeader"];
    assert_eq!(header(0)["changeType"], "CREATE");
    assert_eq!(header(0)["recordIds"][0], id.as_str());
    assert_eq!(events[0]["data"]["payload"]["Name"]["LastName"], "Live");
    assert_eq!(header(1)["changeType"], "UPDATE");
    assert_eq!(
        header(1)["changedFields"],
        json!(["Name.FirstName", "LastModifiedDate"])
    );
    assert!(
        header(0)["commitTimestamp"].as_i64().unwrap() > 1_600_000_000_000,
        "epoch ms"
    );
    assert!(header(0)["commitUser"].as_str().unwrap().starts_with("005"));
    assert!(events[0]["data"]["payload"]["CreatedDate"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert!(replay_id(&events[1]) > replay_id(&events[0]));
    assert_eq!(
        org.sf.handle().api_usage().0,
        used + 3,
        "the three writes count; streaming requests do not"
    );
}

#[tokio::test]
async fn replay_from_an_id_delivers_what_came_after_it_and_minus_two_delivers_all() {
    let org = Org::start().await;
    org.contact("One", "CC-S-1").await;
    org.contact("Two", "CC-S-2").await;
    let all = Cometd::handshake(&org).await;
    all.subscribe(CHANNEL, Some(-2)).await;
    let (events, _) = all.connect().await;
    assert_eq!(events.len(), 2, "{events:?}");
    let after_first = Cometd::handshake(&org).await;
    let r = after_first
        .subscribe(CHANNEL, Some(replay_id(&events[0]) as i64))
        .await;
    assert_eq!(r["successful"], true, "{r}");
    let (again, _) = after_first.connect().await;
    assert_eq!(again.len(), 1);
    assert_eq!(replay_id(&again[0]), replay_id(&events[1]));
}

#[tokio::test]
async fn a_dropped_subscriber_is_told_to_handshake_and_resumes_from_its_replay_id() {
    let org = Org::start().await;
    let c = Cometd::handshake(&org).await;
    c.subscribe(CHANNEL, None).await;
    c.connect().await;
    org.contact("Before", "CC-S-1").await;
    let (seen, _) = c.connect().await;
    org.sf.handle().streaming_disconnect_all();
    org.contact("During", "CC-S-2").await;
    let (events, answer) = c.connect().await;
    assert!(events.is_empty());
    assert_eq!(answer["successful"], false);
    assert_eq!(answer["error"], "403::Unknown client");
    assert_eq!(answer["advice"]["reconnect"], "handshake");
    // A careful subscriber resubscribes from the last replay id it saw: nothing is lost.
    let back = Cometd::handshake(&org).await;
    back.subscribe(CHANNEL, Some(replay_id(&seen[0]) as i64))
        .await;
    let (missed, _) = back.connect().await;
    assert_eq!(missed.len(), 1);
    assert_eq!(missed[0]["data"]["payload"]["Name"]["LastName"], "During");
}

#[tokio::test]
async fn lost_events_leave_a_gap_in_replay_ids() {
    let org = Org::start().await;
    let c = Cometd::handshake(&org).await;
    c.subscribe(CHANNEL, None).await;
    c.connect().await;
    org.sf.handle().set_streaming_dropping(true);
    org.contact("Lost", "CC-S-1").await;
    org.sf.handle().set_streaming_dropping(false);
    org.contact("Kept", "CC-S-2").await;
    let (kept, _) = c.connect().await;
    assert_eq!(
        kept.len(),
        1,
        "what was written during the fault is lost: {kept:?}"
    );
    assert_eq!(kept[0]["data"]["payload"]["Name"]["LastName"], "Kept");
    let lost = org.sf.handle().streaming_lost();
    assert_eq!(lost.len(), 1);
    assert_eq!(replay_id(&kept[0]), lost[0] + 1, "the gap is visible");
    // A replay from before the fault does not bring it back either.
    let again = Cometd::handshake(&org).await;
    again.subscribe(CHANNEL, Some(-2)).await;
    let (all, _) = again.connect().await;
    assert_eq!(all.len(), 1, "{all:?}");
}

#[tokio::test]
async fn a_replay_id_past_retention_is_refused_and_minus_one_still_works() {
    let org = Org::start().await;
    org.contact("Old", "CC-S-1").await;
    let c = Cometd::handshake(&org).await;
    c.subscribe(CHANNEL, Some(-2)).await;
    let (old, _) = c.connect().await;
    org.sf.handle().streaming_expire_replays();
    let late = Cometd::handshake(&org).await;
    let r = late
        .subscribe(CHANNEL, Some(replay_id(&old[0]) as i64 - 1))
        .await;
    assert_eq!(r["successful"], false, "{r}");
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .starts_with("400::The replayId"),
        "{r}"
    );
    assert_eq!(late.subscribe(CHANNEL, Some(-1)).await["successful"], true);
    let all = Cometd::handshake(&org).await;
    all.subscribe(CHANNEL, Some(-2)).await;
    org.contact("New", "CC-S-2").await;
    let (events, _) = all.connect().await;
    assert_eq!(
        events.len(),
        1,
        "-2 replays only what is retained: {events:?}"
    );
}

#[tokio::test]
async fn unknown_channels_and_objects_and_bad_messages_get_bayeux_errors() {
    let org = Org::start().await;
    let c = Cometd::handshake(&org).await;
    let r = c.subscribe("/topic/Nothing", None).await;
    assert_eq!(r["successful"], false);
    assert!(r["error"].as_str().unwrap().starts_with("400::"), "{r}");
    let r = c.subscribe("/data/Spaceship__ChangeEvent", None).await;
    assert!(
        r["error"].as_str().unwrap().contains("does not exist"),
        "{r}"
    );
    let r = Cometd::send(
        &org,
        json!([{"channel": "/meta/subscribe", "clientId": "nobody", "subscription": CHANNEL}]),
    )
    .await;
    assert_eq!(r[0]["error"], "403::Unknown client");
    let raw = |body: String, token: Option<&str>| {
        let mut rb = org
            .http
            .post(format!("{}/cometd/59.0", org.base))
            .header("content-type", "application/json")
            .body(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        async move { read(rb.send().await.unwrap()).await }
    };
    let anonymous = raw(
        json!([{"channel": "/meta/handshake", "id": "7"}]).to_string(),
        None,
    )
    .await;
    assert_eq!(anonymous.status, 401, "the Streaming API needs a session");
    assert_eq!(
        anonymous.json[0]["id"], "7",
        "answered in Bayeux: {}",
        anonymous.text
    );
    assert_eq!(anonymous.json[0]["error"], "403::Handshake denied");
    assert_eq!(
        anonymous.json[0]["ext"]["sfdc"]["failureReason"],
        "401::Authentication invalid"
    );
    assert_eq!(anonymous.json[0]["advice"]["reconnect"], "none");
    let garbage = raw("not a message".into(), Some(&org.token)).await;
    assert_eq!(garbage.status, 400);
    assert_eq!(garbage.json[0]["successful"], false);
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"channel": "/meta/handshake"}))
        .collect();
    let flood = raw(Value::Array(many).to_string(), Some(&org.token)).await;
    assert_eq!(flood.status, 400, "{}", flood.text);
    let r = c.subscribe("/data/contactChangeEvent", None).await;
    assert!(
        r["error"].as_str().unwrap().contains("does not exist"),
        "channel names are case-sensitive: {r}"
    );
    let r = c.subscribe("data/ContactChangeEvent", None).await;
    assert!(r["error"].as_str().unwrap().contains("leading '/'"), "{r}");
    let mut m =
        json!({"channel": "/meta/subscribe", "clientId": c.client, "subscription": CHANNEL});
    m["ext"] = json!({"replay": {CHANNEL: "12"}});
    let r = Cometd::send(&org, json!([m])).await;
    assert!(
        r[0]["error"]
            .as_str()
            .unwrap()
            .starts_with("400::The replayId"),
        "a replay id that is not a number: {r:?}"
    );
}

#[tokio::test]
async fn a_replayed_create_carries_the_values_it_wrote_not_later_ones() {
    let org = Org::start().await;
    let id = org.contact("First", "CC-S-1").await;
    org.patch(
        &format!("/sobjects/Contact/{id}"),
        json!({"LastName": "Second"}),
    )
    .await;
    let c = Cometd::handshake(&org).await;
    c.subscribe(CHANNEL, Some(-2)).await;
    let (events, _) = c.connect().await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[0]["data"]["payload"]["Name"]["LastName"], "First");
    assert_eq!(events[1]["data"]["payload"]["Name"]["LastName"], "Second");
    assert!(
        replay_id(&events[0]) >= 1,
        "replay ids start at 1 (clients ignore 0)"
    );
}

const EVENTS: &str = "/event/Appointment_Request__e";

#[tokio::test]
async fn published_platform_events_reach_their_channel_only_with_their_fields() {
    let org = Org::start().await;
    let c = Cometd::handshake(&org).await;
    assert_eq!(c.subscribe(EVENTS, None).await["successful"], true);
    let cdc = Cometd::handshake(&org).await;
    cdc.subscribe("/data/ChangeEvents", None).await;
    c.connect().await;
    cdc.connect().await;
    let r = org
        .post(
            "/sobjects/Appointment_Request__e",
            json!({"Patient_External_Id__c": "CC-9", "Reason__c": "follow-up"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["success"], true);
    assert_eq!(r.json["errors"][0]["statusCode"], "OPERATION_ENQUEUED");
    let uuid = r.json["errors"][0]["message"].as_str().unwrap().to_string();
    assert_eq!(uuid.len(), 36, "{uuid}");
    org.contact("Change", "CC-S-9").await;
    let (events, _) = c.connect().await;
    assert_eq!(events.len(), 1, "{events:?}");
    let payload = &events[0]["data"]["payload"];
    assert_eq!(events[0]["channel"], EVENTS);
    assert_eq!(payload["Patient_External_Id__c"], "CC-9");
    assert_eq!(events[0]["data"]["event"]["EventUuid"], uuid.as_str());
    assert!(
        payload.get("EventUuid").is_none(),
        "the uuid is in `event`, not the payload"
    );
    assert!(payload.get("Id").is_none(), "subscribers do not see the id");
    assert!(payload["CreatedById"].as_str().unwrap().starts_with("005"));
    let (changes, _) = cdc.connect().await;
    let objects: Vec<&Value> = changes
        .iter()
        .map(|e| &e["data"]["payload"]["ChangeEventHeader"]["entityName"])
        .collect();
    assert_eq!(
        objects,
        [&json!("Contact")],
        "CDC does not carry platform events"
    );
    let r = c.subscribe("/event/Nothing__e", None).await;
    assert!(
        r["error"].as_str().unwrap().contains("does not exist"),
        "{r}"
    );
}

#[tokio::test]
async fn publishing_past_the_hourly_allowance_fails_with_limit_exceeded() {
    let org = Org::start().await;
    let publish = || {
        org.post(
            "/sobjects/Appointment_Request__e",
            json!({"Reason__c": "x"}),
        )
    };
    assert_eq!(publish().await.status, 201);
    let (limit, used) = org.sf.handle().event_publish_usage();
    assert_eq!((limit, used), (100_000, 1));
    org.sf.handle().set_event_publish_limit(used);
    let r = publish().await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.error_code(), "LIMIT_EXCEEDED");
    org.sf.handle().set_event_publish_limit(limit);
    assert_eq!(publish().await.status, 201);
}

//! The Streaming API: CometD (Bayeux 1.0) over long polling at `/cometd/{version}`, as
//! jsforce's streaming client (faye) speaks it, delivering Change Data Capture events
//! (`/data/ChangeEvents`, `/data/{Object}ChangeEvent`) for every write to the org — the
//! workload's and the SUT's own — and published platform events (`/event/{Name}__e`), with
//! replay ids.
//!
//! Events come from the org's write log: the replay id of an event is its write's sequence
//! number, so retention is the write log's (its capacity). A subscription replays from `-1`
//! (new events only), `-2` (every retained one) or a replay id; one older than the oldest
//! retained event is refused as Salesforce refuses it, and the subscriber must resync.
//! Faults are controls on [`crate::SalesforceHandle`]: drop every client (they must
//! handshake again), and lose events (a gap in replay ids the subscriber can see).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Value};

use super::store::{WriteKind, WriteLog};
use super::SfState;

/// Clients kept at once (the oldest is forgotten past it, and must handshake again).
const MAX_CLIENTS: usize = 1000;
/// Events one `/meta/connect` answer carries at most.
const MAX_BATCH: usize = 1000;
/// How long `/meta/connect` waits for an event before answering empty (CometD's advice).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);

/// The routes.
pub(crate) fn routes() -> Router<Arc<SfState>> {
    Router::new()
        .route("/cometd/{version}", post(handle))
        .route("/cometd/{version}/{*rest}", post(handle))
}

/// One subscriber.
#[derive(Debug, Default)]
struct Client {
    /// Channels with the replay id delivered up to (events after it come next).
    subscriptions: Vec<(String, u64)>,
    /// Its first `/meta/connect` has been answered (that one is answered at once, as
    /// CometD servers do; later ones wait for events).
    connected: bool,
}

/// The Streaming API's clients and fault controls.
#[derive(Debug, Default)]
pub(crate) struct Streaming {
    clients: HashMap<String, Client>,
    order: VecDeque<String>,
    next: u64,
    /// Replay ids of events lost (never delivered) by a fault, as subscribers skipped them.
    pub(crate) lost: BTreeSet<u64>,
    /// Replay ids written while a fault lost events (inclusive; the end open while it lasts).
    dropped: VecDeque<(u64, Option<u64>)>,
    /// Events up to this replay id are past retention (a fault): replaying from one of
    /// them is refused.
    pub(crate) expired_through: u64,
}

impl Streaming {
    /// Lose the events written from now (`newest`: the last replay id written) while `on`.
    pub(crate) fn set_dropping(&mut self, on: bool, newest: u64) {
        let open = self.dropped.back().is_some_and(|(_, end)| end.is_none());
        match (on, open) {
            (true, false) => {
                self.dropped.push_back((newest + 1, None));
                if self.dropped.len() > MAX_CLIENTS {
                    self.dropped.pop_front();
                }
            }
            (false, true) => {
                if let Some(last) = self.dropped.back_mut() {
                    last.1 = Some(newest);
                }
            }
            _ => {}
        }
    }

    /// Forget every client: their next `/meta/connect` is told to handshake again.
    pub(crate) fn disconnect_all(&mut self) {
        self.clients.clear();
        self.order.clear();
    }
}

/// Whether the event with replay id `seq` was written while a fault lost events.
fn is_dropped(dropped: &VecDeque<(u64, Option<u64>)>, seq: u64) -> bool {
    dropped
        .iter()
        .any(|&(from, to)| seq >= from && to.is_none_or(|t| seq <= t))
}

fn reply(messages: Vec<Value>) -> Response {
    (
        StatusCode::OK,
        [(http::header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        Value::Array(messages).to_string(),
    )
        .into_response()
}

async fn handle(State(st): State<Arc<SfState>>, body: Bytes) -> Response {
    let messages: Vec<Value> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(a)) => a,
        Ok(one @ Value::Object(_)) => vec![one],
        _ => {
            return reply(vec![
                json!({"successful": false, "error": "400::Invalid message"}),
            ])
        }
    };
    // A batch's other messages first (a subscription sent with a connect counts for it),
    // then its connect, which may wait for events.
    let messages = &messages[..messages.len().min(100)];
    let channel = |m: &Value| {
        m.get("channel")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let mut out = vec![];
    for m in messages.iter().filter(|m| channel(m) != "/meta/connect") {
        let id = m.get("id").cloned().unwrap_or(Value::Null);
        out.push(match channel(m).as_str() {
            "/meta/handshake" => handshake(&st, &id),
            "/meta/subscribe" => subscribe(&st, m, &id),
            "/meta/unsubscribe" => unsubscribe(&st, m, &id),
            "/meta/disconnect" => disconnect(&st, m, &id),
            other => json!({"channel": other, "id": id, "successful": false, "error": format!("405::Unknown channel {other}")}),
        });
    }
    if let Some(m) = messages.iter().find(|m| channel(m) == "/meta/connect") {
        let id = m.get("id").cloned().unwrap_or(Value::Null);
        out.extend(connect(&st, m, &id).await);
    }
    reply(out)
}

fn handshake(st: &SfState, id: &Value) -> Value {
    let mut s = st.streaming.lock();
    s.next += 1;
    let client = format!("{:x}{:08x}", st.config.seed % 0xffff, s.next);
    s.clients.insert(client.clone(), Client::default());
    s.order.push_back(client.clone());
    while s.order.len() > MAX_CLIENTS {
        if let Some(old) = s.order.pop_front() {
            s.clients.remove(&old);
        }
    }
    json!({
        "channel": "/meta/handshake", "id": id, "version": "1.0", "minimumVersion": "1.0",
        "clientId": client, "supportedConnectionTypes": ["long-polling"], "successful": true,
        "ext": {"replay": true, "payload.format": true},
        "advice": {"reconnect": "retry", "interval": 0, "timeout": CONNECT_TIMEOUT.as_millis() as u64},
    })
}

fn unknown_client(channel: &str, id: &Value, client: &str) -> Value {
    json!({"channel": channel, "id": id, "clientId": client, "successful": false, "error": "403::Unknown client", "advice": {"reconnect": "handshake", "interval": 0}})
}

fn client_of(m: &Value) -> &str {
    m.get("clientId").and_then(Value::as_str).unwrap_or("")
}

/// What a channel carries.
#[derive(Debug, PartialEq)]
enum Channel {
    /// Change Data Capture: every object's changes (`None`), or one object's.
    Changes(Option<String>),
    /// One platform event's published messages (`/event/{Name}__e`).
    Events(String),
}

impl Channel {
    fn parse(channel: &str) -> Option<Channel> {
        if channel == "/data/ChangeEvents" {
            return Some(Channel::Changes(None));
        }
        if let Some(event) = channel.strip_prefix("/event/") {
            return event
                .ends_with("__e")
                .then(|| Channel::Events(event.to_string()));
        }
        let name = channel
            .strip_prefix("/data/")?
            .strip_suffix("ChangeEvent")?;
        let object = match name.strip_suffix("__") {
            Some(custom) => format!("{custom}__c"),
            None => name.to_string(),
        };
        Some(Channel::Changes(Some(object)))
    }

    /// The object it names, if one.
    fn object(&self) -> Option<&str> {
        match self {
            Channel::Changes(o) => o.as_deref(),
            Channel::Events(e) => Some(e),
        }
    }

    /// Whether a write is delivered on it.
    fn carries(&self, w: &WriteLog) -> bool {
        let event = w.object.ends_with("__e");
        match self {
            Channel::Changes(None) => !event,
            Channel::Changes(Some(o)) => !event && o.eq_ignore_ascii_case(&w.object),
            Channel::Events(e) => w.kind == WriteKind::Create && e.eq_ignore_ascii_case(&w.object),
        }
    }
}

fn subscribe(st: &SfState, m: &Value, id: &Value) -> Value {
    let client = client_of(m);
    let channel = m.get("subscription").and_then(Value::as_str).unwrap_or("");
    let fail = |error: String| json!({"channel": "/meta/subscribe", "id": id, "clientId": client, "subscription": channel, "successful": false, "error": error});
    let Some(parsed) = Channel::parse(channel) else {
        return fail(format!(
            "400::The channel {channel} is not a change event or platform event channel of this org"
        ));
    };
    if parsed
        .object()
        .is_some_and(|o| st.org.read().schema.object(o).is_none())
    {
        return fail(format!(
            "400::The channel {channel} you requested to subscribe to does not exist"
        ));
    }
    let replay = m
        .pointer("/ext/replay")
        .and_then(|r| r.get(channel))
        .and_then(Value::as_i64)
        .unwrap_or(-1);
    let (oldest, newest) = {
        let org = st.org.read();
        let w = org.data.writes();
        let expired = st.streaming.lock().expired_through;
        (
            w.first().map_or(0, |x| x.seq).max(expired + 1),
            w.last().map_or(0, |x| x.seq),
        )
    };
    let from = match replay {
        -1 => newest,
        -2 => oldest.saturating_sub(1),
        r if r >= 0 && (r as u64) + 1 >= oldest => r as u64,
        r => {
            return fail(format!("400::The replayId {{{r}}} you provided was invalid. Please provide a valid ID, -2 to replay all events, or -1 to replay only new events."))
        }
    };
    let mut s = st.streaming.lock();
    let Some(c) = s.clients.get_mut(client) else {
        return unknown_client("/meta/subscribe", id, client);
    };
    c.subscriptions.retain(|(ch, _)| ch != channel);
    c.subscriptions.push((channel.to_string(), from));
    json!({"channel": "/meta/subscribe", "id": id, "clientId": client, "subscription": channel, "successful": true})
}

fn unsubscribe(st: &SfState, m: &Value, id: &Value) -> Value {
    let client = client_of(m);
    let channel = m.get("subscription").and_then(Value::as_str).unwrap_or("");
    let mut s = st.streaming.lock();
    let Some(c) = s.clients.get_mut(client) else {
        return unknown_client("/meta/unsubscribe", id, client);
    };
    c.subscriptions.retain(|(ch, _)| ch != channel);
    json!({"channel": "/meta/unsubscribe", "id": id, "clientId": client, "subscription": channel, "successful": true})
}

fn disconnect(st: &SfState, m: &Value, id: &Value) -> Value {
    let client = client_of(m);
    let mut s = st.streaming.lock();
    s.clients.remove(client);
    s.order.retain(|c| c != client);
    json!({"channel": "/meta/disconnect", "id": id, "clientId": client, "successful": true})
}

/// `/meta/connect`: the events waiting for the client (waiting up to the timeout for one),
/// then the connect answer.
async fn connect(st: &SfState, m: &Value, id: &Value) -> Vec<Value> {
    let client = client_of(m).to_string();
    let deadline = tokio::time::Instant::now() + CONNECT_TIMEOUT;
    loop {
        let (events, first) = match take_events(st, &client) {
            Some(taken) => taken,
            None => return vec![unknown_client("/meta/connect", id, &client)],
        };
        let waited_out = first || tokio::time::Instant::now() >= deadline;
        if !events.is_empty() || waited_out || st.stop.is_stopped() {
            let mut out = events;
            out.push(json!({"channel": "/meta/connect", "id": id, "clientId": client, "successful": true, "advice": {"reconnect": "retry", "interval": 0, "timeout": CONNECT_TIMEOUT.as_millis() as u64}}));
            return out;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = st.stop.stopped() => {}
        }
    }
}

/// The client's next events on each of its channels (advancing its replay ids), and
/// whether this is its first connect; `None` for an unknown client.
fn take_events(st: &SfState, client: &str) -> Option<(Vec<Value>, bool)> {
    let org = st.org.read();
    let mut guard = st.streaming.lock();
    let s = &mut *guard;
    let mut lost = vec![];
    let c = s.clients.get_mut(client)?;
    let first = !std::mem::replace(&mut c.connected, true);
    let mut out = vec![];
    for (channel, after) in c.subscriptions.iter_mut() {
        let Some(parsed) = Channel::parse(channel) else {
            continue;
        };
        let writes = org.data.writes();
        let start = writes.partition_point(|w| w.seq <= *after);
        for w in writes[start..].iter().take(MAX_BATCH) {
            *after = w.seq;
            if !parsed.carries(w) {
                continue;
            }
            if !s.dropped.is_empty() && is_dropped(&s.dropped, w.seq) {
                lost.push(w.seq);
                continue;
            }
            out.push(match parsed {
                Channel::Events(_) => platform_event(&org, channel, w),
                Channel::Changes(_) => change_event(&org, channel, w),
            });
        }
    }
    s.lost.extend(lost);
    Some((out, first))
}

/// A published platform event as subscribers receive it: its fields, without its `Id`.
fn platform_event(org: &super::Org, channel: &str, w: &WriteLog) -> Value {
    let mut payload = serde_json::Map::new();
    let mut uuid = Value::Null;
    if let Some(r) = org.data.get(&w.object, &w.id) {
        for (k, v) in &r.fields {
            match k.as_str() {
                "Id" | "ReplayId" => {}
                "EventUuid" => {
                    uuid = v.clone();
                    payload.insert(k.clone(), v.clone());
                }
                _ => {
                    payload.insert(k.clone(), v.clone());
                }
            }
        }
    }
    let schema = format!("crashcart-{}", w.object);
    json!({"channel": channel, "data": {"schema": schema, "payload": payload, "event": {"replayId": w.seq, "EventUuid": uuid}}})
}

/// A Change Data Capture event for one write.
fn change_event(org: &super::Org, channel: &str, w: &WriteLog) -> Value {
    let change = match w.kind {
        WriteKind::Create => "CREATE",
        WriteKind::Update => "UPDATE",
        WriteKind::Delete => "DELETE",
    };
    let mut payload = serde_json::Map::new();
    if w.kind != WriteKind::Delete {
        if let Some(r) = org.data.get(&w.object, &w.id) {
            for f in &w.fields {
                payload.insert(f.clone(), r.get(f).clone());
            }
        }
    }
    let header = json!({
        "entityName": w.object, "recordIds": [w.id], "changeType": change, "changeOrigin": "",
        "transactionKey": format!("{:016x}", w.seq), "sequenceNumber": 1,
        "commitTimestamp": w.at_us / 1000, "commitNumber": w.seq, "commitUser": w.user,
        "changedFields": if w.kind == WriteKind::Update { json!(w.fields) } else { json!([]) },
    });
    payload.insert("ChangeEventHeader".into(), header);
    let schema = format!("crashcart-{}ChangeEvent", w.object);
    json!({"channel": channel, "data": {"schema": schema, "payload": payload, "event": {"replayId": w.seq}}})
}

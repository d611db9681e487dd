//! The Streaming API: CometD (Bayeux 1.0) over long polling at `/cometd/{version}`, as
//! jsforce's streaming client (faye) speaks it, delivering Change Data Capture events
//! (`/data/ChangeEvents`, `/data/{Object}ChangeEvent`) for every write to the org — the
//! workload's and the SUT's own — and published platform events (`/event/{Name}__e`), with
//! replay ids.
//!
//! Events come from the org's write log: the replay id of an event is its write's sequence
//! number plus one (replay ids start at 1), so retention is the write log's (its capacity).
//! A subscription replays from `-1` (new events only), `-2` (every retained one) or a replay
//! id; one older than the oldest retained event is refused as Salesforce refuses it, and the
//! subscriber must resync. A client belongs to the session user that made it, is forgotten
//! after 40 s without a request (as Salesforce forgets it), and a bad session is answered in
//! Bayeux messages (`401::Authentication invalid`, `reconnect: none`). Faults are controls on
//! [`crate::SalesforceHandle`]: drop every client (they must handshake again), lose events
//! (a gap in replay ids the subscriber can see), put replay ids past retention.
//!
//! Not served: PushTopics and generic streaming channels, the `BAYEUX_BROWSER` cookie check,
//! `changeOrigin` (always empty), Salesforce's 110 s connect timeout (10 s here, so runs end
//! promptly).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Map, Value};
use tokio::time::Instant;

use super::middleware::AuthCtx;
use super::schema::{FieldType, ObjectDef};
use super::store::{WriteKind, WriteLog};
use super::SfState;

/// Clients kept at once (the oldest is forgotten past it, and must handshake again).
const MAX_CLIENTS: usize = 1000;
/// Channels one client may subscribe to.
const MAX_SUBSCRIPTIONS: usize = 100;
/// Messages one request may carry.
const MAX_MESSAGES: usize = 100;
/// Events one `/meta/connect` answer carries at most, all channels together.
const MAX_BATCH: usize = 1000;
/// Writes one subscription scans per answer (events of other objects included).
const MAX_SCAN: usize = 10_000;
/// Loss windows (fault activations) and lost replay ids remembered.
const MAX_LOSS_WINDOWS: usize = 1000;
const MAX_LOST: usize = 100_000;
/// How long `/meta/connect` waits for an event before answering empty.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A client with no request for this long is forgotten (Salesforce: 40 s after an answer).
const IDLE_LIMIT: Duration = Duration::from_secs(40);
const POLL: Duration = Duration::from_millis(20);

/// The routes.
pub(crate) fn routes() -> Router<Arc<SfState>> {
    Router::new()
        .route("/cometd/{version}", post(handle))
        .route("/cometd/{version}/{*rest}", post(handle))
}

/// One subscriber.
#[derive(Debug)]
struct Client {
    /// The session user that made it: only that user's requests reach it.
    user_id: String,
    /// Channels with the replay id delivered up to (events after it come next).
    subscriptions: Vec<(String, u64)>,
    /// Its first `/meta/connect` has been answered (that one is answered at once, as
    /// CometD servers do; later ones wait for events).
    connected: bool,
    /// Its last request.
    last_seen: Instant,
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
    /// Forget every client: their next `/meta/connect` is told to handshake again.
    pub(crate) fn disconnect_all(&mut self) {
        self.clients.clear();
        self.order.clear();
    }

    /// Lose the events written from now (`newest`: the last replay id written) while `on`.
    pub(crate) fn set_dropping(&mut self, on: bool, newest: u64) {
        let open = self.dropped.back().is_some_and(|(_, end)| end.is_none());
        match (on, open) {
            (true, false) => {
                self.dropped.push_back((newest + 1, None));
                if self.dropped.len() > MAX_LOSS_WINDOWS {
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

    /// The caller's live client, refreshed; `None` for an unknown, idle or foreign one.
    fn client(&mut self, id: &str, user: &str) -> Option<&mut Client> {
        let now = Instant::now();
        let idle = self
            .clients
            .get(id)
            .is_some_and(|c| now.duration_since(c.last_seen) > IDLE_LIMIT);
        if idle {
            self.clients.remove(id);
            return None;
        }
        let c = self.clients.get_mut(id).filter(|c| c.user_id == user)?;
        c.last_seen = now;
        Some(c)
    }
}

/// The replay id of a write.
fn replay_id(w: &WriteLog) -> u64 {
    w.seq + 1
}

/// Whether the event with replay id `id` was written while a fault lost events.
fn is_dropped(dropped: &VecDeque<(u64, Option<u64>)>, id: u64) -> bool {
    dropped
        .iter()
        .any(|&(from, to)| id >= from && to.is_none_or(|t| id <= t))
}

fn reply(status: StatusCode, messages: Vec<Value>) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json;charset=UTF-8")],
        Value::Array(messages).to_string(),
    )
        .into_response()
}

fn channel_of(m: &Value) -> &str {
    m.get("channel").and_then(Value::as_str).unwrap_or("")
}

fn client_of(m: &Value) -> &str {
    m.get("clientId").and_then(Value::as_str).unwrap_or("")
}

fn id_of(m: &Value) -> Value {
    m.get("id").cloned().unwrap_or(Value::Null)
}

async fn handle(
    State(st): State<Arc<SfState>>,
    ctx: Option<Extension<AuthCtx>>,
    body: Bytes,
) -> Response {
    let messages: Vec<Value> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Array(a)) => a,
        Ok(one @ Value::Object(_)) => vec![one],
        _ => return refused("400::Invalid message"),
    };
    if messages.len() > MAX_MESSAGES {
        return refused(&format!(
            "400::Too many messages in one request ({}; at most {MAX_MESSAGES})",
            messages.len()
        ));
    }
    let Some(Extension(ctx)) = ctx else {
        let out = messages.iter().map(auth_failure).collect();
        return reply(StatusCode::UNAUTHORIZED, out);
    };
    // A batch's other messages first (a subscription sent with a connect counts for it),
    // then its connect, which may wait for events.
    let mut out = vec![];
    let mut connect_message = None;
    for m in &messages {
        let id = id_of(m);
        out.push(match channel_of(m) {
            "/meta/connect" if connect_message.is_none() => {
                connect_message = Some(m);
                continue;
            }
            "/meta/connect" => {
                json!({"channel": "/meta/connect", "id": id, "successful": false, "error": "400::Only one connect per request"})
            }
            "/meta/handshake" => handshake(&st, &ctx, &id),
            "/meta/subscribe" => subscribe(&st, &ctx, m, &id),
            "/meta/unsubscribe" => unsubscribe(&st, &ctx, m, &id),
            "/meta/disconnect" => disconnect(&st, &ctx, m, &id),
            other => json!({"channel": other, "id": id, "successful": false, "error": format!("405::Unknown channel {other}")}),
        });
    }
    if let Some(m) = connect_message {
        out.extend(connect(&st, &ctx, m, &id_of(m)).await);
    }
    reply(StatusCode::OK, out)
}

fn refused(error: &str) -> Response {
    reply(
        StatusCode::BAD_REQUEST,
        vec![json!({"successful": false, "error": error})],
    )
}

/// A message's answer when the session is invalid, as Salesforce gives it.
fn auth_failure(m: &Value) -> Value {
    let (channel, id) = (channel_of(m), id_of(m));
    if channel == "/meta/handshake" {
        return json!({"channel": channel, "id": id, "successful": false, "error": "403::Handshake denied",
            "ext": {"sfdc": {"failureReason": "401::Authentication invalid"}}, "advice": {"reconnect": "none"}});
    }
    json!({"channel": channel, "id": id, "clientId": client_of(m), "successful": false,
        "error": "401::Authentication invalid", "advice": {"reconnect": "none"}})
}

fn handshake(st: &SfState, ctx: &AuthCtx, id: &Value) -> Value {
    let mut s = st.streaming.lock();
    s.next += 1;
    let client = format!("{:x}{:08x}", st.config.seed % 0xffff, s.next);
    s.clients.insert(
        client.clone(),
        Client {
            user_id: ctx.user_id.clone(),
            subscriptions: vec![],
            connected: false,
            last_seen: Instant::now(),
        },
    );
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
    })
}

fn unknown_client(channel: &str, id: &Value) -> Value {
    json!({"channel": channel, "id": id, "successful": false, "error": "403::Unknown client", "advice": {"reconnect": "handshake", "interval": 0}})
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

    /// Whether the org has what the channel names (names are case-sensitive).
    fn exists(&self, st: &SfState) -> bool {
        let org = st.org.read();
        let named = |o: &str| org.schema.object(o).filter(|d| d.name == o);
        match self {
            Channel::Changes(None) => true,
            Channel::Changes(Some(o)) => named(o).is_some_and(|d| !d.platform_event()),
            Channel::Events(e) => named(e).is_some_and(ObjectDef::platform_event),
        }
    }

    /// Whether a write is delivered on it.
    fn carries(&self, w: &WriteLog) -> bool {
        let event = w.object.ends_with("__e");
        match self {
            Channel::Changes(None) => !event,
            Channel::Changes(Some(o)) => !event && *o == w.object,
            Channel::Events(e) => w.kind == WriteKind::Create && *e == w.object,
        }
    }
}

fn invalid_replay(replay: &Value) -> String {
    format!("400::The replayId {{{replay}}} you provided was invalid. Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.")
}

/// Where a subscription starts: the replay id events come after.
fn start_after(st: &SfState, replay: Option<&Value>) -> Result<u64, String> {
    let (oldest, newest) = {
        let org = st.org.read();
        let w = org.data.writes();
        let expired = st.streaming.lock().expired_through;
        (
            w.first().map_or(1, replay_id).max(expired + 1),
            w.last().map_or(0, replay_id),
        )
    };
    let Some(r) = replay else {
        return Ok(newest);
    };
    match r.as_i64() {
        Some(-1) => Ok(newest),
        Some(-2) => Ok(oldest - 1),
        Some(n) if n >= 0 && (n as u64) + 1 >= oldest => Ok(n as u64),
        _ => Err(invalid_replay(r)),
    }
}

fn subscribe(st: &SfState, ctx: &AuthCtx, m: &Value, id: &Value) -> Value {
    let client = client_of(m);
    let channel = m.get("subscription").and_then(Value::as_str).unwrap_or("");
    let fail = |error: String| json!({"channel": "/meta/subscribe", "id": id, "clientId": client, "subscription": channel, "successful": false, "error": error});
    if channel.is_empty() {
        return fail("400::Channel name not specified".into());
    }
    if !channel.starts_with('/') {
        return fail("400::Channel subscriptions must start with a leading '/'".into());
    }
    if !Channel::parse(channel).is_some_and(|c| c.exists(st)) {
        return fail(format!(
            "400::The channel you requested to subscribe to does not exist {{{channel}}}"
        ));
    }
    let replay = m.pointer("/ext/replay").and_then(|r| r.get(channel));
    let from = match start_after(st, replay) {
        Ok(from) => from,
        Err(e) => return fail(e),
    };
    let mut s = st.streaming.lock();
    let Some(c) = s.client(client, &ctx.user_id) else {
        return unknown_client("/meta/subscribe", id);
    };
    c.subscriptions.retain(|(ch, _)| ch != channel);
    if c.subscriptions.len() >= MAX_SUBSCRIPTIONS {
        return fail(format!(
            "400::A client can subscribe to at most {MAX_SUBSCRIPTIONS} channels"
        ));
    }
    c.subscriptions.push((channel.to_string(), from));
    json!({"channel": "/meta/subscribe", "id": id, "clientId": client, "subscription": channel, "successful": true})
}

fn unsubscribe(st: &SfState, ctx: &AuthCtx, m: &Value, id: &Value) -> Value {
    let client = client_of(m);
    let channel = m.get("subscription").and_then(Value::as_str).unwrap_or("");
    let mut s = st.streaming.lock();
    let Some(c) = s.client(client, &ctx.user_id) else {
        return unknown_client("/meta/unsubscribe", id);
    };
    c.subscriptions.retain(|(ch, _)| ch != channel);
    json!({"channel": "/meta/unsubscribe", "id": id, "clientId": client, "subscription": channel, "successful": true})
}

fn disconnect(st: &SfState, ctx: &AuthCtx, m: &Value, id: &Value) -> Value {
    let client = client_of(m);
    let mut s = st.streaming.lock();
    if s.client(client, &ctx.user_id).is_none() {
        return unknown_client("/meta/disconnect", id);
    }
    s.clients.remove(client);
    s.order.retain(|c| c != client);
    json!({"channel": "/meta/disconnect", "id": id, "clientId": client, "successful": true})
}

/// `/meta/connect`: the events waiting for the client (waiting up to the timeout for one),
/// then the connect answer; the first connect carries the advice, as Salesforce's does.
async fn connect(st: &SfState, ctx: &AuthCtx, m: &Value, id: &Value) -> Vec<Value> {
    let client = client_of(m).to_string();
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        let Some((events, first)) = take_events(st, ctx, &client) else {
            return vec![unknown_client("/meta/connect", id)];
        };
        if !events.is_empty() || first || Instant::now() >= deadline || st.stop.is_stopped() {
            let mut out = events;
            let mut answer = json!({"channel": "/meta/connect", "id": id, "clientId": client, "successful": true});
            if first {
                answer["advice"] = json!({"reconnect": "retry", "interval": 0, "timeout": CONNECT_TIMEOUT.as_millis() as u64});
            }
            out.push(answer);
            return out;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = st.stop.stopped() => {}
        }
    }
}

/// The client's next events on its channels (advancing its replay ids; at most
/// [`MAX_BATCH`] in all), and whether this is its first connect; `None` for an unknown
/// client.
fn take_events(st: &SfState, ctx: &AuthCtx, client: &str) -> Option<(Vec<Value>, bool)> {
    let org = st.org.read();
    let mut guard = st.streaming.lock();
    let s = &mut *guard;
    let mut lost = vec![];
    s.client(client, &ctx.user_id)?;
    let (Some(c), dropped) = (s.clients.get_mut(client), &s.dropped) else {
        return None;
    };
    let first = !std::mem::replace(&mut c.connected, true);
    let mut out = vec![];
    let writes = org.data.writes();
    for (channel, after) in c.subscriptions.iter_mut() {
        let Some(parsed) = Channel::parse(channel) else {
            continue;
        };
        let start = writes.partition_point(|w| replay_id(w) <= *after);
        for w in writes[start..].iter().take(MAX_SCAN) {
            if out.len() >= MAX_BATCH {
                break;
            }
            *after = replay_id(w);
            if !parsed.carries(w) {
                continue;
            }
            if is_dropped(dropped, replay_id(w)) {
                lost.push(replay_id(w));
                continue;
            }
            let def = org.schema.object(&w.object);
            out.push(match parsed {
                Channel::Events(_) => platform_event(def, channel, w),
                Channel::Changes(_) => change_event(def, channel, w),
            });
        }
    }
    for id in lost {
        if s.lost.len() < MAX_LOST {
            s.lost.insert(id);
        }
    }
    Some((out, first))
}

/// A write's values as streaming payloads carry them: datetimes in UTC with `Z`, the parts
/// of a compound field (`Name`) nested under it; `changed` names nested parts `Name.FirstName`.
fn payload_of(def: Option<&ObjectDef>, w: &WriteLog) -> (Map<String, Value>, Vec<String>) {
    let mut payload = Map::new();
    let mut changed = vec![];
    let parent = |f: &str| {
        def.and_then(|d| d.fields.iter().find(|c| c.compound.iter().any(|p| p == f)))
            .map(|c| c.name.clone())
    };
    for (k, v) in &w.values {
        let is_datetime = def
            .and_then(|d| d.field(k))
            .is_some_and(|f| f.ftype == FieldType::Datetime);
        let v = match v.as_str() {
            Some(t) if is_datetime => Value::String(t.replace("+0000", "Z")),
            _ => v.clone(),
        };
        if def.is_some_and(|d| d.field(k).is_some_and(|f| !f.compound.is_empty())) {
            continue;
        }
        match parent(k) {
            Some(c) => {
                changed.push(format!("{c}.{k}"));
                let slot = payload.entry(c).or_insert_with(|| json!({}));
                slot[k.as_str()] = v;
            }
            None => {
                changed.push(k.clone());
                payload.insert(k.clone(), v);
            }
        }
    }
    (payload, changed)
}

/// A published platform event as subscribers receive it: its fields, without `Id`,
/// `ReplayId` and `EventUuid` (those two are in `event`).
fn platform_event(def: Option<&ObjectDef>, channel: &str, w: &WriteLog) -> Value {
    let (mut payload, _) = payload_of(def, w);
    let uuid = payload.remove("EventUuid").unwrap_or(Value::Null);
    payload.remove("Id");
    payload.remove("ReplayId");
    let schema = format!("crashcart-{}", w.object);
    json!({"channel": channel, "data": {"schema": schema, "payload": payload, "event": {"replayId": replay_id(w), "EventUuid": uuid}}})
}

/// A Change Data Capture event for one write: a create carries the record's fields, an
/// update the fields it changed (with `LastModifiedDate`), a delete none.
fn change_event(def: Option<&ObjectDef>, channel: &str, w: &WriteLog) -> Value {
    let change = match w.kind {
        WriteKind::Create => "CREATE",
        WriteKind::Update => "UPDATE",
        WriteKind::Delete => "DELETE",
    };
    let (mut payload, changed) = payload_of(def, w);
    payload.remove("Id");
    let header = json!({
        "entityName": w.object, "recordIds": [w.id], "changeType": change, "changeOrigin": "",
        "transactionKey": format!("{:016x}", w.seq), "sequenceNumber": 1,
        "commitTimestamp": w.at_ms, "commitNumber": w.seq, "commitUser": w.user_id,
        "changedFields": if w.kind == WriteKind::Update { json!(changed) } else { json!([]) },
    });
    payload.insert("ChangeEventHeader".into(), header);
    let schema = format!("crashcart-{}ChangeEvent", w.object);
    json!({"channel": channel, "data": {"schema": schema, "payload": payload, "event": {"replayId": replay_id(w)}}})
}

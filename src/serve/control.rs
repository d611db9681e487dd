//! The live fault control API of `crashcart serve`, next to the Toxiproxy API, for game days:
//!
//! | route | what |
//! |---|---|
//! | `GET /faults` | the faults in force |
//! | `POST /faults` | add faults: a [`FaultSpec`] or a list, JSON or YAML; `at`/`for` count from now |
//! | `DELETE /faults/{id}` | remove one |
//! | `DELETE /faults` | remove all |
//! | `GET /faults/events` | the fault timeline (activations, removals, flaps) |
//!
//! Errors are `{"error": "…"}` with a 4xx status; bad specs name the key path.

// Handlers return `Result<_, Response>` as axum does (the error path only).
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Router;
use bytes::Bytes;
use http::StatusCode;
use parking_lot::Mutex;
use serde_json::json;

use crate::fault::schedule::ScheduleHandle;
use crate::fault::{FaultEngine, FaultSpec};

/// Faults added by hand that have a lifetime or a start time: their schedules live here.
#[derive(Clone)]
pub struct Control {
    engine: FaultEngine,
    schedules: Arc<Mutex<Vec<ScheduleHandle>>>,
    held: Arc<Mutex<BTreeMap<u64, crate::fault::FaultGuard>>>,
}

impl Control {
    /// Control over this engine.
    pub fn new(engine: FaultEngine) -> Self {
        Self {
            engine,
            schedules: Arc::default(),
            held: Arc::default(),
        }
    }

    /// Remove everything (shutdown).
    pub fn clear(&self) {
        self.schedules.lock().clear();
        self.held.lock().clear();
        self.engine.clear_all();
    }
}

fn bad(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error": message.into()}))).into_response()
}

/// Parse one spec or a list, as YAML (JSON is YAML), naming the key path of an error.
pub fn parse_specs(text: &str) -> Result<Vec<FaultSpec>, String> {
    if let Ok(list) = serde_saphyr::from_str::<Vec<FaultSpec>>(text) {
        return Ok(list);
    }
    serde_saphyr::from_str::<FaultSpec>(text)
        .map(|s| vec![s])
        .map_err(|e| e.to_string())
}

/// The control API's router.
pub fn router(control: Control) -> Router {
    Router::new()
        .route("/faults", get(list).post(add).delete(clear))
        .route("/faults/events", get(events))
        .route("/faults/{id}", delete(remove))
        .with_state(control)
}

async fn list(State(c): State<Control>) -> Response {
    axum::Json(c.engine.active()).into_response()
}

async fn events(State(c): State<Control>) -> Response {
    axum::Json(c.engine.events()).into_response()
}

async fn add(State(c): State<Control>, body: Bytes) -> Response {
    let Ok(text) = std::str::from_utf8(&body) else {
        return bad(
            StatusCode::BAD_REQUEST,
            "the body must be UTF-8 JSON or YAML",
        );
    };
    let specs = match parse_specs(text) {
        Ok(s) if s.is_empty() => return bad(StatusCode::BAD_REQUEST, "no fault given"),
        Ok(s) => s,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("invalid fault: {e}")),
    };
    for s in &specs {
        if let Err(e) = c.engine.check(s) {
            return bad(StatusCode::UNPROCESSABLE_ENTITY, e.to_string());
        }
    }
    // Faults to apply now and keep until removed by hand are applied at once (their ids come
    // back); the others go to a schedule starting now.
    let (now, later): (Vec<FaultSpec>, Vec<FaultSpec>) = specs.into_iter().partition(|s| {
        s.at.is_none() && s.duration.is_none() && s.repeat.is_none() && s.flap.is_none()
    });
    let mut ids = vec![];
    for s in now {
        match c.engine.apply(s) {
            Ok(g) => {
                ids.push(g.id());
                c.held.lock().insert(g.id(), g);
            }
            Err(e) => return bad(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        }
    }
    let scheduled = later.len();
    if !later.is_empty() {
        match c.engine.schedule(later, tokio::time::Instant::now()) {
            Ok(h) => {
                let mut held = c.schedules.lock();
                // Forget schedules that have run their course.
                held.retain(|s| !s.is_finished());
                held.push(h);
            }
            Err(e) => return bad(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
        }
    }
    (
        StatusCode::CREATED,
        axum::Json(json!({"applied": ids, "scheduled": scheduled})),
    )
        .into_response()
}

async fn remove(State(c): State<Control>, Path(id): Path<u64>) -> Response {
    // A fault held here is removed by dropping its guard; any other by id.
    let held = c.held.lock().remove(&id);
    if held.is_some() || c.engine.remove(id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        bad(
            StatusCode::NOT_FOUND,
            format!("no active fault with id {id}"),
        )
    }
}

async fn clear(State(c): State<Control>) -> Response {
    c.clear();
    StatusCode::NO_CONTENT.into_response()
}

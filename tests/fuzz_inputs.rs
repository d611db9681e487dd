//! Property tests over crashcart's own input parsers (issue 15): the scenario loader and
//! validator, and the Toxiproxy HTTP API. The mocks' parsers have theirs in
//! `mocks/tests/*_no_panic.rs`. Bounded case counts keep CI short; `PROPTEST_CASES=N`
//! searches longer. A failing case proptest finds is kept in `proptest-regressions/` and
//! replayed first.
//!
//! Properties:
//! - any text, and any mutation of a shipped scenario, is validated or refused without a
//!   panic; a scenario that validates has a plan of bounded size whatever its numbers;
//! - any sequence of Toxiproxy API calls is answered (no panic, no 5xx for loopback listen
//!   addresses on port 0), every error in Toxiproxy's `{"error", "status"}` shape with the
//!   HTTP status (405 for a wrong method, bodiless, as Toxiproxy's router answers), and the
//!   proxy list stays consistent; a reset leaves every proxy enabled and without toxics.

use std::path::Path;

use axum::body::Body;
use crashcart::proxy::ChaosProxy;
use crashcart::scenario::plan::plan;
use crashcart::scenario::validate::parse;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

// ---------- scenarios ----------

/// Scalars a hostile or careless scenario may hold where a number, duration or name goes.
fn scalar() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("0".to_string()),
        Just("-1".to_string()),
        Just("1e308".to_string()),
        Just("1e12".to_string()),
        Just("NaN".to_string()),
        Just(".inf".to_string()),
        Just("18446744073709551616".to_string()),
        Just("1ns".to_string()),
        Just("0s".to_string()),
        Just("99999999999h".to_string()),
        Just("-5s".to_string()),
        Just("~".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("\"\\u001b[2J\"".to_string()),
        Just("../../etc/passwd".to_string()),
        Just("/tmp/x".to_string()),
        Just("&a".to_string()),
        Just("*a".to_string()),
        Just("!!binary aGVsbG8=".to_string()),
        (0u64..100_000).prop_map(|n| n.to_string()),
        "[a-zA-Z_{}. ]{0,12}",
        "\\PC{0,40}",
    ]
}

/// The shipped scenarios, by file name and text.
fn shipped() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut out = vec![];
    for e in std::fs::read_dir(&dir).unwrap().flatten() {
        let p = e.path();
        if p.extension().is_some_and(|x| x == "yaml") {
            out.push((
                p.file_name().unwrap().to_string_lossy().into(),
                std::fs::read_to_string(&p).unwrap(),
            ));
        }
    }
    out.sort();
    out
}

/// One edit of a scenario's text.
#[derive(Clone, Debug)]
enum Edit {
    /// Replace the value after the `n`th `key:` with a scalar.
    Value(usize, String),
    /// Delete line `n`.
    Delete(usize),
    /// Repeat line `n`.
    Repeat(usize),
    /// Cut the text at byte `n` (on a character boundary).
    Truncate(usize),
    /// Nest a value `depth` levels deep.
    Nest(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), scalar()).prop_map(|(n, v)| Edit::Value(n, v)),
        1 => any::<usize>().prop_map(Edit::Delete),
        1 => any::<usize>().prop_map(Edit::Repeat),
        1 => any::<usize>().prop_map(Edit::Truncate),
        1 => (any::<usize>(), 1usize..400).prop_map(|(n, d)| Edit::Nest(n, d)),
    ]
}

fn apply(text: &str, e: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return text.to_string();
    }
    let with_value: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains(": ") && !lines[i].trim_start().starts_with('#'))
        .collect();
    match e {
        Edit::Value(n, _) | Edit::Nest(n, _) if !with_value.is_empty() => {
            let i = with_value[n % with_value.len()];
            let (key, _) = lines[i].split_once(": ").unwrap();
            let value = match e {
                Edit::Nest(_, depth) => format!("{}1{}", "[".repeat(*depth), "]".repeat(*depth)),
                _ => v_of(e),
            };
            lines[i] = format!("{key}: {value}");
        }
        Edit::Delete(n) => {
            let i = n % lines.len();
            lines.remove(i);
        }
        Edit::Repeat(n) => {
            let i = n % lines.len();
            let l = lines[i].clone();
            lines.insert(i, l);
        }
        Edit::Truncate(n) => {
            let joined = lines.join("\n");
            let mut cut = n % (joined.len() + 1);
            while !joined.is_char_boundary(cut) {
                cut -= 1;
            }
            return joined[..cut].to_string();
        }
        _ => {}
    }
    lines.join("\n")
}

fn v_of(e: &Edit) -> String {
    match e {
        Edit::Value(_, v) => v.clone(),
        _ => String::new(),
    }
}

/// Validate `text`; when it validates, plan it: the plan stays small whatever it says.
fn check_scenario(text: &str) -> Result<(), TestCaseError> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    if let Ok(s) = parse(text, &dir.join("fuzzed.yaml")) {
        let p = plan(&s, 1);
        // Per fault: 100 instances on and off, 100 flaps, a note or two; a few lines more.
        let faults = s.raw.faults.len().max(1);
        prop_assert!(
            p.events.len() <= 420 * faults + 20,
            "a plan of {} events for {} faults",
            p.events.len(),
            faults
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn any_text_is_validated_or_refused(text in "\\PC{0,400}") {
        check_scenario(&text)?;
    }

    #[test]
    fn mutated_shipped_scenarios_are_validated_or_refused(
        which in any::<usize>(),
        edits in prop::collection::vec(edit(), 1..6),
    ) {
        let all = shipped();
        let (_, text) = &all[which % all.len()];
        let mut t = text.clone();
        for e in &edits {
            t = apply(&t, e);
        }
        check_scenario(&t)?;
    }
}

// ---------- the Toxiproxy API ----------

/// One call to the API.
#[derive(Clone, Debug)]
struct ApiCall {
    method: &'static str,
    path: String,
    body: Option<Value>,
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["sf", "llm", "db"]).prop_map(str::to_string),
        1 => "[a-z%./ -]{0,12}",
    ]
}

fn listen() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => Just(json!("127.0.0.1:0")),
        1 => Just(json!("localhost:0")),
        1 => Just(json!("0.0.0.0:0")),
        1 => Just(json!("10.1.2.3:0")),
        1 => Just(json!("not an address")),
        1 => Just(json!(8474)),
        1 => Just(Value::Null),
    ]
}

fn toxic() -> impl Strategy<Value = Value> {
    let kind = prop::sample::select(vec![
        "latency",
        "bandwidth",
        "slow_close",
        "timeout",
        "reset_peer",
        "slicer",
        "limit_data",
        "down",
        "",
        "latency ",
    ]);
    let attr = prop_oneof![
        Just(json!(0)),
        Just(json!(-1)),
        Just(json!(1e300)),
        Just(json!(18446744073709551615u64)),
        Just(json!("100")),
        Just(Value::Null),
        (0u64..10_000).prop_map(|n| json!(n)),
    ];
    (
        kind,
        prop::sample::select(vec!["upstream", "downstream", "sideways"]),
        prop_oneof![Just(json!(1.0)), Just(json!(0.5)), Just(json!(2)), Just(json!(-1))],
        prop::collection::btree_map(
            prop::sample::select(vec!["latency", "jitter", "rate", "delay", "timeout", "bytes", "average_size", "size_variation"]),
            attr,
            0..3,
        ),
        name(),
    )
        .prop_map(|(kind, stream, toxicity, attributes, name)| {
            json!({"type": kind, "stream": stream, "toxicity": toxicity, "attributes": attributes, "name": name})
        })
}

fn proxy_body() -> impl Strategy<Value = Value> {
    (name(), listen(), any::<bool>(), any::<bool>()).prop_map(|(n, l, enabled, upstream)| {
        json!({"name": n, "listen": l, "upstream": if upstream { json!("127.0.0.1:9") } else { json!("") }, "enabled": enabled})
    })
}

fn call() -> impl Strategy<Value = ApiCall> {
    let arbitrary_json = prop_oneof![
        Just(json!(null)),
        Just(json!([])),
        Just(json!("x")),
        Just(json!({"enabled": "yes"})),
        Just(json!({"listen": 1, "upstream": []})),
    ];
    prop_oneof![
        3 => proxy_body().prop_map(|b| ApiCall { method: "POST", path: "/proxies".into(), body: Some(b) }),
        1 => prop::collection::vec(proxy_body(), 0..4).prop_map(|v| ApiCall { method: "POST", path: "/populate".into(), body: Some(json!(v)) }),
        2 => (name(), toxic()).prop_map(|(p, t)| ApiCall { method: "POST", path: format!("/proxies/{p}/toxics"), body: Some(t) }),
        1 => (name(), name(), toxic()).prop_map(|(p, t, b)| ApiCall { method: "POST", path: format!("/proxies/{p}/toxics/{t}"), body: Some(b) }),
        1 => (name(), name()).prop_map(|(p, t)| ApiCall { method: "DELETE", path: format!("/proxies/{p}/toxics/{t}"), body: None }),
        1 => (name(), any::<bool>()).prop_map(|(p, e)| ApiCall { method: "POST", path: format!("/proxies/{p}"), body: Some(json!({"enabled": e})) }),
        1 => name().prop_map(|p| ApiCall { method: "DELETE", path: format!("/proxies/{p}"), body: None }),
        1 => name().prop_map(|p| ApiCall { method: "GET", path: format!("/proxies/{p}/toxics"), body: None }),
        1 => Just(ApiCall { method: "POST", path: "/reset".into(), body: None }),
        1 => (prop::sample::select(vec!["/proxies", "/populate", "/proxies/sf"]), arbitrary_json)
            .prop_map(|(p, b)| ApiCall { method: "POST", path: p.into(), body: Some(b) }),
        1 => Just(ApiCall { method: "PUT", path: "/proxies".into(), body: None }),
    ]
}

/// Send one call; its status and JSON body (Null when the body is not JSON).
async fn send(app: &axum::Router, c: &ApiCall) -> (u16, Value) {
    let uri: http::Uri = match c.path.parse() {
        Ok(u) => u,
        // A name that cannot be in a path is a client-side error, never sent.
        Err(_) => return (400, json!({"error": "unsendable", "status": 400})),
    };
    let body = c.body.as_ref().map(|b| b.to_string()).unwrap_or_default();
    let req = http::Request::builder()
        .method(c.method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap();
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn run_calls(calls: &[ApiCall]) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let proxy = ChaosProxy::new(7, false);
        let app = crashcart::proxy::api::router(proxy.clone());
        for c in calls {
            let (status, body) = send(&app, c).await;
            prop_assert!(status < 500, "{c:?} answered {status}: {body}");
            // A known path with another method is 405 with no body, as gorilla/mux answers
            // it for Toxiproxy; every other error is Toxiproxy's JSON.
            if status >= 400 && status != 405 {
                prop_assert!(
                    body["error"].is_string() && body["status"] == json!(status),
                    "{c:?}: error not in Toxiproxy's shape: {status} {body}"
                );
            }
            // The list is an object by name, each entry naming itself.
            let (s, list) = send(
                &app,
                &ApiCall {
                    method: "GET",
                    path: "/proxies".into(),
                    body: None,
                },
            )
            .await;
            prop_assert_eq!(s, 200);
            let obj = list.as_object().cloned().unwrap_or_default();
            for (k, v) in &obj {
                prop_assert_eq!(v["name"].as_str(), Some(k.as_str()), "{}", list);
                prop_assert!(v["toxics"].is_array(), "{}", list);
            }
        }
        // A reset leaves every proxy enabled and no toxic anywhere.
        send(
            &app,
            &ApiCall {
                method: "POST",
                path: "/reset".into(),
                body: None,
            },
        )
        .await;
        let (_, list) = send(
            &app,
            &ApiCall {
                method: "GET",
                path: "/proxies".into(),
                body: None,
            },
        )
        .await;
        for v in list.as_object().cloned().unwrap_or_default().values() {
            prop_assert_eq!(&v["enabled"], &json!(true));
            prop_assert_eq!(v["toxics"].as_array().map(Vec::len), Some(0));
        }
        proxy.shutdown();
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn any_sequence_of_toxiproxy_calls_is_answered_in_its_shape(
        calls in prop::collection::vec(call(), 1..12),
    ) {
        run_calls(&calls)?;
    }
}

/// Found by the property above: a proxy disabled and enabled again (or reset) in one go
/// could not bind its port again, its old listener not yet dropped, and stayed disabled.
#[test]
fn a_disabled_proxy_is_enabled_again_at_once_on_its_port() {
    let calls = [
        ApiCall {
            method: "POST",
            path: "/proxies".into(),
            body: Some(json!({"name": "sf", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"})),
        },
        ApiCall {
            method: "POST",
            path: "/proxies/sf".into(),
            body: Some(json!({"enabled": false})),
        },
        ApiCall {
            method: "POST",
            path: "/proxies/sf".into(),
            body: Some(json!({"enabled": true})),
        },
    ];
    run_calls(&calls).unwrap();
}

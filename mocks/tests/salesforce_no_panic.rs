//! Property tests: random SOQL and random JSON bodies never panic the mock, and every failure
//! is a Salesforce-shaped error array (never an empty 500). Queries are also run on the parser
//! and evaluator directly (arbitrary strings, near-valid queries, deep nesting); write bodies
//! go to create, update, upsert, composite (structured subrequests with references) and
//! sObject collections.

use std::sync::OnceLock;

use axum::body::Body;
use axum::Router;
use crashcart_mocks::salesforce::soql::{eval, parser};
use crashcart_mocks::salesforce::SalesforceHandle;
use crashcart_mocks::MockSalesforce;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::{json, Value};
use tower::ServiceExt;

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: Router,
    token: String,
    _handle: SalesforceHandle,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let (app, handle) = rt.block_on(async {
            MockSalesforce::builder().daily_api_limit(u64::MAX).build_in_process("http://mock.test").unwrap()
        });
        let token = rt.block_on(async {
            let (status, body) = send(&app, "POST", "/services/oauth2/token", Some("application/x-www-form-urlencoded"), "", "grant_type=password&client_id=3MVG9crashcart.mock.consumer.key&client_secret=crashcart-consumer-secret&username=integration@crashcart.test&password=crashcart-Pa55".into()).await;
            assert_eq!(status, 200);
            body["access_token"].as_str().unwrap().to_string()
        });
        rt.block_on(async {
            handle.insert("Contact", serde_json::json!({"LastName": "Seed", "Patient_External_Id__c": "CC-SEED"})).unwrap();
        });
        Fixture { rt, app, token, _handle: handle }
    })
}

async fn send(
    app: &Router,
    method: &str,
    path: &str,
    ct: Option<&str>,
    token: &str,
    body: Vec<u8>,
) -> (u16, Value) {
    let mut req = http::Request::builder().method(method).uri(path);
    if let Some(ct) = ct {
        req = req.header("content-type", ct);
    }
    if !token.is_empty() {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let resp = app
        .clone()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json)
}

fn assert_salesforce_shaped(status: u16, body: &Value, what: &str) {
    assert!(status < 500, "{what}: status {status} {body}");
    if status >= 400 {
        let arr = body
            .as_array()
            .unwrap_or_else(|| panic!("{what}: error is not an array: {body}"));
        assert!(!arr.is_empty(), "{what}");
        assert!(
            arr[0]["errorCode"].is_string() && arr[0]["message"].is_string(),
            "{what}: {body}"
        );
    }
}

fn soql_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("SELECT".to_string()),
        Just("FROM".to_string()),
        Just("WHERE".to_string()),
        Just("AND".to_string()),
        Just("OR".to_string()),
        Just("NOT".to_string()),
        Just("IN".to_string()),
        Just("LIKE".to_string()),
        Just("ORDER BY".to_string()),
        Just("LIMIT".to_string()),
        Just("OFFSET".to_string()),
        Just("NULLS LAST".to_string()),
        Just("COUNT()".to_string()),
        Just("Contact".to_string()),
        Just("Event".to_string()),
        Just("Id".to_string()),
        Just("Who.Name".to_string()),
        Just("LastName".to_string()),
        Just("Birthdate".to_string()),
        Just("(".to_string()),
        Just(")".to_string()),
        Just(",".to_string()),
        Just("=".to_string()),
        Just("!=".to_string()),
        Just("<=".to_string()),
        Just("'x%'".to_string()),
        Just("null".to_string()),
        Just("TRUE".to_string()),
        Just("2024-01-01".to_string()),
        Just("2024-01-01T10:00:00Z".to_string()),
        Just("-3.5".to_string()),
        Just("42".to_string()),
        Just("'".to_string()),
        Just("\\".to_string()),
        Just(":bind".to_string()),
        Just(".".to_string()),
        "[a-zA-Z_]{1,8}",
        "\\PC{0,6}",
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "\\PC{0,20}".prop_map(Value::String),
        prop_oneof![
            Just("LastName"),
            Just("Birthdate"),
            Just("AccountId"),
            Just("Preferred_Language__c"),
            Just("Email")
        ]
        .prop_map(|s| Value::String(s.to_string())),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("LastName".to_string()),
                    Just("FirstName".to_string()),
                    Just("Birthdate".to_string()),
                    Just("AccountId".to_string()),
                    Just("Preferred_Language__c".to_string()),
                    Just("Email".to_string()),
                    Just("attributes".to_string()),
                    Just("records".to_string()),
                    Just("compositeRequest".to_string()),
                    Just("allOrNone".to_string()),
                    "[A-Za-z_]{1,10}"
                ],
                inner,
                0..5,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_soql_never_panics(parts in prop::collection::vec(soql_fragment(), 0..14)) {
        let f = fixture();
        let q = parts.join(" ");
        let path = format!("/services/data/v59.0/query?q={}", percent_encoding::utf8_percent_encode(&q, percent_encoding::NON_ALPHANUMERIC));
        let (status, body) = f.rt.block_on(send(&f.app, "GET", &path, None, &f.token, vec![]));
        assert_salesforce_shaped(status, &body, &q);
    }

    #[test]
    fn random_json_bodies_never_panic(body in json_value(), target in 0usize..6, raw in prop::collection::vec(any::<u8>(), 0..40)) {
        let f = fixture();
        let (method, path) = [
            ("POST", "/services/data/v59.0/sobjects/Contact"),
            ("PATCH", "/services/data/v59.0/sobjects/Contact/Patient_External_Id__c/CC-SEED"),
            ("POST", "/services/data/v59.0/composite"),
            ("POST", "/services/data/v59.0/composite/sobjects"),
            ("PATCH", "/services/data/v59.0/composite/sobjects"),
            ("POST", "/services/data/v59.0/sobjects/Event"),
        ][target];
        let bytes = serde_json::to_vec(&body).unwrap();
        let (status, resp) = f.rt.block_on(send(&f.app, method, path, Some("application/json"), &f.token, bytes));
        assert_salesforce_shaped(status, &resp, &format!("{method} {path} {body}"));
        let (status, resp) = f.rt.block_on(send(&f.app, method, path, Some("application/json"), &f.token, raw.clone()));
        assert_salesforce_shaped(status, &resp, &format!("{method} {path} raw {raw:?}"));
    }
}

/// The codes a query may fail with.
const QUERY_CODES: [&str; 5] = [
    "MALFORMED_QUERY",
    "INVALID_FIELD",
    "INVALID_TYPE",
    "INVALID_QUERY_FILTER_OPERATOR",
    "NUMBER_OUTSIDE_VALID_RANGE",
];

/// Parse and run a query directly; a failure must be a query error Salesforce has.
fn check_direct(q: &str) -> Result<(), TestCaseError> {
    let result = parser::parse(q).and_then(|parsed| {
        fixture()
            ._handle
            .with_org(|org| eval::execute(&parsed, &org.schema, &org.data, "59.0", false))
    });
    if let Err(e) = result {
        prop_assert!(QUERY_CODES.contains(&e.code), "{q:?}: {e:?}");
        let sf = e.into_sf_error(q);
        prop_assert_eq!(sf.status.as_u16(), 400);
        prop_assert!(!sf.message.is_empty());
    }
    Ok(())
}

/// Run a query through the router: 200, or a Salesforce error array (or, for a URI over
/// 16,384 bytes, Salesforce's Jetty 414 page, which is not JSON).
fn check_routed(q: &str) -> Result<(), TestCaseError> {
    let f = fixture();
    let path = format!(
        "/services/data/v59.0/query?q={}",
        percent_encoding::utf8_percent_encode(q, percent_encoding::NON_ALPHANUMERIC)
    );
    let (status, v) =
        f.rt.block_on(send(&f.app, "GET", &path, None, &f.token, vec![]));
    match status {
        414 => prop_assert!(path.len() > 16_384 && v.is_null(), "{q:?}"),
        200 => prop_assert!(v["totalSize"].is_u64(), "{q:?}: {v}"),
        400 => {
            let code = v[0]["errorCode"].as_str().unwrap_or("");
            prop_assert!(QUERY_CODES.contains(&code), "{q:?}: {v}");
            prop_assert!(v[0]["message"].is_string(), "{q:?}: {v}");
        }
        other => prop_assert!(false, "{q:?}: status {other}: {v}"),
    }
    Ok(())
}

fn field() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "Id",
        "LastName",
        "FirstName",
        "Birthdate",
        "Contact.LastName",
        "Owner.Name",
        "Account.Name",
        "Who.Name",
        "Preferred_Language__c",
        "Patient_External_Id__c",
        "Bogus__c",
        "a.b.c",
        "NOT",
    ])
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "'Hopper'",
            "'%o%'",
            "'_a\\\\%'",
            "null",
            "TRUE",
            "false",
            "42",
            "-1.5",
            "1e400",
            "2024-01-01",
            "2024-13-45",
            "2024-01-01T10:00:00Z",
            "2024-01-01T25:00:00+02:00",
            "'005000000000001'",
            "'003000000000001AAA'",
            ":bind",
            "'unterminated",
            "'\\q'",
        ])
        .prop_map(str::to_string),
        // Long and odd strings (a LIKE pattern of many wildcards included).
        ("[%_a-z\\\\' ]{0,300}").prop_map(|s| format!("'{}'", s.replace('\'', "\\'"))),
    ]
}

fn predicate() -> impl Strategy<Value = String> {
    let op = prop::sample::select(vec!["=", "!=", "<>", "<", "<=", ">", ">=", "LIKE"]);
    prop_oneof![
        (field(), op, literal()).prop_map(|(f, o, l)| format!("{f} {o} {l}")),
        (
            field(),
            any::<bool>(),
            prop::collection::vec(literal(), 0..4)
        )
            .prop_map(|(f, not, ls)| format!(
                "{f} {}IN ({})",
                if not { "NOT " } else { "" },
                ls.join(", ")
            )),
    ]
}

fn condition() -> impl Strategy<Value = String> {
    predicate().prop_recursive(5, 32, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|c| format!("NOT {c}")),
            inner.clone().prop_map(|c| format!("({c})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} AND {b}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("{a} OR {b}")),
        ]
    })
}

fn query() -> impl Strategy<Value = String> {
    let select = prop_oneof![
        Just("COUNT()".to_string()),
        prop::collection::vec(field(), 1..4).prop_map(|fs| fs.join(", ")),
    ];
    let object = prop::sample::select(vec!["Contact", "Event", "User", "Nothing__c", "contact"]);
    let order = prop::option::of((
        field(),
        prop::sample::select(vec![
            "",
            " ASC",
            " DESC",
            " DESC NULLS FIRST",
            " NULLS LAST",
        ]),
    ));
    let count = prop::option::of(prop_oneof![0u64..3000, Just(u64::MAX)]);
    (
        select,
        object,
        prop::option::of(condition()),
        order,
        count.clone(),
        count,
    )
        .prop_map(|(s, o, w, ord, limit, offset)| {
            let mut q = format!("SELECT {s} FROM {o}");
            if let Some(w) = w {
                q.push_str(&format!(" WHERE {w}"));
            }
            if let Some((f, dir)) = ord {
                q.push_str(&format!(" ORDER BY {f}{dir}"));
            }
            if let Some(n) = limit {
                q.push_str(&format!(" LIMIT {n}"));
            }
            if let Some(n) = offset {
                q.push_str(&format!(" OFFSET {n}"));
            }
            q
        })
}

/// A query, then one random edit: nothing, a cut, a duplicated stretch, or a stray token.
fn near_valid_query() -> impl Strategy<Value = String> {
    (
        query(),
        0usize..4,
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        prop::sample::select(vec![
            "(", ")", "'", ",", ".", "NOT", "AND", "\n", "\\", "é", "\u{0}",
        ]),
    )
        .prop_map(|(q, edit, a, b, token)| {
            let chars: Vec<char> = q.chars().collect();
            let (i, j) = {
                let (x, y) = (a.index(chars.len() + 1), b.index(chars.len() + 1));
                (x.min(y), x.max(y))
            };
            let s = |r: std::ops::Range<usize>| chars[r].iter().collect::<String>();
            match edit {
                1 => format!("{}{}", s(0..i), s(j..chars.len())),
                2 => format!("{}{}", s(0..j), s(i..chars.len())),
                3 => format!("{}{token}{}", s(0..i), s(i..chars.len())),
                _ => q,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_strings_parse_or_fail_as_salesforce_does(q in "\\PC{0,300}") {
        check_direct(&q)?;
    }

    #[test]
    fn arbitrary_strings_with_soql_words_parse_or_fail_as_salesforce_does(
        words in prop::collection::vec(prop_oneof![
            prop::sample::select(vec!["SELECT", "FROM", "WHERE", "Id", "Contact", "(", ")", "NOT", "AND", "OR", "=", "'a'", ",", "LIMIT", "1", "COUNT", "SUM(Id)", "(SELECT Id FROM Events)", "GROUP", "BY", "HAVING", "TODAY", "LAST_N_DAYS", ":", "CreatedDate"]).prop_map(str::to_string),
            "\\PC{0,4}",
        ], 0..40)
    ) {
        check_direct(&words.join(" "))?;
    }

    /// SOSL: any `q` is a result or Salesforce's error, never a panic or a hang.
    #[test]
    fn searches_answer_as_salesforce_does(
        words in prop::collection::vec(prop_oneof![
            prop::sample::select(vec!["FIND", "{", "}", "hop*", "?a", "\"a b\"", "OR", "IN", "NAME", "FIELDS", "RETURNING", "Contact", "(", ")", "Id,", "LastName", "WHERE", "LastName = 'x'", "LIMIT", "2", ","]).prop_map(str::to_string),
            "\\PC{0,4}",
        ], 0..30)
    ) {
        let q = words.join(" ");
        let f = fixture();
        let path = format!(
            "/services/data/v59.0/search?q={}",
            percent_encoding::utf8_percent_encode(&q, percent_encoding::NON_ALPHANUMERIC)
        );
        let (status, v) = f.rt.block_on(send(&f.app, "GET", &path, None, &f.token, vec![]));
        match status {
            200 => prop_assert!(v["searchRecords"].is_array(), "{q:?}: {v}"),
            400 => {
                let code = v[0]["errorCode"].as_str().unwrap_or("");
                prop_assert!(code == "MALFORMED_SEARCH" || QUERY_CODES.contains(&code), "{q:?}: {v}");
            }
            other => prop_assert!(false, "{q:?}: status {other}: {v}"),
        }
    }

    #[test]
    fn near_valid_queries_answer_as_salesforce_does(q in near_valid_query()) {
        check_direct(&q)?;
        check_routed(&q)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Nesting up to the bound is served; past it, `MALFORMED_QUERY` names the nesting.
    #[test]
    fn nesting_is_served_up_to_the_bound_and_refused_past_it(
        layers in prop::collection::vec(any::<bool>(), 0..300)
    ) {
        let mut cond = "LastName = 'Hopper'".to_string();
        for paren in &layers {
            cond = if *paren { format!("({cond})") } else { format!("NOT {cond}") };
        }
        let q = format!("SELECT Id FROM Contact WHERE {cond}");
        let result = parser::parse(&q);
        if layers.len() <= parser::MAX_NESTING {
            prop_assert!(result.is_ok(), "{} levels: {result:?}", layers.len());
        } else {
            let e = result.unwrap_err();
            prop_assert_eq!(e.code, "MALFORMED_QUERY");
            prop_assert!(e.message.contains("nest"), "{}", e.message);
        }
        check_routed(&q)?;
    }
}

/// A JSON value for a write: any value, or a string Salesforce reads specially (dates, ids,
/// composite references).
fn write_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => json_value(),
        1 => prop::sample::select(vec![
            "2024-05-01", "2024-05-01T09:00:00Z", "003000000000001AAA", "@{r0.id}",
            "@{r1.records[0].Id}", "@{nope}", "@{", "English", "a@b.c",
        ])
        .prop_map(|s| Value::String(s.to_string())),
    ]
}

/// The id of the fixture's seed Contact.
fn seed_id() -> String {
    fixture()._handle.records("Contact")[0]["Id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Send a JSON body as the integration user.
fn call(method: &str, path: &str, body: &Value) -> (u16, Value) {
    let f = fixture();
    let bytes = serde_json::to_vec(body).unwrap();
    f.rt.block_on(send(
        &f.app,
        method,
        path,
        Some("application/json"),
        &f.token,
        bytes,
    ))
}

/// A Salesforce error array: `[{"message": …, "errorCode": …}, …]`.
fn check_error_array(body: &Value, what: &str) -> Result<(), TestCaseError> {
    let arr = body
        .as_array()
        .ok_or_else(|| TestCaseError::fail(format!("{what}: error is not an array: {body}")))?;
    prop_assert!(!arr.is_empty(), "{}", what);
    for e in arr {
        prop_assert!(
            e["errorCode"].is_string() && e["message"].is_string(),
            "{what}: {body}"
        );
    }
    Ok(())
}

fn check_answer(status: u16, body: &Value, what: &str) -> Result<(), TestCaseError> {
    prop_assert!(status < 500, "{what}: status {status} {body}");
    if status >= 400 {
        check_error_array(body, what)?;
    }
    Ok(())
}

/// A composite subrequest: real and broken methods, URLs and references, any body.
fn subrequest() -> impl Strategy<Value = Value> {
    let method = prop::sample::select(vec![
        "GET", "POST", "PATCH", "DELETE", "PUT", "get", "BREW", "",
    ]);
    let url = prop::sample::select(vec![
        "/services/data/v59.0/sobjects/Contact",
        "/services/data/v59.0/sobjects/Contact/@{r0.id}",
        "/services/data/v59.0/sobjects/Contact/@{r1.records[0].Id}?fields=LastName",
        "/services/data/v59.0/sobjects/Contact/Patient_External_Id__c/CC-P-@{r2.id}",
        "/services/data/v59.0/sobjects/Event",
        "/services/data/v59.0/query?q=SELECT+Id+FROM+Contact+LIMIT+2",
        "/services/data/v59.0/query?q=SELECT+Id+FROM",
        "/services/data/v59.0/composite",
        "/services/data/v59.0/composite/sobjects",
        "/services/data/v99.0/limits",
        "/services/data/vX/limits",
        "/nowhere",
        "@{missing.url}",
        "",
    ]);
    let reference = prop::sample::select(vec!["r0", "r1", "r2", "r0", "", "a.b", "@{r0}"]);
    (
        method,
        url,
        reference,
        prop::option::of(json_value()),
        any::<bool>(),
    )
        .prop_map(|(m, u, r, body, headers)| {
            let mut sub = json!({"method": m, "url": u, "referenceId": r});
            if let Some(b) = body {
                sub["body"] = b;
            }
            if headers {
                sub["httpHeaders"] =
                    json!({"If-Match": "\"x\"", "Content-Type": "text/plain", "bad header": "v"});
            }
            sub
        })
}

/// A collection record: a type (or none), an id (or junk), and any fields.
fn record() -> impl Strategy<Value = Value> {
    let typ = prop::sample::select(vec!["Contact", "Event", "Nothing__c", ""]);
    (typ, prop::option::of(write_value()), write_value()).prop_map(|(t, id, fields)| {
        let mut r = match fields {
            Value::Object(m) => Value::Object(m),
            other => json!({"LastName": other}),
        };
        if !t.is_empty() {
            r["attributes"] = json!({"type": t});
        }
        if let Some(id) = id {
            r["Id"] = id;
        }
        r
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn record_writes_answer_as_salesforce_does(body in write_value(), target in 0usize..5) {
        let seed = seed_id();
        let (method, path) = [
            ("POST", "/services/data/v59.0/sobjects/Contact".to_string()),
            ("PATCH", format!("/services/data/v59.0/sobjects/Contact/{seed}")),
            ("PATCH", "/services/data/v59.0/sobjects/Contact/Patient_External_Id__c/CC-SEED".to_string()),
            ("POST", "/services/data/v59.0/sobjects/Contact/Patient_External_Id__c/CC-NEW".to_string()),
            ("POST", "/services/data/v59.0/sobjects/Event".to_string()),
        ][target].clone();
        let (status, resp) = call(method, &path, &body);
        check_answer(status, &resp, &format!("{method} {path} {body}"))?;
    }

    #[test]
    fn composite_requests_answer_as_salesforce_does(
        subs in prop::collection::vec(subrequest(), 0..8),
        all_or_none in any::<bool>(),
    ) {
        let body = json!({"allOrNone": all_or_none, "compositeRequest": subs});
        let (status, resp) = call("POST", "/services/data/v59.0/composite", &body);
        let what = format!("composite {body}");
        check_answer(status, &resp, &what)?;
        if status == 200 {
            for part in resp["compositeResponse"].as_array().into_iter().flatten() {
                let code = part["httpStatusCode"].as_u64().unwrap_or(0);
                prop_assert!((200..500).contains(&code), "{what}: {part}");
                if code >= 400 {
                    check_error_array(&part["body"], &what)?;
                }
            }
        }
    }

    #[test]
    fn collections_answer_as_salesforce_does(
        records in prop::collection::vec(record(), 0..6),
        method in prop::sample::select(vec!["POST", "PATCH", "DELETE", "PUT"]),
        all_or_none in any::<bool>(),
        ids in prop::collection::vec(prop_oneof!["[0-9A-Za-z]{0,20}".prop_map(String::from), Just(seed_id())], 0..4),
    ) {
        let (path, body) = if method == "DELETE" {
            (format!("/services/data/v59.0/composite/sobjects?allOrNone={all_or_none}&ids={}", ids.join(",")), Value::Null)
        } else {
            ("/services/data/v59.0/composite/sobjects".to_string(), json!({"allOrNone": all_or_none, "records": records}))
        };
        let (status, resp) = call(method, &path, &body);
        let what = format!("{method} {path} {body}");
        check_answer(status, &resp, &what)?;
        if status == 200 {
            for r in resp.as_array().into_iter().flatten() {
                prop_assert!(r["success"].is_boolean(), "{what}: {r}");
            }
        }
    }
}

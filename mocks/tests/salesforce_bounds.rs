//! The mock Salesforce is safe on any input: deep and long SOQL, over-long URIs and headers,
//! and over-full composite and collection bodies get Salesforce's own answers, never a crash.

use axum::body::Body;
use axum::Router;
use crashcart_mocks::salesforce::soql::{eval, parser, Cond};
use crashcart_mocks::salesforce::SalesforceHandle;
use crashcart_mocks::MockSalesforce;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

/// A stack far below a default thread's (2 MiB): a query must not need more than this, so a
/// passing test shows the depth bound, not a generous stack.
const SMALL_STACK: usize = 256 * 1024;

/// The mock in-process, with a session.
struct Sf {
    app: Router,
    token: String,
    handle: SalesforceHandle,
}

/// One answer: status, content type, body bytes and the body as JSON (Null if not JSON).
struct Answer {
    status: u16,
    content_type: String,
    text: String,
    json: Value,
}

impl Answer {
    fn error_code(&self) -> &str {
        self.json[0]["errorCode"].as_str().unwrap_or_else(|| {
            panic!(
                "not a Salesforce error array: {} {}",
                self.status, self.text
            )
        })
    }
    fn message(&self) -> &str {
        self.json[0]["message"].as_str().unwrap_or("")
    }
}

impl Sf {
    async fn start() -> Self {
        let (app, handle) = MockSalesforce::builder()
            .daily_api_limit(u64::MAX)
            .build_in_process("http://mock.test")
            .unwrap();
        let mut sf = Self {
            app,
            token: String::new(),
            handle,
        };
        let body = "grant_type=password&client_id=3MVG9crashcart.mock.consumer.key&client_secret=crashcart-consumer-secret&username=integration@crashcart.test&password=crashcart-Pa55";
        let r = sf
            .send(
                "POST",
                "/services/oauth2/token",
                &[("content-type", "application/x-www-form-urlencoded")],
                body.into(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        sf.token = r.json["access_token"].as_str().unwrap().to_string();
        sf
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Answer {
        let mut req = http::Request::builder().method(method).uri(path);
        if !self.token.is_empty() {
            req = req.header("authorization", format!("Bearer {}", self.token));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            content_type,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    async fn query(&self, soql: &str) -> Answer {
        let q = percent_encoding::utf8_percent_encode(soql, percent_encoding::NON_ALPHANUMERIC);
        self.send(
            "GET",
            &format!("/services/data/v59.0/query?q={q}"),
            &[],
            vec![],
        )
        .await
    }

    /// `GET /limits` with an `x-padding` header of `n` bytes.
    async fn limits_with_padding(&self, n: usize) -> Answer {
        let pad = "b".repeat(n);
        self.send(
            "GET",
            "/services/data/v59.0/limits",
            &[("x-padding", &pad)],
            vec![],
        )
        .await
    }

    async fn post_json(&self, path: &str, body: &Value) -> Answer {
        self.send(
            "POST",
            path,
            &[("content-type", "application/json")],
            serde_json::to_vec(body).unwrap(),
        )
        .await
    }
}

/// Run `f` to completion on a fresh thread with a [`SMALL_STACK`], on its own runtime.
fn on_small_stack<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(f());
        })
        .unwrap()
        .join()
        .expect("the test thread finished without overflowing its stack");
}

fn nested(depth: usize) -> String {
    format!(
        "SELECT Id FROM Contact WHERE {}LastName = 'x'{}",
        "(".repeat(depth),
        ")".repeat(depth)
    )
}

#[test]
fn deeply_nested_queries_answer_malformed_query_on_a_small_stack() {
    on_small_stack(|| async {
        let sf = Sf::start().await;
        let at_bound = sf.query(&nested(parser::MAX_NESTING)).await;
        assert_eq!(at_bound.status, 200, "{}", at_bound.text);
        for (what, q) in [
            ("parentheses", nested(2000)),
            (
                "NOT",
                format!(
                    "SELECT Id FROM Contact WHERE {}LastName = 'x'",
                    "NOT ".repeat(2000)
                ),
            ),
            ("just past the bound", nested(parser::MAX_NESTING + 1)),
        ] {
            let r = sf.query(&q).await;
            assert_eq!(r.status, 400, "{what}: {}", r.text);
            assert_eq!(r.error_code(), "MALFORMED_QUERY", "{what}");
            assert!(r.message().contains("nest"), "{what}: {}", r.message());
        }
    });
}

#[test]
fn the_evaluator_bounds_the_depth_of_a_query_built_in_code() {
    on_small_stack(|| async {
        let sf = Sf::start().await;
        let mut q = parser::parse("SELECT Id FROM Contact WHERE LastName = 'x'").unwrap();
        let leaf = q.filter.take().unwrap();
        let deep = (0..=parser::MAX_NESTING).fold(leaf, |c, _| Cond::Not(Box::new(c)));
        q.filter = Some(deep);
        let err = sf
            .handle
            .with_org(|org| eval::execute(&q, &org.schema, &org.data, "59.0", false))
            .unwrap_err();
        assert_eq!(err.code, "MALFORMED_QUERY");
        assert!(err.message.contains("nest"), "{}", err.message);
    });
}

#[tokio::test]
async fn soql_longer_than_100000_characters_is_refused_as_salesforce_does() {
    let sf = Sf::start().await;
    // Through composite, so the query is not stopped by the URI limit first.
    let pad = " ".repeat(100_001 - "SELECT Id FROM Contact".len());
    let long = format!("SELECT Id FROM Contact{pad}");
    assert_eq!(long.chars().count(), 100_001);
    let just_fits = &long[..100_000];
    let url = |q: &str| {
        format!(
            "/services/data/v59.0/query?q={}",
            percent_encoding::utf8_percent_encode(q, percent_encoding::NON_ALPHANUMERIC)
        )
    };
    let body = json!({"compositeRequest": [
        {"method": "GET", "url": url(&long), "referenceId": "long"},
        {"method": "GET", "url": url(just_fits), "referenceId": "fits"},
    ]});
    let r = sf.post_json("/services/data/v59.0/composite", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let parts = &r.json["compositeResponse"];
    assert_eq!(parts[0]["httpStatusCode"], 400, "{}", parts[0]);
    assert_eq!(parts[0]["body"][0]["errorCode"], "MALFORMED_QUERY");
    assert_eq!(
        parts[0]["body"][0]["message"],
        "SOQL statements can not be longer than 100000 characters."
    );
    assert_eq!(parts[1]["httpStatusCode"], 200, "{}", parts[1]);
}

/// Jetty's answer to a request head it will not read, as Salesforce's front servers send it.
fn assert_jetty(r: &Answer, status: u16, reason: &str) {
    assert_eq!(r.status, status, "{}", &r.text[..r.text.len().min(300)]);
    assert_eq!(r.content_type, "text/html;charset=iso-8859-1");
    assert_eq!(
        r.text,
        format!("<h1>Bad Message {status}</h1><pre>reason: {reason}</pre>")
    );
}

#[tokio::test]
async fn uri_and_headers_over_16384_bytes_get_jettys_414_and_431() {
    let sf = Sf::start().await;
    let long_path = format!(
        "/services/data/v59.0/sobjects/Contact/{}",
        "a".repeat(16_400)
    );
    let r = sf.send("GET", &long_path, &[], vec![]).await;
    assert_jetty(&r, 414, "URI Too Long");
    let padded = sf.limits_with_padding(16_300).await;
    assert_jetty(&padded, 431, "Request Header Fields Too Large");
    let under = sf.limits_with_padding(15_000).await;
    assert_eq!(under.status, 200, "a head under the limit is served");
    let rec = sf.handle.history().snapshot();
    assert!(
        rec.iter().any(|r| r.status == 414) && rec.iter().any(|r| r.status == 431),
        "refused heads are in the history"
    );
}

#[tokio::test]
async fn collections_over_200_records_and_composites_over_25_subrequests_are_refused() {
    let sf = Sf::start().await;
    let records: Vec<Value> = (0..201)
        .map(|i| json!({"attributes": {"type": "Contact"}, "LastName": format!("L{i}")}))
        .collect();
    let ids: Vec<String> = (0..201).map(|i| format!("003000000000{i:03}")).collect();
    let subs: Vec<Value> = (0..26)
        .map(|i| json!({"method": "GET", "url": "/services/data/v59.0/limits", "referenceId": format!("r{i}")}))
        .collect();
    let cases = [
        (
            "POST",
            "/services/data/v59.0/composite/sobjects".to_string(),
            json!({"records": records}),
            "EXCEEDED_ID_LIMIT",
        ),
        (
            "DELETE",
            format!(
                "/services/data/v59.0/composite/sobjects?ids={}",
                ids.join(",")
            ),
            Value::Null,
            "EXCEEDED_ID_LIMIT",
        ),
        (
            "POST",
            "/services/data/v59.0/composite".to_string(),
            json!({"compositeRequest": subs}),
            "INVALID_FIELD",
        ),
    ];
    for (method, path, body, code) in cases {
        let body = if body.is_null() {
            vec![]
        } else {
            serde_json::to_vec(&body).unwrap()
        };
        let r = sf
            .send(method, &path, &[("content-type", "application/json")], body)
            .await;
        assert_eq!(r.status, 400, "{method} {}: {}", &path[..60], r.text);
        assert_eq!(r.error_code(), code);
        assert!(
            r.message().contains("200") || r.message().contains("25"),
            "{}",
            r.text
        );
    }
    let count = sf.query("SELECT COUNT() FROM Contact").await;
    assert_eq!(
        count.json["totalSize"], 0,
        "nothing of a refused call lands"
    );
}

#[tokio::test]
async fn composite_references_cannot_blow_a_subrequest_past_the_body_limit() {
    let sf = Sf::start().await;
    for i in 0..50 {
        sf.handle
            .insert(
                "Contact",
                json!({"LastName": format!("Padding{i:04}{}", "x".repeat(60))}),
            )
            .unwrap();
    }
    // Each `@{q}` expands to the whole query result (several KB); 20,000 of them would be
    // gigabytes of subrequest body.
    let bomb = "@{q}".repeat(20_000);
    let body = json!({"compositeRequest": [
        {"method": "GET", "url": "/services/data/v59.0/query?q=SELECT+Id,LastName+FROM+Contact", "referenceId": "q"},
        {"method": "POST", "url": "/services/data/v59.0/sobjects/Contact", "referenceId": "c", "body": {"LastName": bomb}},
    ]});
    let r = sf.post_json("/services/data/v59.0/composite", &body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let second = &r.json["compositeResponse"][1];
    assert_eq!(second["httpStatusCode"], 413, "{second}");
    assert_eq!(second["body"][0]["errorCode"], "REQUEST_ENTITY_TOO_LARGE");
}

/// Send raw bytes to a socket and read the answer until the server closes.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before it read everything: a failed write is expected.
    let _ = s.write_all(request).await;
    let mut out = vec![];
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("the server answers and closes the connection")
        .ok();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn heads_too_large_to_read_get_jettys_page_on_a_socket() {
    let sf = MockSalesforce::builder().start().await.unwrap();
    let cases = [
        // Longer than hyper reads a URI (65,534 bytes): refused by the server layer.
        (
            format!("GET /{} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(70_000)),
            414,
            "URI Too Long",
        ),
        // A head larger than the server's read buffer.
        (
            format!(
                "GET / HTTP/1.1\r\nhost: x\r\nx-pad: {}\r\n\r\n",
                "a".repeat(500_000)
            ),
            431,
            "Request Header Fields Too Large",
        ),
        // Over the documented limit but readable: refused by the middleware.
        (
            format!(
                "GET /services/data/v59.0/limits?{} HTTP/1.1\r\nhost: x\r\n\r\n",
                "a".repeat(20_000)
            ),
            414,
            "URI Too Long",
        ),
    ];
    for (request, status, reason) in cases {
        let answer = raw_exchange(sf.local_addr(), request.as_bytes()).await;
        let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with(&format!("http/1.1 {status} ")), "{head}");
        assert!(
            head.contains("content-type: text/html;charset=iso-8859-1"),
            "{head}"
        );
        assert_eq!(
            body,
            format!("<h1>Bad Message {status}</h1><pre>reason: {reason}</pre>")
        );
    }
    sf.shutdown().await;
}

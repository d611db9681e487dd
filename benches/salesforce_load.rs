//! Load bench of the mock Salesforce on loopback, against a bare-axum baseline in the same run.
//!
//! Measured (requests per second, closed loop, 32 concurrent keep-alive connections):
//! - `baseline_constant_json`: a bare axum handler returning a constant JSON body;
//! - `record_get`: `GET /services/data/v59.0/sobjects/Contact/{id}` (auth, quota, history, render);
//! - `soql_1000`: `SELECT … FROM Contact WHERE … ORDER BY …` over 1,000 records (returns 500).
//!
//! Run: `cargo bench --bench salesforce_load`. After criterion's report it prints the ratio
//! of record GET to baseline throughput (target: at least 50%).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use crashcart_mocks::MockSalesforce;
use criterion::{criterion_group, Criterion, Throughput};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

const CONCURRENCY: u64 = 32;

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>;

struct Targets {
    rt: tokio::runtime::Runtime,
    client: HttpClient,
    baseline: String,
    record: String,
    soql: String,
    token: String,
    _mock: MockSalesforce,
}

fn setup() -> Targets {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mock, baseline, record, soql, token) = rt.block_on(async {
        let app = axum::Router::new().route(
            "/constant",
            axum::routing::get(|| async {
                (
                    [(http::header::CONTENT_TYPE, "application/json;charset=UTF-8")],
                    r#"{"attributes":{"type":"Contact","url":"/services/data/v59.0/sobjects/Contact/003000000000001AAA"},"Id":"003000000000001AAA","LastName":"Synthetic"}"#,
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let baseline = format!("http://{}/constant", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

        let mut config = crashcart_mocks::salesforce::SalesforceConfig::default();
        config.daily_api_limit = u64::MAX;
        let mock = MockSalesforce::builder().config(config).start().await.unwrap();
        let h = mock.handle();
        let mut first = String::new();
        for i in 0..1000 {
            let lang = ["English", "Spanish", "German", "French"][i % 4];
            let id = h
                .insert(
                    "Contact",
                    serde_json::json!({"FirstName": format!("Patient{i}"), "LastName": format!("Synthetic{:04}", (i * 7919) % 1000), "Patient_External_Id__c": format!("CC-{i:05}"), "Preferred_Language__c": lang, "Birthdate": "1980-01-01"}),
                )
                .unwrap();
            if i == 0 {
                first = id;
            }
        }
        let http = reqwest::Client::new();
        let token: serde_json::Value = http
            .post(format!("{}/services/oauth2/token", mock.url()))
            .form(&[("grant_type", "password"), ("client_id", "3MVG9crashcart.mock.consumer.key"), ("client_secret", "crashcart-consumer-secret"), ("username", "integration@crashcart.test"), ("password", "crashcart-Pa55")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let record = format!("{}/services/data/v59.0/sobjects/Contact/{first}", mock.url());
        let q = "SELECT Id, FirstName, LastName, Patient_External_Id__c FROM Contact WHERE Preferred_Language__c IN ('English', 'Spanish') ORDER BY LastName";
        let soql = reqwest::Url::parse_with_params(&format!("{}/services/data/v59.0/query", mock.url()), &[("q", q)]).unwrap().to_string();
        (mock, baseline, record, soql, token["access_token"].as_str().unwrap().to_string())
    });
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(CONCURRENCY as usize)
        .build_http();
    Targets {
        rt,
        client,
        baseline,
        record,
        soql,
        token,
        _mock: mock,
    }
}

/// Send `total` GETs over `CONCURRENCY` workers; returns the elapsed wall time.
async fn drive(client: &HttpClient, url: &str, token: &str, total: u64) -> Duration {
    let left = Arc::new(AtomicU64::new(total));
    let start = Instant::now();
    let mut tasks = vec![];
    for _ in 0..CONCURRENCY.min(total.max(1)) {
        let client = client.clone();
        let left = left.clone();
        let uri: http::Uri = url.parse().unwrap();
        let auth = format!("Bearer {token}");
        tasks.push(tokio::spawn(async move {
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                let req = http::Request::get(uri.clone())
                    .header("authorization", &auth)
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let resp = client.request(req).await.expect("request");
                assert!(resp.status().is_success(), "{}", resp.status());
                resp.into_body().collect().await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let t = setup();
    let mut g = c.benchmark_group("salesforce_load");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    for (name, url) in [
        ("baseline_constant_json", &t.baseline),
        ("record_get", &t.record),
        ("soql_1000", &t.soql),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| t.rt.block_on(drive(&t.client, url, &t.token, iters)))
        });
    }
    g.finish();

    // The ratio the issue's target is stated in, measured back to back in this run.
    let rps = |url: &str| {
        let n = 20_000;
        let d = t.rt.block_on(drive(&t.client, url, &t.token, n));
        n as f64 / d.as_secs_f64()
    };
    let _ = rps(&t.baseline);
    let base = rps(&t.baseline);
    let rec = rps(&t.record);
    let soql_n = 400;
    let soql = soql_n as f64
        / t.rt
            .block_on(drive(&t.client, &t.soql, &t.token, soql_n))
            .as_secs_f64();
    println!("\nratio pass (20,000 requests each, {CONCURRENCY} connections):");
    println!("  baseline constant JSON : {base:>10.0} req/s");
    println!(
        "  record GET             : {rec:>10.0} req/s  ({:.0}% of baseline; target >= 50%)",
        100.0 * rec / base
    );
    println!("  SOQL over 1,000 records: {soql:>10.0} req/s  (500 rows per response)");
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

//! Load bench of the mock Salesforce on loopback, against a bare-axum baseline in the same run.
//!
//! Measured (requests per second, closed loop, 32 concurrent keep-alive connections):
//! - `baseline_constant_json`: a bare axum handler returning a constant JSON body;
//! - `record_get`: `GET /services/data/v59.0/sobjects/Contact/{id}` (auth, quota, history, render);
//! - `soql_1000`: `SELECT … FROM Contact WHERE … ORDER BY …` over 1,000 records (returns 500).
//!
//! Run: `cargo bench --bench salesforce_load`. After criterion's report it prints the ratio
//! of record GET to baseline throughput (target: at least 50%).

mod support;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use crashcart_mocks::MockSalesforce;
use criterion::{criterion_group, Criterion, Throughput};
use support::{client, drive, runtime, start_baseline, Target};

const CONCURRENCY: u64 = 32;

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let (_mock, baseline, record, soql) = rt.block_on(async {
        let baseline = Target::get(format!("{}/constant", start_baseline().await), None);
        let mock = MockSalesforce::builder().daily_api_limit(u64::MAX).start().await.unwrap();
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
        let token = support::salesforce_token(&mock.url()).await;
        let record = Target::get(format!("{}/services/data/v59.0/sobjects/Contact/{first}", mock.url()), Some(&token));
        let q = "SELECT Id, FirstName, LastName, Patient_External_Id__c FROM Contact WHERE Preferred_Language__c IN ('English', 'Spanish') ORDER BY LastName";
        let soql_url = reqwest::Url::parse_with_params(&format!("{}/services/data/v59.0/query", mock.url()), &[("q", q)]).unwrap();
        let soql = Target::get(soql_url.to_string(), Some(&token));
        (mock, baseline, record, soql)
    });
    let http = client(CONCURRENCY as usize);
    let mut g = c.benchmark_group("salesforce_load");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    for (name, target) in [
        ("baseline_constant_json", &baseline),
        ("record_get", &record),
        ("soql_1000", &soql),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(drive(&http, target, iters, CONCURRENCY))
                    .elapsed
            })
        });
    }
    g.finish();

    // The ratio the target is stated in: baseline and mock alternate over several
    // rounds of the same run, and the median of the per-round ratios is reported, so a burst of
    // noise on the machine does not decide the figure.
    let rps = |target: &Target, n: u64| {
        n as f64
            / rt.block_on(drive(&http, target, n, CONCURRENCY))
                .elapsed
                .as_secs_f64()
    };
    let _ = rps(&baseline, 5_000);
    let rounds: Vec<(f64, f64)> = (0..7)
        .map(|_| (rps(&baseline, 10_000), rps(&record, 10_000)))
        .collect();
    let soql = rps(&soql, 400);
    let (base, rec, ratio) = support::medians(&rounds);
    println!(
        "\nratio pass (7 rounds of 10,000 requests each, {CONCURRENCY} connections; medians):"
    );
    println!("  baseline constant JSON : {base:>10.0} req/s");
    println!(
        "  record GET             : {rec:>10.0} req/s  ({:.0}% of baseline; target >= 50%)",
        100.0 * ratio
    );
    println!("  SOQL over 1,000 records: {soql:>10.0} req/s  (500 rows per response)");
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

//! Load bench of the TCP chaos proxy, against direct requests to the same upstream in the
//! same run, plus the accuracy of a latency toxic and of scheduled fault activation.
//!
//! Measured:
//! - `direct` vs `proxied`: requests per second and p50/p99 latency, closed loop over 32
//!   keep-alive connections to a bare-axum upstream, no toxic (target: proxied ≥ 70% of
//!   direct throughput); the same against the mock Salesforce; and, as the ceiling, a
//!   minimal proxy that only does `tokio::io::copy_bidirectional`;
//! - a 100 ms downstream latency toxic: the distribution of (proxied latency − median direct
//!   latency − 100 ms) over sequential requests (target: p99 error ≤ 3 ms);
//! - fault activation precision: 100 faults scheduled 20 ms apart on the wall clock, the
//!   error between planned and actual activation (the engine's own event times).
//!
//! Run: `cargo bench --bench proxy_load`; after criterion's report it prints the figures.

mod support;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use crashcart::fault::{Dependencies, FaultEngine, FaultKind, FaultSpec, Target};
use crashcart::proxy::ChaosProxy;
use crashcart_mocks::MockSalesforce;
use criterion::{criterion_group, Criterion, Throughput};
use support::{client, drive, minimal_proxy, runtime, start_baseline, Target as Load};

const CONCURRENCY: u64 = 32;

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let (proxy, direct, proxied, _sf, sf_direct, sf_proxied, minimal) = rt.block_on(async {
        let base = start_baseline().await;
        let upstream = base.trim_start_matches("http://").to_string();
        let minimal = minimal_proxy(upstream.clone()).await;
        let proxy = ChaosProxy::new(1, false);
        let info = proxy
            .create("bench", "127.0.0.1:0", &upstream, true)
            .await
            .unwrap();
        // The upstream crashcart really proxies: the mock Salesforce (record GET).
        let sf = MockSalesforce::builder()
            .daily_api_limit(u64::MAX)
            .start()
            .await
            .unwrap();
        let id = sf
            .handle()
            .insert("Contact", serde_json::json!({"LastName": "Synthetic"}))
            .unwrap();
        let token = support::salesforce_token(&sf.url()).await;
        let sf_info = proxy
            .create(
                "salesforce",
                "127.0.0.1:0",
                &sf.local_addr().to_string(),
                true,
            )
            .await
            .unwrap();
        let path = format!("/services/data/v59.0/sobjects/Contact/{id}");
        (
            proxy,
            Load::get(format!("{base}/constant"), None),
            Load::get(format!("http://{}/constant", info.listen), None),
            sf,
            Load::get(format!("{}{path}", url_of(&sf_info.upstream)), Some(&token)),
            Load::get(format!("http://{}{path}", sf_info.listen), Some(&token)),
            Load::get(format!("http://{minimal}/constant"), None),
        )
    });
    let http = client(CONCURRENCY as usize);
    let mut g = c.benchmark_group("proxy_load");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("direct", |b| {
        b.iter_custom(|n| rt.block_on(drive(&http, &direct, n, CONCURRENCY)).elapsed)
    });
    g.bench_function("proxied", |b| {
        b.iter_custom(|n| rt.block_on(drive(&http, &proxied, n, CONCURRENCY)).elapsed)
    });
    g.finish();

    // Throughput and latency, direct and proxied alternating over rounds; medians reported.
    let run = |t: &Load| rt.block_on(drive(&http, t, 10_000, CONCURRENCY));
    let _ = run(&direct);
    let mut rounds = vec![];
    let mut ceiling = vec![];
    let (mut d_lat, mut p_lat) = (None, None);
    for _ in 0..7 {
        let d = run(&direct);
        let p = run(&proxied);
        let m = run(&minimal);
        let rate = |x: &support::Drive| 10_000.0 / x.elapsed.as_secs_f64();
        rounds.push((rate(&d), rate(&p)));
        ceiling.push((rate(&d), rate(&m)));
        d_lat = Some(d.latency_us);
        p_lat = Some(p.latency_us);
    }
    let (d_rps, p_rps, ratio) = support::medians(&rounds);
    let (_, m_rps, m_ratio) = support::medians(&ceiling);
    let (d_lat, p_lat) = (d_lat.unwrap(), p_lat.unwrap());
    println!("\nproxy throughput, bare-axum upstream (7 rounds of 10,000 requests, {CONCURRENCY} connections; medians):");
    println!(
        "  direct  : {d_rps:>9.0} req/s  p50 {:>5} µs  p99 {:>5} µs",
        d_lat.value_at_quantile(0.5),
        d_lat.value_at_quantile(0.99)
    );
    println!("  proxied : {p_rps:>9.0} req/s  p50 {:>5} µs  p99 {:>5} µs  ({:.0}% of direct; target >= 70%)", p_lat.value_at_quantile(0.5), p_lat.value_at_quantile(0.99), 100.0 * ratio);
    println!("  minimal : {m_rps:>9.0} req/s  ({:.0}% of direct: tokio::io::copy_bidirectional and nothing else, the ceiling of a proxy hop here)", 100.0 * m_ratio);
    let mut rounds = vec![];
    for _ in 0..7 {
        let d = run(&sf_direct);
        let p = run(&sf_proxied);
        rounds.push((
            10_000.0 / d.elapsed.as_secs_f64(),
            10_000.0 / p.elapsed.as_secs_f64(),
        ));
    }
    let (d_rps, p_rps, ratio) = support::medians(&rounds);
    println!("proxy throughput, mock Salesforce record GET upstream (same method):");
    println!("  direct  : {d_rps:>9.0} req/s");
    println!(
        "  proxied : {p_rps:>9.0} req/s  ({:.0}% of direct; target >= 70%)",
        100.0 * ratio
    );

    // A 100 ms latency toxic: how close to 100 ms is the added latency?
    let one = client(1);
    let direct_median = rt
        .block_on(drive(&one, &direct, 300, 1))
        .latency_us
        .value_at_quantile(0.5) as i64;
    proxy
        .add_toxic(
            "bench",
            &serde_json::json!({"type": "latency", "attributes": {"latency": 100}}),
        )
        .unwrap();
    let with_toxic = rt.block_on(drive(&one, &proxied, 200, 1)).latency_us;
    proxy.reset();
    let mut err = hdrhistogram::Histogram::<u64>::new(3).unwrap();
    for v in with_toxic.iter_recorded() {
        let e = (v.value_iterated_to() as i64 - direct_median - 100_000).unsigned_abs();
        let _ = err.record_n(e, v.count_at_value());
    }
    println!("\n100 ms latency toxic (200 sequential requests; error = latency − direct median − 100 ms):");
    println!(
        "  observed latency p50 {:.1} ms  p99 {:.1} ms",
        with_toxic.value_at_quantile(0.5) as f64 / 1000.0,
        with_toxic.value_at_quantile(0.99) as f64 / 1000.0
    );
    println!(
        "  |error|          p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms (target p99 <= 3 ms)",
        err.value_at_quantile(0.5) as f64 / 1000.0,
        err.value_at_quantile(0.99) as f64 / 1000.0,
        err.max() as f64 / 1000.0
    );

    // Scheduled activation on the wall clock: planned vs the engine's recorded time.
    let (errors, n) = rt.block_on(async {
        let sf = MockSalesforce::builder().start().await.unwrap();
        let engine = FaultEngine::new(
            1,
            Dependencies {
                salesforce: Some(sf.handle().clone()),
                ..Dependencies::default()
            },
        );
        let specs: Vec<FaultSpec> = (0..100u64)
            .map(|i| {
                let mut s = FaultSpec::now(FaultKind::HttpError {
                    status: 503,
                    error_code: None,
                    message: None,
                    retry_after: None,
                    retry_after_ms: None,
                })
                .target(Target {
                    route: Some(format!("/bench/{i}")),
                    ..Target::default()
                })
                .named(format!("f{i}"));
                s.at = Some(Duration::from_millis(20 * (i + 1)));
                s.duration = Some(Duration::from_millis(10));
                s
            })
            .collect();
        let clock = engine.clock();
        let origin = tokio::time::Instant::now();
        let origin_us = clock.elapsed().as_micros() as i64;
        let handle = engine.schedule(specs, origin).unwrap();
        tokio::time::sleep(Duration::from_millis(20 * 101 + 50)).await;
        drop(handle);
        let mut hist = hdrhistogram::Histogram::<u64>::new(3).unwrap();
        let mut n = 0;
        for e in engine.events() {
            let i: i64 = e.fault.trim_start_matches('f').parse().unwrap();
            let planned = origin_us
                + match e.event.as_str() {
                    "activated" => 20_000 * (i + 1),
                    "removed" => 20_000 * (i + 1) + 10_000,
                    _ => continue,
                };
            let _ = hist.record((e.at_us as i64 - planned).unsigned_abs());
            n += 1;
        }
        sf.shutdown().await;
        (hist, n)
    });
    println!("\nfault activation and removal on the wall clock ({n} events, planned vs actual):");
    println!(
        "  |error| p50 {} µs  p99 {} µs  max {} µs",
        errors.value_at_quantile(0.5),
        errors.value_at_quantile(0.99),
        errors.max()
    );
}

fn url_of(addr: &str) -> String {
    format!("http://{addr}")
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

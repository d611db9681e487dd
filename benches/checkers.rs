//! Checker throughput over a synthetic timeline of 1,000,000 events, and the memory the
//! timeline takes per event.
//!
//! The history mixes what a real run records: mock requests (successes, 401s with token
//! refreshes, 503 bursts with retries, 429s), fault events, and workload invokes and
//! completions. Every SLO kind is checked (consistency against an empty final state).
//!
//! Targets (issue 5): all checkers together under 2 s; timeline memory under 300 bytes per
//! event. Memory is measured with a counting allocator around building the timeline.
//!
//! Run: `cargo bench --bench checkers`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use crashcart::checks::{check_all, FinalState};
use crashcart::fault::{DependencyName, FaultEvent};
use crashcart::scenario::domain::{Operation, Slo};
use crashcart::scenario::raw::{RawEffect, RawOperation, RawSlo};
use crashcart::timeline::{Call, Event, Interner, OpEvent, Phase, Timeline};
use crashcart_mocks::{Dependency, RequestRecord};
use criterion::{criterion_group, Criterion};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator, only counting bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const EVENTS: u64 = 1_000_000;

#[allow(clippy::too_many_arguments)] // a fixture builder
fn request(
    seq: u64,
    at_us: u64,
    dep: Dependency,
    op: &str,
    path: String,
    status: u16,
    code: Option<&str>,
    token: u64,
) -> RequestRecord {
    RequestRecord {
        seq,
        dependency: dep,
        at_us,
        latency_us: 2_000,
        method: if op == "query" {
            "GET".into()
        } else {
            "POST".into()
        },
        path,
        operation: op.into(),
        sobject: None,
        record: None,
        status,
        error_code: code.map(str::to_string),
        client_id: Some("3MVG9crashcart.mock.consumer.key".into()),
        user: Some("integration@crashcart.test".into()),
        token_digest: Some(format!("{token:024x}")),
        body_digest: Some(format!("{:024x}", seq % 5000)),
        query_digest: None,
        idempotency_key: None,
        body_len: 120,
        fault: None,
        retry_count: None,
        trace_id: None,
        retry_after_ms: (status == 429).then_some(1000),
        llm: None,
    }
}

/// A deterministic synthetic history of about `EVENTS` events.
/// Requests are held as the run's recorder holds them: compact, their text shared.
fn history() -> Vec<Event> {
    let mut names = Interner::default();
    let mut events = Vec::with_capacity(EVENTS as usize);
    let mut seq = 0;
    let mut token = 1;
    let mut op = 0;
    let mut t = 0u64;
    while (events.len() as u64) < EVENTS {
        t += 500; // 2,000 events per simulated second
        let k = seq % 1000;
        if k == 0 {
            // Every 1,000 events: a fault turns on, 200 events later it turns off.
            events.push(Event::fault(FaultEvent {
                at_us: t,
                id: seq,
                fault: "burst".into(),
                kind: "http_error".into(),
                dependency: Some(DependencyName::Salesforce),
                event: "activated".into(),
            }));
        }
        if k == 200 {
            events.push(Event::fault(FaultEvent {
                at_us: t,
                id: seq - 200,
                fault: "burst".into(),
                kind: "http_error".into(),
                dependency: Some(DependencyName::Salesforce),
                event: "removed".into(),
            }));
        }
        if k % 10 == 0 {
            events.push(Event::op(OpEvent {
                at_us: t,
                op,
                name: "book".into(),
                key: format!("CC-SYN-OP-1-{op:06}"),
                phase: Phase::Invoke,
                status: None,
                latency_us: None,
                error: None,
                trace_id: None,
                captured: Default::default(),
                partial: false,
            }));
            events.push(Event::op(OpEvent {
                at_us: t + 400,
                op,
                name: "book".into(),
                key: format!("CC-SYN-OP-1-{op:06}"),
                phase: if k < 200 { Phase::Fail } else { Phase::Ok },
                status: Some(201),
                latency_us: Some(400),
                error: None,
                trace_id: None,
                captured: Default::default(),
                partial: false,
            }));
            op += 1;
        }
        let path = format!("/services/data/v59.0/sobjects/Contact/{:06}", seq % 5000);
        let r = match k {
            0..=199 => request(
                seq,
                t,
                Dependency::Salesforce,
                "sobject.update",
                path,
                503,
                Some("SERVER_UNAVAILABLE"),
                token,
            ),
            500 => request(
                seq,
                t,
                Dependency::Salesforce,
                "query",
                path,
                401,
                Some("INVALID_SESSION_ID"),
                token,
            ),
            501 => {
                token += 1;
                request(
                    seq,
                    t,
                    Dependency::SalesforceAuth,
                    "oauth.token",
                    "/services/oauth2/token".into(),
                    200,
                    None,
                    token,
                )
            }
            700..=709 => request(
                seq,
                t,
                Dependency::Llm,
                "openai.chat",
                "/v1/chat/completions".into(),
                429,
                Some("rate_limit_exceeded"),
                token,
            ),
            _ => request(
                seq,
                t,
                Dependency::Salesforce,
                "sobject.update",
                path,
                204,
                None,
                token,
            ),
        };
        events.push(Event::Request(Box::new(Call::of(&r, &mut names))));
        seq += 1;
    }
    events
}

fn slos() -> Vec<RawSlo> {
    let d = |ms| Some(Duration::from_millis(ms));
    vec![
        RawSlo::Retry {
            dependency: Some("salesforce".into()),
            max_attempts: Some(5),
            min_gap: d(10),
            exponential: true,
            jitter: true,
            honour_retry_after: true,
            no_retry_of_non_retryable: true,
            max_amplification: Some(3.0),
            backoff_floor: None,
        },
        RawSlo::CircuitBreaker {
            dependency: "salesforce".into(),
            after_failures: 5,
            max_calls: 20,
            probe_gap: d(500),
            resume_within: d(5000),
        },
        RawSlo::Token {
            refresh_within_requests: 3,
            max_refreshes_per_expiry: 2,
        },
        RawSlo::RateLimit {
            max_rate_while_limited: 5.0,
        },
        RawSlo::SchemaDrift {
            max_rejected_after_drift: 5,
        },
        RawSlo::Availability {
            min_success_ratio: Some(0.9),
            p99: d(2000),
            recover_within: d(5000),
        },
        RawSlo::Consistency {
            compensate_within: None,
            double_booking: None,
        },
    ]
}

fn operations() -> Vec<RawOperation> {
    vec![RawOperation {
        name: "book".into(),
        weight: 1,
        method: "POST".into(),
        path: Some("/appointments".into()),
        body: None,
        expect: None,
        steps: vec![],
        effects: vec![RawEffect {
            object: "Event".into(),
            matches: [("Booking_Key__c".to_string(), "{{key}}".to_string())].into(),
            count: 1,
            on_failure: Default::default(),
            within: None,
            written: vec![],
            max_writes: None,
        }],
    }]
}

fn bench(c: &mut Criterion) {
    let before = LIVE.load(Ordering::Relaxed);
    let timeline = Timeline::merge(history());
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    let n = timeline.events.len();
    let slos: Vec<Slo> = slos().iter().map(Slo::from_raw).collect();
    let ops: Vec<Operation> = operations().iter().map(Operation::from_raw).collect();
    let state = FinalState::default();
    let mut g = c.benchmark_group("checkers");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("all_slos_1m_events", |b| {
        b.iter(|| check_all(&slos, &ops, 1, &timeline, &state))
    });
    g.finish();
    let t = Instant::now();
    let results = check_all(&slos, &ops, 1, &timeline, &state);
    let took = t.elapsed();
    println!("\ncheckers over {n} events:");
    println!(
        "  all {} SLOs together: {:.2} s (target < 2 s)",
        results.len(),
        took.as_secs_f64()
    );
    for r in &results {
        println!("    {:<24} {:?}", r.slo, r.verdict);
    }
    println!(
        "  timeline memory: {:.0} MB, {:.0} bytes per event (target < 300)",
        bytes as f64 / 1e6,
        bytes as f64 / n as f64
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

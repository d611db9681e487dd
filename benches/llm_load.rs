//! Load bench of the mock LLM on loopback, against bare-axum baselines in the same run.
//!
//! Measured:
//! - `baseline_constant_json` vs `chat_completion`: non-streaming chat completions per second
//!   with the zero-delay `instant` model (32 concurrent keep-alive connections);
//! - `baseline_sse` vs `chat_stream_100`: tokens per second streamed across 100 concurrent
//!   streams; the baseline is a bare axum handler streaming the same number of constant SSE
//!   chunks, so both move one chunk per token.
//!
//! Run: `cargo bench --bench llm_load`; after criterion's report it prints both ratios.

mod support;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::time::Duration;

use crashcart_mocks::llm::DEFAULT_API_KEY;
use crashcart_mocks::MockLlm;
use criterion::{criterion_group, Criterion, Throughput};
use support::{client, drive, runtime, start_baseline, Target};

const NOTE: &str = "Summarize this visit note. Patient reports chest pain since 3 days. She takes metformin 500 mg twice daily. Blood pressure 150/95 at the last visit. Allergic to penicillin. Follow-up booked with Dr. Hopper.";

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let (_mock, baseline, chat, stream, sse_baseline, tokens) = rt.block_on(async {
        let base = start_baseline().await;
        let mock = MockLlm::builder().zero_delay().start().await.unwrap();
        let url = format!("{}/v1/chat/completions", mock.url());
        let body = serde_json::json!({"model": "instant", "messages": [{"role": "user", "content": NOTE}]});
        let chat = Target::post(&url, Some(DEFAULT_API_KEY), &body);
        let mut sbody = body.clone();
        sbody["stream"] = serde_json::json!(true);
        let stream = Target::post(&url, Some(DEFAULT_API_KEY), &sbody);
        // Tokens (= content chunks) per streamed answer, from the mock's own usage figure.
        let whole: serde_json::Value = reqwest::Client::new().post(&url).bearer_auth(DEFAULT_API_KEY).json(&body).send().await.unwrap().json().await.unwrap();
        let content = whole["choices"][0]["message"]["content"].as_str().unwrap();
        let pieces = crashcart_mocks::llm::tokens::pieces(content).len();
        let tokens = whole["usage"]["completion_tokens"].as_u64().unwrap();
        let sse_baseline = Target::get(format!("{base}/sse/{}", pieces + 2), None);
        (mock, Target::get(format!("{base}/constant"), None), chat, stream, sse_baseline, tokens)
    });
    let http = client(128);
    let mut g = c.benchmark_group("llm_load");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(5));
    g.bench_function("baseline_constant_json", |b| {
        b.iter_custom(|n| rt.block_on(drive(&http, &baseline, n, 32)).elapsed)
    });
    g.bench_function("chat_completion", |b| {
        b.iter_custom(|n| rt.block_on(drive(&http, &chat, n, 32)).elapsed)
    });
    g.bench_function("baseline_sse", |b| {
        b.iter_custom(|n| rt.block_on(drive(&http, &sse_baseline, n, 100)).elapsed)
    });
    g.bench_function("chat_stream_100", |b| {
        b.iter_custom(|n| rt.block_on(drive(&http, &stream, n, 100)).elapsed)
    });
    g.finish();

    // Baseline and mock alternate over rounds of the same run; medians are reported.
    let per_sec = |target: &Target, n: u64, conc: u64| {
        n as f64
            / rt.block_on(drive(&http, target, n, conc))
                .elapsed
                .as_secs_f64()
    };
    let _ = per_sec(&baseline, 5_000, 32);
    let chat_rounds: Vec<(f64, f64)> = (0..5)
        .map(|_| (per_sec(&baseline, 10_000, 32), per_sec(&chat, 10_000, 32)))
        .collect();
    let stream_rounds: Vec<(f64, f64)> = (0..5)
        .map(|_| {
            (
                per_sec(&sse_baseline, 1_000, 100),
                per_sec(&stream, 1_000, 100),
            )
        })
        .collect();
    let (base, chat_rps, chat_ratio) = support::medians(&chat_rounds);
    let (sse_rps, stream_rps, stream_ratio) = support::medians(&stream_rounds);
    let t = tokens as f64;
    println!("\nratio pass (5 rounds each, same run; medians):");
    println!("  baseline constant JSON      : {base:>10.0} req/s (32 connections)");
    println!(
        "  chat completion, zero delay : {chat_rps:>10.0} req/s ({:.0}% of baseline)",
        100.0 * chat_ratio
    );
    println!("  baseline SSE, same chunks   : {:>10.0} tokens/s equivalent (100 streams of {tokens} tokens)", sse_rps * t);
    println!(
        "  chat streams, 100 at once   : {:>10.0} tokens/s ({:.0}% of baseline)",
        stream_rps * t,
        100.0 * stream_ratio
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}

//! The performance model of the mock LLM, on tokio's paused clock (exact, and instant):
//! time to first token, decoding speed under contention, queueing and overload, cold start,
//! and the LLM shaping faults.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::llm::{chat, Llm, NOTE};
use crashcart_mocks::fault::{LlmShaping, Verdict};
use crashcart_mocks::llm::{tokens, Flavour};
use crashcart_mocks::{MockLlm, RequestRecord};
use serde_json::json;

fn streamed(model: &str, content: &str) -> serde_json::Value {
    let mut r = chat(model, content);
    r["stream"] = json!(true);
    r
}

fn ttft(r: &RequestRecord) -> Duration {
    Duration::from_micros(r.llm.as_ref().unwrap().first_byte_us.unwrap() - r.at_us)
}

fn total(r: &RequestRecord) -> Duration {
    Duration::from_micros(r.llm.as_ref().unwrap().last_byte_us.unwrap() - r.at_us)
}

#[tokio::test(start_paused = true)]
async fn ttft_is_cold_start_plus_base_plus_prefill_and_decoding_follows_tokens_per_second() {
    let llm = Llm::build(MockLlm::builder().seed(1));
    let r = llm
        .post("/v1/chat/completions", streamed("llama3.1:8b", NOTE))
        .await;
    assert_eq!(r.status, 200);
    let rec = &llm.handle.history().snapshot()[0];
    let prompt = tokens::chat_prompt([NOTE]) as f64;
    // llama3.1:8b: cold start 2500 ms, base 80 ms, prefill 2500 tok/s, decode 45 tok/s.
    let expected_ttft = Duration::from_millis(2580) + Duration::from_secs_f64(prompt / 2500.0);
    assert!(
        ttft(rec).abs_diff(expected_ttft) < Duration::from_millis(2),
        "{:?} vs {expected_ttft:?}",
        ttft(rec)
    );
    let completion = rec.llm.as_ref().unwrap().completion_tokens as f64;
    let decode = total(rec) - ttft(rec);
    let expected_decode = Duration::from_secs_f64(completion / 45.0);
    assert!(
        decode.abs_diff(expected_decode) < Duration::from_millis(5),
        "{decode:?} vs {expected_decode:?}"
    );
    // Warm now: the second request pays no cold start.
    llm.post("/v1/chat/completions", streamed("llama3.1:8b", NOTE))
        .await;
    let rec = &llm.handle.history().snapshot()[1];
    assert!(ttft(rec) < Duration::from_millis(200), "{:?}", ttft(rec));
    // A longer prompt takes longer to the first token.
    let long = NOTE.repeat(40);
    llm.post("/v1/chat/completions", streamed("llama3.1:8b", &long))
        .await;
    let rec = &llm.handle.history().snapshot()[2];
    assert!(ttft(rec) > Duration::from_millis(400), "{:?}", ttft(rec));
}

#[tokio::test(start_paused = true)]
async fn concurrent_streams_slow_each_other_and_the_queue_overflows_into_429_with_retry_after() {
    let llm = Arc::new(Llm::build(MockLlm::builder().seed(1)));
    // Warm the model so the cold start does not blur the figures.
    llm.post("/v1/chat/completions", chat("llama3.1:8b", "warm up"))
        .await;
    let alone = {
        llm.post("/v1/chat/completions", streamed("llama3.1:8b", NOTE))
            .await;
        let h = llm.handle.history().snapshot();
        total(&h[1]) - ttft(&h[1])
    };
    // 4 slots + 16 queue places: 20 are served, the 21st is refused at once.
    let mut tasks = vec![];
    for _ in 0..21 {
        let llm = llm.clone();
        tasks.push(tokio::spawn(async move {
            llm.post("/v1/chat/completions", streamed("llama3.1:8b", NOTE))
                .await
        }));
    }
    let mut statuses = vec![];
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let refused: Vec<_> = statuses.iter().filter(|a| a.status == 429).collect();
    assert_eq!(
        refused.len(),
        1,
        "{:?}",
        statuses.iter().map(|a| a.status).collect::<Vec<_>>()
    );
    assert_eq!(refused[0].header("retry-after"), Some("2"));
    assert_eq!(refused[0].json()["error"]["code"], "rate_limit_exceeded");
    let h = llm.handle.history().snapshot();
    let served: Vec<&RequestRecord> = h[2..].iter().filter(|r| r.status == 200).collect();
    assert_eq!(served.len(), 20);
    let concurrent = served.iter().map(|r| total(r) - ttft(r)).max().unwrap();
    assert!(
        concurrent > alone,
        "4 concurrent streams decode slower: {concurrent:?} vs {alone:?}"
    );
    let max_wait = served
        .iter()
        .map(|r| r.llm.as_ref().unwrap().queue_wait_us)
        .max()
        .unwrap();
    assert!(
        max_wait > 1_000_000,
        "queued requests waited: {max_wait} µs"
    );
    let refused_rec = h.iter().find(|r| r.status == 429).unwrap();
    assert_eq!(refused_rec.retry_after_ms, Some(2000));
    assert_eq!(refused_rec.error_code.as_deref(), Some("overloaded"));
}

#[tokio::test(start_paused = true)]
async fn overload_in_the_llama_cpp_flavour_is_a_503() {
    let llm = Arc::new(Llm::build(MockLlm::builder().flavour(Flavour::LlamaCpp)));
    let runtime = llm.handle.runtime("qwen2.5:14b").unwrap();
    runtime.set_queue_depth(0);
    let first = {
        let llm = llm.clone();
        tokio::spawn(async move {
            llm.post("/v1/chat/completions", chat("qwen2.5:14b", NOTE))
                .await
        })
    };
    let second = {
        let llm = llm.clone();
        tokio::spawn(async move {
            llm.post("/v1/chat/completions", chat("qwen2.5:14b", NOTE))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    let third = llm
        .post("/v1/chat/completions", chat("qwen2.5:14b", NOTE))
        .await;
    assert_eq!(third.status, 503);
    assert_eq!(third.json()["error"]["type"], "unavailable_error");
    assert_eq!(third.header("retry-after"), Some("5"));
    assert_eq!(first.await.unwrap().status, 200);
    assert_eq!(second.await.unwrap().status, 200);
}

#[tokio::test(start_paused = true)]
async fn shaping_adds_ttft_and_inter_token_delay_and_can_stall() {
    let llm = Llm::instant();
    llm.handle
        .set_fault_hook(Arc::new(|_: &crashcart_mocks::RequestInfo<'_>| {
            Verdict::shape_llm(LlmShaping {
                extra_ttft: Duration::from_secs(3),
                extra_inter_token: Duration::from_millis(100),
                ..LlmShaping::default()
            })
        }));
    let r = llm
        .post("/v1/chat/completions", streamed("instant", NOTE))
        .await;
    assert_eq!(r.status, 200);
    let rec = &llm.handle.history().snapshot()[0];
    assert_eq!(ttft(rec), Duration::from_secs(3));
    // Events: the role chunk (the first byte, at TTFT), the content pieces, finish, [DONE].
    let pieces = r.sse().len() as u32 - 3;
    let decode = total(rec) - ttft(rec);
    assert_eq!(decode, Duration::from_millis(100) * pieces);
    // A non-streamed answer takes as long in all.
    llm.post("/v1/chat/completions", chat("instant", NOTE))
        .await;
    let rec2 = &llm.handle.history().snapshot()[1];
    assert_eq!(Duration::from_micros(rec2.latency_us), total(rec));
}

#[tokio::test(start_paused = true)]
async fn a_cut_stream_ends_mid_frame() {
    let llm = Llm::instant();
    llm.handle
        .set_fault_hook(Arc::new(|_: &crashcart_mocks::RequestInfo<'_>| {
            Verdict::shape_llm(LlmShaping {
                cut_after_tokens: Some(2),
                ..LlmShaping::default()
            })
        }));
    let r = llm
        .post("/v1/chat/completions", streamed("instant", NOTE))
        .await;
    let text = r.text();
    assert!(!text.ends_with("\n\n"), "the last frame is cut: {text:?}");
    assert!(!text.contains("[DONE]"));
    assert_eq!(
        text.matches("data: ").count(),
        4,
        "role, 2 pieces, half a piece: {text:?}"
    );
    let rec = &llm.handle.history().snapshot()[0];
    assert_eq!(rec.error_code.as_deref(), Some("stream_cut"));
}

/// On a socket, with no delay at all, a cut stream still delivers what it sent before the
/// reset (found by the Python zoo integration: the server had written nothing out yet, so
/// the client saw an empty reply, while the history said 12 tokens went out).
#[tokio::test]
async fn a_cut_stream_without_delays_sends_its_first_frames_on_a_socket() {
    let llm = MockLlm::builder()
        .zero_delay()
        .api_keys(vec![])
        .start()
        .await
        .unwrap();
    llm.handle()
        .set_fault_hook(Arc::new(|_: &crashcart_mocks::RequestInfo<'_>| {
            Verdict::shape_llm(LlmShaping {
                cut_after_tokens: Some(2),
                ..LlmShaping::default()
            })
        }));
    let mut resp = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", llm.url()))
        .json(&streamed("instant", NOTE))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = Vec::new();
    let ended = loop {
        match resp.chunk().await {
            Ok(Some(c)) => got.extend_from_slice(&c),
            Ok(None) => break "cleanly",
            Err(_) => break "with an error",
        }
    };
    let text = String::from_utf8_lossy(&got);
    assert_eq!(ended, "with an error", "{text:?}");
    assert_eq!(
        text.matches("data: ").count(),
        4,
        "role, 2 pieces, half a piece: {text:?}"
    );
    llm.shutdown().await;
}

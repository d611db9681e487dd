//! Log probabilities of generated tokens, as OpenAI's APIs answer them when asked: chat's
//! `logprobs: true` with `top_logprobs: k` (`{"content": [{token, logprob, bytes,
//! top_logprobs}]}`), and legacy completions' `logprobs: k` (`tokens`, `token_logprobs`,
//! `top_logprobs`, `text_offset`). The values are deterministic for the generation: each
//! piece of the answer is one token, its alternatives rank below it.

use serde_json::{json, Map, Value};

use super::tokens;
use crate::history::digest;

/// A deterministic number in `[0, 1)` for token `i` (with its text) and a rank.
fn unit(key: &str, i: usize, piece: &str, rank: usize) -> f64 {
    let d = digest(format!("{key}:{i}:{piece}:{rank}").as_bytes());
    u64::from_str_radix(&d[..8], 16).unwrap_or(0) as f64 / (u32::MAX as f64 + 1.0)
}

/// Alternatives for a token: the token itself first (in `[-2, 0)`), then lesser ones, each
/// below the one before.
fn alternatives(key: &str, i: usize, piece: &str, k: u32) -> Vec<(String, f64)> {
    let chosen = -(0.001 + unit(key, i, piece, 0) * 2.0);
    let mut out = vec![(piece.to_string(), chosen)];
    let mut last = chosen;
    for rank in 1..k as usize {
        let alt = format!(
            "{}{}",
            piece.trim_end(),
            ["s", "ed", ",", ".", "ing"][rank % 5]
        );
        last -= 0.1 + unit(key, i, piece, rank) * 1.5;
        out.push((alt, last));
    }
    out
}

/// One chat `content` entry for token `i`.
pub(crate) fn chat_entry(key: &str, i: usize, piece: &str, k: u32) -> Value {
    let alts = alternatives(key, i, piece, k.max(1));
    let top: Vec<Value> = alts
        .iter()
        .take(k as usize)
        .map(|(t, lp)| json!({"token": t, "logprob": lp, "bytes": t.as_bytes()}))
        .collect();
    json!({"token": piece, "logprob": alts[0].1, "bytes": piece.as_bytes(), "top_logprobs": top})
}

/// Chat `logprobs` of a whole answer.
pub(crate) fn chat(key: &str, text: &str, k: u32) -> Value {
    let content: Vec<Value> = tokens::pieces(text)
        .iter()
        .enumerate()
        .map(|(i, p)| chat_entry(key, i, p, k))
        .collect();
    json!({"content": content, "refusal": null})
}

/// Legacy completion `logprobs` of an answer, `k` alternatives a token.
pub(crate) fn completion(key: &str, text: &str, k: u32) -> Value {
    let pieces = tokens::pieces(text);
    let mut offset = 0;
    let (mut toks, mut lps, mut tops, mut offsets) = (vec![], vec![], vec![], vec![]);
    for (i, p) in pieces.iter().enumerate() {
        let alts = alternatives(key, i, p, k.max(1));
        toks.push(json!(p));
        lps.push(json!(alts[0].1));
        let top: Map<String, Value> = (alts.iter().take(k as usize))
            .map(|(t, lp)| (t.clone(), json!(lp)))
            .collect();
        tops.push(Value::Object(top));
        offsets.push(json!(offset));
        offset += p.len();
    }
    json!({"tokens": toks, "token_logprobs": lps, "top_logprobs": tops, "text_offset": offsets})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chosen_token_ranks_first_and_values_repeat() {
        let a = chat("chatcmpl-1:0", "Chest pain since 3 days.", 3);
        let first = &a["content"][0];
        assert_eq!(first["token"], "Chest");
        let top = first["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert_eq!(top[0]["token"], "Chest");
        assert!(top[0]["logprob"].as_f64() > top[1]["logprob"].as_f64());
        assert!(first["logprob"].as_f64().unwrap() < 0.0);
        assert_eq!(a, chat("chatcmpl-1:0", "Chest pain since 3 days.", 3));
        let c = completion("cmpl-1:0", "Chest pain", 2);
        assert_eq!(c["tokens"], json!(["Chest", " pain"]));
        assert_eq!(c["text_offset"], json!([0, 5]));
    }
}

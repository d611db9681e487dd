//! The mock's token approximation, used everywhere a token count matters: usage figures,
//! `max_tokens` truncation, context-window checks, and generation speed.
//!
//! The rule, documented for users who compare figures: text is split into *pieces*, each a run
//! of non-whitespace characters together with the whitespace before it; a piece costs
//! `ceil(chars / 4)` tokens, at least 1 (English averages about four characters per token in
//! the BPE vocabularies of Llama and GPT models). A chat prompt adds 4 tokens per message
//! (role and separators) and 3 for the reply's priming, as OpenAI's counting guide does.
//! A streamed answer sends one piece per chunk.

/// Tokens of one piece (or any text without inner whitespace).
fn piece_tokens(piece: &str) -> u32 {
    let chars = piece.trim().chars().count() as u32;
    chars.div_ceil(4).max(1)
}

/// The pieces of a text, in order; concatenated they give the text back exactly.
pub fn pieces(text: &str) -> Vec<&str> {
    let mut bounds = vec![0];
    let mut prev_ws = true;
    for (i, c) in text.char_indices() {
        let ws = c.is_whitespace();
        if ws && !prev_ws {
            bounds.push(i);
        }
        prev_ws = ws;
    }
    // Trailing whitespace joins the last word's piece.
    if prev_ws && bounds.len() > 1 {
        bounds.pop();
    }
    bounds.push(text.len());
    bounds
        .windows(2)
        .map(|w| &text[w[0]..w[1]])
        .filter(|p| !p.is_empty())
        .collect()
}

/// Tokens of a text.
pub fn count(text: &str) -> u32 {
    pieces(text).iter().map(|p| piece_tokens(p)).sum()
}

/// Tokens of a piece as streamed (same rule as [`count`]).
pub fn of_piece(piece: &str) -> u32 {
    piece_tokens(piece)
}

/// Tokens of a chat prompt: each message's content plus 4, plus 3 for the reply.
pub fn chat_prompt<'a>(contents: impl IntoIterator<Item = &'a str>) -> u32 {
    contents.into_iter().map(|c| count(c) + 4).sum::<u32>() + 3
}

/// The longest prefix of `text` within `max` tokens, and whether it was cut.
pub fn truncate(text: &str, max: u32) -> (&str, bool) {
    let mut used = 0;
    let mut end = 0;
    for p in pieces(text) {
        let t = piece_tokens(p);
        if used + t > max {
            return (&text[..end], true);
        }
        used += t;
        end += p.len();
    }
    (text, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn counts_follow_the_documented_rule() {
        assert_eq!(count(""), 0);
        assert_eq!(count("hi"), 1);
        assert_eq!(count("hello"), 2);
        assert_eq!(count("Patient reports mild pain."), 2 + 2 + 1 + 2);
        assert_eq!(chat_prompt(["hi", "hello"]), 1 + 4 + 2 + 4 + 3);
    }

    #[test]
    fn truncation_keeps_whole_pieces() {
        assert_eq!(truncate("one two three", 2), ("one two", true));
        assert_eq!(truncate("one two", 5), ("one two", false));
        assert_eq!(truncate("one", 0), ("", true));
    }

    proptest! {
        #[test]
        fn pieces_concatenate_back_to_the_text(s in "\\PC{0,60}") {
            let joined: String = pieces(&s).concat();
            prop_assert_eq!(joined, s.clone());
            let (cut, _) = truncate(&s, 3);
            prop_assert!(count(cut) <= 3);
        }
    }
}

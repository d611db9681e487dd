//! Secrets never enter the timeline: a SUT's output line is scrubbed of the credentials
//! crashcart handed it (exact matches) and of any Salesforce access or refresh token in it
//! (by shape: an org id, `!`, then the token's characters; `5Aep861` then them), whether the
//! mock issued it to the SUT or the SUT found it elsewhere.

/// What replaces a secret.
const REDACTED: &str = "[redacted]";

/// The characters of a Salesforce token after its prefix.
fn token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'.' || c == b'_'
}

/// Replace every credential in `secrets` (4 characters or more) and every token-shaped run in
/// `line` with `[redacted]`.
pub fn scrub(line: &str, secrets: &[String]) -> String {
    let mut out = line.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        if out.contains(s.as_str()) {
            out = out.replace(s.as_str(), REDACTED);
        }
    }
    redact_tokens(&out)
}

/// Access tokens (`00D…!AQ…`: 15 characters of org id, `!`, the rest) and refresh tokens
/// (`5Aep861…`), by shape.
fn redact_tokens(line: &str) -> String {
    let b = line.as_bytes();
    let mut spans: Vec<(usize, usize)> = vec![];
    let mut i = 0;
    while i < b.len() {
        let after_last = |start: usize| spans.last().is_none_or(|&(_, end)| start >= end);
        match token_at(b, i).filter(|&(start, _)| after_last(start)) {
            Some(span) => {
                spans.push(span);
                i = span.1;
            }
            None => i += 1,
        }
    }
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    // Spans start and end at ASCII bytes (token characters or their neighbours), so the
    // slices fall on character boundaries.
    for (start, end) in spans {
        out.push_str(&line[copied..start]);
        out.push_str(REDACTED);
        copied = end;
    }
    out.push_str(&line[copied..]);
    out
}

/// The token whose `!` or `5Aep861` is at `i`, if one: its span.
fn token_at(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let tail = |from: usize| {
        let mut e = from;
        while e < b.len() && token_char(b[e]) {
            e += 1;
        }
        e
    };
    if b[i] == b'!' {
        // An access token: 15 alphanumerics before the `!`, at least 20 token characters after.
        let start = i.checked_sub(15)?;
        let org = &b[start..i];
        let before_ok = start == 0 || !b[start - 1].is_ascii_alphanumeric();
        let end = tail(i + 1);
        (org.iter().all(u8::is_ascii_alphanumeric) && before_ok && end - i > 20)
            .then_some((start, end))
    } else if b[i..].starts_with(b"5Aep861") {
        let end = tail(i + 7);
        (end - i >= 27).then_some((i, end))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_tokens_of_any_origin_are_redacted() {
        assert_eq!(
            scrub(
                "login with crashcart-Pa55 ok",
                &["crashcart-Pa55".into(), "x".into()]
            ),
            "login with [redacted] ok"
        );
        let access = format!("00D000000000001!AQ{}", "aB3._".repeat(19));
        let refresh = format!("5Aep861{}", "Zz9".repeat(27));
        let line = format!("got token={access} and refresh {refresh}; done! 5 apples");
        assert_eq!(
            scrub(&line, &[]),
            "got token=[redacted] and refresh [redacted]; done! 5 apples"
        );
        assert_eq!(
            scrub("Authorization: Bearer ", &[]),
            "Authorization: Bearer "
        );
        assert_eq!(scrub("ünïcode! 5Aep861", &[]), "ünïcode! 5Aep861");
    }
}

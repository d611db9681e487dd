//! W3C Trace Context for the workload: every operation is one trace, and its request to the
//! SUT carries `traceparent: 00-<trace id>-<span id>-01`. A SUT that propagates it (as
//! OpenTelemetry's HTTP instrumentation does) hands the trace id on to its dependency calls,
//! where the mocks record it; the checkers then tie each call to the operation that caused it.
//! Ids are drawn from the run's seed and the operation's number, so a replay carries the same.

/// A 64-bit mix of the seed and a number (splitmix64): well spread, never all zero in pairs.
fn mix(seed: u64, n: u64, salt: u64) -> u64 {
    let mut z = seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ salt;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The trace id of operation `n` (32 lowercase hex digits, never all zero).
pub fn trace_id(seed: u64, n: u64) -> String {
    let (hi, lo) = (mix(seed, n, 0x7472_6163), mix(seed, n, 0x6964_7331));
    format!("{hi:016x}{:016x}", lo.max(1))
}

/// The `traceparent` of operation `n`'s request to the SUT (sampled).
pub fn traceparent(seed: u64, n: u64) -> String {
    format!(
        "00-{}-{:016x}-01",
        trace_id(seed, n),
        mix(seed, n, 0x7370_616e).max(1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_operation_is_its_own_valid_trace_and_replays_the_same() {
        let a = traceparent(7, 1);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.len(), 4);
        assert_eq!((parts[0], parts[3]), ("00", "01"));
        assert!(parts[1].len() == 32 && parts[2].len() == 16);
        assert!(a
            .bytes()
            .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(parts[1], trace_id(7, 1));
        assert_eq!(a, traceparent(7, 1));
        assert_ne!(trace_id(7, 1), trace_id(7, 2));
        assert_ne!(trace_id(7, 1), trace_id(8, 1));
    }
}

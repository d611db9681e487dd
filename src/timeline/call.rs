//! A dependency call as the checkers hold it: the part of a mock's [`RequestRecord`] they
//! judge by, in compact form, so a long game day's timeline fits in memory (about 200 bytes
//! a call, against 600 for the record). The journal on disk keeps the full record.
//!
//! Repeated text (methods, paths, operation names, error codes, users) is shared through an
//! [`Interner`]; identities the checkers only compare (token, body and query digests,
//! idempotency keys, trace ids) are kept as 64-bit tags.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::num::NonZeroU64;
use std::sync::Arc;

use crashcart_mocks::{Dependency, RequestRecord};

/// Shared, immutable text: cheap to clone, compared and read as a `str`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(Arc<str>);

impl std::ops::Deref for Sym {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Sym {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Sym {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Sym {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Sym {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl From<&str> for Sym {
    fn from(s: &str) -> Self {
        Sym(Arc::from(s))
    }
}

/// A 64-bit tag standing for a value that is only ever compared (never 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(NonZeroU64);

impl Tag {
    /// The tag of `value`: equal values have equal tags, different ones differ but by a
    /// 2^-64 chance.
    pub fn of(value: &str) -> Self {
        let mut h = std::hash::DefaultHasher::new();
        value.hash(&mut h);
        Tag(NonZeroU64::new(h.finish()).unwrap_or(NonZeroU64::MIN))
    }
}

impl From<&str> for Tag {
    fn from(value: &str) -> Self {
        Tag::of(value)
    }
}

impl Default for Tag {
    fn default() -> Self {
        Tag(NonZeroU64::MIN)
    }
}

/// Shares equal strings. Bounded: past `MAX` distinct strings, new ones are kept unshared (the
/// timeline stays right, only larger).
#[derive(Debug, Default)]
pub struct Interner {
    set: HashSet<Arc<str>>,
}

impl Interner {
    /// Distinct strings shared at most.
    const MAX: usize = 1 << 20;

    /// The shared copy of `s`.
    pub fn sym(&mut self, s: &str) -> Sym {
        if let Some(a) = self.set.get(s) {
            return Sym(a.clone());
        }
        let a: Arc<str> = Arc::from(s);
        if self.set.len() < Self::MAX {
            self.set.insert(a.clone());
        }
        Sym(a)
    }

    fn opt(&mut self, s: &Option<String>) -> Option<Sym> {
        s.as_deref().map(|s| self.sym(s))
    }
}

/// When an LLM answer was given, for the tuning report's latency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LlmTiming {
    /// Time spent waiting for a generation slot, in microseconds.
    pub queue_wait_us: u64,
    /// Monotonic time of the last body byte sent, in microseconds since the mock started.
    pub last_byte_us: Option<u64>,
}

/// One dependency call, as the checkers judge it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    /// Arrival order at its mock, from 0.
    pub seq: u64,
    /// Monotonic arrival time, microseconds.
    pub at_us: u64,
    /// Arrival to the end of the response head, microseconds.
    pub latency_us: u64,
    /// The dependency that served it.
    pub dependency: Dependency,
    /// HTTP status sent (0: no response).
    pub status: u16,
    /// HTTP method.
    pub method: Sym,
    /// Path, without the query string.
    pub path: Sym,
    /// The mock's operation name (`sobject.create`, `oauth.token`, …).
    pub operation: Sym,
    /// The service's error code, on an error.
    pub error_code: Option<Sym>,
    /// The fault verdict applied, if any.
    pub fault: Option<Sym>,
    /// Username of the caller's token.
    pub user: Option<Sym>,
    /// The bearer token used.
    pub token_digest: Option<Tag>,
    /// The request body (absent when empty).
    pub body_digest: Option<Tag>,
    /// The query string (absent when none).
    pub query_digest: Option<Tag>,
    /// The client's `Idempotency-Key`.
    pub idempotency_key: Option<Tag>,
    /// The W3C trace id the request carried.
    pub trace_id: Option<Tag>,
    /// `x-stainless-retry-count`.
    pub retry_count: Option<u32>,
    /// `Retry-After` sent, milliseconds.
    pub retry_after_ms: Option<u64>,
    /// The LLM answer's timing (LLM calls only).
    pub llm: Option<Box<LlmTiming>>,
}

impl Call {
    /// The compact form of `r`, its text shared through `names`.
    pub fn of(r: &RequestRecord, names: &mut Interner) -> Self {
        let tag = |s: &Option<String>| s.as_deref().map(Tag::of);
        Call {
            seq: r.seq,
            at_us: r.at_us,
            latency_us: r.latency_us,
            dependency: r.dependency,
            status: r.status,
            method: names.sym(&r.method),
            path: names.sym(&r.path),
            operation: names.sym(&r.operation),
            error_code: names.opt(&r.error_code),
            fault: names.opt(&r.fault),
            user: names.opt(&r.user),
            token_digest: tag(&r.token_digest),
            body_digest: tag(&r.body_digest),
            query_digest: tag(&r.query_digest),
            idempotency_key: tag(&r.idempotency_key),
            trace_id: tag(&r.trace_id),
            retry_count: r.retry_count,
            retry_after_ms: r.retry_after_ms,
            llm: r.llm.as_ref().map(|l| {
                Box::new(LlmTiming {
                    queue_wait_us: l.queue_wait_us,
                    last_byte_us: l.last_byte_us,
                })
            }),
        }
    }
}

impl From<&RequestRecord> for Call {
    /// The compact form, its text unshared (tests, one-off conversions).
    fn from(r: &RequestRecord) -> Self {
        Call::of(r, &mut Interner::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_text_is_shared_and_identities_compare() {
        let mut names = Interner::default();
        let a = names.sym("/services/data/v60.0/sobjects/Event");
        let b = names.sym("/services/data/v60.0/sobjects/Event");
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a, "/services/data/v60.0/sobjects/Event");
        assert_eq!(Tag::of("tok-a"), Tag::of("tok-a"));
        assert_ne!(Tag::of("tok-a"), Tag::of("tok-b"));
    }

    #[test]
    fn a_call_is_small() {
        assert!(
            std::mem::size_of::<Call>() <= 200,
            "{} bytes",
            std::mem::size_of::<Call>()
        );
    }
}

//! Switchable defects of the reference integration: each breaks one mechanism the way real
//! integrations break, so the defect matrix can prove crashcart catches it.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// One seeded defect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
#[value(rename_all = "kebab-case")]
pub enum Defect {
    /// On INVALID_SESSION_ID, give up instead of getting a new token.
    NoRefresh,
    /// Every caller that sees INVALID_SESSION_ID logs in again (no single flight).
    RefreshStorm,
    /// Retry at once, with no wait between attempts.
    NoBackoff,
    /// Exponential backoff without jitter: every client retries in lockstep.
    NoJitter,
    /// Wait by the backoff only, whatever `Retry-After` says.
    IgnoreRetryAfter,
    /// Retry 400s (INVALID_FIELD, MALFORMED_QUERY, …) as if they were transient.
    RetryNonRetryable,
    /// No attempt limit and no retry budget: retry until the operation's deadline.
    UnboundedRetries,
    /// No circuit breaker (and no pause on REQUEST_LIMIT_EXCEEDED).
    NoBreaker,
    /// No timeout on calls: a hung dependency hangs the integration.
    NoTimeout,
    /// A booking that fails half-way leaves what it created.
    NoCompensation,
    /// Updates without `If-Match`: a clinician's newer edit is overwritten.
    BlindOverwrite,
    /// Create the Event with POST instead of an upsert by booking key: a retry after a lost
    /// answer collides with (or duplicates) the first attempt.
    NonIdempotentCreate,
    /// Keep sending fields the org rejects; trust the LLM's JSON as it comes.
    NoDriftHandling,
}

impl Defect {
    /// Every defect, in matrix order.
    pub const ALL: [Defect; 13] = [
        Defect::NoRefresh,
        Defect::RefreshStorm,
        Defect::NoBackoff,
        Defect::NoJitter,
        Defect::IgnoreRetryAfter,
        Defect::RetryNonRetryable,
        Defect::UnboundedRetries,
        Defect::NoBreaker,
        Defect::NoTimeout,
        Defect::NoCompensation,
        Defect::BlindOverwrite,
        Defect::NonIdempotentCreate,
        Defect::NoDriftHandling,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Defect::NoRefresh => "no-refresh",
            Defect::RefreshStorm => "refresh-storm",
            Defect::NoBackoff => "no-backoff",
            Defect::NoJitter => "no-jitter",
            Defect::IgnoreRetryAfter => "ignore-retry-after",
            Defect::RetryNonRetryable => "retry-non-retryable",
            Defect::UnboundedRetries => "unbounded-retries",
            Defect::NoBreaker => "no-breaker",
            Defect::NoTimeout => "no-timeout",
            Defect::NoCompensation => "no-compensation",
            Defect::BlindOverwrite => "blind-overwrite",
            Defect::NonIdempotentCreate => "non-idempotent-create",
            Defect::NoDriftHandling => "no-drift-handling",
        }
    }
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Defect {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Defect::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| {
                format!(
                    "unknown defect `{s}` (known: {})",
                    Defect::ALL.map(Defect::name).join(", ")
                )
            })
    }
}

/// The defects switched on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Defects(BTreeSet<Defect>);

impl Defects {
    /// None: the correct integration.
    pub fn none() -> Self {
        Self::default()
    }

    /// Is this defect on?
    pub fn has(&self, d: Defect) -> bool {
        self.0.contains(&d)
    }

    /// The defects on, in order.
    pub fn iter(&self) -> impl Iterator<Item = Defect> + '_ {
        self.0.iter().copied()
    }

    /// True when no defect is on.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The names, comma-separated (`none` when empty).
    pub fn label(&self) -> String {
        if self.0.is_empty() {
            "none".into()
        } else {
            self.0
                .iter()
                .map(|d| d.name())
                .collect::<Vec<_>>()
                .join(",")
        }
    }
}

impl FromIterator<Defect> for Defects {
    fn from_iter<I: IntoIterator<Item = Defect>>(iter: I) -> Self {
        Self(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known_ones() {
        for d in Defect::ALL {
            assert_eq!(d.name().parse::<Defect>(), Ok(d));
            assert_eq!(
                <Defect as clap::ValueEnum>::from_str(d.name(), false),
                Ok(d)
            );
        }
        let e = "no-such".parse::<Defect>().unwrap_err();
        assert!(
            e.contains("no-refresh") && e.contains("no-drift-handling"),
            "{e}"
        );
        let set: Defects = [Defect::NoJitter, Defect::NoBackoff].into_iter().collect();
        assert_eq!(set.label(), "no-backoff,no-jitter");
        assert_eq!(Defects::none().label(), "none");
    }
}

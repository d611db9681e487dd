//! The token SLO: renewal after INVALID_SESSION_ID, refresh storms, reuse of a dead token.

use crate::timeline::{Call, Tag};

use super::traffic::{describe, hidden, network_windows};
use super::{secs, SloResult};
use crate::fault::FaultEvent;
use crate::scenario::domain::TokenSlo;
use crate::timeline::Timeline;

fn is_auth_success(r: &Call) -> bool {
    matches!(r.operation.as_str(), "oauth.token" | "soap.login") && r.status == 200
}

/// When the SUT had the token a renewal shows: a login's answer once it went out (requests
/// sent while the login was still being answered could not carry the new token yet), a call
/// carrying the new token when it was sent.
fn had_new_token_at(renewal: &Call) -> u64 {
    if is_auth_success(renewal) {
        renewal.at_us + renewal.latency_us
    } else {
        renewal.at_us
    }
}

/// The pause after a refused login beyond which the next login is a retry, not part of a
/// storm (a workload's callers logging in one after another come far closer).
const REFUSED_LOGIN_PAUSE_US: u64 = 250_000;

/// How soon after an INVALID_SESSION_ID a login counts as its answer (and so towards the
/// expiry's refresh storm).
const REACTION_US: u64 = 5_000_000;

/// The token SLO.
pub fn token(t: &Timeline, slo: &TokenSlo) -> SloResult {
    let TokenSlo {
        refresh_within_requests,
        max_refreshes_per_expiry,
    } = slo;
    let mut res = SloResult::new("token", format!("new token within {refresh_within_requests} requests of INVALID_SESSION_ID, ≤ {max_refreshes_per_expiry} token requests per expiry, no reuse of a dead token"));
    let reqs: Vec<&Call> = t
        .requests()
        .filter(|r| r.dependency.as_str().starts_with("salesforce"))
        .collect();
    let expiries: Vec<&FaultEvent> = t
        .faults()
        .filter(|f| {
            f.event == "activated"
                && matches!(f.kind.as_str(), "expire_tokens" | "revoke_refresh_tokens")
        })
        .collect();
    let invalid: Vec<usize> = reqs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.error_code.as_deref() == Some("INVALID_SESSION_ID"))
        .map(|(i, _)| i)
        .collect();
    if invalid.is_empty() && expiries.is_empty() {
        return res.skip("no session expired");
    }
    // A token answer a network fault may have held or cut may never have reached the SUT.
    let network = network_windows(t, Some("salesforce"));
    let s = Sessions {
        reqs: &reqs,
        network: &network,
    };
    let (worst_delay, dead) = s.renewals(&invalid, *refresh_within_requests, &mut res);
    s.dead_token_reuse(&dead, &mut res);
    let worst_refreshes = s.storms(&expiries, *max_refreshes_per_expiry, &mut res);
    res.measured = format!("{} INVALID_SESSION_ID, at most {worst_delay} requests before a new token, at most {worst_refreshes} token requests per expiry", invalid.len());
    res
}

/// The Salesforce traffic the token SLO judges, and the network faults that may have held it.
struct Sessions<'a> {
    reqs: &'a [&'a Call],
    network: &'a [(u64, u64, String)],
}

impl Sessions<'_> {
    /// After each INVALID_SESSION_ID: how many requests went out before a new token (the
    /// worst count), and each dead token with the moment the SUT surely had another.
    fn renewals(
        &self,
        invalid: &[usize],
        within: u32,
        res: &mut SloResult,
    ) -> (usize, Vec<(Tag, u64)>) {
        let (reqs, network) = (self.reqs, self.network);
        let mut worst_delay = 0usize;
        let mut dead: Vec<(Tag, u64)> = vec![];
        for &i in invalid {
            let r = reqs[i];
            // Recovered when a new token is obtained, or when the next call already carries
            // one (another caller renewed it while this one was in flight: single flight at
            // work).
            let renewed = |x: &&Call| {
                is_auth_success(x)
                    || (x.dependency.as_str() == "salesforce"
                        && x.token_digest.is_some()
                        && x.token_digest != r.token_digest
                        && x.status < 400)
            };
            let Some(p) = reqs[i + 1..].iter().position(renewed) else {
                if reqs[i + 1..]
                    .iter()
                    .any(|x| x.dependency.as_str() == "salesforce")
                {
                    res.fail(format!("never obtained a new token after {}", describe(r)));
                }
                continue;
            };
            // Requests sent once the 401 was out: those in flight already could not know.
            let told = r.at_us + r.latency_us;
            // Nor those a network fault may have held: sent earlier than they arrived.
            let data_between = reqs[i + 1..i + 1 + p]
                .iter()
                .filter(|x| x.dependency.as_str() == "salesforce" && x.at_us >= told)
                .filter(|x| !hidden(network, x))
                .count();
            worst_delay = worst_delay.max(data_between);
            if data_between > within as usize {
                res.fail(format!(
                    "{data_between} requests before a new token after {}",
                    describe(r)
                ));
            }
            // The dead token is judged from when the SUT surely had another: a token answer
            // it surely got, or a call carrying a new token.
            let surely = |x: &&Call| renewed(x) && !(is_auth_success(x) && hidden(network, x));
            if let (Some(d), Some(q)) =
                (&r.token_digest, reqs[i + 1..].iter().copied().find(surely))
            {
                dead.push((*d, had_new_token_at(q)));
            }
        }
        (worst_delay, dead)
    }

    /// One pass: a request carrying a token after the moment it was replaced.
    fn dead_token_reuse(&self, dead: &[(Tag, u64)], res: &mut SloResult) {
        let mut replaced: std::collections::HashMap<Tag, u64> = std::collections::HashMap::new();
        for (digest, since) in dead {
            let e = replaced.entry(*digest).or_insert(*since);
            *e = (*e).min(*since);
        }
        for r in self.reqs {
            let Some(d) = r.token_digest else {
                continue;
            };
            // A request a network fault may have held was sent earlier than it arrived:
            // maybe before the new token.
            if hidden(self.network, r) {
                continue;
            }
            if replaced.get(&d).is_some_and(|since| r.at_us > *since) {
                res.fail(format!(
                    "a dead token was used again after a new one was obtained: {}",
                    describe(r)
                ));
                replaced.remove(&d);
            }
        }
    }

    /// Token requests per expiry (the worst count). A token request whose answer a network
    /// fault may have held or cut got the SUT no token: asking again is a retry, not a storm.
    fn storms(&self, expiries: &[&FaultEvent], max: u32, res: &mut SloResult) -> usize {
        let reqs = self.reqs;
        let mut worst_refreshes = 0usize;
        for (k, e) in expiries.iter().enumerate() {
            let until = expiries
                .get(k + 1)
                .map(|n| n.at_us)
                .unwrap_or(u64::MAX)
                .min(e.at_us + 60_000_000);
            let (a, b) = (
                reqs.partition_point(|r| r.at_us < e.at_us),
                reqs.partition_point(|r| r.at_us < until),
            );
            // Only a login that answers a dead session is the expiry's doing: one with no
            // INVALID_SESSION_ID shortly before it is the SUT's own schedule (a batch job's
            // fresh login each run), however many there are.
            let dead: Vec<u64> = reqs[a..b]
                .iter()
                .filter(|r| r.error_code.as_deref() == Some("INVALID_SESSION_ID"))
                .map(|r| r.at_us)
                .collect();
            let reacts = |r: &Call| {
                let from = r.at_us.saturating_sub(REACTION_US);
                let i = dead.partition_point(|t| *t < from);
                dead.get(i).is_some_and(|t| *t <= r.at_us)
            };
            let logins: Vec<&&Call> = reqs[a..b]
                .iter()
                .filter(|r| matches!(r.operation.as_str(), "oauth.token" | "soap.login"))
                .filter(|r| reacts(r))
                .collect();
            // A login the token endpoint refused, tried again after a pause, is backing off,
            // not storming: a long refusal outlasts any fixed count (found by explore).
            let n = logins
                .iter()
                .enumerate()
                .filter(|(j, r)| {
                    let refused_before = *j > 0 && (400..500).contains(&logins[j - 1].status);
                    let paused = *j > 0 && r.at_us >= logins[j - 1].at_us + REFUSED_LOGIN_PAUSE_US;
                    !(refused_before && paused)
                })
                .filter(|(_, r)| !hidden(self.network, r))
                .count();
            worst_refreshes = worst_refreshes.max(n);
            if n > max as usize {
                res.fail(format!(
                    "{n} token requests after the expiry at {} ({}): a refresh storm",
                    secs(e.at_us),
                    e.fault
                ));
            }
        }
        worst_refreshes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::traffic::tests::{fault, req, tl};
    use crate::checks::Verdict;
    use crate::fault::DependencyName;
    use crate::timeline::Event;
    use crashcart_mocks::Dependency;

    fn says(r: &SloResult, what: &str) -> bool {
        r.evidence.iter().any(|e| e.contains(what))
    }

    fn slo() -> TokenSlo {
        TokenSlo {
            refresh_within_requests: 2,
            max_refreshes_per_expiry: 2,
        }
    }

    fn sf(s: u64, at: u64, st: u16) -> Call {
        req(
            s,
            at,
            Dependency::Salesforce,
            "query",
            "/services/data/v59.0/query",
            st,
        )
    }

    fn auth(s: u64, at: u64) -> Call {
        req(
            s,
            at,
            Dependency::SalesforceAuth,
            "oauth.token",
            "/services/oauth2/token",
            200,
        )
    }

    fn expired(s: u64, at: u64) -> Call {
        let mut r = sf(s, at, 401);
        r.error_code = Some("INVALID_SESSION_ID".into());
        r
    }

    fn expiry() -> Event {
        fault(1, 50, "expire_tokens", None, "activated")
    }

    /// One refresh per expiry, single flight, and what was in flight or held by the network.
    #[test]
    fn a_renewal_in_time_passes_and_requests_that_could_not_know_are_not_counted() {
        let slo = slo();
        let expiry = expiry();
        // Good: one 401, one refresh, new token used.
        let mut after = sf(3, 120, 200);
        after.token_digest = Some("tok-b".into());
        let good = tl(
            vec![sf(0, 10, 200), expired(1, 100), auth(2, 110), after],
            vec![expiry.clone()],
        );
        assert_eq!(
            token(&good, &slo).verdict,
            Verdict::Pass,
            "{:?}",
            token(&good, &slo)
        );
        // Also good: another caller had renewed the token while this call was in flight, and
        // the retry carries the new one (no token request after the 401; found by explore).
        let mut renewed = sf(3, 120, 200);
        renewed.token_digest = Some("tok-b".into());
        let early = tl(
            vec![auth(0, 90), expired(1, 100), renewed],
            vec![expiry.clone()],
        );
        assert_eq!(
            token(&early, &slo).verdict,
            Verdict::Pass,
            "{:?}",
            token(&early, &slo)
        );
        // Also good: a slow 401 (answered 50 ms after it arrived); the three requests sent
        // before it went out could not know the session was dead. Sent after, they count.
        let mut slow = expired(1, 100);
        slow.latency_us = 50_000;
        let mut renewed = sf(6, 160, 200);
        renewed.token_digest = Some("tok-b".into());
        let in_flight = |at: [u64; 3]| {
            tl(
                vec![
                    slow.clone(),
                    sf(2, at[0], 200),
                    sf(3, at[1], 200),
                    sf(4, at[2], 200),
                    auth(5, 155),
                    renewed.clone(),
                ],
                vec![expiry.clone()],
            )
        };
        assert_eq!(
            token(&in_flight([110, 120, 130]), &slo).verdict,
            Verdict::Pass
        );
        assert_eq!(
            token(&in_flight([150, 151, 152]), &slo).verdict,
            Verdict::Fail
        );
        // Unless a network fault may have held them: sent before they arrived, maybe before
        // the 401 went out (found by explore with network latency and a slicer).
        let held = tl(
            vec![
                slow.clone(),
                sf(2, 150, 200),
                sf(3, 151, 200),
                sf(4, 152, 200),
                auth(5, 155),
                renewed.clone(),
            ],
            vec![
                expiry.clone(),
                fault(
                    7,
                    90,
                    "network_latency",
                    Some(DependencyName::Salesforce),
                    "activated",
                ),
            ],
        );
        assert_eq!(
            token(&held, &slo).verdict,
            Verdict::Pass,
            "{:?}",
            token(&held, &slo)
        );
    }

    /// Never renewing fails; refused logins retried at once are a storm, paused ones are not.
    #[test]
    fn no_refresh_and_refused_logins_at_the_workloads_pace_fail() {
        let slo = slo();
        let expiry = expiry();
        // No refresh: it keeps failing.
        let bad = tl(
            vec![expired(1, 100), expired(2, 110), expired(3, 120)],
            vec![expiry.clone()],
        );
        let r = token(&bad, &slo);
        assert!(says(&r, "never obtained a new token"), "{r:?}");
        // Refused logins: tried again at the workload's pace, a storm; backing off, not.
        let refused = |s, at| {
            req(
                s,
                at,
                Dependency::SalesforceAuth,
                "oauth.token",
                "/services/oauth2/token",
                400,
            )
        };
        let logins = |gap: u64| {
            let mut v = vec![expired(1, 100)];
            v.extend((0..4).map(|i| refused(2 + i, 101 + i * gap)));
            v.push(auth(6, 101 + 4 * gap));
            tl(v, vec![expiry.clone()])
        };
        let r = token(&logins(100), &slo);
        assert!(says(&r, "refresh storm"), "{r:?}");
        let r = token(&logins(500), &slo);
        assert!(!says(&r, "refresh storm"), "{r:?}");
    }

    /// A batch job logs in afresh at every run: after an expiry no request of it was refused,
    /// so its logins are its own schedule, not a storm; once one was refused, the logins
    /// answering it count.
    #[test]
    fn logins_that_answer_no_dead_session_are_no_refresh_storm() {
        let slo = slo();
        let expiry = expiry();
        let scheduled: Vec<_> = (0..6).map(|i| auth(1 + i, 100 + i * 700)).collect();
        let r = token(&tl(scheduled, vec![expiry.clone()]), &slo);
        assert!(!says(&r, "refresh storm"), "{r:?}");
        let mut stormed = vec![expired(1, 100)];
        stormed.extend((0..6).map(|i| auth(2 + i, 101 + i * 10)));
        let r = token(&tl(stormed, vec![expiry]), &slo);
        assert!(says(&r, "refresh storm"), "{r:?}");
    }

    /// Five logins for one expiry and a dead token sent again, with and without network faults.
    #[test]
    fn storms_and_dead_token_reuse_fail_unless_the_network_may_explain_them() {
        let slo = slo();
        let expiry = expiry();
        // A storm: five token requests for one expiry; and the dead token used again.
        let mut reqs = vec![expired(1, 100)];
        for i in 0..5 {
            reqs.push(auth(2 + i, 101 + i));
        }
        reqs.push(sf(9, 200, 401));
        let r = token(&tl(reqs.clone(), vec![expiry.clone()]), &slo);
        assert!(says(&r, "refresh storm"), "{r:?}");
        assert!(says(&r, "dead token was used again"), "{r:?}");
        // The same token requests while a network fault cut Salesforce's answers: retries of
        // a login whose token never arrived, not a storm (found by explore with limit_data).
        let cut = fault(
            2,
            90,
            "limit_data",
            Some(DependencyName::Salesforce),
            "activated",
        );
        let r = token(&tl(reqs.clone(), vec![expiry.clone(), cut.clone()]), &slo);
        assert!(!says(&r, "refresh storm"), "{r:?}");
        // Nor is the dead token sent again while every new token's answer may have been cut,
        // or a request with it held by the network until after the new token, "used after a
        // new one was obtained" (both found by explore).
        let reuse = vec![expired(1, 100), auth(2, 110), expired(3, 150)];
        let r = token(&tl(reuse.clone(), vec![expiry.clone()]), &slo);
        assert!(says(&r, "dead token was used again"), "{r:?}");
        let r = token(&tl(reuse, vec![expiry.clone(), cut]), &slo);
        assert!(!says(&r, "dead token was used again"), "{r:?}");
        let mut renewed = sf(3, 120, 200);
        renewed.token_digest = Some("tok-b".into());
        let held = vec![expired(1, 100), auth(2, 110), renewed, sf(4, 150, 401)];
        let slow = fault(
            3,
            90,
            "network_latency",
            Some(DependencyName::Salesforce),
            "activated",
        );
        let r = token(&tl(held.clone(), vec![expiry.clone()]), &slo);
        assert!(says(&r, "dead token was used again"), "{r:?}");
        let r = token(&tl(held, vec![expiry.clone(), slow]), &slo);
        assert!(!says(&r, "dead token was used again"), "{r:?}");
        assert_eq!(
            token(&tl(vec![sf(0, 1, 200)], vec![]), &slo).verdict,
            Verdict::Skip
        );
    }

    /// A slow login (300 ms): requests sent with the old token while it was being answered
    /// could not have the new one; sent after its answer, they reuse a dead token.
    #[test]
    fn the_dead_token_clock_starts_when_the_new_token_was_answered() {
        let slo = slo();
        let mut login = auth(2, 110);
        login.latency_us = 300_000;
        let mut renewed = sf(5, 450, 200);
        renewed.token_digest = Some("tok-b".into());
        let t = |old_at| {
            tl(
                vec![
                    expired(1, 100),
                    login.clone(),
                    sf(3, old_at, 401),
                    renewed.clone(),
                ],
                vec![expiry()],
            )
        };
        let r = token(&t(200), &slo);
        assert!(!says(&r, "dead token was used again"), "{r:?}");
        let r = token(&t(420), &slo);
        assert!(says(&r, "dead token was used again"), "{r:?}");
    }
}

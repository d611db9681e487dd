//! Sessions: access tokens bound to a connected app and a user, refresh tokens, expiry and
//! revocation. The fault engine reaches these through the mock's handle (expire, revoke, TTL).

use std::collections::HashMap;
use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const TOKEN_CHARS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._";

/// An issued access token (a session).
#[derive(Clone, Debug)]
pub struct Session {
    /// Connected app client id; `None` for SOAP-login sessions.
    pub client_id: Option<String>,
    /// Username.
    pub username: String,
    /// User record id.
    pub user_id: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Monotonic issue time.
    pub issued: Duration,
    /// Monotonic expiry time.
    pub expires: Duration,
    /// Wall-clock issue time, epoch milliseconds.
    pub issued_epoch_ms: i64,
    /// Revoked explicitly (or by a fault).
    pub revoked: bool,
    /// The refresh token this session came from, if any.
    pub refresh_token: Option<String>,
}

/// An issued refresh token.
#[derive(Clone, Debug)]
pub struct RefreshGrant {
    /// Connected app client id.
    pub client_id: String,
    /// Username.
    pub username: String,
    /// User record id.
    pub user_id: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Revoked.
    pub revoked: bool,
}

/// Which sessions a fault or control call addresses.
#[derive(Clone, Debug, Default)]
pub struct SessionFilter {
    /// Only sessions of this connected app.
    pub client_id: Option<String>,
    /// Only sessions of this user.
    pub username: Option<String>,
    /// Only this share of the matching sessions (0.0–1.0), chosen with the mock's seeded RNG.
    pub share: Option<f64>,
}

/// Why a bearer token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenProblem {
    /// Not a token the org issued.
    Unknown,
    /// Past its lifetime.
    Expired,
    /// Revoked.
    Revoked,
}

/// All sessions and refresh tokens of the org.
#[derive(Debug)]
pub struct AuthStore {
    sessions: HashMap<String, Session>,
    refresh: HashMap<String, RefreshGrant>,
    rng: ChaCha8Rng,
    org_id: String,
    /// Lifetime of new access tokens.
    pub ttl: Duration,
}

impl AuthStore {
    /// An empty store.
    pub fn new(seed: u64, org_id: String, ttl: Duration) -> Self {
        Self {
            sessions: HashMap::new(),
            refresh: HashMap::new(),
            rng: ChaCha8Rng::seed_from_u64(seed ^ 0x5f0a_c0de),
            org_id,
            ttl,
        }
    }

    fn random(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| TOKEN_CHARS[self.rng.random_range(0..TOKEN_CHARS.len())] as char)
            .collect()
    }

    /// Issue an access token.
    #[allow(clippy::too_many_arguments)]
    pub fn issue(
        &mut self,
        client_id: Option<&str>,
        username: &str,
        user_id: &str,
        scopes: &[String],
        now: Duration,
        now_epoch_ms: i64,
        refresh_token: Option<String>,
    ) -> (String, Session) {
        let random = self.random(94);
        let token = format!("{}!AQ{random}", &self.org_id[..15]);
        let session = Session {
            client_id: client_id.map(str::to_string),
            username: username.to_string(),
            user_id: user_id.to_string(),
            scopes: scopes.to_vec(),
            issued: now,
            expires: now + self.ttl,
            issued_epoch_ms: now_epoch_ms,
            revoked: false,
            refresh_token,
        };
        self.sessions.insert(token.clone(), session.clone());
        (token, session)
    }

    /// Issue a refresh token.
    pub fn issue_refresh(
        &mut self,
        client_id: &str,
        username: &str,
        user_id: &str,
        scopes: &[String],
    ) -> String {
        let token = format!("5Aep861{}", self.random(80));
        self.refresh.insert(
            token.clone(),
            RefreshGrant {
                client_id: client_id.to_string(),
                username: username.to_string(),
                user_id: user_id.to_string(),
                scopes: scopes.to_vec(),
                revoked: false,
            },
        );
        token
    }

    /// Look up a session without judging it.
    pub fn session(&self, token: &str) -> Option<&Session> {
        self.sessions.get(token)
    }

    /// A live session for a bearer token, or why it is refused.
    pub fn check(&self, token: &str, now: Duration) -> Result<&Session, TokenProblem> {
        let s = self.sessions.get(token).ok_or(TokenProblem::Unknown)?;
        if s.revoked {
            Err(TokenProblem::Revoked)
        } else if now >= s.expires {
            Err(TokenProblem::Expired)
        } else {
            Ok(s)
        }
    }

    /// A live refresh grant.
    pub fn refresh_grant(&self, token: &str) -> Option<&RefreshGrant> {
        self.refresh.get(token).filter(|g| !g.revoked)
    }

    /// Look up a refresh grant, revoked or not.
    pub fn refresh_any(&self, token: &str) -> Option<&RefreshGrant> {
        self.refresh.get(token)
    }

    /// Revoke an access or refresh token. Revoking a refresh token also ends the sessions
    /// issued from it. Returns false if the token is unknown.
    pub fn revoke(&mut self, token: &str) -> bool {
        if let Some(s) = self.sessions.get_mut(token) {
            s.revoked = true;
            return true;
        }
        if let Some(g) = self.refresh.get_mut(token) {
            g.revoked = true;
            for s in self.sessions.values_mut() {
                if s.refresh_token.as_deref() == Some(token) {
                    s.revoked = true;
                }
            }
            return true;
        }
        false
    }

    fn select<'a, T>(
        rng: &mut ChaCha8Rng,
        items: impl Iterator<Item = (&'a String, &'a mut T)>,
        share: Option<f64>,
    ) -> Vec<&'a mut T>
    where
        T: 'a,
    {
        let mut v: Vec<(&String, &mut T)> = items.collect();
        // Sort by token so the seeded choice does not depend on hash-map order.
        v.sort_by(|a, b| a.0.cmp(b.0));
        v.into_iter()
            .filter(|_| share.is_none_or(|p| rng.random_bool(p.clamp(0.0, 1.0))))
            .map(|(_, t)| t)
            .collect()
    }

    /// Expire the live sessions matching `filter` now. Returns how many were expired.
    pub fn expire(&mut self, filter: &SessionFilter, now: Duration) -> usize {
        let matching = self.sessions.iter_mut().filter(|(_, s)| {
            !s.revoked
                && now < s.expires
                && filter
                    .client_id
                    .as_deref()
                    .is_none_or(|c| s.client_id.as_deref() == Some(c))
                && filter.username.as_deref().is_none_or(|u| s.username == u)
        });
        let chosen = Self::select(&mut self.rng, matching, filter.share);
        let n = chosen.len();
        for s in chosen {
            s.expires = now;
        }
        n
    }

    /// Revoke the live refresh tokens matching `filter` (and their sessions). Returns how many.
    pub fn revoke_refresh(&mut self, filter: &SessionFilter) -> usize {
        let matching = self.refresh.iter_mut().filter(|(_, g)| {
            !g.revoked
                && filter.client_id.as_deref().is_none_or(|c| g.client_id == c)
                && filter.username.as_deref().is_none_or(|u| g.username == u)
        });
        let chosen: Vec<String> = {
            let picked = Self::select(&mut self.rng, matching, filter.share);
            picked
                .into_iter()
                .map(|g| {
                    g.revoked = true;
                    g.username.clone()
                })
                .collect()
        };
        let revoked: Vec<String> = self
            .refresh
            .iter()
            .filter(|(_, g)| g.revoked)
            .map(|(t, _)| t.clone())
            .collect();
        for s in self.sessions.values_mut() {
            if s.refresh_token
                .as_ref()
                .is_some_and(|t| revoked.contains(t))
            {
                s.revoked = true;
            }
        }
        chosen.len()
    }

    /// Number of sessions that are live at `now`.
    pub fn live_sessions(&self, now: Duration) -> usize {
        self.sessions
            .values()
            .filter(|s| !s.revoked && now < s.expires)
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_revocation_and_shares_are_deterministic() {
        let mk = || {
            let mut a = AuthStore::new(7, "00D8c0000000001AAA".into(), Duration::from_secs(60));
            let mut toks = vec![];
            for i in 0..20 {
                let rt = a.issue_refresh("app", "u", "005", &[]);
                let (t, _) = a.issue(
                    Some("app"),
                    &format!("u{i}"),
                    "005",
                    &[],
                    Duration::ZERO,
                    0,
                    Some(rt),
                );
                toks.push(t);
            }
            (a, toks)
        };
        let (mut a, toks) = mk();
        let (mut b, _) = mk();
        let f = SessionFilter {
            share: Some(0.5),
            ..Default::default()
        };
        let n = a.expire(&f, Duration::from_secs(1));
        assert_eq!(n, b.expire(&f, Duration::from_secs(1)));
        assert!(n > 0 && n < 20, "{n}");
        assert_eq!(a.live_sessions(Duration::from_secs(1)), 20 - n);
        assert_eq!(
            a.check(&toks[0], Duration::from_secs(61)).unwrap_err(),
            TokenProblem::Expired
        );
        let all = SessionFilter::default();
        assert_eq!(a.revoke_refresh(&all), 20);
        assert_eq!(a.live_sessions(Duration::from_secs(1)), 0);
        assert_eq!(
            a.check("nope", Duration::ZERO).unwrap_err(),
            TokenProblem::Unknown
        );
    }
}

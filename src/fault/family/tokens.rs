//! Sessions and tokens: access tokens expired or short-lived, refresh tokens revoked (state
//! of the mock Salesforce), logins refused (`invalid_grant`, per request).

use std::time::Duration;

use crashcart_mocks::salesforce::SessionFilter;
use crashcart_mocks::{Action, RequestInfo};

use super::{Draw, Drawn, Family, HitCtx, Need, Shaper, StateCtx, Undo};
use crate::fault::engine::{FaultError, Rule};
use crate::fault::model::{DependencyName, FaultKind, FaultSpec, Target, Trigger};
use crate::fault::shape;

/// The tokens family.
pub struct Tokens;

impl Family for Tokens {
    fn validate(&self, kind: &FaultKind) -> Result<(), String> {
        match kind {
            FaultKind::ExpireTokens { share: Some(s), .. } if !(0.0..=1.0).contains(s) => {
                Err(format!("share must be within 0..1, got {s}"))
            }
            FaultKind::TokenTtl { ttl } => {
                super::within("ttl", *ttl, Duration::from_secs(1), 30 * super::MAX_WAIT)
            }
            _ => Ok(()),
        }
    }

    fn needs(&self, kind: &FaultKind) -> Need {
        match kind {
            FaultKind::InvalidGrant => Need::Any,
            _ => Need::Salesforce,
        }
    }

    fn apply_state(
        &self,
        ctx: &StateCtx<'_>,
        spec: &FaultSpec,
    ) -> Result<Option<Undo>, FaultError> {
        Ok(match &spec.fault {
            FaultKind::ExpireTokens {
                client_id,
                username,
                share,
            } => {
                ctx.salesforce()?.expire_sessions(&SessionFilter {
                    client_id: client_id.clone(),
                    username: username.clone(),
                    share: *share,
                });
                None
            }
            FaultKind::RevokeRefreshTokens {
                client_id,
                username,
            } => {
                ctx.salesforce()?.revoke_refresh_tokens(&SessionFilter {
                    client_id: client_id.clone(),
                    username: username.clone(),
                    share: None,
                });
                None
            }
            FaultKind::TokenTtl { ttl } => {
                let sf = ctx.salesforce()?;
                let before = sf.token_ttl();
                sf.set_token_ttl(*ttl);
                Some(Undo::new(Some("token-ttl"), move |deps| {
                    if let Some(sf) = &deps.salesforce {
                        sf.set_token_ttl(before);
                    }
                }))
            }
            _ => None,
        })
    }

    fn applies(&self, rule: &Rule, req: &RequestInfo<'_>) -> bool {
        match rule.spec.fault {
            FaultKind::InvalidGrant => req.operation == "oauth.token",
            _ => true,
        }
    }

    fn hit(&self, ctx: &HitCtx<'_>, _req: &RequestInfo<'_>, out: &mut Shaper) {
        if let FaultKind::InvalidGrant = ctx.rule.spec.fault {
            out.answer(Action::Respond(shape::invalid_grant()));
        }
    }

    fn explore(&self, name: &str, draw: &Draw) -> Option<Drawn> {
        let always = Trigger::Always;
        Some(match name {
            "expire_tokens" => (
                FaultKind::ExpireTokens {
                    client_id: None,
                    username: None,
                    share: None,
                },
                Target::default(),
                always,
            ),
            "token_ttl" => (
                FaultKind::TokenTtl {
                    ttl: Duration::from_secs(draw.fewer(30.0, 1.0) as u64),
                },
                Target::default(),
                always,
            ),
            "revoke_refresh_tokens" => (
                FaultKind::RevokeRefreshTokens {
                    client_id: None,
                    username: None,
                },
                Target::default(),
                always,
            ),
            "invalid_grant" => (
                FaultKind::InvalidGrant,
                Draw::on(DependencyName::SalesforceAuth),
                draw.sometimes(),
            ),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::family::test_support::Req;
    use crate::fault::model::kind_names;
    use crashcart_mocks::Dependency;

    #[test]
    fn a_share_outside_0_1_is_refused() {
        let kind = |share| FaultKind::ExpireTokens {
            client_id: None,
            username: None,
            share: Some(share),
        };
        assert!(Tokens.validate(&kind(0.5)).is_ok());
        assert!(Tokens.validate(&kind(1.5)).unwrap_err().contains("share"));
    }

    #[test]
    fn invalid_grant_hits_token_requests_only() {
        let rule = Rule::for_test(FaultSpec::now(FaultKind::InvalidGrant));
        let r = Req::new(http::Method::POST);
        assert!(Tokens.applies(
            &rule,
            &r.info(Dependency::SalesforceAuth, "oauth.token", None, None)
        ));
        assert!(!Tokens.applies(&rule, &r.info(Dependency::Salesforce, "query", None, None)));
        assert_eq!(Tokens.needs(&FaultKind::InvalidGrant), Need::Any);
        assert_eq!(
            Tokens.needs(&FaultKind::TokenTtl {
                ttl: Duration::from_secs(1)
            }),
            Need::Salesforce
        );
    }

    #[test]
    fn every_token_kind_can_be_explored() {
        let draw = Draw {
            intensity: 50,
            on_llm: false,
            max_latency: Duration::from_secs(1),
        };
        for name in kind_names::TOKENS {
            let (kind, _, _) = Tokens.explore(name, &draw).expect(name);
            assert_eq!(kind.name(), *name);
        }
        assert!(Tokens.explore("latency", &draw).is_none());
    }
}

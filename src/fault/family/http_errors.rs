//! Error answers and broken exchanges, in the mocks: an error status in the dependency's own
//! shape, empty or malformed bodies, resets before or during the answer, a hang, and a lost
//! response (the write lands, its answer never comes).

use std::time::Duration;

use crashcart_mocks::{Action, RequestInfo};

use super::{Draw, Drawn, Family, HitCtx, Shaper};
use crate::fault::engine::Rule;
use crate::fault::model::FaultKind;
use crate::fault::shape;

/// The HTTP errors family.
pub struct HttpErrors;

impl Family for HttpErrors {
    fn validate(&self, kind: &FaultKind) -> Result<(), String> {
        match kind {
            FaultKind::HttpError { status, .. } | FaultKind::EmptyResponse { status }
                if !(100..=599).contains(status) =>
            {
                Err(format!("status must be a valid HTTP status, got {status}"))
            }
            FaultKind::HttpError {
                retry_after,
                retry_after_ms,
                ..
            } => {
                if let Some(r) = retry_after {
                    super::within("retry_after", *r, Duration::ZERO, super::MAX_WAIT)?;
                }
                super::count_within("retry_after_ms", retry_after_ms.unwrap_or(0), 0, 86_400_000)
            }
            _ => Ok(()),
        }
    }

    fn applies(&self, rule: &Rule, req: &RequestInfo<'_>) -> bool {
        match rule.spec.fault {
            FaultKind::LostResponse => req.dependency == crashcart_mocks::Dependency::Salesforce,
            _ => true,
        }
    }

    fn hit(&self, ctx: &HitCtx<'_>, req: &RequestInfo<'_>, out: &mut Shaper) {
        let action = match &ctx.rule.spec.fault {
            FaultKind::HttpError {
                status,
                error_code,
                message,
                retry_after,
                retry_after_ms,
            } => {
                let r = shape::http_error(
                    Some(ctx.dependency(req)),
                    ctx.flavour,
                    *status,
                    error_code.as_deref(),
                    message.as_deref(),
                );
                Action::Respond(shape::with_retry_after(r, *retry_after, *retry_after_ms))
            }
            FaultKind::EmptyResponse { status } => Action::Respond(shape::empty(*status)),
            FaultKind::MalformedBody => Action::Respond(shape::malformed_body()),
            FaultKind::ResetMidBody => Action::Respond(shape::reset_mid_body()),
            FaultKind::ConnectionReset => Action::Reset,
            FaultKind::Hang => Action::Drop,
            FaultKind::LostResponse => Action::Lose,
            _ => return,
        };
        out.answer(action);
    }

    fn explore(&self, name: &str, draw: &Draw) -> Option<Drawn> {
        let kind = match name {
            "http_error" => FaultKind::HttpError {
                status: 503,
                error_code: None,
                message: None,
                retry_after: None,
                retry_after_ms: None,
            },
            "empty_response" => FaultKind::EmptyResponse { status: 502 },
            "malformed_body" => FaultKind::MalformedBody,
            "reset_mid_body" => FaultKind::ResetMidBody,
            "connection_reset" => FaultKind::ConnectionReset,
            "hang" => FaultKind::Hang,
            "lost_response" => {
                return Some((
                    FaultKind::LostResponse,
                    Draw::sobject("Event"),
                    draw.sometimes(),
                ))
            }
            _ => return None,
        };
        Some((kind, draw.either(), draw.sometimes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::family::test_support::Req;
    use crate::fault::model::{kind_names, FaultSpec};
    use crashcart_mocks::Dependency;

    #[test]
    fn the_first_answer_wins_and_statuses_are_checked() {
        let deps = Default::default();
        let hang = Rule::for_test(FaultSpec::now(FaultKind::Hang));
        let reset = Rule::for_test(FaultSpec::now(FaultKind::ConnectionReset));
        let r = Req::new(http::Method::GET);
        let req = r.info(Dependency::Salesforce, "query", None, None);
        let mut out = Shaper::default();
        for rule in [&hang, &reset] {
            let ctx = HitCtx {
                deps: &deps,
                flavour: Default::default(),
                rule,
            };
            HttpErrors.hit(&ctx, &req, &mut out);
        }
        assert!(matches!(out.verdict.action, Action::Drop));
        assert!(HttpErrors
            .validate(&FaultKind::EmptyResponse { status: 700 })
            .is_err());
    }

    #[test]
    fn a_lost_response_is_a_salesforce_fault_and_every_kind_explores() {
        let lost = Rule::for_test(FaultSpec::now(FaultKind::LostResponse));
        let r = Req::new(http::Method::POST);
        assert!(!HttpErrors.applies(&lost, &r.info(Dependency::Llm, "openai.chat", None, None)));
        assert!(HttpErrors.applies(
            &lost,
            &r.info(Dependency::Salesforce, "sobject.create", None, None)
        ));
        let draw = Draw {
            intensity: 30,
            on_llm: true,
            max_latency: std::time::Duration::from_secs(1),
        };
        for name in kind_names::HTTP {
            assert_eq!(HttpErrors.explore(name, &draw).expect(name).0.name(), *name);
        }
    }
}

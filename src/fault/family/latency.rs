//! Slow answers: a delay before a mock serves a request, and slower LLM generation (time to
//! first token, time between tokens).

use crashcart_mocks::RequestInfo;

use super::{Draw, Drawn, Family, HitCtx, Shaper};
use crate::fault::engine::Rule;
use crate::fault::model::{DependencyName, FaultKind, Latency, Trigger};

/// The latency family.
pub struct Latencies;

impl Family for Latencies {
    fn validate(&self, kind: &FaultKind) -> Result<(), String> {
        match kind {
            FaultKind::Latency { latency } => latency.validate(),
            FaultKind::LlmTiming { ttft, inter_token } => [ttft, inter_token]
                .into_iter()
                .flatten()
                .try_for_each(Latency::validate),
            _ => Ok(()),
        }
    }

    fn applies(&self, rule: &Rule, req: &RequestInfo<'_>) -> bool {
        match rule.spec.fault {
            FaultKind::LlmTiming { .. } => req.dependency == crashcart_mocks::Dependency::Llm,
            _ => true,
        }
    }

    fn hit(&self, ctx: &HitCtx<'_>, _req: &RequestInfo<'_>, out: &mut Shaper) {
        let mut rng = ctx.rule.trigger.rng.lock();
        match &ctx.rule.spec.fault {
            FaultKind::Latency { latency } => out.delay(latency.sample(&mut *rng)),
            FaultKind::LlmTiming { ttft, inter_token } => {
                if let Some(l) = ttft {
                    out.shaping.extra_ttft += l.sample(&mut *rng);
                }
                if let Some(l) = inter_token {
                    out.shaping.extra_inter_token += l.sample(&mut *rng);
                }
            }
            _ => {}
        }
    }

    fn explore(&self, name: &str, draw: &Draw) -> Option<Drawn> {
        let value = draw.latency();
        Some(match name {
            "latency" => (
                FaultKind::Latency {
                    latency: Latency::Fixed { value },
                },
                draw.either(),
                Trigger::Always,
            ),
            "llm_timing" => (
                FaultKind::LlmTiming {
                    ttft: Some(Latency::Fixed { value }),
                    inter_token: None,
                },
                Draw::on(DependencyName::Llm),
                Trigger::Always,
            ),
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fault::family::test_support::Req;
    use crate::fault::model::FaultSpec;
    use crashcart_mocks::Dependency;

    #[test]
    fn latency_adds_up_and_llm_timing_shapes_llm_requests_only() {
        let fixed = |ms| Latency::Fixed {
            value: Duration::from_millis(ms),
        };
        let slow = Rule::for_test(FaultSpec::now(FaultKind::Latency { latency: fixed(30) }));
        let deps = Default::default();
        let ctx = HitCtx {
            deps: &deps,
            flavour: Default::default(),
            rule: &slow,
        };
        let r = Req::new(http::Method::GET);
        let req = r.info(Dependency::Salesforce, "query", None, None);
        let mut out = Shaper::default();
        Latencies.hit(&ctx, &req, &mut out);
        Latencies.hit(&ctx, &req, &mut out);
        assert_eq!(out.verdict.delay, Some(Duration::from_millis(60)));
        let timing = Rule::for_test(FaultSpec::now(FaultKind::LlmTiming {
            ttft: Some(fixed(500)),
            inter_token: None,
        }));
        assert!(!Latencies.applies(&timing, &req));
        let llm = r.info(Dependency::Llm, "openai.chat", None, None);
        assert!(Latencies.applies(&timing, &llm));
        let mut out = Shaper::default();
        Latencies.hit(
            &HitCtx {
                rule: &timing,
                ..ctx
            },
            &llm,
            &mut out,
        );
        assert_eq!(out.shaping.extra_ttft, Duration::from_millis(500));
    }

    #[test]
    fn bad_distributions_are_refused() {
        let bad = Latency::Uniform {
            min: Duration::from_secs(2),
            max: Duration::from_secs(1),
        };
        assert!(Latencies
            .validate(&FaultKind::Latency { latency: bad })
            .is_err());
        assert!(Latencies
            .validate(&FaultKind::LlmTiming {
                ttft: None,
                inter_token: Some(bad)
            })
            .is_err());
    }
}

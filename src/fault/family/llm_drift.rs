//! LLM output drift, shaped inside the mock LLM's generation: JSON wrapped in prose or a code
//! fence, a key dropped or renamed; answers truncated at a token count; streams cut mid-frame
//! or ended with an error event.

use crashcart_mocks::fault::TextDrift;
use crashcart_mocks::{Dependency, RequestInfo};

use super::{Draw, Drawn, Family, HitCtx, Shaper};
use crate::fault::engine::Rule;
use crate::fault::model::{DependencyName, FaultKind, OutputDrift, Trigger};

/// The LLM drift family.
pub struct LlmDrift;

impl Family for LlmDrift {
    fn validate(&self, kind: &FaultKind) -> Result<(), String> {
        let tokens = |name: &str, n: u32| super::count_within(name, u64::from(n), 0, 1_000_000);
        match kind {
            FaultKind::LlmTruncate { max_tokens } => tokens("max_tokens", *max_tokens),
            FaultKind::LlmStreamCut { after_tokens }
            | FaultKind::LlmStreamError { after_tokens, .. } => {
                tokens("after_tokens", *after_tokens)
            }
            _ => Ok(()),
        }
    }

    fn applies(&self, _rule: &Rule, req: &RequestInfo<'_>) -> bool {
        req.dependency == Dependency::Llm
    }

    fn hit(&self, ctx: &HitCtx<'_>, _req: &RequestInfo<'_>, out: &mut Shaper) {
        let s = &mut out.shaping;
        match &ctx.rule.spec.fault {
            FaultKind::LlmOutputDrift { drift } => {
                s.drift = Some(match drift {
                    OutputDrift::WrapInProse => TextDrift::WrapInProse,
                    OutputDrift::CodeFence => TextDrift::CodeFence,
                    OutputDrift::DropKey { key } => TextDrift::DropKey(key.clone()),
                    OutputDrift::RenameKey { from, to } => TextDrift::RenameKey {
                        from: from.clone(),
                        to: to.clone(),
                    },
                })
            }
            FaultKind::LlmTruncate { max_tokens } => {
                s.max_tokens = Some(s.max_tokens.map_or(*max_tokens, |m| m.min(*max_tokens)))
            }
            FaultKind::LlmStreamCut { after_tokens } => s.cut_after_tokens = Some(*after_tokens),
            FaultKind::LlmStreamError {
                after_tokens,
                message,
            } => s.error_after_tokens = Some((*after_tokens, message.clone())),
            _ => {}
        }
    }

    fn explore(&self, name: &str, draw: &Draw) -> Option<Drawn> {
        let llm = Draw::on(DependencyName::Llm);
        Some(match name {
            "llm_output_drift" => (
                FaultKind::LlmOutputDrift {
                    drift: OutputDrift::RenameKey {
                        from: "summary".into(),
                        to: "synopsis".into(),
                    },
                },
                llm,
                Trigger::Always,
            ),
            "llm_truncate" => (
                FaultKind::LlmTruncate {
                    max_tokens: draw.fewer(60.0, 4.0) as u32,
                },
                llm,
                Trigger::Always,
            ),
            "llm_stream_cut" => (
                FaultKind::LlmStreamCut {
                    after_tokens: draw.fewer(40.0, 2.0) as u32,
                },
                llm,
                draw.sometimes(),
            ),
            "llm_stream_error" => (
                FaultKind::LlmStreamError {
                    after_tokens: draw.fewer(40.0, 2.0) as u32,
                    message: "upstream model error".into(),
                },
                llm,
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
    use crate::fault::model::{kind_names, FaultSpec};

    #[test]
    fn truncations_keep_the_shortest_and_only_llm_requests_drift() {
        let deps = Default::default();
        let r = Req::new(http::Method::POST);
        let llm = r.info(Dependency::Llm, "openai.chat", None, None);
        let mut out = Shaper::default();
        for n in [40, 12, 30] {
            let rule = Rule::for_test(FaultSpec::now(FaultKind::LlmTruncate { max_tokens: n }));
            assert!(LlmDrift.applies(&rule, &llm));
            assert!(!LlmDrift.applies(&rule, &r.info(Dependency::Salesforce, "query", None, None)));
            let ctx = HitCtx {
                deps: &deps,
                flavour: Default::default(),
                rule: &rule,
            };
            LlmDrift.hit(&ctx, &llm, &mut out);
        }
        assert_eq!(out.shaping.max_tokens, Some(12));
        let draw = Draw {
            intensity: 100,
            on_llm: false,
            max_latency: std::time::Duration::from_secs(1),
        };
        for name in kind_names::LLM_DRIFT {
            assert_eq!(LlmDrift.explore(name, &draw).expect(name).0.name(), *name);
        }
    }
}

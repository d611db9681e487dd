//! Governor limits, contention and overload: the org's daily quota spent (state), concurrent
//! long requests refused, row locks, another user's edit racing the SUT's update, the LLM's
//! slots shrunk (state) or its queue full.

use std::collections::BTreeMap;
use std::time::Duration;

use crashcart_mocks::llm::LlmError;
use crashcart_mocks::{Action, CannedResponse, Dependency, RequestInfo};

use super::{Draw, Drawn, Family, HitCtx, Need, Shaper, StateCtx, Undo};
use crate::fault::engine::{FaultError, Rule};
use crate::fault::model::{DependencyName, FaultKind, FaultSpec, Trigger};
use crate::fault::shape;

/// The governor family.
pub struct Governor;

/// The other user a concurrent edit writes as, when the fault names none.
const DEFAULT_EDITOR: &str = "dr.adams@crashcart.test";

/// Writes to Salesforce records (what a row lock refuses).
fn is_write(req: &RequestInfo<'_>) -> bool {
    matches!(
        req.operation,
        "sobject.create"
            | "sobject.update"
            | "sobject.upsert"
            | "sobject.delete"
            | "composite"
            | "composite.sobjects"
    )
}

impl Family for Governor {
    fn validate(&self, kind: &FaultKind) -> Result<(), String> {
        match kind {
            FaultKind::LlmSlots { slots: 0, .. } => Err("slots must be at least 1".into()),
            FaultKind::LlmSlots {
                slots, queue_depth, ..
            } => {
                super::count_within("slots", *slots as u64, 1, 10_000)?;
                super::count_within("queue_depth", queue_depth.unwrap_or(0) as u64, 0, 100_000)
            }
            FaultKind::LlmOverloaded { retry_after } => {
                super::within("retry_after", *retry_after, Duration::ZERO, super::MAX_WAIT)
            }
            FaultKind::ConcurrentEdit { fields, .. } => {
                super::count_within("fields", fields.len() as u64, 1, 100)
            }
            FaultKind::RowLock { records } => {
                super::count_within("records", records.len() as u64, 0, 10_000)
            }
            FaultKind::BulkRecordsFail { every } => {
                super::count_within("every", *every, 1, 1_000_000)
            }
            _ => Ok(()),
        }
    }

    fn needs(&self, kind: &FaultKind) -> Need {
        match kind {
            FaultKind::QuotaExhausted => Need::Salesforce,
            FaultKind::LlmSlots { .. } => Need::Llm,
            _ => Need::Any,
        }
    }

    fn apply_state(
        &self,
        ctx: &StateCtx<'_>,
        spec: &FaultSpec,
    ) -> Result<Option<Undo>, FaultError> {
        match &spec.fault {
            FaultKind::QuotaExhausted => {
                let sf = ctx.salesforce()?;
                let (used, max) = sf.api_usage();
                sf.set_api_usage(max);
                Ok(Some(Undo::new(Some("quota"), move |deps| {
                    if let Some(sf) = &deps.salesforce {
                        sf.set_api_usage(used);
                    }
                })))
            }
            FaultKind::LlmSlots {
                model,
                slots,
                queue_depth,
            } => shrink_slots(ctx, model.as_deref(), *slots, *queue_depth).map(Some),
            FaultKind::BulkJobStuck
            | FaultKind::BulkRecordsFail { .. }
            | FaultKind::BulkLimitSpent => bulk_state(ctx, &spec.fault).map(Some),
            _ => Ok(None),
        }
    }

    fn applies(&self, rule: &Rule, req: &RequestInfo<'_>) -> bool {
        match &rule.spec.fault {
            FaultKind::RowLock { records } => {
                is_write(req)
                    && (records.is_empty()
                        || req.record.is_some_and(|r| records.iter().any(|x| x == r)))
            }
            FaultKind::ConcurrentLongRequests => req.dependency == Dependency::Salesforce,
            FaultKind::ConcurrentEdit { object, .. } => {
                req.operation == "sobject.update"
                    && req.sobject.is_some_and(|o| o.eq_ignore_ascii_case(object))
                    && req.record.is_some_and(|r| !rule.edited.lock().contains(r))
            }
            FaultKind::LlmOverloaded { .. } => req.dependency == Dependency::Llm,
            // The Bulk faults change the org's Bulk state; a Bulk request while they last is
            // what shows they could act.
            FaultKind::BulkJobStuck
            | FaultKind::BulkRecordsFail { .. }
            | FaultKind::BulkLimitSpent => req.operation.starts_with("bulk."),
            _ => true,
        }
    }

    fn hit(&self, ctx: &HitCtx<'_>, req: &RequestInfo<'_>, out: &mut Shaper) {
        match &ctx.rule.spec.fault {
            FaultKind::ConcurrentLongRequests => {
                out.answer(Action::Respond(shape::concurrent_long_requests()))
            }
            FaultKind::RowLock { .. } => out.answer(Action::Respond(shape::unable_to_lock_row(
                req.record.unwrap_or("001000000000000AAA"),
            ))),
            FaultKind::LlmOverloaded { retry_after } => {
                let secs = retry_after.as_millis().div_ceil(1000) as u64;
                let e = LlmError::overloaded(secs, ctx.flavour);
                let r = CannedResponse::json(e.status(ctx.flavour), &e.openai_body(ctx.flavour))
                    .with_header("retry-after", &secs.to_string());
                out.answer(Action::Respond(r));
            }
            FaultKind::ConcurrentEdit {
                object,
                fields,
                user,
            } => edit_first(ctx, req, object, fields, user.as_deref()),
            _ => {}
        }
    }

    fn explore(&self, name: &str, draw: &Draw) -> Option<Drawn> {
        let sf = Draw::on(DependencyName::Salesforce);
        let llm = Draw::on(DependencyName::Llm);
        let always = Trigger::Always;
        Some(match name {
            "quota_exhausted" => (FaultKind::QuotaExhausted, sf, always),
            "concurrent_long_requests" => (FaultKind::ConcurrentLongRequests, sf, draw.sometimes()),
            "row_lock" => (
                FaultKind::RowLock { records: vec![] },
                Draw::sobject("Event"),
                draw.sometimes(),
            ),
            "concurrent_edit" => (
                FaultKind::ConcurrentEdit {
                    object: "Contact".into(),
                    fields: BTreeMap::from([(
                        "Phone".to_string(),
                        serde_json::json!("+1-555-0199"),
                    )]),
                    user: None,
                },
                sf,
                always,
            ),
            "llm_slots" => (
                FaultKind::LlmSlots {
                    model: None,
                    slots: 1,
                    queue_depth: Some(draw.fewer(8.0, 1.0) as usize),
                },
                llm,
                always,
            ),
            "llm_overloaded" => (
                FaultKind::LlmOverloaded {
                    retry_after: Duration::from_secs(1),
                },
                llm,
                draw.sometimes(),
            ),
            "bulk_job_stuck" => (FaultKind::BulkJobStuck, sf, always),
            "bulk_records_fail" => (
                FaultKind::BulkRecordsFail {
                    every: draw.fewer(20.0, 2.0) as u64,
                },
                sf,
                always,
            ),
            "bulk_limit_spent" => (FaultKind::BulkLimitSpent, sf, always),
            _ => return None,
        })
    }
}

/// Another user edits the record the SUT is about to update, once per record.
fn edit_first(
    ctx: &HitCtx<'_>,
    req: &RequestInfo<'_>,
    object: &str,
    fields: &BTreeMap<String, serde_json::Value>,
    user: Option<&str>,
) {
    let (Some(sf), Some(id)) = (&ctx.deps.salesforce, req.record) else {
        return;
    };
    ctx.rule.edited.lock().insert(id.to_string());
    let who = user.unwrap_or(DEFAULT_EDITOR);
    let body =
        serde_json::Value::Object(fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    if let Err(e) = sf.update_as(object, id, body, who) {
        tracing::warn!(fault = %ctx.rule.label, "concurrent edit of {id} failed: {e:?}");
    }
}

/// Fewer slots (and a shorter queue) for one model or all; restored after.
fn shrink_slots(
    ctx: &StateCtx<'_>,
    model: Option<&str>,
    slots: usize,
    queue_depth: Option<usize>,
) -> Result<Undo, FaultError> {
    let llm = ctx
        .deps
        .llm
        .as_ref()
        .ok_or(ctx.unavailable("the mock LLM"))?;
    let names: Vec<String> = match model {
        Some(m) => vec![llm
            .runtime(m)
            .map(|_| m.to_string())
            .ok_or_else(|| ctx.invalid(format!("no LLM model named {m:?}")))?],
        None => llm.models().into_iter().map(|p| p.name).collect(),
    };
    let mut before = vec![];
    for n in names {
        if let Some(rt) = llm.runtime(&n) {
            let p = rt.perf();
            before.push((n, p.slots, p.queue_depth));
            rt.set_slots(slots);
            if let Some(d) = queue_depth {
                rt.set_queue_depth(d);
            }
        }
    }
    Ok(Undo::new(Some("llm-slots"), move |deps| {
        if let Some(llm) = &deps.llm {
            for (name, slots, depth) in before {
                if let Some(rt) = llm.runtime(&name) {
                    rt.set_slots(slots);
                    rt.set_queue_depth(depth);
                }
            }
        }
    }))
}

/// Set a Bulk fault's state on the mock Salesforce; the undo restores what was there.
fn bulk_state(ctx: &StateCtx<'_>, kind: &FaultKind) -> Result<Undo, FaultError> {
    let sf = ctx.salesforce()?;
    Ok(match kind {
        FaultKind::BulkJobStuck => {
            sf.set_bulk_stalled(true);
            Undo::new(Some("bulk-stalled"), |deps| {
                if let Some(sf) = &deps.salesforce {
                    sf.set_bulk_stalled(false);
                }
            })
        }
        FaultKind::BulkRecordsFail { every } => {
            sf.set_bulk_fail_every(Some(*every));
            Undo::new(Some("bulk-fail-every"), |deps| {
                if let Some(sf) = &deps.salesforce {
                    sf.set_bulk_fail_every(None);
                }
            })
        }
        _ => {
            sf.set_bulk_record_limit(Some(sf.bulk_records_today()));
            Undo::new(Some("bulk-limit"), |deps| {
                if let Some(sf) = &deps.salesforce {
                    sf.set_bulk_record_limit(None);
                }
            })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::family::test_support::Req;
    use crate::fault::model::kind_names;

    #[test]
    fn row_locks_hit_writes_of_the_named_records_only() {
        let lock = Rule::for_test(FaultSpec::now(FaultKind::RowLock {
            records: vec!["00UA".into()],
        }));
        let r = Req::new(http::Method::PATCH);
        let write = |rec| r.info(Dependency::Salesforce, "sobject.update", Some("Event"), rec);
        assert!(Governor.applies(&lock, &write(Some("00UA"))));
        assert!(!Governor.applies(&lock, &write(Some("00UB"))));
        assert!(!Governor.applies(
            &lock,
            &r.info(Dependency::Salesforce, "query", None, Some("00UA"))
        ));
        assert_eq!(
            Governor
                .validate(&FaultKind::LlmSlots {
                    model: None,
                    slots: 0,
                    queue_depth: None
                })
                .unwrap_err(),
            "slots must be at least 1"
        );
    }

    #[test]
    fn bulk_faults_count_bulk_requests_only() {
        let stuck = Rule::for_test(FaultSpec::now(FaultKind::BulkJobStuck));
        let r = Req::new(http::Method::GET);
        let bulk = r.info(Dependency::Salesforce, "bulk.ingest", None, None);
        let rest = r.info(Dependency::Salesforce, "sobject.get", Some("Contact"), None);
        assert!(Governor.applies(&stuck, &bulk));
        assert!(
            !Governor.applies(&stuck, &rest),
            "a run without Bulk proves nothing"
        );
        assert!(Governor
            .validate(&FaultKind::BulkRecordsFail { every: 0 })
            .is_err());
    }

    #[test]
    fn overload_answers_in_the_flavours_shape_with_retry_after() {
        let over = Rule::for_test(FaultSpec::now(FaultKind::LlmOverloaded {
            retry_after: Duration::from_millis(1500),
        }));
        let deps = Default::default();
        let ctx = HitCtx {
            deps: &deps,
            flavour: crashcart_mocks::llm::Flavour::Vllm,
            rule: &over,
        };
        let r = Req::new(http::Method::POST);
        let req = r.info(Dependency::Llm, "openai.chat", None, None);
        assert!(Governor.applies(&over, &req));
        let mut out = Shaper::default();
        Governor.hit(&ctx, &req, &mut out);
        let Action::Respond(resp) = &out.verdict.action else {
            panic!("{:?}", out.verdict.action)
        };
        assert_eq!(resp.status.as_u16(), 503);
        assert_eq!(resp.headers["retry-after"], "2");
        let draw = Draw {
            intensity: 80,
            on_llm: false,
            max_latency: Duration::from_secs(1),
        };
        for name in kind_names::GOVERNOR {
            assert_eq!(Governor.explore(name, &draw).expect(name).0.name(), *name);
        }
    }
}

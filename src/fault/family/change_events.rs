//! Change events: the Streaming API's subscribers dropped (they must handshake and
//! resubscribe), events lost while the fault lasts, replay ids put past retention (a
//! subscriber replaying from one must resync), and the hourly allowance of published
//! platform events spent. Each acts on the mock Salesforce's state and counts as fired only
//! when a request it can act on came while it lasted (a Streaming API request; a publish).

use crashcart_mocks::RequestInfo;

use super::{Draw, Drawn, Family, StateCtx, Undo};
use crate::fault::engine::{FaultError, Rule};
use crate::fault::model::{DependencyName, FaultKind, FaultSpec, Trigger};

/// The change-events family.
pub struct ChangeEvents;

impl Family for ChangeEvents {
    fn apply_state(
        &self,
        ctx: &StateCtx<'_>,
        spec: &FaultSpec,
    ) -> Result<Option<Undo>, FaultError> {
        let sf = ctx.salesforce()?;
        Ok(match spec.fault {
            FaultKind::SubscriberDisconnect => {
                sf.streaming_disconnect_all();
                None
            }
            FaultKind::EventsDropped => {
                sf.set_streaming_dropping(true);
                Some(Undo::new(Some("streaming-dropping"), |deps| {
                    if let Some(sf) = &deps.salesforce {
                        sf.set_streaming_dropping(false);
                    }
                }))
            }
            FaultKind::ReplayExpired => {
                let before = sf.streaming_expire_replays();
                Some(Undo::new(Some("streaming-retention"), move |deps| {
                    if let Some(sf) = &deps.salesforce {
                        sf.set_streaming_expired_through(before);
                    }
                }))
            }
            FaultKind::PublishLimitSpent => {
                let (limit, used) = sf.event_publish_usage();
                sf.set_event_publish_limit(used);
                Some(Undo::new(Some("publish-limit"), move |deps| {
                    if let Some(sf) = &deps.salesforce {
                        sf.set_event_publish_limit(limit);
                    }
                }))
            }
            _ => None,
        })
    }

    /// A request the fault can act on while it lasts is what shows it could: a Streaming API
    /// request, or for the publish limit a publish (a write to a `__e` object).
    fn applies(&self, rule: &Rule, req: &RequestInfo<'_>) -> bool {
        match rule.spec.fault {
            FaultKind::PublishLimitSpent => req.sobject.is_some_and(|o| o.ends_with("__e")),
            _ => req.operation == "streaming",
        }
    }

    fn explore(&self, name: &str, _draw: &Draw) -> Option<Drawn> {
        let kind = match name {
            "subscriber_disconnect" => FaultKind::SubscriberDisconnect,
            "events_dropped" => FaultKind::EventsDropped,
            "replay_expired" => FaultKind::ReplayExpired,
            "publish_limit_spent" => FaultKind::PublishLimitSpent,
            _ => return None,
        };
        Some((kind, Draw::on(DependencyName::Salesforce), Trigger::Always))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::family::test_support::Req;
    use crate::fault::model::kind_names;
    use crashcart_mocks::Dependency;

    #[test]
    fn change_event_faults_count_streaming_requests_only() {
        let r = Req::new(http::Method::POST);
        let streaming = r.info(Dependency::Salesforce, "streaming", None, None);
        let rest = r.info(
            Dependency::Salesforce,
            "sobject.create",
            Some("Event"),
            None,
        );
        let draw = Draw {
            intensity: 50,
            on_llm: false,
            max_latency: std::time::Duration::from_secs(1),
        };
        for name in kind_names::CHANGE_EVENTS {
            let (kind, _, _) = ChangeEvents.explore(name, &draw).expect(name);
            assert_eq!(kind.name(), *name);
            let rule = Rule::for_test(FaultSpec::now(kind));
            assert!(ChangeEvents.applies(&rule, &streaming), "{name}");
            assert!(
                !ChangeEvents.applies(&rule, &rest),
                "{name}: no subscriber, no proof"
            );
        }
    }
}

//! Network faults between the SUT and a mock: toxics on the chaos proxy in front of it (or
//! an external Toxiproxy, or the simulated network), removed when the fault ends.

use super::{Draw, Drawn, Family, Need, StateCtx, Undo};
use crate::fault::engine::FaultError;
use crate::fault::model::{Direction, FaultKind, FaultSpec, Trigger};

/// The network family.
pub struct Network;

impl Family for Network {
    fn validate(&self, kind: &FaultKind) -> Result<(), String> {
        use super::{count_within, within, MAX_DELAY, MAX_WAIT};
        let zero = std::time::Duration::ZERO;
        match kind {
            FaultKind::NetworkLatency {
                latency, jitter, ..
            } => {
                within("latency", *latency, zero, MAX_DELAY)?;
                within("jitter", jitter.unwrap_or_default(), zero, MAX_DELAY)
            }
            FaultKind::Bandwidth { rate_kb, .. } => {
                count_within("rate_kb", u64::from(*rate_kb), 1, 10_000_000)
            }
            FaultKind::Slicer {
                average_size,
                size_variation,
                delay,
                ..
            } => {
                count_within("average_size", u64::from(*average_size), 1, 1_000_000)?;
                count_within(
                    "size_variation",
                    u64::from(*size_variation),
                    0,
                    u64::from(*average_size),
                )?;
                within(
                    "delay",
                    delay.unwrap_or_default(),
                    zero,
                    std::time::Duration::from_secs(10),
                )
            }
            FaultKind::SlowClose { delay } => within("delay", *delay, zero, MAX_DELAY),
            FaultKind::NetworkTimeout { after, .. } | FaultKind::ResetPeer { after } => {
                within("after", after.unwrap_or_default(), zero, MAX_WAIT)
            }
            FaultKind::LimitData { bytes, .. } => {
                count_within("bytes", *bytes, 0, 1_000_000_000_000)
            }
            _ => Ok(()),
        }
    }

    fn needs(&self, _kind: &FaultKind) -> Need {
        Need::Network
    }

    fn apply_state(
        &self,
        ctx: &StateCtx<'_>,
        spec: &FaultSpec,
    ) -> Result<Option<Undo>, FaultError> {
        let net = ctx
            .deps
            .network
            .as_ref()
            .ok_or(ctx.unavailable("a chaos proxy"))?;
        let applied = net
            .apply(spec.target.dependency, &spec.fault, ctx.label)
            .map_err(|m| ctx.invalid(m))?;
        Ok(Some(Undo::new(None, move |deps| {
            if let Some(net) = &deps.network {
                net.remove(&applied);
            }
        })))
    }

    fn explore(&self, name: &str, draw: &Draw) -> Option<Drawn> {
        let both = Direction::Both;
        let kind = match name {
            "partition" => FaultKind::Partition { direction: both },
            "reset_peer" => FaultKind::ResetPeer { after: None },
            "refuse_connections" => FaultKind::RefuseConnections,
            "network_latency" => FaultKind::NetworkLatency {
                latency: draw.latency(),
                jitter: None,
                direction: both,
            },
            "bandwidth" => FaultKind::Bandwidth {
                rate_kb: draw.fewer(200.0, 1.0) as u32,
                direction: both,
            },
            "slicer" => FaultKind::Slicer {
                average_size: draw.fewer(256.0, 8.0) as u32,
                size_variation: 4,
                delay: Some(std::time::Duration::from_millis(
                    draw.fewer(1.0, 20.0) as u64
                )),
                direction: both,
            },
            "slow_close" => FaultKind::SlowClose {
                delay: draw.latency(),
            },
            "network_timeout" => FaultKind::NetworkTimeout {
                after: Some(draw.max_latency.mul_f64(1.0 - draw.share() * 0.9)),
                direction: both,
            },
            "limit_data" => FaultKind::LimitData {
                bytes: draw.fewer(20_000.0, 200.0) as u64,
                direction: both,
            },
            _ => return None,
        };
        Some((kind, draw.either(), Trigger::Always))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::model::kind_names;

    #[test]
    fn network_faults_need_a_proxy_and_every_kind_explores() {
        let deps = Default::default();
        let ctx = StateCtx {
            deps: &deps,
            label: "cut",
        };
        let spec = FaultSpec::now(FaultKind::RefuseConnections);
        assert!(matches!(
            Network.apply_state(&ctx, &spec),
            Err(FaultError::Unavailable {
                needs: "a chaos proxy",
                ..
            })
        ));
        let draw = Draw {
            intensity: 50,
            on_llm: true,
            max_latency: std::time::Duration::from_secs(2),
        };
        for name in kind_names::NETWORK {
            let (kind, target, _) = Network.explore(name, &draw).expect(name);
            assert!(kind.is_network() && kind.name() == *name);
            assert_eq!(target.dependency, Some(crate::fault::DependencyName::Llm));
        }
    }
}

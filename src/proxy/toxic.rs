//! Toxics, as Toxiproxy defines them: a type, a stream (`upstream` = client → server,
//! `downstream` = server → client), a toxicity (the chance a connection gets the toxic), and
//! integer attributes. Names default to `{type}_{stream}`.
//!
//! | type | attributes | effect |
//! |---|---|---|
//! | `latency` | `latency`, `jitter` (ms) | every chunk waits latency ± jitter after it arrived |
//! | `bandwidth` | `rate` (KB/s) | chunks are paced to the rate |
//! | `slicer` | `average_size`, `size_variation` (bytes), `delay` (µs) | chunks are cut into slices, with a delay between them |
//! | `slow_close` | `delay` (ms) | the close is delayed |
//! | `timeout` | `timeout` (ms) | data stops; the connection closes after `timeout` (never if 0) |
//! | `reset_peer` | `timeout` (ms) | the connection is reset (RST) after `timeout` |
//! | `limit_data` | `bytes` | the connection closes after that many bytes |

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which way data flows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Client → upstream server.
    Upstream,
    /// Upstream server → client.
    Downstream,
}

impl Stream {
    /// As Toxiproxy writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// A toxic type's attributes: (name, default).
pub type Attributes = &'static [(&'static str, i64)];

/// The kinds of toxic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToxicType {
    /// Latency with jitter.
    Latency,
    /// Bandwidth limit.
    Bandwidth,
    /// Slices with delays.
    Slicer,
    /// Delayed close.
    SlowClose,
    /// Stop data, close later.
    Timeout,
    /// Reset after a delay.
    ResetPeer,
    /// Close after N bytes.
    LimitData,
}

impl ToxicType {
    /// Every type, with its name and attributes (name, default).
    pub const ALL: [(ToxicType, &'static str, Attributes); 7] = [
        (
            ToxicType::Latency,
            "latency",
            &[("latency", 0), ("jitter", 0)],
        ),
        (ToxicType::Bandwidth, "bandwidth", &[("rate", 0)]),
        (
            ToxicType::Slicer,
            "slicer",
            &[("average_size", 0), ("size_variation", 0), ("delay", 0)],
        ),
        (ToxicType::SlowClose, "slow_close", &[("delay", 0)]),
        (ToxicType::Timeout, "timeout", &[("timeout", 0)]),
        (ToxicType::ResetPeer, "reset_peer", &[("timeout", 0)]),
        (ToxicType::LimitData, "limit_data", &[("bytes", 0)]),
    ];

    /// By name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, n, _)| *n == name)
            .map(|(t, _, _)| *t)
    }

    /// The name.
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(t, _, _)| *t == self)
            .map(|(_, n, _)| *n)
            .unwrap_or("?")
    }

    fn attributes(self) -> &'static [(&'static str, i64)] {
        Self::ALL
            .iter()
            .find(|(t, _, _)| *t == self)
            .map(|(_, _, a)| *a)
            .unwrap_or(&[])
    }
}

/// One toxic, as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Toxic {
    /// Name, unique per proxy.
    pub name: String,
    /// Type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// Direction.
    pub stream: Stream,
    /// Chance (0–1) that a connection gets this toxic.
    pub toxicity: f64,
    /// Attributes.
    pub attributes: BTreeMap<String, i64>,
    #[serde(skip)]
    pub(crate) ty: Option<ToxicType>,
}

impl Toxic {
    /// The parsed type.
    pub fn ty(&self) -> ToxicType {
        self.ty.unwrap_or(ToxicType::Latency)
    }
    /// An attribute (its default when unset).
    pub fn attr(&self, key: &str) -> i64 {
        self.attributes.get(key).copied().unwrap_or(0)
    }

    /// Build a toxic from its API JSON, checking type, stream, toxicity and attributes.
    /// `existing` (for an update) supplies what the JSON leaves out.
    pub fn from_json(v: &Value, existing: Option<&Toxic>) -> Result<Toxic, String> {
        let obj = v
            .as_object()
            .ok_or("bad request: the body must be a JSON object")?;
        let kind = match (obj.get("type"), existing) {
            (Some(Value::String(t)), _) => t.clone(),
            (Some(other), _) => {
                return Err(format!("bad request: type must be a string, got {other}"))
            }
            (None, Some(e)) => e.kind.clone(),
            (None, None) => return Err("invalid toxic type: missing field \"type\"".into()),
        };
        let ty = ToxicType::parse(&kind).ok_or_else(|| {
            let known: Vec<&str> = ToxicType::ALL.iter().map(|(_, n, _)| *n).collect();
            format!("invalid toxic type: {kind:?} (known: {})", known.join(", "))
        })?;
        if existing.is_some_and(|e| e.kind != kind) {
            return Err("bad request: a toxic's type cannot change".into());
        }
        let stream = match (obj.get("stream"), existing) {
            (Some(Value::String(s)), _) => match s.as_str() {
                "upstream" => Stream::Upstream,
                "downstream" => Stream::Downstream,
                other => {
                    return Err(format!(
                        "invalid stream: {other:?} (expected upstream or downstream)"
                    ))
                }
            },
            (Some(other), _) => return Err(format!("invalid stream: {other}")),
            (None, Some(e)) => e.stream,
            (None, None) => Stream::Downstream,
        };
        let toxicity = match (obj.get("toxicity"), existing) {
            (Some(t), _) => t
                .as_f64()
                .ok_or_else(|| format!("bad request: toxicity must be a number, got {t}"))?,
            (None, Some(e)) => e.toxicity,
            (None, None) => 1.0,
        };
        if !(0.0..=1.0).contains(&toxicity) {
            return Err(format!(
                "bad request: toxicity must be within 0 and 1, got {toxicity}"
            ));
        }
        let mut attributes: BTreeMap<String, i64> = match existing {
            Some(e) => e.attributes.clone(),
            None => ty
                .attributes()
                .iter()
                .map(|(k, d)| (k.to_string(), *d))
                .collect(),
        };
        if let Some(a) = obj.get("attributes") {
            let a = a
                .as_object()
                .ok_or("bad request: attributes must be an object")?;
            for (k, val) in a {
                if !ty.attributes().iter().any(|(name, _)| name == k) {
                    return Err(format!("bad request: {kind} has no attribute {k:?}"));
                }
                let n = val
                    .as_i64()
                    .or_else(|| val.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64));
                let n = n.ok_or_else(|| {
                    format!("bad request: attribute {k} must be an integer, got {val}")
                })?;
                if n < 0 {
                    return Err(format!(
                        "bad request: attribute {k} must not be negative, got {n}"
                    ));
                }
                attributes.insert(k.clone(), n);
            }
        }
        let name = match (obj.get("name"), existing) {
            (Some(Value::String(n)), _) if !n.is_empty() => n.clone(),
            (Some(Value::String(_)) | None, Some(e)) => e.name.clone(),
            (Some(Value::String(_)) | None, None) => format!("{kind}_{}", stream.as_str()),
            (Some(other), _) => {
                return Err(format!("bad request: name must be a string, got {other}"))
            }
        };
        Ok(Toxic {
            name,
            kind,
            stream,
            toxicity,
            attributes,
            ty: Some(ty),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_follow_toxiproxy() {
        let t = Toxic::from_json(
            &json!({"type": "latency", "attributes": {"latency": 100}}),
            None,
        )
        .unwrap();
        assert_eq!(t.name, "latency_downstream");
        assert_eq!(t.stream, Stream::Downstream);
        assert_eq!(t.toxicity, 1.0);
        assert_eq!((t.attr("latency"), t.attr("jitter")), (100, 0));
        let v = serde_json::to_value(&t).unwrap();
        assert_eq!(
            v,
            json!({"name": "latency_downstream", "type": "latency", "stream": "downstream", "toxicity": 1.0, "attributes": {"jitter": 0, "latency": 100}})
        );
    }

    #[test]
    fn bad_toxics_are_named() {
        let e = |v| Toxic::from_json(&v, None).unwrap_err();
        assert!(e(json!({"type": "lava"})).starts_with("invalid toxic type"));
        assert!(e(json!({"type": "latency", "attributes": {"latency": -5}}))
            .contains("must not be negative"));
        assert!(e(json!({"type": "latency", "attributes": {"colour": 1}}))
            .contains("no attribute \"colour\""));
        assert!(e(json!({"type": "latency", "stream": "sideways"})).starts_with("invalid stream"));
        assert!(e(json!({"type": "latency", "toxicity": 2})).contains("within 0 and 1"));
        assert!(e(json!([])).contains("JSON object"));
    }
}

//! What the reference integration's Salesforce client learns of schema drift, so it stops
//! sending what the org refuses:
//! - optional fields the org no longer has (INVALID_FIELD): left out of later writes;
//! - picklist values a restricted picklist withdrew: the field is left out when it would
//!   carry one;
//! - a field the org now requires and the integration cannot fill (REQUIRED_FIELD_MISSING):
//!   writes that could create a record of that object are held (they fail at once, unsent)
//!   until the object's describe shows the field optional again, checked at most once per
//!   [`PROBE_EVERY`] by one caller.
//!
//! All of it is off under the `no-drift-handling` defect.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::time::Instant;

use super::resilience::error_code;
use super::salesforce::SfError;
use crate::transport::HttpResponse;

/// Fields a booking cannot do without (never dropped on drift).
const REQUIRED: [&str; 4] = ["LastName", "StartDateTime", "EndDateTime", "Booking_Key__c"];

/// How often a held object's describe is read to see whether the requirement went away.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// Writes that could create a record of an object, held since the org required fields the
/// integration does not have.
#[derive(Debug)]
struct Hold {
    fields: Vec<String>,
    /// When the next caller may read the describe; pushed on by the caller that does.
    probe_at: Instant,
}

/// Whether a write that could create a record may go out.
#[derive(Debug)]
pub enum HoldState {
    /// Nothing held: send.
    Clear,
    /// Held, and another caller checks (or checked recently): fail with this, unsent.
    Held(SfError),
    /// Held, and this caller is to read the object's describe and report with
    /// [`Drift::probed`].
    Probe,
}

/// The drift learnt so far.
#[derive(Debug, Default)]
pub struct Drift {
    off: bool,
    /// Optional fields the org rejected: not sent again.
    dropped: Mutex<BTreeSet<String>>,
    /// Values a restricted picklist withdrew, by field.
    withdrawn: Mutex<BTreeSet<(String, String)>>,
    /// Held objects by name.
    holds: Mutex<HashMap<String, Hold>>,
}

/// The object a data-API path writes (`/sobjects/{object}/…`).
pub fn object_of(path: &str) -> Option<&str> {
    path.strip_prefix("/sobjects/")?
        .split(['/', '?'])
        .next()
        .filter(|o| !o.is_empty())
}

/// The object a write may create a record of: a create (`POST /sobjects/{object}`) or an
/// upsert by external id (`PATCH /sobjects/{object}/{field}/{value}`).
pub fn creates<'a>(method: &http::Method, path: &'a str) -> Option<&'a str> {
    let object = object_of(path)?;
    let segments = path
        .split('?')
        .next()?
        .split('/')
        .filter(|s| !s.is_empty())
        .count();
    match (method.as_str(), segments) {
        ("POST", 2) | ("PATCH", 4) => Some(object),
        _ => None,
    }
}

/// The field names an error answer names (`fields`, else a quoted name in `message`).
fn named_fields(r: &HttpResponse) -> Vec<String> {
    let v = r.json();
    let mut fields: Vec<String> = v[0]["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_string))
        .collect();
    if fields.is_empty() {
        // "No such column 'X' on sobject of type Y"
        let msg = v[0]["message"].as_str().unwrap_or_default();
        if let Some(name) = msg.split('\'').nth(1) {
            fields.push(name.to_string());
        }
    }
    fields
}

impl Drift {
    /// Learning on (`false` under the `no-drift-handling` defect).
    pub fn new(on: bool) -> Self {
        Self {
            off: !on,
            ..Self::default()
        }
    }

    /// `fields` without what the org was learnt to refuse.
    pub fn without_dropped(&self, fields: &Value) -> Value {
        if self.off {
            return fields.clone();
        }
        let dropped = self.dropped.lock();
        let withdrawn = self.withdrawn.lock();
        let mut out = fields.clone();
        if let Some(m) = out.as_object_mut() {
            m.retain(|k, v| {
                !dropped.contains(k)
                    && !v
                        .as_str()
                        .is_some_and(|v| withdrawn.contains(&(k.clone(), v.to_string())))
            });
        }
        out
    }

    /// A write the org refused with INVALID_FIELD for an optional field, or with a value a
    /// restricted picklist withdrew: remember to leave that field (or that value) out, and
    /// say whether a retry without it makes sense.
    pub fn learn_refused_field(&self, r: &HttpResponse, sent: &Value) -> bool {
        let code = error_code(r);
        let picklist = code.as_deref() == Some("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST");
        if self.off || r.status != 400 || !(picklist || code.as_deref() == Some("INVALID_FIELD")) {
            return false;
        }
        let optional: Vec<String> = named_fields(r)
            .into_iter()
            .filter(|f| !REQUIRED.contains(&f.as_str()) && sent.get(f).is_some())
            .collect();
        if optional.is_empty() {
            return false;
        }
        if picklist {
            // Only that value is gone: the field stays for the others.
            self.withdrawn.lock().extend(
                optional
                    .into_iter()
                    .filter_map(|f| Some((f.clone(), sent.get(&f)?.as_str()?.to_string()))),
            );
        } else {
            self.dropped.lock().extend(optional);
        }
        true
    }

    /// A write to `object` the org refused with REQUIRED_FIELD_MISSING for fields the
    /// integration did not send: hold that object's creating writes from now on.
    pub fn learn_required(&self, object: &str, r: &HttpResponse, sent: &Value) {
        if self.off || r.status != 400 || error_code(r).as_deref() != Some("REQUIRED_FIELD_MISSING")
        {
            return;
        }
        let missing: Vec<String> = named_fields(r)
            .into_iter()
            .filter(|f| sent.get(f).is_none_or(Value::is_null))
            .collect();
        if missing.is_empty() {
            return;
        }
        let mut holds = self.holds.lock();
        let hold = holds.entry(object.to_string()).or_insert_with(|| Hold {
            fields: vec![],
            probe_at: Instant::now() + PROBE_EVERY,
        });
        for f in missing {
            if !hold.fields.contains(&f) {
                hold.fields.push(f);
            }
        }
    }

    /// Whether creating `object`s is held (no probe taken).
    pub fn is_held(&self, object: &str) -> bool {
        self.holds.lock().contains_key(object)
    }

    /// Whether a write that could create a record of `object` may go out now.
    pub fn hold(&self, object: &str) -> HoldState {
        let mut holds = self.holds.lock();
        let Some(hold) = holds.get_mut(object) else {
            return HoldState::Clear;
        };
        let now = Instant::now();
        if now >= hold.probe_at {
            hold.probe_at = now + PROBE_EVERY;
            return HoldState::Probe;
        }
        HoldState::Held(held(object, &hold.fields))
    }

    /// The describe of a held object, read by the caller [`Drift::hold`] chose: `Ok` when no
    /// held field is required any more (the hold is lifted), else the error to fail with.
    pub fn probed(&self, object: &str, describe: Option<&Value>) -> Result<(), SfError> {
        let mut holds = self.holds.lock();
        let Some(hold) = holds.get(object) else {
            return Ok(());
        };
        let still_required = |name: &str| match describe {
            // No describe to go by: still held.
            None => true,
            Some(d) => d["fields"].as_array().into_iter().flatten().any(|f| {
                f["name"]
                    .as_str()
                    .is_some_and(|n| n.eq_ignore_ascii_case(name))
                    && f["nillable"] == false
                    && f["createable"] == true
                    && f["defaultedOnCreate"] != true
            }),
        };
        if hold.fields.iter().any(|f| still_required(f)) {
            return Err(held(object, &hold.fields));
        }
        holds.remove(object);
        Ok(())
    }
}

/// The error a held write fails with (as Salesforce would have answered it, unsent).
fn held(object: &str, fields: &[String]) -> SfError {
    SfError::Status {
        status: 400,
        code: "REQUIRED_FIELD_MISSING".into(),
        message: format!(
            "not sent: {object} requires {}, which this integration cannot fill (held until \
             the org's describe shows it optional)",
            fields.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn refusal(code: &str, fields: &[&str]) -> HttpResponse {
        HttpResponse {
            status: 400,
            headers: Default::default(),
            body: json!([{"message": "refused", "errorCode": code, "fields": fields}])
                .to_string()
                .into(),
        }
    }

    fn describe(required: bool) -> Value {
        json!({"fields": [
            {"name": "LastName", "nillable": false, "createable": true, "defaultedOnCreate": false},
            {"name": "MailingCity", "nillable": !required, "createable": true, "defaultedOnCreate": false},
        ]})
    }

    #[test]
    fn objects_of_paths() {
        assert_eq!(object_of("/sobjects/Contact"), Some("Contact"));
        assert_eq!(object_of("/sobjects/Contact/Ext__c/1"), Some("Contact"));
        assert_eq!(object_of("/query?q=x"), None);
        use http::Method;
        assert_eq!(creates(&Method::POST, "/sobjects/Event"), Some("Event"));
        assert_eq!(
            creates(&Method::PATCH, "/sobjects/Contact/Ext__c/1"),
            Some("Contact")
        );
        assert_eq!(creates(&Method::PATCH, "/sobjects/Contact/003x"), None);
        assert_eq!(creates(&Method::DELETE, "/sobjects/Contact/003x"), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_required_field_holds_creates_until_describe_shows_it_optional() {
        let d = Drift::new(true);
        let sent = json!({"LastName": "Doe"});
        assert!(matches!(d.hold("Contact"), HoldState::Clear));
        // A missing field the integration did send (null) or did not: both hold.
        d.learn_required(
            "Contact",
            &refusal("REQUIRED_FIELD_MISSING", &["MailingCity"]),
            &sent,
        );
        let HoldState::Held(e) = d.hold("Contact") else {
            panic!("held right after the refusal")
        };
        assert!(e.to_string().contains("MailingCity"), "{e}");
        assert!(matches!(d.hold("Event"), HoldState::Clear));
        // One caller probes per period; the others fail meanwhile.
        tokio::time::advance(PROBE_EVERY).await;
        assert!(matches!(d.hold("Contact"), HoldState::Probe));
        assert!(matches!(d.hold("Contact"), HoldState::Held(_)));
        assert!(d.probed("Contact", Some(&describe(true))).is_err());
        assert!(d.probed("Contact", None).is_err(), "no describe: held");
        tokio::time::advance(PROBE_EVERY).await;
        assert!(matches!(d.hold("Contact"), HoldState::Probe));
        assert!(d.probed("Contact", Some(&describe(false))).is_ok());
        assert!(matches!(d.hold("Contact"), HoldState::Clear));
    }

    #[test]
    fn what_does_not_hold() {
        let d = Drift::new(true);
        // A required field the integration sent a value for is its own problem, not drift.
        d.learn_required(
            "Contact",
            &refusal("REQUIRED_FIELD_MISSING", &["LastName"]),
            &json!({"LastName": "Doe"}),
        );
        d.learn_required(
            "Contact",
            &refusal("INVALID_FIELD", &["MailingCity"]),
            &json!({}),
        );
        assert!(matches!(d.hold("Contact"), HoldState::Clear));
        // Under no-drift-handling nothing is learnt.
        let off = Drift::new(false);
        off.learn_required(
            "Contact",
            &refusal("REQUIRED_FIELD_MISSING", &["MailingCity"]),
            &json!({}),
        );
        assert!(matches!(off.hold("Contact"), HoldState::Clear));
        assert!(!off.learn_refused_field(
            &refusal("INVALID_FIELD", &["Email"]),
            &json!({"Email": "a@b.c"})
        ));
    }

    #[test]
    fn refused_optional_fields_and_withdrawn_values_are_left_out() {
        let d = Drift::new(true);
        let sent = json!({"LastName": "Doe", "Email": "a@b.c", "Lang__c": "Spanish"});
        assert!(d.learn_refused_field(&refusal("INVALID_FIELD", &["Email"]), &sent));
        assert!(d.learn_refused_field(
            &refusal("INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", &["Lang__c"]),
            &sent
        ));
        // A field a booking cannot do without is never dropped.
        assert!(!d.learn_refused_field(&refusal("INVALID_FIELD", &["LastName"]), &sent));
        assert_eq!(d.without_dropped(&sent), json!({"LastName": "Doe"}));
        assert_eq!(
            d.without_dropped(&json!({"LastName": "Doe", "Lang__c": "English"})),
            json!({"LastName": "Doe", "Lang__c": "English"})
        );
    }
}

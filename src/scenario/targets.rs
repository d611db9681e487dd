//! What a scenario may name, and whether what it names can match: the org's sObjects and
//! fields (the built-in schema with the scenario's schema files merged in), the mock LLM's
//! models, the mocks' operation names, the connected apps. A fault whose target cannot match
//! never fires and proves nothing; an effect on an object or field that does not exist always
//! fails. Both are refused here, with the closest name ("did you mean").

use std::path::Path;

use crashcart_mocks::llm::PersonaSet;
use crashcart_mocks::salesforce::schema::ObjectDef;
use crashcart_mocks::salesforce::{OrgSchema, SalesforceConfig};

use super::raw::{RawDoubleBooking, RawEffect, RawScenario};
use crate::fault::model::{DependencyName, FaultKind, Target};

/// The HTTP methods a fault may name.
const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The names a scenario's mocks answer to.
pub struct Names {
    org: OrgSchema,
    /// Model names and aliases served.
    models: Vec<String>,
    client_ids: Vec<String>,
}

/// A data file of the scenario that cannot be read, and where it is named.
pub struct FileProblem {
    /// Key path of the file's name in the scenario.
    pub at: String,
    /// What is wrong (never the file's contents: it may be anything).
    pub message: String,
}

/// A mock data file's error in words that never quote it.
fn file_problem(at: String, what: &str, e: &crashcart_mocks::MockError) -> FileProblem {
    use crashcart_mocks::MockError as E;
    let message = match e {
        // The mocks' parse errors never quote the file (no snippet, quoted text elided).
        E::Parse { message, .. } => format!("not a valid {what} (YAML or JSON): {message}"),
        E::Read { .. } => format!("cannot read the {what}"),
        _ => format!("not a valid {what}: {e}"),
    };
    FileProblem { at, message }
}

impl Names {
    /// The names of the scenario's mocks, its schema and persona files merged in.
    pub fn load(raw: &RawScenario, dir: &Path) -> Result<Self, Vec<FileProblem>> {
        let mut problems = vec![];
        let mut org = OrgSchema::default_schema().map_err(|e| {
            vec![FileProblem {
                at: "mocks.salesforce".into(),
                message: e.to_string(),
            }]
        })?;
        for (i, p) in raw.mocks.salesforce.schema.iter().enumerate() {
            if let Err(e) = org.merge_file(&dir.join(p)) {
                problems.push(file_problem(
                    format!("mocks.salesforce.schema[{i}]"),
                    "org schema",
                    &e,
                ));
            }
        }
        let mut personas = PersonaSet::builtin();
        for (i, p) in raw.mocks.llm.personas.iter().enumerate() {
            if let Err(e) = personas.merge_file(&dir.join(p)) {
                problems.push(file_problem(
                    format!("mocks.llm.personas[{i}]"),
                    "personas file",
                    &e,
                ));
            }
        }
        if let Err(e) = personas.retain(&raw.mocks.llm.models) {
            problems.push(FileProblem {
                at: "mocks.llm.models".into(),
                message: e.to_string(),
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            org,
            models: personas
                .models()
                .iter()
                .flat_map(|m| std::iter::once(m.name.clone()).chain(m.aliases.iter().cloned()))
                .collect(),
            client_ids: SalesforceConfig::default()
                .apps
                .into_iter()
                .map(|a| a.client_id)
                .collect(),
        })
    }

    fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.org.object(name).or_else(|| {
            self.org
                .objects()
                .find(|o| o.name.eq_ignore_ascii_case(name))
        })
    }

    fn object_names(&self) -> Vec<&str> {
        self.org.objects().map(|o| o.name.as_str()).collect()
    }

    /// An sObject the org has, or why not.
    /// An sObject, or one of its fields, that the org has; else why not, with the closest
    /// name.
    pub fn known(&self, object: &str, field: Option<&str>) -> Result<(), String> {
        match field {
            Some(f) => self.known_field(object, f),
            None => self.known_object(object).map(|_| ()),
        }
    }

    fn known_object(&self, name: &str) -> Result<&ObjectDef, String> {
        self.object(name).ok_or_else(|| {
            format!(
                "the org has no sObject {name:?}{}",
                suggest(name, &self.object_names())
            )
        })
    }

    /// A field of an sObject the org has, or why not.
    fn known_field(&self, object: &str, field: &str) -> Result<(), String> {
        let o = self.known_object(object)?;
        match o.field(field) {
            Some(_) => Ok(()),
            None => {
                let fields: Vec<&str> = o.fields.iter().map(|f| f.name.as_str()).collect();
                Err(format!(
                    "{} has no field {field:?}{}",
                    o.name,
                    suggest(field, &fields)
                ))
            }
        }
    }

    /// Problems with a fault's target: each a (key, message).
    pub fn target_problems(&self, t: &Target) -> Vec<(&'static str, String)> {
        let mut out = vec![];
        let dep = t.dependency;
        if let Some(o) = &t.sobject {
            if let Err(e) = self.known_object(o) {
                out.push(("sobject", e));
            } else if dep == Some(DependencyName::Llm) {
                out.push((
                    "sobject",
                    "the LLM has no sObjects: this target cannot match".into(),
                ));
            }
        }
        if let Some(op) = &t.operation {
            let all: Vec<&str> = crashcart_mocks::salesforce::OPERATIONS
                .iter()
                .chain(crashcart_mocks::llm::OPERATIONS)
                .copied()
                .collect();
            match operation_dependency(op) {
                _ if !all.contains(&op.as_str()) => out.push((
                    "operation",
                    format!("no mock names an operation {op:?}{}", suggest(op, &all)),
                )),
                Some(d) if dep.is_some_and(|x| x != d) => out.push((
                    "operation",
                    format!(
                        "{op} is an operation of {}, not of {}: this target cannot match",
                        d.as_str(),
                        dep.map(|x| x.as_str()).unwrap_or("")
                    ),
                )),
                _ => {}
            }
        }
        if let Some(m) = &t.model {
            if !self.models.contains(m) {
                let names: Vec<&str> = self.models.iter().map(String::as_str).collect();
                out.push((
                    "model",
                    format!("the mock LLM serves no model {m:?}{}", suggest(m, &names)),
                ));
            } else if dep.is_some_and(|d| d != DependencyName::Llm) {
                out.push((
                    "model",
                    "only LLM requests name a model: this target cannot match".into(),
                ));
            }
        }
        if let Some(c) = &t.client_id {
            if !self.client_ids.contains(c) {
                let ids: Vec<&str> = self.client_ids.iter().map(String::as_str).collect();
                out.push((
                    "client_id",
                    format!("no connected app has client id {c:?}{}", suggest(c, &ids)),
                ));
            }
        }
        if let Some(m) = &t.method {
            if !METHODS.iter().any(|x| x.eq_ignore_ascii_case(m)) {
                out.push((
                    "method",
                    format!(
                        "{m:?} is not an HTTP method a client sends{}",
                        suggest(&m.to_ascii_uppercase(), &METHODS)
                    ),
                ));
            }
        }
        out
    }

    /// Problems with what a fault kind names (sObjects, fields, picklist values, models).
    pub fn kind_problems(&self, kind: &FaultKind) -> Vec<String> {
        use FaultKind as K;
        let result = match kind {
            K::FieldRenamed { object, field, .. }
            | K::FieldRemoved { object, field }
            | K::FieldTypeChanged { object, field, .. } => self.known_field(object, field),
            K::RequiredFieldAdded { object, .. } => self.known_object(object).map(|_| ()),
            K::PicklistValueWithdrawn {
                object,
                field,
                value,
            } => self
                .known_field(object, field)
                .and_then(|()| self.picklist_value(object, field, value)),
            K::ConcurrentEdit { object, fields, .. } => {
                fields.keys().try_for_each(|f| self.known_field(object, f))
            }
            K::LlmSlots { model: Some(m), .. } if !self.models.contains(m) => {
                let names: Vec<&str> = self.models.iter().map(String::as_str).collect();
                Err(format!(
                    "the mock LLM serves no model {m:?}{}",
                    suggest(m, &names)
                ))
            }
            _ => Ok(()),
        };
        result.err().into_iter().collect()
    }

    fn picklist_value(&self, object: &str, field: &str, value: &str) -> Result<(), String> {
        let f = self.object(object).and_then(|o| o.field(field));
        match f {
            Some(f) if f.picklist.iter().any(|v| v == value) => Ok(()),
            Some(f) => {
                let values: Vec<&str> = f.picklist.iter().map(String::as_str).collect();
                Err(format!(
                    "{object}.{field} has no picklist value {value:?}{}",
                    suggest(value, &values)
                ))
            }
            None => Ok(()),
        }
    }

    /// Problems with an effect: its object and the fields it matches on must exist.
    pub fn effect_problems(&self, e: &RawEffect) -> Vec<(String, String)> {
        if let Err(m) = self.known_object(&e.object) {
            return vec![("object".into(), m)];
        }
        e.matches
            .keys()
            .filter_map(|k| {
                self.known_field(&e.object, k)
                    .err()
                    .map(|m| (format!("match.{k}"), m))
            })
            .collect()
    }

    /// Problems with a double-booking check: its object and three fields must exist.
    pub fn double_booking_problems(&self, d: &RawDoubleBooking) -> Vec<(String, String)> {
        let object = d.object.as_deref().unwrap_or("Event");
        if let Err(m) = self.known_object(object) {
            return vec![("object".into(), m)];
        }
        [
            ("resource", Some(d.resource.as_str())),
            ("start", Some(d.start.as_deref().unwrap_or("StartDateTime"))),
            ("end", Some(d.end.as_deref().unwrap_or("EndDateTime"))),
        ]
        .into_iter()
        .filter_map(|(k, f)| {
            let f = f?;
            self.known_field(object, f)
                .err()
                .map(|m| (k.to_string(), m))
        })
        .collect()
    }
}

/// The dependency an operation name belongs to.
fn operation_dependency(op: &str) -> Option<DependencyName> {
    match op.split('.').next() {
        Some("openai" | "ollama") => Some(DependencyName::Llm),
        Some("oauth" | "soap" | "identity") => Some(DependencyName::SalesforceAuth),
        Some("control" | "unknown") => None,
        _ => Some(DependencyName::Salesforce),
    }
}

/// ` (did you mean "X"?)` for the closest known name, or the known names when few; empty when
/// nothing is close.
pub fn suggest(name: &str, known: &[&str]) -> String {
    let lower = name.to_ascii_lowercase();
    let best = known
        .iter()
        .map(|k| (strsim::jaro_winkler(&lower, &k.to_ascii_lowercase()), *k))
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((score, k)) if score >= 0.8 => format!(" (did you mean {k:?}?)"),
        _ if !known.is_empty() && known.len() <= 8 => format!(" (known: {})", known.join(", ")),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Names {
        let raw: RawScenario = serde_saphyr::from_str(
            "duration: 1s\nsut: {reference: true}\nworkload: {rate: 1, operations: [{name: a, path: /}]}\n",
        )
        .unwrap();
        Names::load(&raw, Path::new(".")).ok().unwrap()
    }

    #[test]
    fn targets_that_cannot_match_are_named_with_the_closest_name() {
        let n = names();
        let t = |yaml: &str| n.target_problems(&serde_saphyr::from_str(yaml).unwrap());
        let p = t("{sobject: Evnet}");
        assert!(p[0].1.contains("did you mean \"Event\""), "{p:?}");
        let p = t("{operation: sobject.updat}");
        assert!(p[0].1.contains("did you mean \"sobject.update\""), "{p:?}");
        let p = t("{dependency: llm, operation: query}");
        assert!(p[0].1.contains("cannot match"), "{p:?}");
        let p = t("{model: lama3.1:8b}");
        assert!(p[0].1.contains("did you mean"), "{p:?}");
        let p = t("{method: PSOT}");
        assert!(p[0].1.contains("did you mean \"POST\""), "{p:?}");
        assert!(!t("{client_id: nobody}").is_empty());
        assert!(t(
            "{dependency: salesforce, sobject: event, method: patch, operation: sobject.update}"
        )
        .is_empty());
    }

    #[test]
    fn kinds_and_effects_name_real_objects_and_fields() {
        let n = names();
        let kind: FaultKind =
            serde_saphyr::from_str("{kind: field_renamed, object: Contact, field: Phnoe, to: X}")
                .unwrap();
        assert!(n.kind_problems(&kind)[0].contains("did you mean \"Phone\""));
        let e: RawEffect =
            serde_saphyr::from_str("{object: Appointment__c, match: {A: b}}").unwrap();
        assert_eq!(n.effect_problems(&e)[0].0, "object");
        let e: RawEffect =
            serde_saphyr::from_str("{object: Contact, match: {Patient_Id: b}}").unwrap();
        assert_eq!(n.effect_problems(&e)[0].0, "match.Patient_Id");
    }

    #[test]
    fn a_data_file_that_is_not_yaml_is_never_quoted() {
        let dir = std::env::temp_dir().join(format!("crashcart-targets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("secret.txt"), "patient 123-45-6789: {{{ not yaml").unwrap();
        let raw: RawScenario = serde_saphyr::from_str(
            "duration: 1s\nmocks: {salesforce: {schema: [secret.txt]}}\nsut: {reference: true}\nworkload: {rate: 1, operations: [{name: a, path: /}]}\n",
        )
        .unwrap();
        let Err(p) = Names::load(&raw, &dir) else {
            panic!("a file that is not YAML loads")
        };
        assert_eq!(p[0].at, "mocks.salesforce.schema[0]");
        assert!(
            !p[0].message.contains("123-45") && !p[0].message.contains("not yaml"),
            "{}",
            p[0].message
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

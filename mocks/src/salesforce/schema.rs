//! The org schema: sObjects and their fields, loaded from data files (YAML or JSON).
//!
//! Raw serde types (`Raw*`) are read first, then validated into [`OrgSchema`]. Names are
//! case-insensitive as in Salesforce; lookups go through lower-cased indexes.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde::Deserialize;

use crate::error::MockError;

/// The default schema shipped with the mock.
pub const DEFAULT_SCHEMA_YAML: &str = include_str!("../../data/salesforce/schema.yaml");

/// A field's data type, as describe reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    /// The record id.
    Id,
    /// Single-line text.
    String,
    /// Long text.
    Textarea,
    /// E-mail address.
    Email,
    /// Phone number.
    Phone,
    /// URL.
    Url,
    /// true/false.
    Boolean,
    /// Integer.
    Int,
    /// Floating point.
    Double,
    /// Money.
    Currency,
    /// Percentage.
    Percent,
    /// Calendar date (`YYYY-MM-DD`).
    Date,
    /// Instant (`YYYY-MM-DDThh:mm:ss.sss+0000`).
    Datetime,
    /// One value from a list.
    Picklist,
    /// Several values from a list, `;`-separated.
    Multipicklist,
    /// A lookup to another record.
    Reference,
    /// A read-only counter assigned at insert.
    Autonumber,
}

impl FieldType {
    /// The `type` string in describe results.
    pub fn describe_name(self) -> &'static str {
        match self {
            FieldType::Id => "id",
            FieldType::String | FieldType::Autonumber => "string",
            FieldType::Textarea => "textarea",
            FieldType::Email => "email",
            FieldType::Phone => "phone",
            FieldType::Url => "url",
            FieldType::Boolean => "boolean",
            FieldType::Int => "int",
            FieldType::Double => "double",
            FieldType::Currency => "currency",
            FieldType::Percent => "percent",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
            FieldType::Picklist => "picklist",
            FieldType::Multipicklist => "multipicklist",
            FieldType::Reference => "reference",
        }
    }

    /// The SOAP type in describe results.
    pub fn soap_type(self) -> &'static str {
        match self {
            FieldType::Id | FieldType::Reference => "tns:ID",
            FieldType::Boolean => "xsd:boolean",
            FieldType::Int => "xsd:int",
            FieldType::Double | FieldType::Currency | FieldType::Percent => "xsd:double",
            FieldType::Date => "xsd:date",
            FieldType::Datetime => "xsd:dateTime",
            _ => "xsd:string",
        }
    }

    /// True for text-like types (compared case-insensitively, LIKE-able).
    pub fn is_text(self) -> bool {
        matches!(
            self,
            FieldType::String
                | FieldType::Textarea
                | FieldType::Email
                | FieldType::Phone
                | FieldType::Url
                | FieldType::Picklist
                | FieldType::Multipicklist
                | FieldType::Autonumber
        )
    }

    /// True for numeric types.
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Int | FieldType::Double | FieldType::Currency | FieldType::Percent
        )
    }
}

/// One field of an sObject.
#[derive(Clone, Debug)]
pub struct FieldDef {
    /// API name, canonical case.
    pub name: String,
    /// Label.
    pub label: String,
    /// Data type.
    pub ftype: FieldType,
    /// Maximum length for text.
    pub length: u32,
    /// Must be set on create (describe: `nillable: false`).
    pub required: bool,
    /// Values must be unique across records.
    pub unique: bool,
    /// Usable as an upsert key.
    pub external_id: bool,
    /// Unique/external-id comparison is case-sensitive.
    pub case_sensitive: bool,
    /// Picklist values, in order.
    pub picklist: Vec<String>,
    /// Only listed picklist values are accepted.
    pub restricted: bool,
    /// Objects a reference may point to.
    pub reference_to: Vec<String>,
    /// Relationship name of a reference (`WhoId` → `Who`, `Foo__c` → `Foo__r`).
    pub relationship_name: Option<String>,
    /// Default value on create.
    pub default: Option<serde_json::Value>,
    /// For read-only compound fields (`Name` of a Contact): the fields joined with a space.
    pub compound: Vec<String>,
    /// Set by the system (not createable or updateable).
    pub system: bool,
}

impl FieldDef {
    /// True if a client may write this field.
    pub fn writable(&self) -> bool {
        !self.system && self.compound.is_empty() && self.ftype != FieldType::Autonumber
    }
    /// True for custom fields (`__c`).
    pub fn custom(&self) -> bool {
        self.name.ends_with("__c")
    }
}

/// One sObject type.
#[derive(Clone, Debug)]
pub struct ObjectDef {
    /// API name, canonical case.
    pub name: String,
    /// Label.
    pub label: String,
    /// Plural label.
    pub label_plural: String,
    /// Three-character id prefix.
    pub key_prefix: String,
    /// Fields in describe order (system fields first).
    pub fields: Vec<FieldDef>,
    /// Field index by lower-case name.
    by_name: HashMap<String, usize>,
    /// Field index by canonical name: the common case, looked up without allocating.
    by_exact: HashMap<String, usize>,
}

impl ObjectDef {
    /// Find a field by name, case-insensitively.
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.by_exact
            .get(name)
            .or_else(|| self.by_name.get(&name.to_ascii_lowercase()))
            .map(|&i| &self.fields[i])
    }

    /// Find a reference field by relationship name (`Who`, `Account`, `Foo__r`), case-insensitively.
    pub fn relationship(&self, rel: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| {
            f.relationship_name
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(rel))
        })
    }

    /// True for custom objects (`__c`).
    pub fn custom(&self) -> bool {
        self.name.ends_with("__c")
    }

    /// True for platform events (`__e`): published by inserting them, delivered on
    /// `/event/{Name}` to subscribers.
    pub fn platform_event(&self) -> bool {
        self.name.ends_with("__e")
    }

    fn reindex(&mut self) {
        self.by_name = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.to_ascii_lowercase(), i))
            .collect();
        self.by_exact = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.clone(), i))
            .collect();
    }

    /// Replace or add a field (used by schema merging and drift).
    pub fn upsert_field(&mut self, field: FieldDef) {
        match self.by_name.get(&field.name.to_ascii_lowercase()) {
            Some(&i) => self.fields[i] = field,
            None => self.fields.push(field),
        }
        self.reindex();
    }

    /// Remove a field; returns it if it existed.
    pub fn remove_field(&mut self, name: &str) -> Option<FieldDef> {
        let i = *self.by_name.get(&name.to_ascii_lowercase())?;
        let f = self.fields.remove(i);
        self.reindex();
        Some(f)
    }
}

/// The org's schema.
#[derive(Clone, Debug, Default)]
pub struct OrgSchema {
    /// Shared, so a request can hold its object's definition while it changes the org
    /// (copied on write by [`OrgSchema::object_mut`]).
    objects: Vec<Arc<ObjectDef>>,
    by_name: HashMap<String, usize>,
    by_prefix: HashMap<String, usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSchema {
    objects: BTreeMap<String, RawObject>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawObject {
    key_prefix: Option<String>,
    label: Option<String>,
    label_plural: Option<String>,
    #[serde(default)]
    no_owner: bool,
    #[serde(default)]
    fields: BTreeMap<String, RawField>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawField {
    Short(FieldType),
    Full(RawFieldDef),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawFieldDef {
    #[serde(rename = "type")]
    ftype: FieldType,
    label: Option<String>,
    length: Option<u32>,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    unique: bool,
    #[serde(default)]
    external_id: bool,
    #[serde(default)]
    case_sensitive: bool,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    restricted: bool,
    default: Option<serde_json::Value>,
    #[serde(default)]
    reference_to: Vec<String>,
    #[serde(default)]
    compound: Vec<String>,
}

fn label_from_name(name: &str) -> String {
    name.trim_end_matches("__c").replace('_', " ")
}

fn relationship_name(field: &str) -> Option<String> {
    if let Some(base) = field.strip_suffix("__c") {
        return Some(format!("{base}__r"));
    }
    if field.len() > 2 && field.ends_with("Id") {
        return Some(field[..field.len() - 2].to_string());
    }
    None
}

fn system_field(name: &str, ftype: FieldType, reference_to: &[&str]) -> FieldDef {
    FieldDef {
        name: name.to_string(),
        label: label_from_name(name),
        ftype,
        length: if ftype == FieldType::Id || ftype == FieldType::Reference {
            18
        } else {
            0
        },
        required: false,
        unique: false,
        external_id: false,
        case_sensitive: false,
        picklist: vec![],
        restricted: false,
        reference_to: reference_to.iter().map(|s| s.to_string()).collect(),
        relationship_name: if ftype == FieldType::Reference {
            relationship_name(name)
        } else {
            None
        },
        default: None,
        compound: vec![],
        system: true,
    }
}

/// The system fields of a new record object.
fn record_fields(no_owner: bool) -> Vec<FieldDef> {
    let mut fields = vec![system_field("Id", FieldType::Id, &[])];
    if !no_owner {
        fields.push(system_field("OwnerId", FieldType::Reference, &["User"]));
    }
    fields.push(system_field("IsDeleted", FieldType::Boolean, &[]));
    fields.push(system_field("CreatedDate", FieldType::Datetime, &[]));
    fields.push(system_field("CreatedById", FieldType::Reference, &["User"]));
    fields.push(system_field("LastModifiedDate", FieldType::Datetime, &[]));
    fields.push(system_field(
        "LastModifiedById",
        FieldType::Reference,
        &["User"],
    ));
    fields.push(system_field("SystemModstamp", FieldType::Datetime, &[]));
    if let Some(owner) = fields.iter_mut().find(|f| f.name == "OwnerId") {
        // Owners are reassignable.
        owner.system = false;
    }
    fields
}

/// The fields every platform event has: `ReplayId` and `EventUuid` are set when it is
/// published.
fn platform_event_fields() -> Vec<FieldDef> {
    vec![
        system_field("Id", FieldType::Id, &[]),
        system_field("CreatedDate", FieldType::Datetime, &[]),
        system_field("CreatedById", FieldType::Reference, &["User"]),
        system_field("EventUuid", FieldType::String, &[]),
        system_field("ReplayId", FieldType::String, &[]),
    ]
}

impl OrgSchema {
    /// The schema shipped with the mock, parsed once per process: every mock (and every
    /// simulated run) starts from a copy, which shares the objects until drift changes one.
    pub fn default_schema() -> Result<Self, MockError> {
        static BUILT_IN: OnceLock<OrgSchema> = OnceLock::new();
        Ok(BUILT_IN
            .get_or_init(|| {
                let mut s = Self::default();
                s.merge_yaml(DEFAULT_SCHEMA_YAML, Path::new("<built-in schema.yaml>"))
                    .expect("the built-in schema file is valid (tested)");
                s
            })
            .clone())
    }

    /// Merge a schema file (YAML or JSON; JSON is YAML) into this schema.
    pub fn merge_file(&mut self, path: &Path) -> Result<(), MockError> {
        self.merge_yaml(&crate::error::read_data_file(path)?, path)
    }

    /// Merge schema text. Objects that exist are extended; fields that exist are replaced.
    pub fn merge_yaml(&mut self, text: &str, origin: &Path) -> Result<(), MockError> {
        let raw: RawSchema = crate::error::parse_data_file(text, origin)?;
        let invalid = |message: String| MockError::Invalid {
            path: origin.to_path_buf(),
            message,
        };
        for (obj_name, raw_obj) in raw.objects {
            if !valid_api_name(&obj_name) {
                return Err(invalid(format!("objects.{obj_name}: not a valid API name")));
            }
            let idx = match self.by_name.get(&obj_name.to_ascii_lowercase()) {
                Some(&i) => i,
                None => {
                    let prefix = raw_obj.key_prefix.clone().ok_or_else(|| {
                        invalid(format!(
                            "objects.{obj_name}.keyPrefix: required for a new object"
                        ))
                    })?;
                    if prefix.len() != 3 || !prefix.chars().all(|c| c.is_ascii_alphanumeric()) {
                        return Err(invalid(format!(
                            "objects.{obj_name}.keyPrefix: '{prefix}' must be 3 letters or digits"
                        )));
                    }
                    if let Some(&other) = self.by_prefix.get(&prefix) {
                        return Err(invalid(format!(
                            "objects.{obj_name}.keyPrefix: '{prefix}' is already used by {}",
                            self.objects[other].name
                        )));
                    }
                    let fields = if obj_name.ends_with("__e") {
                        platform_event_fields()
                    } else {
                        record_fields(raw_obj.no_owner)
                    };
                    let mut obj = ObjectDef {
                        label: raw_obj
                            .label
                            .clone()
                            .unwrap_or_else(|| label_from_name(&obj_name)),
                        label_plural: raw_obj
                            .label_plural
                            .clone()
                            .unwrap_or_else(|| format!("{}s", label_from_name(&obj_name))),
                        name: obj_name.clone(),
                        key_prefix: prefix.clone(),
                        fields,
                        by_name: HashMap::new(),
                        by_exact: HashMap::new(),
                    };
                    obj.reindex();
                    self.objects.push(Arc::new(obj));
                    let i = self.objects.len() - 1;
                    self.by_name.insert(obj_name.to_ascii_lowercase(), i);
                    self.by_prefix.insert(prefix, i);
                    i
                }
            };
            for (field_name, raw_field) in raw_obj.fields {
                let at = format!("objects.{obj_name}.fields.{field_name}");
                if !valid_api_name(&field_name) {
                    return Err(invalid(format!("{at}: not a valid API name")));
                }
                let def = build_field(&field_name, raw_field)
                    .map_err(|m| invalid(format!("{at}: {m}")))?;
                let obj = Arc::make_mut(&mut self.objects[idx]);
                if obj
                    .field(&field_name)
                    .is_some_and(|f| f.system && f.name != "OwnerId")
                {
                    return Err(invalid(format!("{at}: system fields cannot be redefined")));
                }
                obj.upsert_field(def);
            }
        }
        self.check_references(origin)
    }

    fn check_references(&self, origin: &Path) -> Result<(), MockError> {
        for obj in &self.objects {
            for f in &obj.fields {
                for target in &f.reference_to {
                    if self.object(target).is_none() {
                        return Err(MockError::Invalid {
                            path: origin.to_path_buf(),
                            message: format!(
                                "objects.{}.fields.{}.referenceTo: unknown object '{target}'",
                                obj.name, f.name
                            ),
                        });
                    }
                }
                for part in &f.compound {
                    if obj.field(part).is_none() {
                        return Err(MockError::Invalid {
                            path: origin.to_path_buf(),
                            message: format!(
                                "objects.{}.fields.{}.compound: unknown field '{part}'",
                                obj.name, f.name
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// Find an object by API name, case-insensitively.
    pub fn object(&self, name: &str) -> Option<&ObjectDef> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .map(|&i| &*self.objects[i])
    }

    /// An object by API name, shared: a handle that outlives a borrow of the schema (no copy
    /// of its fields).
    pub fn object_shared(&self, name: &str) -> Option<Arc<ObjectDef>> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .map(|&i| Arc::clone(&self.objects[i]))
    }

    /// Mutable access to an object (for drift); copies it first if a request still holds it.
    pub fn object_mut(&mut self, name: &str) -> Option<&mut ObjectDef> {
        self.by_name
            .get(&name.to_ascii_lowercase())
            .map(|&i| Arc::make_mut(&mut self.objects[i]))
    }

    /// Find the object owning an id, by its key prefix.
    pub fn object_for_id(&self, id: &str) -> Option<&ObjectDef> {
        self.by_prefix.get(id.get(..3)?).map(|&i| &*self.objects[i])
    }

    /// All objects, in definition order.
    pub fn objects(&self) -> impl ExactSizeIterator<Item = &ObjectDef> + '_ {
        self.objects.iter().map(|o| &**o)
    }

    /// The child relationships of an object, as a parent's describe lists them and a child
    /// subquery names them: `(name, child object, the child's reference field)`. Standard
    /// children are named by the plural of their object (`Contacts`, `Cases`, `Events`), a
    /// custom child `Visit__c` by `Visits__r`; when one child refers to the parent by more than
    /// one field, the first field in the schema's order has the name.
    pub fn child_relationships(&self, parent: &str) -> Vec<(String, &ObjectDef, &FieldDef)> {
        let mut out: Vec<(String, &ObjectDef, &FieldDef)> = vec![];
        for child in &self.objects {
            let refs = child.fields.iter().filter(|f| {
                !f.system
                    && f.reference_to
                        .iter()
                        .any(|t| t.eq_ignore_ascii_case(parent))
            });
            for f in refs {
                let name = plural_relationship(&child.name);
                if !out.iter().any(|(n, ..)| n.eq_ignore_ascii_case(&name)) {
                    out.push((name, child, f));
                }
            }
        }
        out
    }
}

/// `Contact` → `Contacts`, `Opportunity` → `Opportunities`, `Visit__c` → `Visits__r`.
fn plural_relationship(object: &str) -> String {
    let (stem, custom) = match object.strip_suffix("__c") {
        Some(stem) => (stem, true),
        None => (object, false),
    };
    let plural = if let Some(base) = stem
        .strip_suffix('y')
        .filter(|b| !b.ends_with(['a', 'e', 'o', 'u']))
    {
        format!("{base}ies")
    } else if stem.ends_with('s') || stem.ends_with('x') {
        format!("{stem}es")
    } else {
        format!("{stem}s")
    };
    if custom {
        format!("{plural}__r")
    } else {
        plural
    }
}

fn valid_api_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.contains("___")
}

fn build_field(name: &str, raw: RawField) -> Result<FieldDef, String> {
    let raw = match raw {
        RawField::Short(ftype) => RawFieldDef {
            ftype,
            label: None,
            length: None,
            required: false,
            unique: false,
            external_id: false,
            case_sensitive: false,
            values: vec![],
            restricted: false,
            default: None,
            reference_to: vec![],
            compound: vec![],
        },
        RawField::Full(def) => def,
    };
    if raw.ftype == FieldType::Id {
        return Err("type 'id' is reserved for the Id field".into());
    }
    if matches!(raw.ftype, FieldType::Picklist | FieldType::Multipicklist) && raw.values.is_empty()
    {
        return Err("a picklist needs `values`".into());
    }
    if raw.ftype == FieldType::Reference && raw.reference_to.is_empty() {
        return Err("a reference needs `referenceTo`".into());
    }
    if raw.ftype != FieldType::Reference && !raw.reference_to.is_empty() {
        return Err("`referenceTo` is only for references".into());
    }
    if raw.external_id
        && !matches!(
            raw.ftype,
            FieldType::String
                | FieldType::Email
                | FieldType::Int
                | FieldType::Double
                | FieldType::Autonumber
        )
    {
        return Err("external ids must be text, email, number or autonumber".into());
    }
    if let Some(d) = &raw.default {
        if raw.ftype == FieldType::Picklist
            && d.as_str()
                .is_none_or(|v| !raw.values.iter().any(|x| x == v))
        {
            return Err(format!("default {d} is not one of the picklist values"));
        }
    }
    let length = raw.length.unwrap_or(match raw.ftype {
        FieldType::String | FieldType::Autonumber => 255,
        FieldType::Textarea => 32768,
        FieldType::Email | FieldType::Url => 255,
        FieldType::Phone => 40,
        FieldType::Picklist | FieldType::Multipicklist => 255,
        FieldType::Reference => 18,
        _ => 0,
    });
    Ok(FieldDef {
        name: name.to_string(),
        label: raw.label.unwrap_or_else(|| label_from_name(name)),
        ftype: raw.ftype,
        length,
        required: raw.required,
        unique: raw.unique,
        external_id: raw.external_id,
        case_sensitive: raw.case_sensitive,
        picklist: raw.values,
        restricted: raw.restricted,
        relationship_name: if raw.ftype == FieldType::Reference {
            relationship_name(name)
        } else {
            None
        },
        reference_to: raw.reference_to,
        default: raw.default,
        compound: raw.compound,
        system: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schema_loads_with_system_fields_and_relationships() {
        let s = OrgSchema::default_schema().unwrap();
        let contact = s.object("contact").unwrap();
        assert_eq!(contact.key_prefix, "003");
        assert!(contact.field("ID").unwrap().system);
        assert!(contact.field("patient_external_id__c").unwrap().external_id);
        let event = s.object("Event").unwrap();
        assert_eq!(event.relationship("who").unwrap().name, "WhoId");
        assert_eq!(s.object_for_id("00U000000000001AAA").unwrap().name, "Event");
        assert!(s.object("User").unwrap().field("OwnerId").is_none());
    }

    #[test]
    fn merge_extends_and_reports_key_paths() {
        let mut s = OrgSchema::default_schema().unwrap();
        s.merge_yaml(
            "objects:\n  Contact:\n    fields:\n      Insurance__c: string\n  Visit__c:\n    keyPrefix: a01\n    fields:\n      Patient__c: {type: reference, referenceTo: [Contact]}\n",
            Path::new("extra.yaml"),
        )
        .unwrap();
        assert!(s.object("Contact").unwrap().field("Insurance__c").is_some());
        let visit = s.object("visit__c").unwrap();
        assert_eq!(visit.relationship("Patient__r").unwrap().name, "Patient__c");

        let err = s
            .merge_yaml(
                "objects:\n  Thing__c:\n    keyPrefix: '001'\n",
                Path::new("bad.yaml"),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.yaml") && err.contains("objects.Thing__c.keyPrefix"),
            "{err}"
        );
        let err = s
            .merge_yaml(
                "objects:\n  Contact:\n    fields:\n      X__c: {type: reference, referenceTo: [Nope]}\n",
                Path::new("bad.yaml"),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("objects.Contact.fields.X__c.referenceTo"),
            "{err}"
        );
        let err = s
            .merge_yaml("objects: [", Path::new("broken.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("broken.yaml") && err.contains("line"), "{err}");
    }
}

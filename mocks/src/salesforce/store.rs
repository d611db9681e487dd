//! The org's data: records per sObject, with versions for conditional requests, tombstones for
//! deleted records, uniqueness and reference checks, and a write log for consistency checks.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use chrono::{DateTime, Utc};
use http::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::errors::SfError;
use super::ids;
use super::schema::{FieldDef, FieldType, ObjectDef, OrgSchema};
use super::validate::format_datetime;

/// One stored record.
#[derive(Clone, Debug)]
pub struct Record {
    /// 18-character id.
    pub id: String,
    /// Canonical object name.
    pub object: String,
    /// Field values by canonical name (system fields included).
    pub fields: Map<String, Value>,
    /// Incremented on every write.
    pub version: u64,
    /// Last modification instant.
    pub modified: DateTime<Utc>,
    /// True once deleted (kept as a tombstone, visible to queryAll).
    pub deleted: bool,
}

impl Record {
    /// The record's ETag: a quoted digest of its id and version, in Salesforce's `…=-gzip` form.
    pub fn etag(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.id.as_bytes());
        h.update(self.version.to_le_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(&h.finalize()[..20]);
        format!("\"{b64}-gzip\"")
    }

    /// A field value (canonical name), `Null` when unset.
    pub fn get(&self, field: &str) -> &Value {
        self.fields.get(field).unwrap_or(&Value::Null)
    }
}

/// A platform event's `EventUuid`: deterministic from its id and position.
fn event_uuid(id: &str, seq: u64) -> String {
    let d = Sha256::digest(format!("{id}:{seq}").as_bytes());
    let h: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// What kind of write a [`WriteLog`] entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteKind {
    /// Insert.
    Create,
    /// Update.
    Update,
    /// Delete.
    Delete,
}

/// The precondition a write carried, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precondition {
    /// No conditional header: a blind write.
    None,
    /// `If-Match` with ETags.
    IfMatch,
    /// `If-Unmodified-Since`.
    IfUnmodifiedSince,
}

/// One accepted write, in order: the server-side truth for consistency and lost-update checks.
#[derive(Clone, Debug, Serialize)]
pub struct WriteLog {
    /// Order of the write.
    pub seq: u64,
    /// Monotonic time of the write, in microseconds since the mock started.
    pub at_us: u64,
    /// Object.
    pub object: String,
    /// Record id.
    pub id: String,
    /// Kind of write.
    pub kind: WriteKind,
    /// Fields the write set.
    pub fields: Vec<String>,
    /// Version before the write (0 for a create).
    pub prior_version: u64,
    /// Precondition the client sent.
    pub precondition: Precondition,
    /// Username of the writer.
    pub user: Option<String>,
    /// User id of the writer (for change events' `commitUser`).
    #[serde(skip)]
    pub user_id: String,
    /// Wall time of the write, milliseconds since the epoch (change events' `commitTimestamp`).
    #[serde(skip)]
    pub at_ms: i64,
    /// The values as this write left them, for change events (never in reports: they may
    /// hold PHI): every non-null field of a created record; the fields an update set, with
    /// `LastModifiedDate`; nothing for a delete.
    #[serde(skip)]
    pub values: Map<String, Value>,
}

/// Result of an upsert by external id.
#[derive(Debug)]
pub enum UpsertOutcome {
    /// A new record was inserted.
    Created(String),
    /// One existing record was updated.
    Updated(String),
    /// Several records share the external id value (HTTP 300).
    Ambiguous(Vec<String>),
}

#[derive(Clone, Debug, Default)]
struct Table {
    records: BTreeMap<String, Record>,
    next: u64,
    autonumber: u64,
    /// Ids of records that ever held a text value (lower-cased), whatever the field: external
    /// id and unique-field lookups check these candidates instead of scanning the table.
    /// Entries go stale when a value changes; lookups re-check the record, so stale entries
    /// only cost a comparison. Renames move values between fields and keep the index valid.
    by_value: HashMap<String, Vec<String>>,
}

impl Table {
    fn index(&mut self, id: &str, values: &Map<String, Value>) {
        for v in values.values() {
            if let Value::String(t) = v {
                if t.len() <= 255 {
                    let ids = self.by_value.entry(t.to_ascii_lowercase()).or_default();
                    if ids.last().map(String::as_str) != Some(id) {
                        ids.push(id.to_string());
                    }
                }
            }
        }
    }
}

/// The org's data.
#[derive(Clone, Debug)]
pub struct OrgData {
    tables: HashMap<String, Table>,
    instance: String,
    id_offset: u64,
    writes: Vec<WriteLog>,
    /// Writes logged so far (kept or forgotten).
    writes_logged: u64,
    /// Writes kept at most (the oldest forgotten first).
    write_capacity: usize,
    /// Platform events published in the current hour, and the hourly allowance.
    publish: PublishAllowance,
}

/// Salesforce's hourly allowance of published platform events (100,000 in Enterprise and
/// Unlimited editions).
#[derive(Clone, Debug)]
struct PublishAllowance {
    limit: u64,
    hour: i64,
    used: u64,
}

/// The hourly allowance of published platform events a new org has.
pub const HOURLY_PUBLISH_LIMIT: u64 = 100_000;

/// Who writes and when; stamps system fields.
#[derive(Clone, Debug)]
pub struct Actor {
    /// User id.
    pub user_id: String,
    /// Username, for the write log.
    pub username: Option<String>,
    /// Wall time of the write.
    pub now: DateTime<Utc>,
    /// Monotonic time of the write, microseconds.
    pub at_us: u64,
}

impl OrgData {
    /// Empty data. `seed` varies the id space so different seeds give different ids.
    pub fn new(seed: u64) -> Self {
        let instance_chars = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let a = instance_chars[(seed % 36) as usize] as char;
        let b = instance_chars[((seed / 36) % 36) as usize] as char;
        Self {
            tables: HashMap::new(),
            instance: format!("{a}{b}0"),
            id_offset: (seed % 1_000_000) * 1_000,
            writes: Vec::new(),
            writes_logged: 0,
            write_capacity: usize::MAX,
            publish: PublishAllowance {
                limit: HOURLY_PUBLISH_LIMIT,
                hour: 0,
                used: 0,
            },
        }
    }

    /// The hourly allowance of published platform events (a fault spends it by setting it
    /// to what has been published this hour).
    pub fn set_publish_limit(&mut self, limit: u64) {
        self.publish.limit = limit;
    }

    /// The hourly allowance and the platform events published this hour.
    pub fn publish_usage(&self) -> (u64, u64) {
        (self.publish.limit, self.publish.used)
    }

    /// Count one published platform event against the hour of `now`, or refuse it with
    /// `LIMIT_EXCEEDED` past the allowance.
    fn spend_publish(&mut self, now: DateTime<Utc>) -> Result<(), SfError> {
        let hour = now.timestamp().div_euclid(3600);
        if hour != self.publish.hour {
            self.publish.hour = hour;
            self.publish.used = 0;
        }
        if self.publish.used >= self.publish.limit {
            return Err(SfError::new(
                StatusCode::BAD_REQUEST,
                "LIMIT_EXCEEDED",
                "The number of published platform event messages exceeded the hourly publishing limit",
            ));
        }
        self.publish.used += 1;
        Ok(())
    }

    /// Keep only about the most recent `writes` entries of the write log (between `writes`
    /// and a quarter more), so a mock that serves for hours stays bounded.
    pub fn set_write_capacity(&mut self, writes: usize) {
        self.write_capacity = writes;
        let len = self.writes.len();
        if len > writes {
            self.writes.drain(..len - writes);
        }
    }

    /// Writes logged since the org started, kept or not.
    pub fn writes_logged(&self) -> u64 {
        self.writes_logged
    }

    /// Forget the oldest writes once there are a quarter more than the capacity (amortized:
    /// a drain of `capacity / 4` entries every `capacity / 4` writes).
    fn trim_writes(&mut self) {
        let (len, cap) = (self.writes.len(), self.write_capacity);
        if len > cap && len - cap >= (cap / 4).max(1) {
            self.writes.drain(..len - cap);
        }
    }

    /// Allocate an id for a new record of `obj`.
    pub fn allocate_id(&mut self, obj: &ObjectDef) -> String {
        let table = self
            .tables
            .entry(obj.name.to_ascii_lowercase())
            .or_default();
        table.next += 1;
        ids::make_id(&obj.key_prefix, &self.instance, self.id_offset + table.next)
    }

    fn table(&self, obj: &str) -> Option<&Table> {
        self.tables.get(&obj.to_ascii_lowercase())
    }

    /// A record by id, including tombstones.
    pub fn get(&self, obj: &str, id: &str) -> Option<&Record> {
        self.table(obj)?.records.get(id)
    }

    /// A live or deleted record by id, looking the object up from the key prefix.
    pub fn get_any(&self, schema: &OrgSchema, id: &str) -> Option<&Record> {
        let obj = schema.object_for_id(id)?;
        self.get(&obj.name, id)
    }

    /// Every record of an object in id (creation) order, tombstones included.
    pub fn records<'a>(&'a self, obj: &str) -> impl Iterator<Item = &'a Record> + 'a {
        self.table(obj).into_iter().flat_map(|t| t.records.values())
    }

    /// Move every record's value of field `from` to field `to` (schema drift: a rename keeps
    /// the data, as in Salesforce).
    pub fn rename_field(&mut self, obj: &str, from: &str, to: &str) {
        if let Some(t) = self.tables.get_mut(&obj.to_ascii_lowercase()) {
            for r in t.records.values_mut() {
                if let Some(v) = r.fields.shift_remove(from) {
                    r.fields.insert(to.to_string(), v);
                }
            }
        }
    }

    /// Number of live records of an object.
    pub fn live_count(&self, obj: &str) -> usize {
        self.records(obj).filter(|r| !r.deleted).count()
    }

    /// The write log so far.
    pub fn writes(&self) -> &[WriteLog] {
        &self.writes
    }

    fn same_value(a: &Value, b: &Value, case_sensitive: bool) -> bool {
        match (a, b) {
            (Value::String(x), Value::String(y)) if !case_sensitive => x.eq_ignore_ascii_case(y),
            _ => a == b,
        }
    }

    /// Records of `obj` that may hold `value` in some field: the value index's candidates for
    /// text, every record otherwise. Callers check the field themselves.
    fn candidates<'a>(
        &'a self,
        obj: &str,
        value: &Value,
    ) -> Box<dyn Iterator<Item = &'a Record> + 'a> {
        let Some(t) = self.table(obj) else {
            return Box::new(std::iter::empty());
        };
        match value {
            Value::String(v) => {
                let ids = t
                    .by_value
                    .get(&v.to_ascii_lowercase())
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let mut seen = std::collections::HashSet::new();
                Box::new(
                    ids.iter()
                        .filter(move |id| seen.insert(id.as_str()))
                        .filter_map(|id| t.records.get(id)),
                )
            }
            _ => Box::new(t.records.values()),
        }
    }

    /// Ids of live records whose `field` equals `value` (external id lookups), in id order.
    pub fn find_by(&self, obj: &ObjectDef, field: &str, value: &Value) -> Vec<String> {
        let Some(f) = obj.field(field) else {
            return vec![];
        };
        let mut ids: Vec<String> = self
            .candidates(&obj.name, value)
            .filter(|r| !r.deleted && Self::same_value(r.get(&f.name), value, f.case_sensitive))
            .map(|r| r.id.clone())
            .collect();
        ids.sort();
        ids
    }

    fn check_integrity(
        &self,
        schema: &OrgSchema,
        obj: &ObjectDef,
        values: &Map<String, Value>,
        self_id: Option<&str>,
    ) -> Result<(), SfError> {
        for (name, value) in values {
            if value.is_null() {
                continue;
            }
            let Some(f) = obj.field(name) else { continue };
            if f.unique {
                let clash = self
                    .candidates(&obj.name, value)
                    .find(|r| {
                        !r.deleted
                            && Some(r.id.as_str()) != self_id
                            && Self::same_value(r.get(&f.name), value, f.case_sensitive)
                    })
                    .map(|r| r.id.clone());
                if let Some(other) = clash {
                    return Err(SfError::new(
                        StatusCode::BAD_REQUEST,
                        "DUPLICATE_VALUE",
                        format!(
                            "duplicate value found: {} duplicates value on record with id: {other}",
                            f.name
                        ),
                    )
                    .with_fields(vec![]));
                }
            }
            if f.ftype == FieldType::Reference {
                let id = value.as_str().unwrap_or_default();
                let target = schema.object_for_id(id);
                let allowed = target.is_some_and(|t| {
                    f.reference_to
                        .iter()
                        .any(|r| r.eq_ignore_ascii_case(&t.name))
                });
                if !allowed {
                    return Err(SfError::new(
                        StatusCode::BAD_REQUEST,
                        "FIELD_INTEGRITY_EXCEPTION",
                        format!("{}: id value of incorrect type: {id}", f.label),
                    )
                    .with_fields(vec![f.name.clone()]));
                }
                match self.get_any(schema, id) {
                    Some(r) if r.deleted => {
                        return Err(SfError::new(
                            StatusCode::BAD_REQUEST,
                            "ENTITY_IS_DELETED",
                            "entity is deleted",
                        )
                        .with_fields(vec![f.name.clone()]))
                    }
                    Some(_) => {}
                    None => {
                        return Err(SfError::new(
                            StatusCode::BAD_REQUEST,
                            "INVALID_CROSS_REFERENCE_KEY",
                            "invalid cross reference id".to_string(),
                        )
                        .with_fields(vec![f.name.clone()]))
                    }
                }
            }
        }
        Ok(())
    }

    /// Insert a validated body. Returns the new id.
    pub fn create(
        &mut self,
        schema: &OrgSchema,
        obj: &ObjectDef,
        values: Map<String, Value>,
        actor: &Actor,
    ) -> Result<String, SfError> {
        self.create_inner(schema, obj, None, values, actor)
    }

    /// Insert a validated body under an id obtained from [`OrgData::allocate_id`].
    pub fn insert_with_id(
        &mut self,
        schema: &OrgSchema,
        obj: &ObjectDef,
        id: &str,
        values: Map<String, Value>,
        actor: &Actor,
    ) -> Result<String, SfError> {
        self.create_inner(schema, obj, Some(id.to_string()), values, actor)
    }

    fn create_inner(
        &mut self,
        schema: &OrgSchema,
        obj: &ObjectDef,
        id: Option<String>,
        mut values: Map<String, Value>,
        actor: &Actor,
    ) -> Result<String, SfError> {
        for f in &obj.fields {
            if let Some(d) = &f.default {
                if values.get(&f.name).is_none_or(Value::is_null) {
                    values.insert(f.name.clone(), d.clone());
                }
            }
        }
        self.check_integrity(schema, obj, &values, None)?;
        if obj.platform_event() {
            self.spend_publish(actor.now)?;
        }
        let id = match id {
            Some(id) => id,
            None => self.allocate_id(obj),
        };
        let now = format_datetime(actor.now);
        let written: Vec<String> = values.keys().cloned().collect();
        let mut fields = Map::new();
        for f in &obj.fields {
            let v = match f.name.as_str() {
                "Id" => Value::String(id.clone()),
                "IsDeleted" => Value::Bool(false),
                "CreatedDate" | "LastModifiedDate" | "SystemModstamp" => Value::String(now.clone()),
                "CreatedById" | "LastModifiedById" => Value::String(actor.user_id.clone()),
                // A platform event's position in the stream is its write's sequence number.
                "ReplayId" if obj.platform_event() => {
                    Value::String((self.writes_logged + 1).to_string())
                }
                "EventUuid" if obj.platform_event() => {
                    Value::String(event_uuid(&id, self.writes_logged))
                }
                "OwnerId" => values
                    .get("OwnerId")
                    .filter(|v| !v.is_null())
                    .cloned()
                    .unwrap_or_else(|| Value::String(actor.user_id.clone())),
                _ if f.ftype == FieldType::Autonumber => {
                    let t = self
                        .tables
                        .entry(obj.name.to_ascii_lowercase())
                        .or_default();
                    t.autonumber += 1;
                    Value::String(format!("{:08}", t.autonumber))
                }
                _ => values.get(&f.name).cloned().unwrap_or(Value::Null),
            };
            fields.insert(f.name.clone(), v);
        }
        let record = Record {
            id: id.clone(),
            object: obj.name.clone(),
            fields,
            version: 1,
            modified: actor.now,
            deleted: false,
        };
        let table = self
            .tables
            .entry(obj.name.to_ascii_lowercase())
            .or_default();
        table.index(&id, &record.fields);
        table.records.insert(id.clone(), record);
        self.log(
            actor,
            obj,
            &id,
            WriteKind::Create,
            written,
            0,
            Precondition::None,
        );
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    fn log(
        &mut self,
        actor: &Actor,
        obj: &ObjectDef,
        id: &str,
        kind: WriteKind,
        fields: Vec<String>,
        prior_version: u64,
        precondition: Precondition,
    ) {
        let seq = self.writes_logged;
        self.writes_logged += 1;
        let values = self.written_values(obj, id, kind, &fields);
        self.writes.push(WriteLog {
            seq,
            at_us: actor.at_us,
            object: obj.name.clone(),
            id: id.to_string(),
            kind,
            fields,
            prior_version,
            precondition,
            user: actor.username.clone(),
            user_id: actor.user_id.clone(),
            at_ms: actor.now.timestamp_millis(),
            values,
        });
        self.trim_writes();
    }

    /// The values a write left (see [`WriteLog::values`]).
    fn written_values(
        &self,
        obj: &ObjectDef,
        id: &str,
        kind: WriteKind,
        fields: &[String],
    ) -> Map<String, Value> {
        let Some(r) = self.get(&obj.name, id) else {
            return Map::new();
        };
        match kind {
            WriteKind::Create => r
                .fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            WriteKind::Update => fields
                .iter()
                .map(String::as_str)
                .chain(["LastModifiedDate"])
                .map(|f| (f.to_string(), r.get(f).clone()))
                .collect(),
            WriteKind::Delete => Map::new(),
        }
    }

    /// Update a live record with a validated body.
    pub fn update(
        &mut self,
        schema: &OrgSchema,
        obj: &ObjectDef,
        id: &str,
        values: Map<String, Value>,
        actor: &Actor,
        precondition: Precondition,
    ) -> Result<(), SfError> {
        match self.get(&obj.name, id) {
            None => return Err(SfError::not_found()),
            Some(r) if r.deleted => return Err(deleted()),
            Some(_) => {}
        }
        self.check_integrity(schema, obj, &values, Some(id))?;
        let now = format_datetime(actor.now);
        let Some(record) = self
            .tables
            .get_mut(&obj.name.to_ascii_lowercase())
            .and_then(|t| t.records.get_mut(id))
        else {
            return Err(SfError::not_found());
        };
        let prior = record.version;
        let written: Vec<String> = values.keys().cloned().collect();
        if let Some(t) = self.tables.get_mut(&obj.name.to_ascii_lowercase()) {
            t.index(id, &values);
        }
        let Some(record) = self
            .tables
            .get_mut(&obj.name.to_ascii_lowercase())
            .and_then(|t| t.records.get_mut(id))
        else {
            return Err(SfError::not_found());
        };
        for (k, v) in values {
            record.fields.insert(k, v);
        }
        record
            .fields
            .insert("LastModifiedDate".into(), Value::String(now.clone()));
        record
            .fields
            .insert("SystemModstamp".into(), Value::String(now));
        record.fields.insert(
            "LastModifiedById".into(),
            Value::String(actor.user_id.clone()),
        );
        record.version += 1;
        record.modified = actor.now;
        self.log(
            actor,
            obj,
            id,
            WriteKind::Update,
            written,
            prior,
            precondition,
        );
        Ok(())
    }

    /// Delete a live record (kept as a tombstone).
    pub fn delete(&mut self, obj: &ObjectDef, id: &str, actor: &Actor) -> Result<(), SfError> {
        let Some(record) = self
            .tables
            .get_mut(&obj.name.to_ascii_lowercase())
            .and_then(|t| t.records.get_mut(id))
        else {
            return Err(SfError::not_found());
        };
        if record.deleted {
            return Err(deleted());
        }
        record.deleted = true;
        record.fields.insert("IsDeleted".into(), Value::Bool(true));
        let prior = record.version;
        record.version += 1;
        record.modified = actor.now;
        self.log(
            actor,
            obj,
            id,
            WriteKind::Delete,
            vec![],
            prior,
            Precondition::None,
        );
        Ok(())
    }

    /// Upsert by external id: create when no live record matches, update when one does.
    pub fn upsert(
        &mut self,
        schema: &OrgSchema,
        obj: &ObjectDef,
        ext_field: &str,
        ext_value: &Value,
        mut values: Map<String, Value>,
        actor: &Actor,
    ) -> Result<UpsertOutcome, SfError> {
        let matches = self.find_by(obj, ext_field, ext_value);
        match matches.len() {
            0 => {
                values.insert(ext_field.to_string(), ext_value.clone());
                self.create(schema, obj, values, actor)
                    .map(UpsertOutcome::Created)
            }
            1 => {
                let id = matches[0].clone();
                self.update(schema, obj, &id, values, actor, Precondition::None)?;
                Ok(UpsertOutcome::Updated(id))
            }
            _ => Ok(UpsertOutcome::Ambiguous(matches)),
        }
    }

    /// Render a record as the REST API does: `attributes`, then fields in schema order.
    ///
    /// `fields` limits the output (canonical names); compound fields are computed.
    pub fn render(
        &self,
        obj: &ObjectDef,
        record: &Record,
        version: &str,
        fields: Option<&[String]>,
    ) -> Value {
        let mut out = Map::new();
        out.insert(
            "attributes".into(),
            serde_json::json!({"type": obj.name, "url": format!("/services/data/v{version}/sobjects/{}/{}", obj.name, record.id)}),
        );
        let put = |f: &FieldDef| {
            out.insert(f.name.clone(), compute_field(obj, record, f));
        };
        match fields {
            Some(list) => list.iter().filter_map(|n| obj.field(n)).for_each(put),
            None => obj.fields.iter().for_each(put),
        }
        Value::Object(out)
    }
}

/// A field's value, computing compound fields (`Contact.Name` from first and last name).
pub fn compute(obj: &ObjectDef, record: &Record, field: &str) -> Value {
    match obj.field(field) {
        Some(f) => compute_field(obj, record, f),
        None => Value::Null,
    }
}

/// A field's value, for a field already looked up.
pub fn compute_field(obj: &ObjectDef, record: &Record, f: &FieldDef) -> Value {
    if f.compound.is_empty() {
        return record.get(&f.name).clone();
    }
    let parts: Vec<String> = f
        .compound
        .iter()
        .filter_map(|p| obj.field(p))
        .filter_map(|p| record.get(&p.name).as_str().map(str::to_string))
        .filter(|s| !s.is_empty())
        .collect();
    if parts.is_empty() {
        Value::Null
    } else {
        Value::String(parts.join(" "))
    }
}

/// ENTITY_IS_DELETED.
pub fn deleted() -> SfError {
    SfError::new(
        StatusCode::NOT_FOUND,
        "ENTITY_IS_DELETED",
        "entity is deleted",
    )
}

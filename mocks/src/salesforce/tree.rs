//! `POST /composite/tree/{Object}`: records with their children nested under child
//! relationship names (`"Contacts": {"records": […]}`), each with an `attributes.referenceId`,
//! created parents first, in one transaction: up to 200 records and 5 levels. Answered
//! `201 {hasErrors: false, results: [{referenceId, id}]}`, or `400 {hasErrors: true,
//! results: [{referenceId, errors}]}` with nothing written.

use http::{Method, StatusCode};
use serde_json::{json, Map, Value};

use super::errors::SfError;
use super::middleware::AuthCtx;
use super::rest::{dispatch, Call, Reply};
use super::{Org, SfState};

/// Records a tree request takes, over all its trees.
const MAX_RECORDS: usize = 200;
/// Levels of nesting (a record, its children, theirs …).
const MAX_DEPTH: usize = 5;

fn invalid(code: &'static str, message: impl Into<String>) -> Reply {
    SfError::new(StatusCode::BAD_REQUEST, code, message).into()
}

/// Count the records of a tree, refusing one too deep or too large.
fn count(records: &[Value], depth: usize, total: &mut usize) -> Result<(), Reply> {
    if depth > MAX_DEPTH {
        return Err(invalid(
            "INVALID_INPUT",
            format!("a tree nests at most {MAX_DEPTH} levels"),
        ));
    }
    for r in records {
        *total += 1;
        if *total > MAX_RECORDS {
            return Err(invalid(
                "LIMIT_EXCEEDED",
                format!("a tree request takes at most {MAX_RECORDS} records"),
            ));
        }
        for child in r.as_object().into_iter().flat_map(|o| o.values()) {
            if let Some(list) = child.get("records").and_then(Value::as_array) {
                count(list, depth + 1, total)?;
            }
        }
    }
    Ok(())
}

/// The request being written: where results and failures go.
struct Tree<'a> {
    st: &'a SfState,
    ctx: &'a AuthCtx,
    results: Vec<Value>,
    failures: Vec<Value>,
    seen: Vec<String>,
}

/// `POST /composite/tree/{Object}`.
pub(crate) fn tree(
    st: &SfState,
    org: &mut Org,
    ctx: &AuthCtx,
    object: &str,
    body: Option<&Value>,
) -> Reply {
    let Some(records) = body
        .and_then(|b| b.get("records"))
        .and_then(Value::as_array)
    else {
        return invalid("INVALID_INPUT", "records is required");
    };
    let Some(obj) = org.schema.object(object).map(|o| o.name.clone()) else {
        return SfError::not_found().into();
    };
    let mut total = 0;
    if let Err(r) = count(records, 1, &mut total) {
        return r;
    }
    let snapshot = org.data.clone();
    let mut t = Tree {
        st,
        ctx,
        results: vec![],
        failures: vec![],
        seen: vec![],
    };
    t.level(org, &obj, records, None);
    if t.failures.is_empty() {
        return Reply::json(
            StatusCode::CREATED,
            json!({"hasErrors": false, "results": t.results}),
        );
    }
    org.data = snapshot;
    Reply::json(
        StatusCode::BAD_REQUEST,
        json!({"hasErrors": true, "results": t.failures}),
    )
}

impl Tree<'_> {
    fn fail(&mut self, reference: &str, code: &str, message: &str, fields: Value) {
        self.failures.push(json!({"referenceId": reference, "errors": [{"statusCode": code, "message": message, "fields": fields}]}));
    }

    /// Create `records` of `object`, each child level after its parent (whose id the
    /// children's reference field gets).
    fn level(
        &mut self,
        org: &mut Org,
        object: &str,
        records: &[Value],
        parent: Option<(&str, &str)>,
    ) {
        for rec in records {
            let reference = rec
                .pointer("/attributes/referenceId")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let kind = rec
                .pointer("/attributes/type")
                .and_then(Value::as_str)
                .unwrap_or("");
            if reference.is_empty() {
                self.fail(
                    "",
                    "INVALID_INPUT",
                    "Include a reference ID for each record in the request.",
                    json!([]),
                );
                continue;
            }
            if self.seen.contains(&reference) {
                self.fail(
                    &reference,
                    "INVALID_INPUT",
                    &format!("Duplicate ReferenceId provided in the request: {reference}"),
                    json!([]),
                );
                continue;
            }
            self.seen.push(reference.clone());
            if !kind.eq_ignore_ascii_case(object) {
                let message = format!(
                    "The sObject type {kind} doesn't match {object}, the type this level holds"
                );
                self.fail(&reference, "INVALID_TYPE", &message, json!([]));
                continue;
            }
            let (fields, children) = split(rec);
            let mut values = fields;
            if let Some((field, id)) = parent {
                values.insert(field.to_string(), json!(id));
            }
            let Some(id) = self.create(org, object, &reference, values) else {
                continue;
            };
            for (relationship, list) in children {
                self.children(org, object, &id, &reference, &relationship, &list);
            }
        }
    }

    fn children(
        &mut self,
        org: &mut Org,
        parent: &str,
        id: &str,
        reference: &str,
        relationship: &str,
        list: &[Value],
    ) {
        let found = org
            .schema
            .child_relationships(parent)
            .into_iter()
            .find(|(n, ..)| n.eq_ignore_ascii_case(relationship))
            .map(|(_, child, field)| (child.name.clone(), field.name.clone()));
        match found {
            Some((child, field)) => self.level(org, &child, list, Some((&field, id))),
            None => {
                let message = format!("Invalid relationship {relationship} for {parent}");
                self.fail(reference, "INVALID_FIELD", &message, json!([relationship]));
            }
        }
    }

    /// One create, as `POST /sobjects/{object}` would; its id, or the failure noted.
    fn create(
        &mut self,
        org: &mut Org,
        object: &str,
        reference: &str,
        values: Map<String, Value>,
    ) -> Option<String> {
        let body = serde_json::to_vec(&values).unwrap_or_default();
        let segs = vec!["sobjects".into(), object.to_string()];
        let call = Call::internal(Method::POST, segs, &body);
        let reply = dispatch(self.st, org, self.ctx, &call);
        let body = reply.body.unwrap_or(Value::Null);
        if reply.status.is_success() {
            let id = body
                .get("id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            self.results
                .push(json!({"referenceId": reference, "id": id}));
            return Some(id);
        }
        let e = body.get(0).cloned().unwrap_or(Value::Null);
        let text = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let fields = e.get("fields").cloned().unwrap_or(json!([]));
        self.fail(reference, &text("errorCode"), &text("message"), fields);
        None
    }
}

/// A record's children: relationship name and records.
type Children = Vec<(String, Vec<Value>)>;

/// A record's fields, and its children by relationship name.
fn split(rec: &Value) -> (Map<String, Value>, Children) {
    let mut fields = Map::new();
    let mut children = vec![];
    for (k, v) in rec.as_object().into_iter().flatten() {
        if k == "attributes" {
            continue;
        }
        match v.get("records").and_then(Value::as_array) {
            Some(list) if v.is_object() => children.push((k.clone(), list.clone())),
            _ => {
                fields.insert(k.clone(), v.clone());
            }
        }
    }
    (fields, children)
}

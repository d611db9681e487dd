//! The steps of an operation as the driver runs them: a request to the SUT, an action on the
//! mock org as one of its users, or a command; what each must answer (a steady-state probe)
//! and the values it captures for later steps and the effects. Built from the raw form that
//! [`super::validate`] accepted; [`check_steps`] is that validation.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::raw::{Command, RawCapture, RawExpect, RawOperation, RawStep, RawValueCheck};
use super::template;

/// Whether the org has an sObject (`None`) or one of its fields; else why not.
pub type Known<'a> = dyn Fn(&str, Option<&str>) -> Result<(), String> + 'a;

/// The user an org action acts as when it names none: a physician of the mock org.
pub const DEFAULT_ORG_USER: &str = "dr.adams@crashcart.test";

/// One step of an operation.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Its name in reasons (`book`, or `step 2`).
    pub name: String,
    /// What it does.
    pub action: Action,
    /// What it must answer.
    pub expect: Expect,
    /// Variables it sets from the answer.
    pub captures: Vec<Capture>,
}

/// What a step does.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A request to the SUT.
    Request {
        /// Method.
        method: http::Method,
        /// Path template.
        path: String,
        /// JSON body template.
        body: Option<Value>,
        /// Extra headers, values templated.
        headers: Vec<(String, String)>,
    },
    /// A write to the mock org as one of its users.
    Org(OrgAction),
    /// A command, with the SUT contract's environment.
    Run(Command),
}

/// A write to the mock org as one of its users.
#[derive(Clone, Debug, PartialEq)]
pub struct OrgAction {
    /// The acting user's username.
    pub user: String,
    /// Create, update or delete.
    pub write: OrgWrite,
    /// The sObject.
    pub object: String,
    /// The record's id template (update, delete).
    pub id: Option<String>,
    /// Field values (string values templated).
    pub fields: BTreeMap<String, Value>,
}

/// The kind of an org write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrgWrite {
    /// A new record.
    Create,
    /// Fields of a record.
    Update,
    /// A record removed.
    Delete,
}

/// What a step must answer.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Expect {
    /// Accepted statuses (empty: any 2xx; for a command, exit status 0).
    pub status: Vec<u16>,
    /// Checks on the JSON body by pointer.
    pub body: Vec<(String, ValueCheck)>,
    /// Checks on headers by lower-case name.
    pub headers: Vec<(String, ValueCheck)>,
}

/// A check on one value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValueCheck {
    /// Equal to this (strings templated).
    pub equals: Option<Value>,
    /// Present or absent.
    pub exists: Option<bool>,
    /// A string matching this.
    pub matches: Option<Pattern>,
}

/// A compiled regular expression, compared by its source.
#[derive(Clone, Debug)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// A variable set from an answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Capture {
    /// The variable's name (`{{booking_id}}`).
    pub var: String,
    /// Where its value comes from.
    pub from: CaptureFrom,
}

/// Where a captured value comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum CaptureFrom {
    /// A JSON pointer into the body.
    Pointer(String),
    /// A response header (lower-case name).
    Header(String),
}

impl Step {
    /// The step in a few words, for the plan: `POST /book`, `org: create Case as …`.
    pub fn describe(&self) -> String {
        let what = match &self.action {
            Action::Request { method, path, .. } => format!("{method} {path}"),
            Action::Org(a) => {
                let w = match a.write {
                    OrgWrite::Create => "create",
                    OrgWrite::Update => "update",
                    OrgWrite::Delete => "delete",
                };
                format!("org: {w} {} as {}", a.object, a.user)
            }
            Action::Run(Command::Shell(s)) => format!("run: {s}"),
            Action::Run(Command::Argv(v)) => format!("run: {}", v.join(" ")),
        };
        let captures: Vec<&str> = self.captures.iter().map(|c| c.var.as_str()).collect();
        if captures.is_empty() {
            what
        } else {
            format!("{what} [captures {}]", captures.join(", "))
        }
    }
}

/// The steps of a raw operation that validation accepted: its `steps`, or its one request.
pub fn steps_of(raw: &RawOperation) -> Vec<Step> {
    if raw.steps.is_empty() {
        let one = RawStep {
            name: Some(raw.name.clone()),
            method: Some(raw.method.clone()),
            path: raw.path.clone(),
            body: raw.body.clone(),
            expect: raw.expect.clone(),
            ..RawStep::default()
        };
        return vec![step(&one, 0)];
    }
    raw.steps
        .iter()
        .enumerate()
        .map(|(i, s)| step(s, i))
        .collect()
}

fn step(raw: &RawStep, i: usize) -> Step {
    let action = if let Some(org) = &raw.org {
        let (write, object) = match (&org.create, &org.update, &org.delete) {
            (Some(o), _, _) => (OrgWrite::Create, o),
            (_, Some(o), _) => (OrgWrite::Update, o),
            (_, _, Some(o)) => (OrgWrite::Delete, o),
            _ => (OrgWrite::Create, &String::new()),
        };
        Action::Org(OrgAction {
            user: org.user.clone().unwrap_or_else(|| DEFAULT_ORG_USER.into()),
            write,
            object: object.clone(),
            id: org.id.clone(),
            fields: org.fields.clone(),
        })
    } else if let Some(cmd) = &raw.run {
        Action::Run(cmd.clone())
    } else {
        let method = raw.method.as_deref().unwrap_or("POST");
        Action::Request {
            method: http::Method::from_bytes(method.as_bytes()).unwrap_or(http::Method::POST),
            path: raw.path.clone().unwrap_or_default(),
            body: raw.body.clone(),
            headers: raw
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    };
    Step {
        name: raw
            .name
            .clone()
            .unwrap_or_else(|| format!("step {}", i + 1)),
        action,
        expect: raw.expect.as_ref().map(expect).unwrap_or_default(),
        captures: raw
            .capture
            .iter()
            .map(|(var, c)| Capture {
                var: var.clone(),
                from: capture_from(c),
            })
            .collect(),
    }
}

fn capture_from(c: &RawCapture) -> CaptureFrom {
    match c {
        RawCapture::Pointer(p) => CaptureFrom::Pointer(p.clone()),
        RawCapture::From(f) => match (&f.pointer, &f.header) {
            (_, Some(h)) => CaptureFrom::Header(h.to_ascii_lowercase()),
            (Some(p), None) => CaptureFrom::Pointer(p.clone()),
            (None, None) => CaptureFrom::Pointer(String::new()),
        },
    }
}

fn expect(raw: &RawExpect) -> Expect {
    Expect {
        status: raw.status.clone(),
        body: raw
            .body
            .iter()
            .map(|(p, c)| (p.clone(), value_check(c)))
            .collect(),
        headers: raw
            .headers
            .iter()
            .map(|(h, c)| (h.to_ascii_lowercase(), value_check(c)))
            .collect(),
    }
}

fn value_check(raw: &RawValueCheck) -> ValueCheck {
    ValueCheck {
        equals: raw.equals.clone(),
        exists: raw.exists,
        matches: raw
            .matches
            .as_deref()
            .and_then(|m| regex::Regex::new(m).ok())
            .map(Pattern),
    }
}

/// The variables the effects of an operation may use besides the template's own: every
/// variable its steps capture.
pub fn captured_vars(raw: &RawOperation) -> BTreeSet<String> {
    raw.steps
        .iter()
        .flat_map(|s| s.capture.keys().cloned())
        .collect()
}

/// Every problem with an operation's steps, as (key path below the operation, message).
/// `users` are the org's usernames; `known` checks an object and a field against the org.
pub fn check_steps(raw: &RawOperation, users: &[String], known: &Known) -> Vec<(String, String)> {
    let mut out = vec![];
    if raw.steps.is_empty() {
        match &raw.path {
            None => out.push((
                "path".into(),
                "give a `path` (one request) or `steps`".into(),
            )),
            Some(p) => check_request(&raw.method, p, raw.body.as_ref(), &[], "", &mut out),
        }
        if let Some(e) = &raw.expect {
            check_expect(e, &BTreeSet::new(), false, "expect", &mut out);
        }
        return out;
    }
    if raw.path.is_some() || raw.body.is_some() || raw.expect.is_some() || raw.method != "POST" {
        out.push((
            "steps".into(),
            "give `steps` or a one-request `method`/`path`/`body`/`expect`, not both".into(),
        ));
    }
    let mut vars: BTreeSet<String> = BTreeSet::new();
    for (i, s) in raw.steps.iter().enumerate() {
        let at = format!("steps[{i}]");
        check_step(s, &at, &vars, users, known, &mut out);
        for var in s.capture.keys() {
            if template::VARIABLES.contains(&var.as_str()) {
                out.push((
                    format!("{at}.capture.{var}"),
                    format!("{var:?} is a built-in template variable; name the capture otherwise"),
                ));
            } else if !vars.insert(var.clone()) {
                out.push((
                    format!("{at}.capture.{var}"),
                    format!("{var:?} is captured by an earlier step too"),
                ));
            }
        }
    }
    out
}

fn check_step(
    s: &RawStep,
    at: &str,
    vars: &BTreeSet<String>,
    users: &[String],
    known: &Known,
    out: &mut Vec<(String, String)>,
) {
    let kinds = [s.path.is_some(), s.org.is_some(), s.run.is_some()];
    if kinds.iter().filter(|k| **k).count() != 1 {
        out.push((
            at.to_string(),
            "give exactly one of `path` (a request to the SUT), `org` (an action on the org) or `run` (a command)".into(),
        ));
        return;
    }
    let extra: Vec<&str> = vars.iter().map(String::as_str).collect();
    if let Some(p) = &s.path {
        let method = s.method.as_deref().unwrap_or("POST");
        check_request(method, p, s.body.as_ref(), &extra, &format!("{at}."), out);
        for (h, v) in &s.headers {
            if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                out.push((format!("{at}.headers.{h}"), "not a header name".into()));
            }
            for e in template::check_with(v, &extra) {
                out.push((format!("{at}.headers.{h}"), e));
            }
        }
    } else {
        for (key, given) in [
            ("method", s.method.is_some()),
            ("body", s.body.is_some()),
            ("headers", !s.headers.is_empty()),
        ] {
            if given {
                out.push((
                    format!("{at}.{key}"),
                    "only a request step (`path`) takes this".into(),
                ));
            }
        }
    }
    if let Some(org) = &s.org {
        check_org(org, &extra, users, known, &format!("{at}.org"), out);
    }
    if let Some(Command::Argv(v)) = &s.run {
        if v.is_empty() {
            out.push((format!("{at}.run"), "must not be empty".into()));
        }
    }
    if let Some(e) = &s.expect {
        check_expect(e, vars, s.run.is_some(), &format!("{at}.expect"), out);
    }
    for (var, c) in &s.capture {
        let key = format!("{at}.capture.{var}");
        if s.run.is_some() {
            out.push((
                key,
                "a command step answers no body or headers to capture from".into(),
            ));
            continue;
        }
        if !valid_var(var) {
            out.push((
                key.clone(),
                "a variable name is letters, digits, `_` and `.`, starting with a letter".into(),
            ));
        }
        match capture_from(c) {
            CaptureFrom::Pointer(p) if !valid_pointer(&p) => out.push((
                key,
                format!("{p:?} is not a JSON pointer (it starts with `/`: `/id`, `/records/0/Id`)"),
            )),
            CaptureFrom::Header(h) if http::HeaderName::from_bytes(h.as_bytes()).is_err() => {
                out.push((key, format!("{h:?} is not a header name")))
            }
            _ if s.org.is_some() && matches!(capture_from(c), CaptureFrom::Header(_)) => {
                out.push((
                    key,
                    "an org action answers no headers; capture `/id`".into(),
                ))
            }
            _ => {}
        }
        if let RawCapture::From(f) = c {
            if f.pointer.is_some() == f.header.is_some() {
                out.push((
                    format!("{at}.capture.{var}"),
                    "give one of `pointer` or `header`".into(),
                ));
            }
        }
    }
}

fn check_request(
    method: &str,
    path: &str,
    body: Option<&Value>,
    extra: &[&str],
    at: &str,
    out: &mut Vec<(String, String)>,
) {
    if http::Method::from_bytes(method.as_bytes()).is_err() {
        out.push((
            format!("{at}method"),
            format!("not an HTTP method: {method:?}"),
        ));
    }
    if !path.starts_with('/') {
        out.push((format!("{at}path"), "must start with /".into()));
    }
    for e in template::check_with(path, extra) {
        out.push((format!("{at}path"), e));
    }
    if let Some(b) = body {
        for e in template::check_with(&b.to_string(), extra) {
            out.push((format!("{at}body"), e));
        }
    }
}

fn check_org(
    org: &super::raw::RawOrgAction,
    extra: &[&str],
    users: &[String],
    known: &Known,
    at: &str,
    out: &mut Vec<(String, String)>,
) {
    let writes: Vec<(&str, &String)> = [
        ("create", &org.create),
        ("update", &org.update),
        ("delete", &org.delete),
    ]
    .into_iter()
    .filter_map(|(k, o)| o.as_ref().map(|o| (k, o)))
    .collect();
    let [(kind, object)] = writes[..] else {
        out.push((
            at.to_string(),
            "give exactly one of `create`, `update` or `delete` (the sObject)".into(),
        ));
        return;
    };
    if let Some(u) = &org.user {
        if !users.contains(u) {
            out.push((
                format!("{at}.as"),
                format!(
                    "no such user in the org: {u:?} (users: {})",
                    users.join(", ")
                ),
            ));
        }
    }
    if let Err(m) = known(object, None) {
        out.push((format!("{at}.{kind}"), m));
        return;
    }
    match (kind, &org.id) {
        ("create", Some(_)) => out.push((
            format!("{at}.id"),
            "a create names no id (capture `/id` from its answer)".into(),
        )),
        ("update" | "delete", None) => out.push((
            format!("{at}.id"),
            format!("{kind} needs the record's `id` (e.g. `{{{{case_id}}}}`)"),
        )),
        (_, Some(id)) => {
            for e in template::check_with(id, extra) {
                out.push((format!("{at}.id"), e));
            }
        }
        _ => {}
    }
    if kind == "delete" && !org.fields.is_empty() {
        out.push((format!("{at}.fields"), "a delete sets no fields".into()));
    }
    if kind == "update" && org.fields.is_empty() {
        out.push((
            format!("{at}.fields"),
            "an update sets at least one field".into(),
        ));
    }
    for (f, v) in &org.fields {
        if let Err(m) = known(object, Some(f)) {
            out.push((format!("{at}.fields.{f}"), m));
        }
        for e in template::check_with(&v.to_string(), extra) {
            out.push((format!("{at}.fields.{f}"), e));
        }
    }
}

fn check_expect(
    e: &RawExpect,
    vars: &BTreeSet<String>,
    command: bool,
    at: &str,
    out: &mut Vec<(String, String)>,
) {
    for s in &e.status {
        if !command && !(100..=599).contains(s) {
            out.push((format!("{at}.status"), format!("{s} is not an HTTP status")));
        }
        if command && *s > 255 {
            out.push((format!("{at}.status"), format!("{s} is not an exit status")));
        }
    }
    if command && !(e.body.is_empty() && e.headers.is_empty()) {
        out.push((
            at.to_string(),
            "a command step is judged by its exit status only".into(),
        ));
    }
    let extra: Vec<&str> = vars.iter().map(String::as_str).collect();
    for (p, c) in &e.body {
        let key = format!("{at}.body.{p}");
        if !valid_pointer(p) {
            out.push((
                key.clone(),
                format!("{p:?} is not a JSON pointer (it starts with `/`)"),
            ));
        }
        check_value(c, &extra, &key, out);
    }
    for (h, c) in &e.headers {
        let key = format!("{at}.headers.{h}");
        if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
            out.push((key.clone(), "not a header name".into()));
        }
        check_value(c, &extra, &key, out);
    }
}

fn check_value(c: &RawValueCheck, extra: &[&str], at: &str, out: &mut Vec<(String, String)>) {
    if c.equals.is_none() && c.exists.is_none() && c.matches.is_none() {
        out.push((
            at.to_string(),
            "give `equals`, `exists` or `matches`".into(),
        ));
    }
    if let Some(m) = &c.matches {
        if let Err(e) = regex::Regex::new(m) {
            out.push((
                format!("{at}.matches"),
                format!("not a regular expression: {e}"),
            ));
        }
    }
    if let Some(v) = &c.equals {
        for e in template::check_with(&v.to_string(), extra) {
            out.push((format!("{at}.equals"), e));
        }
    }
    if c.exists == Some(false) && (c.equals.is_some() || c.matches.is_some()) {
        out.push((
            at.to_string(),
            "`exists: false` cannot also ask for a value".into(),
        ));
    }
}

/// A JSON pointer (RFC 6901): empty, or `/`-separated tokens with `~` only as `~0`/`~1`.
pub fn valid_pointer(p: &str) -> bool {
    if p.is_empty() {
        return true;
    }
    p.starts_with('/') && {
        let b = p.as_bytes();
        b.iter()
            .enumerate()
            .all(|(i, c)| *c != b'~' || matches!(b.get(i + 1), Some(b'0' | b'1')))
    }
}

fn valid_var(v: &str) -> bool {
    v.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(yaml: &str) -> RawOperation {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn problems(yaml: &str) -> Vec<(String, String)> {
        let known = |o: &str, f: Option<&str>| match (o, f) {
            ("Case", None | Some("Subject" | "AI_Summary__c")) => Ok(()),
            ("Case", Some(f)) => Err(format!("Case has no field {f}")),
            (o, _) => Err(format!("no sObject {o}")),
        };
        check_steps(&op(yaml), &["dr.adams@crashcart.test".into()], &known)
    }

    #[test]
    fn a_one_request_operation_is_one_step_expecting_2xx() {
        let s = steps_of(&op("{name: book, path: /book, body: {a: 1}}"));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].expect, Expect::default());
        assert!(
            matches!(&s[0].action, Action::Request { method, path, .. } if method == http::Method::POST && path == "/book")
        );
    }

    #[test]
    fn a_booking_flow_with_captures_is_accepted() {
        let p = problems(
            r#"
name: flow
steps:
  - {name: book, path: /appointments, capture: {id: /id, etag: {header: ETag}}, expect: {status: [201], body: {/status: {equals: booked}}}}
  - {name: move, method: PATCH, path: "/appointments/{{id}}", headers: {if-match: "{{etag}}"}}
  - {name: cancel, method: DELETE, path: "/appointments/{{id}}", expect: {status: [204]}}
"#,
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn unknown_variables_bad_pointers_and_bad_regexes_are_located() {
        let p = problems(
            r#"
name: flow
steps:
  - {path: "/a/{{booking_id}}", capture: {id: "id"}, expect: {body: {"x": {matches: "("}}}}
  - {run: [./job, --once], capture: {n: /n}}
  - {org: {create: Case, as: nobody@x.test, fields: {Subjekt: "{{id}}"}}}
  - {org: {update: Case, fields: {Subject: x}}}
"#,
        );
        let at: Vec<&str> = p.iter().map(|(a, _)| a.as_str()).collect();
        for want in [
            "steps[0].path",
            "steps[0].capture.id",
            "steps[0].expect.body.x",
            "steps[0].expect.body.x.matches",
            "steps[1].capture.n",
            "steps[2].org.as",
            "steps[2].org.fields.Subjekt",
            "steps[3].org.id",
        ] {
            assert!(at.contains(&want), "{want} missing from {p:#?}");
        }
        assert!(p
            .iter()
            .any(|(a, m)| a == "steps[0].path" && m.contains("booking_id")));
    }

    #[test]
    fn a_later_step_may_use_what_an_earlier_one_captured_but_not_the_reverse() {
        let p = problems(
            r#"
name: flow
steps:
  - {path: "/b/{{id}}"}
  - {path: /a, capture: {id: /id}}
"#,
        );
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].0, "steps[0].path");
    }

    #[test]
    fn pointers_follow_rfc_6901() {
        for ok in ["", "/", "/id", "/records/0/Id", "/a~1b", "/m~0n"] {
            assert!(valid_pointer(ok), "{ok}");
        }
        for bad in ["id", "/a~", "/a~2"] {
            assert!(!valid_pointer(bad), "{bad}");
        }
    }
}

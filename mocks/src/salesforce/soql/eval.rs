//! Binding a parsed query to the org schema (unknown fields and mistyped literals become
//! Salesforce's errors) and running it over the org's records.

use std::cmp::Ordering;

use chrono::{NaiveDate, NaiveTime};
use serde_json::{Map, Value};

use super::{CmpOp, Cond, FieldPath, Literal, Pos, Query, Selection, SoqlError};
use crate::salesforce::ids;
use crate::salesforce::schema::{FieldDef, FieldType, ObjectDef, OrgSchema};
use crate::salesforce::store::{compute, OrgData, Record};
use crate::salesforce::validate::format_datetime;

/// The result of running a query.
#[derive(Debug)]
pub enum Outcome {
    /// `COUNT()`: the number of matching rows.
    Count(usize),
    /// Rendered rows, in order.
    Rows(Vec<Value>),
}

/// A field path resolved against the schema.
#[derive(Clone, Debug)]
pub(super) enum Bound {
    /// A field of the queried object.
    Own { field: String, ftype: FieldType },
    /// A field of a parent: `rel_field` is the reference field (`WhoId`), `rel_name` its
    /// relationship name (`Who`), `field` the parent's field (`Name`).
    Parent {
        rel_field: String,
        rel_name: String,
        field: String,
        ftype: FieldType,
    },
}

impl Bound {
    pub(super) fn ftype(&self) -> FieldType {
        match self {
            Bound::Own { ftype, .. } | Bound::Parent { ftype, .. } => *ftype,
        }
    }
}

const CUSTOM_FIELD_HINT: &str = "If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.";

fn no_such_column(obj: &ObjectDef, name: &str, pos: Pos) -> SoqlError {
    SoqlError::at(
        "INVALID_FIELD",
        format!(
            "No such column '{name}' on entity '{}'. {CUSTOM_FIELD_HINT}",
            obj.name
        ),
        pos,
    )
}

pub(super) fn bind(
    schema: &OrgSchema,
    obj: &ObjectDef,
    path: &FieldPath,
) -> Result<Bound, SoqlError> {
    match path.parts.as_slice() {
        [name] => {
            let f = obj
                .field(name)
                .ok_or_else(|| no_such_column(obj, name, path.pos))?;
            Ok(Bound::Own {
                field: f.name.clone(),
                ftype: f.ftype,
            })
        }
        [first, name] if first.eq_ignore_ascii_case(&obj.name) => {
            // `Contact.Name` on a Contact query is the object's own field.
            let f = obj
                .field(name)
                .ok_or_else(|| no_such_column(obj, name, path.pos))?;
            Ok(Bound::Own {
                field: f.name.clone(),
                ftype: f.ftype,
            })
        }
        [rel, name] => {
            let rf = obj.relationship(rel).ok_or_else(|| {
                SoqlError::at(
                    "INVALID_FIELD",
                    format!("Didn't understand relationship '{rel}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names."),
                    path.pos,
                )
            })?;
            let target: Option<&FieldDef> = rf
                .reference_to
                .iter()
                .filter_map(|t| schema.object(t))
                .find_map(|t| t.field(name));
            let f = target.ok_or_else(|| {
                let first = rf
                    .reference_to
                    .first()
                    .and_then(|t| schema.object(t))
                    .unwrap_or(obj);
                no_such_column(first, name, path.pos)
            })?;
            Ok(Bound::Parent {
                rel_field: rf.name.clone(),
                rel_name: rf.relationship_name.clone().unwrap_or_default(),
                field: f.name.clone(),
                ftype: f.ftype,
            })
        }
        _ => Err(SoqlError::at(
            "MALFORMED_QUERY",
            format!(
                "relationship paths deeper than one level are not supported by this mock: '{}'",
                path.text()
            ),
            path.pos,
        )),
    }
}

/// A literal converted to the comparable form of a field's type.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Cv {
    Null,
    Text(String),
    Num(f64),
    Bool(bool),
    Id(String),
}

fn type_word(t: FieldType) -> &'static str {
    match t {
        t if t.is_numeric() => "double",
        FieldType::Boolean => "boolean",
        FieldType::Date => "date",
        FieldType::Datetime => "datetime",
        FieldType::Id | FieldType::Reference => "id",
        _ => "string",
    }
}

pub(super) fn filter_error(
    field: &FieldPath,
    ftype: FieldType,
    quoted: bool,
    pos: Pos,
) -> SoqlError {
    let quoting = if matches!(type_word(ftype), "string" | "id") {
        "should be enclosed in quotes"
    } else if quoted {
        "should not be enclosed in quotes"
    } else {
        "must be a valid literal"
    };
    SoqlError::at(
        "INVALID_QUERY_FILTER_OPERATOR",
        format!(
            "value of filter criterion for field '{}' must be of type {} and {quoting}",
            field.text(),
            type_word(ftype)
        ),
        pos,
    )
}

pub(super) fn convert(
    field: &FieldPath,
    ftype: FieldType,
    lit: &Literal,
    pos: Pos,
) -> Result<Cv, SoqlError> {
    let quoted = matches!(lit, Literal::Str(_));
    let bad = || filter_error(field, ftype, quoted, pos);
    Ok(match (ftype, lit) {
        (_, Literal::Null) => Cv::Null,
        (FieldType::Id | FieldType::Reference, Literal::Str(s)) => match ids::normalize(s) {
            Some(id) => Cv::Id(id),
            None => {
                return Err(SoqlError::at(
                    "INVALID_QUERY_FILTER_OPERATOR",
                    format!("invalid ID field: {s}"),
                    pos,
                ))
            }
        },
        (t, Literal::Str(s)) if t.is_text() => Cv::Text(s.to_lowercase()),
        (t, Literal::Num(n)) if t.is_numeric() => Cv::Num(*n),
        (FieldType::Boolean, Literal::Bool(b)) => Cv::Bool(*b),
        (FieldType::Date, Literal::Date(d)) => Cv::Text(d.format("%Y-%m-%d").to_string()),
        (FieldType::Datetime, Literal::DateTime(t)) => Cv::Text(format_datetime(*t)),
        _ => return Err(bad()),
    })
}

pub(super) fn to_cv(ftype: FieldType, v: &Value) -> Cv {
    match v {
        Value::Null => Cv::Null,
        Value::Bool(b) => Cv::Bool(*b),
        Value::Number(n) => Cv::Num(n.as_f64().unwrap_or(0.0)),
        Value::String(s) if matches!(ftype, FieldType::Id | FieldType::Reference) => {
            Cv::Id(s.clone())
        }
        Value::String(s) if ftype.is_text() => Cv::Text(s.to_lowercase()),
        Value::String(s) => Cv::Text(s.clone()),
        other => Cv::Text(other.to_string()),
    }
}

pub(super) fn cmp_cv(a: &Cv, b: &Cv) -> Option<Ordering> {
    match (a, b) {
        (Cv::Text(x), Cv::Text(y)) | (Cv::Id(x), Cv::Id(y)) => Some(x.cmp(y)),
        (Cv::Num(x), Cv::Num(y)) => x.partial_cmp(y),
        (Cv::Bool(x), Cv::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// A condition with fields bound and literals converted.
pub(super) enum Pred {
    And(Vec<Pred>),
    Or(Vec<Pred>),
    Not(Box<Pred>),
    Cmp(Bound, CmpOp, Cv),
    In(Bound, bool, Vec<Cv>),
    Like(Bound, Vec<LikeTok>),
    /// `field op RANGE`: the range's first day and the day after its last.
    Range(Bound, CmpOp, Cv, Cv),
    /// `SUM(f) op literal` over the group being judged (`HAVING`).
    Agg(super::aggregate::BoundAgg, CmpOp, Cv),
}

#[derive(Clone, Debug, PartialEq)]
pub(super) enum LikeTok {
    Any,
    One,
    Char(char),
}

fn like_pattern(p: &str) -> Vec<LikeTok> {
    let mut out = vec![];
    let mut chars = p.chars();
    while let Some(c) = chars.next() {
        out.push(match c {
            '%' => LikeTok::Any,
            '_' => LikeTok::One,
            '\\' => match chars.next() {
                Some(n) => LikeTok::Char(n.to_lowercase().next().unwrap_or(n)),
                None => LikeTok::Char('\\'),
            },
            c => LikeTok::Char(c.to_lowercase().next().unwrap_or(c)),
        });
    }
    out
}

fn like_match(pat: &[LikeTok], text: &[char]) -> bool {
    // Iterative wildcard matching with backtracking to the last `%`.
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pat.get(p) {
            Some(LikeTok::Any) => {
                star = Some((p, t));
                p += 1;
            }
            Some(LikeTok::One) => {
                p += 1;
                t += 1;
            }
            Some(LikeTok::Char(c)) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pat[p.min(pat.len())..].iter().all(|x| *x == LikeTok::Any)
}

/// The deepest condition tree bound: the parser's nesting plus the top-level `AND`/`OR`.
const MAX_TREE_DEPTH: usize = super::parser::MAX_NESTING + 1;

/// Bind a condition tree; `depth` is the tree depth of `c` (1 at the top). Trees deeper than
/// the parser builds (a [`Query`] made in code) are refused, so evaluation never recurses
/// deeper than parsing allows. The recursive path keeps its frames small: leaves are bound
/// by [`bind_leaf`], outside it.
pub(super) fn bind_cond(on: &On<'_>, c: &Cond, depth: usize) -> Result<Pred, SoqlError> {
    if depth > MAX_TREE_DEPTH {
        return Err(super::too_deep(None));
    }
    match c {
        Cond::And(v) => bind_all(on, v, depth + 1).map(Pred::And),
        Cond::Or(v) => bind_all(on, v, depth + 1).map(Pred::Or),
        Cond::Not(c) => bind_cond(on, c, depth + 1).map(|p| Pred::Not(Box::new(p))),
        leaf => bind_leaf(on, leaf, depth),
    }
}

fn bind_all(on: &On<'_>, conds: &[Cond], depth: usize) -> Result<Vec<Pred>, SoqlError> {
    let mut out = Vec::with_capacity(conds.len());
    for c in conds {
        out.push(bind_cond(on, c, depth)?);
    }
    Ok(out)
}

/// What a condition is bound against: the schema, the queried object, and the org's today
/// (for relative date literals).
pub(super) struct On<'a> {
    pub(super) schema: &'a OrgSchema,
    pub(super) obj: &'a ObjectDef,
    pub(super) today: NaiveDate,
    /// Binding a `HAVING` condition, where aggregates may stand.
    pub(super) having: bool,
}

/// Bind a comparison, `IN` or `LIKE`.
#[inline(never)]
fn bind_leaf(on: &On<'_>, c: &Cond, depth: usize) -> Result<Pred, SoqlError> {
    let (schema, obj) = (on.schema, on.obj);
    match c {
        Cond::Cmp {
            field,
            op,
            value,
            value_pos,
        } => bind_cmp(on, field, *op, value, *value_pos),
        Cond::In {
            field,
            negated,
            values,
        } => bind_in(schema, obj, field, *negated, values),
        Cond::Like { field, pattern } => bind_like(schema, obj, field, pattern),
        Cond::Agg {
            call,
            op,
            value,
            value_pos,
        } => super::aggregate::bind_having(on, call, *op, value, *value_pos),
        Cond::And(_) | Cond::Or(_) | Cond::Not(_) => bind_cond(on, c, depth),
    }
}

/// Bind `field [NOT] IN (…)`.
fn bind_in(
    schema: &OrgSchema,
    obj: &ObjectDef,
    field: &FieldPath,
    negated: bool,
    values: &[(Literal, Pos)],
) -> Result<Pred, SoqlError> {
    let b = bind(schema, obj, field)?;
    let t = b.ftype();
    let cvs = values
        .iter()
        .map(|(l, p)| convert(field, t, l, *p))
        .collect::<Result<_, _>>()?;
    Ok(Pred::In(b, negated, cvs))
}

/// Bind `field LIKE 'pattern'`.
fn bind_like(
    schema: &OrgSchema,
    obj: &ObjectDef,
    field: &FieldPath,
    pattern: &str,
) -> Result<Pred, SoqlError> {
    let b = bind(schema, obj, field)?;
    if !b.ftype().is_text() {
        return Err(SoqlError::at(
            "INVALID_QUERY_FILTER_OPERATOR",
            format!("invalid operator on {} field", type_word(b.ftype())),
            field.pos,
        ));
    }
    Ok(Pred::Like(b, like_pattern(pattern)))
}

/// Bind `field op literal`.
fn bind_cmp(
    on: &On<'_>,
    field: &FieldPath,
    op: CmpOp,
    value: &Literal,
    value_pos: Pos,
) -> Result<Pred, SoqlError> {
    let b = bind(on.schema, on.obj, field)?;
    let t = b.ftype();
    if let Literal::Relative(rel) = value {
        let (from, to) = rel.range(on.today);
        let day = |d: NaiveDate| match t {
            FieldType::Date => Ok(Cv::Text(d.format("%Y-%m-%d").to_string())),
            FieldType::Datetime => Ok(Cv::Text(format_datetime(
                d.and_time(NaiveTime::MIN).and_utc(),
            ))),
            _ => Err(filter_error(field, t, false, value_pos)),
        };
        return Ok(Pred::Range(b, op, day(from)?, day(to)?));
    }
    if t == FieldType::Boolean && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
        return Err(SoqlError::at(
            "INVALID_QUERY_FILTER_OPERATOR",
            "invalid operator on boolean field",
            value_pos,
        ));
    }
    let cv = convert(field, t, value, value_pos)?;
    Ok(Pred::Cmp(b, op, cv))
}

pub(super) struct Ctx<'a> {
    pub(super) schema: &'a OrgSchema,
    pub(super) data: &'a OrgData,
    /// The records of the group a `HAVING` condition judges.
    pub(super) group: &'a [&'a Record],
}

impl Ctx<'_> {
    pub(super) fn value(&self, obj: &ObjectDef, r: &Record, b: &Bound) -> Value {
        match b {
            Bound::Own { field, .. } => compute(obj, r, field),
            Bound::Parent {
                rel_field, field, ..
            } => {
                let Some(pid) = r.get(rel_field).as_str() else {
                    return Value::Null;
                };
                let Some(parent) = self.data.get_any(self.schema, pid).filter(|p| !p.deleted)
                else {
                    return Value::Null;
                };
                let Some(pobj) = self.schema.object(&parent.object) else {
                    return Value::Null;
                };
                compute(pobj, parent, field)
            }
        }
    }

    pub(super) fn eval(&self, obj: &ObjectDef, r: &Record, p: &Pred) -> bool {
        match p {
            Pred::And(v) => {
                for p in v {
                    if !self.eval(obj, r, p) {
                        return false;
                    }
                }
                true
            }
            Pred::Or(v) => {
                for p in v {
                    if self.eval(obj, r, p) {
                        return true;
                    }
                }
                false
            }
            Pred::Not(p) => !self.eval(obj, r, p),
            leaf => self.eval_leaf(obj, r, leaf),
        }
    }

    /// A comparison, `IN` or `LIKE` on one record (outside the recursion of [`Ctx::eval`]).
    #[inline(never)]
    fn eval_leaf(&self, obj: &ObjectDef, r: &Record, p: &Pred) -> bool {
        match p {
            Pred::Cmp(b, op, lit) => compare(*op, &to_cv(b.ftype(), &self.value(obj, r, b)), lit),
            Pred::Agg(agg, op, lit) => compare(*op, &agg.value(self, obj, self.group).0, lit),
            Pred::In(b, negated, list) => {
                let v = to_cv(b.ftype(), &self.value(obj, r, b));
                let hit = list.contains(&v);
                hit != *negated
            }
            Pred::Range(b, op, from, to) => {
                let v = to_cv(b.ftype(), &self.value(obj, r, b));
                if v == Cv::Null {
                    return *op == CmpOp::Ne;
                }
                let from_on = cmp_cv(&v, from).is_some_and(|o| o != Ordering::Less);
                let before_end = cmp_cv(&v, to) == Some(Ordering::Less);
                match op {
                    CmpOp::Eq => from_on && before_end,
                    CmpOp::Ne => !(from_on && before_end),
                    CmpOp::Lt => !from_on,
                    CmpOp::Ge => from_on,
                    CmpOp::Gt => !before_end,
                    CmpOp::Le => before_end,
                }
            }
            Pred::Like(b, pat) => match self.value(obj, r, b) {
                Value::String(s) => {
                    let text: Vec<char> = s.to_lowercase().chars().collect();
                    like_match(pat, &text)
                }
                _ => false,
            },
            Pred::And(_) | Pred::Or(_) | Pred::Not(_) => self.eval(obj, r, p),
        }
    }

    pub(super) fn render(
        &self,
        obj: &ObjectDef,
        r: &Record,
        fields: &[Bound],
        version: &str,
    ) -> Value {
        let mut out = Map::new();
        out.insert(
            "attributes".into(),
            serde_json::json!({"type": obj.name, "url": format!("/services/data/v{version}/sobjects/{}/{}", obj.name, r.id)}),
        );
        for b in fields {
            match b {
                Bound::Own { field, .. } => {
                    out.insert(field.clone(), compute(obj, r, field));
                }
                Bound::Parent {
                    rel_field,
                    rel_name,
                    field,
                    ..
                } => {
                    let parent = r
                        .get(rel_field)
                        .as_str()
                        .and_then(|pid| self.data.get_any(self.schema, pid))
                        .filter(|p| !p.deleted);
                    let entry = out.entry(rel_name.clone()).or_insert(Value::Null);
                    if let Some(parent) = parent {
                        let Some(pobj) = self.schema.object(&parent.object) else {
                            continue;
                        };
                        if entry.is_null() {
                            *entry = serde_json::json!({"attributes": {"type": pobj.name, "url": format!("/services/data/v{version}/sobjects/{}/{}", pobj.name, parent.id)}});
                        }
                        if let Value::Object(m) = entry {
                            m.insert(field.clone(), compute(pobj, parent, field));
                        }
                    }
                }
            }
        }
        Value::Object(out)
    }
}

/// `v op lit`, with SOQL's nulls: `= null` and `!= null` test for null; any other
/// comparison with a null value holds only for `!=`.
fn compare(op: CmpOp, v: &Cv, lit: &Cv) -> bool {
    match (op, v, lit) {
        (CmpOp::Eq, _, Cv::Null) => *v == Cv::Null,
        (CmpOp::Ne, _, Cv::Null) => *v != Cv::Null,
        (_, Cv::Null, _) => op == CmpOp::Ne,
        _ => match cmp_cv(v, lit) {
            Some(o) => match op {
                CmpOp::Eq => o == Ordering::Equal,
                CmpOp::Ne => o != Ordering::Equal,
                CmpOp::Lt => o == Ordering::Less,
                CmpOp::Gt => o == Ordering::Greater,
                CmpOp::Le => o != Ordering::Greater,
                CmpOp::Ge => o != Ordering::Less,
            },
            None => false,
        },
    }
}

/// Largest `OFFSET` Salesforce accepts.
pub const MAX_OFFSET: usize = 2000;

/// Run a query. `include_deleted` is `queryAll`. Relative date literals count from the
/// machine's today; [`execute_on`] takes the org's.
pub fn execute(
    q: &Query,
    schema: &OrgSchema,
    data: &OrgData,
    version: &str,
    include_deleted: bool,
) -> Result<Outcome, SoqlError> {
    let today = chrono::Utc::now().date_naive();
    execute_on(q, schema, data, version, include_deleted, today)
}

/// [`execute`] with the org's today (the mock's clock).
pub fn execute_on(
    q: &Query,
    schema: &OrgSchema,
    data: &OrgData,
    version: &str,
    include_deleted: bool,
    today: NaiveDate,
) -> Result<Outcome, SoqlError> {
    let obj = schema.object(&q.from).ok_or_else(|| {
        SoqlError::at(
            "INVALID_TYPE",
            format!("sObject type '{}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.", q.from),
            q.from_pos,
        )
    })?;
    let fields = bind_selection(schema, obj, &q.select)?;
    let on = On {
        schema,
        obj,
        today,
        having: false,
    };
    let pred = q
        .filter
        .as_ref()
        .map(|c| bind_cond(&on, c, 1))
        .transpose()?;
    let order: Vec<(Bound, bool, bool)> = q
        .order
        .iter()
        .map(|k| Ok((bind(schema, obj, &k.field)?, k.desc, k.nulls_first)))
        .collect::<Result<_, SoqlError>>()?;
    if let Some(off) = q.offset {
        if off > MAX_OFFSET {
            return Err(SoqlError::at(
                "NUMBER_OUTSIDE_VALID_RANGE",
                format!("Maximum SOQL offset allowed is {MAX_OFFSET}"),
                q.from_pos,
            ));
        }
    }
    if !q.children.is_empty() && !matches!(q.select, Selection::Fields(_)) {
        return Err(SoqlError::at(
            "MALFORMED_QUERY",
            "child subqueries go with a field list, not with COUNT() or aggregates",
            q.from_pos,
        ));
    }
    let children = super::children::bind_children(&on, q, data)?;
    let ctx = Ctx {
        schema,
        data,
        group: &[],
    };
    let mut rows: Vec<&Record> = data
        .records(&obj.name)
        .filter(|r| include_deleted || !r.deleted)
        .filter(|r| pred.as_ref().is_none_or(|p| ctx.eval(obj, r, p)))
        .collect();
    if let Selection::Aggregate(items) = &q.select {
        let groups = super::aggregate::run(&ctx, &on, q, items, rows)?;
        let groups = sort_by(groups, &order, |g, b| {
            g.first
                .map_or(Cv::Null, |r| to_cv(b.ftype(), &ctx.value(obj, r, b)))
        });
        let page = groups.into_iter().skip(q.offset.unwrap_or(0));
        let page = page.take(q.limit.unwrap_or(usize::MAX));
        return Ok(Outcome::Rows(page.map(|g| g.row).collect()));
    }
    if !order.is_empty() {
        rows = sort_by(rows, &order, |r, b| to_cv(b.ftype(), &ctx.value(obj, r, b)));
    }
    let offset = q.offset.unwrap_or(0);
    let rows = rows
        .into_iter()
        .skip(offset)
        .take(q.limit.unwrap_or(usize::MAX));
    Ok(match q.select {
        Selection::Count => Outcome::Count(rows.count()),
        Selection::Fields(_) | Selection::Aggregate(_) => Outcome::Rows(
            rows.map(|r| {
                let mut row = ctx.render(obj, r, &fields, version);
                for child in &children {
                    let (name, value) = child.render(&ctx, r, version);
                    row[name] = value;
                }
                row
            })
            .collect(),
        ),
    })
}

/// The selected fields bound to the schema (none for `COUNT()`); a field selected twice is
/// Salesforce's `duplicate field selected`.
pub(super) fn bind_selection(
    schema: &OrgSchema,
    obj: &ObjectDef,
    select: &Selection,
) -> Result<Vec<Bound>, SoqlError> {
    let Selection::Fields(list) = select else {
        return Ok(vec![]);
    };
    let mut seen = std::collections::HashSet::new();
    let mut out = vec![];
    for p in list {
        let b = bind(schema, obj, p)?;
        let key = match &b {
            Bound::Own { field, .. } => field.to_ascii_lowercase(),
            Bound::Parent {
                rel_name, field, ..
            } => format!("{rel_name}.{field}").to_ascii_lowercase(),
        };
        if !seen.insert(key) {
            return Err(SoqlError::at(
                "MALFORMED_QUERY",
                format!("duplicate field selected: {}", p.text()),
                p.pos,
            ));
        }
        out.push(b);
    }
    Ok(out)
}

/// Items in `ORDER BY` order: keys computed once per item, then a stable sort.
pub(super) fn sort_by<T>(
    items: Vec<T>,
    order: &[(Bound, bool, bool)],
    key: impl Fn(&T, &Bound) -> Cv,
) -> Vec<T> {
    if order.is_empty() {
        return items;
    }
    let mut keyed: Vec<(Vec<Cv>, T)> = items
        .into_iter()
        .map(|t| (order.iter().map(|(b, _, _)| key(&t, b)).collect(), t))
        .collect();
    keyed.sort_by(|(a, _), (b, _)| {
        order
            .iter()
            .zip(a.iter().zip(b))
            .map(|((_, desc, nulls_first), (x, y))| order_key(x, y, *desc, *nulls_first))
            .find(|o| *o != Ordering::Equal)
            .unwrap_or(Ordering::Equal)
    });
    keyed.into_iter().map(|(_, t)| t).collect()
}

/// How two values of one `ORDER BY` key compare.
fn order_key(a: &Cv, b: &Cv, desc: bool, nulls_first: bool) -> Ordering {
    let null_side = if nulls_first {
        Ordering::Less
    } else {
        Ordering::Greater
    };
    match (a, b) {
        (Cv::Null, Cv::Null) => Ordering::Equal,
        (Cv::Null, _) => null_side,
        (_, Cv::Null) => null_side.reverse(),
        (x, y) => {
            let o = cmp_cv(x, y).unwrap_or(Ordering::Equal);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_matches_salesforce_wildcards() {
        let m = |p: &str, t: &str| {
            like_match(
                &like_pattern(p),
                &t.to_lowercase().chars().collect::<Vec<_>>(),
            )
        };
        assert!(m("Ad%", "Adams"));
        assert!(m("%ams", "Adams"));
        assert!(m("A_a%", "Adams"));
        assert!(m("%", ""));
        assert!(!m("A_", "Adams"));
        assert!(m("50\\%", "50%"));
        assert!(!m("50\\%", "500"));
        assert!(m("%d%m%", "Adams"));
    }
}

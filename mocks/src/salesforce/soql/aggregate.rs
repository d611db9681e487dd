//! Aggregate queries: `COUNT(f)`, `COUNT_DISTINCT(f)`, `SUM`, `AVG`, `MIN`, `MAX`, grouped
//! by `GROUP BY` fields and filtered by `HAVING`, answered as Salesforce does: one
//! `AggregateResult` row per group, grouped fields under their own names, each aggregate under
//! its alias or `expr0`, `expr1`, … (counting the aggregates without an alias).

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use super::eval::{bind, bind_cond, cmp_cv, convert, to_cv, Bound, Ctx, Cv, On, Pred};
use super::{AggCall, AggFn, AggItem, CmpOp, FieldPath, Literal, Pos, Query, SoqlError};
use crate::salesforce::schema::{FieldType, ObjectDef};
use crate::salesforce::store::Record;

/// An aggregate bound to its field.
pub(crate) struct BoundAgg {
    func: AggFn,
    field: Bound,
}

fn malformed(message: String, pos: Pos) -> SoqlError {
    SoqlError::at("MALFORMED_QUERY", message, pos)
}

fn func_name(f: AggFn) -> &'static str {
    match f {
        AggFn::Count => "COUNT",
        AggFn::CountDistinct => "COUNT_DISTINCT",
        AggFn::Sum => "SUM",
        AggFn::Avg => "AVG",
        AggFn::Min => "MIN",
        AggFn::Max => "MAX",
    }
}

/// Bind `SUM(field)`: the field must exist and suit the function.
fn bind_agg(on: &On<'_>, call: &AggCall) -> Result<BoundAgg, SoqlError> {
    let field = bind(on.schema, on.obj, &call.field)?;
    let t = field.ftype();
    let fits = match call.func {
        AggFn::Sum | AggFn::Avg => t.is_numeric(),
        AggFn::Min | AggFn::Max => !matches!(t, FieldType::Boolean | FieldType::Textarea),
        AggFn::Count | AggFn::CountDistinct => t != FieldType::Textarea,
    };
    if !fits {
        return Err(malformed(
            format!(
                "field {} does not support aggregate operator {}",
                call.field.text(),
                func_name(call.func)
            ),
            call.pos,
        ));
    }
    Ok(BoundAgg {
        func: call.func,
        field,
    })
}

/// `COUNT(Id) > 1` in `HAVING` (refused in `WHERE`).
pub(super) fn bind_having(
    on: &On<'_>,
    call: &AggCall,
    op: CmpOp,
    value: &Literal,
    value_pos: Pos,
) -> Result<Pred, SoqlError> {
    if !on.having {
        return Err(malformed(
            "Aggregate functions are not allowed in the WHERE clause; use HAVING".into(),
            call.pos,
        ));
    }
    let agg = bind_agg(on, call)?;
    let lit = match (agg.func, value) {
        (AggFn::Min | AggFn::Max, v) => convert(&call.field, agg.field.ftype(), v, value_pos)?,
        (_, Literal::Num(n)) => Cv::Num(*n),
        (_, Literal::Null) => Cv::Null,
        _ => {
            return Err(malformed(
                format!("{} needs a number to compare with", func_name(agg.func)),
                value_pos,
            ))
        }
    };
    Ok(Pred::Agg(agg, op, lit))
}

impl BoundAgg {
    /// The aggregate over a group's records: comparable, and as the answer renders it.
    pub(super) fn value(&self, ctx: &Ctx<'_>, obj: &ObjectDef, group: &[&Record]) -> (Cv, Value) {
        let t = self.field.ftype();
        let values = group
            .iter()
            .map(|r| ctx.value(obj, r, &self.field))
            .filter(|v| !v.is_null());
        match self.func {
            AggFn::Count => {
                let n = values.count();
                (Cv::Num(n as f64), json!(n))
            }
            AggFn::CountDistinct => {
                let distinct: BTreeSet<String> =
                    values.map(|v| format!("{:?}", to_cv(t, &v))).collect();
                (Cv::Num(distinct.len() as f64), json!(distinct.len()))
            }
            AggFn::Sum | AggFn::Avg => {
                let nums: Vec<f64> = values.filter_map(|v| v.as_f64()).collect();
                if nums.is_empty() {
                    return (Cv::Null, Value::Null);
                }
                let sum: f64 = nums.iter().sum();
                let x = if self.func == AggFn::Sum {
                    sum
                } else {
                    sum / nums.len() as f64
                };
                (Cv::Num(x), json!(x))
            }
            AggFn::Min | AggFn::Max => {
                let want = if self.func == AggFn::Min {
                    std::cmp::Ordering::Less
                } else {
                    std::cmp::Ordering::Greater
                };
                let best = values.map(|v| (to_cv(t, &v), v)).reduce(|a, b| {
                    if cmp_cv(&b.0, &a.0) == Some(want) {
                        b
                    } else {
                        a
                    }
                });
                best.unwrap_or((Cv::Null, Value::Null))
            }
        }
    }
}

/// One group of an aggregate query: its first record (what `ORDER BY` on grouped fields
/// reads; none for the one group of an empty query without `GROUP BY`) and its row.
pub(super) struct Group<'r> {
    pub(super) first: Option<&'r Record>,
    pub(super) row: Value,
}

/// The aggregates and grouped fields of a select list, bound.
enum Item {
    Group { name: String, field: Bound },
    Agg { name: String, agg: BoundAgg },
}

fn bind_items(on: &On<'_>, q: &Query, items: &[AggItem]) -> Result<Vec<Item>, SoqlError> {
    let grouped = |f: &FieldPath| {
        q.group_by
            .iter()
            .any(|g| g.text().eq_ignore_ascii_case(&f.text()))
    };
    let mut unnamed = 0;
    let mut out = vec![];
    for item in items {
        out.push(match item {
            AggItem::Group(f) if !grouped(f) => {
                return Err(malformed(
                    format!("Field must be grouped or aggregated: {}", f.text()),
                    f.pos,
                ))
            }
            AggItem::Group(f) => {
                let field = bind(on.schema, on.obj, f)?;
                let name = match &field {
                    Bound::Own { field, .. } | Bound::Parent { field, .. } => field.clone(),
                };
                Item::Group { name, field }
            }
            AggItem::Call { call, alias } => {
                let name = alias.clone().unwrap_or_else(|| {
                    unnamed += 1;
                    format!("expr{}", unnamed - 1)
                });
                Item::Agg {
                    name,
                    agg: bind_agg(on, call)?,
                }
            }
        });
    }
    Ok(out)
}

/// The groups of an aggregate query over the rows its `WHERE` kept, `HAVING` applied, in
/// the order they were first seen.
pub(super) fn run<'r>(
    ctx: &Ctx<'r>,
    on: &On<'_>,
    q: &Query,
    items: &[AggItem],
    rows: Vec<&'r Record>,
) -> Result<Vec<Group<'r>>, SoqlError> {
    let obj = on.obj;
    let bound = bind_items(on, q, items)?;
    let keys: Vec<Bound> = (q.group_by.iter())
        .map(|g| bind(on.schema, obj, g))
        .collect::<Result<_, _>>()?;
    let having_on = On {
        schema: on.schema,
        obj,
        today: on.today,
        having: true,
    };
    let having = (q.having.as_ref())
        .map(|c| bind_cond(&having_on, c, 1))
        .transpose()?;
    let mut groups: Vec<(Vec<Cv>, Vec<&Record>)> = vec![];
    for r in rows {
        let key: Vec<Cv> = (keys.iter())
            .map(|b| to_cv(b.ftype(), &ctx.value(obj, r, b)))
            .collect();
        match groups.iter_mut().find(|(k, _)| *k == key) {
            Some((_, members)) => members.push(r),
            None => groups.push((key, vec![r])),
        }
    }
    if groups.is_empty() && keys.is_empty() {
        groups.push((vec![], vec![]));
    }
    let mut out = vec![];
    for (_, records) in groups {
        let judged = Ctx {
            schema: ctx.schema,
            data: ctx.data,
            group: &records,
        };
        let first = records.first().copied();
        if let (Some(h), Some(r)) = (&having, first) {
            if !judged.eval(obj, r, h) {
                continue;
            }
        }
        let row = render(&judged, obj, &bound, first);
        out.push(Group { first, row });
    }
    Ok(out)
}

/// A group's `AggregateResult` row.
fn render(ctx: &Ctx<'_>, obj: &ObjectDef, bound: &[Item], first: Option<&Record>) -> Value {
    let mut row = Map::new();
    row.insert("attributes".into(), json!({"type": "AggregateResult"}));
    for item in bound {
        let (name, value) = match item {
            Item::Group { name, field } => {
                let v = first.map_or(Value::Null, |r| ctx.value(obj, r, field));
                (name, v)
            }
            Item::Agg { name, agg } => (name, agg.value(ctx, obj, ctx.group).1),
        };
        row.insert(name.clone(), value);
    }
    Value::Object(row)
}

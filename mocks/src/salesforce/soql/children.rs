//! Child subqueries: `SELECT Id, (SELECT Id, Subject FROM Events WHERE … ORDER BY … LIMIT n)
//! FROM Contact`. The subquery's `FROM` names a child relationship of the queried object
//! (`OrgSchema::child_relationships`); each parent row carries its children as a nested
//! query result (`{totalSize, done, records}`), or `null` when it has none, as Salesforce
//! answers.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::eval::{bind, bind_cond, bind_selection, sort_by, to_cv, Bound, Ctx, On, Pred};
use super::{Query, SoqlError};
use crate::salesforce::ids;
use crate::salesforce::schema::ObjectDef;
use crate::salesforce::store::{OrgData, Record};

/// A child subquery bound to its object, with the children indexed by parent id.
pub(super) struct BoundChild<'a> {
    name: String,
    obj: &'a ObjectDef,
    fields: Vec<Bound>,
    pred: Option<Pred>,
    order: Vec<(Bound, bool, bool)>,
    limit: Option<usize>,
    by_parent: HashMap<String, Vec<&'a Record>>,
}

fn unknown_relationship(sub: &Query) -> SoqlError {
    SoqlError::at(
        "INVALID_TYPE",
        format!("Didn't understand relationship '{}' in FROM part of query call. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.", sub.from),
        sub.from_pos,
    )
}

/// Bind each child subquery of `q` (a query over `on.obj`).
pub(super) fn bind_children<'a>(
    on: &On<'a>,
    q: &Query,
    data: &'a OrgData,
) -> Result<Vec<BoundChild<'a>>, SoqlError> {
    let relationships = on.schema.child_relationships(&on.obj.name);
    let mut out = vec![];
    for sub in &q.children {
        let (name, child, field) = (relationships.iter())
            .find(|(n, ..)| n.eq_ignore_ascii_case(&sub.from))
            .ok_or_else(|| unknown_relationship(sub))?;
        let child_on = On {
            schema: on.schema,
            obj: child,
            today: on.today,
            having: false,
        };
        let pred = (sub.filter.as_ref())
            .map(|c| bind_cond(&child_on, c, 1))
            .transpose()?;
        let order = (sub.order.iter())
            .map(|k| Ok((bind(on.schema, child, &k.field)?, k.desc, k.nulls_first)))
            .collect::<Result<_, SoqlError>>()?;
        let mut by_parent: HashMap<String, Vec<&Record>> = HashMap::new();
        for r in data.records(&child.name).filter(|r| !r.deleted) {
            if let Some(pid) = r.get(&field.name).as_str() {
                let key = ids::normalize(pid).unwrap_or_else(|| pid.to_string());
                by_parent.entry(key).or_default().push(r);
            }
        }
        out.push(BoundChild {
            name: name.clone(),
            obj: child,
            fields: bind_selection(on.schema, child, &sub.select)?,
            pred,
            order,
            limit: sub.limit,
            by_parent,
        });
    }
    Ok(out)
}

impl BoundChild<'_> {
    /// The relationship's name and this parent's children, rendered.
    pub(super) fn render(&self, ctx: &Ctx<'_>, parent: &Record, version: &str) -> (String, Value) {
        let obj = self.obj;
        let matching: Vec<&Record> = (self.by_parent.get(&parent.id).into_iter().flatten())
            .copied()
            .filter(|r| self.pred.as_ref().is_none_or(|p| ctx.eval(obj, r, p)))
            .collect();
        let rows = sort_by(matching, &self.order, |r, b| {
            to_cv(b.ftype(), &ctx.value(obj, r, b))
        });
        let records: Vec<Value> = (rows.into_iter().take(self.limit.unwrap_or(usize::MAX)))
            .map(|r| ctx.render(obj, r, &self.fields, version))
            .collect();
        let value = if records.is_empty() {
            Value::Null
        } else {
            json!({"totalSize": records.len(), "done": true, "records": records})
        };
        (self.name.clone(), value)
    }
}

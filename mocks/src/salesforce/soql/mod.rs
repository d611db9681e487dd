//! A SOQL subset, parsed properly: a lexer and a recursive-descent parser produce an AST
//! (`ast` types below), which `eval` binds to the org schema and runs over the org's records.
//!
//! Supported: field lists with one level of parent relationship (`Who.Name`), `COUNT()`,
//! aggregates (`COUNT(f)`, `COUNT_DISTINCT`, `SUM`, `AVG`, `MIN`, `MAX`, aliases) with
//! `GROUP BY` and `HAVING` (in `aggregate`), child subqueries (`(SELECT Id FROM Events)`, in
//! `children`),
//! `WHERE` with `= != <> < > <= >= LIKE IN NOT IN`, `AND`/`OR`/`NOT`, parentheses, `NULL`,
//! string/number/boolean/date/datetime literals, relative date literals (`TODAY`,
//! `LAST_N_DAYS:n`, `THIS_MONTH`, … in `dates`), `ORDER BY … ASC|DESC NULLS FIRST|LAST`,
//! `LIMIT` and `OFFSET`. Errors carry Salesforce's codes and the row/column they point at.
//! Statements longer than 100,000 characters, and conditions nested deeper than
//! [`parser::MAX_NESTING`], are `MALFORMED_QUERY`.

mod aggregate;
mod children;
pub mod dates;
pub mod eval;
pub mod parser;

use chrono::{DateTime, NaiveDate, Utc};
use http::StatusCode;

use super::errors::SfError;

/// A position in the query text (1-based, as Salesforce reports it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    /// Row.
    pub line: usize,
    /// Column.
    pub col: usize,
}

/// A field reference: `Name` or `Who.Name`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldPath {
    /// One or two dotted parts.
    pub parts: Vec<String>,
    /// Where it starts.
    pub pos: Pos,
}

impl FieldPath {
    /// The dotted text.
    pub fn text(&self) -> String {
        self.parts.join(".")
    }
}

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// `'text'`.
    Str(String),
    /// `42`, `-1.5`.
    Num(f64),
    /// `TRUE` / `FALSE`.
    Bool(bool),
    /// `NULL`.
    Null,
    /// `2024-05-01`.
    Date(NaiveDate),
    /// `2024-05-01T09:00:00Z`.
    DateTime(DateTime<Utc>),
    /// `TODAY`, `LAST_N_DAYS:7`, …: a range of days relative to the org's today.
    Relative(dates::RelativeDate),
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `=`
    Eq,
    /// `!=` or `<>`
    Ne,
    /// `<`
    Lt,
    /// `>`
    Gt,
    /// `<=`
    Le,
    /// `>=`
    Ge,
}

/// A `WHERE` condition.
#[derive(Clone, Debug, PartialEq)]
pub enum Cond {
    /// All must hold.
    And(Vec<Cond>),
    /// One must hold.
    Or(Vec<Cond>),
    /// Negation.
    Not(Box<Cond>),
    /// `field op literal`.
    Cmp {
        /// Field.
        field: FieldPath,
        /// Operator.
        op: CmpOp,
        /// Literal.
        value: Literal,
        /// Position of the literal.
        value_pos: Pos,
    },
    /// `field [NOT] IN (...)`.
    In {
        /// Field.
        field: FieldPath,
        /// `NOT IN`.
        negated: bool,
        /// Values.
        values: Vec<(Literal, Pos)>,
    },
    /// `field LIKE 'pattern'`.
    Like {
        /// Field.
        field: FieldPath,
        /// Pattern with `%` and `_`.
        pattern: String,
    },
    /// `COUNT(Id) > 1` (in `HAVING` only).
    Agg {
        /// The aggregate.
        call: AggCall,
        /// Operator.
        op: CmpOp,
        /// Literal.
        value: Literal,
        /// Position of the literal.
        value_pos: Pos,
    },
}

/// An aggregate function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggFn {
    /// `COUNT(field)`: rows where the field is not null.
    Count,
    /// `COUNT_DISTINCT(field)`.
    CountDistinct,
    /// `SUM(field)` (numbers).
    Sum,
    /// `AVG(field)` (numbers).
    Avg,
    /// `MIN(field)`.
    Min,
    /// `MAX(field)`.
    Max,
}

impl AggFn {
    /// The function a word names.
    pub fn named(word: &str) -> Option<Self> {
        Some(match word.to_ascii_uppercase().as_str() {
            "COUNT" => AggFn::Count,
            "COUNT_DISTINCT" => AggFn::CountDistinct,
            "SUM" => AggFn::Sum,
            "AVG" => AggFn::Avg,
            "MIN" => AggFn::Min,
            "MAX" => AggFn::Max,
            _ => return None,
        })
    }
}

/// `SUM(Amount__c)`: a function over a field.
#[derive(Clone, Debug, PartialEq)]
pub struct AggCall {
    /// Function.
    pub func: AggFn,
    /// Its field.
    pub field: FieldPath,
    /// Where the call starts.
    pub pos: Pos,
}

/// One item of an aggregate query's select list.
#[derive(Clone, Debug, PartialEq)]
pub enum AggItem {
    /// A `GROUP BY` field.
    Group(FieldPath),
    /// An aggregate, with its alias (`expr0`, `expr1`, … without one).
    Call {
        /// The aggregate.
        call: AggCall,
        /// `COUNT(Id) n`.
        alias: Option<String>,
    },
}

/// What the query selects.
#[derive(Clone, Debug, PartialEq)]
pub enum Selection {
    /// `COUNT()`.
    Count,
    /// A field list.
    Fields(Vec<FieldPath>),
    /// Aggregates and grouped fields: one `AggregateResult` row per group.
    Aggregate(Vec<AggItem>),
}

/// One `ORDER BY` key.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderKey {
    /// Field.
    pub field: FieldPath,
    /// Descending.
    pub desc: bool,
    /// Nulls first (default: first for ASC, last for DESC).
    pub nulls_first: bool,
}

/// A parsed query.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// Selection.
    pub select: Selection,
    /// Object name as written.
    pub from: String,
    /// Where the object name stands.
    pub from_pos: Pos,
    /// Filter.
    pub filter: Option<Cond>,
    /// `GROUP BY` fields.
    pub group_by: Vec<FieldPath>,
    /// `HAVING` condition on the groups.
    pub having: Option<Cond>,
    /// Ordering.
    pub order: Vec<OrderKey>,
    /// Row limit.
    pub limit: Option<usize>,
    /// Rows to skip.
    pub offset: Option<usize>,
    /// Child subqueries: `(SELECT Id FROM Events)`, `from` naming the child relationship.
    pub children: Vec<Query>,
}

/// A query error with Salesforce's code and the position it points at.
#[derive(Clone, Debug, PartialEq)]
pub struct SoqlError {
    /// `MALFORMED_QUERY`, `INVALID_FIELD`, `INVALID_TYPE`, ...
    pub code: &'static str,
    /// The last line of Salesforce's message.
    pub message: String,
    /// Where the problem is, if known.
    pub pos: Option<Pos>,
}

/// The error for conditions nested past [`parser::MAX_NESTING`] (parser and evaluator alike).
pub(crate) fn too_deep(pos: Option<Pos>) -> SoqlError {
    SoqlError {
        code: "MALFORMED_QUERY",
        message: format!(
            "conditions nest deeper than {} levels of parentheses and NOT",
            parser::MAX_NESTING
        ),
        pos,
    }
}

impl SoqlError {
    /// A new error at a position.
    pub fn at(code: &'static str, message: impl Into<String>, pos: Pos) -> Self {
        Self {
            code,
            message: message.into(),
            pos: Some(pos),
        }
    }

    /// The error as Salesforce's REST body element: the query line, a caret, the row and column.
    pub fn into_sf_error(self, query: &str) -> SfError {
        let message = match self.pos {
            Some(pos) => {
                let line = query.lines().nth(pos.line.saturating_sub(1)).unwrap_or("");
                let caret = format!("{}^", " ".repeat(pos.col.saturating_sub(1)));
                format!(
                    "\n{line}\n{caret}\nERROR at Row:{}:Column:{}\n{}",
                    pos.line, pos.col, self.message
                )
            }
            None => self.message,
        };
        SfError::new(StatusCode::BAD_REQUEST, self.code, message)
    }
}

//! Lexer and parser for the SOQL subset. Never panics on any input; every problem is a
//! [`SoqlError`] naming the row and column. Bounded on any input: a statement is at most
//! [`MAX_QUERY_CHARS`] characters (Salesforce's limit), and `WHERE` conditions are parsed on
//! an explicit stack, nesting at most [`MAX_NESTING`] deep, so no query can exhaust the call
//! stack here or in the evaluator.

use chrono::NaiveDate;

use super::{
    AggCall, AggFn, AggItem, CmpOp, Cond, FieldPath, Literal, OrderKey, Pos, Query, Selection,
    SoqlError,
};
use crate::salesforce::validate::parse_datetime;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(f64),
    Date(NaiveDate),
    DateTime(chrono::DateTime<chrono::Utc>),
    Comma,
    Dot,
    LParen,
    RParen,
    Op(CmpOp),
    Colon,
    Eof,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    pos: Pos,
    text: String,
}

fn lex(src: &str) -> Result<Vec<Token>, SoqlError> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line, mut col) = (0usize, 1usize, 1usize);
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            i += 1;
            line += 1;
            col = 1;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            col += 1;
            continue;
        }
        let pos = Pos { line, col };
        let (tok, n) = token_at(&chars, i, pos)?;
        out.push(Token {
            tok,
            pos,
            text: chars[i..i + n].iter().collect(),
        });
        i += n;
        col += n;
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: Pos { line, col },
        text: "<EOF>".into(),
    });
    Ok(out)
}

/// The token that starts at `chars[i]` (not whitespace), and how many characters it spans.
fn token_at(chars: &[char], i: usize, pos: Pos) -> Result<(Tok, usize), SoqlError> {
    if let Some(punct) = punctuation(chars, i) {
        return Ok(punct);
    }
    let c = chars[i];
    let signed_number =
        (c == '-' || c == '+') && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit());
    if c == '\'' {
        string_literal(chars, i, pos)
    } else if c.is_ascii_digit() || signed_number {
        number_or_date(chars, i, pos)
    } else if c.is_alphabetic() || c == '_' {
        let len = chars[i..]
            .iter()
            .take_while(|ch| ch.is_alphanumeric() || **ch == '_')
            .count();
        Ok((Tok::Ident(chars[i..i + len].iter().collect()), len))
    } else {
        Err(no_viable_alternative(pos, &c.to_string()))
    }
}

fn no_viable_alternative(pos: Pos, text: &str) -> SoqlError {
    SoqlError::at(
        "MALFORMED_QUERY",
        format!(
            "line {}:{} no viable alternative at character '{text}'",
            pos.line, pos.col
        ),
        pos,
    )
}

/// Punctuation and comparison operators.
fn punctuation(chars: &[char], i: usize) -> Option<(Tok, usize)> {
    let next = chars.get(i + 1).copied();
    Some(match (chars[i], next) {
        (',', _) => (Tok::Comma, 1),
        ('.', _) => (Tok::Dot, 1),
        ('(', _) => (Tok::LParen, 1),
        (')', _) => (Tok::RParen, 1),
        (':', _) => (Tok::Colon, 1),
        ('=', _) => (Tok::Op(CmpOp::Eq), 1),
        ('!', Some('=')) => (Tok::Op(CmpOp::Ne), 2),
        ('<', Some('=')) => (Tok::Op(CmpOp::Le), 2),
        ('<', Some('>')) => (Tok::Op(CmpOp::Ne), 2),
        ('<', _) => (Tok::Op(CmpOp::Lt), 1),
        ('>', Some('=')) => (Tok::Op(CmpOp::Ge), 2),
        ('>', _) => (Tok::Op(CmpOp::Gt), 1),
        _ => return None,
    })
}

/// `'text'` with SOQL's escapes.
fn string_literal(chars: &[char], i: usize, pos: Pos) -> Result<(Tok, usize), SoqlError> {
    let mut s = String::new();
    let mut j = i + 1;
    loop {
        match chars.get(j) {
            None | Some('\n') => {
                return Err(SoqlError::at(
                    "MALFORMED_QUERY",
                    "unterminated string literal",
                    pos,
                ))
            }
            Some('\'') => return Ok((Tok::Str(s), j + 1 - i)),
            Some('\\') => {
                push_escape(chars.get(j + 1).copied(), &mut s).ok_or_else(|| {
                    SoqlError::at(
                        "MALFORMED_QUERY",
                        "Invalid string literal: illegal escape sequence",
                        pos,
                    )
                })?;
                j += 2;
            }
            Some(&ch) => {
                s.push(ch);
                j += 1;
            }
        }
    }
}

/// The character a backslash escape stands for, pushed onto `s`; `None` for an illegal escape.
fn push_escape(escaped: Option<char>, s: &mut String) -> Option<()> {
    let ch = match escaped? {
        'n' => '\n',
        't' => '\t',
        'r' => '\r',
        'b' => '\u{8}',
        'f' => '\u{c}',
        ch @ ('\'' | '"' | '\\') => ch,
        // \% and \_ stay escaped for LIKE; elsewhere they mean the char.
        ch @ ('%' | '_') => {
            s.push('\\');
            ch
        }
        _ => return None,
    };
    s.push(ch);
    Some(())
}

/// A number, a date or a date-time literal.
fn number_or_date(chars: &[char], i: usize, pos: Pos) -> Result<(Tok, usize), SoqlError> {
    let mut j = i + 1;
    while j < chars.len()
        && (chars[j].is_ascii_alphanumeric() || matches!(chars[j], '.' | '-' | ':' | '+'))
    {
        // A sign only continues a literal inside a date/time (after a digit and 'T' part).
        if matches!(chars[j], '+' | '-')
            && !chars[i..j].contains(&'T')
            && !looks_like_date_so_far(&chars[i..j])
        {
            break;
        }
        j += 1;
    }
    let text: String = chars[i..j].iter().collect();
    let tok = if let Some(d) = NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .ok()
        .filter(|_| text.len() == 10)
    {
        Tok::Date(d)
    } else if text.contains('T') {
        Tok::DateTime(parse_datetime(&text).ok_or_else(|| no_viable_alternative(pos, &text))?)
    } else {
        match text.parse::<f64>() {
            Ok(x) if x.is_finite() => Tok::Num(x),
            _ => {
                return Err(SoqlError::at(
                    "MALFORMED_QUERY",
                    format!("unexpected token: '{text}'"),
                    pos,
                ))
            }
        }
    };
    Ok((tok, j - i))
}

fn looks_like_date_so_far(chars: &[char]) -> bool {
    // `2024` or `2024-05` (a date in progress): digits, and dashes only at positions 4 and 7.
    chars.len() >= 4
        && chars.iter().enumerate().all(|(k, c)| {
            if k == 4 || k == 7 {
                *c == '-'
            } else {
                c.is_ascii_digit()
            }
        })
}

const RESERVED: &[&str] = &[
    "select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "asc", "desc",
    "nulls", "first", "last", "limit", "offset", "null", "true", "false", "group", "having",
    "with", "for", "includes", "excludes",
];

/// How deeply `(` and `NOT` may nest in a `WHERE` clause. Salesforce documents no such
/// limit; the mock sets one so that no query can overflow its stack (each level is a few
/// stack frames), and answers past it with `MALFORMED_QUERY`.
pub const MAX_NESTING: usize = 100;

/// The longest SOQL statement, in characters: Salesforce's documented default.
pub const MAX_QUERY_CHARS: usize = 100_000;

struct Parser {
    toks: Vec<Token>,
    i: usize,
    /// Current nesting of `(` and `NOT`.
    depth: usize,
    /// Inside a child subquery (which cannot hold another).
    nested: bool,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }
    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() - 1 {
            self.i += 1;
        }
        t
    }
    fn unexpected(&self) -> SoqlError {
        let t = self.peek();
        SoqlError::at(
            "MALFORMED_QUERY",
            format!("unexpected token: '{}'", t.text),
            t.pos,
        )
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.is_kw(kw) {
            self.next();
            true
        } else {
            false
        }
    }
    fn expect_kw(&mut self, kw: &str) -> Result<(), SoqlError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }
    fn expect(&mut self, tok: Tok) -> Result<Token, SoqlError> {
        if self.peek().tok == tok {
            Ok(self.next())
        } else {
            Err(self.unexpected())
        }
    }
    fn ident(&mut self) -> Result<(String, Pos), SoqlError> {
        match &self.peek().tok {
            Tok::Ident(s) if !RESERVED.contains(&s.to_ascii_lowercase().as_str()) => {
                let t = self.next();
                Ok((s_of(&t), t.pos))
            }
            _ => Err(self.unexpected()),
        }
    }
    fn field_path(&mut self) -> Result<FieldPath, SoqlError> {
        let (first, pos) = self.ident()?;
        let mut parts = vec![first];
        while self.peek().tok == Tok::Dot {
            self.next();
            let (p, _) = self.ident()?;
            parts.push(p);
        }
        Ok(FieldPath { parts, pos })
    }
    fn literal(&mut self) -> Result<(Literal, Pos), SoqlError> {
        let t = self.next();
        let lit = match t.tok {
            Tok::Str(s) => Literal::Str(s),
            Tok::Num(n) => Literal::Num(n),
            Tok::Date(d) => Literal::Date(d),
            Tok::DateTime(d) => Literal::DateTime(d),
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("null") => Literal::Null,
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("true") => Literal::Bool(true),
            Tok::Ident(ref s) if s.eq_ignore_ascii_case("false") => Literal::Bool(false),
            Tok::Ident(ref s) if super::dates::kind(s).is_some() => self.relative_date(s, t.pos)?,
            Tok::Colon => {
                return Err(SoqlError::at(
                    "MALFORMED_QUERY",
                    "Bind variables are only allowed in Apex code",
                    t.pos,
                ))
            }
            _ => {
                return Err(SoqlError::at(
                    "MALFORMED_QUERY",
                    format!("unexpected token: '{}'", t.text),
                    t.pos,
                ))
            }
        };
        Ok((lit, t.pos))
    }

    /// `TODAY`, or `LAST_N_DAYS:7` (the name already read).
    fn relative_date(&mut self, name: &str, pos: Pos) -> Result<Literal, SoqlError> {
        let upper = name.to_ascii_uppercase();
        let n = if super::dates::kind(name) == Some(true) {
            if self.peek().tok != Tok::Colon {
                return Err(SoqlError::at(
                    "MALFORMED_QUERY",
                    format!("{upper} needs a number: {upper}:n"),
                    pos,
                ));
            }
            self.next();
            let t = self.next();
            match t.tok {
                Tok::Num(x)
                    if x >= 0.0 && x.fract() == 0.0 && x <= f64::from(super::dates::MAX_N) =>
                {
                    Some(x as u32)
                }
                _ => {
                    return Err(SoqlError::at(
                        "MALFORMED_QUERY",
                        format!("unexpected token: '{}'", t.text),
                        t.pos,
                    ))
                }
            }
        } else {
            None
        };
        Ok(Literal::Relative(super::dates::RelativeDate {
            name: upper,
            n,
        }))
    }

    /// `SELECT … [LIMIT n] [OFFSET n]`, the whole query or a child subquery.
    fn statement(&mut self) -> Result<Query, SoqlError> {
        self.expect_kw("select")?;
        let tok_at = |k: usize| self.toks.get(self.i + k).map(|t| &t.tok);
        let mut children = vec![];
        let count_only = self.is_kw("count")
            && tok_at(1) == Some(&Tok::LParen)
            && tok_at(2) == Some(&Tok::RParen);
        let select = if count_only {
            self.next();
            self.expect(Tok::LParen)?;
            self.expect(Tok::RParen)?;
            Selection::Count
        } else {
            let mut items = vec![self.select_item()?];
            while self.peek().tok == Tok::Comma {
                self.next();
                items.push(self.select_item()?);
            }
            children = items
                .iter_mut()
                .filter_map(|i| match i {
                    Item::Sub(q) => q.take().map(|q| *q),
                    Item::Plain(_) => None,
                })
                .collect();
            selection(items.into_iter().filter_map(|i| match i {
                Item::Plain(a) => Some(a),
                Item::Sub(_) => None,
            }))
        };
        self.expect_kw("from")?;
        let (from, from_pos) = self.ident()?;
        let filter = if self.eat_kw("where") {
            Some(self.condition()?)
        } else {
            None
        };
        let mut group_by = vec![];
        if self.eat_kw("group") {
            self.expect_kw("by")?;
            group_by.push(self.field_path()?);
            while self.peek().tok == Tok::Comma {
                self.next();
                group_by.push(self.field_path()?);
            }
        }
        let having = if self.eat_kw("having") {
            Some(self.condition()?)
        } else {
            None
        };
        let mut order = vec![];
        if self.eat_kw("order") {
            self.expect_kw("by")?;
            loop {
                let field = self.field_path()?;
                let desc = if self.eat_kw("desc") {
                    true
                } else {
                    self.eat_kw("asc");
                    false
                };
                let nulls_first = if self.eat_kw("nulls") {
                    if self.eat_kw("first") {
                        true
                    } else {
                        self.expect_kw("last")?;
                        false
                    }
                } else {
                    !desc
                };
                order.push(OrderKey {
                    field,
                    desc,
                    nulls_first,
                });
                if self.peek().tok != Tok::Comma {
                    break;
                }
                self.next();
            }
        }
        let limit = if self.eat_kw("limit") {
            Some(self.count_value()?)
        } else {
            None
        };
        let offset = if self.eat_kw("offset") {
            Some(self.count_value()?)
        } else {
            None
        };
        let select = match select {
            Selection::Fields(fields) if !group_by.is_empty() => {
                Selection::Aggregate(fields.into_iter().map(AggItem::Group).collect())
            }
            other => other,
        };
        Ok(Query {
            select,
            from,
            from_pos,
            filter,
            group_by,
            having,
            order,
            limit,
            offset,
            children,
        })
    }

    /// `(SELECT … FROM Events …)` in a select list, the `(` next.
    fn subquery(&mut self) -> Result<Query, SoqlError> {
        let open = self.next();
        if self.nested {
            return Err(SoqlError::at(
                "MALFORMED_QUERY",
                "Nesting of semi join sub-selects is not supported",
                open.pos,
            ));
        }
        self.nested = true;
        let q = self.statement();
        self.nested = false;
        let q = q?;
        if !matches!(q.select, Selection::Fields(_)) || !q.group_by.is_empty() {
            return Err(SoqlError::at(
                "MALFORMED_QUERY",
                "a child subquery selects fields only",
                open.pos,
            ));
        }
        self.expect(Tok::RParen)?;
        Ok(q)
    }

    fn select_item(&mut self) -> Result<Item, SoqlError> {
        if self.peek().tok == Tok::LParen {
            return Ok(Item::Sub(Some(Box::new(self.subquery()?))));
        }
        let Some(call) = self.agg_call()? else {
            return Ok(Item::Plain(AggItem::Group(self.field_path()?)));
        };
        let alias = match &self.peek().tok {
            Tok::Ident(s) if !RESERVED.contains(&s.to_ascii_lowercase().as_str()) => {
                Some(self.ident()?.0)
            }
            _ => None,
        };
        Ok(Item::Plain(AggItem::Call { call, alias }))
    }

    /// `SUM(field)` when the next tokens are an aggregate function and `(`.
    fn agg_call(&mut self) -> Result<Option<AggCall>, SoqlError> {
        let func = match &self.peek().tok {
            Tok::Ident(s) => AggFn::named(s),
            _ => None,
        };
        let paren_next = self
            .toks
            .get(self.i + 1)
            .is_some_and(|t| t.tok == Tok::LParen);
        let (Some(func), true) = (func, paren_next) else {
            return Ok(None);
        };
        let pos = self.next().pos;
        self.expect(Tok::LParen)?;
        if self.peek().tok == Tok::RParen {
            return Err(SoqlError::at(
                "MALFORMED_QUERY",
                "COUNT() must be the only element in the SELECT list",
                pos,
            ));
        }
        let field = self.field_path()?;
        self.expect(Tok::RParen)?;
        Ok(Some(AggCall { func, field, pos }))
    }

    fn count_value(&mut self) -> Result<usize, SoqlError> {
        let t = self.next();
        match t.tok {
            Tok::Num(n) if n >= 0.0 && n.fract() == 0.0 && n <= 1e9 => Ok(n as usize),
            _ => Err(SoqlError::at(
                "MALFORMED_QUERY",
                format!("unexpected token: '{}'", t.text),
                t.pos,
            )),
        }
    }

    /// A `WHERE` condition: `NOT`, `AND` (binding tighter than `OR`), `OR`, parentheses and
    /// predicates. Open parentheses live on an explicit stack, so no nesting grows the call
    /// stack; nesting past [`MAX_NESTING`] is refused, which bounds the tree for the
    /// evaluator.
    fn condition(&mut self) -> Result<Cond, SoqlError> {
        let mut open = vec![Group::default()];
        loop {
            let nots = self.nots()?;
            if self.peek().tok == Tok::LParen {
                self.descend(self.peek().pos)?;
                self.next();
                open.push(Group {
                    nots,
                    ..Group::default()
                });
                continue;
            }
            let mut operand = negated(self.predicate()?, nots);
            self.depth = self.depth.saturating_sub(nots);
            // After an operand: AND or OR continue the innermost group, else it ends here.
            loop {
                let Some(group) = open.last_mut() else {
                    return Err(self.unexpected());
                };
                group.ands.push(operand);
                if self.eat_kw("and") {
                    break;
                }
                if self.eat_kw("or") {
                    group
                        .ors
                        .push(joined(std::mem::take(&mut group.ands), Cond::And));
                    break;
                }
                let Some(done) = open.pop() else {
                    return Err(self.unexpected());
                };
                if open.is_empty() {
                    return Ok(done.finish());
                }
                self.expect(Tok::RParen)?;
                self.depth = self.depth.saturating_sub(1 + done.nots);
                operand = done.finish();
            }
        }
    }

    /// The `NOT`s before an operand, each one level of nesting.
    fn nots(&mut self) -> Result<usize, SoqlError> {
        let mut n = 0;
        while self.is_kw("not") {
            self.descend(self.peek().pos)?;
            self.next();
            n += 1;
        }
        Ok(n)
    }

    /// One level deeper into `(` or `NOT`; past [`MAX_NESTING`] the query is refused.
    fn descend(&mut self, pos: Pos) -> Result<(), SoqlError> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(super::too_deep(Some(pos)));
        }
        Ok(())
    }

    /// `field op literal`, `field LIKE 'pattern'`, `field [NOT] IN (…)`, `SUM(f) op literal`.
    fn predicate(&mut self) -> Result<Cond, SoqlError> {
        if let Some(call) = self.agg_call()? {
            let Tok::Op(op) = self.peek().tok else {
                return Err(self.unexpected());
            };
            self.next();
            let (value, value_pos) = self.literal()?;
            return Ok(Cond::Agg {
                call,
                op,
                value,
                value_pos,
            });
        }
        let field = self.field_path()?;
        if let Tok::Op(op) = self.peek().tok {
            self.next();
            let (value, value_pos) = self.literal()?;
            return Ok(Cond::Cmp {
                field,
                op,
                value,
                value_pos,
            });
        }
        if self.eat_kw("like") {
            let (lit, pos) = self.literal()?;
            let Literal::Str(pattern) = lit else {
                return Err(SoqlError::at(
                    "MALFORMED_QUERY",
                    "LIKE needs a string pattern",
                    pos,
                ));
            };
            return Ok(Cond::Like { field, pattern });
        }
        let negated = self.eat_kw("not");
        if self.eat_kw("in") {
            self.expect(Tok::LParen)?;
            if self.is_kw("select") {
                return Err(SoqlError::at(
                    "MALFORMED_QUERY",
                    "semi-join subqueries are not supported by this mock",
                    self.peek().pos,
                ));
            }
            let mut values = vec![self.literal()?];
            while self.peek().tok == Tok::Comma {
                self.next();
                values.push(self.literal()?);
            }
            self.expect(Tok::RParen)?;
            return Ok(Cond::In {
                field,
                negated,
                values,
            });
        }
        Err(self.unexpected())
    }
}

/// One item of a select list as parsed: a field or aggregate, or a child subquery.
enum Item {
    Plain(AggItem),
    /// Taken out into [`Query::children`] once the list is read.
    Sub(Option<Box<Query>>),
}

/// The select list as written: fields only, or an aggregate query once one item is an
/// aggregate.
fn selection(items: impl Iterator<Item = AggItem>) -> Selection {
    let items: Vec<AggItem> = items.collect();
    if items.iter().any(|i| matches!(i, AggItem::Call { .. })) {
        return Selection::Aggregate(items);
    }
    let fields = items
        .into_iter()
        .filter_map(|i| match i {
            AggItem::Group(f) => Some(f),
            AggItem::Call { .. } => None,
        })
        .collect();
    Selection::Fields(fields)
}

/// An open parenthesis of a condition being parsed (the outermost has none): the `OR` terms
/// finished so far, the `AND` terms of the current one, and the `NOT`s written before it.
#[derive(Default)]
struct Group {
    ors: Vec<Cond>,
    ands: Vec<Cond>,
    nots: usize,
}

impl Group {
    fn finish(mut self) -> Cond {
        self.ors.push(joined(self.ands, Cond::And));
        negated(joined(self.ors, Cond::Or), self.nots)
    }
}

/// `c` under `n` `NOT`s.
fn negated(c: Cond, n: usize) -> Cond {
    (0..n).fold(c, |c, _| Cond::Not(Box::new(c)))
}

/// One condition as itself, several joined by `wrap` (`AND` or `OR`).
fn joined(mut parts: Vec<Cond>, wrap: fn(Vec<Cond>) -> Cond) -> Cond {
    match (parts.pop(), parts.is_empty()) {
        (Some(only), true) => only,
        (Some(last), false) => {
            parts.push(last);
            wrap(parts)
        }
        (None, _) => wrap(parts),
    }
}

fn s_of(t: &Token) -> String {
    match &t.tok {
        Tok::Ident(s) => s.clone(),
        _ => t.text.clone(),
    }
}

/// Parse a SOQL query (at most [`MAX_QUERY_CHARS`] characters, conditions nested at most
/// [`MAX_NESTING`] deep).
pub fn parse(src: &str) -> Result<Query, SoqlError> {
    if src.chars().count() > MAX_QUERY_CHARS {
        return Err(SoqlError {
            code: "MALFORMED_QUERY",
            message: format!(
                "SOQL statements can not be longer than {MAX_QUERY_CHARS} characters."
            ),
            pos: None,
        });
    }
    let toks = lex(src)?;
    let mut p = Parser {
        toks,
        i: 0,
        depth: 0,
        nested: false,
    };
    let q = p.statement()?;
    if p.peek().tok != Tok::Eof {
        return Err(p.unexpected());
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_supported_subset() {
        let q = parse(
            "SELECT Id, Who.Name FROM Event WHERE (StartDateTime >= 2024-05-01T09:00:00Z AND NOT Subject LIKE 'x%') OR OwnerId IN ('005000000000001', '005000000000002') ORDER BY StartDateTime DESC NULLS LAST, Id LIMIT 10 OFFSET 5",
        )
        .unwrap();
        assert_eq!(q.from, "Event");
        assert_eq!(q.limit, Some(10));
        assert_eq!(q.offset, Some(5));
        assert!(matches!(q.filter, Some(Cond::Or(_))));
        assert_eq!(q.order.len(), 2);
        assert!(q.order[0].desc && !q.order[0].nulls_first);
        let Selection::Fields(f) = &q.select else {
            panic!()
        };
        assert_eq!(f[1].parts, vec!["Who", "Name"]);
        assert_eq!(
            parse("select count() from Contact").unwrap().select,
            Selection::Count
        );
        let q = parse("SELECT Id FROM Contact WHERE Birthdate = 1980-01-02 AND Name != null AND X__c NOT IN (1, -2.5)").unwrap();
        assert!(matches!(q.filter, Some(Cond::And(ref v)) if v.len() == 3));
    }

    #[test]
    fn errors_point_at_row_and_column() {
        let e = parse("SELECT Id FRM Contact").unwrap_err();
        assert_eq!(e.code, "MALFORMED_QUERY");
        assert_eq!(e.pos, Some(Pos { line: 1, col: 11 }));
        assert!(e.message.contains("FRM"));
        let e = parse("SELECT Id\nFROM Contact\nWHERE Name = 'unterminated").unwrap_err();
        assert_eq!(e.pos, Some(Pos { line: 3, col: 14 }));
        for bad in [
            "",
            "SELECT",
            "SELECT FROM x",
            "SELECT Id FROM",
            "SELECT Id FROM X LIMIT -1",
            "SELECT Id FROM X WHERE",
            "SELECT Id FROM X WHERE A = :b",
            "SELECT Id FROM X extra",
            "SELECT Id FROM X WHERE A IN ()",
            "SELECT Id FROM X WHERE A = '\\q'",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}

//! Lexer and recursive-descent parser for the SOQL subset. Never panics on any input; every
//! problem is a [`SoqlError`] naming the row and column.

use chrono::NaiveDate;

use super::{CmpOp, Cond, FieldPath, Literal, OrderKey, Pos, Query, Selection, SoqlError};
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
        let pos = Pos { line, col };
        let start = i;
        let advance = |i: &mut usize, col: &mut usize, n: usize| {
            *i += n;
            *col += n;
        };
        if c == '\n' {
            i += 1;
            line += 1;
            col = 1;
            continue;
        }
        if c.is_whitespace() {
            advance(&mut i, &mut col, 1);
            continue;
        }
        let tok = match c {
            ',' => {
                advance(&mut i, &mut col, 1);
                Tok::Comma
            }
            '.' => {
                advance(&mut i, &mut col, 1);
                Tok::Dot
            }
            '(' => {
                advance(&mut i, &mut col, 1);
                Tok::LParen
            }
            ')' => {
                advance(&mut i, &mut col, 1);
                Tok::RParen
            }
            ':' => {
                advance(&mut i, &mut col, 1);
                Tok::Colon
            }
            '=' => {
                advance(&mut i, &mut col, 1);
                Tok::Op(CmpOp::Eq)
            }
            '!' if chars.get(i + 1) == Some(&'=') => {
                advance(&mut i, &mut col, 2);
                Tok::Op(CmpOp::Ne)
            }
            '<' => match chars.get(i + 1) {
                Some('=') => {
                    advance(&mut i, &mut col, 2);
                    Tok::Op(CmpOp::Le)
                }
                Some('>') => {
                    advance(&mut i, &mut col, 2);
                    Tok::Op(CmpOp::Ne)
                }
                _ => {
                    advance(&mut i, &mut col, 1);
                    Tok::Op(CmpOp::Lt)
                }
            },
            '>' => {
                if chars.get(i + 1) == Some(&'=') {
                    advance(&mut i, &mut col, 2);
                    Tok::Op(CmpOp::Ge)
                } else {
                    advance(&mut i, &mut col, 1);
                    Tok::Op(CmpOp::Gt)
                }
            }
            '\'' => {
                let mut s = String::new();
                let mut j = i + 1;
                loop {
                    match chars.get(j) {
                        None => {
                            return Err(SoqlError::at(
                                "MALFORMED_QUERY",
                                "unterminated string literal",
                                pos,
                            ))
                        }
                        Some('\'') => break,
                        Some('\\') => {
                            let esc = match chars.get(j + 1) {
                                Some('n') => '\n',
                                Some('t') => '\t',
                                Some('r') => '\r',
                                Some('b') => '\u{8}',
                                Some('f') => '\u{c}',
                                Some(&ch @ ('\'' | '"' | '\\' | '%' | '_')) => {
                                    // \% and \_ stay escaped for LIKE; elsewhere they mean the char.
                                    if ch == '%' || ch == '_' {
                                        s.push('\\');
                                    }
                                    ch
                                }
                                _ => {
                                    return Err(SoqlError::at(
                                        "MALFORMED_QUERY",
                                        "Invalid string literal: illegal escape sequence",
                                        pos,
                                    ))
                                }
                            };
                            s.push(esc);
                            j += 2;
                        }
                        Some('\n') => {
                            return Err(SoqlError::at(
                                "MALFORMED_QUERY",
                                "unterminated string literal",
                                pos,
                            ))
                        }
                        Some(&ch) => {
                            s.push(ch);
                            j += 1;
                        }
                    }
                }
                let n = j + 1 - i;
                advance(&mut i, &mut col, n);
                Tok::Str(s)
            }
            c if c.is_ascii_digit()
                || (c == '-' || c == '+')
                    && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()) =>
            {
                let mut j = i + 1;
                while j < chars.len()
                    && (chars[j].is_ascii_alphanumeric()
                        || matches!(chars[j], '.' | '-' | ':' | '+'))
                {
                    // A sign only continues a literal inside a date/time (after a digit and 'T' part).
                    if matches!(chars[j], '+' | '-')
                        && !chars[start..j].contains(&'T')
                        && !looks_like_date_so_far(&chars[start..j])
                    {
                        break;
                    }
                    j += 1;
                }
                let text: String = chars[i..j].iter().collect();
                let n = j - i;
                let tok = if let Some(d) = NaiveDate::parse_from_str(&text, "%Y-%m-%d")
                    .ok()
                    .filter(|_| text.len() == 10)
                {
                    Tok::Date(d)
                } else if text.contains('T') {
                    match parse_datetime(&text) {
                        Some(t) => Tok::DateTime(t),
                        None => {
                            return Err(SoqlError::at(
                                "MALFORMED_QUERY",
                                format!(
                                    "line {}:{} no viable alternative at character '{}'",
                                    pos.line, pos.col, text
                                ),
                                pos,
                            ))
                        }
                    }
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
                advance(&mut i, &mut col, n);
                tok
            }
            c if c.is_alphabetic() || c == '_' => {
                let mut j = i + 1;
                while j < chars.len() && (chars[j].is_alphanumeric() || chars[j] == '_') {
                    j += 1;
                }
                let text: String = chars[i..j].iter().collect();
                let n = j - i;
                advance(&mut i, &mut col, n);
                Tok::Ident(text)
            }
            other => {
                return Err(SoqlError::at(
                    "MALFORMED_QUERY",
                    format!(
                        "line {}:{} no viable alternative at character '{other}'",
                        pos.line, pos.col
                    ),
                    pos,
                ))
            }
        };
        let text: String = chars[start..i].iter().collect();
        out.push(Token { tok, pos, text });
    }
    out.push(Token {
        tok: Tok::Eof,
        pos: Pos { line, col },
        text: "<EOF>".into(),
    });
    Ok(out)
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

struct Parser {
    toks: Vec<Token>,
    i: usize,
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

    fn query(&mut self) -> Result<Query, SoqlError> {
        self.expect_kw("select")?;
        let select = if self.is_kw("count")
            && self
                .toks
                .get(self.i + 1)
                .is_some_and(|t| t.tok == Tok::LParen)
        {
            self.next();
            self.expect(Tok::LParen)?;
            if self.peek().tok != Tok::RParen {
                return Err(SoqlError::at(
                    "MALFORMED_QUERY",
                    "only COUNT() is supported by this mock; aggregate functions with arguments are not",
                    self.peek().pos,
                ));
            }
            self.expect(Tok::RParen)?;
            Selection::Count
        } else {
            let mut fields = vec![self.select_item()?];
            while self.peek().tok == Tok::Comma {
                self.next();
                fields.push(self.select_item()?);
            }
            Selection::Fields(fields)
        };
        self.expect_kw("from")?;
        let (from, from_pos) = self.ident()?;
        let filter = if self.eat_kw("where") {
            Some(self.or_cond()?)
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
        if self.peek().tok != Tok::Eof {
            return Err(self.unexpected());
        }
        Ok(Query {
            select,
            from,
            from_pos,
            filter,
            order,
            limit,
            offset,
        })
    }

    fn select_item(&mut self) -> Result<FieldPath, SoqlError> {
        if self.peek().tok == Tok::LParen {
            return Err(SoqlError::at(
                "MALFORMED_QUERY",
                "subqueries are not supported by this mock",
                self.peek().pos,
            ));
        }
        self.field_path()
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

    fn or_cond(&mut self) -> Result<Cond, SoqlError> {
        let mut parts = vec![self.and_cond()?];
        while self.eat_kw("or") {
            parts.push(self.and_cond()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::Or(parts)
        })
    }

    fn and_cond(&mut self) -> Result<Cond, SoqlError> {
        let mut parts = vec![self.not_cond()?];
        while self.eat_kw("and") {
            parts.push(self.not_cond()?);
        }
        Ok(if parts.len() == 1 {
            parts.remove(0)
        } else {
            Cond::And(parts)
        })
    }

    fn not_cond(&mut self) -> Result<Cond, SoqlError> {
        if self.eat_kw("not") {
            return Ok(Cond::Not(Box::new(self.not_cond()?)));
        }
        if self.peek().tok == Tok::LParen {
            self.next();
            let c = self.or_cond()?;
            self.expect(Tok::RParen)?;
            return Ok(c);
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

fn s_of(t: &Token) -> String {
    match &t.tok {
        Tok::Ident(s) => s.clone(),
        _ => t.text.clone(),
    }
}

/// Parse a SOQL query.
pub fn parse(src: &str) -> Result<Query, SoqlError> {
    let toks = lex(src)?;
    let mut p = Parser { toks, i: 0 };
    p.query()
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

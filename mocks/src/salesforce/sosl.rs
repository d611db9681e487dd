//! SOSL search: `GET /search?q=FIND {term} [IN ALL|NAME|EMAIL|PHONE FIELDS] [RETURNING
//! Object[(fields [WHERE …] [ORDER BY …] [LIMIT n])], …] [LIMIT n]`, and parameterized search
//! (`GET|POST /parameterizedSearch`), answered `{"searchRecords": […]}` as Salesforce does.
//!
//! The term matches whole words of the searched fields, case-insensitively: words are ANDed
//! unless joined by `OR`, `"a phrase"` matches as written, `*` ends a word with anything and
//! `?` stands for one character. Each `RETURNING` object runs as a SOQL query (its fields,
//! `WHERE` and `ORDER BY`), so its errors are SOQL's; `LIMIT` applies after the term.

use http::StatusCode;
use serde_json::{json, Value};

use super::errors::SfError;
use super::schema::{FieldType, ObjectDef, OrgSchema};
use super::soql::eval::{execute_on, Outcome};
use super::soql::parser::parse;
use super::store::Record;
use super::Org;

/// Records a search answers at most, over all objects (Salesforce's default and cap).
const MAX_RESULTS: usize = 2000;

fn malformed(message: impl Into<String>) -> SfError {
    SfError::new(StatusCode::BAD_REQUEST, "MALFORMED_SEARCH", message)
}

/// Which fields a term is looked for in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scope {
    All,
    Name,
    Email,
    Phone,
}

/// A search: the term, where to look, what to return, and how many.
struct Search {
    term: Term,
    scope: Scope,
    returning: Vec<Returning>,
    limit: usize,
}

/// One `RETURNING` object: its name and the SOQL clauses inside its parentheses.
struct Returning {
    object: String,
    fields: String,
    clauses: String,
    limit: Option<usize>,
}

/// The term: alternatives (`OR`), each a set of words or phrases that must all match.
struct Term {
    any_of: Vec<Vec<Word>>,
}

enum Word {
    Pattern(Vec<char>),
    Phrase(String),
}

/// `GET /search?q=…`.
pub(crate) fn search(
    org: &Org,
    q: &str,
    v: &str,
    today: chrono::NaiveDate,
) -> Result<Value, SfError> {
    let s = parse_search(q)?;
    run(org, &s, v, today)
}

/// `parameterizedSearch`: `q`, `in`, `sobjects` (`[{name, fields, where, limit}]`),
/// `overallLimit`, from a JSON body or the query string (`sobject=…&Contact.fields=…`).
pub(crate) fn parameterized(
    org: &Org,
    params: &Value,
    v: &str,
    today: chrono::NaiveDate,
) -> Result<Value, SfError> {
    let term = params.get("q").and_then(Value::as_str).unwrap_or("");
    let scope = match params
        .get("in")
        .and_then(Value::as_str)
        .map(str::to_ascii_uppercase)
    {
        None => Scope::All,
        Some(s) => scope_named(&s).ok_or_else(|| malformed(format!("invalid 'in' value: {s}")))?,
    };
    let empty = vec![];
    let sobjects = params
        .get("sobjects")
        .and_then(Value::as_array)
        .unwrap_or(&empty);
    let returning = sobjects
        .iter()
        .filter_map(|o| {
            let object = o.get("name")?.as_str()?.to_string();
            let fields = match o.get("fields") {
                Some(Value::Array(f)) => f
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
                Some(Value::String(f)) => f.clone(),
                _ => String::new(),
            };
            let clauses = match o.get("where").and_then(Value::as_str) {
                Some(w) => format!("WHERE {w}"),
                None => String::new(),
            };
            let limit = o.get("limit").and_then(Value::as_u64).map(|n| n as usize);
            Some(Returning {
                object,
                fields,
                clauses,
                limit,
            })
        })
        .collect();
    let limit = params
        .get("overallLimit")
        .and_then(Value::as_u64)
        .map_or(MAX_RESULTS, |n| (n as usize).min(MAX_RESULTS));
    let s = Search {
        term: parse_term(term)?,
        scope,
        returning,
        limit,
    };
    run(org, &s, v, today)
}

fn scope_named(word: &str) -> Option<Scope> {
    Some(match word {
        "ALL" => Scope::All,
        "NAME" => Scope::Name,
        "EMAIL" => Scope::Email,
        "PHONE" => Scope::Phone,
        _ => return None,
    })
}

/// `FIND {term} …` into its parts.
fn parse_search(q: &str) -> Result<Search, SfError> {
    let rest = q.trim_start();
    let Some(rest) = strip_word(rest, "FIND") else {
        return Err(malformed(
            "unexpected token: the search must start with FIND",
        ));
    };
    let rest = rest.trim_start();
    let Some(body) = rest.strip_prefix('{') else {
        return Err(malformed(
            "No search term found. The search term must be enclosed in braces.",
        ));
    };
    let (term, mut rest) = braced(body)?;
    let mut s = Search {
        term: parse_term(&term)?,
        scope: Scope::All,
        returning: vec![],
        limit: MAX_RESULTS,
    };
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(s);
        }
        if let Some(r) = strip_word(rest, "IN") {
            let r = r.trim_start();
            let word: String = r.chars().take_while(|c| c.is_alphanumeric()).collect();
            s.scope = scope_named(&word.to_ascii_uppercase())
                .ok_or_else(|| malformed(format!("unexpected token: '{word}'")))?;
            let r = r[word.len()..].trim_start();
            rest = strip_word(r, "FIELDS").ok_or_else(|| malformed("expected FIELDS"))?;
        } else if let Some(r) = strip_word(rest, "RETURNING") {
            let (specs, after) = returning_list(r)?;
            s.returning = specs;
            rest = after;
        } else if let Some(r) = strip_word(rest, "LIMIT") {
            let (n, after) = number(r)?;
            s.limit = n.min(MAX_RESULTS);
            rest = after;
        } else {
            let word: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
            return Err(malformed(format!("unexpected token: '{word}'")));
        }
    }
}

/// `rest` after `word` (case-insensitive, a whole word).
fn strip_word<'a>(rest: &'a str, word: &str) -> Option<&'a str> {
    let head = rest.get(..word.len())?;
    let after = &rest[word.len()..];
    let boundary = after
        .chars()
        .next()
        .is_none_or(|c| !c.is_alphanumeric() && c != '_');
    (head.eq_ignore_ascii_case(word) && boundary).then_some(after)
}

/// The text up to the closing `}` (backslash escapes kept out), and what follows it.
fn braced(body: &str) -> Result<(String, &str), SfError> {
    let mut term = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, e)) = chars.next() {
                    term.push(e);
                }
            }
            '}' => return Ok((term, &body[i + 1..])),
            c => term.push(c),
        }
    }
    Err(malformed("unterminated search term: missing '}'"))
}

fn number(rest: &str) -> Result<(usize, &str), SfError> {
    let rest = rest.trim_start();
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let n = digits
        .parse::<usize>()
        .map_err(|_| malformed("LIMIT needs a number"))?;
    Ok((n, &rest[digits.len()..]))
}

/// `Contact(Id, Name WHERE …), Account` up to the first word that is not part of it.
fn returning_list(mut rest: &str) -> Result<(Vec<Returning>, &str), SfError> {
    let mut out = vec![];
    loop {
        rest = rest.trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() {
            return Err(malformed("RETURNING needs an object"));
        }
        rest = rest[name.len()..].trim_start();
        let mut spec = Returning {
            object: name,
            fields: String::new(),
            clauses: String::new(),
            limit: None,
        };
        if let Some(inner) = rest.strip_prefix('(') {
            let (text, after) = parenthesized(inner)?;
            split_spec(&text, &mut spec)?;
            rest = after.trim_start();
        }
        out.push(spec);
        match rest.strip_prefix(',') {
            Some(r) => rest = r,
            None => return Ok((out, rest)),
        }
    }
}

/// The text up to the `)` that closes an open one (quotes respected), and what follows.
fn parenthesized(inner: &str) -> Result<(String, &str), SfError> {
    let (mut depth, mut quoted) = (1usize, false);
    for (i, c) in inner.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => {
                depth -= 1;
                if depth == 0 {
                    return Ok((inner[..i].to_string(), &inner[i + 1..]));
                }
            }
            _ => {}
        }
    }
    Err(malformed("unbalanced parentheses in RETURNING"))
}

/// `Id, Name WHERE … ORDER BY … LIMIT n` into fields, the clauses SOQL runs, and the limit.
fn split_spec(text: &str, spec: &mut Returning) -> Result<(), SfError> {
    let upper = text.to_ascii_uppercase();
    let cut = ["WHERE", "ORDER", "LIMIT"]
        .iter()
        .filter_map(|k| find_word(&upper, k))
        .min()
        .unwrap_or(text.len());
    spec.fields = text[..cut].trim().to_string();
    let mut clauses = text[cut..].to_string();
    if let Some(at) = find_word(&clauses.to_ascii_uppercase(), "LIMIT") {
        let (n, after) = number(&clauses[at + "LIMIT".len()..])?;
        spec.limit = Some(n);
        clauses = format!("{}{after}", &clauses[..at]);
    }
    spec.clauses = clauses.trim().to_string();
    Ok(())
}

/// Where `word` stands alone in `upper` (outside quotes).
fn find_word(upper: &str, word: &str) -> Option<usize> {
    let mut quoted = false;
    let bytes = upper.as_bytes();
    for (i, c) in upper.char_indices() {
        if c == '\'' {
            quoted = !quoted;
        }
        if quoted || !upper[i..].starts_with(word) {
            continue;
        }
        let before = i.checked_sub(1).map(|j| bytes[j]);
        let after = bytes.get(i + word.len()).copied();
        let alone = |b: Option<u8>| b.is_none_or(|b| !b.is_ascii_alphanumeric() && b != b'_');
        if alone(before) && alone(after) {
            return Some(i);
        }
    }
    None
}

/// The term: `OR` between alternatives, words and quoted phrases within one.
fn parse_term(term: &str) -> Result<Term, SfError> {
    let mut any_of = vec![vec![]];
    let mut rest = term.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            let phrase = r[..end].to_lowercase();
            if let Some(words) = any_of.last_mut() {
                words.push(Word::Phrase(phrase));
            }
            rest = r.get(end + 1..).unwrap_or("").trim_start();
            continue;
        }
        let word: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
        rest = rest[word.len()..].trim_start();
        match word.to_ascii_uppercase().as_str() {
            "OR" => any_of.push(vec![]),
            "AND" => {}
            _ => {
                if let Some(words) = any_of.last_mut() {
                    words.push(Word::Pattern(word.to_lowercase().chars().collect()));
                }
            }
        }
    }
    let letters = |w: &Word| match w {
        Word::Pattern(p) => p.iter().filter(|c| c.is_alphanumeric()).count(),
        Word::Phrase(p) => p.chars().filter(|c| c.is_alphanumeric()).count(),
    };
    if any_of.iter().flatten().all(|w| letters(w) < 2) {
        return Err(malformed("search term must be longer than one character"));
    }
    any_of.retain(|words| !words.is_empty());
    Ok(Term { any_of })
}

/// A word against a pattern with `*` (any run) and `?` (one character), without recursion:
/// the last `*` seen is where a mismatch backtracks to, so time is at most the product of
/// the lengths whatever the pattern.
fn pattern_matches(p: &[char], w: &[char]) -> bool {
    let (mut pi, mut wi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while wi < w.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, wi));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == w[wi] => {
                pi += 1;
                wi += 1;
            }
            _ => match star {
                Some((sp, sw)) => {
                    pi = sp + 1;
                    wi = sw + 1;
                    star = Some((sp, sw + 1));
                }
                None => return false,
            },
        }
    }
    p[pi.min(p.len())..].iter().all(|c| *c == '*')
}

impl Term {
    fn matches(&self, text: &str) -> bool {
        let words: Vec<Vec<char>> = text
            .split(|c: char| !c.is_alphanumeric() && c != '@' && c != '.')
            .flat_map(|w| [w.to_string(), w.replace('.', "")])
            .filter(|w| !w.is_empty())
            .map(|w| w.chars().collect())
            .collect();
        self.any_of.iter().any(|all| {
            all.iter().all(|word| match word {
                Word::Phrase(p) => text.contains(p.as_str()),
                Word::Pattern(p) => words.iter().any(|w| pattern_matches(p, w)),
            })
        })
    }
}

/// The text a record offers to the term, in the search's scope.
fn searchable(obj: &ObjectDef, r: &Record, scope: Scope) -> String {
    let mut text = String::new();
    for f in &obj.fields {
        let fits = match scope {
            Scope::All => f.ftype.is_text(),
            Scope::Name => ["Name", "FirstName", "LastName", "Subject"].contains(&f.name.as_str()),
            Scope::Email => f.ftype == FieldType::Email,
            Scope::Phone => f.ftype == FieldType::Phone,
        };
        if let (true, Some(s)) = (fits, r.get(&f.name).as_str()) {
            text.push_str(&s.to_lowercase());
            text.push(' ');
        }
    }
    text
}

/// The objects searched when `RETURNING` is not given: those with text to search.
fn default_returning(schema: &OrgSchema) -> Vec<Returning> {
    schema
        .objects()
        .filter(|o| o.fields.iter().any(|f| f.ftype.is_text()))
        .map(|o| Returning {
            object: o.name.clone(),
            fields: String::new(),
            clauses: String::new(),
            limit: None,
        })
        .collect()
}

fn run(org: &Org, s: &Search, v: &str, today: chrono::NaiveDate) -> Result<Value, SfError> {
    let specs = if s.returning.is_empty() {
        default_returning(&org.schema)
    } else {
        s.returning
            .iter()
            .map(|r| Returning {
                object: r.object.clone(),
                fields: r.fields.clone(),
                clauses: r.clauses.clone(),
                limit: r.limit,
            })
            .collect()
    };
    let mut out = vec![];
    for spec in &specs {
        let hits = spec_hits(org, s, spec, v, today)?;
        out.extend(hits.into_iter().take(spec.limit.unwrap_or(usize::MAX)));
    }
    out.truncate(s.limit);
    Ok(json!({"searchRecords": out}))
}

/// The rendered records of one `RETURNING` object that the term matches, in SOQL's order.
fn spec_hits(
    org: &Org,
    s: &Search,
    spec: &Returning,
    v: &str,
    today: chrono::NaiveDate,
) -> Result<Vec<Value>, SfError> {
    let Some(obj) = org.schema.object(&spec.object) else {
        return Err(SfError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_TYPE",
            format!("sObject type '{}' is not supported.", spec.object),
        ));
    };
    let asked_id = spec
        .fields
        .split(',')
        .any(|f| f.trim().eq_ignore_ascii_case("id"));
    let fields = match (spec.fields.is_empty(), asked_id) {
        (true, _) => "Id".to_string(),
        (false, true) => spec.fields.clone(),
        (false, false) => format!("Id, {}", spec.fields),
    };
    let soql = format!("SELECT {fields} FROM {} {}", obj.name, spec.clauses);
    let q = parse(&soql).map_err(|e| e.into_sf_error(&soql))?;
    let Outcome::Rows(rows) = execute_on(&q, &org.schema, &org.data, v, false, today)
        .map_err(|e| e.into_sf_error(&soql))?
    else {
        return Ok(vec![]);
    };
    let keep_id = spec.fields.is_empty() || asked_id;
    Ok(rows
        .into_iter()
        .filter(|row| {
            let id = row.get("Id").and_then(Value::as_str).unwrap_or("");
            org.data
                .get(&obj.name, id)
                .is_some_and(|r| s.term.matches(&searchable(obj, r, s.scope)))
        })
        .map(|mut row| {
            if let (false, Some(m)) = (keep_id, row.as_object_mut()) {
                m.remove("Id");
            }
            row
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_match_words_phrases_and_wildcards() {
        let t = |term: &str, text: &str| parse_term(term).unwrap().matches(text);
        assert!(t("hopper", "grace hopper "));
        assert!(!t("hop", "grace hopper "));
        assert!(t("hop*", "grace hopper "));
        assert!(t("h?pper", "grace hopper "));
        assert!(t("grace hopper", "hopper grace "));
        assert!(!t("grace turing", "grace hopper "));
        assert!(t("turing OR hopper", "grace hopper "));
        assert!(t("\"grace hopper\"", "grace hopper "));
        assert!(!t("\"hopper grace\"", "grace hopper "));
        assert!(parse_term("a").is_err());
    }

    #[test]
    fn searches_parse_into_their_clauses() {
        let s = parse_search("FIND {Hopper} IN NAME FIELDS RETURNING Contact(Id, LastName WHERE Birthdate > 1900-01-01 ORDER BY LastName LIMIT 5), Account LIMIT 20").unwrap();
        assert_eq!(s.scope, Scope::Name);
        assert_eq!(s.limit, 20);
        assert_eq!(s.returning.len(), 2);
        let c = &s.returning[0];
        assert_eq!(c.fields, "Id, LastName");
        assert_eq!(c.clauses, "WHERE Birthdate > 1900-01-01 ORDER BY LastName");
        assert_eq!(c.limit, Some(5));
        assert!(parse_search("FIND Hopper").is_err());
        assert!(parse_search("FIND {Hopper").is_err());
        assert!(parse_search("FIND {Hopper} RETURNING").is_err());
    }
}

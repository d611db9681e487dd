//! Deterministic content: what the mock model "says" is a function of (server seed, model,
//! request, choice index), so a run replays exactly.
//!
//! - Free text is a short clinical summary built from the prompt's own sentences (the ones with
//!   numbers, medications, symptoms and dates rank first), written in the persona's style.
//! - JSON output (`json_object`, `json_schema`, Ollama `format`) is filled from the schema:
//!   `$ref`/`$defs`, `anyOf`/`oneOf` (first non-null branch), `enum`, `const`, nested objects
//!   and arrays, `minItems`/`maxItems`, `minimum`/`maximum`, `minLength`/`maxLength`, and the
//!   `date`, `date-time`, `email`, `uuid` formats. Field names pick fitting values (a `summary`
//!   gets the summary, a `*_date` a date). `pattern` is not honoured. Generation is bounded
//!   by the token budget (`max_tokens`, else the context window): when a schema asks for
//!   more than fits, the answer stops growing and is cut at the budget with `length`, as a
//!   real server stops mid-answer; `$ref` chains end after 32 hops, nesting past 8 levels
//!   is `null`, and each schema node is looked at once however often it is reached.
//! - Tool calls: arguments filled from the function's parameter schema the same way.
//! - Embeddings: feature-hashed words, L2-normalised, so similar texts have similar vectors.

use std::collections::{HashMap, HashSet};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::persona::{Persona, Style};
use super::request::{GenRequest, OutputFormat, Tool, ToolChoice};
use super::tokens;

/// A tool call the model makes.
#[derive(Clone, Debug, PartialEq)]
pub struct ToolCall {
    /// `call_…`.
    pub id: String,
    /// Function name.
    pub name: String,
    /// Arguments as a JSON object.
    pub arguments: Value,
}

/// What one choice of a generation produced, before limits.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Text (free or JSON).
    Text(String),
    /// Tool calls.
    ToolCalls(Vec<ToolCall>),
}

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finish {
    /// Natural end or a stop sequence.
    Stop,
    /// `max_tokens` reached.
    Length,
    /// The model called tools.
    ToolCalls,
}

impl Finish {
    /// OpenAI's `finish_reason` / Ollama's `done_reason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
            Finish::ToolCalls => "tool_calls",
        }
    }
}

fn mix(parts: &[&[u8]]) -> u64 {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
        h.update([0xff]);
    }
    let d = h.finalize();
    u64::from_le_bytes(d[..8].try_into().unwrap_or_default())
}

/// The random stream for one choice of one request.
pub fn rng_for(seed: u64, model: &str, content_key: u64, choice: u32) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(&[
        &seed.to_le_bytes(),
        model.as_bytes(),
        &content_key.to_le_bytes(),
        &choice.to_le_bytes(),
    ]))
}

const INSTRUCTION_STARTS: [&str; 16] = [
    "summarize",
    "summarise",
    "prepare",
    "write",
    "return",
    "respond",
    "you are",
    "please",
    "give",
    "list",
    "extract",
    "create",
    "generate",
    "output",
    "answer",
    "use the",
];
const CLINICAL: [&str; 18] = [
    "pain",
    "allerg",
    "medication",
    "mg",
    "diagnos",
    "history",
    "follow",
    "blood",
    "pressure",
    "symptom",
    "appointment",
    "visit",
    "fever",
    "dose",
    "lab",
    "chronic",
    "prescri",
    "referr",
];

/// The prompt's own sentences that carry content (instructions left out).
fn sentences(req: &GenRequest) -> Vec<String> {
    let mut out = vec![];
    // Seen sentences, so that a long prompt costs linear time, not quadratic.
    let mut seen = HashSet::new();
    for m in req
        .messages
        .iter()
        .filter(|m| m.role != "system" && m.role != "developer")
    {
        let mut cur = String::new();
        let mut flush = |cur: &mut String, out: &mut Vec<String>| {
            let s = cur
                .trim()
                .trim_start_matches(['-', '*', '•', ' '])
                .trim()
                .to_string();
            cur.clear();
            let lower = s.to_lowercase();
            if s.split_whitespace().count() >= 3
                && !INSTRUCTION_STARTS.iter().any(|p| lower.starts_with(p))
                && seen.insert(s.clone())
            {
                out.push(s);
            }
        };
        let chars: Vec<char> = m.content.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            if c == '\n' {
                flush(&mut cur, &mut out);
                continue;
            }
            cur.push(c);
            let next_is_space = chars.get(i + 1).is_none_or(|n| n.is_whitespace());
            if matches!(c, '.' | '!' | '?') && next_is_space {
                flush(&mut cur, &mut out);
            }
        }
        flush(&mut cur, &mut out);
    }
    out
}

/// Up to `k` sentences, the most informative first by score, kept in prompt order.
fn pick(sents: &[String], k: usize, rng: &mut ChaCha8Rng) -> Vec<String> {
    let mut scored: Vec<(i64, usize)> = sents
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let l = s.to_lowercase();
            let mut score = 0i64;
            if l.chars().any(|c| c.is_ascii_digit()) {
                score += 2;
            }
            score += 2 * CLINICAL.iter().filter(|k| l.contains(*k)).count().min(3) as i64;
            (score * 1000 + rng.random_range(0..1000), i)
        })
        .collect();
    scored.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut chosen: Vec<usize> = scored.into_iter().take(k).map(|(_, i)| i).collect();
    chosen.sort_unstable();
    chosen.into_iter().map(|i| sents[i].clone()).collect()
}

fn ensure_period(s: &str) -> String {
    if s.ends_with(['.', '!', '?']) {
        s.to_string()
    } else {
        format!("{s}.")
    }
}

/// Free text in the persona's style.
fn prose(persona: &Persona, sents: &[String], rng: &mut ChaCha8Rng) -> String {
    if sents.is_empty() {
        return "No clinical details were provided, so there is nothing to summarise yet."
            .to_string();
    }
    match persona.style {
        Style::Concise => {
            let chosen = pick(sents, 3, rng);
            let opener = ["Summary:", "In brief:", "Visit summary:"][rng.random_range(0..3)];
            let body: Vec<String> = chosen.iter().map(|s| ensure_period(s)).collect();
            format!("{opener} {}", body.join(" "))
        }
        Style::Bullets => {
            let chosen = pick(sents, 5, rng);
            let mut out = String::from("Key points:");
            for s in chosen {
                out.push_str("\n- ");
                out.push_str(&ensure_period(&s));
            }
            out
        }
        Style::SoapNote => {
            let chosen = pick(sents, 3, rng);
            let s = chosen.first().map(|s| ensure_period(s)).unwrap_or_default();
            let o = chosen
                .get(1)
                .map(|s| ensure_period(s))
                .unwrap_or_else(|| "No objective findings recorded.".into());
            let a = chosen
                .get(2)
                .map(|s| ensure_period(s))
                .unwrap_or_else(|| "Stable; no acute concerns noted.".into());
            format!("S: {s}\nO: {o}\nA: {a}\nP: Review at the scheduled visit; escalate if symptoms worsen.")
        }
    }
}

const FIRST: [&str; 8] = [
    "Ada", "Grace", "Alan", "Mary", "Edsger", "Barbara", "Donald", "Frances",
];
const LAST: [&str; 4] = ["Synthetic", "Testpatient", "Mockwell", "Fakename"];

/// How deeply generated JSON nests (deeper schema levels are answered `null`).
const MAX_DEPTH: usize = 8;

/// Characters of JSON generated for a token budget: more than `max_tokens` tokens can hold
/// in generated text (about five characters a token), so that when the schema asks for
/// more, the answer is cut at exactly `max_tokens` by [`limit`], as a real server stops.
fn char_budget(max_tokens: u32) -> usize {
    (max_tokens as usize + 1) * 8 + 64
}

/// What a schema node asks for, worked out once per node.
#[derive(Clone, Copy)]
struct Plan<'a> {
    /// The node after following `$ref`.
    schema: &'a Value,
    /// The `anyOf` / `oneOf` / `allOf` branch to fill instead, if any.
    branch: Option<&'a Value>,
    /// The JSON type to produce.
    typ: &'a str,
}

struct Filler<'a> {
    root: &'a Value,
    sents: &'a [String],
    summary: String,
    rng: &'a mut ChaCha8Rng,
    used: usize,
    /// Characters of output left; at zero the answer stops growing.
    left: usize,
    /// The budget ran out before the answer was whole.
    cut: bool,
    /// Plans of the schema nodes seen, by node address: a node reached again (an array's
    /// items, a `$ref` used in many places) costs no second look at the schema.
    plans: HashMap<usize, Plan<'a>>,
}

/// Follow a local `$ref` (`#/$defs/X`, `#/definitions/X`) to its schema (at most 32 hops, so
/// a cycle of references ends).
fn deref<'v>(root: &'v Value, schema: &'v Value) -> &'v Value {
    let mut cur = schema;
    for _ in 0..32 {
        match cur.get("$ref").and_then(Value::as_str) {
            Some(r) => match r.strip_prefix('#').and_then(|p| root.pointer(p)) {
                Some(target) => cur = target,
                None => return &Value::Null,
            },
            None => return cur,
        }
    }
    cur
}

/// The type a schema node asks for (the first non-null of a type list).
fn type_of(schema: &Value) -> &str {
    match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ if schema.get("items").is_some() => "array",
        _ => "string",
    }
}

impl<'a> Filler<'a> {
    /// Take `n` characters from the budget; `false` (and the answer marked cut) if they are
    /// not left.
    fn spend(&mut self, n: usize) -> bool {
        if self.cut || n > self.left {
            self.cut = true;
            self.left = 0;
            return false;
        }
        self.left -= n;
        true
    }

    fn plan(&mut self, node: &'a Value) -> Plan<'a> {
        let key = node as *const Value as usize;
        if let Some(p) = self.plans.get(&key) {
            return *p;
        }
        let schema = deref(self.root, node);
        let branch = ["anyOf", "oneOf", "allOf"].iter().find_map(|key| {
            let Some(Value::Array(branches)) = schema.get(*key) else {
                return None;
            };
            branches
                .iter()
                .find(|b| deref(self.root, b).get("type").and_then(Value::as_str) != Some("null"))
                .or(branches.first())
        });
        let plan = Plan {
            schema,
            branch,
            typ: type_of(schema),
        };
        self.plans.insert(key, plan);
        plan
    }

    /// A value from the schema itself (`const`, `enum`), if the budget holds it.
    fn copy(&mut self, v: &Value) -> Value {
        let len = serde_json::to_string(v).map_or(0, |t| t.len());
        if self.spend(len) {
            v.clone()
        } else {
            Value::Null
        }
    }

    fn sentence(&mut self) -> String {
        if self.sents.is_empty() {
            return "No details provided.".to_string();
        }
        let s = ensure_period(&self.sents[self.used % self.sents.len()]);
        self.used += 1;
        s
    }

    fn text_for(&mut self, name: &str, schema: &Value) -> String {
        let n = name.to_lowercase();
        match schema.get("format").and_then(Value::as_str) {
            Some("date") => format!(
                "2026-{:02}-{:02}",
                self.rng.random_range(1..=12),
                self.rng.random_range(1..=28)
            ),
            Some("date-time") => format!(
                "2026-{:02}-{:02}T{:02}:{:02}:00Z",
                self.rng.random_range(1..=12),
                self.rng.random_range(1..=28),
                self.rng.random_range(8..18),
                [0, 15, 30, 45][self.rng.random_range(0..4)]
            ),
            Some("email") => format!("patient{}@example.invalid", self.rng.random_range(100..999)),
            Some("uuid") => {
                let b: [u8; 16] = self.rng.random();
                format!(
                    "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                    u32::from_le_bytes(b[0..4].try_into().unwrap_or_default()),
                    u16::from_le_bytes([b[4], b[5]]),
                    u16::from_le_bytes([b[6], b[7]]) & 0xfff,
                    u16::from_le_bytes([b[8], b[9]]) & 0xfff,
                    u64::from_le_bytes([b[10], b[11], b[12], b[13], b[14], b[15], 0, 0])
                )
            }
            _ if [
                "summary",
                "summar",
                "note",
                "assessment",
                "narrative",
                "description",
                "overview",
                "prep",
            ]
            .iter()
            .any(|k| n.contains(k)) =>
            {
                self.summary.clone()
            }
            _ if n.contains("name") => format!(
                "{} {}",
                FIRST[self.rng.random_range(0..FIRST.len())],
                LAST[self.rng.random_range(0..LAST.len())]
            ),
            _ if n.ends_with("id") || n.contains("key") => {
                format!("CC-{:06}", self.rng.random_range(0..1_000_000))
            }
            _ if n.contains("date") => format!(
                "2026-{:02}-{:02}",
                self.rng.random_range(1..=12),
                self.rng.random_range(1..=28)
            ),
            _ if ["risk", "priority", "urgency", "severity"]
                .iter()
                .any(|k| n.contains(k)) =>
            {
                ["low", "medium", "high"][self.rng.random_range(0..3)].to_string()
            }
            _ if n.contains("language") => "English".to_string(),
            _ => self.sentence(),
        }
    }

    /// A string for a field: fitting text, padded to `minLength` and cut to `maxLength`,
    /// within the budget (past it the string is cut and the answer marked cut).
    fn string_for(&mut self, name: &str, schema: &Value) -> String {
        const PAD: &str = " pending review";
        let mut s = self.text_for(name, schema);
        let min = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0);
        let max = schema.get("maxLength").and_then(Value::as_u64);
        let have = s.chars().count() as u64;
        // Whole pads up to `minLength`, but never more than the budget can hold.
        let pads = min.saturating_sub(have).div_ceil(PAD.len() as u64);
        let room = (self.left / PAD.len()) as u64;
        s.push_str(&PAD.repeat(pads.min(room + 1) as usize));
        if let Some(max) = max {
            s = s
                .chars()
                .take(max.min(usize::MAX as u64) as usize)
                .collect();
        }
        let fits = self.left.saturating_sub(2);
        if s.len() > fits {
            s = s.chars().take(fits).collect();
            self.spend(usize::MAX);
        } else {
            self.spend(s.len() + 2);
        }
        s
    }

    fn number(&mut self, schema: &Value, integer: bool) -> Value {
        let lo = schema
            .get("minimum")
            .and_then(Value::as_f64)
            .or_else(|| {
                schema
                    .get("exclusiveMinimum")
                    .and_then(Value::as_f64)
                    .map(|x| x + if integer { 1.0 } else { 0.01 })
            })
            .unwrap_or(0.0);
        let hi = schema
            .get("maximum")
            .and_then(Value::as_f64)
            .or_else(|| {
                schema
                    .get("exclusiveMaximum")
                    .and_then(Value::as_f64)
                    .map(|x| x - if integer { 1.0 } else { 0.01 })
            })
            .unwrap_or(lo.max(0.0) + 100.0)
            .max(lo);
        if integer {
            let (lo, hi) = (lo.ceil() as i64, hi.floor() as i64);
            json!(if hi >= lo {
                self.rng.random_range(lo..=hi)
            } else {
                lo
            })
        } else {
            let x = lo + (hi - lo) * self.rng.random::<f64>();
            json!((x * 100.0).round() / 100.0)
        }
    }

    fn fill(&mut self, name: &str, node: &'a Value, depth: usize) -> Value {
        let plan = self.plan(node);
        // Every value costs at least a character, so the budget bounds the work.
        if depth > MAX_DEPTH || !self.spend(1) {
            return Value::Null;
        }
        let schema = plan.schema;
        if let Some(c) = schema.get("const") {
            return self.copy(c);
        }
        if let Some(Value::Array(options)) = schema.get("enum") {
            if !options.is_empty() {
                let pick = self.rng.random_range(0..options.len());
                return self.copy(&options[pick]);
            }
        }
        if let Some(b) = plan.branch {
            return self.fill(name, b, depth + 1);
        }
        match plan.typ {
            "object" => self.object(schema, depth),
            "array" => self.array(name, schema, depth),
            "integer" => self.number(schema, true),
            "number" => self.number(schema, false),
            "boolean" => json!(self.rng.random_bool(0.5)),
            "null" => Value::Null,
            _ => json!(self.string_for(name, schema)),
        }
    }

    fn object(&mut self, schema: &'a Value, depth: usize) -> Value {
        let mut out = Map::new();
        if let Some(Value::Object(props)) = schema.get("properties") {
            for (k, sub) in props {
                if !self.spend(k.len() + 4) {
                    break;
                }
                let v = self.fill(k, sub, depth + 1);
                out.insert(k.clone(), v);
            }
        }
        Value::Object(out)
    }

    fn array(&mut self, name: &str, schema: &'a Value, depth: usize) -> Value {
        let min = schema.get("minItems").and_then(Value::as_u64).unwrap_or(1);
        let max = schema
            .get("maxItems")
            .and_then(Value::as_u64)
            .unwrap_or(u64::MAX);
        let n = min.max(2.min(max)).min(max);
        let items = schema.get("items").unwrap_or(&Value::Null);
        let singular = name.trim_end_matches('s');
        let mut out = vec![];
        for _ in 0..n {
            if !self.spend(1) {
                break;
            }
            out.push(self.fill(singular, items, depth + 1));
        }
        Value::Array(out)
    }
}

/// A JSON value matching `schema`, from the prompt's sentences, within `max_tokens`; the flag
/// says the budget ran out first (the value is then a valid but incomplete answer, longer
/// than the budget, that [`limit`] cuts).
pub fn json_from_schema(
    schema: &Value,
    req: &GenRequest,
    persona: &Persona,
    rng: &mut ChaCha8Rng,
    max_tokens: u32,
) -> (Value, bool) {
    let sents = sentences(req);
    let summary = prose(
        &Persona {
            style: Style::Concise,
            ..persona.clone()
        },
        &sents,
        rng,
    );
    let mut f = Filler {
        root: schema,
        sents: &sents,
        summary,
        rng,
        used: 0,
        left: char_budget(max_tokens),
        cut: false,
        plans: HashMap::new(),
    };
    let v = f.fill("result", schema, 0);
    (v, f.cut)
}

/// One generated choice.
#[derive(Clone, Debug, PartialEq)]
pub struct Generated {
    /// What was said.
    pub output: Output,
    /// Generation ran out of `max_tokens` before the answer was whole (the schema asked for
    /// more than fits): the answer ends with `finish_reason: "length"`.
    pub cut: bool,
}

/// Generate one choice, within the model's context window.
pub fn generate(seed: u64, persona: &Persona, req: &GenRequest, choice: u32) -> Output {
    generate_within(seed, persona, req, choice, persona.context_window).output
}

/// Generate one choice within `max_tokens`: time and memory follow the budget, never the
/// numbers of a schema (`minItems`, `minLength`).
pub fn generate_within(
    seed: u64,
    persona: &Persona,
    req: &GenRequest,
    choice: u32,
    max_tokens: u32,
) -> Generated {
    let mut rng = rng_for(seed, &persona.name, req.content_key, choice);
    if let Some(t) = chosen_tool(req) {
        let (arguments, cut) = json_from_schema(&t.parameters, req, persona, &mut rng, max_tokens);
        let id: String = (0..24)
            .map(|_| {
                let c = rng.random_range(0..62u8);
                (match c {
                    0..=9 => b'0' + c,
                    10..=35 => b'a' + c - 10,
                    _ => b'A' + c - 36,
                }) as char
            })
            .collect();
        let call = ToolCall {
            id: format!("call_{id}"),
            name: t.name.clone(),
            arguments,
        };
        return Generated {
            output: Output::ToolCalls(vec![call]),
            cut,
        };
    }
    let (text, cut) = match &req.format {
        OutputFormat::Text => (prose(persona, &sentences(req), &mut rng), false),
        OutputFormat::JsonObject => {
            let schema = json!({"type": "object", "properties": {"summary": {"type": "string"}, "key_points": {"type": "array", "items": {"type": "string"}, "maxItems": 3}}});
            let (v, cut) = json_from_schema(&schema, req, persona, &mut rng, max_tokens);
            (v.to_string(), cut)
        }
        OutputFormat::JsonSchema(schema) => {
            let (v, cut) = json_from_schema(schema, req, persona, &mut rng, max_tokens);
            (v.to_string(), cut)
        }
    };
    Generated {
        output: Output::Text(text),
        cut,
    }
}

/// The tool the model calls, if any: per `tool_choice`, or (`auto`) one the last user
/// message names, unless a tool's result has come back since that message: then a model
/// answers in text (an agent loop such as openai-node's `runTools` ends there).
fn chosen_tool(req: &GenRequest) -> Option<&Tool> {
    let answered = (req.messages.iter().rev())
        .take_while(|m| m.role != "user")
        .any(|m| m.role == "tool" || m.role == "function");
    let last_user = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.content.to_lowercase())
        .unwrap_or_default();
    match &req.tool_choice {
        _ if req.tools.is_empty() => None,
        ToolChoice::None => None,
        ToolChoice::Required => req.tools.first(),
        ToolChoice::Named(n) => req.tools.iter().find(|t| &t.name == n),
        ToolChoice::Auto if answered => None,
        ToolChoice::Auto => req.tools.iter().find(|t| {
            let n = t.name.to_lowercase();
            last_user.contains(&n) || last_user.contains(&n.replace('_', " "))
        }),
    }
}

/// Apply stop sequences and the token budget to a text; returns the text sent and why it ended.
pub fn limit(text: &str, stop: &[String], max_tokens: Option<u32>) -> (String, Finish) {
    let mut end = text.len();
    for s in stop.iter().filter(|s| !s.is_empty()) {
        if let Some(i) = text.find(s.as_str()) {
            end = end.min(i);
        }
    }
    let text = &text[..end];
    match max_tokens {
        Some(max) => {
            let (cut, was_cut) = tokens::truncate(text, max);
            (
                cut.to_string(),
                if was_cut {
                    Finish::Length
                } else {
                    Finish::Stop
                },
            )
        }
        None => (text.to_string(), Finish::Stop),
    }
}

/// A deterministic unit vector for a text.
pub fn embed(seed: u64, model: &str, text: &str, dim: usize) -> Vec<f32> {
    let mut v = vec![0f32; dim.max(1)];
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let seed_bytes = seed.to_le_bytes();
    let mut add = |feature: &[u8], weight: f32| {
        let h = mix(&[&seed_bytes, model.as_bytes(), feature]);
        let idx = (h % v.len() as u64) as usize;
        let sign = if (h >> 63) == 1 { -1.0 } else { 1.0 };
        v[idx] += sign * weight;
    };
    if words.is_empty() {
        add(text.as_bytes(), 1.0);
    }
    for w in &words {
        add(w.as_bytes(), 1.0);
    }
    for pair in words.windows(2) {
        add(format!("{} {}", pair[0], pair[1]).as_bytes(), 0.5);
    }
    let norm = v
        .iter()
        .map(|x| x * x)
        .sum::<f32>()
        .sqrt()
        .max(f32::MIN_POSITIVE);
    v.iter_mut().for_each(|x| *x /= norm);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::persona::PersonaSet;
    use crate::llm::request::parse_openai;

    fn req(body: Value) -> GenRequest {
        parse_openai(body.to_string().as_bytes(), true).unwrap()
    }

    const NOTE: &str = "Summarize the visit. Patient reports chest pain since 3 days. She takes metformin 500 mg twice daily. The weather was nice. Allergic to penicillin.";

    #[test]
    fn text_is_built_from_the_prompt_and_deterministic() {
        let p = PersonaSet::builtin().find("llama3.1:8b").unwrap().clone();
        let r =
            req(json!({"model": "llama3.1:8b", "messages": [{"role": "user", "content": NOTE}]}));
        let Output::Text(a) = generate(1, &p, &r, 0) else {
            panic!()
        };
        let Output::Text(b) = generate(1, &p, &r, 0) else {
            panic!()
        };
        assert_eq!(a, b);
        assert!(
            a.contains("metformin 500 mg") && a.contains("chest pain"),
            "{a}"
        );
        assert!(!a.contains("Summarize the visit"), "{a}");
        // The seed varies the wording, not the facts.
        let variants: std::collections::BTreeSet<String> = (0..16)
            .map(|seed| match generate(seed, &p, &r, 0) {
                Output::Text(t) => t,
                other => panic!("{other:?}"),
            })
            .collect();
        assert!(variants.len() > 1, "{variants:?}");
    }

    #[test]
    fn json_schema_output_matches_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "summary": {"type": "string"},
                "risk": {"type": "string", "enum": ["low", "high"]},
                "visit_date": {"type": "string", "format": "date"},
                "medications": {"type": "array", "items": {"$ref": "#/$defs/Med"}, "minItems": 1, "maxItems": 3},
                "age": {"type": "integer", "minimum": 18, "maximum": 99},
                "follow_up": {"anyOf": [{"type": "null"}, {"type": "boolean"}]}
            },
            "required": ["summary", "risk", "visit_date", "medications", "age", "follow_up"],
            "additionalProperties": false,
            "$defs": {"Med": {"type": "object", "properties": {"name": {"type": "string"}, "dose_mg": {"type": "number", "exclusiveMinimum": 0}}, "required": ["name", "dose_mg"], "additionalProperties": false}}
        });
        let p = PersonaSet::builtin().default_model().clone();
        let r = req(
            json!({"model": "x", "messages": [{"role": "user", "content": NOTE}], "response_format": {"type": "json_schema", "json_schema": {"name": "prep", "schema": schema}}}),
        );
        let Output::Text(t) = generate(5, &p, &r, 0) else {
            panic!()
        };
        let v: Value = serde_json::from_str(&t).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        assert!(validator.is_valid(&v), "{v}");
        assert!(
            v["summary"].as_str().unwrap().contains("penicillin")
                || v["summary"].as_str().unwrap().contains("mg")
        );
    }

    #[test]
    fn limits_cut_at_stop_then_at_the_budget() {
        assert_eq!(
            limit("one two. three", &["three".into()], None),
            ("one two. ".into(), Finish::Stop)
        );
        assert_eq!(
            limit("one two three four", &[], Some(2)),
            ("one two".into(), Finish::Length)
        );
        assert_eq!(limit("one", &[], Some(2)), ("one".into(), Finish::Stop));
    }

    #[test]
    fn embeddings_are_unit_length_and_similar_for_similar_text() {
        let a = embed(1, "m", "chest pain since three days", 64);
        let b = embed(1, "m", "chest pain since two days", 64);
        let c = embed(1, "m", "invoice overdue payment reminder", 64);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        assert!((dot(&a, &a) - 1.0).abs() < 1e-4);
        assert!(dot(&a, &b) > dot(&a, &c));
        assert_eq!(a, embed(1, "m", "chest pain since three days", 64));
    }
}

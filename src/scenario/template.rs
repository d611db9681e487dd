//! Templates in workload paths, bodies and effects: `{{key}}`, `{{patient.last_name}}`, …,
//! filled from a seeded generator of visibly synthetic data (names from a fixed list, ids
//! with the `CC-SYN-` marker, `.invalid` e-mail domains, 555 phone numbers).

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The variables a template may use.
pub const VARIABLES: [&str; 14] = [
    "key",
    "n",
    "seed",
    "provenance",
    "patient.first_name",
    "patient.last_name",
    "patient.external_id",
    "patient.birthdate",
    "patient.email",
    "patient.phone",
    "patient.language",
    "slot.start",
    "slot.end",
    "practitioner",
];

/// Marker every synthetic identifier starts with.
pub const MARKER: &str = "CC-SYN-";

const FIRST: [&str; 24] = [
    "Ada", "Grace", "Alan", "Mary", "Edsger", "Barbara", "Donald", "Frances", "Tony", "Radia",
    "Ken", "Margaret", "Niklaus", "Frieda", "John", "Hedy", "Dennis", "Sophie", "Leslie", "Annie",
    "Bjarne", "Karen", "Guido", "Lynn",
];
const LAST: [&str; 16] = [
    "Synthetic",
    "Testpatient",
    "Mockwell",
    "Fakename",
    "Samplesen",
    "Placeholder",
    "Dummyton",
    "Examplar",
    "Fixturez",
    "Mockingbird",
    "Notreal",
    "Pretendsen",
    "Simulacrum",
    "Standin",
    "Stubbington",
    "Trialby",
];
const LANGUAGES: [&str; 4] = ["English", "Spanish", "German", "French"];
const PRACTITIONERS: [&str; 3] = [
    "dr.adams@crashcart.test",
    "dr.okafor@crashcart.test",
    "nurse.lind@crashcart.test",
];

/// The names inside `{{…}}` of a text, in order (`{{` for one never closed).
pub fn placeholders(text: &str) -> Vec<&str> {
    let mut out = vec![];
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) => {
                out.push(after[..j].trim());
                rest = &after[j + 2..];
            }
            None => {
                out.push("{{");
                break;
            }
        }
    }
    out
}

/// Problems with a template's placeholders (unknown variables, unclosed braces).
pub fn check(text: &str) -> Vec<String> {
    check_with(text, &[])
}

/// [`check`], with `extra` variables known too (what earlier steps captured).
pub fn check_with(text: &str, extra: &[&str]) -> Vec<String> {
    placeholders(text)
        .into_iter()
        .filter_map(|p| match p {
            "{{" => Some("a `{{` is never closed".to_string()),
            v if VARIABLES.contains(&v) || extra.contains(&v) => None,
            v => {
                let captured = if extra.is_empty() {
                    String::new()
                } else {
                    format!("; captured before this point: {}", extra.join(", "))
                };
                Some(format!(
                    "unknown template variable {{{{{v}}}}} (known: {}{captured})",
                    VARIABLES.join(", ")
                ))
            }
        })
        .collect()
}

/// Where a template finds its variables' values.
pub trait Lookup {
    /// The value of `name`, if it has one.
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl Lookup for BTreeMap<&'static str, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Lookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// An operation's values and what its steps captured (captures never shadow the built-ins:
/// validation refuses those names).
impl<A: Lookup, B: Lookup> Lookup for (&A, &B) {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.0.lookup(name).or_else(|| self.1.lookup(name))
    }
}

/// Appointment slots: 30-minute slots from 08:00 to 17:30 on days 1–28 of every month from
/// 2027 for a century. Operation `n` of a run gets slot `(offset + n × stride) mod SLOTS`, a
/// stride prime to their count, so no two operations of a run share a slot (the first
/// [`SLOTS`] of them): a booking never collides with another by accident. A scenario that
/// wants collisions writes its slots out.
pub const SLOTS: u64 = 100 * 12 * 28 * 20;
const SLOT_STRIDE: u64 = 104_729;

/// Year, month, day and slot (0–19) of operation `n`.
fn slot_of(seed: u64, n: u64) -> (u64, u64, u64, u64) {
    let offset = ChaCha8Rng::seed_from_u64(seed ^ 0x5107_5107).random_range(0..SLOTS);
    let i = (offset + (n % SLOTS) * SLOT_STRIDE) % SLOTS;
    (
        2027 + i / (12 * 28 * 20),
        1 + i / (28 * 20) % 12,
        1 + i / 20 % 28,
        i % 20,
    )
}

/// The values of one operation: from the run's seed and the operation's number.
pub fn values(seed: u64, n: u64) -> BTreeMap<&'static str, String> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let first = FIRST[rng.random_range(0..FIRST.len())];
    let last = LAST[rng.random_range(0..LAST.len())];
    let pid: u32 = rng.random_range(0..1_000_000);
    let (year, month, day, slot) = slot_of(seed, n);
    let (h, m) = (8 + slot / 2, (slot % 2) * 30);
    let (eh, em) = if m == 30 { (h + 1, 0) } else { (h, 30) };
    let mut v = BTreeMap::new();
    v.insert("key", format!("{MARKER}OP-{seed:x}-{n:06}"));
    v.insert("n", n.to_string());
    v.insert("seed", seed.to_string());
    v.insert("provenance", "crashcart-synthetic".to_string());
    v.insert("patient.first_name", first.to_string());
    v.insert("patient.last_name", last.to_string());
    v.insert("patient.external_id", format!("{MARKER}P-{pid:06}"));
    v.insert(
        "patient.birthdate",
        format!(
            "19{:02}-{:02}-{:02}",
            rng.random_range(40..99),
            rng.random_range(1..=12),
            rng.random_range(1..=28)
        ),
    );
    v.insert(
        "patient.email",
        format!(
            "{}.{}.{pid}@example.invalid",
            first.to_lowercase(),
            last.to_lowercase()
        ),
    );
    v.insert(
        "patient.phone",
        format!("+1-555-01{:02}", rng.random_range(0..100)),
    );
    v.insert(
        "patient.language",
        LANGUAGES[rng.random_range(0..LANGUAGES.len())].to_string(),
    );
    v.insert(
        "slot.start",
        format!("{year}-{month:02}-{day:02}T{h:02}:{m:02}:00.000+0000"),
    );
    v.insert(
        "slot.end",
        format!("{year}-{month:02}-{day:02}T{eh:02}:{em:02}:00.000+0000"),
    );
    v.insert(
        "practitioner",
        PRACTITIONERS[rng.random_range(0..PRACTITIONERS.len())].to_string(),
    );
    v
}

/// Fill a template (unknown placeholders are left as they are; `check` refuses them first).
pub fn render(text: &str, values: &impl Lookup) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find("}}") {
            Some(j) => {
                let name = after[..j].trim();
                match values.lookup(name) {
                    Some(v) => out.push_str(v),
                    None => out.push_str(&rest[i..i + 4 + j]),
                }
                rest = &after[j + 2..];
            }
            None => {
                out.push_str(&rest[i..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Fill every string of a JSON value.
pub fn render_json(v: &serde_json::Value, values: &impl Lookup) -> serde_json::Value {
    match v {
        serde_json::Value::String(s) => serde_json::Value::String(render(s, values)),
        serde_json::Value::Array(a) => a.iter().map(|x| render_json(x, values)).collect(),
        serde_json::Value::Object(m) => m
            .iter()
            .map(|(k, x)| (k.clone(), render_json(x, values)))
            .collect(),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_names_unknown_variables_and_unclosed_braces() {
        assert!(check("/patients/{{patient.external_id}}/sync").is_empty());
        let e = check("/x/{{patient.ssn}}");
        assert_eq!(e.len(), 1);
        assert!(
            e[0].contains("{{patient.ssn}}") && e[0].contains("known:"),
            "{}",
            e[0]
        );
        assert_eq!(check("{{key"), vec!["a `{{` is never closed".to_string()]);
    }

    #[test]
    fn values_are_seeded_and_visibly_synthetic() {
        let a = values(7, 1);
        assert_eq!(a, values(7, 1));
        assert_ne!(a, values(7, 2));
        assert_ne!(a, values(8, 1));
        assert!(a["key"].starts_with(MARKER) && a["patient.external_id"].starts_with(MARKER));
        assert!(a["patient.email"].ends_with("@example.invalid"));
        assert!(a["patient.phone"].starts_with("+1-555-01"));
        let body = serde_json::json!({"key": "{{key}}", "who": ["{{patient.first_name}} {{patient.last_name}}"], "n": 3});
        let out = render_json(&body, &a);
        assert_eq!(out["key"], a["key"]);
        assert_eq!(
            out["who"][0],
            format!("{} {}", a["patient.first_name"], a["patient.last_name"])
        );
        assert_eq!(out["n"], 3);
    }

    #[test]
    fn no_two_operations_of_a_run_share_a_slot() {
        // Before, slots were drawn at random: a run of 100 bookings had even odds of two in
        // one slot of one practitioner, which a correct SUT rightly refuses (found by the zoo).
        for seed in [0, 7, 113] {
            let mut seen = std::collections::HashSet::new();
            for n in 0..20_000 {
                let v = values(seed, n);
                assert!(
                    seen.insert(v["slot.start"].clone()),
                    "seed {seed} op {n}: {}",
                    v["slot.start"]
                );
                let (start, end) = (&v["slot.start"], &v["slot.end"]);
                assert!(start < end && start[..10] == end[..10], "{start} {end}");
            }
        }
    }
}

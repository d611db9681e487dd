//! Model personas: the models the mock LLM serves, read from `mocks/data/llm/personas.yaml`
//! (built in) and from user files merged over it.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::MockError;

const DEFAULT_PERSONAS_YAML: &str = include_str!("../../data/llm/personas.yaml");

/// How a persona writes free text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Style {
    /// "Summary: …" in one paragraph built from the prompt's own sentences.
    Concise,
    /// "Key points:" and a bulleted list.
    Bullets,
    /// A SOAP note (Subjective, Objective, Assessment, Plan).
    SoapNote,
}

/// What a model can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Capability {
    /// Chat and text completion.
    Completion,
    /// Tool (function) calls.
    Tools,
    /// Embeddings.
    Embedding,
}

/// The performance profile of a model on a small GPU server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerfProfile {
    /// Concurrent generations.
    pub slots: usize,
    /// Requests that may wait for a slot; past it the server answers 429/503.
    pub queue_depth: usize,
    /// Decode speed of a single stream, tokens per second; 0 means instant.
    pub tokens_per_second: f64,
    /// Prompt processing speed, tokens per second; 0 means instant.
    pub prefill_tokens_per_second: f64,
    /// Fixed part of the time to first token, in milliseconds.
    pub base_ttft_ms: u64,
    /// Each extra concurrent stream slows decoding by this fraction (0.15 = 15%).
    pub contention: f64,
    /// Load time when the model was idle longer than `keep_alive_s` (or never loaded).
    pub cold_start_ms: u64,
    /// Idle seconds after which the model unloads.
    pub keep_alive_s: u64,
    /// `Retry-After` (seconds) sent when the queue is full.
    pub retry_after_s: u64,
}

impl PerfProfile {
    /// The same profile with every delay set to zero (slots and queue kept).
    pub fn zero_delay(&self) -> Self {
        Self {
            tokens_per_second: 0.0,
            prefill_tokens_per_second: 0.0,
            base_ttft_ms: 0,
            contention: 0.0,
            cold_start_ms: 0,
            ..self.clone()
        }
    }

    /// Idle time after which the model must be loaded again.
    pub fn keep_alive(&self) -> Duration {
        Duration::from_secs(self.keep_alive_s)
    }
}

/// One model the mock serves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Persona {
    /// The model name clients send (`llama3.1:8b`).
    pub name: String,
    /// Other names that resolve to this model.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Model family (Ollama `details.family`).
    pub family: String,
    /// Parameter size (Ollama `details.parameter_size`).
    pub parameter_size: String,
    /// Quantization level (Ollama `details.quantization_level`).
    pub quantization: String,
    /// Context window in tokens.
    pub context_window: u32,
    /// Dimension of the embedding vectors.
    pub embedding_dim: usize,
    /// How the model writes.
    pub style: Style,
    /// What it can do.
    pub capabilities: Vec<Capability>,
    /// How fast it is.
    pub perf: PerfProfile,
}

impl Persona {
    /// True when the model has the capability.
    pub fn can(&self, c: Capability) -> bool {
        self.capabilities.contains(&c)
    }
    /// True when `name` names this model (its name or an alias; `:latest` is implied).
    pub fn answers_to(&self, name: &str) -> bool {
        let bare = name.strip_suffix(":latest").unwrap_or(name);
        self.name == name
            || self.name == bare
            || self.aliases.iter().any(|a| a == name || a == bare)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPersonas {
    models: Vec<Persona>,
}

/// The models of one mock LLM.
#[derive(Clone, Debug, PartialEq)]
pub struct PersonaSet {
    models: Vec<Persona>,
}

impl Default for PersonaSet {
    fn default() -> Self {
        Self::builtin()
    }
}

impl PersonaSet {
    /// The personas shipped in `mocks/data/llm/personas.yaml` (parsed once per process).
    pub fn builtin() -> Self {
        static BUILT_IN: std::sync::OnceLock<PersonaSet> = std::sync::OnceLock::new();
        BUILT_IN
            .get_or_init(|| {
                let mut s = Self { models: vec![] };
                s.merge_yaml(DEFAULT_PERSONAS_YAML, Path::new("<built-in personas.yaml>"))
                    .expect("the built-in personas file is valid (tested)");
                s
            })
            .clone()
    }

    /// Merge a personas file: entries with a known name replace it, others are added.
    pub fn merge_file(&mut self, path: &Path) -> Result<(), MockError> {
        self.merge_yaml(&crate::error::read_data_file(path)?, path)
    }

    /// Merge personas from YAML (or JSON) text.
    pub fn merge_yaml(&mut self, text: &str, origin: &Path) -> Result<(), MockError> {
        let raw: RawPersonas = crate::error::parse_data_file(text, origin)?;
        for (i, p) in raw.models.into_iter().enumerate() {
            let invalid = |message: String| MockError::Invalid {
                path: origin.to_path_buf(),
                message: format!("models[{i}] ({}): {message}", p.name),
            };
            if p.name.trim().is_empty() {
                return Err(invalid("name must not be empty".into()));
            }
            if p.perf.slots == 0 {
                return Err(invalid("perf.slots must be at least 1".into()));
            }
            if p.context_window == 0 || p.embedding_dim == 0 {
                return Err(invalid(
                    "context_window and embedding_dim must be positive".into(),
                ));
            }
            for (key, v) in [
                ("perf.tokens_per_second", p.perf.tokens_per_second),
                (
                    "perf.prefill_tokens_per_second",
                    p.perf.prefill_tokens_per_second,
                ),
                ("perf.contention", p.perf.contention),
            ] {
                if !v.is_finite() || v < 0.0 {
                    return Err(invalid(format!("{key} must be a number >= 0")));
                }
            }
            match self.models.iter_mut().find(|m| m.name == p.name) {
                Some(existing) => *existing = p,
                None => self.models.push(p),
            }
        }
        Ok(())
    }

    /// Find a model by name or alias.
    pub fn find(&self, name: &str) -> Option<&Persona> {
        self.models.iter().find(|m| m.answers_to(name))
    }

    /// Every model, in file order.
    pub fn models(&self) -> &[Persona] {
        &self.models
    }

    /// The default model (the first one): what `LLM_MODEL` names.
    pub fn default_model(&self) -> &Persona {
        &self.models[0]
    }

    /// Set every model's delays to zero (benchmarks, fast tests).
    pub fn zero_delay(&mut self) {
        for m in &mut self.models {
            m.perf = m.perf.zero_delay();
        }
    }

    /// Keep only these models, in this order (unknown names are an error).
    pub fn retain(&mut self, names: &[String]) -> Result<(), MockError> {
        let mut kept = vec![];
        for n in names {
            let p = self.find(n).cloned().ok_or_else(|| MockError::Invalid {
                path: "personas".into(),
                message: format!("no model named {n:?}"),
            })?;
            kept.push(p);
        }
        if !kept.is_empty() {
            self.models = kept;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_personas_load_and_resolve_aliases() {
        let s = PersonaSet::builtin();
        assert_eq!(s.default_model().name, "llama3.1:8b");
        assert_eq!(s.find("llama3.1").unwrap().name, "llama3.1:8b");
        assert_eq!(s.find("meditron:latest").unwrap().name, "meditron:7b");
        assert!(s.find("gpt-4o").is_none());
        assert!(s.find("instant").unwrap().perf.tokens_per_second == 0.0);
    }

    #[test]
    fn merge_replaces_and_adds_and_names_bad_entries() {
        let mut s = PersonaSet::builtin();
        let n = s.models().len();
        let extra = r#"
models:
  - name: instant
    family: x
    parameter_size: 1B
    quantization: Q8_0
    context_window: 100
    embedding_dim: 8
    style: bullets
    capabilities: [completion]
    perf: {slots: 1, queue_depth: 0, tokens_per_second: 0, prefill_tokens_per_second: 0, base_ttft_ms: 0, contention: 0, cold_start_ms: 0, keep_alive_s: 1, retry_after_s: 1}
  - name: my-model
    family: x
    parameter_size: 1B
    quantization: Q8_0
    context_window: 100
    embedding_dim: 8
    style: concise
    capabilities: [completion]
    perf: {slots: 1, queue_depth: 0, tokens_per_second: 10, prefill_tokens_per_second: 0, base_ttft_ms: 0, contention: 0, cold_start_ms: 0, keep_alive_s: 1, retry_after_s: 1}
"#;
        s.merge_yaml(extra, Path::new("extra.yaml")).unwrap();
        assert_eq!(s.models().len(), n + 1);
        assert_eq!(s.find("instant").unwrap().context_window, 100);
        let bad = extra.replace(
            "slots: 1, queue_depth: 0, tokens_per_second: 10",
            "slots: 0, queue_depth: 0, tokens_per_second: 10",
        );
        let err = s
            .merge_yaml(&bad, Path::new("bad.yaml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("bad.yaml")
                && err.contains("models[1] (my-model)")
                && err.contains("perf.slots"),
            "{err}"
        );
        let err = s
            .merge_yaml("models: [{name: x}]", Path::new("short.yaml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("short.yaml:"), "{err}");
    }
}

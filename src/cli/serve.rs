//! `crashcart serve`'s arguments (the command itself is [`crate::serve`]).

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// Which mocks `serve` starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum ServeTarget {
    /// Every mock crashcart has.
    #[default]
    All,
    /// The mock Salesforce.
    Salesforce,
    /// The mock local LLM (OpenAI-compatible and Ollama APIs).
    Llm,
}

/// Arguments of `crashcart serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Which mock to serve.
    #[arg(value_enum, default_value_t = ServeTarget::All)]
    pub target: ServeTarget,
    /// Port of the mock Salesforce, or of the mock LLM with `serve llm` (0 picks a free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Port of the mock LLM when serving everything (0 picks a free port).
    #[arg(long, default_value_t = 0)]
    pub llm_port: u16,
    /// Address to bind. Non-loopback addresses need --allow-remote.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Allow binding a non-loopback address.
    #[arg(long)]
    pub allow_remote: bool,
    /// Seed for ids, tokens and every random choice.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Serve HTTPS with a self-signed certificate generated at start (written to --cert-out).
    #[arg(long)]
    pub tls: bool,
    /// With --tls: use this PEM certificate chain instead of generating one.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// With --tls: the PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Where to write the certificate clients must trust (default: a file in the temp dir).
    #[arg(long)]
    pub cert_out: Option<PathBuf>,
    /// Extra org schema (YAML or JSON) merged over the built-in one; repeatable.
    #[arg(long = "schema")]
    pub schemas: Vec<PathBuf>,
    /// Access-token lifetime, e.g. `2h`, `90s`.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2h")]
    pub token_ttl: Duration,
    /// Daily API request quota.
    #[arg(long, default_value_t = 15_000)]
    pub daily_api_limit: u64,
    /// Also print the connection settings as shell `export` lines on stdout.
    #[arg(long)]
    pub env: bool,
    /// Which server the LLM's OpenAI-compatible API imitates: openai, vllm, llamacpp, ollama
    /// (error shapes, and 429 or 503 on overload).
    #[arg(long, default_value = "openai")]
    pub flavour: crashcart_mocks::llm::Flavour,
    /// Extra LLM model personas (YAML or JSON) merged over the built-in ones; repeatable.
    #[arg(long = "personas")]
    pub personas: Vec<PathBuf>,
    /// API key the mock LLM accepts on /v1 (default: the built-in key; "" accepts any request).
    #[arg(long)]
    pub llm_api_key: Option<String>,
    /// What the LLM history keeps of prompts: full, hashed or off.
    #[arg(long, default_value = "hashed")]
    pub capture: crashcart_mocks::llm::CapturePolicy,
    /// Serve every LLM model without delays (no TTFT, decoding or cold start).
    #[arg(long)]
    pub zero_delay: bool,
    /// Port of the Toxiproxy-compatible API and the fault control API (Toxiproxy's own port
    /// by default; 0 picks a free port).
    #[arg(long, default_value_t = crate::proxy::api::DEFAULT_API_PORT)]
    pub api_port: u16,
    /// Do not put chaos proxies in front of the mocks (no network faults, no API).
    #[arg(long)]
    pub no_proxy: bool,
    /// Requests each mock keeps in memory for `GET /__crashcart/history` (the most recent;
    /// memory stays bounded however long it serves).
    #[arg(long, default_value_t = 100_000)]
    pub history: usize,
    /// Also write every request, as it completes, to this JSONL file (one record per line,
    /// as in a run's journal).
    #[arg(long)]
    pub journal: Option<PathBuf>,
}

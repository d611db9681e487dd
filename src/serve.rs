//! `crashcart serve`: start the mocks as real servers, print where they are (and, with
//! `--env`, the connection settings as shell `export` lines), run until Ctrl-C or SIGTERM,
//! then shut down cleanly.

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use crashcart_mocks::salesforce::ConnectionSettings;
use crashcart_mocks::{MockLlm, MockSalesforce, TlsMaterial};

use crate::cli::{ServeArgs, ServeTarget};
use crate::error::Error;

/// Quote a value for a POSIX shell.
pub fn shell_quote(value: &str) -> String {
    if !value.is_empty()
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:@%+=,".contains(&b))
    {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// The `export NAME=value` lines for a set of settings.
pub fn export_lines(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("export {k}={}\n", shell_quote(v)))
        .collect()
}

fn default_cert_path(port: u16) -> PathBuf {
    std::env::temp_dir().join(format!("crashcart-{}-{port}.pem", std::process::id()))
}

/// Start the mock Salesforce as `serve` was asked to, and describe it on stderr.
async fn start_salesforce(args: &ServeArgs, out: &mut String) -> Result<MockSalesforce, Error> {
    let mut builder = MockSalesforce::builder()
        .seed(args.seed)
        .bind(SocketAddr::new(args.bind, args.port))
        .allow_non_loopback(args.allow_remote)
        .token_ttl(args.token_ttl)
        .daily_api_limit(args.daily_api_limit);
    for s in &args.schemas {
        builder = builder.schema_file(s);
    }
    let tls = if args.tls {
        Some(match (&args.tls_cert, &args.tls_key) {
            (Some(c), Some(k)) => TlsMaterial::from_files(c, k)?,
            _ => TlsMaterial::self_signed()?,
        })
    } else {
        None
    };
    if let Some(t) = &tls {
        builder = builder.tls(t.clone());
    }
    let sf = builder.start().await?;
    let url = sf.url();
    let settings: ConnectionSettings = sf.handle().connection_settings();
    let _ = writeln!(out, "salesforce       {url}");
    let _ = writeln!(out, "  oauth token    {url}/services/oauth2/token");
    let _ = writeln!(out, "  soap login     {url}/services/Soap/u/{{version}}");
    let _ = writeln!(out, "  rest           {url}/services/data/");
    let _ = writeln!(out, "  control        {url}/__crashcart/state");
    if let Some(t) = &tls {
        let path = args
            .cert_out
            .clone()
            .unwrap_or_else(|| default_cert_path(sf.local_addr().port()));
        let written = t.write_cert(&path)?;
        let _ = writeln!(out, "  certificate    {} (trust it: REQUESTS_CA_BUNDLE / SSL_CERT_FILE / NODE_EXTRA_CA_CERTS)", written.display());
    }
    let _ = writeln!(
        out,
        "  user           {} / {}",
        settings.username, settings.password
    );
    let _ = writeln!(
        out,
        "  connected app  {} / {}",
        settings.client_id, settings.client_secret
    );
    Ok(sf)
}

/// Start the mock LLM as `serve` was asked to, and describe it on stderr.
async fn start_llm(args: &ServeArgs, port: u16, out: &mut String) -> Result<MockLlm, Error> {
    let mut builder = MockLlm::builder()
        .seed(args.seed)
        .bind(SocketAddr::new(args.bind, port))
        .allow_non_loopback(args.allow_remote)
        .flavour(args.flavour)
        .capture(args.capture);
    if let Some(key) = &args.llm_api_key {
        builder = builder.api_keys(if key.is_empty() {
            vec![]
        } else {
            vec![key.clone()]
        });
    }
    for p in &args.personas {
        builder = builder.personas_file(p);
    }
    if args.zero_delay {
        builder = builder.zero_delay();
    }
    let llm = builder.start().await?;
    let url = llm.url();
    let settings = llm.handle().connection_settings();
    let _ = writeln!(out, "llm              {url} (flavour {})", args.flavour);
    let _ = writeln!(out, "  openai api     {url}/v1   key {}", settings.api_key);
    let _ = writeln!(out, "  ollama api     {url}/api");
    let _ = writeln!(out, "  control        {url}/__crashcart/state");
    let models: Vec<String> = llm.handle().models().into_iter().map(|m| m.name).collect();
    let _ = writeln!(out, "  models         {}", models.join(", "));
    Ok(llm)
}

/// Run `crashcart serve` until a shutdown signal.
pub async fn run(args: ServeArgs) -> Result<(), Error> {
    let (serve_sf, serve_llm) = match args.target {
        ServeTarget::All => (true, true),
        ServeTarget::Salesforce => (true, false),
        ServeTarget::Llm => (false, true),
    };
    let mut banner = format!("crashcart serve: seed {}\n", args.seed);
    let mut env = vec![];
    let sf = if serve_sf {
        let sf = start_salesforce(&args, &mut banner).await?;
        env.extend(sf.handle().connection_settings().env_pairs());
        Some(sf)
    } else {
        None
    };
    let llm = if serve_llm {
        let port = if serve_sf { args.llm_port } else { args.port };
        let llm = match start_llm(&args, port, &mut banner).await {
            Ok(l) => l,
            Err(e) => {
                if let Some(sf) = sf {
                    sf.shutdown().await;
                }
                return Err(e);
            }
        };
        env.extend(llm.handle().connection_settings().env_pairs());
        Some(llm)
    } else {
        None
    };
    banner.push_str("Ctrl-C to stop.\n");
    eprint!("{banner}");
    if args.env {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(export_lines(&env).as_bytes());
        let _ = out.flush();
    }
    crate::shutdown::signal().await;
    eprintln!("crashcart serve: shutting down");
    if let Some(sf) = sf {
        sf.shutdown().await;
    }
    if let Some(llm) = llm {
        llm.shutdown().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_shell_metacharacters() {
        assert_eq!(
            shell_quote("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
        let lines = export_lines(&[("A", "x y".into())]);
        assert_eq!(lines, "export A='x y'\n");
    }
}

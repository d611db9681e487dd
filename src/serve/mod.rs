//! `crashcart serve`: start the mocks as real servers, print where they are (and, with
//! `--env`, the connection settings as shell `export` lines), run until Ctrl-C or SIGTERM,
//! then shut down cleanly.

pub mod control;

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use crashcart_mocks::salesforce::ConnectionSettings;
use crashcart_mocks::server::{ListenConfig, RunningServer, StopHandle};
use crashcart_mocks::TlsMaterial;

use crate::cli::{ServeArgs, ServeTarget};
use crate::error::Error;
use crate::run::environment::{EnvOptions, Environment, LlmOptions, SalesforceOptions};
use crate::serve::control::Control;
use crate::timeline::journal::{JournalWriter, Line};
use std::sync::Arc;

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

/// What `serve` was asked to stand up.
fn options(args: &ServeArgs) -> Result<EnvOptions, Error> {
    let (sf, llm) = match args.target {
        ServeTarget::All => (true, true),
        ServeTarget::Salesforce => (true, false),
        ServeTarget::Llm => (false, true),
    };
    let tls = if args.tls {
        Some(match (&args.tls_cert, &args.tls_key) {
            (Some(c), Some(k)) => TlsMaterial::from_files(c, k)?,
            _ => TlsMaterial::self_signed()?,
        })
    } else {
        None
    };
    Ok(EnvOptions {
        seed: args.seed,
        bind: args.bind,
        allow_remote: args.allow_remote,
        salesforce: sf.then(|| SalesforceOptions {
            port: args.port,
            schemas: args.schemas.clone(),
            token_ttl: args.token_ttl,
            daily_api_limit: args.daily_api_limit,
            tls,
        }),
        llm: llm.then(|| LlmOptions {
            port: if sf { args.llm_port } else { args.port },
            flavour: args.flavour,
            personas: args.personas.clone(),
            models: vec![],
            api_key: args.llm_api_key.clone(),
            capture: args.capture,
            zero_delay: args.zero_delay,
        }),
        proxies: !args.no_proxy,
        external_toxiproxy: None,
    })
}

/// Describe what runs, for the operator (stderr).
fn banner(
    args: &ServeArgs,
    opts: &EnvOptions,
    env: &Environment,
    out: &mut String,
) -> Result<(), Error> {
    let _ = writeln!(out, "crashcart serve: seed {}", args.seed);
    if let Some(sf) = &env.salesforce {
        let url = sf.url();
        let settings: ConnectionSettings = sf.handle().connection_settings();
        let _ = writeln!(out, "salesforce       {url}");
        let _ = writeln!(out, "  oauth token    {url}/services/oauth2/token");
        let _ = writeln!(out, "  soap login     {url}/services/Soap/u/{{version}}");
        let _ = writeln!(out, "  rest           {url}/services/data/");
        let _ = writeln!(out, "  control        {url}/__crashcart/state");
        if let Some(t) = opts.salesforce.as_ref().and_then(|o| o.tls.as_ref()) {
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
        if env.proxy.is_some() {
            let _ = writeln!(out, "salesforce proxy {}   (clients use this: network faults apply; instance_url points here)", settings.instance_url);
        }
    }
    if let Some(llm) = &env.llm {
        let url = llm.url();
        let settings = llm.handle().connection_settings();
        let _ = writeln!(out, "llm              {url} (flavour {})", args.flavour);
        let _ = writeln!(out, "  openai api     {url}/v1   key {}", settings.api_key);
        let _ = writeln!(out, "  ollama api     {url}/api");
        let _ = writeln!(out, "  control        {url}/__crashcart/state");
        let models: Vec<String> = llm.handle().models().into_iter().map(|m| m.name).collect();
        let _ = writeln!(out, "  models         {}", models.join(", "));
        if env.proxy.is_some() {
            let _ = writeln!(
                out,
                "llm proxy        {}   (OPENAI_BASE_URL and OLLAMA_HOST point here)",
                settings.ollama_host
            );
        }
    }
    Ok(())
}

/// Serve the Toxiproxy API and the fault control API.
async fn start_api(
    args: &ServeArgs,
    env: &Environment,
    control: &Control,
) -> Result<Option<RunningServer>, Error> {
    let Some(proxy) = &env.proxy else {
        return Ok(None);
    };
    let router = crate::proxy::api::router(proxy.clone())
        .merge(crate::serve::control::router(control.clone()));
    let (stop, _signal) = StopHandle::new();
    let listen = ListenConfig {
        bind: SocketAddr::new(args.bind, args.api_port),
        allow_non_loopback: args.allow_remote,
        tls: None,
    };
    crashcart_mocks::server::serve(router, &listen, stop).await.map(Some).map_err(|e| match e {
        crashcart_mocks::MockError::Bind { addr, source } => Error::InvalidInput(format!(
            "cannot bind the API on {addr}: {source} (another Toxiproxy or crashcart? pass --api-port 0 or another port)"
        )),
        other => Error::Mock(other),
    })
}

/// Run `crashcart serve` until a shutdown signal.
pub async fn run(args: ServeArgs) -> Result<(), Error> {
    let opts = options(&args)?;
    let env = Environment::start(&opts).await?;
    let control = Control::new(env.engine.clone());
    let api = match start_api(&args, &env, &control).await {
        Ok(a) => a,
        Err(e) => {
            env.shutdown().await;
            return Err(e);
        }
    };
    let journal = keep_history(&args, &env);
    let mut text = String::new();
    banner(&args, &opts, &env, &mut text)?;
    if let Some(api) = &api {
        let _ = writeln!(text, "api              {}   (Toxiproxy API: /proxies, /reset; faults: /faults, /faults/events)", api.base_url());
    }
    text.push_str("Ctrl-C to stop.\n");
    errout!("{text}");
    if args.env {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(export_lines(&env.env_pairs()).as_bytes());
        let _ = out.flush();
    }
    crate::run::shutdown::signal().await;
    errln!("crashcart serve: shutting down (clearing faults)");
    control.clear();
    if let Some(api) = api {
        api.shutdown().await;
    }
    env.shutdown().await;
    if let Some(j) = journal {
        let written = j.finish();
        if let Some(p) = written.path {
            errln!("crashcart serve: journal {}", p.display());
        }
    }
    Ok(())
}

/// Bound each mock's history to `--history` records, and stream every record to
/// `--journal` when asked.
fn keep_history(args: &ServeArgs, env: &Environment) -> Option<Arc<JournalWriter>> {
    let journal = args
        .journal
        .clone()
        .map(|p| Arc::new(JournalWriter::create(p)));
    let histories = [
        env.salesforce.as_ref().map(|s| s.handle().history()),
        env.llm.as_ref().map(|l| l.handle().history()),
    ];
    if let Some(sf) = &env.salesforce {
        sf.handle().set_write_capacity(args.history);
    }
    for h in histories.into_iter().flatten() {
        h.set_capacity(args.history);
        if let Some(j) = journal.clone() {
            h.set_sink(Arc::new(move |r| j.write(&Line::Request(r))));
        }
    }
    journal
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

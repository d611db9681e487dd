//! `crashcart serve`: start the mocks as real servers, print where they are (and, with
//! `--env`, the connection settings as shell `export` lines), run until Ctrl-C or SIGTERM,
//! then shut down cleanly.

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use crashcart_mocks::salesforce::ConnectionSettings;
use std::sync::Arc;

use crashcart_mocks::server::{ListenConfig, RunningServer, StopHandle};
use crashcart_mocks::{MockLlm, MockSalesforce, TlsMaterial};

use crate::control::Control;
use crate::fault::{Dependencies, FaultEngine};
use crate::proxy::network::EmbeddedNetwork;
use crate::proxy::ChaosProxy;

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

/// The chaos proxies, fault engine and API of a `serve`: what stands in front of the mocks.
struct Chaos {
    proxy: ChaosProxy,
    control: Control,
    api: RunningServer,
}

/// Put a proxy named `name` in front of `direct` (a mock's base URL) and return its URL.
async fn front(
    proxy: &ChaosProxy,
    name: &str,
    direct: &str,
    bind: std::net::IpAddr,
) -> Result<String, Error> {
    let (scheme, upstream) = direct.split_once("://").unwrap_or(("http", direct));
    let listen = SocketAddr::new(bind, 0).to_string();
    let info = proxy
        .create(name, &listen, upstream, true)
        .await
        .map_err(|e| Error::InvalidInput(format!("proxy {name}: {e}")))?;
    Ok(format!("{scheme}://{}", info.listen))
}

async fn start_chaos(
    args: &ServeArgs,
    sf: Option<&MockSalesforce>,
    llm: Option<&MockLlm>,
    banner: &mut String,
) -> Result<Chaos, Error> {
    let proxy = ChaosProxy::new(args.seed, args.allow_remote);
    if let Some(sf) = sf {
        let url = front(&proxy, "salesforce", &sf.url(), args.bind).await?;
        sf.handle().set_public_url(&url);
        let _ = writeln!(banner, "salesforce proxy {url}   (clients use this: network faults apply; instance_url points here)");
    }
    if let Some(llm) = llm {
        let url = front(&proxy, "llm", &llm.url(), args.bind).await?;
        llm.handle().set_public_url(&url);
        let _ = writeln!(
            banner,
            "llm proxy        {url}   (OPENAI_BASE_URL and OLLAMA_HOST point here)"
        );
    }
    let engine = FaultEngine::new(
        args.seed,
        Dependencies {
            salesforce: sf.map(|s| s.handle().clone()),
            llm: llm.map(|l| l.handle().clone()),
            network: Some(Arc::new(EmbeddedNetwork::new(proxy.clone()))),
        },
    );
    let control = Control::new(engine);
    let router =
        crate::proxy::api::router(proxy.clone()).merge(crate::control::router(control.clone()));
    let (stop, _signal) = StopHandle::new();
    let listen = ListenConfig {
        bind: SocketAddr::new(args.bind, args.api_port),
        allow_non_loopback: args.allow_remote,
        tls: None,
    };
    let api = crashcart_mocks::server::serve(router, &listen, stop).await.map_err(|e| match e {
        crashcart_mocks::MockError::Bind { addr, source } => Error::InvalidInput(format!(
            "cannot bind the API on {addr}: {source} (another Toxiproxy or crashcart? pass --api-port 0 or another port)"
        )),
        other => Error::Mock(other),
    })?;
    let base = api.base_url();
    let _ = writeln!(banner, "api              {base}   (Toxiproxy API: /proxies, /reset; faults: /faults, /faults/events)");
    Ok(Chaos {
        proxy,
        control,
        api,
    })
}

/// Run `crashcart serve` until a shutdown signal.
pub async fn run(args: ServeArgs) -> Result<(), Error> {
    let (serve_sf, serve_llm) = match args.target {
        ServeTarget::All => (true, true),
        ServeTarget::Salesforce => (true, false),
        ServeTarget::Llm => (false, true),
    };
    let mut banner = format!("crashcart serve: seed {}\n", args.seed);
    let sf = if serve_sf {
        Some(start_salesforce(&args, &mut banner).await?)
    } else {
        None
    };
    let llm = if serve_llm {
        let port = if serve_sf { args.llm_port } else { args.port };
        match start_llm(&args, port, &mut banner).await {
            Ok(l) => Some(l),
            Err(e) => {
                if let Some(sf) = sf {
                    sf.shutdown().await;
                }
                return Err(e);
            }
        }
    } else {
        None
    };
    let chaos = if args.no_proxy {
        None
    } else {
        match start_chaos(&args, sf.as_ref(), llm.as_ref(), &mut banner).await {
            Ok(c) => Some(c),
            Err(e) => {
                if let Some(sf) = sf {
                    sf.shutdown().await;
                }
                if let Some(llm) = llm {
                    llm.shutdown().await;
                }
                return Err(e);
            }
        }
    };
    // Connection settings after the proxies: clients are pointed at them.
    let mut env = vec![];
    if let Some(sf) = &sf {
        env.extend(sf.handle().connection_settings().env_pairs());
    }
    if let Some(llm) = &llm {
        env.extend(llm.handle().connection_settings().env_pairs());
    }
    banner.push_str("Ctrl-C to stop.\n");
    eprint!("{banner}");
    if args.env {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(export_lines(&env).as_bytes());
        let _ = out.flush();
    }
    crate::shutdown::signal().await;
    eprintln!("crashcart serve: shutting down (clearing faults)");
    if let Some(chaos) = chaos {
        chaos.control.clear();
        chaos.proxy.shutdown();
        chaos.api.shutdown().await;
    }
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

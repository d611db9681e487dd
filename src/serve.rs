//! `crashcart serve`: start the mocks as real servers, print where they are (and, with
//! `--env`, the connection settings as shell `export` lines), run until Ctrl-C or SIGTERM,
//! then shut down cleanly.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use crashcart_mocks::salesforce::ConnectionSettings;
use crashcart_mocks::{MockSalesforce, TlsMaterial};

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

/// Run `crashcart serve` until a shutdown signal.
pub async fn run(args: ServeArgs) -> Result<(), Error> {
    let serve_salesforce = matches!(args.target, ServeTarget::All | ServeTarget::Salesforce);
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
    if !serve_salesforce {
        return Err(Error::InvalidInput("nothing to serve".into()));
    }
    let sf = builder.start().await?;
    let url = sf.url();
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "crashcart serve: seed {}", args.seed);
    let _ = writeln!(err, "salesforce       {url}");
    let _ = writeln!(err, "  oauth token    {url}/services/oauth2/token");
    let _ = writeln!(err, "  soap login     {url}/services/Soap/u/{{version}}");
    let _ = writeln!(err, "  rest           {url}/services/data/");
    let _ = writeln!(err, "  control        {url}/__crashcart/state");
    if let Some(t) = &tls {
        let path = args
            .cert_out
            .clone()
            .unwrap_or_else(|| default_cert_path(sf.local_addr().port()));
        let written = t.write_cert(&path)?;
        let _ = writeln!(err, "  certificate    {} (trust it: REQUESTS_CA_BUNDLE / SSL_CERT_FILE / NODE_EXTRA_CA_CERTS)", written.display());
    }
    let settings: ConnectionSettings = sf.handle().connection_settings();
    let _ = writeln!(
        err,
        "  user           {} / {}",
        settings.username, settings.password
    );
    let _ = writeln!(
        err,
        "  connected app  {} / {}",
        settings.client_id, settings.client_secret
    );
    let _ = writeln!(err, "Ctrl-C to stop.");
    drop(err);
    if args.env {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(export_lines(&settings.env_pairs()).as_bytes());
        let _ = out.flush();
    }
    crate::shutdown::signal().await;
    eprintln!("crashcart serve: shutting down");
    sf.shutdown().await;
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

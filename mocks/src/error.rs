//! Errors of the mocks crate: what can go wrong while configuring or starting a mock.
//!
//! Errors *inside* a running mock are never Rust errors: they are answered on the wire in the
//! real service's error shape (see `salesforce::errors`).

use std::path::{Path, PathBuf};

/// Read a data file (org schema, personas), naming the file on failure.
pub(crate) fn read_data_file(path: &Path) -> Result<String, MockError> {
    std::fs::read_to_string(path).map_err(|source| MockError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Parse a data file's YAML (or JSON). The error says where and what, never quoting the
/// file: no snippet, quoted values and keys elided (a wrong path may name a password file or a
/// patient export).
pub(crate) fn parse_data_file<T: serde::de::DeserializeOwned>(
    text: &str,
    path: &Path,
) -> Result<T, MockError> {
    let mut options = serde_saphyr::Options::default();
    options.with_snippet = false;
    serde_saphyr::from_str_with_options(text, options).map_err(|e| MockError::Parse {
        path: path.to_path_buf(),
        message: without_quotes(e.to_string().lines().next().unwrap_or("")),
    })
}

/// `text` with every run quoted in `"` or `` ` `` (values and keys from the file) replaced by
/// `…` in the same quotes.
fn without_quotes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut open: Option<char> = None;
    for c in text.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    open = Some(c);
                }
            }
        }
    }
    out
}

/// A failure to configure or start a mock server.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The listener could not bind.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: String,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A non-loopback bind address was requested without explicit permission.
    #[error("refusing to bind non-loopback address {0}: pass allow_non_loopback (CLI: --allow-remote) to permit it")]
    NonLoopback(String),
    /// A data file (org schema, personas, keys) could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },
    /// A data file could not be parsed; the message names the line and column where known.
    #[error("{path}: {message}")]
    Parse {
        /// The file (or a description of the built-in source).
        path: PathBuf,
        /// What the parser said, with location.
        message: String,
    },
    /// A data file parsed but is not consistent (duplicate object, bad key prefix, …).
    #[error("{path}: {message}")]
    Invalid {
        /// The file (or a description of the built-in source).
        path: PathBuf,
        /// What is wrong, naming the object and field.
        message: String,
    },
    /// TLS material could not be generated or loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// A key for JWT verification could not be loaded.
    #[error("JWT key: {0}")]
    JwtKey(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_never_quote_the_file() {
        let secret = "patient 123-45-6789";
        for text in [
            format!("{secret}: 1\nother: [\n"),
            format!("\"{secret}\": [1, 2\n"),
            format!("- `{secret}`\n- {{\n"),
        ] {
            let err = parse_data_file::<std::collections::BTreeMap<String, u32>>(
                &text,
                Path::new("people.yaml"),
            )
            .expect_err("not a map of numbers");
            let shown = err.to_string();
            assert!(!shown.contains("123-45-6789"), "{shown}");
            assert!(shown.contains("people.yaml"), "{shown}");
        }
    }

    #[test]
    fn quoted_runs_are_elided_in_either_quote() {
        assert_eq!(
            without_quotes("unknown field `ssn 1`, expected \"a\" or `b`"),
            "unknown field `…`, expected \"…\" or `…`"
        );
    }
}

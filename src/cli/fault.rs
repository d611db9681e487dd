//! `crashcart fault add|list|clear|events`: a thin client of a running `crashcart serve`'s
//! fault control API. Specs are checked locally first, so mistakes name the file and key.

use std::io::Read;
use std::path::PathBuf;

use crate::error::Error;
use crate::serve::control::parse_specs;
use clap::Subcommand;

/// `crashcart fault …`.
#[derive(Debug, Subcommand)]
pub enum FaultCommand {
    /// Add faults from YAML/JSON files (`-` reads stdin): one fault or a list.
    Add {
        /// Files with fault specs.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The API of the running `crashcart serve`.
        #[arg(long, default_value = "http://127.0.0.1:8474", env = "CRASHCART_API")]
        api: String,
    },
    /// List the faults in force.
    List {
        /// The API of the running `crashcart serve`.
        #[arg(long, default_value = "http://127.0.0.1:8474", env = "CRASHCART_API")]
        api: String,
    },
    /// Remove one fault by id, or all.
    Clear {
        /// The fault's id (all when absent).
        id: Option<u64>,
        /// The API of the running `crashcart serve`.
        #[arg(long, default_value = "http://127.0.0.1:8474", env = "CRASHCART_API")]
        api: String,
    },
    /// Print the fault timeline (activations, removals, flaps).
    Events {
        /// The API of the running `crashcart serve`.
        #[arg(long, default_value = "http://127.0.0.1:8474", env = "CRASHCART_API")]
        api: String,
    },
}

fn url(api: &str, path: &str) -> String {
    format!("{}{path}", api.trim_end_matches('/'))
}

async fn send(req: reqwest::RequestBuilder, api: &str) -> Result<String, Error> {
    let resp = req.send().await.map_err(|e| Error::Aborted(format!("cannot reach crashcart at {api}: {e} (is `crashcart serve` running? --api / CRASHCART_API)")))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status.is_success() {
        Ok(text)
    } else if status.is_client_error() {
        Err(Error::InvalidInput(format!(
            "crashcart refused it ({status}): {text}"
        )))
    } else {
        Err(Error::Aborted(format!(
            "crashcart failed ({status}): {text}"
        )))
    }
}

/// Run a `crashcart fault` command.
pub async fn run(cmd: FaultCommand) -> Result<(), Error> {
    let http = reqwest::Client::new();
    match cmd {
        FaultCommand::Add { files, api } => {
            let mut all = vec![];
            for f in &files {
                let text = if f.as_os_str() == "-" {
                    let mut s = String::new();
                    std::io::stdin()
                        .read_to_string(&mut s)
                        .map_err(|source| Error::Io {
                            context: "reading stdin".into(),
                            source,
                        })?;
                    s
                } else {
                    std::fs::read_to_string(f).map_err(|source| Error::Io {
                        context: format!("reading {}", f.display()),
                        source,
                    })?
                };
                let specs = parse_specs(&text)
                    .map_err(|e| Error::InvalidInput(format!("{}: {e}", f.display())))?;
                all.extend(specs);
            }
            let body = serde_json::to_string(&all).unwrap_or_default();
            let out = send(
                http.post(url(&api, "/faults"))
                    .header("content-type", "application/json")
                    .body(body),
                &api,
            )
            .await?;
            outln!("{out}");
        }
        FaultCommand::List { api } => {
            outln!("{}", send(http.get(url(&api, "/faults")), &api).await?)
        }
        FaultCommand::Events { api } => outln!(
            "{}",
            send(http.get(url(&api, "/faults/events")), &api).await?
        ),
        FaultCommand::Clear { id, api } => {
            let path = match id {
                Some(id) => format!("/faults/{id}"),
                None => "/faults".to_string(),
            };
            send(http.delete(url(&api, &path)), &api).await?;
            errln!("cleared");
        }
    }
    Ok(())
}

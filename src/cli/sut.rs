//! `crashcart sut reference`: the built-in reference integration served on its own,
//! configured by the SUT contract's environment variables.

use std::time::Duration;

use clap::Subcommand;

use crate::error::{exit_code, Error};

/// `crashcart sut …`.
#[derive(Debug, Subcommand)]
pub enum SutCommand {
    /// The reference integration, configured by the SUT contract's environment variables,
    /// listening on `PORT`, until Ctrl-C or SIGTERM.
    Reference {
        /// Switch on a defect (repeatable).
        #[arg(long = "defect", value_enum)]
        defects: Vec<crate::reference::Defect>,
    },
}

/// `crashcart sut reference`: serve until Ctrl-C or SIGTERM.
pub async fn sut_reference(defects: crate::reference::Defects) -> Result<i32, Error> {
    let settings = crate::reference::Settings::from_lookup(|k| std::env::var(k).ok())?;
    let port = settings.port;
    let log: crate::reference::LogSink = std::sync::Arc::new(|line| errln!("reference: {line}"));
    let r = crate::reference::Reference::new(
        settings,
        crate::transport::Transport::sockets(),
        crate::reference::Policy::default(),
        defects.clone(),
        log,
    );
    let running = crate::reference::spawn(r, port).await?;
    errln!(
        "reference integration listening on http://{} (defects: {}); Ctrl-C to stop",
        running.addr,
        defects.label()
    );
    crate::run::shutdown::signal().await;
    let left = running.stop(Duration::from_secs(10)).await;
    if left > 0 {
        errln!("reference: stopped with {left} compensations unfinished");
    }
    Ok(exit_code::OK)
}

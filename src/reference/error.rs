//! The reference integration's own errors: what can stop it from starting. It knows the SUT
//! contract (environment variables, a port), nothing of crashcart's scenarios.

/// Why the reference integration cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// A setting of the SUT contract is missing from the environment.
    #[error("the reference integration needs {0} in its environment (the SUT contract)")]
    MissingSetting(String),
    /// `PORT` is not a port number.
    #[error("PORT={0} is not a port number")]
    BadPort(String),
    /// The listening socket could not be set up.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

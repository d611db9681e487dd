//! Errors of the harness and the exit codes the CLI maps them to.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | all SLOs met (or a command finished normally) |
//! | 1 | an SLO failed |
//! | 2 | invalid input (arguments, scenario files) |
//! | 3 | aborted, or an internal error |

use crashcart_mocks::MockError;

/// Documented process exit codes.
pub mod exit_code {
    /// All SLOs met; the command did what it was asked.
    pub const OK: i32 = 0;
    /// At least one SLO failed.
    pub const SLO_FAILED: i32 = 1;
    /// Invalid input: arguments or files.
    pub const INVALID_INPUT: i32 = 2;
    /// Aborted, or an internal error.
    pub const ABORTED: i32 = 3;
}

/// A harness failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The user asked for something invalid.
    #[error("{0}")]
    InvalidInput(String),
    /// A scenario file is invalid (every problem listed).
    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),
    /// A mock could not be configured or started.
    #[error(transparent)]
    Mock(#[from] MockError),
    /// The run was aborted or could not go on (unreachable server, internal failure).
    #[error("{0}")]
    Aborted(String),
    /// The built-in reference integration could not start.
    #[error(transparent)]
    Reference(#[from] crate::reference::ReferenceError),
    /// An I/O failure.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
}

impl Error {
    /// The exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::InvalidInput(_) | Error::Scenario(_) => exit_code::INVALID_INPUT,
            Error::Reference(crate::reference::ReferenceError::Io { .. }) => exit_code::ABORTED,
            Error::Reference(_) => exit_code::INVALID_INPUT,
            Error::Mock(MockError::NonLoopback(_))
            | Error::Mock(MockError::Parse { .. })
            | Error::Mock(MockError::Invalid { .. })
            | Error::Mock(MockError::Read { .. })
            | Error::Mock(MockError::JwtKey(_)) => exit_code::INVALID_INPUT,
            Error::Mock(_) | Error::Io { .. } | Error::Aborted(_) => exit_code::ABORTED,
        }
    }
}

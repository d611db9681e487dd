//! An integration of your own and its builds, for the matrix: how to start it (a `sut:`
//! section, as scenarios write it), the environment of its correct build, and of each broken
//! one with the scenarios built to catch it. `crashcart matrix SCENARIOS --sut FILE` runs
//! every scenario against every build, in real time, with the scenario's `sut` replaced.
//!
//! ```yaml
//! name: python-requests
//! sut:
//!   command: ["./run.sh"]
//!   cwd: .                         # relative to this file
//!   ready: http://127.0.0.1:${PORT}/health
//! correct: {env: {ZOO_VARIANT: correct}}
//! broken:
//!   no-refresh: {env: {ZOO_VARIANT: no-refresh}, caught_by: [token-expiry]}
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::scenario::raw::RawSut;
use crate::scenario::{Readiness, Scenario, SutKind};

/// One build of the integration.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVariant {
    /// Environment variables of this build, over the `sut.env`.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Scenarios built to catch it (its designed cells: each must fail in every run).
    #[serde(default)]
    pub caught_by: Vec<String>,
}

/// The variants file.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVariants {
    /// A name for the rows' heading.
    pub name: String,
    /// How to start the integration (`command`, `cwd`, `env`, `ready`, …).
    pub sut: RawSut,
    /// The build that must pass every scenario.
    #[serde(default)]
    pub correct: RawVariant,
    /// Broken builds by name.
    #[serde(default)]
    pub broken: BTreeMap<String, RawVariant>,
}

/// The integration, checked.
#[derive(Clone, Debug)]
pub struct Variants {
    /// Its name.
    pub name: String,
    /// How it starts.
    pub sut: SutKind,
    /// The `sut:` section as a scenario writes it, with an absolute `cwd` (so a scenario
    /// written elsewhere, an explored counterexample, still starts it).
    pub raw: RawSut,
    /// The correct build.
    pub correct: RawVariant,
    /// The broken builds.
    pub broken: BTreeMap<String, RawVariant>,
}

/// Read and check a variants file.
pub fn load(path: &Path) -> Result<Variants, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        context: format!("reading {}", path.display()),
        source,
    })?;
    let raw: RawVariants = serde_saphyr::from_str(&text)
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", path.display())))?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let bad = |m: &str| Error::InvalidInput(format!("{}: {m}", path.display()));
    let Some(command) = &raw.sut.command else {
        return Err(bad("sut needs a `command`"));
    };
    let ready = match (&raw.sut.ready, &raw.sut.ready_log) {
        (Some(u), None) => Readiness::Url(u.clone()),
        (None, Some(l)) => match regex::Regex::new(l) {
            Ok(p) => Readiness::Log(crate::scenario::step::Pattern(p)),
            Err(_) => return Err(bad("sut.ready_log is not a regular expression")),
        },
        _ => {
            return Err(bad(
                "sut needs its `ready` URL or a `ready_log` line (one of them)",
            ))
        }
    };
    if raw.broken.contains_key("correct") {
        return Err(bad(
            "`correct` is the passing build; name broken ones otherwise",
        ));
    }
    let cwd = dir.join(raw.sut.cwd.clone().unwrap_or_default());
    let cwd =
        std::fs::canonicalize(&cwd).map_err(|e| bad(&format!("sut.cwd {}: {e}", cwd.display())))?;
    let mut sut_raw = raw.sut.clone();
    sut_raw.cwd = Some(cwd.clone());
    Ok(Variants {
        name: raw.name,
        sut: SutKind::Command {
            command: command.clone(),
            cwd,
            ready,
        },
        raw: sut_raw,
        correct: raw.correct,
        broken: raw.broken,
    })
}

impl Variants {
    /// Every `caught_by` names a scenario of the matrix.
    pub fn check_scenarios(&self, names: &[String]) -> Result<(), Error> {
        for (v, b) in &self.broken {
            if let Some(s) = b.caught_by.iter().find(|s| !names.contains(s)) {
                return Err(Error::InvalidInput(format!(
                    "{}: broken.{v}.caught_by names {s:?}, which is not among the scenarios ({})",
                    self.name,
                    names.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The scenario with its SUT replaced by this integration's build `v`.
    pub fn apply(&self, s: &Scenario, v: &RawVariant) -> Scenario {
        let mut s = s.clone();
        s.sut = self.sut.clone();
        s.raw.sut = self.raw.clone();
        s.raw.sut.env.extend(v.env.clone());
        s.ready_timeout = self.raw.ready_timeout.unwrap_or(s.ready_timeout);
        s.grace = self.raw.grace.unwrap_or(s.grace);
        s
    }

    /// The build named `name` (`correct`, or a broken one).
    pub fn build(&self, name: &str) -> Result<&RawVariant, Error> {
        if name == "correct" {
            return Ok(&self.correct);
        }
        self.broken.get(name).ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: no build named {name:?} (correct, {})",
                self.name,
                self.broken.keys().cloned().collect::<Vec<_>>().join(", ")
            ))
        })
    }
}

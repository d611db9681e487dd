//! The scenario-file commands: `crashcart schema`, `validate` and `plan`.

use std::path::PathBuf;

use super::count;
use crate::error::{exit_code, Error};

/// `crashcart schema`: the JSON Schema of scenario files.
pub fn schema() -> i32 {
    outln!(
        "{}",
        serde_json::to_string_pretty(&crate::scenario::json_schema()).unwrap_or_default()
    );
    exit_code::OK
}

/// `crashcart validate`: every file, every problem; exit 2 if any file has one.
pub fn validate(files: &[PathBuf]) -> Result<i32, Error> {
    let mut bad = 0;
    for f in files {
        match crate::scenario::load(f) {
            Ok(s) => outln!(
                "{}: ok ({}: {}, {})",
                f.display(),
                s.name,
                count(s.raw.faults.len(), "fault"),
                count(s.raw.slos.len(), "SLO")
            ),
            Err(e) => {
                bad += 1;
                errln!("{e}");
            }
        }
    }
    Ok(if bad > 0 {
        exit_code::INVALID_INPUT
    } else {
        exit_code::OK
    })
}

/// `crashcart plan`: a scenario's resolved timeline, as a table or JSON.
pub fn plan(file: &std::path::Path, seed: Option<u64>, json: bool) -> Result<i32, Error> {
    let s = crate::scenario::load(file)?;
    let seed = seed.or(s.raw.seed).unwrap_or(0);
    let plan = crate::scenario::plan::plan(&s, seed);
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&plan).unwrap_or_default()
        );
    } else {
        out!("{plan}");
    }
    Ok(exit_code::OK)
}

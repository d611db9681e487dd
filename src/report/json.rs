//! The JSON report: every run's [`RunReport`] in one array, as `report.json` in the report
//! dir and wherever `--json` asks.

use super::RunReport;

/// The reports as pretty JSON.
pub fn render(reports: &[RunReport]) -> String {
    serde_json::to_string_pretty(reports).unwrap_or_default()
}

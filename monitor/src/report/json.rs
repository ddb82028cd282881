//! `--format json`: the `summary.json` document (schema in docs/report.md). serde_json escapes
//! every string, so names from the monitored app cannot break the document.
use anyhow::Result;

use crate::analysis::summary::Summary;

pub fn render(s: &Summary) -> Result<String> {
    let mut text = serde_json::to_string_pretty(s)?;
    text.push('\n');
    Ok(text)
}

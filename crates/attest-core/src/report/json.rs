//! `report.json`: the stable, machine-readable form of a run.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::outcome::{timestamp, RunRecord, Status, Summary};

#[derive(Serialize)]
struct JsonReport<'a> {
    attest_version: &'a str,
    started_at: String,
    finished_at: String,
    target: &'a str,
    interrupted: bool,
    summary: Summary,
    results: Vec<JsonResult<'a>>,
    teardown_failures: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonResult<'a> {
    suite: &'a str,
    check: &'a str,
    title: &'a str,
    kind: &'a str,
    status: Status,
    requirements: &'a [String],
    story: Option<&'a str>,
    ac: Option<String>,
    duration_ms: u64,
    message: &'a str,
    expected: Option<&'a str>,
    found: Option<&'a str>,
    hint: Option<&'a str>,
    target: &'a str,
    location: &'a str,
    attempts: u32,
    measurements: &'a BTreeMap<String, f64>,
}

pub fn render(record: &RunRecord) -> String {
    let results = record
        .outcomes()
        .map(|o| JsonResult {
            suite: &o.suite,
            check: &o.check,
            title: &o.title,
            kind: o.kind,
            status: o.status,
            requirements: &o.requirements,
            story: o.story.as_deref(),
            ac: (!o.acceptance.is_empty()).then(|| o.acceptance.join(", ")),
            duration_ms: o.duration.as_millis() as u64,
            message: &o.message,
            expected: o.expected.as_deref(),
            found: o.found.as_deref(),
            hint: o.hint.as_deref(),
            target: &o.target,
            location: &o.location,
            attempts: o.attempts,
            measurements: &o.measurements,
        })
        .collect();
    let report = JsonReport {
        attest_version: record.attest_version,
        started_at: timestamp(record.started_at),
        finished_at: timestamp(record.finished_at),
        target: &record.target,
        interrupted: record.interrupted,
        summary: record.summary(),
        results,
        teardown_failures: record
            .suites
            .iter()
            .flat_map(|s| s.teardown_failures.iter().map(String::as_str))
            .collect(),
    };
    let mut text = serde_json::to_string_pretty(&report).expect("report serializes");
    text.push('\n');
    text
}

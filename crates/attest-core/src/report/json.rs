//! `report.json`: the stable, machine-readable form of a run.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::outcome::{
    timestamp, FinalState, Interruption, Mismatch, RunRecord, SkipCause, Status, Summary,
};

#[derive(Serialize)]
struct JsonReport<'a> {
    attest_version: &'a str,
    /// The id on everything the run created (`attest cleanup` finds leftovers by it).
    run_id: &'a str,
    started_at: String,
    finished_at: String,
    target: &'a str,
    /// `success`, `failed`, `not-verified` (`--require-all` and something skipped),
    /// `interrupted`, `no-checks-selected`.
    final_state: &'static str,
    /// The signal that stopped the run (`SIGINT`, `SIGTERM`, `SIGHUP`), if any.
    interrupted: Option<Interruption>,
    environment: BTreeMap<&'a str, &'a str>,
    summary: Summary,
    /// The verdict line, and what was not verified grouped by why.
    verdict: JsonVerdict,
    /// Per story: every criterion and FR/NFR with its state and covering checks.
    stories: Vec<crate::rollup::StoryRollup>,
    results: Vec<JsonResult<'a>>,
    teardown_failures: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonVerdict {
    line: String,
    verified: usize,
    not_verified: usize,
    not_verified_by_cause: Vec<NotVerified>,
    /// Checks the name filter left out (not in `results`).
    not_selected: usize,
    require_all: bool,
}

#[derive(Serialize)]
struct NotVerified {
    #[serde(flatten)]
    cause: SkipCause,
    reason: String,
    count: usize,
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
    subject: Option<&'a str>,
    mismatches: &'a [Mismatch],
    target: &'a str,
    location: &'a str,
    attempts: u32,
    measurements: &'a BTreeMap<String, f64>,
    /// Why a skipped check did not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    skip: Option<&'a SkipCause>,
    /// The port-forward the check measured through.
    #[serde(skip_serializing_if = "Option::is_none")]
    via: Option<&'a str>,
    /// The check's `from:` against where the run measured it.
    #[serde(skip_serializing_if = "Option::is_none")]
    vantage: Option<&'a crate::vantage::VantageNote>,
    /// What stood in for the real thing.
    #[serde(skip_serializing_if = "Option::is_none")]
    simulated: Option<&'a str>,
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
            expected: o.evidence.expected.as_deref(),
            found: o.evidence.found.as_deref(),
            hint: o.evidence.hint.as_deref(),
            subject: o.evidence.subject.as_deref(),
            mismatches: &o.evidence.mismatches,
            target: &o.target,
            location: &o.location,
            attempts: o.attempts,
            measurements: &o.evidence.measurements,
            skip: o.skip.as_ref(),
            via: o.via.as_deref(),
            vantage: o.vantage.as_ref(),
            simulated: o.simulated.as_deref(),
        })
        .collect();
    let report = JsonReport {
        attest_version: record.attest_version,
        run_id: &record.run_id,
        started_at: timestamp(record.started_at),
        finished_at: timestamp(record.finished_at),
        target: &record.target,
        final_state: match record.final_state() {
            FinalState::Success | FinalState::Listed => "success",
            FinalState::Failed => "failed",
            FinalState::Incomplete => "not-verified",
            FinalState::Interrupted(_) => "interrupted",
            FinalState::NoChecksSelected => "no-checks-selected",
        },
        interrupted: record.interrupted,
        environment: record
            .environment
            .facts
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect(),
        summary: record.summary(),
        verdict: JsonVerdict {
            line: record.verdict_line(),
            verified: record.summary().passed,
            not_verified: record.summary().skipped,
            not_verified_by_cause: record
                .not_verified()
                .into_iter()
                .map(|(cause, count)| NotVerified {
                    reason: cause.to_string(),
                    cause,
                    count,
                })
                .collect(),
            not_selected: record.not_selected,
            require_all: record.require_all,
        },
        stories: crate::rollup::rollup(record),
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

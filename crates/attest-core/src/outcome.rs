//! The one record every reporter reads: what each check found, and the run around it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Passed,
    Failed,
    Skipped,
    /// The check could not be evaluated.
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Error => "error",
        }
    }
}

/// One check's result. All text in it is already redacted.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub suite: String,
    pub check: String,
    pub title: String,
    pub kind: &'static str,
    pub status: Status,
    pub requirements: Vec<String>,
    pub story: Option<String>,
    /// Acceptance criteria covered, as written (`AC2`).
    pub acceptance: Vec<String>,
    pub target: String,
    /// `suites/story-5.5.yaml:42:5`
    pub location: String,
    pub duration: Duration,
    pub attempts: u32,
    pub message: String,
    pub expected: Option<String>,
    pub found: Option<String>,
    pub hint: Option<String>,
    pub measurements: BTreeMap<String, f64>,
}

impl Outcome {
    /// The body of a failure: expected, found, hint and measurements, one per line.
    pub fn details(&self) -> String {
        let mut lines = Vec::new();
        if let Some(expected) = &self.expected {
            lines.push(format!("expected: {expected}"));
        }
        if let Some(found) = &self.found {
            lines.push(format!("found:    {found}"));
        }
        if let Some(hint) = &self.hint {
            lines.push(format!("hint:     {hint}"));
        }
        if self.attempts > 1 {
            lines.push(format!("attempts: {}", self.attempts));
        }
        if !self.measurements.is_empty() {
            let values: Vec<String> = self
                .measurements
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            lines.push(format!("measured: {}", values.join(", ")));
        }
        lines.push(format!("at:       {}", self.location));
        lines.join("\n")
    }
}

/// A suite's place in the run.
#[derive(Debug, Clone)]
pub struct SuiteRecord {
    pub id: String,
    pub title: String,
    pub story: Option<String>,
    pub path: String,
    pub requirements: BTreeMap<String, String>,
    pub started_at: SystemTime,
    pub duration: Duration,
    pub outcomes: Vec<Outcome>,
    /// Cleanup steps that failed: something may be left behind.
    pub teardown_failures: Vec<String>,
}

/// Everything the reporters need about one run.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub attest_version: &'static str,
    /// What was checked: `sandbox`, or the label given with `--target`.
    pub target: String,
    pub started_at: SystemTime,
    pub finished_at: SystemTime,
    pub interrupted: bool,
    pub suites: Vec<SuiteRecord>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub errors: usize,
}

impl RunRecord {
    pub fn outcomes(&self) -> impl Iterator<Item = &Outcome> {
        self.suites.iter().flat_map(|s| s.outcomes.iter())
    }

    pub fn summary(&self) -> Summary {
        let mut summary = Summary::default();
        for outcome in self.outcomes() {
            match outcome.status {
                Status::Passed => summary.passed += 1,
                Status::Failed => summary.failed += 1,
                Status::Skipped => summary.skipped += 1,
                Status::Error => summary.errors += 1,
            }
        }
        summary
    }

    pub fn teardown_failures(&self) -> usize {
        self.suites.iter().map(|s| s.teardown_failures.len()).sum()
    }
}

/// RFC 3339 UTC timestamp, second precision.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

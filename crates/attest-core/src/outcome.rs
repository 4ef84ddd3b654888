//! The one record every reporter reads: what each check found, and the run around it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
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

/// What backs a judgement, shared by a check's verdict and its outcome.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub expected: Option<String>,
    pub found: Option<String>,
    /// What to try next when it failed.
    pub hint: Option<String>,
    /// The object the mismatches are about: `v1/PersistentVolumeClaim data/data-0`.
    pub subject: Option<String>,
    /// Field by field, what differed (the last observation, when a polling check gave up).
    pub mismatches: Vec<Mismatch>,
    /// Measured values, keyed with their unit (`p95_ms`, `rows`).
    pub measurements: BTreeMap<String, f64>,
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
    pub evidence: Evidence,
    /// Why a skipped check did not run; `None` for every other status.
    pub skip: Option<SkipCause>,
    /// The port-forward the check went through (`data/service postgres-postgresql`): its
    /// timings include the API server hop, unlike in-cluster traffic.
    pub via: Option<String>,
    /// The check's `from:` against where this run measured it.
    pub vantage: Option<crate::vantage::VantageNote>,
    /// What stood in for the real thing when it was measured (the sandbox's DNS stand-in for
    /// CoreDNS): the result is labelled simulated in every report.
    pub simulated: Option<String>,
}

/// Why a selected check was skipped: each one is a criterion the run did not verify, and the
/// verdict groups them by cause.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "cause", content = "detail", rename_all = "kebab-case")]
pub enum SkipCause {
    /// What the check needs is not there: no cluster, a variable with no value in this
    /// environment. The text says what is missing (redacted).
    Unavailable(String),
    /// A mutating or destructive check without its opt-in flag (the flag).
    NotAllowed(&'static str),
    /// `ignore:` in the suite, and not run with `--include-ignored`.
    Ignored,
    /// A check it `needs` failed, errored or was skipped itself.
    PrerequisiteNotPassed,
    /// A check it `needs` was left out by the name filter.
    PrerequisiteNotSelected,
    /// The run was stopped before the check started.
    Interrupted,
}

impl std::fmt::Display for SkipCause {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            SkipCause::Unavailable(what) => f.write_str(what),
            SkipCause::NotAllowed(flag) => write!(f, "runs only with {flag}"),
            SkipCause::Ignored => f.write_str("ignored in the suite (run with --include-ignored)"),
            SkipCause::PrerequisiteNotPassed => f.write_str("a check it needs did not pass"),
            SkipCause::PrerequisiteNotSelected => f.write_str("a check it needs was not selected"),
            SkipCause::Interrupted => f.write_str("the run was interrupted"),
        }
    }
}

/// One field that did not meet its expectation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// Where, in the observed object: `status.phase`, `row 1 column count`.
    pub path: String,
    pub expected: String,
    pub found: String,
    /// The object this field belongs to, when a check judged several
    /// (`v1/Node k3s-worker-01`); else the outcome's `subject`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "* {}: expected {}, found {}",
            self.path, self.expected, self.found
        )
    }
}

/// What a result's reader must know of how it was measured, besides the port-forward it went
/// through: from where (the check's `from:`), and against what stand-in. Every report shows
/// these; with a `from:`, its note already names the port-forward.
pub fn measurement_notes(
    vantage: Option<&crate::vantage::VantageNote>,
    simulated: Option<&str>,
) -> Vec<String> {
    let mut notes: Vec<String> = vantage.iter().map(ToString::to_string).collect();
    notes.extend(simulated.map(|why| format!("simulated: {why}")));
    notes
}

impl Outcome {
    /// See [`measurement_notes`].
    pub fn measurement_notes(&self) -> Vec<String> {
        measurement_notes(self.vantage.as_ref(), self.simulated.as_deref())
    }

    /// An outcome with nothing but its names and status, for tests.
    #[cfg(test)]
    pub(crate) fn for_tests(suite: &str, check: &str, status: Status) -> Outcome {
        Outcome {
            suite: suite.into(),
            check: check.into(),
            title: check.into(),
            kind: "test",
            status,
            requirements: Vec::new(),
            story: None,
            acceptance: Vec::new(),
            target: String::new(),
            location: String::new(),
            duration: Duration::ZERO,
            attempts: 1,
            message: String::new(),
            evidence: Evidence::default(),
            skip: None,
            via: None,
            vantage: None,
            simulated: None,
        }
    }

    /// The mismatch list the way Chainsaw shows it: a header naming the object, one bullet
    /// per field; one such block per object when several differ. Empty when there are none.
    pub fn mismatch_block(&self) -> String {
        let mut lines: Vec<String> = Vec::new();
        let mut current: Option<&str> = None;
        for (i, mismatch) in self.evidence.mismatches.iter().enumerate() {
            let subject = mismatch
                .subject
                .as_deref()
                .or(self.evidence.subject.as_deref());
            if i == 0 || subject != current {
                lines.extend(subject.map(str::to_owned));
                current = subject;
            }
            lines.push(mismatch.to_string());
        }
        lines.join("\n")
    }

    /// The body of a failure: mismatches, expected, found, hint and measurements, one per line.
    pub fn details(&self) -> String {
        let mut lines = Vec::new();
        let block = self.mismatch_block();
        if !block.is_empty() {
            lines.push(block);
        }
        if let Some(expected) = &self.evidence.expected {
            lines.push(format!("expected: {expected}"));
        }
        if let Some(found) = &self.evidence.found {
            lines.push(format!("found:    {found}"));
        }
        if let Some(hint) = &self.evidence.hint {
            lines.push(format!("hint:     {hint}"));
        }
        if self.attempts > 1 {
            lines.push(format!("attempts: {}", self.attempts));
        }
        if !self.evidence.measurements.is_empty() {
            let values: Vec<String> = self
                .evidence
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
    /// The story document the suite names.
    pub story_file: Option<String>,
    /// The story's acceptance criteria (from its document, the suite's `criteria:`, or the
    /// `ACn` its checks cover).
    pub criteria: Vec<Criterion>,
    /// Every requirement and criterion ID → the ids of the suite's checks covering it,
    /// selected or not (a filtered-out check leaves its criterion not verified, not uncovered).
    pub coverage: BTreeMap<String, Vec<String>>,
    pub started_at: SystemTime,
    pub duration: Duration,
    pub outcomes: Vec<Outcome>,
    /// Cleanup steps that failed: something may be left behind.
    pub teardown_failures: Vec<String>,
}

/// The signal that stopped a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Interruption {
    /// Ctrl-C.
    Sigint,
    /// CI cancelling a job, `timeout`, `docker stop`, a Kubernetes Job being deleted.
    Sigterm,
    /// The terminal went away.
    Sighup,
}

impl Interruption {
    pub fn name(self) -> &'static str {
        match self {
            Interruption::Sigint => "SIGINT (Ctrl-C)",
            Interruption::Sigterm => "SIGTERM",
            Interruption::Sighup => "SIGHUP",
        }
    }
    /// 128 + the signal number, as shells report it.
    pub fn exit_code(self) -> u8 {
        match self {
            Interruption::Sigint => 130,
            Interruption::Sigterm => 143,
            Interruption::Sighup => 129,
        }
    }
}

/// How a run ended, computed once from the record; the exit code and every reporter use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalState {
    Success,
    /// Filters or paths matched no check: nothing was proven.
    NoChecksSelected,
    Failed,
    /// Nothing failed, but some selected checks were skipped and `--require-all` was given.
    Incomplete,
    Interrupted(Interruption),
    /// `--list` printed the checks.
    Listed,
}

/// Where and with what the run happened, captured by the runner (reporters read no system
/// state of their own).
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// Ordered facts: `host`, `os`, and what services add (Kubernetes context, server).
    pub facts: Vec<(String, String)>,
}

impl Environment {
    /// The machine attest runs on.
    pub fn capture() -> Environment {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "unknown".into());
        Environment {
            facts: vec![
                ("host".into(), host),
                (
                    "os".into(),
                    format!("{}/{}", std::env::consts::OS, std::env::consts::ARCH),
                ),
            ],
        }
    }
}

/// Everything the reporters need about one run.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub attest_version: &'static str,
    /// The id this run marks what it creates with (`attest cleanup` finds it by this id).
    pub run_id: String,
    /// What was checked: `sandbox`, or the label given with `--target`.
    pub target: String,
    pub started_at: SystemTime,
    pub finished_at: SystemTime,
    /// The signal that stopped the run early, if one did.
    pub interrupted: Option<Interruption>,
    pub environment: Environment,
    pub suites: Vec<SuiteRecord>,
    /// Checks a name filter (or `--skip`) left out; they are not in `suites`.
    pub not_selected: usize,
    /// `--require-all`: a selected check that was not verified fails the run.
    pub require_all: bool,
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

    /// Checks that were selected but skipped because a check they need was filtered out:
    /// they proved nothing, and the user asked for them.
    pub fn unproven_by_filter(&self) -> impl Iterator<Item = &Outcome> {
        self.outcomes()
            .filter(|o| o.skip == Some(SkipCause::PrerequisiteNotSelected))
    }

    /// The one verdict on the whole run. A selected check skipped because its `needs` were
    /// filtered out makes the run fail: a run that did not check what was asked is not green.
    pub fn final_state(&self) -> FinalState {
        let summary = self.summary();
        if let Some(signal) = self.interrupted {
            FinalState::Interrupted(signal)
        } else if summary.failed + summary.errors > 0
            || self.teardown_failures() > 0
            || self.unproven_by_filter().next().is_some()
        {
            FinalState::Failed
        } else if self.require_all && summary.skipped > 0 {
            FinalState::Incomplete
        } else {
            FinalState::Success
        }
    }

    /// The skipped checks grouped by why, most frequent first: what the run did not verify.
    pub fn not_verified(&self) -> Vec<(SkipCause, usize)> {
        let mut counts: BTreeMap<SkipCause, usize> = BTreeMap::new();
        for outcome in self.outcomes() {
            if outcome.status == Status::Skipped {
                let cause = outcome.skip.clone().unwrap_or(SkipCause::Ignored);
                *counts.entry(cause).or_default() += 1;
            }
        }
        let mut causes: Vec<(SkipCause, usize)> = counts.into_iter().collect();
        causes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        causes
    }

    /// The run's verdict in one line, never overstating: `PASSED 30 · NOT VERIFIED 16 (why)`.
    /// The console's last line and report.md's banner both use it.
    pub fn verdict_line(&self) -> String {
        let summary = self.summary();
        let problems = summary.failed + summary.errors;
        let head = match self.final_state() {
            FinalState::Interrupted(signal) => format!("INTERRUPTED by {}", signal.name()),
            FinalState::NoChecksSelected => "NOTHING CHECKED".to_owned(),
            FinalState::Failed if problems > 0 => {
                let mut parts = vec![format!("FAILED {}", summary.failed)];
                if summary.errors > 0 {
                    parts.push(format!("ERRORS {}", summary.errors));
                }
                parts.push(format!("passed {}", summary.passed));
                parts.join(" · ")
            }
            FinalState::Failed => {
                let why = match self.teardown_failures() {
                    0 => "a selected check needs one the filter left out".to_owned(),
                    n => format!("{n} teardown step(s) failed"),
                };
                format!("FAILED ({why}) · passed {}", summary.passed)
            }
            FinalState::Success | FinalState::Incomplete | FinalState::Listed => {
                format!("PASSED {}", summary.passed)
            }
        };
        let mut line = head;
        let not_verified = self.not_verified();
        if summary.skipped > 0 {
            let why: Vec<String> = not_verified
                .iter()
                .map(|(cause, n)| match not_verified.len() {
                    1 => cause.to_string(),
                    _ => format!("{n}: {cause}"),
                })
                .collect();
            line.push_str(&format!(
                " · NOT VERIFIED {} ({})",
                summary.skipped,
                why.join("; ")
            ));
        }
        if self.not_selected > 0 {
            line.push_str(&format!(
                " · {} not selected by the filter",
                self.not_selected
            ));
        }
        line
    }
}

/// RFC 3339 UTC timestamp, second precision.
pub fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// One acceptance criterion of a suite's story.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Criterion {
    /// `AC1`
    pub id: String,
    /// One line (the story's Then/And clauses, or the suite's text).
    pub title: String,
    /// The whole criterion.
    pub text: String,
    /// FR/NFR IDs the criterion names.
    pub requirements: Vec<String>,
    /// Why it is checked by hand (`manual:` in the suite).
    pub manual: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_differing_object_gets_its_own_block() {
        let mismatch = |subject: Option<&str>, path: &str| Mismatch {
            path: path.into(),
            expected: "Ready".into(),
            found: "NotReady".into(),
            subject: subject.map(str::to_owned),
        };
        let outcome = Outcome {
            evidence: Evidence {
                subject: Some("v1/Node a".into()),
                mismatches: vec![
                    mismatch(Some("v1/Node a"), "status.phase"),
                    mismatch(Some("v1/Node a"), "spec.x"),
                    mismatch(Some("v1/Node b"), "status.phase"),
                ],
                ..Evidence::default()
            },
            ..Outcome::for_tests("s", "c", Status::Failed)
        };
        assert_eq!(
            outcome.mismatch_block(),
            "v1/Node a\n* status.phase: expected Ready, found NotReady\n* spec.x: expected Ready, found NotReady\nv1/Node b\n* status.phase: expected Ready, found NotReady"
        );
        // Without their own subject, mismatches are the outcome's subject's.
        let mut single = outcome.clone();
        single.evidence.mismatches = vec![mismatch(None, "status.phase")];
        assert_eq!(
            single.mismatch_block(),
            "v1/Node a\n* status.phase: expected Ready, found NotReady"
        );
    }
}

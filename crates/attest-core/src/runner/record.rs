//! The run record: a consumer of the run's events that keeps each check's outcome and each
//! suite's end, and the outcomes themselves, built at the one point where text leaves a check
//! (everything redacted there).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use super::events::{CheckKey, Observer, RunEvent};
use crate::checks::Verdict;
use crate::load::{Suite, SuiteCheck};
use crate::outcome::{Evidence, Outcome, SkipCause, Status, SuiteRecord};
use crate::redact::Redactor;
use crate::text::display_markers;

/// Collects outcomes and suite ends as they are told.
pub(super) struct Recorder {
    suites: Vec<Arc<Suite>>,
    redactor: Redactor,
    state: Mutex<Vec<SoFar>>,
}

/// One suite, so far.
#[derive(Default)]
struct SoFar {
    /// (check index, outcome), in the order they finished.
    outcomes: Vec<(usize, Outcome)>,
    ended: Option<(SystemTime, Duration, Vec<String>)>,
}

impl Recorder {
    pub(super) fn new(suites: Vec<Arc<Suite>>, redactor: Redactor) -> Recorder {
        let state = suites.iter().map(|_| SoFar::default()).collect();
        Recorder {
            suites,
            redactor,
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<SoFar>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether check `key` has its outcome.
    pub(super) fn has(&self, key: CheckKey) -> bool {
        self.lock()[key.suite]
            .outcomes
            .iter()
            .any(|(check, _)| *check == key.check)
    }

    /// The record of every suite that ended, in the suites' order.
    pub(super) fn records(&self) -> Vec<SuiteRecord> {
        let mut state = self.lock();
        self.suites
            .iter()
            .zip(state.iter_mut())
            .filter_map(|(suite, so_far)| {
                let (started_at, duration, failures) = so_far.ended.take()?;
                let outcomes = std::mem::take(&mut so_far.outcomes)
                    .into_iter()
                    .map(|(_, outcome)| outcome)
                    .collect();
                Some(suite_record(
                    suite,
                    started_at,
                    duration,
                    outcomes,
                    failures,
                    &self.redactor,
                ))
            })
            .collect()
    }
}

impl Observer for Recorder {
    fn on(&self, event: &RunEvent) {
        match event {
            RunEvent::CheckFinished { key, outcome } => self.lock()[key.suite]
                .outcomes
                .push((key.check, (*outcome).clone())),
            RunEvent::SuiteFinished {
                suite,
                started_at,
                duration,
                teardown_failures,
            } => {
                self.lock()[*suite].ended =
                    Some((*started_at, *duration, teardown_failures.to_vec()))
            }
            _ => {}
        }
    }
}

fn suite_record(
    suite: &Suite,
    started_at: SystemTime,
    duration: Duration,
    outcomes: Vec<Outcome>,
    teardown_failures: Vec<String>,
    redactor: &Redactor,
) -> SuiteRecord {
    SuiteRecord {
        id: redactor.redact(&suite.id),
        title: redactor.redact(&suite.title),
        story: suite.story.as_deref().map(|s| redactor.redact(s)),
        path: suite.path.display().to_string(),
        requirements: suite
            .requirements
            .iter()
            .map(|(id, text)| (redactor.redact(id), redactor.redact(text)))
            .collect(),
        story_file: suite.story_file.as_deref().map(|f| redactor.redact(f)),
        criteria: suite
            .criteria
            .iter()
            .map(|c| crate::load::Criterion {
                id: redactor.redact(&c.id),
                title: redactor.redact(&c.title),
                text: redactor.redact(&c.text),
                requirements: c.requirements.iter().map(|r| redactor.redact(r)).collect(),
                manual: c.manual.as_deref().map(|m| redactor.redact(m)),
            })
            .collect(),
        coverage: {
            let mut coverage: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for check in &suite.checks {
                for id in check.requirements.iter().chain(&check.acceptance) {
                    coverage
                        .entry(redactor.redact(id))
                        .or_default()
                        .push(redactor.redact(&check.decl.id));
                }
            }
            coverage
        },
        started_at,
        duration,
        outcomes,
        teardown_failures,
    }
}

/// An outcome with everything the suite says about the check, redacted: metadata can carry
/// secrets too (a title or an `ignore` reason written with a secret variable).
pub(super) fn base_outcome(
    suite: &Suite,
    check: &SuiteCheck,
    status: Status,
    message: String,
    redactor: &Redactor,
) -> Outcome {
    let redact_all = |items: &[String]| items.iter().map(|i| redactor.redact(i)).collect();
    Outcome {
        suite: redactor.redact(&suite.id),
        check: redactor.redact(&check.decl.id),
        title: redactor.redact(&check.decl.title),
        kind: check.decl.kind,
        status,
        requirements: redact_all(&check.requirements),
        story: suite.story.as_deref().map(|s| redactor.redact(s)),
        acceptance: redact_all(&check.acceptance),
        target: redactor.redact(&display_markers(&check.decl.check.target())),
        location: check.location.clone(),
        duration: Duration::ZERO,
        attempts: 0,
        message: redactor.redact(&message),
        evidence: Evidence::default(),
        skip: None,
        via: check.via.as_deref().map(|v| redactor.redact(v)),
        vantage: None,
        simulated: None,
    }
}

pub(super) fn skipped(
    suite: &Suite,
    check: &SuiteCheck,
    reason: String,
    cause: SkipCause,
    redactor: &Redactor,
) -> Outcome {
    let mut outcome = base_outcome(suite, check, Status::Skipped, reason, redactor);
    outcome.skip = Some(cause);
    outcome
}

/// The point where text leaves a check: everything is redacted here.
pub(super) fn finished(
    suite: &Suite,
    check: &SuiteCheck,
    verdict: Verdict,
    attempts: u32,
    duration: Duration,
    redactor: &Redactor,
) -> Outcome {
    let mut outcome = base_outcome(suite, check, verdict.status, verdict.summary, redactor);
    outcome.duration = duration;
    outcome.attempts = attempts;
    outcome.evidence = redacted(verdict.evidence, redactor);
    outcome
}

/// Evidence as it may leave a check: every text in it redacted (measurements are numbers).
fn redacted(evidence: Evidence, redactor: &Redactor) -> Evidence {
    Evidence {
        expected: redactor.redact_opt(evidence.expected),
        found: redactor.redact_opt(evidence.found),
        hint: redactor.redact_opt(evidence.hint),
        subject: redactor.redact_opt(evidence.subject),
        mismatches: evidence
            .mismatches
            .into_iter()
            .map(|mut m| {
                m.path = redactor.redact(&m.path);
                m.expected = redactor.redact(&m.expected);
                m.found = redactor.redact(&m.found);
                m.subject = redactor.redact_opt(m.subject);
                m
            })
            .collect(),
        measurements: evidence.measurements,
    }
}

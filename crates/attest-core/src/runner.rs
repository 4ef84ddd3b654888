//! Plan and execution: selects checks with libtest's flags, runs each suite's checks in order
//! (suites concurrently) on the tokio runtime, and records one [`Outcome`] per selected check.
//!
//! libtest-mimic owns the console: each trial only waits for its check's outcome from the
//! executor, so no trial thread ever waits on another trial.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::checks::Verdict;
use crate::context::{CheckContext, RuntimeVars, Services, TeardownStack};
use crate::load::{Suite, SuiteCheck};
use crate::outcome::{Outcome, RunRecord, Status, SuiteRecord};
use crate::redact::Redactor;
use crate::suite::{format_duration, Safety};

/// How long one teardown step may take before it is reported as failed.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(60);

pub struct RunConfig {
    /// The most disruptive class the user allowed.
    pub allow: Safety,
    /// Label for reports: `sandbox`, or what `--target` says.
    pub target: String,
    pub libtest: Arguments,
    /// Network, PostgreSQL sessions and the Kubernetes client the checks use.
    pub services: Services,
}

/// How a run ended, before it becomes an exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalState {
    Success,
    /// Filters or paths matched no check: nothing was proven.
    NoChecksSelected,
    Failed,
    Interrupted,
    /// `--list` printed the checks.
    Listed,
}

pub struct RunResult {
    pub record: RunRecord,
    pub state: FinalState,
}

/// The trial name of a check, as `--list`, filters and `--exact` see it.
pub fn trial_name(suite: &Suite, check: &SuiteCheck) -> String {
    format!("{}::{}", suite.id, check.decl.id)
}

fn probe_trial(suite: &Suite, check: &SuiteCheck) -> Trial {
    Trial::test(trial_name(suite, check), || Ok(()))
        .with_kind(check.decl.kind)
        .with_ignored_flag(check.decl.ignore.is_some())
}

/// What the plan says about one check.
enum Slot {
    FilteredOut,
    Ignored,
    Run(Option<oneshot::Sender<Outcome>>),
}

pub fn run(
    suites: Vec<Suite>,
    config: RunConfig,
    redactor: Redactor,
    runtime: &Runtime,
) -> RunResult {
    let started_at = SystemTime::now();
    let args = &config.libtest;

    if args.list {
        let trials = suites
            .iter()
            .flat_map(|s| s.checks.iter().map(move |c| probe_trial(s, c)))
            .collect();
        let _ = libtest_mimic::run(args, trials);
        return RunResult {
            record: empty_record(&config, started_at, false),
            state: FinalState::Listed,
        };
    }

    // Plan: which checks run, and the trial that reports each.
    let mut trials = Vec::new();
    let mut plans: Vec<Vec<Slot>> = Vec::new();
    for suite in &suites {
        let mut slots = Vec::new();
        for check in &suite.checks {
            let probe = probe_trial(suite, check);
            if args.is_filtered_out(&probe) {
                // libtest-mimic filters it again itself, and counts it as filtered out.
                trials.push(probe);
                slots.push(Slot::FilteredOut);
            } else if args.is_ignored(&probe) {
                trials.push(probe);
                slots.push(Slot::Ignored);
            } else {
                let (tx, rx) = oneshot::channel();
                trials.push(reporting_trial(suite, check, rx));
                slots.push(Slot::Run(Some(tx)));
            }
        }
        plans.push(slots);
    }
    let selected = plans
        .iter()
        .flatten()
        .filter(|s| !matches!(s, Slot::FilteredOut))
        .count();
    if selected == 0 {
        return RunResult {
            record: empty_record(&config, started_at, false),
            state: FinalState::NoChecksSelected,
        };
    }

    let cancel = CancellationToken::new();
    let services = config.services.clone();
    let interrupt_watch = runtime.spawn(watch_interrupt(cancel.clone()));
    let handles: Vec<_> = suites
        .into_iter()
        .zip(plans)
        .filter(|(_, slots)| slots.iter().any(|s| !matches!(s, Slot::FilteredOut)))
        .map(|(suite, slots)| {
            runtime.spawn(run_suite(
                suite,
                slots,
                config.allow,
                cancel.clone(),
                redactor.clone(),
                services.clone(),
            ))
        })
        .collect();

    // Counts come back, but our own outcome records are what reports and the exit code use.
    let _ = libtest_mimic::run(args, trials);

    let (suites, crashed) = runtime.block_on(async {
        let mut records: Vec<SuiteRecord> = Vec::new();
        let mut crashed = 0;
        for handle in handles {
            match handle.await {
                Ok(record) => records.push(record),
                Err(e) => {
                    // A bug in attest, not in the environment: never let it pass as success.
                    eprintln!(
                        "attest: internal error: a suite stopped early ({e}); its teardown may not have run"
                    );
                    crashed += 1;
                }
            }
        }
        (records, crashed)
    });
    interrupt_watch.abort();

    let interrupted = cancel.is_cancelled();
    let mut record = empty_record(&config, started_at, interrupted);
    record.suites = suites;
    record.finished_at = SystemTime::now();
    let summary = record.summary();
    let state = if interrupted {
        FinalState::Interrupted
    } else if summary.failed + summary.errors > 0 || record.teardown_failures() > 0 || crashed > 0 {
        FinalState::Failed
    } else {
        FinalState::Success
    };
    RunResult { record, state }
}

fn empty_record(config: &RunConfig, started_at: SystemTime, interrupted: bool) -> RunRecord {
    RunRecord {
        attest_version: env!("CARGO_PKG_VERSION"),
        target: config.target.clone(),
        started_at,
        finished_at: SystemTime::now(),
        interrupted,
        suites: Vec::new(),
    }
}

/// First Ctrl-C: stop starting checks, cancel running ones, run teardown. Second: leave now.
async fn watch_interrupt(cancel: CancellationToken) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    eprintln!("\nattest: interrupted; running teardown (press Ctrl-C again to exit at once)");
    cancel.cancel();
    if tokio::signal::ctrl_c().await.is_ok() {
        eprintln!("attest: exiting without teardown; resources may be left behind");
        std::process::exit(130);
    }
}

fn reporting_trial(suite: &Suite, check: &SuiteCheck, rx: oneshot::Receiver<Outcome>) -> Trial {
    Trial::ignorable_test(trial_name(suite, check), move || match rx.blocking_recv() {
        Ok(outcome) => match outcome.status {
            Status::Passed => Ok(Completion::Completed),
            Status::Skipped => Ok(Completion::ignored_with(outcome.message)),
            Status::Failed => Err(Failed::from(format!(
                "{}\n{}",
                outcome.message,
                outcome.details()
            ))),
            Status::Error => Err(Failed::from(format!(
                "error: {}\n{}",
                outcome.message,
                outcome.details()
            ))),
        },
        Err(_) => Err(Failed::from(
            "internal error: the check ended without an outcome",
        )),
    })
    .with_kind(check.decl.kind)
    // So that `--ignored` lists and counts the checks it runs.
    .with_ignored_flag(check.decl.ignore.is_some())
}

async fn run_suite(
    suite: Suite,
    slots: Vec<Slot>,
    allow: Safety,
    cancel: CancellationToken,
    redactor: Redactor,
    services: Services,
) -> SuiteRecord {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let vars = Arc::new(RuntimeVars::default());
    let teardown = Arc::new(TeardownStack::default());
    let mut statuses: HashMap<&str, Option<Status>> = HashMap::new();
    let mut outcomes = Vec::new();

    for (check, slot) in suite.checks.iter().zip(slots) {
        let sender = match slot {
            Slot::FilteredOut => {
                statuses.insert(&check.decl.id, None);
                continue;
            }
            Slot::Ignored => None,
            Slot::Run(sender) => sender,
        };
        let skip_reason = if cancel.is_cancelled() {
            Some("not started: the run was interrupted".to_owned())
        } else if let Some(reason) = check.decl.ignore.as_ref().filter(|_| sender.is_none()) {
            Some(format!("ignored: {reason} (run with --include-ignored)"))
        } else if check.safety > allow {
            Some(format!(
                "{} check: runs only with {}",
                check.safety.as_str(),
                check.safety.opt_in_flag()
            ))
        } else {
            unmet_need(check, &statuses)
        };

        let outcome = match skip_reason {
            Some(reason) => skipped(&suite, check, reason, &redactor),
            None => {
                let ctx = CheckContext {
                    suite_id: suite.id.clone(),
                    check_id: check.decl.id.clone(),
                    vars: vars.clone(),
                    teardown: teardown.clone(),
                    cancel: cancel.clone(),
                    redactor: redactor.clone(),
                    services: services.clone(),
                };
                let started = Instant::now();
                let (verdict, attempts) = tokio::select! {
                    result = execute(check, &ctx) => result,
                    _ = cancel.cancelled() => (
                        Verdict::error("interrupted while running (Ctrl-C); teardown still runs"),
                        1,
                    ),
                };
                register_exports(check, &verdict, &vars, &redactor);
                finished(
                    &suite,
                    check,
                    verdict,
                    attempts,
                    started.elapsed(),
                    &redactor,
                )
            }
        };
        statuses.insert(&check.decl.id, Some(outcome.status));
        if let Some(sender) = sender {
            let _ = sender.send(outcome.clone());
        }
        outcomes.push(outcome);
    }

    let mut teardown_failures = Vec::new();
    for step in teardown.drain() {
        let failure = match tokio::time::timeout(TEARDOWN_TIMEOUT, step.action).await {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => format!("{}: {e}", step.label),
            Err(_) => format!(
                "{}: did not finish within {}s",
                step.label,
                TEARDOWN_TIMEOUT.as_secs()
            ),
        };
        teardown_failures.push(redactor.redact(&failure));
    }

    SuiteRecord {
        id: suite.id.clone(),
        title: suite.title.clone(),
        story: suite.story.clone(),
        path: suite.path.display().to_string(),
        requirements: suite.requirements.clone(),
        started_at,
        duration: clock.elapsed(),
        outcomes,
        teardown_failures,
    }
}

/// The first prerequisite that did not pass, as a skip reason.
fn unmet_need(check: &SuiteCheck, statuses: &HashMap<&str, Option<Status>>) -> Option<String> {
    check.decl.needs.iter().find_map(|need| {
        let why = match statuses.get(need.as_str()) {
            Some(Some(Status::Passed)) => return None,
            Some(Some(status)) => format!("was {}", status.as_str()),
            Some(None) | None => "was not selected".to_owned(),
        };
        Some(format!("needs `{need}`, which {why}"))
    })
}

/// Runs a check within its timeout, polling when it has `retry`; returns the last verdict.
async fn execute(check: &SuiteCheck, ctx: &CheckContext) -> (Verdict, u32) {
    let decl = &check.decl;
    let deadline = Instant::now() + decl.timeout;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let verdict = match tokio::time::timeout(remaining, decl.check.run(ctx)).await {
            Ok(verdict) => verdict,
            Err(_) => Verdict::fail(format!(
                "did not finish within its timeout of {}",
                format_duration(decl.timeout)
            ))
            .hint("raise `timeout:` on the check if the environment is just slow"),
        };
        let Some(retry) = &decl.retry else {
            return (verdict, attempts);
        };
        let out_of_attempts = retry.attempts.is_some_and(|max| attempts >= max);
        let next_try = Instant::now() + retry.interval.0;
        if verdict.status != Status::Failed || out_of_attempts || next_try >= deadline {
            return (verdict, attempts);
        }
        tokio::time::sleep(retry.interval.0).await;
    }
}

fn register_exports(
    check: &SuiteCheck,
    verdict: &Verdict,
    vars: &RuntimeVars,
    redactor: &Redactor,
) {
    if !verdict.passed() {
        return;
    }
    for (name, key, secret) in &check.exports {
        if let Some((_, value)) = verdict.exports.iter().find(|(k, _)| k == key) {
            if *secret {
                redactor.add(value);
            }
            vars.set(name.clone(), value.clone());
        }
    }
}

fn base_outcome(suite: &Suite, check: &SuiteCheck, status: Status, message: String) -> Outcome {
    Outcome {
        suite: suite.id.clone(),
        check: check.decl.id.clone(),
        title: check.decl.title.clone(),
        kind: check.decl.kind,
        status,
        requirements: check.requirements.clone(),
        story: suite.story.clone(),
        acceptance: check.acceptance.clone(),
        target: check.decl.check.target(),
        location: check.location.clone(),
        duration: Duration::ZERO,
        attempts: 0,
        message,
        expected: None,
        found: None,
        hint: None,
        measurements: Default::default(),
    }
}

fn skipped(suite: &Suite, check: &SuiteCheck, reason: String, redactor: &Redactor) -> Outcome {
    let mut outcome = base_outcome(suite, check, Status::Skipped, reason);
    outcome.target = redactor.redact(&outcome.target);
    outcome
}

/// The point where text leaves a check: everything is redacted here.
fn finished(
    suite: &Suite,
    check: &SuiteCheck,
    verdict: Verdict,
    attempts: u32,
    duration: Duration,
    redactor: &Redactor,
) -> Outcome {
    let mut outcome = base_outcome(
        suite,
        check,
        verdict.status,
        redactor.redact(&verdict.summary),
    );
    outcome.target = redactor.redact(&outcome.target);
    outcome.duration = duration;
    outcome.attempts = attempts;
    outcome.expected = redactor.redact_opt(verdict.expected);
    outcome.found = redactor.redact_opt(verdict.found);
    outcome.hint = redactor.redact_opt(verdict.hint);
    outcome.measurements = verdict.measurements;
    outcome
}

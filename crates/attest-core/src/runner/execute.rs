//! Executing one check (its attempts, within its timeout) and a suite's teardown.

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use futures::FutureExt;

use super::{StopSignals, HURRIED_TEARDOWN, TEARDOWN_TIMEOUT};
use crate::checks::Verdict;
use crate::context::{CheckContext, RuntimeVars, TeardownStack};
use crate::duration::format_duration;
use crate::load::SuiteCheck;
use crate::outcome::Status;
use crate::redact::Redactor;

/// Runs the registered undo steps, last first, each bounded; a second signal shortens them.
pub(super) async fn run_teardown(
    teardown: &TeardownStack,
    stop: &StopSignals,
    redactor: &Redactor,
) -> Vec<String> {
    let mut failures = Vec::new();
    for step in teardown.drain() {
        let mut action = AssertUnwindSafe(step.action).catch_unwind();
        let limit = if stop.hurry.is_cancelled() {
            HURRIED_TEARDOWN
        } else {
            TEARDOWN_TIMEOUT
        };
        let result = tokio::select! {
            result = tokio::time::timeout(limit, &mut action) => result.ok(),
            _ = stop.hurry.cancelled(), if limit == TEARDOWN_TIMEOUT => {
                tokio::time::timeout(HURRIED_TEARDOWN, &mut action).await.ok()
            }
        };
        let failure = match result {
            Some(Ok(Ok(()))) => continue,
            Some(Ok(Err(e))) => format!("{}: {e}", step.label),
            Some(Err(panic)) => format!("{}: attest bug: {}", step.label, panic_text(&panic)),
            None => format!(
                "{}: did not finish in time; it may be left behind",
                step.label
            ),
        };
        failures.push(redactor.redact(&failure));
    }
    failures
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    let text = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    format!("the check panicked: {text}")
}

/// Runs a check within its timeout, polling when it has `retry`. Each attempt gets its own
/// budget inside the check's; when the check gives up, the verdict is the last completed
/// observation, saying how many attempts it took.
pub(super) async fn execute(
    check: &SuiteCheck,
    ctx: &CheckContext,
    observed: impl Fn(u32, &str),
) -> (Verdict, u32) {
    let decl = &check.decl;
    let started = Instant::now();
    // A timeout too large for the clock means "no deadline", never a panic.
    let deadline = started
        .checked_add(decl.timeout)
        .unwrap_or(started + Duration::from_secs(100 * 365 * 24 * 3600));
    let mut attempts = 0;
    let mut last: Option<Verdict> = None;
    loop {
        attempts += 1;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let budget = decl
            .retry
            .as_ref()
            .and_then(|r| r.attempt_timeout)
            .map_or(remaining, |limit| limit.0.min(remaining));
        let attempt = AssertUnwindSafe(decl.check.run(ctx)).catch_unwind();
        let verdict = match tokio::time::timeout(budget, attempt).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(panic)) => {
                let verdict = Verdict::error(format!("attest bug: {}", panic_text(&panic))).hint(
                    "please report this; the suite's other checks and its teardown still ran",
                );
                return (verdict, attempts);
            }
            Err(_) if budget < remaining => Verdict::fail(format!(
                "attempt {attempts} did not finish within {}",
                format_duration(budget)
            ))
            .hint("raise `retry.attempt_timeout` if one observation is just slow"),
            Err(_) => {
                let timed_out = Verdict::fail(format!(
                    "did not finish within its timeout of {}",
                    format_duration(decl.timeout)
                ))
                .hint("raise `timeout:` on the check if the environment is just slow");
                let verdict = match last {
                    Some(last) => {
                        gave_up(last, attempts - 1, started.elapsed(), &timed_out.summary)
                    }
                    None => timed_out,
                };
                return (verdict, attempts);
            }
        };
        observed(attempts, &ctx.redactor.redact(&verdict.summary));
        let Some(retry) = &decl.retry else {
            return (verdict, attempts);
        };
        let out_of_attempts = retry.attempts.is_some_and(|max| attempts >= max);
        let next_try = Instant::now() + retry.interval.0;
        if verdict.status != Status::Failed {
            return (verdict, attempts);
        }
        if out_of_attempts || next_try >= deadline {
            let reason = if out_of_attempts {
                "no attempts left"
            } else {
                "no time left for another attempt"
            };
            let verdict = if attempts > 1 {
                gave_up(verdict, attempts, started.elapsed(), reason)
            } else {
                verdict
            };
            return (verdict, attempts);
        }
        last = Some(verdict);
        tokio::time::sleep(retry.interval.0).await;
    }
}

/// The last observation of a polling check that gave up, told as such.
pub(super) fn gave_up(mut last: Verdict, attempts: u32, elapsed: Duration, why: &str) -> Verdict {
    last.summary = format!(
        "gave up after {attempts} attempt{} in {} ({why}); last: {}",
        if attempts == 1 { "" } else { "s" },
        format_duration(elapsed),
        last.summary
    );
    if last.status == Status::Passed {
        last.status = Status::Failed;
    }
    last
}

pub(super) fn register_exports(
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

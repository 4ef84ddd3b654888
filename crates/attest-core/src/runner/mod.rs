//! Execution of a [`Plan`]: runs each suite's checks in order (suites concurrently) on the
//! tokio runtime and tells what happens as [`RunEvent`]s; the console, the progress lines and
//! the run record are their consumers. The runner prints nothing itself.
//!
//! libtest-mimic owns the console: each trial only waits for its check's outcome, so no trial
//! thread ever waits on another trial. Whatever happens to the console (a closed pipe), a check
//! (a panic) or the process (signals, see [`StopSignals`]), every suite's teardown runs and the
//! record comes back for the reports.

mod events;
mod execute;
mod plan;
mod preflight;
mod record;
mod signals;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use libtest_mimic::{Arguments, Completion, Failed, Trial};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;

pub use self::events::{CheckKey, Observer, Observers, RunEvent};
use self::execute::{execute, register_exports, run_teardown};
pub use self::plan::{trial_name, Decision, Plan, Planned, Selection};
use self::record::{base_outcome, finished, skipped, Recorder};
pub use self::signals::StopSignals;
use crate::checks::Verdict;
use crate::context::{Ahead, CheckContext, RuntimeVars, Services, TeardownStack};
use crate::k8s::preflight::Denial;
use crate::k8s::ClusterInfo;
use crate::load::{Suite, SuiteCheck};
pub use crate::outcome::FinalState;
use crate::outcome::{Environment, Interruption, Outcome, RunRecord, SkipCause, Status};
use crate::progress::Progress;
use crate::redact::Redactor;
use crate::safety::Safety;
use crate::vantage::Place;

/// How long one teardown step may take before it is reported as failed (a DROP DATABASE WITH
/// (FORCE) of a large copy takes seconds; a server that does not answer must not hold the run).
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the RBAC preflight may take in all.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(20);
/// After a second signal: how long each remaining teardown step still gets.
const HURRIED_TEARDOWN: Duration = Duration::from_secs(5);

pub struct RunConfig {
    /// The most disruptive class the user allowed.
    pub allow: Safety,
    /// Label for reports: `sandbox`, or what `--target` says.
    pub target: String,
    /// The name filters, and libtest's console options (format, threads, `--list`).
    pub libtest: Arguments,
    /// Who hears the run's events besides the console, the progress lines and the record
    /// (the CLI prints notices).
    pub observers: Observers,
    /// Network, PostgreSQL sessions and the Kubernetes client the checks use.
    pub services: Services,
    /// Signals that stop the run (installed by the caller, as early as possible).
    pub stop: Arc<StopSignals>,
    /// Live progress lines on stderr for checks that run long (a terminal, not `--format json`).
    pub progress: bool,
    /// `--require-all`: a selected check that was skipped fails the run ([`FinalState::Incomplete`]).
    pub require_all: bool,
    /// Where the run happens and what it knows of its environment.
    pub site: Arc<Site>,
}

/// Where a run happens, and what it knows of its environment that the suites cannot say.
#[derive(Debug, Clone)]
pub struct Site {
    /// Where this process runs: a check with `from:` is judged against it.
    pub place: Place,
    /// Checks this environment cannot verify (`suite::check`, why): skipped with that reason,
    /// never run. The sandbox names criteria its stand-ins do not meet (an NFS volume where
    /// the volume is a host folder), so they are reported as not verified, not passed.
    pub unverifiable: Vec<(String, String)>,
    /// Checks that run against a stand-in (`suite::check`, or `[kind]` for every check of a
    /// kind; what stands in for what): they run, and every report labels their result
    /// simulated.
    pub simulated: Vec<(String, String)>,
}

impl Site {
    /// This process's place; nothing unverifiable or simulated.
    pub fn here() -> Site {
        Site {
            place: Place::capture(),
            unverifiable: Vec::new(),
            simulated: Vec::new(),
        }
    }

    fn unverifiable(&self, name: &str) -> Option<&str> {
        lookup(&self.unverifiable, name)
    }

    /// What the run knows of where a finished check was measured: its `from:` judged
    /// against this place, and whether it met a stand-in.
    fn annotate(&self, name: &str, check: &SuiteCheck, outcome: &mut Outcome, redactor: &Redactor) {
        // Only what was measured: not a skip, nor an error before the check ran (a missing
        // permission, a variable with no value).
        if outcome.status == Status::Skipped || outcome.attempts == 0 {
            return;
        }
        if let Some(wanted) = &check.decl.from {
            outcome.vantage = Some(
                self.place
                    .judge(wanted, check.via.as_deref())
                    .redacted(redactor),
            );
        }
        let kind = format!("[{}]", check.decl.kind);
        outcome.simulated = lookup(&self.simulated, name)
            .or_else(|| lookup(&self.simulated, &kind))
            .map(|why| redactor.redact(why));
    }
}

fn lookup<'a>(list: &'a [(String, String)], name: &str) -> Option<&'a str> {
    list.iter()
        .find(|(id, _)| id == name)
        .map(|(_, why)| why.as_str())
}

pub struct RunResult {
    pub record: RunRecord,
    pub state: FinalState,
}

/// Runs libtest-mimic's console; a panic inside it (stdout closed under `| head`) must not
/// stop the run: the checks, their teardown and the reports go on without a console.
fn console(args: &Arguments, trials: Vec<Trial>, events: &Observers) {
    let printed = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let _ = libtest_mimic::run(args, trials);
    }));
    if printed.is_err() {
        events.emit(RunEvent::Notice(
            "attest: the console went away (closed pipe?); the run goes on and writes its reports",
        ));
    }
}

/// The console as a consumer of events: each running check's trial waits for its outcome.
#[derive(Default)]
struct ConsoleFeed {
    waiting: Mutex<HashMap<CheckKey, oneshot::Sender<Result<Completion, Failed>>>>,
}

impl ConsoleFeed {
    /// The trial of check `key`, which the console shows as it runs; `None` when the console
    /// reports the check by itself (filtered out, ignored).
    fn trial(
        &self,
        key: CheckKey,
        check: &SuiteCheck,
        planned: &Planned,
        progress: &Progress,
    ) -> Trial {
        let ignored = check.decl.ignore.is_some();
        if planned.decision != Decision::Run {
            return plan::probe(planned.name.clone(), check.decl.kind, ignored);
        }
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, tx);
        let (progress, kind, shown) = (progress.clone(), check.decl.kind, planned.name.clone());
        Trial::ignorable_test(planned.name.clone(), move || {
            // The console has just written this check's line and leaves it open until we return.
            let _line_open = progress.console_waits_for(kind, &shown);
            rx.blocking_recv().unwrap_or_else(|_| {
                Err(Failed::from(
                    "internal error: the check ended without an outcome",
                ))
            })
        })
        .with_kind(check.decl.kind)
        // So that `--ignored` lists and counts the checks it runs.
        .with_ignored_flag(ignored)
    }
}

impl Observer for ConsoleFeed {
    fn on(&self, event: &RunEvent) {
        if let RunEvent::CheckFinished { key, outcome } = event {
            let sender = self
                .waiting
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(key);
            if let Some(sender) = sender {
                let _ = sender.send(reported(outcome));
            }
        }
    }
}

pub fn run(
    suites: Vec<Suite>,
    config: RunConfig,
    redactor: Redactor,
    runtime: &Runtime,
) -> RunResult {
    let started_at = SystemTime::now();
    let args = &config.libtest;
    config.stop.arm();
    let selection = Selection::new(args.clone());
    let plan = Plan::new(
        &suites,
        &selection,
        config.allow,
        |suite| {
            let access = config
                .services
                .for_context(suite.kube_context.as_deref())
                .kube;
            access.unavailable_reason().is_none()
        },
        &redactor,
    );

    if args.list {
        console(args, plan.trials(&suites), &config.observers);
        return RunResult {
            record: empty_record(&config, started_at, &redactor),
            state: FinalState::Listed,
        };
    }
    let not_selected = plan.not_selected();
    if plan.selected() == 0 {
        return RunResult {
            record: empty_record(&config, started_at, &redactor),
            state: FinalState::NoChecksSelected,
        };
    }

    let progress = Progress::new(config.progress);
    let feed = Arc::new(ConsoleFeed::default());
    let trials: Vec<Trial> = suites
        .iter()
        .zip(&plan.suites)
        .enumerate()
        .flat_map(|(s, (suite, planned))| {
            let (feed, progress) = (&feed, &progress);
            suite
                .checks
                .iter()
                .zip(planned)
                .enumerate()
                .map(move |(c, (check, planned))| {
                    feed.trial(CheckKey { suite: s, check: c }, check, planned, progress)
                })
        })
        .collect();
    let suites: Vec<Arc<Suite>> = suites.into_iter().map(Arc::new).collect();
    let recorder = Arc::new(Recorder::new(suites.clone(), redactor.clone()));
    let events = config
        .observers
        .clone()
        .with(Arc::new(progress.clone()))
        .with(recorder.clone())
        .with(feed);

    let denials = preflight::preflight(&suites, &plan, &config, &events, runtime);
    let run_id: Arc<str> = crate::cleanup::new_run_id().into();
    let ticker = config
        .progress
        .then(|| runtime.spawn(progress.clone().tick(config.stop.cancel.clone())));
    let exclusive = Exclusive::default();
    let destructive =
        suites.iter().zip(&plan.suites).any(|(suite, planned)| {
            suite.checks.iter().zip(planned).any(|(check, p)| {
                p.decision == Decision::Run && check.safety == Safety::Destructive
            })
        });
    let running: Vec<_> = suites
        .iter()
        .zip(plan.suites)
        .zip(denials)
        .enumerate()
        .filter(|(_, ((_, planned), _))| {
            planned.iter().any(|p| p.decision != Decision::NotSelected)
        })
        .map(|(index, ((suite, planned), denials))| {
            let decisions: Vec<Decision> = planned.iter().map(|p| p.decision).collect();
            let handle = runtime.spawn(run_suite(
                index,
                suite.clone(),
                decisions.clone(),
                SuiteEnv {
                    run_id: run_id.clone(),
                    allow: config.allow,
                    stop: config.stop.clone(),
                    redactor: redactor.clone(),
                    services: config.services.for_context(suite.kube_context.as_deref()),
                    events: events.clone(),
                    denials,
                    site: config.site.clone(),
                    exclusive: exclusive.clone(),
                    ahead: !destructive,
                },
            ));
            (index, decisions, handle)
        })
        .collect();

    // Counts come back, but our own outcome records are what reports and the exit code use.
    progress.follow_console(args, &trials);
    console(args, trials, &events);

    runtime.block_on(async {
        for (index, decisions, handle) in running {
            if let Err(e) = handle.await {
                // A bug in attest, not in the environment: its checks become errors, never a pass.
                crashed_suite(
                    index,
                    &suites[index],
                    &decisions,
                    &e.to_string(),
                    &recorder,
                    &events,
                    &redactor,
                );
            }
        }
        // Queries cancelled at a timeout or Ctrl-C are stopped, and sessions logged out,
        // before attest exits.
        config.services.sessions.close().await;
    });
    if let Some(ticker) = ticker {
        ticker.abort();
    }

    let mut record = empty_record(&config, started_at, &redactor);
    record.interrupted = config.stop.interruption();
    record.suites = recorder.records();
    record.run_id = run_id.to_string();
    record.not_selected = not_selected;
    record.finished_at = SystemTime::now();
    let state = record.final_state();
    RunResult { record, state }
}

/// The checks whose queries are sent ahead, pipelined (see [`crate::pg::Pipeline`]): runs of
/// two or more consecutive checks that nothing before them can keep from running (selected,
/// no `needs`, no preflight denial, nothing unverifiable or missing; only an interruption,
/// which stops the pipeline), read-only, not polling (`retry` observes afresh each time),
/// whose kind knows its query before it runs, on one connection. Their answers do not depend
/// on when they were asked within the run: the server runs them in order on one session, as
/// it would one after another.
fn queries_ahead(suite: &Suite, decisions: &[Decision], env: &SuiteEnv) -> Vec<Option<Ahead>> {
    let mut aheads = vec![None; suite.checks.len()];
    let eligible = |c: usize| {
        let check = &suite.checks[c];
        let decl = &check.decl;
        let name = format!("{}::{}", suite.id, decl.id);
        let runs = decisions[c] == Decision::Run
            && decl.needs.is_empty()
            && decl.retry.is_none()
            && check.safety == Safety::ReadOnly
            && check.unavailable.is_none()
            && env.denials.get(c).is_none_or(Option::is_none)
            && env.site.unverifiable(&name).is_none();
        runs.then(|| decl.check.query_ahead()).flatten()
    };
    let mut c = 0;
    while c < suite.checks.len() {
        let Some(first) = eligible(c) else {
            c += 1;
            continue;
        };
        let mut queries = vec![first.query.to_owned()];
        let mut end = c + 1;
        while let Some(next) = (end < suite.checks.len()).then(|| eligible(end)).flatten() {
            if next.connection != first.connection {
                break;
            }
            queries.push(next.query.to_owned());
            end += 1;
        }
        if queries.len() > 1 {
            let pipeline = crate::pg::Pipeline::new(queries);
            for (position, slot) in aheads[c..end].iter_mut().enumerate() {
                *slot = Some(Ahead {
                    pipeline: pipeline.clone(),
                    position,
                });
            }
        }
        c = end;
    }
    aheads
}

/// A suite whose task died: each selected check without an outcome becomes an `error`, so
/// nothing it would have checked can pass by omission.
fn crashed_suite(
    index: usize,
    suite: &Suite,
    decisions: &[Decision],
    why: &str,
    recorder: &Recorder,
    events: &Observers,
    redactor: &Redactor,
) {
    for (c, (check, decision)) in suite.checks.iter().zip(decisions).enumerate() {
        let key = CheckKey {
            suite: index,
            check: c,
        };
        if *decision == Decision::NotSelected || recorder.has(key) {
            continue;
        }
        let mut outcome = base_outcome(
            suite,
            check,
            Status::Error,
            format!("attest bug: the suite stopped early ({why}); its teardown may not have run"),
            redactor,
        );
        outcome.evidence.hint = Some("please report this with the suite that triggers it".into());
        events.emit(RunEvent::CheckFinished {
            key,
            outcome: &outcome,
        });
    }
    events.emit(RunEvent::SuiteFinished {
        suite: index,
        started_at: SystemTime::now(),
        duration: Duration::ZERO,
        teardown_failures: &[],
    });
}

fn empty_record(config: &RunConfig, started_at: SystemTime, redactor: &Redactor) -> RunRecord {
    let mut environment = Environment::capture();
    if let place @ Place::Pod { .. } = &config.site.place {
        environment
            .facts
            .push(("runs in".into(), redactor.redact(&place.to_string())));
    }
    // One value per cluster the run used, in order of first use.
    let clusters = config.services.clusters.all();
    let known: Vec<ClusterInfo> = clusters.iter().filter_map(|c| c.cluster()).collect();
    if !known.is_empty() {
        let join = |field: fn(&ClusterInfo) -> &str| {
            known.iter().map(field).collect::<Vec<_>>().join(", ")
        };
        environment.facts.extend([
            ("kubernetes context".into(), join(|c| &c.context)),
            ("kubernetes server".into(), join(|c| &c.server)),
            ("kubernetes version".into(), join(|c| &c.version)),
        ]);
    }
    if clusters.iter().any(|c| c.used()) {
        let requests: u64 = clusters.iter().map(|c| c.requests()).sum();
        environment
            .facts
            .push(("kubernetes API requests".into(), requests.to_string()));
    }
    RunRecord {
        attest_version: env!("CARGO_PKG_VERSION"),
        run_id: String::new(),
        target: config.target.clone(),
        started_at,
        finished_at: SystemTime::now(),
        interrupted: config.stop.interruption(),
        environment,
        suites: Vec::new(),
        not_selected: 0,
        require_all: config.require_all,
    }
}

/// A check's outcome as libtest-mimic reports it.
fn reported(outcome: &Outcome) -> Result<Completion, Failed> {
    match outcome.status {
        Status::Passed => Ok(Completion::Completed),
        Status::Skipped => Ok(Completion::ignored_with(outcome.message.clone())),
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
    }
}

/// What a suite's task shares with the rest of the run.
struct SuiteEnv {
    /// Per check of the suite: the permission the RBAC preflight found missing.
    denials: Vec<Option<Denial>>,
    run_id: Arc<str>,
    allow: Safety,
    stop: Arc<StopSignals>,
    redactor: Redactor,
    services: Services,
    events: Observers,
    /// See [`RunConfig::site`].
    site: Arc<Site>,
    /// Destructive checks run alone: see [`Exclusive`].
    exclusive: Exclusive,
    /// Whether queries may be sent ahead ([`queries_ahead`]): not in a run with destructive
    /// checks, whose disruption must not meet a query sent before it.
    ahead: bool,
}

/// Destructive checks run alone. Every check holds a shared turn while it runs; a destructive
/// check takes the exclusive turn, so it starts once the other suites' running checks have
/// finished, and the other suites' next checks wait. Its suite keeps the turn until the suite
/// has ended and torn down: the checks after a disruption verify it (the sentinel is intact,
/// the pod is back), and a check of another suite must neither disturb that verification nor
/// be disturbed by the disruption (a drain evicts every pod on the node, not only the suite's).
/// A run without destructive checks never waits: shared turns do not exclude each other.
type Exclusive = Arc<tokio::sync::RwLock<()>>;

/// The turn a suite holds: none between checks, shared for one check, or exclusive from its
/// first destructive check to its end.
enum Turn {
    Shared(#[allow(dead_code)] tokio::sync::OwnedRwLockReadGuard<()>),
    Exclusive(#[allow(dead_code)] tokio::sync::OwnedRwLockWriteGuard<()>),
}

async fn run_suite(index: usize, suite: Arc<Suite>, decisions: Vec<Decision>, env: SuiteEnv) {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let vars = Arc::new(RuntimeVars::default());
    let teardown = Arc::new(TeardownStack::default());
    let mut statuses: HashMap<&str, Option<Status>> = HashMap::new();
    let cancel = &env.stop.cancel;
    let redactor = &env.redactor;
    let mut exclusive_turn: Option<Turn> = None;
    let aheads = match env.ahead {
        true => queries_ahead(&suite, &decisions, &env),
        false => vec![None; suite.checks.len()],
    };

    for (c, (check, decision)) in suite.checks.iter().zip(decisions).enumerate() {
        let key = CheckKey {
            suite: index,
            check: c,
        };
        if decision == Decision::NotSelected {
            statuses.insert(&check.decl.id, None);
            continue;
        }
        let name = format!("{}::{}", suite.id, check.decl.id);
        let skip_reason = if cancel.is_cancelled() {
            Some((
                "not started: the run was interrupted".to_owned(),
                SkipCause::Interrupted,
            ))
        } else if let Some(reason) = check
            .decl
            .ignore
            .as_ref()
            .filter(|_| decision == Decision::Ignored)
        {
            Some((
                format!("ignored: {reason} (run with --include-ignored)"),
                SkipCause::Ignored,
            ))
        } else if let Some(why) = env.site.unverifiable(&name) {
            let why = format!("not verifiable here: {why}");
            Some((why.clone(), SkipCause::Unavailable(redactor.redact(&why))))
        } else if let Some(reason) = env
            .services
            .kube
            .unavailable_reason()
            .filter(|_| !check.decl.check.permissions().is_empty())
        {
            let why = format!("needs the Kubernetes API: {reason}");
            Some((why.clone(), SkipCause::Unavailable(redactor.redact(&why))))
        } else if let Some((name, why)) = check.unavailable.as_ref().filter(|(_, u)| u.skip) {
            Some((
                format!("`${{{name}}}` has no value: {}", why.message),
                SkipCause::Unavailable(redactor.redact(&why.message)),
            ))
        } else if check.safety > env.allow {
            let flag = check.safety.opt_in_flag();
            Some((
                format!("{} check: runs only with {flag}", check.safety.as_str()),
                SkipCause::NotAllowed(flag),
            ))
        } else {
            unmet_need(check, &statuses)
        };

        let denial = env.denials.get(c).cloned().flatten();
        let outcome = match (skip_reason, denial) {
            (Some((reason, cause)), _) => skipped(&suite, check, reason, cause, redactor),
            (None, _) if check.unavailable.is_some() => {
                let (name, why) = check.unavailable.as_ref().expect("checked");
                let mut outcome = base_outcome(
                    &suite,
                    check,
                    Status::Error,
                    format!(
                        "`${{{name}}}` has no value: {}; the check did not run",
                        why.message
                    ),
                    redactor,
                );
                outcome.evidence.hint = why.hint.as_deref().map(|h| redactor.redact(h));
                outcome
            }
            (None, Some(denial)) => {
                let mut outcome = base_outcome(
                    &suite,
                    check,
                    Status::Error,
                    format!(
                        "missing permission: {} (RBAC preflight); the check did not run",
                        denial.missing
                    ),
                    redactor,
                );
                outcome.evidence.hint = Some(format!("grant it with {}", denial.rule));
                outcome
            }
            (None, None) => {
                // Wait for this check's turn (interruptible); the deadline starts after it.
                let turn = match &exclusive_turn {
                    Some(_) => None,
                    None => {
                        let lock = env.exclusive.clone();
                        let take = async {
                            if check.safety == Safety::Destructive {
                                Turn::Exclusive(lock.write_owned().await)
                            } else {
                                Turn::Shared(lock.read_owned().await)
                            }
                        };
                        tokio::select! {
                            turn = take => Some(turn),
                            _ = cancel.cancelled() => None,
                        }
                    }
                };
                let turn = match turn {
                    Some(Turn::Exclusive(guard)) => {
                        exclusive_turn = Some(Turn::Exclusive(guard));
                        None
                    }
                    other => other,
                };
                let ctx = CheckContext {
                    run_id: env.run_id.clone(),
                    suite_id: suite.id.clone(),
                    check_id: check.decl.id.clone(),
                    vars: vars.clone(),
                    teardown: teardown.clone(),
                    cancel: cancel.clone(),
                    redactor: redactor.clone(),
                    services: env.services.clone(),
                    deadline: Instant::now()
                        .checked_add(check.decl.timeout)
                        .unwrap_or_else(|| Instant::now() + Duration::from_secs(86400 * 365)),
                    ahead: aheads[c].clone(),
                };
                let started = Instant::now();
                env.events.emit(RunEvent::CheckStarted {
                    key,
                    name: &redactor.redact(&trial_name(&suite, check)),
                    timeout: check.decl.timeout,
                });
                let observed = |attempts, summary: &str| {
                    env.events.emit(RunEvent::Attempt {
                        key,
                        attempts,
                        summary,
                    })
                };
                let (verdict, attempts) = tokio::select! {
                    result = execute(check, &ctx, observed) => result,
                    _ = cancel.cancelled() => (
                        Verdict::error(format!(
                            "interrupted while running ({}); teardown still runs",
                            env.stop.interruption().map_or("signal", Interruption::name)
                        )),
                        1,
                    ),
                };
                drop(turn);
                register_exports(check, &verdict, &vars, redactor);
                finished(
                    &suite,
                    check,
                    verdict,
                    attempts,
                    started.elapsed(),
                    redactor,
                )
            }
        };
        let mut outcome = outcome;
        env.site.annotate(&name, check, &mut outcome, redactor);
        statuses.insert(&check.decl.id, Some(outcome.status));
        env.events.emit(RunEvent::CheckFinished {
            key,
            outcome: &outcome,
        });
    }

    let teardown_failures = run_teardown(&teardown, &env.stop, redactor).await;
    drop(exclusive_turn);
    env.events.emit(RunEvent::SuiteFinished {
        suite: index,
        started_at,
        duration: clock.elapsed(),
        teardown_failures: &teardown_failures,
    });
}

/// The first prerequisite that did not pass, as a skip reason.
fn unmet_need(
    check: &SuiteCheck,
    statuses: &HashMap<&str, Option<Status>>,
) -> Option<(String, SkipCause)> {
    check.decl.needs.iter().find_map(|need| {
        let (why, cause) = match statuses.get(need.as_str()) {
            Some(Some(Status::Passed)) => return None,
            Some(Some(status)) => (
                format!("was {}", status.as_str()),
                SkipCause::PrerequisiteNotPassed,
            ),
            Some(None) | None => (
                "was not selected".to_owned(),
                SkipCause::PrerequisiteNotSelected,
            ),
        };
        Some((format!("needs `{need}`, which {why}"), cause))
    })
}

//! Plan and execution: selects checks with libtest's flags, runs each suite's checks in order
//! (suites concurrently) on the tokio runtime, and records one [`Outcome`] per selected check.
//!
//! libtest-mimic owns the console: each trial only waits for its check's outcome from the
//! executor, so no trial thread ever waits on another trial. Whatever happens to the console
//! (a closed pipe), a check (a panic) or the process (signals, see [`StopSignals`]), every
//! suite's teardown runs and the record comes back for the reports.

use std::collections::{BTreeMap, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::checks::{Permission, Verdict};
use crate::context::{display_markers, CheckContext, RuntimeVars, Services, TeardownStack};
use crate::k8s::preflight::Denial;
use crate::k8s::{ClusterInfo, KubeAccess};
use crate::load::{Suite, SuiteCheck};
pub use crate::outcome::FinalState;
use crate::outcome::{
    Environment, Interruption, Outcome, RunRecord, SkipCause, Status, SuiteRecord,
};
use crate::progress::Progress;
use crate::redact::Redactor;
use crate::suite::{format_duration, Safety};

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
    pub libtest: Arguments,
    /// Network, PostgreSQL sessions and the Kubernetes client the checks use.
    pub services: Services,
    /// Signals that stop the run (installed by the caller, as early as possible).
    pub stop: Arc<StopSignals>,
    /// Live progress lines on stderr for checks that run long (a terminal, not `--format json`).
    pub progress: bool,
    /// `--require-all`: a selected check that was skipped fails the run ([`FinalState::Incomplete`]).
    pub require_all: bool,
    /// Checks this environment cannot verify (`suite::check`, why): skipped with that reason,
    /// never run. The sandbox names criteria its stand-ins do not meet (an NFS volume where
    /// the volume is a host folder), so they are reported as not verified, not passed.
    pub unverifiable: Arc<Vec<(String, String)>>,
}

pub struct RunResult {
    pub record: RunRecord,
    pub state: FinalState,
}

/// SIGINT, SIGTERM and SIGHUP, counted: the first stops starting and cancels running checks
/// (teardown and reports follow), the second cuts each remaining teardown step to
/// [`HURRIED_TEARDOWN`], the third exits at once.
pub struct StopSignals {
    /// Cancelled by the first signal.
    pub cancel: CancellationToken,
    /// Cancelled by the second.
    pub hurry: CancellationToken,
    first: Mutex<Option<Interruption>>,
    /// Set once something exists that must be torn down (a run, the sandbox). Before that,
    /// a signal ends the process at once: loading a suite or `attest check` has nothing to
    /// clean up, and must not go on after SIGTERM.
    armed: std::sync::atomic::AtomicBool,
}

impl StopSignals {
    /// Installs the handlers on `runtime`; from then on these signals no longer kill the
    /// process outright.
    pub fn install(runtime: &Runtime) -> Arc<StopSignals> {
        let stop = Arc::new(StopSignals::unwired());
        let watched = stop.clone();
        // Registering inside the runtime so the handlers exist before this returns.
        let streams = runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            Some((
                signal(SignalKind::interrupt()).ok()?,
                signal(SignalKind::terminate()).ok()?,
                signal(SignalKind::hangup()).ok()?,
            ))
        });
        if let Some((mut int, mut term, mut hup)) = streams {
            runtime.spawn(async move {
                loop {
                    let which = tokio::select! {
                        _ = int.recv() => Interruption::Sigint,
                        _ = term.recv() => Interruption::Sigterm,
                        _ = hup.recv() => Interruption::Sighup,
                    };
                    watched.signal(which);
                }
            });
        }
        stop
    }

    /// Not connected to any signal (tests, library use).
    pub fn unwired() -> StopSignals {
        StopSignals {
            cancel: CancellationToken::new(),
            hurry: CancellationToken::new(),
            first: Mutex::new(None),
            armed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// From now on signals stop the work cleanly (teardown, reports) instead of exiting.
    pub fn arm(&self) {
        self.armed.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// The first signal received, if any.
    pub fn interruption(&self) -> Option<Interruption> {
        *self.first.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Handles one signal.
    pub fn signal(&self, which: Interruption) {
        let first = {
            let mut first = self.first.lock().unwrap_or_else(|e| e.into_inner());
            *first.get_or_insert(which)
        };
        if !self.armed.load(std::sync::atomic::Ordering::SeqCst) {
            say(&format!(
                "\nattest: {}: stopping (nothing to clean up yet)",
                which.name()
            ));
            std::process::exit(i32::from(which.exit_code()));
        }
        if !self.cancel.is_cancelled() {
            say(&format!(
                "\nattest: {}: stopping; running teardown and writing reports (send it again to hurry teardown)",
                which.name()
            ));
            self.cancel.cancel();
        } else if !self.hurry.is_cancelled() {
            say(&format!(
                "attest: {}: teardown limited to {} s per step, then reports; a third signal exits at once",
                which.name(),
                HURRIED_TEARDOWN.as_secs()
            ));
            self.hurry.cancel();
        } else {
            say("attest: exiting now; resources may be left behind (`attest cleanup` finds them)");
            std::process::exit(i32::from(first.exit_code()));
        }
    }
}

/// Writes a line to stderr; a closed stderr is not a reason to stop a run.
fn say(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// The trial name of a check, as `--list`, filters and `--exact` see it.
pub fn trial_name(suite: &Suite, check: &SuiteCheck) -> String {
    format!("{}::{}", suite.id, check.decl.id)
}

/// Whether a name filter (or `--skip`, `--ignored`) leaves any check of `suite` to run: a
/// suite left with none need not be prepared (its Secrets read) at all.
pub fn selects_any(args: &Arguments, suite: &Suite) -> bool {
    let redactor = Redactor::default();
    suite.checks.iter().any(|check| {
        let probe = probe_trial(suite, check, &redactor);
        !args.is_filtered_out(&probe) && !args.is_ignored(&probe)
    })
}

/// Whether a name filter (or `--skip`, `--ignored`) selects `check` of `suite` to run.
pub fn selects(args: &Arguments, suite: &Suite, check: &SuiteCheck) -> bool {
    let probe = probe_trial(suite, check, &Redactor::default());
    !args.is_filtered_out(&probe) && !args.is_ignored(&probe)
}

fn probe_trial(suite: &Suite, check: &SuiteCheck, redactor: &Redactor) -> Trial {
    Trial::test(redactor.redact(&trial_name(suite, check)), || Ok(()))
        .with_kind(check.decl.kind)
        .with_ignored_flag(check.decl.ignore.is_some())
}

/// What the plan says about one check.
enum Slot {
    FilteredOut,
    Ignored,
    Run(Option<oneshot::Sender<Outcome>>),
}

/// Runs libtest-mimic's console; a panic inside it (stdout closed under `| head`) must not
/// stop the run: the checks, their teardown and the reports go on without a console.
fn console(args: &Arguments, trials: Vec<Trial>) {
    let printed = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let _ = libtest_mimic::run(args, trials);
    }));
    if printed.is_err() {
        say("attest: the console went away (closed pipe?); the run goes on and writes its reports");
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

    if args.list {
        let trials = suites
            .iter()
            .flat_map(|s| s.checks.iter().map(|c| probe_trial(s, c, &redactor)))
            .collect();
        console(args, trials);
        return RunResult {
            record: empty_record(&config, started_at),
            state: FinalState::Listed,
        };
    }

    let progress = Progress::new(config.progress);
    // Plan: which checks run, and the trial that reports each.
    let mut trials = Vec::new();
    let mut plans: Vec<Vec<Slot>> = Vec::new();
    for suite in &suites {
        let mut slots = Vec::new();
        for check in &suite.checks {
            let probe = probe_trial(suite, check, &redactor);
            if args.is_filtered_out(&probe) {
                // libtest-mimic filters it again itself, and counts it as filtered out.
                trials.push(probe);
                slots.push(Slot::FilteredOut);
            } else if args.is_ignored(&probe) {
                trials.push(probe);
                slots.push(Slot::Ignored);
            } else {
                let (tx, rx) = oneshot::channel();
                trials.push(reporting_trial(suite, check, rx, &redactor, &progress));
                slots.push(Slot::Run(Some(tx)));
            }
        }
        plans.push(slots);
    }
    let not_selected = plans
        .iter()
        .flatten()
        .filter(|s| matches!(s, Slot::FilteredOut))
        .count();
    let selected = plans.iter().map(Vec::len).sum::<usize>() - not_selected;
    if selected == 0 {
        return RunResult {
            record: empty_record(&config, started_at),
            state: FinalState::NoChecksSelected,
        };
    }

    let denials = preflight(&suites, &plans, &config, runtime);
    let run_id: Arc<str> = crate::cleanup::new_run_id().into();
    let ticker = config
        .progress
        .then(|| runtime.spawn(progress.clone().tick(config.stop.cancel.clone())));
    let exclusive = Exclusive::default();
    let running: Vec<_> = suites
        .into_iter()
        .zip(plans)
        .zip(denials)
        .filter(|((_, slots), _)| slots.iter().any(|s| !matches!(s, Slot::FilteredOut)))
        .map(|((suite, slots), denials)| {
            let suite = Arc::new(suite);
            let selected: Vec<bool> = slots
                .iter()
                .map(|s| !matches!(s, Slot::FilteredOut))
                .collect();
            let handle = runtime.spawn(run_suite(
                suite.clone(),
                slots,
                SuiteEnv {
                    run_id: run_id.clone(),
                    allow: config.allow,
                    stop: config.stop.clone(),
                    redactor: redactor.clone(),
                    services: config.services.for_context(suite.kube_context.as_deref()),
                    progress: progress.clone(),
                    denials,
                    unverifiable: config.unverifiable.clone(),
                    exclusive: exclusive.clone(),
                },
            ));
            (suite, selected, handle)
        })
        .collect();

    // Counts come back, but our own outcome records are what reports and the exit code use.
    progress.follow_console(args, &trials);
    console(args, trials);

    let suites = runtime.block_on(async {
        let mut records: Vec<SuiteRecord> = Vec::new();
        for (suite, selected, handle) in running {
            match handle.await {
                Ok(record) => records.push(record),
                // A bug in attest, not in the environment: its checks become errors, never a pass.
                Err(e) => records.push(crashed_suite(&suite, &selected, &e.to_string(), &redactor)),
            }
        }
        // Queries cancelled at a timeout or Ctrl-C are stopped, and sessions logged out,
        // before attest exits.
        config.services.sessions.close().await;
        records
    });
    if let Some(ticker) = ticker {
        ticker.abort();
    }

    let mut record = empty_record(&config, started_at);
    record.interrupted = config.stop.interruption();
    record.suites = suites;
    record.run_id = run_id.to_string();
    record.not_selected = not_selected;
    record.finished_at = SystemTime::now();
    let state = record.final_state();
    RunResult { record, state }
}

fn empty_record(config: &RunConfig, started_at: SystemTime) -> RunRecord {
    let mut environment = Environment::capture();
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

fn reporting_trial(
    suite: &Suite,
    check: &SuiteCheck,
    rx: oneshot::Receiver<Outcome>,
    redactor: &Redactor,
    progress: &Progress,
) -> Trial {
    let name = redactor.redact(&trial_name(suite, check));
    let (progress, kind, shown) = (progress.clone(), check.decl.kind, name.clone());
    Trial::ignorable_test(name, move || {
        // The console has just written this check's line and leaves it open until we return.
        let _line_open = progress.console_waits_for(kind, &shown);
        reported(rx.blocking_recv())
    })
    .with_kind(check.decl.kind)
    // So that `--ignored` lists and counts the checks it runs.
    .with_ignored_flag(check.decl.ignore.is_some())
}

/// A check's outcome as libtest-mimic reports it.
fn reported(received: Result<Outcome, oneshot::error::RecvError>) -> Result<Completion, Failed> {
    match received {
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
    progress: Progress,
    /// See [`RunConfig::unverifiable`].
    unverifiable: Arc<Vec<(String, String)>>,
    /// Destructive checks run alone: see [`Exclusive`].
    exclusive: Exclusive,
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

async fn run_suite(suite: Arc<Suite>, slots: Vec<Slot>, env: SuiteEnv) -> SuiteRecord {
    let started_at = SystemTime::now();
    let clock = Instant::now();
    let vars = Arc::new(RuntimeVars::default());
    let teardown = Arc::new(TeardownStack::default());
    let mut statuses: HashMap<&str, Option<Status>> = HashMap::new();
    let mut outcomes = Vec::new();
    let cancel = &env.stop.cancel;
    let redactor = &env.redactor;
    let mut exclusive_turn: Option<Turn> = None;

    for (index, (check, slot)) in suite.checks.iter().zip(slots).enumerate() {
        let sender = match slot {
            Slot::FilteredOut => {
                statuses.insert(&check.decl.id, None);
                continue;
            }
            Slot::Ignored => None,
            Slot::Run(sender) => sender,
        };
        let skip_reason = if cancel.is_cancelled() {
            Some((
                "not started: the run was interrupted".to_owned(),
                SkipCause::Interrupted,
            ))
        } else if let Some(reason) = check.decl.ignore.as_ref().filter(|_| sender.is_none()) {
            Some((
                format!("ignored: {reason} (run with --include-ignored)"),
                SkipCause::Ignored,
            ))
        } else if let Some((_, why)) = env
            .unverifiable
            .iter()
            .find(|(id, _)| *id == format!("{}::{}", suite.id, check.decl.id))
        {
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

        let denial = env.denials.get(index).cloned().flatten();
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
                outcome.hint = why.hint.as_deref().map(|h| redactor.redact(h));
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
                outcome.hint = Some(format!("grant it with {}", denial.rule));
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
                };
                let started = Instant::now();
                let watch = env.progress.start(
                    redactor.redact(&trial_name(&suite, check)),
                    check.decl.timeout,
                );
                let (verdict, attempts) = tokio::select! {
                    result = execute(check, &ctx, &watch) => result,
                    _ = cancel.cancelled() => (
                        Verdict::error(format!(
                            "interrupted while running ({}); teardown still runs",
                            env.stop.interruption().map_or("signal", Interruption::name)
                        )),
                        1,
                    ),
                };
                drop(watch);
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
        statuses.insert(&check.decl.id, Some(outcome.status));
        if let Some(sender) = sender {
            let _ = sender.send(outcome.clone());
        }
        outcomes.push(outcome);
    }

    let teardown_failures = run_teardown(&teardown, &env.stop, redactor).await;
    drop(exclusive_turn);
    suite_record(
        &suite,
        started_at,
        clock.elapsed(),
        outcomes,
        teardown_failures,
        redactor,
    )
}

/// Asks each cluster's API server, once for the whole run, for every permission the checks
/// that will run there need; returns, per suite and check, the missing one. A run without
/// Kubernetes checks makes no request; a preflight that cannot reach the server leaves the
/// checks to report it.
fn preflight(
    suites: &[Suite],
    plans: &[Vec<Slot>],
    config: &RunConfig,
    runtime: &Runtime,
) -> Vec<Vec<Option<Denial>>> {
    let mut per_cluster: Vec<(Arc<KubeAccess>, Vec<Permission>)> = Vec::new();
    let needed: Vec<(Arc<KubeAccess>, Vec<Vec<Permission>>)> = suites
        .iter()
        .zip(plans)
        .map(|(suite, slots)| {
            let access = config
                .services
                .for_context(suite.kube_context.as_deref())
                .kube;
            let wanted = |check: &SuiteCheck, slot: &Slot| {
                matches!(slot, Slot::Run(_))
                    && check.safety <= config.allow
                    && check.unavailable.is_none()
                    && access.unavailable_reason().is_none()
            };
            let per_check: Vec<Vec<Permission>> = suite
                .checks
                .iter()
                .zip(slots)
                .map(|(check, slot)| match wanted(check, slot) {
                    true => check.decl.check.permissions(),
                    false => Vec::new(),
                })
                .collect();
            let all = per_check.iter().flatten().cloned();
            match per_cluster
                .iter_mut()
                .find(|(a, _)| Arc::ptr_eq(a, &access))
            {
                Some((_, permissions)) => permissions.extend(all),
                None => per_cluster.push((access.clone(), all.collect())),
            }
            (access, per_check)
        })
        .collect();
    let denied: Vec<(Arc<KubeAccess>, _)> = per_cluster
        .into_iter()
        .filter(|(_, permissions)| !permissions.is_empty())
        .map(|(access, permissions)| {
            let review = crate::k8s::preflight::review(&access, &permissions, PREFLIGHT_TIMEOUT);
            let denied = match runtime.block_on(review) {
                Ok(denied) => denied,
                Err(e) => {
                    let context = access.context().unwrap_or("the current context");
                    say(&format!(
                        "attest: RBAC preflight skipped for {context}: {e}"
                    ));
                    Default::default()
                }
            };
            (access, denied)
        })
        .collect();
    needed
        .into_iter()
        .map(|(access, per_check)| {
            let denied = denied.iter().find(|(a, _)| Arc::ptr_eq(a, &access));
            per_check
                .iter()
                .map(|permissions| {
                    let (_, denied) = denied?;
                    let mut missing: Vec<Denial> = Vec::new();
                    for permission in permissions {
                        if let Some(denial) = denied.get(permission) {
                            if !missing.contains(denial) {
                                missing.push(denial.clone());
                            }
                        }
                    }
                    // Every permission the check lacks, named at once (a Role grants them together).
                    (!missing.is_empty()).then(|| Denial {
                        missing: missing
                            .iter()
                            .map(|d| d.missing.clone())
                            .collect::<Vec<_>>()
                            .join(", "),
                        rule: missing
                            .iter()
                            .map(|d| d.rule.clone())
                            .collect::<Vec<_>>()
                            .join("; "),
                    })
                })
                .collect()
        })
        .collect()
}

/// Runs the registered undo steps, last first, each bounded; a second signal shortens them.
async fn run_teardown(
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

/// A suite whose task died: each selected check becomes an `error` outcome, so nothing it
/// would have checked can pass by omission.
fn crashed_suite(suite: &Suite, selected: &[bool], why: &str, redactor: &Redactor) -> SuiteRecord {
    let outcomes = suite
        .checks
        .iter()
        .zip(selected)
        .filter(|(_, selected)| **selected)
        .map(|(check, _)| {
            let mut outcome = base_outcome(
                suite,
                check,
                Status::Error,
                format!(
                    "attest bug: the suite stopped early ({why}); its teardown may not have run"
                ),
                redactor,
            );
            outcome.hint = Some("please report this with the suite that triggers it".into());
            outcome
        })
        .collect();
    suite_record(
        suite,
        SystemTime::now(),
        Duration::ZERO,
        outcomes,
        Vec::new(),
        redactor,
    )
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
async fn execute(
    check: &SuiteCheck,
    ctx: &CheckContext,
    watch: &crate::progress::Watch,
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
        watch.observed(attempts, &ctx.redactor.redact(&verdict.summary));
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
fn gave_up(mut last: Verdict, attempts: u32, elapsed: Duration, why: &str) -> Verdict {
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

/// An outcome with everything the suite says about the check, redacted: metadata can carry
/// secrets too (a title or an `ignore` reason written with a secret variable).
fn base_outcome(
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
        expected: None,
        found: None,
        hint: None,
        subject: None,
        mismatches: Vec::new(),
        measurements: Default::default(),
        skip: None,
        via: check.via.as_deref().map(|v| redactor.redact(v)),
    }
}

fn skipped(
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
fn finished(
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
    outcome.expected = redactor.redact_opt(verdict.expected);
    outcome.found = redactor.redact_opt(verdict.found);
    outcome.hint = redactor.redact_opt(verdict.hint);
    outcome.subject = redactor.redact_opt(verdict.subject);
    outcome.mismatches = verdict
        .mismatches
        .into_iter()
        .map(|mut m| {
            m.path = redactor.redact(&m.path);
            m.expected = redactor.redact(&m.expected);
            m.found = redactor.redact(&m.found);
            m.subject = redactor.redact_opt(m.subject);
            m
        })
        .collect();
    outcome.measurements = verdict.measurements;
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn giving_up_keeps_the_last_observation_and_counts_attempts() {
        let last = Verdict::fail("status.phase is Pending")
            .subject("v1/PersistentVolumeClaim data/data-0")
            .mismatch("status.phase", "Bound", "Pending");
        let verdict = gave_up(
            last,
            5,
            Duration::from_secs(10),
            "no time left for another attempt",
        );
        assert_eq!(verdict.status, Status::Failed);
        assert_eq!(
            verdict.summary,
            "gave up after 5 attempts in 10.0 s (no time left for another attempt); last: status.phase is Pending"
        );
        assert_eq!(verdict.mismatches.len(), 1);
    }

    /// A kind that panics, and one that registers an undo step, for the runner's own tests.
    #[derive(Debug)]
    struct Panics;
    impl crate::checks::Kind for Panics {
        const DESCRIPTION: &'static str = "panics";
        fn target(&self) -> String {
            "nowhere".into()
        }
        async fn observe(&self, _ctx: &CheckContext) -> Verdict {
            panic!("index out of bounds")
        }
    }
    #[derive(Debug)]
    struct Creates(Arc<std::sync::atomic::AtomicBool>);
    impl crate::checks::Kind for Creates {
        const DESCRIPTION: &'static str = "creates something to undo";
        fn target(&self) -> String {
            "somewhere".into()
        }
        async fn observe(&self, ctx: &CheckContext) -> Verdict {
            let undone = self.0.clone();
            ctx.on_teardown("undo", async move {
                undone.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(())
            });
            Verdict::pass("created")
        }
    }

    fn check(id: &str, check: Box<dyn crate::checks::Check>) -> SuiteCheck {
        SuiteCheck {
            decl: crate::suite::CheckDecl {
                id: id.into(),
                title: id.into(),
                description: None,
                covers: Vec::new(),
                timeout: Duration::from_secs(5),
                retry: None,
                needs: Vec::new(),
                safety: None,
                register: None,
                ignore: None,
                kind: "test",
                check,
            },
            location: "t.yaml:1:1".into(),
            safety: Safety::ReadOnly,
            requirements: Vec::new(),
            acceptance: Vec::new(),
            exports: Vec::new(),
            unavailable: None,
            via: None,
        }
    }

    fn test_suite(id: &str, checks: Vec<SuiteCheck>) -> Suite {
        Suite {
            id: id.into(),
            title: id.into(),
            story: None,
            story_file: None,
            criteria: Vec::new(),
            description: None,
            requirements: Default::default(),
            path: "t.yaml".into(),
            warnings: Vec::new(),
            kube_context: None,
            variables: Vec::new(),
            checks,
        }
    }

    fn test_env(allow: Safety, exclusive: Exclusive) -> SuiteEnv {
        SuiteEnv {
            run_id: "r".into(),
            allow,
            stop: Arc::new(StopSignals::unwired()),
            redactor: Redactor::default(),
            services: Services::default(),
            progress: Progress::new(false),
            denials: Vec::new(),
            unverifiable: Arc::default(),
            exclusive,
        }
    }

    #[tokio::test]
    async fn a_panicking_check_is_an_error_and_the_rest_of_its_suite_still_runs_and_tears_down() {
        let undone = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let suite = test_suite(
            "s",
            vec![
                check("creates", Box::new(Creates(undone.clone()))),
                check("panics", Box::new(Panics)),
                check("after", Box::new(Creates(Arc::default()))),
            ],
        );
        let slots = (0..3).map(|_| Slot::Run(None)).collect();
        let env = test_env(Safety::ReadOnly, Exclusive::default());
        let record = run_suite(Arc::new(suite), slots, env).await;
        let statuses: Vec<_> = record.outcomes.iter().map(|o| o.status).collect();
        assert_eq!(statuses, [Status::Passed, Status::Error, Status::Passed]);
        assert!(
            record.outcomes[1]
                .message
                .contains("the check panicked: index out of bounds"),
            "{}",
            record.outcomes[1].message
        );
        assert!(
            undone.load(std::sync::atomic::Ordering::SeqCst),
            "teardown ran"
        );
    }

    /// Which check ran, from when to when.
    type RunLog = Arc<Mutex<Vec<(&'static str, Instant, Instant)>>>;

    /// Sleeps, and records when it ran.
    #[derive(Debug)]
    struct Sleeps(&'static str, RunLog);
    impl crate::checks::Kind for Sleeps {
        const DESCRIPTION: &'static str = "sleeps";
        async fn observe(&self, _ctx: &CheckContext) -> Verdict {
            let start = Instant::now();
            tokio::time::sleep(Duration::from_millis(60)).await;
            self.1.lock().unwrap().push((self.0, start, Instant::now()));
            Verdict::pass("slept")
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_destructive_check_and_the_rest_of_its_suite_run_while_other_suites_wait() {
        let log: RunLog = Arc::default();
        let mut drain = check("drain", Box::new(Sleeps("drain", log.clone())));
        drain.safety = Safety::Destructive;
        let disrupting = test_suite(
            "a",
            vec![
                check("write", Box::new(Sleeps("write", log.clone()))),
                drain,
                check("verify", Box::new(Sleeps("verify", log.clone()))),
            ],
        );
        let others = test_suite(
            "b",
            (0..6)
                .map(|_| check("other", Box::new(Sleeps("other", log.clone()))))
                .collect(),
        );
        let exclusive = Exclusive::default();
        let env = || test_env(Safety::Destructive, exclusive.clone());
        let slots = |n: usize| (0..n).map(|_| Slot::Run(None)).collect::<Vec<_>>();
        let a = tokio::spawn(run_suite(Arc::new(disrupting), slots(3), env()));
        let b = tokio::spawn(run_suite(Arc::new(others), slots(6), env()));
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert!(a
            .outcomes
            .iter()
            .chain(&b.outcomes)
            .all(|o| o.status == Status::Passed));
        let log = log.lock().unwrap();
        let (alone_from, alone_to) = (
            log.iter().find(|e| e.0 == "drain").unwrap().1,
            log.iter().find(|e| e.0 == "verify").unwrap().2,
        );
        for (name, start, end) in log.iter().filter(|e| e.0 == "other") {
            assert!(
                *end <= alone_from || *start >= alone_to,
                "`{name}` overlapped the drain or its verification"
            );
        }
        // Without a destructive check the suites do run side by side.
        let overlapped = log
            .iter()
            .filter(|e| e.0 == "other")
            .any(|(_, start, end)| {
                let write = log.iter().find(|e| e.0 == "write").unwrap();
                *start < write.2 && *end > write.1
            });
        assert!(
            overlapped,
            "read-only checks of two suites ran one after the other"
        );
    }

    #[test]
    fn a_second_signal_hurries_and_the_first_decides_the_exit_code() {
        let stop = StopSignals::unwired();
        stop.arm();
        stop.signal(Interruption::Sigterm);
        assert!(stop.cancel.is_cancelled() && !stop.hurry.is_cancelled());
        stop.signal(Interruption::Sigint);
        assert!(stop.hurry.is_cancelled());
        assert_eq!(stop.interruption(), Some(Interruption::Sigterm));
        assert_eq!(Interruption::Sigterm.exit_code(), 143);
    }
}

//! `attest job --dry-run -o yaml`: the manifests of an in-cluster run (ServiceAccount and
//! RBAC, a ConfigMap with the suites, a Secret with the secret values, a hardened Job).
//! Without `--dry-run`: the live round trip (attest_core::k8s::launch): the same manifests,
//! labelled with a run id, created after a permission preflight; the pod's console followed;
//! the reports brought back into `--report-dir`; everything deleted on every path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use crate::console::{error_line, say};
use crate::rbac::{self, AccountArgs, Selected, Selection};
use attest_core::exit;
use attest_core::k8s::job::{self, BundleFile, JobPlan};
use attest_core::k8s::launch;
use attest_core::k8s::rbac::yaml_documents;
use attest_core::k8s::{KubeAccess, KubeOptions};
use attest_core::load::VariableSource;
use attest_core::redact::Redactor;
use attest_core::runner::StopSignals;

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Yaml,
}

#[derive(Args, Debug)]
pub struct JobArgs {
    #[command(flatten)]
    pub select: Selection,
    #[command(flatten)]
    pub account: AccountArgs,
    /// The image with attest in it (its `attest` on PATH).
    #[arg(long, value_name = "IMAGE", default_value = concat!("attest:", env!("CARGO_PKG_VERSION")))]
    pub image: String,
    /// The Job's name; the ConfigMap and Secret are NAME-suites and NAME-vars.
    #[arg(long, value_name = "NAME", default_value = "attest")]
    pub name: String,
    /// Print the manifests instead of running the Job.
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of --dry-run.
    #[arg(short = 'o', long = "output", value_enum, default_value = "yaml")]
    pub output: Output,
    /// Label of the environment in the reports (`attest run --target`).
    #[arg(long, value_name = "LABEL")]
    pub target: Option<String>,
    /// `attest run --require-all` in the pod: a skipped check fails the Job.
    #[arg(long)]
    pub require_all: bool,
    /// `attest run --simulated` in the pod: label a check's result as measured against a
    /// stand-in.
    #[arg(long, value_name = "SUITE::CHECK=WHY", value_parser = crate::run::simulated_check)]
    pub simulated: Vec<(String, String)>,
    /// How long the finished Job, its pod and logs stay (ttlSecondsAfterFinished).
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = humantime_duration)]
    pub ttl: Duration,
    /// A node label the pod must match (nodeSelector); repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = crate::run::AssignmentParser)]
    pub node_selector: Vec<(String, String)>,
    /// A taint the pod tolerates: KEY, KEY=VALUE, with :EFFECT (NoSchedule, ...); repeatable.
    #[arg(long, value_name = "KEY[=VALUE][:EFFECT]")]
    pub toleration: Vec<String>,
    /// Live run: where junit.xml, report.md and report.json of the pod go.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub report_dir: PathBuf,
    /// Live run: give up (and delete everything) after this long; default: the Job's
    /// activeDeadlineSeconds plus the start timeout.
    #[arg(long, value_name = "DURATION", value_parser = humantime_duration)]
    pub timeout: Option<Duration>,
    /// Live run: how long the pod may take to be scheduled and start its container.
    #[arg(long, value_name = "DURATION", default_value = "2m", value_parser = humantime_duration)]
    pub start_timeout: Duration,
}

/// `--toleration` as a Toleration object.
fn toleration(text: &str) -> Result<serde_json::Value, String> {
    let (rest, effect) = match text.rsplit_once(':') {
        Some((rest, effect)) => (rest, Some(effect)),
        None => (text, None),
    };
    if let Some(effect) = effect {
        if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
            return Err(format!(
                "--toleration {text}: the effect is NoSchedule, PreferNoSchedule or NoExecute"
            ));
        }
    }
    let mut object = serde_json::Map::new();
    match rest.split_once('=') {
        Some((key, value)) => {
            object.insert("key".into(), key.into());
            object.insert("operator".into(), "Equal".into());
            object.insert("value".into(), value.into());
        }
        None => {
            object.insert("key".into(), rest.into());
            object.insert("operator".into(), "Exists".into());
        }
    }
    if object["key"].as_str().is_none_or(str::is_empty) {
        return Err(format!("--toleration {text}: no key"));
    }
    if let Some(effect) = effect {
        object.insert("effect".into(), effect.into());
    }
    Ok(serde_json::Value::Object(object))
}

/// `--node-selector` and `--toleration` on the Job's pod template.
fn place(args: &JobArgs, documents: &mut [(Vec<String>, serde_json::Value)]) -> Result<(), u8> {
    let mut tolerations = Vec::new();
    for text in &args.toleration {
        tolerations.push(toleration(text).map_err(|e| {
            error_line(&e);
            exit::USAGE
        })?);
    }
    for (_, object) in documents.iter_mut() {
        if object["kind"] != "Job" {
            continue;
        }
        let spec = &mut object["spec"]["template"]["spec"];
        for (key, value) in &args.node_selector {
            spec["nodeSelector"][key] = value.clone().into();
        }
        if !tolerations.is_empty() {
            spec["tolerations"] = tolerations.clone().into();
        }
    }
    Ok(())
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    attest_core::duration::parse_duration(text)
}

/// `attest job`: exit 2 on bad input; live, the pod's exit code.
pub fn main(
    args: JobArgs,
    runtime: &tokio::runtime::Runtime,
    stop: &std::sync::Arc<StopSignals>,
) -> u8 {
    let run = || -> Result<u8, u8> {
        let account = args.account.account()?;
        rbac::check_name("--name", &args.name)?;
        let selected = args.select.load()?;
        let rbac = rbac::generate(&selected, &args.select, &account, runtime)?;
        let plan = plan(&args, &selected, account.clone())?;
        let manifests = job::manifests(&plan, &selected.redactor).map_err(|e| {
            error_line(&e.to_string());
            exit::USAGE
        })?;
        let mut header = rbac::header(&selected, &rbac, &account, "An in-cluster run");
        header.push(format!(
            "Results: kubectl logs -f job/{} -n {}; activeDeadlineSeconds is every selected check's timeout in a row plus {} s.",
            plan.name,
            account.namespace,
            job::DEADLINE_MARGIN.as_secs()
        ));
        let mut text = rbac::comments(&header);
        let mut documents = rbac.documents();
        documents.extend(manifests.documents());
        place(&args, &mut documents)?;
        // Everything but the Secret is checked for secret values (the ConfigMap already was).
        let public: Vec<_> = documents
            .iter()
            .filter(|(_, object)| object["kind"] != "Secret")
            .cloned()
            .collect();
        rbac::refuse_secrets(
            &yaml_documents(&public),
            &selected.redactor,
            "the manifests",
        )?;
        if !args.dry_run {
            let limit = args.timeout.unwrap_or_else(|| {
                job::deadline(plan.checks_time) + args.start_timeout + Duration::from_secs(30)
            });
            return Ok(live(
                &args,
                documents,
                &account.namespace,
                &plan.name,
                limit,
                &selected.redactor,
                runtime,
                stop,
            ));
        }
        text.push_str(&yaml_documents(&documents));
        print!("{text}");
        Ok(exit::SUCCESS)
    };
    match run() {
        Ok(code) => code,
        Err(code) => code,
    }
}

/// The live round trip; returns the exit code.
#[allow(clippy::too_many_arguments)]
fn live(
    args: &JobArgs,
    mut documents: Vec<(Vec<String>, serde_json::Value)>,
    namespace: &str,
    job_name: &str,
    limit: Duration,
    redactor: &Redactor,
    runtime: &tokio::runtime::Runtime,
    stop: &std::sync::Arc<StopSignals>,
) -> u8 {
    let run_id = attest_core::cleanup::new_run_id();
    launch::mark(&mut documents, &run_id);
    let access = KubeAccess::new(KubeOptions {
        kubeconfig: args.select.kubeconfig.clone(),
        context: args.select.context.clone(),
        suite_default: false,
    });
    let clock = Instant::now();
    runtime.block_on(async {
        let client = match access.client(Duration::from_secs(30)).await {
            Ok(client) => client,
            Err(e) => {
                error_line(&format!("attest job: cannot reach the cluster: {e}"));
                return exit::NOT_VERIFIED;
            }
        };
        match launch::preflight(&client, &documents, namespace).await {
            Ok(missing) if missing.is_empty() => {}
            Ok(missing) => {
                error_line(&format!(
                    "attest job: you may not create what the run needs (nothing was created); missing:\n  {}",
                    missing.join("\n  ")
                ));
                return exit::USAGE;
            }
            Err(e) => {
                error_line(&format!("attest job: {e}"));
                return exit::NOT_VERIFIED;
            }
        }
        // From here on a signal stops the Job and deletes everything (StopSignals' cancel).
        stop.arm();
        say(&format!(
            "attest job: run {run_id}: creating {} objects (label {}={run_id}), Job {namespace}/{job_name}",
            documents.len(),
            launch::RUN_LABEL
        ));
        let mut created = Vec::new();
        let outcome = match launch::create_all(&client, &documents, &mut created).await {
            Err(e) => Err(e),
            Ok(()) => {
                let deadline = Instant::now() + limit;
                let mut out = |line: &str| {
                    use std::io::Write;
                    let mut stdout = std::io::stdout().lock();
                    let _ = writeln!(stdout, "{}", redactor.redact(line));
                };
                let watch = launch::Watch {
                    namespace,
                    job: job_name,
                    run_id: &run_id,
                    start_limit: args.start_timeout,
                    deadline,
                };
                Ok(launch::follow(&client, &watch, &stop.cancel, &mut out).await)
            }
        };
        let started = clock.elapsed();
        let grace = if stop.hurry.is_cancelled() { 10 } else { 60 };
        let problems = tokio::select! {
            problems = launch::delete_all(&client, &created, namespace, &run_id, Duration::from_secs(grace)) => problems,
            _ = stop.hurry.cancelled() => vec!["interrupted by a second signal".to_owned()],
        };
        let cleaned = if problems.is_empty() {
            format!("deleted the {} objects created and the pod", created.len())
        } else {
            format!(
                "could not delete everything ({}); `attest cleanup --kubeconfig … --drop` removes what carries {}={run_id}",
                problems.join("; "),
                launch::RUN_LABEL
            )
        };
        let code = match outcome {
            Err(e) => {
                error_line(&format!("attest job: {e}; {cleaned}"));
                return exit::NOT_VERIFIED;
            }
            Ok(launch::End::Finished {
                exit_code,
                reports,
                report_problem,
            }) => {
                let mut code = u8::try_from(exit_code).unwrap_or(exit::CHECK_FAILED);
                if let Err(e) = std::fs::create_dir_all(&args.report_dir) {
                    error_line(&format!("cannot create `{}`: {e}", args.report_dir.display()));
                    code = code.max(exit::CHECK_FAILED);
                }
                let mut written = Vec::new();
                for (name, bytes) in &reports {
                    let path = args.report_dir.join(name);
                    match std::fs::write(&path, bytes) {
                        Ok(()) => written.push(path.display().to_string()),
                        Err(e) => {
                            error_line(&format!("cannot write `{}`: {e}", path.display()));
                            code = code.max(exit::CHECK_FAILED);
                        }
                    }
                }
                if let Some(problem) = report_problem {
                    error_line(&format!("attest job: reports incomplete: {problem}"));
                    code = code.max(exit::CHECK_FAILED);
                }
                say(&format!(
                    "attest job: the pod's attest exited {exit_code} after {:.1} s; reports: {}; {cleaned}",
                    started.as_secs_f64(),
                    if written.is_empty() { "none".into() } else { written.join(", ") }
                ));
                code
            }
            Ok(launch::End::NotStarted(why)) => {
                error_line(&format!("attest job: nothing ran: {why}\n{cleaned}"));
                exit::NOT_VERIFIED
            }
            Ok(launch::End::TimedOut(why)) => {
                error_line(&format!(
                    "attest job: timed out after {} s ({why}); {cleaned}",
                    limit.as_secs()
                ));
                exit::NOT_VERIFIED
            }
            Ok(launch::End::Interrupted) => {
                let signal = stop.interruption();
                error_line(&format!(
                    "attest job: interrupted ({}); {cleaned}",
                    signal.map(|s| s.name()).unwrap_or("signal")
                ));
                signal.map(|s| s.exit_code()).unwrap_or(exit::INTERRUPTED)
            }
            Ok(launch::End::Error(e)) => {
                error_line(&format!("attest job: {e}; {cleaned}"));
                exit::NOT_VERIFIED
            }
        };
        code
    })
}

/// The folder all `paths` are in.
fn common_root(paths: &[PathBuf]) -> PathBuf {
    let mut root = paths
        .first()
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    for path in paths {
        while !path.starts_with(&root) {
            if !root.pop() {
                break;
            }
        }
    }
    root
}

/// What goes into the Job: the selected suites and the story documents they name (paths
/// relative to their common folder, so a suite's `../fixtures/…` still resolves), the values
/// given from outside the suites split into plain and secret, and `attest run`'s flags.
fn plan(
    args: &JobArgs,
    selected: &Selected,
    account: attest_core::k8s::rbac::Account,
) -> Result<JobPlan, u8> {
    let mut sources: Vec<(PathBuf, bool)> = Vec::new();
    let mut plain_vars = BTreeMap::new();
    let mut secret_vars = BTreeMap::new();
    let mut checks_time = Duration::ZERO;
    for (suite, checks) in selected.each() {
        sources.push((suite.path.clone(), true));
        if let Some(story) = &suite.story_file {
            let folder = suite.path.parent().unwrap_or(Path::new("."));
            sources.push((folder.join(story), false));
        }
        checks_time += checks.iter().map(|c| c.decl.timeout).sum::<Duration>();
        for variable in &suite.variables {
            if let VariableSource::Given(value) = &variable.source {
                // Secret anywhere is secret everywhere.
                if variable.secret || secret_vars.contains_key(&variable.name) {
                    plain_vars.remove(&variable.name);
                    secret_vars.insert(variable.name.clone(), value.clone());
                } else {
                    plain_vars.insert(variable.name.clone(), value.clone());
                }
            }
        }
    }
    let mut absolute = Vec::new();
    for (path, _) in &sources {
        match std::fs::canonicalize(path) {
            Ok(path) => absolute.push(path),
            Err(e) => {
                error_line(&format!("cannot read `{}`: {e}", path.display()));
                return Err(exit::USAGE);
            }
        }
    }
    let root = common_root(&absolute);
    let mut files: Vec<BundleFile> = Vec::new();
    let mut suites = Vec::new();
    for ((path, is_suite), full) in sources.iter().zip(&absolute) {
        let relative = full
            .strip_prefix(&root)
            .unwrap_or(full)
            .to_string_lossy()
            .into_owned();
        if files.iter().any(|f| f.path == relative) {
            continue;
        }
        let text = std::fs::read_to_string(full).map_err(|e| {
            error_line(&format!("cannot read `{}`: {e}", path.display()));
            exit::USAGE
        })?;
        if *is_suite {
            suites.push(relative.clone());
        }
        files.push(BundleFile {
            path: relative,
            text,
        });
    }
    let select = &args.select;
    let mut run_args: Vec<String> = Vec::new();
    if let Some(filter) = &selected.filter {
        run_args.push(filter.clone());
    }
    run_args.extend(select.names.as_flags());
    for (on, flag) in [
        (select.allow_mutating, "--allow-mutating"),
        (select.allow_destructive, "--allow-destructive"),
        (args.require_all, "--require-all"),
    ] {
        if on {
            run_args.push(flag.into());
        }
    }
    if let Some(target) = &args.target {
        run_args.extend(["--target".into(), target.clone()]);
    }
    for (check, why) in &args.simulated {
        run_args.extend(["--simulated".into(), format!("{check}={why}")]);
    }
    Ok(JobPlan {
        account,
        name: args.name.clone(),
        image: args.image.clone(),
        files,
        suites,
        plain_vars,
        secret_vars,
        run_args,
        checks_time,
        ttl: args.ttl,
    })
}

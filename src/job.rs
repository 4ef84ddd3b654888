//! `attest job --dry-run -o yaml`: the manifests of an in-cluster run (ServiceAccount and
//! RBAC, a ConfigMap with the suites, a Secret with the secret values, a hardened Job).
//! Without `--dry-run`: the live round trip (attest_core::k8s::launch): the same manifests,
//! labelled with a run id, created after a permission preflight; the pod's console followed;
//! the reports brought back into `--report-dir`; everything deleted on every path.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};

use crate::console::{error_line, say, Failure};
use crate::rbac::{self, AccountArgs, Selected, Selection};
use attest_core::exit;
use attest_core::k8s::job::{self, BundleFile, JobPlan};
use attest_core::k8s::launch;
use attest_core::k8s::rbac::yaml_documents;
use attest_core::k8s::{KubeAccess, KubeOptions};
use attest_core::load::VariableSource;
use attest_core::redact::Redactor;
use attest_core::report::fleet;
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
fn place(
    args: &JobArgs,
    documents: &mut [(Vec<String>, serde_json::Value)],
) -> Result<(), Failure> {
    let mut tolerations = Vec::new();
    for text in &args.toleration {
        tolerations.push(toleration(text).map_err(Failure::usage)?);
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

/// `attest job`: exit 2 on bad input; live, the pod's exit code (with several `--context`s,
/// the worst of the clusters').
pub fn main(
    args: JobArgs,
    runtime: &tokio::runtime::Runtime,
    stop: &std::sync::Arc<StopSignals>,
) -> Result<u8, Failure> {
    rbac::check_name("--name", &args.name)?;
    let contexts = contexts(&args.select.context)?;
    let fleet = contexts.len() > 1;
    let selected = args.select.load()?;
    let mut clusters = Vec::new();
    let mut text = String::new();
    for context in contexts {
        let (cluster, manifests) = prepare(&args, &selected, context, fleet, runtime)?;
        text.push_str(&manifests);
        clusters.push(cluster);
    }
    if !args.dry_run {
        return Ok(live(&args, clusters, &selected.redactor, runtime, stop));
    }
    print!("{text}");
    Ok(exit::SUCCESS)
}

/// The contexts given: none (`[None]`, the kubeconfig's current one), one, or a fleet.
fn contexts(given: &[String]) -> Result<Vec<Option<String>>, Failure> {
    for (i, context) in given.iter().enumerate() {
        if given[..i].contains(context) {
            return Err(Failure::usage(format!("--context {context}: given twice")));
        }
    }
    match given.is_empty() {
        true => Ok(vec![None]),
        false => Ok(given.iter().cloned().map(Some).collect()),
    }
}

/// One cluster of a run: where its Job goes and what is created there.
struct Cluster {
    /// The kubeconfig context (`None`: the current one).
    context: Option<String>,
    /// `[east] ` before its console lines and messages in a fleet run; empty for one cluster.
    prefix: String,
    namespace: String,
    job_name: String,
    documents: Vec<(Vec<String>, serde_json::Value)>,
    /// `--timeout`, or the Job's deadline plus the start timeout.
    limit: Duration,
}

impl Cluster {
    fn options(&self, args: &JobArgs) -> KubeOptions {
        KubeOptions {
            kubeconfig: args.select.kubeconfig.clone(),
            context: self.context.clone(),
            suite_default: false,
        }
    }

    fn say(&self, text: &str) {
        say(&format!("{}{text}", self.prefix));
    }

    /// Nothing ran on this cluster, and why.
    fn not_run(&self, text: String) -> Failure {
        Failure::NotRun {
            message: format!("{}{text}", self.prefix),
            hint: None,
        }
    }

    fn error(&self, text: &str) {
        error_line(&format!("{}{text}", self.prefix));
    }
}

/// One cluster's manifests (RBAC discovered through its context, in its namespace: `-n`, else
/// the context's, else `default`), checked for secret values; and their YAML for --dry-run.
fn prepare(
    args: &JobArgs,
    selected: &Selected,
    context: Option<String>,
    fleet: bool,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Cluster, String), Failure> {
    let options = KubeOptions {
        kubeconfig: args.select.kubeconfig.clone(),
        context: context.clone(),
        suite_default: false,
    };
    let namespace = args
        .account
        .namespace
        .clone()
        .or_else(|| options.context_namespace())
        .unwrap_or_else(|| "default".to_owned());
    let account = args.account.account_in(&namespace)?;
    let rbac = rbac::generate(
        selected,
        &args.select,
        context.as_deref(),
        &account,
        runtime,
    )?;
    let plan = plan(args, selected, account.clone())?;
    let manifests =
        job::manifests(&plan, &selected.redactor).map_err(|e| Failure::usage(e.to_string()))?;
    let mut header = rbac::header(selected, &rbac, &account, "An in-cluster run");
    if fleet {
        header.insert(
            0,
            format!(
                "Cluster: context `{}`, namespace {namespace}.",
                context.as_deref().unwrap_or_default()
            ),
        );
    }
    header.push(format!(
        "Results: kubectl logs -f job/{} -n {}; activeDeadlineSeconds is every selected check's timeout in a row plus {} s.",
        plan.name,
        account.namespace,
        job::DEADLINE_MARGIN.as_secs()
    ));
    let mut documents = rbac.documents();
    documents.extend(manifests.documents());
    place(args, &mut documents)?;
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
    let mut text = rbac::comments(&header);
    text.push_str(&yaml_documents(&documents));
    let limit = args.timeout.unwrap_or_else(|| {
        job::deadline(plan.checks_time) + args.start_timeout + Duration::from_secs(30)
    });
    let prefix = match (&context, fleet) {
        (Some(context), true) => format!("[{context}] "),
        _ => String::new(),
    };
    let cluster = Cluster {
        context,
        prefix,
        namespace,
        job_name: plan.name,
        documents,
        limit,
    };
    Ok((cluster, text))
}

/// The live round trip on every cluster; returns the exit code. Every cluster is reached and
/// its preflight passed before anything is created on any of them; then their Jobs run side
/// by side on this runtime, each deleting what it created on every path (a signal stops them
/// all: [`StopSignals`]' cancel).
fn live(
    args: &JobArgs,
    mut clusters: Vec<Cluster>,
    redactor: &Redactor,
    runtime: &tokio::runtime::Runtime,
    stop: &std::sync::Arc<StopSignals>,
) -> u8 {
    let fleet = clusters.len() > 1;
    let clock = Instant::now();
    runtime.block_on(async {
        let ready =
            futures::future::join_all(clusters.iter().map(|cluster| ready(args, cluster))).await;
        let refused: Vec<(&Cluster, &Failure)> = clusters
            .iter()
            .zip(&ready)
            .filter_map(|(cluster, ready)| ready.as_ref().err().map(|f| (cluster, f)))
            .collect();
        if !refused.is_empty() {
            refused.iter().for_each(|(_, failure)| failure.report());
            let code = exit::worst(refused.iter().map(|(_, failure)| failure.exit_code()));
            if fleet {
                let names: Vec<&str> = refused
                    .iter()
                    .map(|(c, _)| c.context.as_deref().unwrap_or_default())
                    .collect();
                error_line(&format!(
                    "attest job: nothing was created in any of the {} clusters: the preflight failed in {}",
                    clusters.len(),
                    names.join(", ")
                ));
            }
            return code;
        }
        let clients: Vec<kube::Client> = ready.into_iter().flatten().collect();
        if fleet {
            let names: Vec<&str> = clusters
                .iter()
                .map(|c| c.context.as_deref().unwrap_or_default())
                .collect();
            say(&format!(
                "attest job: the preflight passed in all {} clusters ({}); starting their Jobs side by side",
                clusters.len(),
                names.join(", ")
            ));
        }
        // From here on a signal stops the Jobs and deletes everything (StopSignals' cancel).
        stop.arm();
        let folders = folders(&clusters);
        let run_ids: Vec<String> = clusters
            .iter_mut()
            .map(|cluster| {
                let run_id = attest_core::cleanup::new_run_id();
                launch::mark(&mut cluster.documents, &run_id);
                run_id
            })
            .collect();
        let runs = clusters.iter().zip(&clients).zip(&folders).zip(&run_ids).map(
            |(((cluster, client), folder), run_id)| {
                let dir = match fleet {
                    true => args.report_dir.join(folder),
                    false => args.report_dir.clone(),
                };
                run_one(args, cluster, run_id, client, dir, redactor, stop)
            },
        );
        let ends = futures::future::join_all(runs).await;
        if !fleet {
            return ends.into_iter().next().map(|e| e.code).unwrap_or(exit::NOT_VERIFIED);
        }
        merge(args, &clusters, &folders, ends, clock.elapsed())
    })
}

/// Reaches the cluster and asks whether the launcher may create and watch everything
/// (nothing is created yet).
async fn ready(args: &JobArgs, cluster: &Cluster) -> Result<kube::Client, Failure> {
    let access = KubeAccess::new(cluster.options(args));
    let client = access
        .client(Duration::from_secs(30))
        .await
        .map_err(|e| cluster.not_run(format!("attest job: cannot reach the cluster: {e}")))?;
    match launch::preflight(&client, &cluster.documents, &cluster.namespace).await {
        Ok(missing) if missing.is_empty() => Ok(client),
        Ok(missing) => Err(Failure::usage(format!(
            "{}attest job: you may not create what the run needs (nothing was created); missing:\n  {}",
            cluster.prefix,
            missing.join("\n  ")
        ))),
        Err(e) => Err(cluster.not_run(format!("attest job: {e}"))),
    }
}

/// How one cluster's run ended.
struct ClusterEnd {
    code: u8,
    /// One line for the merged reports (redacted).
    ended: String,
    /// The pod's report.json, if it sent one.
    report_json: Option<Vec<u8>>,
}

/// One cluster's round trip: create, follow the pod (its lines prefixed in a fleet run),
/// delete everything, write its reports into `report_dir`.
#[allow(clippy::too_many_arguments)]
async fn run_one(
    args: &JobArgs,
    cluster: &Cluster,
    run_id: &str,
    client: &kube::Client,
    report_dir: PathBuf,
    redactor: &Redactor,
    stop: &StopSignals,
) -> ClusterEnd {
    let clock = Instant::now();
    let (namespace, job_name) = (cluster.namespace.as_str(), cluster.job_name.as_str());
    cluster.say(&format!(
        "attest job: run {run_id}: creating {} objects (label {}={run_id}), Job {namespace}/{job_name}",
        cluster.documents.len(),
        launch::RUN_LABEL
    ));
    let mut created = Vec::new();
    let outcome = match launch::create_all(client, &cluster.documents, &mut created).await {
        Err(e) => Err(e),
        Ok(()) => {
            let deadline = Instant::now() + cluster.limit;
            let mut out = |line: &str| {
                use std::io::Write;
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "{}{}", cluster.prefix, redactor.redact(line));
            };
            let watch = launch::Watch {
                namespace,
                job: job_name,
                run_id,
                start_limit: args.start_timeout,
                deadline,
            };
            Ok(launch::follow(client, &watch, &stop.cancel, &mut out).await)
        }
    };
    let started = clock.elapsed();
    let grace = if stop.hurry.is_cancelled() { 10 } else { 60 };
    let problems = tokio::select! {
        problems = launch::delete_all(client, &created, namespace, run_id, Duration::from_secs(grace)) => problems,
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
    let end = |code: u8, ended: String| ClusterEnd {
        code,
        ended: redactor.redact(&ended),
        report_json: None,
    };
    match outcome {
        Err(e) => {
            cluster.error(&format!("attest job: {e}; {cleaned}"));
            end(exit::NOT_VERIFIED, format!("not created: {e}"))
        }
        Ok(launch::End::Finished {
            exit_code,
            reports,
            report_problem,
        }) => {
            let mut code = u8::try_from(exit_code).unwrap_or(exit::CHECK_FAILED);
            let (written, failed) = write_reports(&report_dir, &reports);
            for problem in failed {
                cluster.error(&problem);
                code = code.max(exit::CHECK_FAILED);
            }
            if let Some(problem) = &report_problem {
                cluster.error(&format!("attest job: reports incomplete: {problem}"));
                code = code.max(exit::CHECK_FAILED);
            }
            cluster.say(&format!(
                "attest job: the pod's attest exited {exit_code} after {:.1} s; reports: {}; {cleaned}",
                started.as_secs_f64(),
                if written.is_empty() { "none".into() } else { written.join(", ") }
            ));
            let mut ended = format!("attest exited {exit_code}");
            if let Some(problem) = report_problem {
                ended.push_str(&format!("; reports incomplete: {problem}"));
            }
            ClusterEnd {
                report_json: reports
                    .into_iter()
                    .find(|(name, _)| name == "report.json")
                    .map(|(_, bytes)| bytes),
                ..end(code, ended)
            }
        }
        Ok(launch::End::NotStarted(why)) => {
            cluster.error(&format!("attest job: nothing ran: {why}\n{cleaned}"));
            end(exit::NOT_VERIFIED, format!("nothing ran: {why}"))
        }
        Ok(launch::End::TimedOut(why)) => {
            let text = format!("timed out after {} s ({why})", cluster.limit.as_secs());
            cluster.error(&format!("attest job: {text}; {cleaned}"));
            end(exit::NOT_VERIFIED, text)
        }
        Ok(launch::End::Interrupted) => {
            let signal = stop.interruption();
            let text = format!(
                "interrupted ({})",
                signal.map(|s| s.name()).unwrap_or("signal")
            );
            cluster.error(&format!("attest job: {text}; {cleaned}"));
            end(
                signal.map(|s| s.exit_code()).unwrap_or(exit::INTERRUPTED),
                text,
            )
        }
        Ok(launch::End::Error(e)) => {
            cluster.error(&format!("attest job: {e}; {cleaned}"));
            end(exit::NOT_VERIFIED, format!("error: {e}"))
        }
    }
}

/// Writes report files into `dir`; the paths written, and what could not be written.
fn write_reports(dir: &Path, reports: &[(String, Vec<u8>)]) -> (Vec<String>, Vec<String>) {
    let (mut written, mut failed) = (Vec::new(), Vec::new());
    if let Err(e) = std::fs::create_dir_all(dir) {
        failed.push(format!("cannot create `{}`: {e}", dir.display()));
        return (written, failed);
    }
    for (name, bytes) in reports {
        let path = dir.join(name);
        match std::fs::write(&path, bytes) {
            Ok(()) => written.push(path.display().to_string()),
            Err(e) => failed.push(format!("cannot write `{}`: {e}", path.display())),
        }
    }
    (written, failed)
}

/// Each cluster's reports folder under `--report-dir`: its context, with anything but
/// letters, digits, `.`, `_` and `-` made `_` (an EKS context is an ARN), and a number added
/// when two would meet.
fn folders(clusters: &[Cluster]) -> Vec<String> {
    let mut folders: Vec<String> = Vec::new();
    for cluster in clusters {
        let context = cluster.context.as_deref().unwrap_or("current");
        let mut folder: String = context
            .chars()
            .map(|c| match c.is_ascii_alphanumeric() || "._-".contains(c) {
                true => c,
                false => '_',
            })
            .collect();
        if folder.chars().all(|c| c == '.') {
            folder = folder.replace('.', "_");
        }
        let base = folder.clone();
        let mut n = 2;
        while folders.contains(&folder) {
            folder = format!("{base}-{n}");
            n += 1;
        }
        folders.push(folder);
    }
    folders
}

/// A fleet run's merged reports in `--report-dir` (each cluster's own are in its folder
/// there); returns the worst exit code.
fn merge(
    args: &JobArgs,
    clusters: &[Cluster],
    folders: &[String],
    ends: Vec<ClusterEnd>,
    took: Duration,
) -> u8 {
    let mut runs = Vec::new();
    let mut problems = Vec::new();
    for ((cluster, folder), end) in clusters.iter().zip(folders).zip(ends) {
        let name = cluster.context.clone().unwrap_or_default();
        let report = end
            .report_json
            .and_then(|bytes| match fleet::parse(&name, &bytes) {
                Ok(report) => Some(report),
                Err(e) => {
                    problems.push(e.to_string());
                    None
                }
            });
        runs.push(fleet::ClusterRun {
            cluster: name,
            namespace: cluster.namespace.clone(),
            exit_code: end.code,
            ended: end.ended,
            folder: folder.clone(),
            report,
        });
    }
    let mut code = fleet::exit_code(&runs);
    let files: Vec<(String, Vec<u8>)> = fleet::render_all(env!("CARGO_PKG_VERSION"), &runs)
        .into_iter()
        .map(|(name, text)| (name.to_owned(), text.into_bytes()))
        .collect();
    let (written, failed) = write_reports(&args.report_dir, &files);
    for problem in problems.iter().chain(&failed) {
        error_line(&format!("attest job: {problem}"));
        code = code.max(exit::CHECK_FAILED);
    }
    let each: Vec<String> = runs
        .iter()
        .map(|r| format!("{} exit {}", r.cluster, r.exit_code))
        .collect();
    say(&format!(
        "attest job: {} clusters in {:.1} s ({}); exit {code}, the worst; merged reports: {}",
        runs.len(),
        took.as_secs_f64(),
        each.join(", "),
        if written.is_empty() {
            "none".into()
        } else {
            written.join(", ")
        }
    ));
    code
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
) -> Result<JobPlan, Failure> {
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
                return Err(Failure::usage(format!(
                    "cannot read `{}`: {e}",
                    path.display()
                )));
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
        let text = std::fs::read_to_string(full)
            .map_err(|e| Failure::usage(format!("cannot read `{}`: {e}", path.display())))?;
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

//! `attest job --dry-run -o yaml`: the manifests of an in-cluster run (ServiceAccount and
//! RBAC, a ConfigMap with the suites, a Secret with the secret values, a hardened Job).
//! Applying them, waiting and collecting the reports (the live round trip) is not built yet.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};

use crate::console::error_line;
use crate::rbac::{self, AccountArgs, Selected, Selection};
use attest_core::exit;
use attest_core::k8s::job::{self, BundleFile, JobPlan};
use attest_core::k8s::rbac::yaml_documents;
use attest_core::load::VariableSource;

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
    /// Print the manifests instead of running the Job (the only mode built so far).
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
    /// How long the finished Job, its pod and logs stay (ttlSecondsAfterFinished).
    #[arg(long, value_name = "DURATION", default_value = "1d", value_parser = humantime_duration)]
    pub ttl: Duration,
}

fn humantime_duration(text: &str) -> Result<Duration, String> {
    attest_core::duration::parse_duration(text)
}

/// `attest job`: exit 2 on bad input, and without `--dry-run` (not built yet).
pub fn main(args: JobArgs, runtime: &tokio::runtime::Runtime) -> u8 {
    if !args.dry_run {
        error_line("`attest job` without --dry-run (apply the Job, wait for it, collect its reports) is not built yet; print the manifests with `attest job --dry-run -o yaml … | kubectl apply -f -` and read the results with `kubectl logs job/NAME -n NS`");
        return exit::USAGE;
    }
    let run = || -> Result<(), u8> {
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
        text.push_str(&yaml_documents(&documents));
        print!("{text}");
        Ok(())
    };
    match run() {
        Ok(()) => exit::SUCCESS,
        Err(code) => code,
    }
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
    for (on, flag) in [
        (select.exact, "--exact"),
        (select.ignored, "--ignored"),
        (select.include_ignored, "--include-ignored"),
        (select.allow_mutating, "--allow-mutating"),
        (select.allow_destructive, "--allow-destructive"),
        (args.require_all, "--require-all"),
    ] {
        if on {
            run_args.push(flag.into());
        }
    }
    for skip in &select.skip {
        run_args.extend(["--skip".into(), skip.clone()]);
    }
    if let Some(target) = &args.target {
        run_args.extend(["--target".into(), target.clone()]);
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

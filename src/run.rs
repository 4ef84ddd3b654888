//! `attest run`: its arguments, and the run itself (load once, plan, execute, reports).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use colored::Colorize;
use libtest_mimic::{Arguments, ColorSetting, FormatSetting};

use attest_core::context::Services;
use attest_core::exit;
use attest_core::k8s::secrets::SecretVariables;
use attest_core::k8s::{KubeClusters, KubeOptions};
use attest_core::load::{self, External, Purpose, VarSources};
use attest_core::redact::Redactor;
use attest_core::report;
use attest_core::runner::{self, FinalState, RunConfig, Site, StopSignals};
use attest_core::safety::Safety;

use crate::console::{
    error_line, report_load_errors, report_load_warnings, say, show_paths, verdict_line, Color,
    Failure, Notices,
};

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Suite files or folders (default `suites/`), then optionally one name filter.
    #[arg(value_name = "PATH|FILTER")]
    pub positional: Vec<String>,
    /// YAML file of variable values (`name: value`); may be given more than once.
    #[arg(long = "vars", value_name = "FILE")]
    pub vars: Vec<PathBuf>,
    /// Set a variable, over everything else.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = AssignmentParser)]
    pub set: Vec<(String, String)>,
    /// Where junit.xml, report.md and report.json go.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub report_dir: PathBuf,
    /// Let mutating checks run (they create things and remove them again).
    #[arg(long)]
    pub allow_mutating: bool,
    /// Let destructive checks run (they disrupt workloads); implies --allow-mutating.
    #[arg(long)]
    pub allow_destructive: bool,
    /// Fail the run (exit code 3) when a selected check was skipped instead of verified: no
    /// cluster, a variable with no value, a missing opt-in, `ignore:`, a failed prerequisite.
    #[arg(long)]
    pub require_all: bool,
    /// Label of the environment for reports (default `live`).
    #[arg(long, value_name = "LABEL")]
    pub target: Option<String>,
    /// Kubeconfig for Kubernetes checks (default: KUBECONFIG, ~/.kube/config, then the
    /// in-cluster ServiceAccount). Read only when a Kubernetes check runs.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// Why Kubernetes checks cannot run here (the sandbox without its testbed): they are
    /// skipped with this reason.
    #[arg(skip)]
    pub kube_unavailable: Option<String>,
    /// Checks this environment cannot verify (`suite::check`, why): the sandbox's stand-ins
    /// for what they do not meet; skipped with the reason.
    #[arg(skip)]
    pub unverifiable: Vec<(String, String)>,
    /// Label a check's result simulated: it runs against a stand-in, which WHY names (the
    /// sandbox's DNS stand-in for CoreDNS); `[KIND]=WHY` labels every check of a kind. Every
    /// report says so next to the result.
    #[arg(long, value_name = "SUITE::CHECK=WHY", value_parser = simulated_check)]
    pub simulated: Vec<(String, String)>,
    /// Most `sql` sessions open at once to one PostgreSQL server (fewer when the server has
    /// less than twice that many free connection slots).
    #[arg(long, value_name = "N", default_value_t = attest_core::pg::DEFAULT_POOL_SIZE,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub pg_pool_size: u16,
    #[command(flatten)]
    pub libtest: LibtestFlags,
}

/// Which checks by name, as libtest's flags choose them: `attest run`, `rbac` and `job` share
/// them (the name filter itself is a positional argument).
#[derive(Args, Debug, Clone, Default)]
pub struct NameFilters {
    /// Match the filter exactly.
    #[arg(long)]
    pub exact: bool,
    /// Skip checks whose names contain FILTER (repeatable).
    #[arg(long, value_name = "FILTER")]
    pub skip: Vec<String>,
    /// Only checks marked `ignore:`.
    #[arg(long)]
    pub ignored: bool,
    /// Checks marked `ignore:` too.
    #[arg(long)]
    pub include_ignored: bool,
}

impl NameFilters {
    /// libtest's arguments for these filters and `filter`; the rest as libtest defaults them.
    pub fn arguments(&self, filter: Option<String>) -> Arguments {
        Arguments {
            filter,
            exact: self.exact,
            skip: self.skip.clone(),
            ignored: self.ignored,
            include_ignored: self.include_ignored,
            ..Arguments::default()
        }
    }

    /// The same filters as `attest run` flags (for a run elsewhere: the Job's pod).
    pub fn as_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        for (on, flag) in [
            (self.exact, "--exact"),
            (self.ignored, "--ignored"),
            (self.include_ignored, "--include-ignored"),
        ] {
            if on {
                flags.push(flag.to_owned());
            }
        }
        for skip in &self.skip {
            flags.extend(["--skip".to_owned(), skip.clone()]);
        }
        flags
    }
}

/// The libtest flags, as `cargo test -- …` knows them.
#[derive(Args, Debug, Clone, Default)]
pub struct LibtestFlags {
    /// List checks instead of running them.
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub names: NameFilters,
    /// How many checks report at once (suites always run concurrently, checks of a suite in order).
    #[arg(long, value_name = "N")]
    pub test_threads: Option<usize>,
    /// One character per check.
    #[arg(short, long)]
    pub quiet: bool,
    /// Console format.
    #[arg(long, value_enum, value_name = "pretty|terse|json")]
    pub format: Option<Format>,
    /// Colour: auto, always or never (NO_COLOR is honoured under auto).
    #[arg(long, value_enum, value_name = "auto|always|never")]
    pub color: Option<Color>,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum Format {
    Pretty,
    Terse,
    Json,
}

/// `--simulated SUITE::CHECK=WHY` or `--simulated [KIND]=WHY`.
pub(crate) fn simulated_check(text: &str) -> Result<(String, String), String> {
    let names_checks = |name: &str| {
        name.contains("::")
            || name
                .strip_prefix('[')
                .and_then(|kind| kind.strip_suffix(']'))
                .is_some_and(|kind| attest_core::checks::kind_name(kind).is_some())
    };
    match text.split_once('=') {
        Some((name, why)) if names_checks(name.trim()) && !why.trim().is_empty() => {
            Ok((name.trim().to_owned(), why.trim().to_owned()))
        }
        _ => Err(format!(
            "expected SUITE::CHECK=WHY or [KIND]=WHY (a check's full name or a kind such as `[dns]`, then what stands in for what), found `{text}`"
        )),
    }
}

/// Parses `--set NAME=VALUE`. Not a plain function parser: clap would echo the whole
/// argument in its error, and the value may be a password.
#[derive(Clone)]
pub(crate) struct AssignmentParser;

impl clap::builder::TypedValueParser for AssignmentParser {
    type Value = (String, String);

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        _arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Self::Value, clap::Error> {
        let text = value.to_str().ok_or_else(|| {
            set_error(
                cmd,
                "`--set` takes NAME=VALUE; found text that is not UTF-8 (not shown)".into(),
            )
        })?;
        parse_assignment(text).map_err(|message| set_error(cmd, message))
    }
}

pub(crate) fn set_error(cmd: &clap::Command, message: String) -> clap::Error {
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        format!("{message}\n"),
    )
    .with_cmd(cmd)
}

/// Splits `NAME=VALUE`. Errors show at most a leading word that looks like a variable name,
/// never the value: `--set 'db_password hunter2'` is a typo that must not print the password.
pub(crate) fn parse_assignment(text: &str) -> Result<(String, String), String> {
    const USAGE: &str = "`--set` takes NAME=VALUE";
    let first_word = text.split(char::is_whitespace).next().unwrap_or_default();
    let shown = if is_variable_name(first_word) && first_word.len() < text.len() {
        format!(" after `{first_word}` (the rest is not shown: it may be a secret)")
    } else {
        " (the argument is not shown: it may be a secret)".to_owned()
    };
    match text.split_once('=') {
        None => Err(format!("{USAGE}; found no `=`{shown}")),
        Some((name, _)) if name.contains(char::is_whitespace) => {
            Err(format!("{USAGE}; found a space before the `=`{shown}"))
        }
        Some(("", _)) => Err(format!(
            "{USAGE}; the name before `=` is empty (the value is not shown)"
        )),
        Some((name, value)) => Ok((name.to_owned(), value.to_owned())),
    }
}

pub(crate) fn is_variable_name(word: &str) -> bool {
    let mut chars = word.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits positionals into suite paths and at most one filter: a word that names an existing
/// file or folder, ends in `.yaml`/`.yml` or contains `/` is a path.
pub(crate) fn split_positionals(
    positional: &[String],
) -> Result<(Vec<PathBuf>, Option<String>), String> {
    let mut paths = Vec::new();
    let mut filter = None;
    for word in positional {
        let looks_like_path = std::path::Path::new(word).exists()
            || word.ends_with(".yaml")
            || word.ends_with(".yml")
            || word.contains('/');
        if looks_like_path {
            paths.push(PathBuf::from(word));
        } else if let Some(first) = &filter {
            return Err(format!(
                "only one name filter may be given, found `{first}` and `{word}` (use --skip to exclude more)"
            ));
        } else {
            filter = Some(word.clone());
        }
    }
    Ok((paths, filter))
}

pub(crate) fn libtest_arguments(flags: &LibtestFlags, filter: Option<String>) -> Arguments {
    let color = match flags.color {
        Some(Color::Always) => Some(ColorSetting::Always),
        Some(Color::Never) => Some(ColorSetting::Never),
        _ if colored::control::SHOULD_COLORIZE.should_colorize() => Some(ColorSetting::Always),
        _ => Some(ColorSetting::Never),
    };
    Arguments {
        list: flags.list,
        // One reporting thread by default: checks still run concurrently, but their lines
        // appear in cause-and-effect order (a check before the dependents it made skip).
        test_threads: Some(flags.test_threads.unwrap_or(1)),
        quiet: flags.quiet,
        format: flags.format.map(|f| match f {
            Format::Pretty => FormatSetting::Pretty,
            Format::Terse => FormatSetting::Terse,
            Format::Json => FormatSetting::Json,
        }),
        color,
        ..flags.names.arguments(filter)
    }
}

/// How long reading one Secret a variable comes from may take, connecting included.
pub(crate) const SECRET_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Loads, runs and reports: the path every `run` and `sandbox` invocation takes.
pub fn run_suites(
    args: &RunArgs,
    extra: VarSources,
    target: String,
    runtime: &tokio::runtime::Runtime,
    stop: &Arc<StopSignals>,
) -> Result<u8, Failure> {
    let (mut paths, filter) = split_positionals(&args.positional).map_err(Failure::usage)?;
    if paths.is_empty() {
        paths.push(PathBuf::from("suites"));
    }
    let redactor = Redactor::default();
    // libpq's own password variable is a secret wherever it shows up, whether or not a suite
    // refers to it (a `command` check may print its environment).
    if let Ok(password) = std::env::var("PGPASSWORD") {
        match attest_core::redact::check_secret("PGPASSWORD", &password) {
            Ok(()) => redactor.add(&password),
            // Masking `postgres` would mangle every user and database name in the output.
            Err(e) => say(&format!("attest: warning: not masking PGPASSWORD: {e}")),
        }
    }
    let Some(files) = suite_files(&paths) else {
        return Err(Failure::Listed);
    };
    // Created now, used (and connected) only by the first Kubernetes check or Secret read.
    let clusters = Arc::new(KubeClusters::new(
        KubeOptions {
            kubeconfig: args.kubeconfig.clone(),
            context: args.context.clone(),
            suite_default: false,
        },
        args.kube_unavailable.clone(),
    ));
    let sources = VarSources {
        set: extra
            .set
            .into_iter()
            .chain(args.set.iter().cloned())
            .collect(),
        files: extra
            .files
            .into_iter()
            .chain(args.vars.iter().cloned())
            .collect(),
        provided: extra.provided,
        external: Some(External(Arc::new(SecretVariables::new(
            clusters.clone(),
            runtime.handle().clone(),
            SECRET_READ_TIMEOUT,
            stop.cancel.clone(),
        )))),
        selection: None,
    };
    // Listing runs nothing, so variables need no values (as libtest's `--list`).
    let purpose = if args.libtest.list {
        Purpose::Inspect
    } else {
        Purpose::Run
    };
    let libtest = libtest_arguments(&args.libtest, filter);
    // The plan's name filters, asked by the loader too: a suite none of whose checks is
    // selected has no Secret read, and every suite is loaded once.
    let sources = VarSources {
        selection: Some(load::Selects(Arc::new(runner::Selection::new(
            libtest.clone(),
        )))),
        ..sources
    };
    let loaded = load::load_suites(&files, &sources, &redactor, purpose);
    report_load_warnings(&loaded.warnings, &redactor);
    let suites = match loaded.suites {
        Ok(suites) => suites,
        Err(errors) => {
            report_load_errors(&errors, &redactor);
            say("attest: nothing was run");
            return Err(Failure::Listed);
        }
    };
    let allow = if args.allow_destructive {
        Safety::Destructive
    } else if args.allow_mutating {
        Safety::Mutating
    } else {
        Safety::ReadOnly
    };
    let progress = {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal() && !matches!(args.libtest.format, Some(Format::Json))
    };
    let config = RunConfig {
        allow,
        target,
        libtest,
        services: Services {
            sessions: Arc::new(attest_core::pg::Sessions::new(args.pg_pool_size.into())),
            ..Services::with_clusters(clusters)
        },
        stop: stop.clone(),
        observers: runner::Observers::default().with(Arc::new(Notices(redactor.clone()))),
        progress,
        require_all: args.require_all,
        site: Arc::new(Site {
            unverifiable: args.unverifiable.clone(),
            simulated: args.simulated.clone(),
            ..Site::here()
        }),
    };
    let result = runner::run(suites, config, redactor, runtime);
    match result.state {
        FinalState::Listed => return Ok(exit::code(result.state)),
        FinalState::NoChecksSelected => {
            error_line(
                "no check matched the given filters; `attest run --list` shows the check names",
            );
            return Ok(exit::code(result.state));
        }
        _ => {}
    }
    for outcome in result.record.unproven_by_filter() {
        error_line(&format!(
            "`{}::{}` was selected but not run: it {}; select what it needs too (e.g. the filter `{}::`), or run without a filter",
            outcome.suite, outcome.check, outcome.message, outcome.suite
        ));
    }
    for suite in &result.record.suites {
        for failure in &suite.teardown_failures {
            error_line(&format!("teardown of suite `{}`: {failure}", suite.id));
        }
    }
    let code = match report::write_all(&result.record, &args.report_dir) {
        Ok(written) => {
            let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
            say(&format!("{} {}", "reports:".bold(), names.join(", ")));
            exit::code(result.state)
        }
        Err(e) => {
            error_line(&format!(
                "cannot write reports to `{}`: {e}",
                args.report_dir.display()
            ));
            exit::CHECK_FAILED.max(exit::code(result.state))
        }
    };
    verdict_line(&result.record, args.require_all);
    frame_reports(&args.report_dir);
    Ok(code)
}

/// In `attest job`'s pod ([`launch::FRAME_ENV`] set): the reports, framed, on stdout, where the
/// launcher reads them from the pod's log (attest_core::k8s::launch explains the choice).
fn frame_reports(dir: &Path) {
    use attest_core::k8s::launch;
    use std::io::Write;
    let Some(tag) = std::env::var(launch::FRAME_ENV)
        .ok()
        .filter(|t| !t.is_empty())
    else {
        return;
    };
    let mut stdout = std::io::stdout().lock();
    for name in ["junit.xml", "report.md", "report.json"] {
        if let Ok(bytes) = std::fs::read(dir.join(name)) {
            let _ = stdout.write_all(launch::encode_frame(&tag, name, &bytes).as_bytes());
        }
    }
    let _ = writeln!(stdout, "{}", launch::FrameReader::done_line(&tag));
    let _ = stdout.flush();
}

/// The suite files under `paths`, or `None` after saying why there are none.
pub(crate) fn suite_files(paths: &[PathBuf]) -> Option<Vec<PathBuf>> {
    match load::discover(paths) {
        Ok(files) if files.is_empty() => {
            error_line(&format!(
                "no suite files (*.yaml) found in {}",
                show_paths(paths)
            ));
            None
        }
        Ok(files) => Some(files),
        Err(e) => {
            error_line(&e.to_string());
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_errors_never_show_the_value() {
        let err = parse_assignment("db_password Hunter2-Secret").unwrap_err();
        assert!(
            err.contains("`db_password`") && !err.contains("Hunter2"),
            "{err}"
        );
        let err = parse_assignment("db_password c2VjcmV0LXZhbHVl==").unwrap_err();
        assert!(
            err.contains("space before") && !err.contains("c2Vj"),
            "{err}"
        );
        let err = parse_assignment("Hunter2-Secret").unwrap_err();
        assert!(!err.contains("Hunter2"), "{err}");
        let err = parse_assignment("=Hunter2-Secret").unwrap_err();
        assert!(!err.contains("Hunter2"), "{err}");
        assert_eq!(
            parse_assignment("pw=a b=c").unwrap(),
            ("pw".to_owned(), "a b=c".to_owned())
        );
    }
}

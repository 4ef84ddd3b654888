//! The command line: `attest run`, `attest sandbox`, `attest schema`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand, ValueEnum};
use colored::Colorize;
use libtest_mimic::{Arguments, ColorSetting, FormatSetting};

use crate::sandbox;
use attest_core::context::Services;
use attest_core::exit;
use attest_core::k8s::secrets::SecretVariables;
use attest_core::k8s::{KubeClusters, KubeOptions};
use attest_core::load::{self, External, Purpose, VarSources};
use attest_core::redact::Redactor;
use attest_core::report;
use attest_core::runner::{self, FinalState, RunConfig, StopSignals};
use attest_core::safety::Safety;

#[derive(Parser, Debug)]
#[command(
    name = "attest",
    version,
    about = "Turns deployment acceptance criteria into checks: YAML suites in, JUnit and Markdown evidence out."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run suites against the live environment.
    Run(RunArgs),
    /// Start local stand-ins (DNS, listeners, ...) on loopback and run the suites against them.
    Sandbox(SandboxArgs),
    /// Load and validate suites without running anything (exit 0 when they are fine, 2 with
    /// every problem at its file:line:column otherwise); variables need no values.
    Check(CheckArgs),
    /// Print a story's completion notes from a run's report.json (no new run); with --write,
    /// put them into the story's "Completion Notes List".
    Evidence(EvidenceArgs),
    /// Print the JSON Schema of the suite format.
    Schema,
    /// List (and with --drop remove) what runs killed before their teardown left on a
    /// PostgreSQL server; only objects carrying attest's marker are touched.
    Cleanup(crate::cleanup::CleanupArgs),
    /// Print least-privilege RBAC (ServiceAccount, Roles, ClusterRole) for the selected checks.
    Rbac(crate::rbac::RbacArgs),
    /// Print the manifests of an in-cluster run (--dry-run -o yaml): RBAC, suites, secrets, Job.
    Job(crate::job::JobArgs),
}

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Suite files or folders (default `suites/`).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// YAML file of variable values (`name: value`); may be given more than once.
    #[arg(long = "vars", value_name = "FILE")]
    pub vars: Vec<PathBuf>,
    /// Set a variable, over everything else.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = AssignmentParser)]
    pub set: Vec<(String, String)>,
    /// Treat every warning as an error (exit 2): an acceptance criterion no check covers and
    /// not declared manual, a likely typo in a vars file.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Args, Debug, Clone)]
pub struct EvidenceArgs {
    /// The report.json of a run (`reports/report.json`).
    #[arg(value_name = "REPORT.json")]
    pub report: PathBuf,
    /// The story whose notes to make (`5.2`); may be left out when the run has one story.
    #[arg(long, value_name = "ID")]
    pub story: Option<String>,
    /// Write the notes into this story document's "Completion Notes List", between marker
    /// comments (a second write replaces the block, never anything else).
    #[arg(long, value_name = "STORY.md")]
    pub write: Option<PathBuf>,
    /// An earlier run's report.json: add what changed since (criteria that regressed or
    /// recovered, measurements that moved).
    #[arg(long, value_name = "OLD.json")]
    pub since: Option<PathBuf>,
}

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
    /// Most `sql` sessions open at once to one PostgreSQL server (fewer when the server has
    /// less than twice that many free connection slots).
    #[arg(long, value_name = "N", default_value_t = attest_core::pg::DEFAULT_POOL_SIZE,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub pg_pool_size: u16,
    #[command(flatten)]
    pub libtest: LibtestFlags,
}

/// The libtest flags, as `cargo test -- …` knows them.
#[derive(Args, Debug, Clone, Default)]
pub struct LibtestFlags {
    /// List checks instead of running them.
    #[arg(long)]
    pub list: bool,
    /// Match the filter exactly.
    #[arg(long)]
    pub exact: bool,
    /// Skip checks whose names contain FILTER (repeatable).
    #[arg(long, value_name = "FILTER")]
    pub skip: Vec<String>,
    /// Run only checks marked `ignore:`.
    #[arg(long)]
    pub ignored: bool,
    /// Run checks marked `ignore:` too.
    #[arg(long)]
    pub include_ignored: bool,
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

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Auto,
    Always,
    Never,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SandboxArgs {
    #[command(subcommand)]
    pub action: Option<SandboxAction>,
    /// Do not start the local Kubernetes testbed (nor build its binaries).
    #[arg(long, global = true)]
    pub no_kubernetes: bool,
    /// Keep the testbed's nodes simulated (kwok): no kubelet or containerd; the stories'
    /// PostgreSQL pod is then a stand-in for the host's throwaway PostgreSQL.
    #[arg(long, global = true)]
    pub no_real_nodes: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Subcommand, Debug)]
pub enum SandboxAction {
    /// Start the sandbox and keep it running, printing how to reach each piece, until Ctrl-C.
    Up,
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

fn set_error(cmd: &clap::Command, message: String) -> clap::Error {
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        format!("{message}\n"),
    )
    .with_cmd(cmd)
}

/// Splits `NAME=VALUE`. Errors show at most a leading word that looks like a variable name,
/// never the value: `--set 'db_password hunter2'` is a typo that must not print the password.
fn parse_assignment(text: &str) -> Result<(String, String), String> {
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

fn is_variable_name(word: &str) -> bool {
    let mut chars = word.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn main() -> ExitCode {
    quiet_broken_pipe_panics();
    let cli = Cli::parse();
    // One crypto provider for every TLS client (PostgreSQL, HTTP).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("attest: cannot start the async runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    // From here on SIGINT, SIGTERM and SIGHUP stop a run cleanly instead of killing it.
    let stop = StopSignals::install(&runtime, say);
    let code = match cli.command {
        Command::Schema => {
            let schema = attest_core::schema::suite_schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).expect("schema serializes")
            );
            exit::SUCCESS
        }
        Command::Check(args) => check_suites(&args),
        Command::Evidence(args) => evidence(&args),
        Command::Run(args) => {
            setup_color(&args.libtest);
            run_suites(
                &args,
                VarSources::default(),
                args.target.clone().unwrap_or_else(|| "live".into()),
                &runtime,
                &stop,
            )
        }
        Command::Cleanup(args) => crate::cleanup::main(args, &runtime),
        Command::Rbac(args) => crate::rbac::main(args, &runtime),
        Command::Job(args) => crate::job::main(args, &runtime),
        Command::Sandbox(args) => {
            setup_color(&args.run.libtest);
            sandbox::main(args, &runtime, &stop)
        }
    };
    ExitCode::from(code)
}

/// A console whose reader went away (`| head`) makes the printer panic; the runner catches
/// that and carries on, so the panic's own message is noise. Every other panic still prints.
fn quiet_broken_pipe_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if !text.contains("Broken pipe") {
            default(info);
        }
    }));
}

/// One colour decision drives both libtest-mimic's console and our own lines.
fn setup_color(flags: &LibtestFlags) {
    let color = flags.color.unwrap_or(Color::Auto);
    match color {
        Color::Always => colored::control::set_override(true),
        Color::Never => colored::control::set_override(false),
        Color::Auto => {
            use std::io::IsTerminal;
            let enabled = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stderr().is_terminal();
            colored::control::set_override(enabled);
        }
    }
}

pub fn error_line(message: &str) {
    say(&format!("{} {message}", "error:".red().bold()));
}

/// A line on stderr; a closed stderr never stops a run (teardown and reports still happen).
pub fn say(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
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

fn libtest_arguments(flags: &LibtestFlags, filter: Option<String>) -> Arguments {
    let color = match flags.color {
        Some(Color::Always) => Some(ColorSetting::Always),
        Some(Color::Never) => Some(ColorSetting::Never),
        _ if colored::control::SHOULD_COLORIZE.should_colorize() => Some(ColorSetting::Always),
        _ => Some(ColorSetting::Never),
    };
    Arguments {
        list: flags.list,
        exact: flags.exact,
        skip: flags.skip.clone(),
        ignored: flags.ignored,
        include_ignored: flags.include_ignored,
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
        filter,
        ..Arguments::default()
    }
}

/// Loads, runs and reports: the path every `run` and `sandbox` invocation takes.
pub fn run_suites(
    args: &RunArgs,
    extra: VarSources,
    target: String,
    runtime: &tokio::runtime::Runtime,
    stop: &Arc<StopSignals>,
) -> u8 {
    let (mut paths, filter) = match split_positionals(&args.positional) {
        Ok(split) => split,
        Err(message) => {
            error_line(&message);
            return exit::USAGE;
        }
    };
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
        return exit::USAGE;
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
            return exit::USAGE;
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
        unverifiable: Arc::new(args.unverifiable.clone()),
    };
    let result = runner::run(suites, config, redactor, runtime);
    match result.state {
        FinalState::Listed => return exit::code(result.state),
        FinalState::NoChecksSelected => {
            error_line(
                "no check matched the given filters; `attest run --list` shows the check names",
            );
            return exit::code(result.state);
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
    code
}

/// Prints the run's notices on stderr as they come (redacted: a notice may quote a server's
/// error).
struct Notices(Redactor);

impl runner::Observer for Notices {
    fn on(&self, event: &runner::RunEvent) {
        if let runner::RunEvent::Notice(text) = event {
            say(&self.0.redact(text));
        }
    }
}

/// The run's last line: what passed and, never hidden, what was not verified and why.
fn verdict_line(record: &attest_core::outcome::RunRecord, require_all: bool) {
    let line = record.verdict_line();
    let summary = record.summary();
    let styled = match record.final_state() {
        FinalState::Success if summary.skipped == 0 => line.green().bold(),
        FinalState::Success | FinalState::Incomplete => line.yellow().bold(),
        _ => line.red().bold(),
    };
    if summary.skipped > 0 && !require_all {
        say("attest: skipped checks do not fail the run; --require-all makes them fail it (exit code 3)");
    }
    say(&styled.to_string());
}

/// Prints what the input should fix but need not: the run goes on, the exit code is unchanged.
pub(crate) fn report_load_warnings(warnings: &[load::LoadWarning], redactor: &Redactor) {
    for warning in warnings {
        say(&format!(
            "{} {}",
            "warning:".yellow().bold(),
            redactor.redact(&warning.to_string())
        ));
    }
}

/// Prints every load problem, then a count per file.
pub(crate) fn report_load_errors(errors: &[load::LoadError], redactor: &Redactor) {
    for e in errors {
        error_line(&redactor.redact(&e.to_string()));
    }
    let mut files: Vec<&std::path::Path> = errors.iter().map(|e| e.path.as_path()).collect();
    files.dedup();
    files.sort();
    files.dedup();
    say(&format!(
        "attest: {} problem(s) in {} file(s)",
        errors.len(),
        files.len()
    ));
}

/// How long reading one Secret a variable comes from may take, connecting included.
const SECRET_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `attest evidence`: completion notes from a report.json; exit 2 when the input is wrong or
/// the notes could not be written (then they are printed instead).
fn evidence(args: &EvidenceArgs) -> u8 {
    use attest_core::evidence::{self, Since, Written};
    let report = match evidence::read_report(&args.report) {
        Ok(report) => report,
        Err(e) => {
            error_line(&e.to_string());
            return exit::USAGE;
        }
    };
    let story = match evidence::find_story(&report, &args.report, args.story.as_deref()) {
        Ok(story) => story,
        Err(e) => {
            error_line(&e.to_string());
            return exit::USAGE;
        }
    };
    let old = match &args.since {
        Some(path) => match evidence::read_report(path) {
            Ok(old) => Some((path.display().to_string(), old)),
            Err(e) => {
                error_line(&format!("--since: {e}"));
                return exit::USAGE;
            }
        },
        None => None,
    };
    let since = old.as_ref().map(|(label, report)| Since {
        label: label.clone(),
        report,
    });
    let notes = evidence::notes(&report, story, since.as_ref());
    let Some(path) = &args.write else {
        print!("{notes}");
        return exit::SUCCESS;
    };
    let refuse = |why: String| {
        print!("{notes}");
        error_line(&format!(
            "`{}` {why}; nothing was written, the notes are printed above",
            path.display()
        ));
        exit::USAGE
    };
    let document = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return refuse(format!("cannot be read: {e}")),
    };
    match evidence::write_into(&document, &notes) {
        Ok((text, how)) => {
            if text != document {
                if let Err(e) = std::fs::write(path, &text) {
                    return refuse(format!("cannot be written: {e}"));
                }
            }
            let what = match (how, text == document) {
                (_, true) => "already held these notes; unchanged",
                (Written::Replaced, false) => "replaced the notes attest wrote before",
                (Written::Added, false) => {
                    "added the notes at the end of its Completion Notes List"
                }
            };
            say(&format!(
                "attest: story {}: {}: {what}",
                story.story.as_deref().unwrap_or_default(),
                path.display()
            ));
            exit::SUCCESS
        }
        Err(e) => refuse(e.to_string()),
    }
}

/// `attest check`: load and validate, run nothing; for CI lint steps and editors.
fn check_suites(args: &CheckArgs) -> u8 {
    let mut paths = args.paths.clone();
    if paths.is_empty() {
        paths.push(PathBuf::from("suites"));
    }
    let Some(files) = suite_files(&paths) else {
        return exit::USAGE;
    };
    let redactor = Redactor::default();
    let sources = VarSources {
        set: args.set.clone(),
        files: args.vars.clone(),
        ..VarSources::default()
    };
    let loaded = load::load_suites(&files, &sources, &redactor, Purpose::Inspect);
    if args.strict && !loaded.warnings.is_empty() {
        // --strict: warnings are problems, reported with the load errors.
        let mut errors = loaded.warnings.clone();
        if let Err(more) = &loaded.suites {
            errors.extend(more.iter().cloned());
        }
        report_load_errors(&errors, &redactor);
        return exit::USAGE;
    }
    report_load_warnings(&loaded.warnings, &redactor);
    match loaded.suites {
        Ok(suites) => {
            let checks: usize = suites.iter().map(|s| s.checks.len()).sum();
            println!(
                "{} suite file(s), {checks} check(s): no problems",
                suites.len()
            );
            exit::SUCCESS
        }
        Err(errors) => {
            report_load_errors(&errors, &redactor);
            exit::USAGE
        }
    }
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

fn show_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect::<Vec<_>>()
        .join(", ")
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

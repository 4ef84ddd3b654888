//! What attest writes on the console besides the checks' lines: errors, notices, the
//! verdict, load problems, and the colour decision they all share.

use std::path::PathBuf;

use colored::Colorize;

use attest_core::exit;

use attest_core::load::{self};
use attest_core::redact::Redactor;
use attest_core::runner::{self, FinalState};

/// A console whose reader went away (`| head`) makes the printer panic; the runner catches
/// that and carries on, so the panic's own message is noise. Every other panic still prints.
pub(crate) fn quiet_broken_pipe_panics() {
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

/// `--color`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// One colour decision drives both libtest-mimic's console and our own lines.
pub(crate) fn setup_color(color: Option<Color>) {
    let color = color.unwrap_or(Color::Auto);
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

/// Prints the run's notices on stderr as they come (redacted: a notice may quote a server's
/// error).
pub(crate) struct Notices(pub(crate) Redactor);

impl runner::Observer for Notices {
    fn on(&self, event: &runner::RunEvent) {
        if let runner::RunEvent::Notice(text) = event {
            say(&self.0.redact(text));
        }
    }
}

/// The run's last line: what passed and, never hidden, what was not verified and why.
pub(crate) fn verdict_line(record: &attest_core::outcome::RunRecord, require_all: bool) {
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

pub(crate) fn show_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| format!("`{}`", p.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a subcommand stopped short. `cli::main` prints it and turns it into the exit code in
/// [`Failure::exit_code`], the one place where failures become exit codes; a subcommand that
/// did its job returns its own code (a run's comes from its final state, `exit::code`).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Failure {
    /// The input is wrong (a path, a flag, a file) or the request cannot be met: nothing ran.
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    /// The input is wrong and every problem is already on the console, each at its place.
    #[error("problems listed above")]
    Listed,
    /// The command could not do its job: the cluster or server it acts on is out of reach, a
    /// delete failed. Like a failed check.
    #[error("{message}")]
    Failed {
        message: String,
        hint: Option<String>,
    },
    /// Nothing was verified: what should have run never did (a Job whose pod never started).
    #[error("{message}")]
    NotRun {
        message: String,
        hint: Option<String>,
    },
}

impl Failure {
    pub(crate) fn usage(message: impl Into<String>) -> Failure {
        Failure::Usage {
            message: message.into(),
            hint: None,
        }
    }

    pub(crate) fn failed(message: impl Into<String>) -> Failure {
        Failure::Failed {
            message: message.into(),
            hint: None,
        }
    }

    /// The same failure, with what to do about it.
    pub(crate) fn with_hint(mut self, text: impl Into<String>) -> Failure {
        if let Failure::Usage { hint, .. }
        | Failure::Failed { hint, .. }
        | Failure::NotRun { hint, .. } = &mut self
        {
            *hint = Some(text.into());
        }
        self
    }

    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage { .. } | Failure::Listed => exit::USAGE,
            Failure::Failed { .. } => exit::CHECK_FAILED,
            Failure::NotRun { .. } => exit::NOT_VERIFIED,
        }
    }

    /// Says what went wrong, once, on stderr.
    pub(crate) fn report(&self) {
        match self {
            Failure::Listed => {}
            Failure::Usage { message, hint }
            | Failure::Failed { message, hint }
            | Failure::NotRun { message, hint } => {
                error_line(message);
                if let Some(hint) = hint {
                    say(&format!("hint: {hint}"));
                }
            }
        }
    }
}

/// A subcommand's exit code: its own when it did its job, its failure's otherwise.
pub(crate) fn exit_code(result: Result<u8, Failure>) -> u8 {
    result.unwrap_or_else(|failure| {
        failure.report();
        failure.exit_code()
    })
}

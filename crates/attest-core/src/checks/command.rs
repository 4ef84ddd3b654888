//! `command`: run a local command; judge its exit code and output. Killed when the check's
//! timeout runs out.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Instant;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};

use super::{millis, Kind, Verdict};
use crate::context::CheckContext;
use crate::matchers::{check_patterns, clip, Pattern, ShowMatch};
use crate::suite::format_duration;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CommandCheck {
    /// A shell command line (run with `sh -c`), or an argument list run directly.
    #[serde(deserialize_with = "command_line")]
    #[schemars(with = "CommandLineSchema")]
    pub run: CommandLine,
    /// Expected exit code (default 0).
    #[serde(default)]
    pub exit_code: i32,
    #[serde(default)]
    pub stdout_contains: Vec<Pattern>,
    #[serde(default)]
    pub stdout_excludes: Vec<Pattern>,
    #[serde(default)]
    pub stderr_contains: Vec<Pattern>,
    #[serde(default)]
    pub stderr_excludes: Vec<Pattern>,
    /// Extra environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Working directory (default: where attest runs).
    #[serde(default)]
    pub dir: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandLine {
    Shell(String),
    Argv(Vec<String>),
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum CommandLineSchema {
    Shell(String),
    Argv(Vec<String>),
}

fn command_line<'de, D: Deserializer<'de>>(d: D) -> Result<CommandLine, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Shell(String),
        Argv(Vec<String>),
    }
    match Raw::deserialize(d)? {
        Raw::Shell(line) => Ok(CommandLine::Shell(line)),
        Raw::Argv(argv) if argv.is_empty() => Err(serde::de::Error::custom(
            "`run` needs at least the program name",
        )),
        Raw::Argv(argv) => Ok(CommandLine::Argv(argv)),
    }
}

impl CommandLine {
    fn display(&self) -> String {
        match self {
            CommandLine::Shell(line) => line.clone(),
            CommandLine::Argv(argv) => argv.join(" "),
        }
    }
}

impl CommandCheck {
    fn build(&self, ctx: &CheckContext) -> Result<tokio::process::Command, String> {
        let mut command = match &self.run {
            CommandLine::Shell(line) => {
                let mut command = tokio::process::Command::new("sh");
                command.arg("-c").arg(ctx.expand(line)?);
                command
            }
            CommandLine::Argv(argv) => {
                let mut command = tokio::process::Command::new(ctx.expand(&argv[0])?);
                for arg in &argv[1..] {
                    command.arg(ctx.expand(arg)?);
                }
                command
            }
        };
        for (name, value) in &self.env {
            command.env(name, ctx.expand(value)?);
        }
        if let Some(dir) = &self.dir {
            command.current_dir(ctx.expand(dir)?);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        Ok(command)
    }

    async fn inspect(&self, ctx: &CheckContext) -> Verdict {
        let shown = self.run.display();
        let mut command = match self.build(ctx) {
            Ok(command) => command,
            Err(e) => return Verdict::error(e),
        };
        let started = Instant::now();
        let output = match command.output().await {
            Ok(output) => output,
            Err(e) => {
                return Verdict::error(format!("cannot start `{shown}`: {e}"))
                    .hint("is the program installed and on PATH?")
            }
        };
        let elapsed = started.elapsed();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let code = output.status.code();

        let mut problems = Vec::new();
        if code != Some(self.exit_code) {
            problems.push(match code {
                Some(code) => format!("exit code {code}, expected {}", self.exit_code),
                None => "killed by a signal".to_owned(),
            });
        }
        let labelled = |stream: &str, text: &str, contains: &[Pattern], excludes: &[Pattern]| {
            check_patterns(text, contains, excludes, ShowMatch::Line(&ctx.redactor))
                .into_iter()
                .map(|p| format!("{stream}: {p}"))
                .collect::<Vec<_>>()
        };
        problems.extend(labelled(
            "stdout",
            &stdout,
            &self.stdout_contains,
            &self.stdout_excludes,
        ));
        problems.extend(labelled(
            "stderr",
            &stderr,
            &self.stderr_contains,
            &self.stderr_excludes,
        ));

        let took = format_duration(elapsed);
        let verdict = if problems.is_empty() {
            Verdict::pass(format!("`{shown}` exited {} in {took}", self.exit_code))
        } else {
            Verdict::fail(format!("`{shown}`: {}", problems.join("; ")))
                .expected(format!("exit code {}", self.exit_code))
                .found(format!(
                    "exit {}; stdout `{}`; stderr `{}`",
                    code.map(|c| c.to_string())
                        .unwrap_or_else(|| "by signal".into()),
                    clip(&ctx.redactor.redact(stdout.trim()), 200),
                    clip(&ctx.redactor.redact(stderr.trim()), 200)
                ))
        };
        verdict
            .measure("exit_code", f64::from(code.unwrap_or(-1)))
            .measure("duration_ms", millis(elapsed))
            .export("stdout", stdout.trim())
    }
}

impl Kind for CommandCheck {
    /// `register: NAME` makes the trimmed standard output available as `${NAME_stdout}`.
    const EXPORTS: &'static [(&'static str, bool)] = &[("stdout", false)];
    fn target(&self) -> String {
        self.run.display()
    }

    fn observe(&self, ctx: &CheckContext) -> impl std::future::Future<Output = Verdict> + Send {
        self.inspect(ctx)
    }
}

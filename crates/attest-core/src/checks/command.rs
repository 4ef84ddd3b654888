//! `command`: run a local command; judge its exit code and output. The command runs in its
//! own process group ([`group`]), stopped with everything it started when the command exits,
//! the check times out or the run is interrupted.

mod group;

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer};
use tokio::io::{AsyncRead, AsyncReadExt};

use group::{ProcessGroup, Stop};

use super::output::{Exit, ProcessKeys, ProcessOutput};
use super::{millis, Kind, Verdict};
use crate::context::CheckContext;
use crate::duration::format_duration;
use crate::matchers::{Pattern, ShowMatch};
use crate::text::clip;

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
    Argv(Vec<WordSchema>),
}

#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)]
enum WordSchema {
    Text(String),
    Number(f64),
    Boolean(bool),
}

fn command_line<'de, D: Deserializer<'de>>(d: D) -> Result<CommandLine, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Shell(String),
        Argv(Vec<Word>),
    }
    match Raw::deserialize(d)? {
        Raw::Shell(line) => Ok(CommandLine::Shell(line)),
        Raw::Argv(argv) if argv.is_empty() => Err(serde::de::Error::custom(
            "`run` needs at least the program name",
        )),
        Raw::Argv(argv) => Ok(CommandLine::Argv(argv.into_iter().map(|w| w.0).collect())),
    }
}

/// One argument of an argument list: text, or a number or boolean as YAML (or a variable's
/// value) gives it: `[pg_isready, -p, 5432]`, `[echo, "${port}"]` with `port: 5432`.
struct Word(String);

impl<'de> Deserialize<'de> for Word {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Word, D::Error> {
        struct WordVisitor;
        impl serde::de::Visitor<'_> for WordVisitor {
            type Value = Word;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an argument (text, a number or a boolean)")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Word, E> {
                Ok(Word(v.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Word, E> {
                Ok(Word(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Word, E> {
                Ok(Word(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Word, E> {
                Ok(Word(v.to_string()))
            }
            // `{v:?}` keeps a float a float: `1.0` stays `1.0`, not `1`.
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Word, E> {
                Ok(Word(format!("{v:?}")))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Word, E> {
                Ok(Word(v.to_string()))
            }
        }
        d.deserialize_any(WordVisitor)
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
    /// What the command must show, from its `exit_code` and pattern keys.
    fn output(&self) -> ProcessOutput {
        ProcessOutput::new(ProcessKeys {
            exit_code: self.exit_code,
            stdout_contains: &self.stdout_contains,
            stdout_excludes: &self.stdout_excludes,
            stderr_contains: &self.stderr_contains,
            stderr_excludes: &self.stderr_excludes,
        })
    }

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
            .stderr(Stdio::piped());
        Ok(command)
    }
}

/// After the command exits, how long output of processes it started is still read: they may
/// hold its pipes open for ever (`sleep 1000 &`), which must not keep the check waiting.
const DRAIN: Duration = Duration::from_millis(250);

/// Collects output until the command exits (plus [`DRAIN`]); returns its exit status and output.
async fn run_to_exit(
    group: &mut ProcessGroup,
) -> (std::io::Result<std::process::ExitStatus>, Vec<u8>, Vec<u8>) {
    let stdout_pipe = group.child().stdout.take();
    let stderr_pipe = group.child().stderr.take();
    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let status = {
        let mut reading = std::pin::pin!(futures::future::join(
            collect(stdout_pipe, &mut stdout),
            collect(stderr_pipe, &mut stderr),
        ));
        let exited = tokio::select! {
            status = group.wait() => Some(status),
            _ = &mut reading => None,
        };
        match exited {
            Some(status) => {
                let _ = tokio::time::timeout(DRAIN, &mut reading).await;
                status
            }
            None => group.wait().await,
        }
    };
    (status, stdout, stderr)
}

/// Reads a pipe to its end; what was read stays in `into` when reading is abandoned.
async fn collect(pipe: Option<impl AsyncRead + Unpin>, into: &mut Vec<u8>) {
    let Some(mut pipe) = pipe else { return };
    let mut chunk = [0u8; 8192];
    while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
        into.extend_from_slice(&chunk[..n]);
    }
}

impl Kind for CommandCheck {
    const DESCRIPTION: &'static str =
        "Runs a local command: exit code and output patterns; `register` exports its stdout.";
    /// `register: NAME` makes the trimmed standard output available as `${NAME_stdout}`.
    const EXPORTS: &'static [(&'static str, bool)] = &[("stdout", false)];

    fn target(&self) -> String {
        self.run.display()
    }

    fn validate(&self) -> Vec<super::FieldProblem> {
        self.output().validate()
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let shown = self.run.display();
        let mut command = match self.build(ctx) {
            Ok(command) => command,
            Err(e) => return Verdict::error(e),
        };
        let started = Instant::now();
        let mut group = match ProcessGroup::spawn(&mut command) {
            Ok(group) => group,
            Err(e) => {
                return Verdict::error(format!("cannot start `{shown}`: {e}"))
                    .hint("is the program installed and on PATH?")
            }
        };
        let (status, stdout, stderr) = run_to_exit(&mut group).await;
        let elapsed = started.elapsed();
        let leftovers = group.stop().await;
        let status = match status {
            Ok(status) => status,
            Err(e) => return Verdict::error(format!("cannot wait for `{shown}`: {e}")),
        };
        let stdout = String::from_utf8_lossy(&stdout);
        let stderr = String::from_utf8_lossy(&stderr);
        let code = status.code();

        let exit = code.map_or(Exit::Signal, Exit::Code);
        let problems = self
            .output()
            .judge(&exit, &stdout, &stderr, ShowMatch::Line(&ctx.redactor));

        let took = format_duration(elapsed);
        let stopped = match leftovers {
            Stop::NothingLeft => "",
            Stop::Terminated => "; the processes it left running were stopped",
            Stop::Killed => "; the processes it left running ignored SIGTERM and were killed",
        };
        let verdict = if problems.is_empty() {
            Verdict::pass(format!(
                "`{shown}` exited {} in {took}{stopped}",
                self.exit_code
            ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Status;

    fn check(yaml: &str) -> CommandCheck {
        serde_saphyr::from_str(yaml).expect("command spec")
    }

    /// The shell's process group id (that of the watchdog leading it, not `$$`).
    const GROUP_ID: &str = "$(cut -d' ' -f5 /proc/$$/stat)";

    /// Waits until no process of the group exists; returns how long that took.
    async fn gone_within(pgid: libc::pid_t, limit: Duration) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if !group::alive(pgid) {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        None
    }

    async fn pgid_from(file: &std::path::Path) -> libc::pid_t {
        for _ in 0..200 {
            if let Ok(text) = std::fs::read_to_string(file) {
                if let Ok(pgid) = text.trim().parse() {
                    return pgid;
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the command never wrote its process group id");
    }

    #[tokio::test]
    async fn a_background_child_does_not_hold_the_check_and_is_stopped() {
        let check = check(&format!(
            "run: \"sleep 1000 & echo started {GROUP_ID}\"\nstdout_contains: [started]"
        ));
        let started = Instant::now();
        let verdict = check.observe(&CheckContext::for_test()).await;
        let took = started.elapsed();
        assert_eq!(verdict.status, Status::Passed, "{verdict:?}");
        assert!(took < Duration::from_secs(1), "took {took:?}");
        assert!(
            verdict.summary.contains("were stopped"),
            "{}",
            verdict.summary
        );
        let pgid: libc::pid_t = verdict.exports[0].1["started ".len()..].parse().unwrap();
        assert!(!group::alive(pgid), "processes of group {pgid} remain");
    }

    #[tokio::test]
    async fn a_background_child_ignoring_sigterm_is_killed_after_the_grace() {
        let check = check(&format!(
            "run: \"(trap '' TERM; sleep 1000) & echo {GROUP_ID}\""
        ));
        let started = Instant::now();
        let verdict = check.observe(&CheckContext::for_test()).await;
        let took = started.elapsed();
        assert_eq!(verdict.status, Status::Passed, "{verdict:?}");
        assert!(
            verdict.summary.contains("ignored SIGTERM"),
            "{}",
            verdict.summary
        );
        assert!(
            took >= group::GRACE && took < group::GRACE * 2,
            "took {took:?}"
        );
        let pgid: libc::pid_t = verdict.exports[0].1.parse().unwrap();
        assert!(!group::alive(pgid), "processes of group {pgid} remain");
    }

    #[tokio::test]
    async fn dropping_the_check_stops_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgid");
        let check = check(&format!(
            "run: \"echo {GROUP_ID} > {}; sleep 1000 & sleep 1000\"",
            file.display()
        ));
        let ctx = CheckContext::for_test();
        let timed_out = tokio::time::timeout(Duration::from_millis(300), check.observe(&ctx)).await;
        assert!(timed_out.is_err());
        let pgid = pgid_from(&file).await;
        let took = gone_within(pgid, Duration::from_secs(1)).await;
        assert!(took.is_some(), "group {pgid} survived SIGTERM");
    }

    #[tokio::test]
    async fn dropping_the_check_kills_a_group_ignoring_sigterm_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgid");
        let check = check(&format!(
            "run: \"echo {GROUP_ID} > {}; trap '' TERM; sleep 1000\"",
            file.display()
        ));
        let ctx = CheckContext::for_test();
        let timed_out = tokio::time::timeout(Duration::from_millis(300), check.observe(&ctx)).await;
        assert!(timed_out.is_err());
        let pgid = pgid_from(&file).await;
        let took = gone_within(pgid, group::GRACE * 2)
            .await
            .unwrap_or_else(|| panic!("group {pgid} survived SIGKILL"));
        assert!(
            took >= group::GRACE / 2,
            "SIGTERM was ignored, yet gone in {took:?}"
        );
    }

    #[tokio::test]
    async fn output_before_exit_is_kept() {
        let check = check("run: 'printf \"a\\nb\\n\"; echo err >&2; exit 3'\nexit_code: 3");
        let verdict = check.observe(&CheckContext::for_test()).await;
        assert_eq!(verdict.status, Status::Passed, "{verdict:?}");
        assert_eq!(verdict.exports[0].1, "a\nb");
    }
}

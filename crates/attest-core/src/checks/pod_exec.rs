//! `pod-exec`: run a command in an existing pod and judge its exit code and output, e.g. no
//! `*.sqlite3` under Paperless's data folder, or `pg_wal`, `base`, `global` in PGDATA.

use schemars::JsonSchema;
use serde::Deserialize;

use super::{FieldProblem, Kind, Permission, Verdict};
use crate::context::CheckContext;
use crate::k8s::pods::{ExecEnd, PodError, PodRef};
use crate::matchers::{check_patterns, Pattern, ShowMatch};
use crate::text::clip;
use crate::validate;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodExecCheck {
    /// Which pod (and container).
    pub pod: PodRef,
    /// The program and its arguments (no shell unless you run one: `[sh, -c, "..."]`).
    pub command: Vec<String>,
    /// Expected exit code, 0 to 255 (default 0).
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
}

/// How a pod lookup failure becomes a verdict.
pub fn pod_verdict(error: &PodError) -> Verdict {
    match error {
        PodError::Api(e) => super::kube_object::api_verdict(e),
        PodError::NoPod(why) => Verdict::fail(why.clone()).hint(
            "check the name or selector and namespace (`kubectl get pods -n … --show-labels`)",
        ),
    }
}

impl Kind for PodExecCheck {
    const DESCRIPTION: &'static str =
        "Runs a command in a pod (by name or selector): exit code and output patterns.";
    fn target(&self) -> String {
        format!("{}: {}", self.pod.describe(), self.command.join(" "))
    }

    fn permissions(&self) -> Vec<Permission> {
        // The stream opens as a WebSocket GET: the API server authorizes `get` on pods/exec,
        // and `create` too (AuthorizePodWebsocketUpgradeCreatePermission, on by default).
        self.pod.permissions(&["get", "create"], "exec")
    }

    fn validate(&self) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        if self.command.is_empty() {
            problems.push(FieldProblem::new(
                "command",
                "expected the program and its arguments, such as `[pg_isready]` or `[sh, -c, \"ls /data\"]`, found an empty list",
            ));
        }
        if !(0..=255).contains(&self.exit_code) {
            problems.push(FieldProblem::new(
                "exit_code",
                format!(
                    "expected an exit code from 0 to 255, found `{}`",
                    self.exit_code
                ),
            ));
        }
        for (field, patterns) in [
            ("stdout_contains", &self.stdout_contains),
            ("stdout_excludes", &self.stdout_excludes),
            ("stderr_contains", &self.stderr_contains),
            ("stderr_excludes", &self.stderr_excludes),
        ] {
            problems.extend(validate::patterns(field, patterns, true));
        }
        problems
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let access = &ctx.services.kube;
        let pods = match self.pod.pods(access, ctx.remaining()).await {
            Ok(pods) => pods,
            Err(e) => return pod_verdict(&e),
        };
        let pod = &pods[0];
        let command: Vec<String> = match self.command.iter().map(|a| ctx.expand(a)).collect() {
            Ok(command) => command,
            Err(e) => return Verdict::error(e),
        };
        let (end, stdout, stderr) =
            match self.pod.exec(access, pod, &command, ctx.remaining()).await {
                Ok(result) => result,
                Err(e) => return pod_verdict(&e),
            };
        let show = ShowMatch::Line(&ctx.redactor);
        let mut problems = Vec::new();
        match &end {
            ExecEnd::Exited(code) if *code == self.exit_code => {}
            ExecEnd::Exited(code) => {
                problems.push(format!("exit code {code}, expected {}", self.exit_code))
            }
            ExecEnd::Unknown(message) => problems.push(format!(
                "expected exit code {}, but the API gave no exit code, only: {}",
                self.exit_code,
                clip(&ctx.redactor.redact(message.trim()), 200)
            )),
        }
        problems.extend(
            check_patterns(&stdout, &self.stdout_contains, &self.stdout_excludes, show)
                .into_iter()
                .map(|p| format!("stdout: {p}")),
        );
        problems.extend(
            check_patterns(&stderr, &self.stderr_contains, &self.stderr_excludes, show)
                .into_iter()
                .map(|p| format!("stderr: {p}")),
        );
        let place = format!("pod {}/{pod}", self.pod.namespace);
        let verdict = if problems.is_empty() {
            Verdict::pass(format!(
                "`{}` in {place} exited {} as expected",
                command.join(" "),
                self.exit_code
            ))
        } else {
            Verdict::fail(format!(
                "`{}` in {place}: {}",
                command.join(" "),
                problems.join("; ")
            ))
            .found(clip(&ctx.redactor.redact(stdout.trim()), 400))
            .hint("run the same with `kubectl exec` to see the whole output")
        };
        match end {
            ExecEnd::Exited(code) => verdict.measure("exit_code", f64::from(code)),
            ExecEnd::Unknown(_) => verdict,
        }
    }
}

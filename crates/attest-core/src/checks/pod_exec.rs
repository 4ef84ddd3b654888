//! `pod-exec`: run a command in an existing pod and judge its exit code and output, e.g. no
//! `*.sqlite3` under Paperless's data folder, or `pg_wal`, `base`, `global` in PGDATA.

use schemars::JsonSchema;
use serde::Deserialize;

use super::output::{Exit, ProcessKeys, ProcessOutput};
use super::{FieldProblem, Kind, Permission, Verdict};
use crate::context::CheckContext;
use crate::k8s::pods::{ExecEnd, PodError, PodRef};
use crate::matchers::{Pattern, ShowMatch};
use crate::text::clip;

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

impl PodExecCheck {
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
        problems.extend(self.output().validate());
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
        let exit = match &end {
            ExecEnd::Exited(code) => Exit::Code(*code),
            ExecEnd::Unknown(message) => Exit::Unknown(ctx.redactor.redact(message.trim())),
        };
        let problems = self
            .output()
            .judge(&exit, &stdout, &stderr, ShowMatch::Line(&ctx.redactor));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Redactor;

    fn check(yaml: &str) -> Result<PodExecCheck, String> {
        let head = "pod: {namespace: data, name: postgres-postgresql-0}\ncommand: [ls, /data]\n";
        serde_saphyr::from_str(&format!("{head}{yaml}")).map_err(|e| e.to_string())
    }

    #[test]
    fn its_exit_code_and_output_are_judged_by_the_shared_expectation() {
        let check =
            check("stdout_contains: [pg_wal]\nstdout_excludes: [\"/\\\\.sqlite3/\"]").unwrap();
        let redactor = Redactor::default();
        let show = ShowMatch::Line(&redactor);
        let output = check.output();
        assert!(output
            .judge(&Exit::Code(0), "base\npg_wal\n", "", show)
            .is_empty());
        let problems = output.judge(&Exit::Code(0), "db.sqlite3\n", "", show);
        assert_eq!(
            problems,
            [
                "stdout: `pg_wal` not found",
                "stdout: `/\\.sqlite3/` found: `db.sqlite3`"
            ]
        );
        let unknown = output.judge(&Exit::Unknown("no status".into()), "pg_wal", "", show);
        assert_eq!(
            unknown,
            ["expected exit code 0, but the API gave no exit code, only: no status"]
        );
    }

    #[test]
    fn a_bad_regex_is_refused_when_the_suite_is_read() {
        let err = check("stderr_excludes: [\"/(/\"]").unwrap_err();
        assert!(err.contains("invalid regular expression `/(/`"), "{err}");
        let flags = check("stdout_contains: [\"/x/q\"]").unwrap().validate();
        assert_eq!(flags[0].field, "stdout_contains.0");
    }
}

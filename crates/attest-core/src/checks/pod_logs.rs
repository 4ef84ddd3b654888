//! `pod-logs`: the logs of the pods a name or selector picks must contain, or must not
//! contain, patterns: "logs show the PostgreSQL connection and applied migrations, and no
//! SQLite errors". Evidence quotes the matching or offending lines, redacted and clipped.

use kube::api::LogParams;
use schemars::JsonSchema;
use serde::Deserialize;

use super::output::OutputExpectation;
use super::pod_exec::pod_verdict;
use super::{FieldProblem, Kind, Permission, Verdict};
use crate::context::CheckContext;
use crate::duration::HumanDuration;
use crate::k8s::pods::PodRef;
use crate::matchers::Pattern;
use crate::text::clip;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PodLogsCheck {
    /// Which pods (every running pod a selector matches is read) and container.
    pub pod: PodRef,
    /// Each must appear in the logs (of at least one pod).
    #[serde(default)]
    pub contains: Vec<Pattern>,
    /// None may appear in any pod's logs.
    #[serde(default)]
    pub excludes: Vec<Pattern>,
    /// Match regardless of case.
    #[serde(default)]
    pub ignore_case: bool,
    /// Only lines newer than this (`1h`).
    #[serde(default)]
    pub since: Option<HumanDuration>,
    /// Only the last N lines (1 or more).
    #[serde(default)]
    pub tail: Option<i64>,
    /// The previous (crashed or restarted) container instance.
    #[serde(default)]
    pub previous: bool,
}

impl PodLogsCheck {
    /// What the logs must show, from the `contains`, `excludes` and `ignore_case` keys.
    fn output(&self) -> OutputExpectation {
        OutputExpectation::new(
            ("contains", &self.contains),
            ("excludes", &self.excludes),
            self.ignore_case,
        )
    }
}

impl Kind for PodLogsCheck {
    const DESCRIPTION: &'static str = "The logs of the pods a name or selector picks must contain, or must not contain, patterns.";
    fn target(&self) -> String {
        format!("logs of {}", self.pod.describe())
    }

    fn permissions(&self) -> Vec<Permission> {
        self.pod.permissions(&["get"], "log")
    }

    fn validate(&self) -> Vec<FieldProblem> {
        let mut problems = self.output().validate();
        if let Some(tail) = self.tail.filter(|n| *n < 1) {
            problems.push(FieldProblem::new(
                "tail",
                format!("expected a number of lines, 1 or more (leave `tail` out for the whole log), found `{tail}`"),
            ));
        }
        problems
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let access = &ctx.services.kube;
        let pods = match self.pod.pods(access, ctx.remaining()).await {
            Ok(pods) => pods,
            Err(e) => return pod_verdict(&e),
        };
        let params = LogParams {
            since_seconds: self.since.map(|d| d.0.as_secs().max(1) as i64),
            tail_lines: self.tail,
            previous: self.previous,
            ..LogParams::default()
        };
        let mut lines = Vec::new();
        for pod in &pods {
            match self
                .pod
                .logs(access, pod, params.clone(), ctx.remaining())
                .await
            {
                Ok(text) => lines.extend(text.lines().map(|l| (pod.clone(), l.to_owned()))),
                Err(e) => return pod_verdict(&e),
            }
        }
        let quote = |pod: &str, line: &str| {
            format!("{pod}: {}", clip(&ctx.redactor.redact(line.trim()), 160))
        };
        let (problems, evidence) = self.output().judge_lines(&lines, quote);
        let scope = format!("{} line(s) from {} pod(s)", lines.len(), pods.len());
        let verdict = if problems.is_empty() {
            let mut summary = format!("logs as expected ({scope})");
            if !evidence.is_empty() {
                summary.push_str(&format!(": {}", evidence.join(" | ")));
            }
            Verdict::pass(summary)
        } else {
            Verdict::fail(format!("logs ({scope}): {}", problems.join("; ")))
                .hint("`kubectl logs` with the same selector shows them; `since:`/`tail:` narrow the window")
        };
        verdict.measure("lines", lines.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(yaml: &str) -> Result<PodLogsCheck, String> {
        let head = "pod: {namespace: docs, selector: app=paperless}\n";
        serde_saphyr::from_str(&format!("{head}{yaml}")).map_err(|e| e.to_string())
    }

    fn lines(text: &[(&str, &str)]) -> Vec<(String, String)> {
        text.iter()
            .map(|(pod, line)| (pod.to_string(), line.to_string()))
            .collect()
    }

    #[test]
    fn its_lines_are_judged_by_the_shared_expectation() {
        let check =
            check("contains: [\"/^Applying/\", postgresql]\nexcludes: [sqlite]\nignore_case: true")
                .unwrap();
        let quote = |pod: &str, line: &str| format!("{pod}: {line}");
        let good = lines(&[
            ("web-0", "applying migrations"),
            ("web-1", "PostgreSQL ready"),
        ]);
        let (problems, evidence) = check.output().judge_lines(&good, quote);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            evidence,
            ["web-0: applying migrations", "web-1: PostgreSQL ready"]
        );
        let bad = lines(&[("web-0", "x Applying"), ("web-1", "SQLite locked")]);
        let (problems, _) = check.output().judge_lines(&bad, quote);
        assert_eq!(
            problems,
            [
                "`/^Applying/` not found",
                "`postgresql` not found",
                "`sqlite` found in 1 line(s), first: web-1: SQLite locked"
            ]
        );
    }

    #[test]
    fn a_bad_regex_is_refused_when_the_suite_is_read() {
        let err = check("excludes: [\"/sqlite[/\"]").unwrap_err();
        assert!(
            err.contains("invalid regular expression `/sqlite[/`"),
            "{err}"
        );
        let flags = check("contains: [\"/migrat/i\"]").unwrap().validate();
        assert_eq!(flags[0].field, "contains.0");
    }
}

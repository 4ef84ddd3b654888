//! `pod-logs`: the logs of the pods a name or selector picks must contain, or must not
//! contain, patterns: "logs show the PostgreSQL connection and applied migrations, and no
//! SQLite errors". Evidence quotes the matching or offending lines, redacted and clipped.

use kube::api::LogParams;
use regex::Regex;
use schemars::JsonSchema;
use serde::Deserialize;

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

/// A pattern's matcher, case-insensitive when asked.
fn matcher(pattern: &Pattern, ignore_case: bool) -> Result<Regex, String> {
    let source = match pattern {
        Pattern::Literal(text) => regex::escape(text),
        Pattern::Regex(re) => re.as_str().to_owned(),
    };
    let source = if ignore_case {
        format!("(?i){source}")
    } else {
        source
    };
    Regex::new(&source).map_err(|e| format!("invalid regular expression {pattern}: {e}"))
}

impl PodLogsCheck {
    /// The matchers of `patterns`, in order.
    fn matchers(&self, patterns: &[Pattern]) -> Result<Vec<Regex>, String> {
        patterns
            .iter()
            .map(|p| matcher(p, self.ignore_case))
            .collect()
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
        let mut problems = crate::validate::patterns("contains", &self.contains, true);
        problems.extend(crate::validate::patterns("excludes", &self.excludes, true));
        // A literal escaped, or `(?i)` added, can outgrow the regex size limit.
        for (field, patterns) in [("contains", &self.contains), ("excludes", &self.excludes)] {
            for (i, pattern) in patterns.iter().enumerate() {
                if let Err(e) = matcher(pattern, self.ignore_case) {
                    problems.push(FieldProblem::new(format!("{field}.{i}"), e));
                }
            }
        }
        if let Some(tail) = self.tail.filter(|n| *n < 1) {
            problems.push(FieldProblem::new(
                "tail",
                format!("expected a number of lines, 1 or more (leave `tail` out for the whole log), found `{tail}`"),
            ));
        }
        problems
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        // Checked at load; a failure here is reported, never a panic.
        let (contains, excludes) =
            match (self.matchers(&self.contains), self.matchers(&self.excludes)) {
                (Ok(contains), Ok(excludes)) => (contains, excludes),
                (Err(e), _) | (_, Err(e)) => return Verdict::error(e),
            };
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
        let mut problems = Vec::new();
        let mut evidence = Vec::new();
        for (pattern, re) in self.contains.iter().zip(&contains) {
            match lines.iter().find(|(_, line)| re.is_match(line)) {
                Some((pod, line)) => evidence.push(quote(pod, line)),
                None => problems.push(format!("{pattern} not found")),
            }
        }
        for (pattern, re) in self.excludes.iter().zip(&excludes) {
            let offending: Vec<_> = lines.iter().filter(|(_, line)| re.is_match(line)).collect();
            if let Some((pod, line)) = offending.first() {
                problems.push(format!(
                    "{pattern} found in {} line(s), first: {}",
                    offending.len(),
                    quote(pod, line)
                ));
            }
        }
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

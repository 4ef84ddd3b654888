//! What a check expects of a program's output, for `command`, `pod-exec` and `pod-logs`: one
//! type read the same way for the three kinds, checked at load the same way, and judging one
//! output (a whole text, or log lines) with the same evidence.
//!
//! The suite keys stay the kinds' own (`stdout_contains` for a command, `contains` for logs):
//! serde cannot gather flat keys into a nested value without `flatten`, which would lose the
//! "unknown key, did you mean" check and the positions of errors. So each kind declares its
//! keys, and they become these types, once, when the suite loads ([`ProcessOutput`] from
//! `exit_code` and the four pattern lists, [`OutputExpectation`] from a pair of lists).

use std::fmt;

use regex::Regex;

use super::FieldProblem;
use crate::matchers::{check_patterns, Pattern, ShowMatch, TextMatcher};
use crate::text::clip;
use crate::validate;

/// Patterns one output must contain and must not contain. Read from a suite's list of
/// patterns (`stdout_contains: [ready, "/^LOG: .*started/"]`); a bad expression is a load
/// error at its line and column.
#[derive(Debug, Clone, Default)]
pub struct OutputExpectation {
    /// The suite's key for the `contains` list, for problems (`stdout_contains`, `contains`).
    contains_key: &'static str,
    excludes_key: &'static str,
    contains: Vec<Matcher>,
    excludes: Vec<Matcher>,
    /// Whether patterns match regardless of case (`ignore_case: true` of `pod-logs`).
    ignore_case: bool,
}

/// A pattern as written, and how it is matched (case-insensitively when asked).
#[derive(Debug, Clone)]
struct Matcher {
    pattern: Pattern,
    /// `Some` when matching ignores case (the pattern as a `(?i)` expression).
    folded: Option<Regex>,
}

impl TextMatcher for Matcher {
    fn is_match(&self, text: &str) -> bool {
        match &self.folded {
            Some(re) => re.is_match(text),
            None => self.pattern.is_match(text),
        }
    }
}

/// Shown as the pattern was written (`(?i)` added for case is not shown).
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fmt::Display::fmt(&self.pattern, f)
    }
}

/// How a pattern matches regardless of case; an error when that outgrows the regex size limit
/// (a long literal, escaped) or cannot be built.
fn folded(pattern: &Pattern) -> Result<Regex, String> {
    let source = match pattern {
        Pattern::Literal(text) => regex::escape(text),
        Pattern::Regex(re) => re.as_str().to_owned(),
    };
    Regex::new(&format!("(?i){source}"))
        .map_err(|e| format!("invalid regular expression {pattern}: {e}"))
}

impl OutputExpectation {
    /// The expectation the suite wrote under `contains_key` and `excludes_key`.
    pub fn new(
        (contains_key, contains): (&'static str, &[Pattern]),
        (excludes_key, excludes): (&'static str, &[Pattern]),
        ignore_case: bool,
    ) -> OutputExpectation {
        let matchers = |patterns: &[Pattern]| {
            patterns
                .iter()
                .map(|p| Matcher {
                    pattern: p.clone(),
                    // A pattern that cannot fold is reported by `validate`; until then it
                    // matches as written.
                    folded: ignore_case.then(|| folded(p).ok()).flatten(),
                })
                .collect()
        };
        OutputExpectation {
            contains_key,
            excludes_key,
            contains: matchers(contains),
            excludes: matchers(excludes),
            ignore_case,
        }
    }

    /// Problems known at load: a regex meant with flags after its slash, a pattern that cannot
    /// be matched regardless of case. (A bad expression never gets here: reading the pattern
    /// refuses it at its line and column.)
    pub fn validate(&self) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        for (key, matchers) in [
            (self.contains_key, &self.contains),
            (self.excludes_key, &self.excludes),
        ] {
            problems.extend(validate::patterns(
                key,
                matchers.iter().map(|m| &m.pattern),
                true,
            ));
            if self.ignore_case {
                for (i, m) in matchers.iter().enumerate() {
                    if let Err(e) = folded(&m.pattern) {
                        problems.push(FieldProblem::new(format!("{key}.{i}"), e));
                    }
                }
            }
        }
        problems
    }

    /// Judges one whole output (a pattern may span lines); one line per problem, each
    /// `LABEL: ` first when a label is given (`stdout: `).
    pub fn judge_text(&self, label: &str, text: &str, show: ShowMatch<'_>) -> Vec<String> {
        let prefix = if label.is_empty() {
            String::new()
        } else {
            format!("{label}: ")
        };
        check_patterns(text, &self.contains, &self.excludes, show)
            .into_iter()
            .map(|p| format!("{prefix}{p}"))
            .collect()
    }

    /// Judges lines of several sources (a log line of each pod: `(pod, line)`), a pattern
    /// matching one line at a time. Returns the problems and, for each `contains` pattern
    /// found, the first line it matched, quoted by `quote`.
    pub fn judge_lines(
        &self,
        lines: &[(String, String)],
        quote: impl Fn(&str, &str) -> String,
    ) -> (Vec<String>, Vec<String>) {
        let mut problems = Vec::new();
        let mut evidence = Vec::new();
        for m in &self.contains {
            match lines.iter().find(|(_, line)| m.is_match(line)) {
                Some((source, line)) => evidence.push(quote(source, line)),
                None => problems.push(format!("{} not found", m.pattern)),
            }
        }
        for m in &self.excludes {
            let offending: Vec<_> = lines.iter().filter(|(_, line)| m.is_match(line)).collect();
            if let Some((source, line)) = offending.first() {
                problems.push(format!(
                    "{} found in {} line(s), first: {}",
                    m.pattern,
                    offending.len(),
                    quote(source, line)
                ));
            }
        }
        (problems, evidence)
    }
}

/// What a finished program must show: its exit code and what its standard output and error
/// contain (`command`, `pod-exec`).
#[derive(Debug, Clone, Default)]
pub struct ProcessOutput {
    /// Expected exit code, 0 to 255.
    pub exit_code: i32,
    pub stdout: OutputExpectation,
    pub stderr: OutputExpectation,
}

/// How a program ended, as far as the check could tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    /// Killed by a signal (a local command).
    Signal,
    /// No exit code, only this text (the Kubernetes API's exec status), already redacted.
    Unknown(String),
}

/// The keys of a [`ProcessOutput`] as a kind declares them. Every kind that runs a program
/// reads them with these names; the kind's own struct holds them so that its unknown keys are
/// still reported with a suggestion.
pub struct ProcessKeys<'a> {
    pub exit_code: i32,
    pub stdout_contains: &'a [Pattern],
    pub stdout_excludes: &'a [Pattern],
    pub stderr_contains: &'a [Pattern],
    pub stderr_excludes: &'a [Pattern],
}

impl ProcessOutput {
    pub fn new(keys: ProcessKeys<'_>) -> ProcessOutput {
        ProcessOutput {
            exit_code: keys.exit_code,
            stdout: OutputExpectation::new(
                ("stdout_contains", keys.stdout_contains),
                ("stdout_excludes", keys.stdout_excludes),
                false,
            ),
            stderr: OutputExpectation::new(
                ("stderr_contains", keys.stderr_contains),
                ("stderr_excludes", keys.stderr_excludes),
                false,
            ),
        }
    }

    /// Problems known at load: the exit code's range, the patterns.
    pub fn validate(&self) -> Vec<FieldProblem> {
        let mut problems = Vec::new();
        if !(0..=255).contains(&self.exit_code) {
            problems.push(FieldProblem::new(
                "exit_code",
                format!(
                    "expected an exit code from 0 to 255, found `{}`",
                    self.exit_code
                ),
            ));
        }
        problems.extend(self.stdout.validate());
        problems.extend(self.stderr.validate());
        problems
    }

    /// Judges a finished program: one line per problem, empty when all is as expected.
    pub fn judge(&self, exit: &Exit, stdout: &str, stderr: &str, show: ShowMatch) -> Vec<String> {
        let mut problems = Vec::new();
        match exit {
            Exit::Code(code) if *code == self.exit_code => {}
            Exit::Code(code) => {
                problems.push(format!("exit code {code}, expected {}", self.exit_code))
            }
            Exit::Signal => problems.push("killed by a signal".to_owned()),
            Exit::Unknown(message) => problems.push(format!(
                "expected exit code {}, but the API gave no exit code, only: {}",
                self.exit_code,
                clip(message.trim(), 200)
            )),
        }
        problems.extend(self.stdout.judge_text("stdout", stdout, show));
        problems.extend(self.stderr.judge_text("stderr", stderr, show));
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::Redactor;

    fn p(texts: &[&str]) -> Vec<Pattern> {
        texts.iter().map(|t| Pattern::parse(t).unwrap()).collect()
    }

    fn process(exit_code: i32, out: &[&str], out_not: &[&str]) -> ProcessOutput {
        ProcessOutput::new(ProcessKeys {
            exit_code,
            stdout_contains: &p(out),
            stdout_excludes: &p(out_not),
            stderr_contains: &[],
            stderr_excludes: &[],
        })
    }

    #[test]
    fn a_process_passes_on_its_code_and_patterns_and_says_what_differs() {
        let redactor = Redactor::default();
        let show = ShowMatch::Line(&redactor);
        let expect = process(0, &["ready", "/^LOG:/"], &["/(?i)fatal/"]);
        assert!(expect
            .judge(&Exit::Code(0), "LOG: db\nready\n", "", show)
            .is_empty());
        let problems = expect.judge(&Exit::Code(3), "LOG: db\nFATAL: gone\n", "", show);
        assert_eq!(
            problems,
            [
                "exit code 3, expected 0",
                "stdout: `ready` not found",
                "stdout: `/(?i)fatal/` found: `FATAL: gone`",
            ]
        );
        let unknown = expect.judge(
            &Exit::Unknown("stream closed".into()),
            "ready LOG:",
            "",
            show,
        );
        assert_eq!(
            unknown[0],
            "expected exit code 0, but the API gave no exit code, only: stream closed"
        );
        assert_eq!(
            expect.judge(&Exit::Signal, "", "", show)[0],
            "killed by a signal"
        );
    }

    #[test]
    fn load_problems_name_the_key_and_index() {
        let expect = process(300, &["ok", "/x/q"], &[]);
        let problems = expect.validate();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(problems[0].field, "exit_code");
        assert_eq!(problems[1].field, "stdout_contains.1");
        assert!(problems[1].message.contains("makes it literal text"));
    }

    #[test]
    fn log_lines_match_one_at_a_time_regardless_of_case_when_asked() {
        let lines: Vec<(String, String)> =
            [("web-0", "Applying migrations"), ("web-1", "ERROR: sqlite")]
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        let quote = |pod: &str, line: &str| format!("{pod}: {line}");
        let expect = OutputExpectation::new(
            ("contains", &p(&["applying MIGRATIONS", "/^ERROR/"])),
            ("excludes", &p(&["sqlite"])),
            true,
        );
        let (problems, evidence) = expect.judge_lines(&lines, quote);
        assert_eq!(
            evidence,
            ["web-0: Applying migrations", "web-1: ERROR: sqlite"]
        );
        assert_eq!(
            problems,
            ["`sqlite` found in 1 line(s), first: web-1: ERROR: sqlite"]
        );
        let strict = OutputExpectation::new(
            ("contains", &p(&["applying MIGRATIONS"])),
            ("excludes", &[]),
            false,
        );
        let (problems, _) = strict.judge_lines(&lines, quote);
        assert_eq!(problems, ["`applying MIGRATIONS` not found"]);
        assert!(expect.validate().is_empty());
    }
}

//! `attest evidence`: a story's completion notes from a run's report.json, with no new run,
//! and writing them into the story's "Completion Notes List" between marker comments.
//!
//! Everything comes from report.json, whose text was redacted when the run wrote it; the notes
//! never claim more than its roll-up: a skipped check leaves its criterion not verified, a
//! requirement no check measures is not verified, a port-forward measurement says so, and a
//! sandbox run says so in the first line.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use serde::Deserialize;

use crate::rollup::{CheckRef, CheckState, CriterionRow, State, StoryRollup};

/// The parts of report.json the notes use.
#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    pub attest_version: String,
    /// Missing in reports written before attest recorded it.
    #[serde(default)]
    pub run_id: Option<String>,
    pub started_at: String,
    pub finished_at: String,
    pub target: String,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Missing in reports written before attest had roll-ups.
    pub stories: Option<Vec<StoryRollup>>,
    pub results: Vec<ResultRow>,
}

/// One check's result, as report.json has it.
#[derive(Debug, Clone, Deserialize)]
pub struct ResultRow {
    pub suite: String,
    pub check: String,
    pub kind: String,
    pub status: String,
    #[serde(default)]
    pub measurements: BTreeMap<String, f64>,
}

/// Why no notes could be made or written. Messages are lowercase and say what to do.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: expected a report.json written by `attest run` or `attest sandbox`: {message}")]
    NotAReport {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("`{path}` was written by attest {version}, which did not record acceptance criteria; run the suites again with this attest")]
    NoRollup { path: String, version: String },
    #[error("story `{story}` is not in `{path}`; it has {known}")]
    UnknownStory {
        story: String,
        path: String,
        known: String,
    },
    #[error("`{path}` has several stories ({known}); choose one with --story")]
    WhichStory { path: String, known: String },
}

/// Reads a report.json, or says where it is not one.
pub fn read_report(path: &Path) -> Result<Report, EvidenceError> {
    let text = std::fs::read_to_string(path).map_err(|source| EvidenceError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let report: Report = serde_json::from_str(&text).map_err(|e| EvidenceError::NotAReport {
        path: path.display().to_string(),
        line: e.line(),
        column: e.column(),
        message: e
            .to_string()
            .split(" at line ")
            .next()
            .unwrap_or_default()
            .to_owned(),
    })?;
    if report.stories.is_none() {
        return Err(EvidenceError::NoRollup {
            path: path.display().to_string(),
            version: report.attest_version,
        });
    }
    Ok(report)
}

/// The story `id` of a report (the only one when `id` is `None`).
pub fn find_story<'a>(
    report: &'a Report,
    path: &Path,
    id: Option<&str>,
) -> Result<&'a StoryRollup, EvidenceError> {
    let stories = report.stories.as_deref().unwrap_or_default();
    let named: Vec<&StoryRollup> = stories.iter().filter(|s| s.story.is_some()).collect();
    let known = || {
        let ids: Vec<String> = named
            .iter()
            .filter_map(|s| s.story.as_deref())
            .map(|s| format!("`{s}`"))
            .collect();
        match ids.is_empty() {
            true => "no story (no suite names one with `story:`)".to_owned(),
            false => format!("stories {}", ids.join(", ")),
        }
    };
    match id {
        Some(id) => named
            .iter()
            .find(|s| s.story.as_deref() == Some(id))
            .copied()
            .ok_or_else(|| EvidenceError::UnknownStory {
                story: id.to_owned(),
                path: path.display().to_string(),
                known: known(),
            }),
        None if named.len() == 1 => Ok(named[0]),
        None if named.is_empty() => Err(EvidenceError::UnknownStory {
            story: String::new(),
            path: path.display().to_string(),
            known: known(),
        }),
        None => Err(EvidenceError::WhichStory {
            path: path.display().to_string(),
            known: known(),
        }),
    }
}

/// An earlier run to compare with (`--since`).
pub struct Since<'a> {
    pub label: String,
    pub report: &'a Report,
}

/// The numbered completion notes for one story. `also` are the other runs whose results the
/// story's roll-up took in ([`crate::rollup::merge`]), each with how many it took.
pub fn notes(
    report: &Report,
    story: &StoryRollup,
    since: Option<&Since>,
    also: &[(&Report, usize)],
) -> String {
    let mut out = String::new();
    let id = story.story.as_deref().unwrap_or_default();
    let count = |state: State| story.criteria.iter().filter(|c| c.state == state).count();
    let mut tally = vec![format!(
        "{} of {} criteria verified",
        count(State::Verified),
        story.criteria.len()
    )];
    for state in [
        State::Failed,
        State::NotVerified,
        State::Manual,
        State::NotCovered,
    ] {
        if count(state) > 0 {
            tally.push(format!("{} {}", count(state), state.as_str()));
        }
    }
    let tally = tally.join(", ");
    if report.target == "sandbox" {
        let _ = writeln!(
            out,
            "**⚠ Sandbox run, not the live environment**: attest {} ran story {id}'s checks against local stand-ins (`attest sandbox`) on {}; {tally}.\n",
            report.attest_version, report.started_at
        );
    } else {
        let _ = writeln!(
            out,
            "**Validated by attest {}** against `{}` on {}: {tally}.\n",
            report.attest_version, report.target, report.started_at
        );
    }
    let mut items: Vec<String> = Vec::new();
    for c in &story.criteria {
        items.push(criterion_note(c));
    }
    for r in &story.requirements {
        let icon = r.state.icon();
        let by: Vec<String> = if r.criteria.is_empty() {
            // The criteria whose checks measured it.
            story
                .criteria
                .iter()
                .filter(|c| {
                    c.checks
                        .iter()
                        .any(|x| r.checks.iter().any(|y| y.check == x.check))
                })
                .map(|c| c.id.clone())
                .collect()
        } else {
            r.criteria.clone()
        };
        let description = match r.description.is_empty() {
            true => String::new(),
            false => format!(": {}", r.description),
        };
        let line = match r.state {
            State::Verified if !by.is_empty() => format!(
                "{icon} **{} validated by {}**{description}",
                r.id,
                by.join(", ")
            ),
            State::Verified => format!(
                "{icon} **{} validated**{description} ({})",
                r.id,
                check_names(&r.checks)
            ),
            state => format!(
                "{icon} **{} {}**{description} — {}",
                r.id,
                match state {
                    State::Failed => "failed",
                    _ => "not verified",
                },
                r.why.as_deref().unwrap_or(state.as_str())
            ),
        };
        items.push(line);
    }
    if let Some(since) = since {
        items.push(changes(report, story, since));
    }
    items.push(format!("**Environment**: {}", environment(report)));
    for (other, taken) in also {
        items.push(format!(
            "**Also from another run** ({taken} result(s) measured where the criteria ask, or that did not run above): {}",
            environment(other)
        ));
    }
    items.push(format!("**Re-run**: `{}`", rerun(report, story)));
    for (n, item) in items.iter().enumerate() {
        let _ = writeln!(out, "{}. {item}", n + 1);
    }
    out
}

fn check_names(checks: &[CheckRef]) -> String {
    checks
        .iter()
        .map(|c| format!("`{}`", c.check))
        .collect::<Vec<_>>()
        .join(", ")
}

/// One criterion: a headline with its state, then one sub-bullet per check with what it
/// measured, or why it did not run.
fn criterion_note(c: &CriterionRow) -> String {
    let title = match c.title.is_empty() {
        true => String::new(),
        false => format!(": {}", c.title),
    };
    let mut note = format!(
        "{} **{} {}**{title}",
        c.state.icon(),
        c.id,
        c.state.as_str()
    );
    match c.state {
        State::Manual => {
            let _ = write!(
                note,
                " — checked by hand: {}",
                c.why.as_deref().unwrap_or_default()
            );
            if !c.checks.is_empty() {
                note.push_str(" (supporting evidence below)");
            }
        }
        State::NotCovered => note.push_str(" — no check covers it"),
        _ => {}
    }
    for check in &c.checks {
        let what = match check.state {
            CheckState::Passed => check.evidence.clone(),
            CheckState::Failed => format!("FAILED: {}", check.evidence),
            CheckState::Error => format!("could not be evaluated: {}", check.evidence),
            CheckState::Skipped | CheckState::NotSelected => {
                format!("did not run, so this is not verified: {}", check.evidence)
            }
        };
        let path = check.path_note(|v| {
            format!(
                "measured through a port-forward to {v}: timings include the Kubernetes API server hop, not in-cluster traffic"
            )
        });
        let _ = write!(
            note,
            "\n   - {} `{}`: {what}{path}",
            check.state.icon(),
            check.check
        );
    }
    note
}

fn environment(report: &Report) -> String {
    let mut parts = vec![format!("target `{}`", report.target)];
    let fact = |key: &str| report.environment.get(key).filter(|v| !v.is_empty());
    if let Some(context) = fact("kubernetes context") {
        let mut kube = format!("Kubernetes context `{context}`");
        if let Some(version) = fact("kubernetes version") {
            let _ = write!(kube, ", server {version}");
        }
        if let Some(server) = fact("kubernetes server") {
            let _ = write!(kube, " at {server}");
        }
        parts.push(kube);
    }
    match (fact("runs in"), fact("host")) {
        (Some(place), _) => parts.push(format!("run in {place}")),
        (None, Some(host)) => {
            let os = fact("os").map(|o| format!(" ({o})")).unwrap_or_default();
            parts.push(format!("run from host `{host}`{os}"));
        }
        (None, None) => {}
    }
    parts.push(format!("attest {}", report.attest_version));
    let id = match report.run_id.as_deref().filter(|id| !id.is_empty()) {
        Some(id) => format!("`{id}` "),
        None => String::new(),
    };
    parts.push(format!(
        "run {id}{} to {}",
        report.started_at, report.finished_at
    ));
    parts.join("; ")
}

/// The kinds that change things: a re-run needs `--allow-mutating` for them.
const MUTATING_KINDS: &[&str] = &[
    "pg-provision",
    "pg-crud",
    "pg-isolation",
    "pg-sentinel",
    "pg-backup",
];

fn rerun(report: &Report, story: &StoryRollup) -> String {
    let files = story.suite_files.join(" ");
    if report.target == "sandbox" {
        return format!("attest sandbox {files}");
    }
    let mut line = format!("attest run {files} --target {}", shell_word(&report.target));
    if let Some(context) = report.environment.get("kubernetes context") {
        if !context.contains(',') {
            let _ = write!(line, " --context {}", shell_word(context));
        }
    }
    let mutating = report
        .results
        .iter()
        .any(|r| story.suites.contains(&r.suite) && MUTATING_KINDS.contains(&r.kind.as_str()));
    if mutating {
        line.push_str(" --allow-mutating");
    }
    line
}

fn shell_word(word: &str) -> String {
    if word
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:@".contains(c))
    {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// What changed since an earlier run: criteria that regressed or recovered, and
/// measurements that moved by at least 20% (and 1 ms for timings).
fn changes(report: &Report, story: &StoryRollup, since: &Since) -> String {
    let old_story = since
        .report
        .stories
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|s| s.story == story.story);
    let mut facts: Vec<String> = Vec::new();
    for c in &story.criteria {
        let old = old_story.and_then(|s| s.criteria.iter().find(|o| o.id == c.id));
        match old {
            None => facts.push(format!("{} is new: {}", c.id, c.state.as_str())),
            Some(old) if old.state == c.state => {}
            Some(old) if c.state == State::Verified => facts.push(format!(
                "✅ {} recovered: {} → verified",
                c.id,
                old.state.as_str()
            )),
            Some(old) if old.state == State::Verified => facts.push(format!(
                "❌ {} regressed: verified → {}{}",
                c.id,
                c.state.as_str(),
                c.why
                    .as_deref()
                    .map(|w| format!(" ({w})"))
                    .unwrap_or_default()
            )),
            Some(old) => facts.push(format!(
                "{} changed: {} → {}",
                c.id,
                old.state.as_str(),
                c.state.as_str()
            )),
        }
    }
    for result in report
        .results
        .iter()
        .filter(|r| story.suites.contains(&r.suite))
    {
        let Some(old) = since
            .report
            .results
            .iter()
            .find(|o| o.suite == result.suite && o.check == result.check)
        else {
            continue;
        };
        if old.status != result.status {
            facts.push(format!(
                "`{}` was {}, now {}",
                result.check, old.status, result.status
            ));
        }
        for (key, new) in &result.measurements {
            let Some(before) = old.measurements.get(key) else {
                continue;
            };
            let delta = new - before;
            let scale = before.abs().max(new.abs());
            let timing = key.ends_with("_ms");
            if scale == 0.0 || delta.abs() < 0.2 * scale || (timing && delta.abs() < 1.0) {
                continue;
            }
            let unit = if timing { " ms" } else { "" };
            let name = key.strip_suffix("_ms").unwrap_or(key);
            let percent = match *before == 0.0 {
                true => String::new(),
                false => format!(" ({:+.0}%)", delta / before * 100.0),
            };
            facts.push(format!(
                "`{}` {name} moved from {}{unit} to {}{unit}{percent}",
                result.check,
                number(*before),
                number(*new)
            ));
        }
    }
    let mut line = format!(
        "**Since the run of {}** (`{}`):",
        since.report.started_at, since.label
    );
    if facts.is_empty() {
        line.push_str(" no criterion changed and no measurement moved by 20% or more");
    }
    for fact in facts {
        let _ = write!(line, "\n   - {fact}");
    }
    line
}

fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// The first line of the block `--write` manages.
pub const BEGIN_MARKER: &str =
    "<!-- attest:evidence begin (written by `attest evidence --write`; edits inside are replaced) -->";
/// The last line of that block.
pub const END_MARKER: &str = "<!-- attest:evidence end -->";

/// Why notes were not written into a story document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("has no \"Completion Notes List\" heading to write the notes under")]
    NoSection,
    #[error("{0}; fix or remove the attest:evidence marker comments, then run again")]
    Damaged(String),
}

/// How a write went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// The block was there and was replaced.
    Replaced,
    /// A new block was added at the end of the section.
    Added,
}

fn is_begin(line: &str) -> bool {
    line.trim_start().starts_with("<!-- attest:evidence begin")
}

fn is_end(line: &str) -> bool {
    line.trim_start().starts_with("<!-- attest:evidence end")
}

/// Puts `notes` into the document's "Completion Notes List" section between the markers:
/// replaces the block a previous write left, or adds one at the end of the section. Never
/// touches a line outside the block; refuses a document whose markers are damaged.
pub fn write_into(document: &str, notes: &str) -> Result<(String, Written), WriteError> {
    let newline = if document.contains("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let lines: Vec<&str> = document.lines().collect();
    let Some(crate::story::Section { heading, end }) =
        crate::story::find_section(&lines, crate::story::is_notes_heading)
    else {
        return Err(WriteError::NoSection);
    };
    let begins: Vec<usize> = (0..lines.len()).filter(|&i| is_begin(lines[i])).collect();
    let ends: Vec<usize> = (0..lines.len()).filter(|&i| is_end(lines[i])).collect();
    let at = |items: &[usize]| {
        items
            .iter()
            .map(|i| (i + 1).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut block: Vec<&str> = vec![BEGIN_MARKER];
    block.extend(notes.trim_end().lines());
    block.push(END_MARKER);
    let (out, written): (Vec<&str>, Written) = match (begins.as_slice(), ends.as_slice()) {
        ([], []) => {
            // At the end of the section, after its last non-blank line.
            let mut insert = end;
            while insert > heading + 1 && lines[insert - 1].trim().is_empty() {
                insert -= 1;
            }
            let mut out: Vec<&str> = lines[..insert].to_vec();
            out.push("");
            out.extend(block);
            if end < lines.len() {
                out.push("");
                out.extend(&lines[end..]);
            }
            (out, Written::Added)
        }
        ([begin], [finish]) if begin < finish && *begin > heading && *finish < end => {
            let mut out: Vec<&str> = lines[..*begin].to_vec();
            out.extend(block);
            out.extend(&lines[finish + 1..]);
            (out, Written::Replaced)
        }
        ([begin], [finish]) if begin > finish => {
            return Err(WriteError::Damaged(format!(
                "the end marker (line {}) comes before the begin marker (line {})",
                finish + 1,
                begin + 1
            )))
        }
        ([begin], [finish]) => {
            return Err(WriteError::Damaged(format!(
                "the markers (lines {} and {}) are outside the \"Completion Notes List\" section (lines {} to {})",
                begin + 1,
                finish + 1,
                heading + 1,
                end
            )))
        }
        ([begin], []) => {
            return Err(WriteError::Damaged(format!(
                "the begin marker at line {} has no end marker",
                begin + 1
            )))
        }
        ([], [finish]) => {
            return Err(WriteError::Damaged(format!(
                "the end marker at line {} has no begin marker",
                finish + 1
            )))
        }
        _ => {
            return Err(WriteError::Damaged(format!(
                "expected one begin and one end marker, found begin markers at line(s) {} and end markers at line(s) {}",
                match begins.is_empty() { true => "none".into(), false => at(&begins) },
                match ends.is_empty() { true => "none".into(), false => at(&ends) },
            )))
        }
    };
    let mut text = out.join(newline);
    if document.ends_with('\n') || document.is_empty() {
        text.push_str(newline);
    }
    Ok((text, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORY: &str = "# Story\n\n## Dev Agent Record\n\n### Completion Notes List\n\n1. **Done by hand**: a person wrote this\n\n### File List\n\n- a\n";

    #[test]
    fn write_adds_then_replaces_its_own_block_only() {
        let (first, how) = write_into(STORY, "1. ✅ first").unwrap();
        assert_eq!(how, Written::Added);
        assert!(first
            .contains("1. **Done by hand**: a person wrote this\n\n<!-- attest:evidence begin"));
        assert!(first.contains("1. ✅ first\n<!-- attest:evidence end -->\n\n### File List\n"));
        let (again, how) = write_into(&first, "1. ✅ first").unwrap();
        assert_eq!((again.as_str(), how), (first.as_str(), Written::Replaced));
        let (second, _) = write_into(&first, "1. ❌ second").unwrap();
        assert!(second.contains("1. ❌ second") && !second.contains("first"));
        assert!(second.contains("a person wrote this"));
        // Without anything after the section.
        let tail = "### Completion Notes List\n\n1. mine\n";
        let (out, _) = write_into(tail, "1. ours").unwrap();
        assert!(
            out.contains("1. mine\n\n<!-- attest:evidence begin"),
            "{out}"
        );
        assert!(
            out.ends_with("1. ours\n<!-- attest:evidence end -->\n"),
            "{out}"
        );
        assert_eq!(write_into(&out, "1. ours").unwrap().0, out);
    }

    #[test]
    fn damaged_markers_and_missing_sections_are_refused() {
        let (good, _) = write_into(STORY, "1. x").unwrap();
        let no_end: String = good
            .lines()
            .filter(|l| !is_end(l))
            .map(|l| format!("{l}\n"))
            .collect();
        let err = write_into(&no_end, "1. y").unwrap_err();
        assert!(err.to_string().contains("has no end marker"), "{err}");
        let no_begin: String = good
            .lines()
            .filter(|l| !is_begin(l))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(write_into(&no_begin, "1. y")
            .unwrap_err()
            .to_string()
            .contains("has no begin marker"));
        let twice = good.replace("### File List", &format!("{BEGIN_MARKER}\n### File List"));
        assert!(write_into(&twice, "1. y")
            .unwrap_err()
            .to_string()
            .contains("expected one begin and one end marker"));
        let swapped = good
            .replace(BEGIN_MARKER, "@@B@@")
            .replace(END_MARKER, BEGIN_MARKER)
            .replace("@@B@@", END_MARKER);
        assert!(write_into(&swapped, "1. y")
            .unwrap_err()
            .to_string()
            .contains("comes before"));
        let outside = format!("{BEGIN_MARKER}\n{END_MARKER}\n{STORY}");
        assert!(write_into(&outside, "1. y")
            .unwrap_err()
            .to_string()
            .contains("outside"));
        assert_eq!(
            write_into("# Paperless\n\n## Storage\n", "1. y").unwrap_err(),
            WriteError::NoSection
        );
    }

    #[test]
    fn crlf_documents_stay_crlf() {
        let crlf = STORY.replace('\n', "\r\n");
        let (out, _) = write_into(&crlf, "1. x").unwrap();
        assert!(!out.replace("\r\n", "").contains('\n'));
        assert_eq!(write_into(&out, "1. x").unwrap().0, out);
    }
}

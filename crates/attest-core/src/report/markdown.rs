//! `report.md`: GitHub-flavoured Markdown evidence, paste-ready into a story's completion
//! notes: a summary line, one table per suite, a requirement traceability matrix and an
//! environment fingerprint.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::duration::format_duration;
use crate::outcome::{timestamp, FinalState, Outcome, RunRecord, Status};

pub fn render(record: &RunRecord) -> String {
    let mut out = String::new();
    let summary = record.summary();
    let icon = match record.final_state() {
        FinalState::Success | FinalState::Listed if summary.skipped == 0 => "✅",
        FinalState::Success | FinalState::Listed | FinalState::Incomplete => "⚠",
        FinalState::Failed => "❌",
        FinalState::NoChecksSelected => "⚠",
        FinalState::Interrupted(_) => "⏹",
    };
    let _ = writeln!(out, "# Validation evidence: `{}`\n", cell(&record.target));
    let _ = writeln!(
        out,
        "**{icon} {}**\n\n{} passed, {} failed, {} skipped, {} errors, in {} (attest {}, {}).\n",
        record.verdict_line(),
        summary.passed,
        summary.failed,
        summary.skipped,
        summary.errors,
        format_duration(
            record
                .finished_at
                .duration_since(record.started_at)
                .unwrap_or_default()
        ),
        record.attest_version,
        timestamp(record.started_at),
    );
    let not_verified = record.not_verified();
    if !not_verified.is_empty() {
        out.push_str("Not verified by this run:\n\n");
        for (cause, count) in &not_verified {
            let _ = writeln!(
                out,
                "- {count} check(s): {}",
                cause.to_string().replace('\n', " ")
            );
        }
        out.push('\n');
    }
    if let Some(signal) = record.interrupted {
        let _ = writeln!(
            out,
            "> The run was interrupted ({}); checks not started are listed as skipped.\n",
            signal.name()
        );
    }

    for suite in &record.suites {
        let heading = match &suite.story {
            Some(story) => format!("Story {story}: {}", suite.title),
            None => suite.title.clone(),
        };
        let _ = writeln!(out, "## {heading}\n");
        let _ = writeln!(out, "Suite `{}` from `{}`.\n", suite.id, suite.path);
        out.push_str("| AC | Requirement | Check | Result | Evidence |\n");
        out.push_str("|---|---|---|---|---|\n");
        for o in &suite.outcomes {
            let _ = writeln!(
                out,
                "| {} | {} | {} (`{}`) | {} | {} |",
                cell(&o.acceptance.join(", ")),
                cell(&o.requirements.join(", ")),
                cell(&o.title),
                cell(&o.check),
                result_word(o.status),
                cell(&evidence(o)),
            );
        }
        out.push('\n');
        for failure in &suite.teardown_failures {
            let _ = writeln!(out, "- ❌ teardown: {}", failure.replace('\n', " "));
        }
        if !suite.teardown_failures.is_empty() {
            out.push('\n');
        }
    }

    criteria(record, &mut out);
    traceability(record, &mut out);
    environment(record, &mut out);
    out
}

/// Per story, one row per acceptance criterion and one per FR/NFR: its state, its checks and
/// their key evidence.
fn criteria(record: &RunRecord, out: &mut String) {
    for story in crate::rollup::rollup(record) {
        let Some(id) = &story.story else {
            continue;
        };
        if story.criteria.is_empty() && story.requirements.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "## Story {id}: acceptance criteria
"
        );
        if let Some(file) = &story.file {
            let _ = writeln!(
                out,
                "Criteria from `{file}`.
"
            );
        }
        if !story.criteria.is_empty() {
            out.push_str("| AC | Criterion | State | Checks and evidence |\n|---|---|---|---|\n");
            for c in &story.criteria {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} |",
                    cell(&c.id),
                    cell(&c.title),
                    cell(&state_cell(c.state, c.why.as_deref())),
                    cell(&check_lines(&c.checks)),
                );
            }
            out.push('\n');
        }
        if !story.requirements.is_empty() {
            out.push_str("| Requirement | Description | State | Criteria | Checks |\n|---|---|---|---|---|\n");
            for r in &story.requirements {
                let checks: Vec<String> = r
                    .checks
                    .iter()
                    .map(|c| format!("`{}` {}", c.check, c.state.icon()))
                    .collect();
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} |",
                    cell(&r.id),
                    cell(&r.description),
                    cell(&state_cell(r.state, r.why.as_deref())),
                    cell(&r.criteria.join(", ")),
                    cell(&checks.join(", ")),
                );
            }
            out.push('\n');
        }
    }
}

fn state_cell(state: crate::rollup::State, why: Option<&str>) -> String {
    match (state, why) {
        (crate::rollup::State::Failed, _) | (_, None) => {
            format!("{} {}", state.icon(), state.as_str())
        }
        (_, Some(why)) => format!("{} {}: {why}", state.icon(), state.as_str()),
    }
}

fn check_lines(checks: &[crate::rollup::CheckRef]) -> String {
    if checks.is_empty() {
        return "none".into();
    }
    checks
        .iter()
        .map(|c| {
            let path = c.path_note(|v| format!("through a port-forward to {v}"));
            format!("{} `{}`: {}{path}", c.state.icon(), c.check, c.evidence)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn result_word(status: Status) -> &'static str {
    match status {
        Status::Passed => "✅ passed",
        Status::Failed => "❌ failed",
        Status::Skipped => "⏭ skipped",
        Status::Error => "❌ error",
    }
}

fn evidence(o: &Outcome) -> String {
    let mut text = o.message.clone();
    if o.status == Status::Failed || o.status == Status::Error {
        let block = o.mismatch_block();
        if !block.is_empty() {
            text.push('\n');
            text.push_str(&block);
        }
        if let Some(expected) = &o.evidence.expected {
            text.push_str(&format!("; expected: {expected}"));
        }
        if let Some(found) = &o.evidence.found {
            text.push_str(&format!("; found: {found}"));
        }
        if let Some(hint) = &o.evidence.hint {
            text.push_str(&format!("; hint: {hint}"));
        }
    }
    text
}

/// Makes text safe inside a GFM table cell.
pub fn cell(text: &str) -> String {
    text.replace('|', "\\|")
        .replace("\r\n", "<br>")
        .replace('\n', "<br>")
}

/// A requirement's description and the checks that cover it, with their results.
type Coverage<'a> = (Option<&'a str>, Vec<(String, Status)>);

fn traceability(record: &RunRecord, out: &mut String) {
    let mut matrix: BTreeMap<&str, Coverage> = BTreeMap::new();
    for suite in &record.suites {
        for (id, text) in &suite.requirements {
            matrix.entry(id).or_default().0 = Some(text);
        }
        for o in &suite.outcomes {
            for requirement in &o.requirements {
                matrix
                    .entry(requirement)
                    .or_default()
                    .1
                    .push((format!("{}::{}", o.suite, o.check), o.status));
            }
        }
    }
    if matrix.is_empty() {
        return;
    }
    out.push_str("## Requirement traceability\n\n");
    out.push_str("| Requirement | Description | Checks | Verdict |\n|---|---|---|---|\n");
    for (id, (description, checks)) in &matrix {
        let listed = checks
            .iter()
            .map(|(name, status)| format!("`{name}` {}", icon(*status)))
            .collect::<Vec<_>>()
            .join(", ");
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            cell(id),
            cell(description.unwrap_or("")),
            cell(if listed.is_empty() { "none" } else { &listed }),
            requirement_verdict(checks)
        );
    }
    out.push('\n');
}

fn icon(status: Status) -> &'static str {
    match status {
        Status::Passed => "✅",
        Status::Failed | Status::Error => "❌",
        Status::Skipped => "⏭",
    }
}

fn requirement_verdict(checks: &[(String, Status)]) -> String {
    let count = |s: Status| checks.iter().filter(|(_, status)| *status == s).count();
    let (passed, skipped) = (count(Status::Passed), count(Status::Skipped));
    let failed = count(Status::Failed) + count(Status::Error);
    if checks.is_empty() {
        "⏭ no checks ran".into()
    } else if failed > 0 {
        format!("❌ not met ({failed} failing)")
    } else if skipped > 0 && passed == 0 {
        "⏭ not verified (all skipped)".into()
    } else if skipped > 0 {
        // A skipped check verified nothing: the requirement is not shown to hold.
        format!("⚠ not verified ({skipped} of {} skipped)", checks.len())
    } else {
        "✅ verified".into()
    }
}

fn environment(record: &RunRecord, out: &mut String) {
    let files: Vec<String> = record
        .suites
        .iter()
        .map(|s| format!("`{}`", s.path))
        .collect();
    out.push_str("## Environment\n\n| | |\n|---|---|\n");
    let mut rows = vec![
        ("attest".to_owned(), record.attest_version.to_owned()),
        ("run id".to_owned(), record.run_id.clone()),
        ("target".to_owned(), record.target.clone()),
        ("started".to_owned(), timestamp(record.started_at)),
        ("finished".to_owned(), timestamp(record.finished_at)),
    ];
    rows.extend(record.environment.facts.iter().cloned());
    rows.push(("suites".to_owned(), files.join(", ")));
    for (key, value) in rows {
        let _ = writeln!(out, "| {key} | {} |", cell(&value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_escape_pipes_and_newlines() {
        assert_eq!(cell("a|b\nc"), "a\\|b<br>c");
    }

    #[test]
    fn requirement_verdicts() {
        let p = ("a".to_owned(), Status::Passed);
        let f = ("b".to_owned(), Status::Failed);
        let s = ("c".to_owned(), Status::Skipped);
        assert_eq!(requirement_verdict(std::slice::from_ref(&p)), "✅ verified");
        assert!(requirement_verdict(&[p.clone(), f]).starts_with("❌"));
        assert_eq!(
            requirement_verdict(&[p, s.clone()]),
            "⚠ not verified (1 of 2 skipped)"
        );
        assert!(requirement_verdict(&[s]).contains("not verified"));
    }
}

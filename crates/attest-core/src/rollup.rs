//! The acceptance-criteria roll-up, computed once from the run record: per story, every
//! criterion and every FR/NFR with the checks covering it and one state. Every reporter shows
//! it, report.json carries it, and `attest evidence` reads it back from there.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::outcome::{Outcome, RunRecord, Status, SuiteRecord};

/// What the run showed about a criterion or a requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Every check covering it passed.
    Verified,
    /// A check covering it failed or errored.
    Failed,
    /// Some checks covering it were skipped or left out by the filter: the run did not show
    /// it.
    NotVerified,
    /// Declared `manual:` in the suite: a person checks it (checks covering it are supporting
    /// evidence).
    Manual,
    /// No check covers it.
    NotCovered,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Verified => "verified",
            State::Failed => "failed",
            State::NotVerified => "not verified",
            State::Manual => "manual",
            State::NotCovered => "not covered",
        }
    }

    pub fn icon(self) -> &'static str {
        match self {
            State::Verified => "✅",
            State::Failed => "❌",
            State::NotVerified | State::Manual | State::NotCovered => "⚠",
        }
    }
}

/// What became of one check covering a criterion or requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CheckState {
    Passed,
    Failed,
    Error,
    Skipped,
    /// Left out by the name filter.
    NotSelected,
}

impl CheckState {
    pub fn icon(self) -> &'static str {
        match self {
            CheckState::Passed => "✅",
            CheckState::Failed | CheckState::Error => "❌",
            CheckState::Skipped | CheckState::NotSelected => "⏭",
        }
    }
}

/// One check covering a criterion or requirement, with its key evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRef {
    pub suite: String,
    pub check: String,
    pub state: CheckState,
    /// What it found (passed), what went wrong (failed), or why it did not run.
    pub evidence: String,
    /// Why it was skipped, as report.json's `skip.cause` names it (`not-allowed`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip: Option<String>,
    /// The port-forward it measured through, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Its `from:` against where the run measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vantage: Option<crate::vantage::VantageNote>,
    /// What stood in for the real thing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub simulated: Option<String>,
}

impl CheckRef {
    /// How it was measured, for a report line: ` (…; …)`, or nothing. With `from:`, the
    /// vantage note names the port-forward; otherwise `via_note` says it.
    pub fn path_note(&self, via_note: impl Fn(&str) -> String) -> String {
        let mut notes = Vec::new();
        if let Some(via) = self.via.as_deref().filter(|_| self.vantage.is_none()) {
            notes.push(via_note(via));
        }
        notes.extend(crate::outcome::measurement_notes(
            self.vantage.as_ref(),
            self.simulated.as_deref(),
        ));
        match notes.is_empty() {
            true => String::new(),
            false => format!(" ({})", notes.join("; ")),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CriterionRow {
    /// `AC1`
    pub id: String,
    pub title: String,
    pub text: String,
    /// FR/NFR IDs the criterion names.
    pub requirements: Vec<String>,
    pub state: State,
    /// Why it is not verified, failed, manual or not covered.
    pub why: Option<String>,
    /// Why a person checks it (`manual:` in the suite), whatever its state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<String>,
    pub checks: Vec<CheckRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequirementRow {
    /// `FR32`
    pub id: String,
    pub description: String,
    pub state: State,
    pub why: Option<String>,
    /// Criteria of the story that name it (`this validates FR32`).
    pub criteria: Vec<String>,
    pub checks: Vec<CheckRef>,
}

/// One story (or, for a suite without one, the suite) and its roll-up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoryRollup {
    /// The story's id; `None` for a suite that names no story.
    pub story: Option<String>,
    pub title: String,
    /// The story document, as the suite names it.
    pub file: Option<String>,
    /// Suite ids (and their files) that cover it.
    pub suites: Vec<String>,
    pub suite_files: Vec<String>,
    pub criteria: Vec<CriterionRow>,
    pub requirements: Vec<RequirementRow>,
}

/// The roll-up of every story in the run, in the order their suites appear.
pub fn rollup(record: &RunRecord) -> Vec<StoryRollup> {
    let mut groups: Vec<(Option<String>, Vec<&SuiteRecord>)> = Vec::new();
    for suite in &record.suites {
        let key = suite.story.clone();
        match groups.iter_mut().find(|(k, members)| {
            key.is_some() && *k == key || k.is_none() && members[0].id == suite.id
        }) {
            Some((_, members)) => members.push(suite),
            None => groups.push((key, vec![suite])),
        }
    }
    groups
        .into_iter()
        .map(|(story, suites)| story_rollup(story, &suites))
        .collect()
}

fn story_rollup(story: Option<String>, suites: &[&SuiteRecord]) -> StoryRollup {
    // Criteria: the first suite that has text for them wins; ids from every suite.
    let mut criteria: Vec<&crate::load::Criterion> = Vec::new();
    for suite in suites {
        for criterion in &suite.criteria {
            match criteria.iter_mut().find(|c| c.id == criterion.id) {
                Some(known) if known.text.is_empty() && !criterion.text.is_empty() => {
                    *known = criterion
                }
                Some(_) => {}
                None => criteria.push(criterion),
            }
        }
    }
    let criterion_rows: Vec<CriterionRow> = criteria
        .iter()
        .map(|c| {
            let checks = covering(suites, &c.id);
            let (state, why) = combine(&checks, c.manual.as_deref());
            CriterionRow {
                id: c.id.clone(),
                title: c.title.clone(),
                text: c.text.clone(),
                requirements: c.requirements.clone(),
                state,
                why,
                manual: c.manual.clone(),
                checks,
            }
        })
        .collect();
    let mut descriptions: BTreeMap<String, String> = BTreeMap::new();
    for suite in suites {
        for (id, text) in &suite.requirements {
            descriptions
                .entry(id.clone())
                .or_insert_with(|| text.clone());
        }
        for id in suite.coverage.keys() {
            if !is_criterion(id) {
                descriptions.entry(id.clone()).or_default();
            }
        }
    }
    let requirement_rows = descriptions
        .into_iter()
        .map(|(id, description)| {
            let checks = covering(suites, &id);
            let naming: Vec<&CriterionRow> = criterion_rows
                .iter()
                .filter(|c| c.requirements.contains(&id))
                .collect();
            let (state, why) = requirement_state(&checks, &naming);
            RequirementRow {
                criteria: naming.iter().map(|c| c.id.clone()).collect(),
                id,
                description,
                state,
                why,
                checks,
            }
        })
        .collect();
    let first = suites[0];
    StoryRollup {
        story,
        title: first.title.clone(),
        file: suites.iter().find_map(|s| s.story_file.clone()),
        suites: suites.iter().map(|s| s.id.clone()).collect(),
        suite_files: suites.iter().map(|s| s.path.clone()).collect(),
        criteria: criterion_rows,
        requirements: requirement_rows,
    }
}

fn is_criterion(id: &str) -> bool {
    id.strip_prefix("AC")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// The checks of `suites` covering `id`, selected or not.
fn covering(suites: &[&SuiteRecord], id: &str) -> Vec<CheckRef> {
    let mut refs = Vec::new();
    for suite in suites {
        for check in suite.coverage.get(id).into_iter().flatten() {
            refs.push(match suite.outcomes.iter().find(|o| &o.check == check) {
                Some(outcome) => check_ref(outcome),
                None => CheckRef {
                    suite: suite.id.clone(),
                    check: check.clone(),
                    state: CheckState::NotSelected,
                    evidence: "not selected by the name filter".into(),
                    skip: None,
                    via: None,
                    vantage: None,
                    simulated: None,
                },
            });
        }
    }
    refs
}

fn check_ref(o: &Outcome) -> CheckRef {
    let state = match o.status {
        Status::Passed => CheckState::Passed,
        Status::Failed => CheckState::Failed,
        Status::Error => CheckState::Error,
        Status::Skipped => CheckState::Skipped,
    };
    let mut evidence = o.message.clone();
    if matches!(o.status, Status::Failed | Status::Error) {
        let block = o.mismatch_block();
        if !block.is_empty() {
            evidence.push_str("; ");
            evidence.push_str(&block.replace('\n', " "));
        }
        if let Some(expected) = &o.evidence.expected {
            evidence.push_str(&format!("; expected: {expected}"));
        }
        if let Some(found) = &o.evidence.found {
            evidence.push_str(&format!("; found: {found}"));
        }
    }
    // The cause's name (`not-allowed`, `unavailable`, ...); the message says it in words.
    let skip = o.skip.as_ref().and_then(|cause| {
        serde_json::to_value(cause)
            .ok()
            .and_then(|v| v["cause"].as_str().map(str::to_owned))
    });
    CheckRef {
        suite: o.suite.clone(),
        check: o.check.clone(),
        state,
        evidence: evidence.replace('\n', " "),
        skip,
        via: o.via.clone(),
        vantage: o.vantage.clone(),
        simulated: o.simulated.clone(),
    }
}

/// A criterion's state from its checks: any failure fails it; `manual` makes it manual;
/// no check leaves it not covered; a skipped or unselected check leaves it not verified.
pub fn combine(checks: &[CheckRef], manual: Option<&str>) -> (State, Option<String>) {
    if let Some(failed) = checks
        .iter()
        .find(|c| matches!(c.state, CheckState::Failed | CheckState::Error))
    {
        return (
            State::Failed,
            Some(format!("`{}` failed: {}", failed.check, failed.evidence)),
        );
    }
    if let Some(why) = manual {
        return (State::Manual, Some(why.to_owned()));
    }
    if checks.is_empty() {
        return (State::NotCovered, Some("no check covers it".into()));
    }
    let unverified: Vec<String> = checks
        .iter()
        .filter(|c| matches!(c.state, CheckState::Skipped | CheckState::NotSelected))
        .map(|c| format!("`{}` did not run: {}", c.check, c.evidence))
        .collect();
    if !unverified.is_empty() {
        return (State::NotVerified, Some(unverified.join("; ")));
    }
    (State::Verified, None)
}

/// A requirement holds when every check covering it passed and every criterion naming it
/// holds; with no check covering it, nothing measured it.
fn requirement_state(checks: &[CheckRef], naming: &[&CriterionRow]) -> (State, Option<String>) {
    let (state, why) = combine(checks, None);
    if state == State::Failed {
        return (state, why);
    }
    if checks.is_empty() {
        let named = naming
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let why = match named.is_empty() {
            true => "no check measures it".to_owned(),
            false => format!("no check measures it ({named} names it)"),
        };
        return (State::NotCovered, Some(why));
    }
    if let Some(failed) = naming.iter().find(|c| c.state == State::Failed) {
        return (State::Failed, Some(format!("{} failed", failed.id)));
    }
    if state == State::NotVerified {
        return (state, why);
    }
    let open: Vec<String> = naming
        .iter()
        .filter(|c| c.state != State::Verified)
        .map(|c| format!("{} is {}", c.id, c.state.as_str()))
        .collect();
    if !open.is_empty() {
        return (State::NotVerified, Some(open.join("; ")));
    }
    (State::Verified, None)
}

/// Whether `other` is the better evidence for a criterion than `current`: it was measured
/// where the check's `from:` asks and `current` was not, or it ran and `current` did not.
fn better(other: &CheckRef, current: &CheckRef) -> bool {
    let holds = |c: &CheckRef| c.vantage.as_ref().is_some_and(|v| v.holds);
    let ran = |c: &CheckRef| !matches!(c.state, CheckState::Skipped | CheckState::NotSelected);
    ran(other) && (!ran(current) || holds(other) && !holds(current))
}

/// Takes `other`'s results into `checks`: each check of `other` replaces the same check's
/// result where it is better evidence ([`better`]), or is added when `checks` lacks it.
/// Adds the checks it took to `taken`.
fn take_better(
    checks: &mut Vec<CheckRef>,
    other: &[CheckRef],
    taken: &mut BTreeSet<(String, String)>,
) {
    for o in other {
        match checks
            .iter_mut()
            .find(|c| c.suite == o.suite && c.check == o.check)
        {
            Some(current) if better(o, current) => *current = o.clone(),
            Some(_) => continue,
            None => checks.push(o.clone()),
        }
        taken.insert((o.suite.clone(), o.check.clone()));
    }
}

/// One story's roll-up from two runs of it: `primary`'s, with the results of `other` (the
/// same suites run from another place: `attest sandbox`'s in-cluster run, a Job in `apps`)
/// where they are the better evidence, each criterion and requirement judged again. Returns
/// the merged roll-up and how many results came from `other`.
pub fn merge(primary: &StoryRollup, other: &StoryRollup) -> (StoryRollup, usize) {
    let mut merged = primary.clone();
    let mut taken = BTreeSet::new();
    for criterion in &mut merged.criteria {
        if let Some(theirs) = other.criteria.iter().find(|c| c.id == criterion.id) {
            take_better(&mut criterion.checks, &theirs.checks, &mut taken);
        }
        (criterion.state, criterion.why) = combine(&criterion.checks, criterion.manual.as_deref());
    }
    for index in 0..merged.requirements.len() {
        let id = merged.requirements[index].id.clone();
        if let Some(theirs) = other.requirements.iter().find(|r| r.id == id) {
            take_better(
                &mut merged.requirements[index].checks,
                &theirs.checks,
                &mut taken,
            );
        }
        let requirement = &merged.requirements[index];
        let naming: Vec<&CriterionRow> = merged
            .criteria
            .iter()
            .filter(|c| requirement.criteria.contains(&c.id))
            .collect();
        let (state, why) = requirement_state(&requirement.checks, &naming);
        merged.requirements[index].state = state;
        merged.requirements[index].why = why;
    }
    (merged, taken.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_ref(state: CheckState) -> CheckRef {
        check(state)
    }

    fn check(state: CheckState) -> CheckRef {
        CheckRef {
            suite: "s".into(),
            check: format!("{state:?}").to_lowercase(),
            state,
            evidence: "why".into(),
            skip: None,
            via: None,
            vantage: None,
            simulated: None,
        }
    }

    #[test]
    fn each_criterion_state() {
        use CheckState::*;
        let pass = check(Passed);
        assert_eq!(
            combine(&[pass.clone(), pass.clone()], None).0,
            State::Verified
        );
        let (state, why) = combine(&[pass.clone(), check(Failed)], None);
        assert_eq!(state, State::Failed);
        assert!(why.unwrap().starts_with("`failed` failed"));
        assert_eq!(
            combine(&[pass.clone(), check(Error)], Some("x")).0,
            State::Failed
        );
        let (state, why) = combine(&[pass.clone(), check(Skipped)], None);
        assert_eq!(state, State::NotVerified);
        assert_eq!(why.unwrap(), "`skipped` did not run: why");
        assert_eq!(combine(&[check(NotSelected)], None).0, State::NotVerified);
        assert_eq!(combine(&[pass], Some("a person")).0, State::Manual);
        assert_eq!(combine(&[], Some("a person")).0, State::Manual);
        assert_eq!(combine(&[], None).0, State::NotCovered);
    }

    #[test]
    fn a_requirement_needs_its_checks_and_the_criteria_naming_it() {
        let row = |state: State| CriterionRow {
            id: "AC3".into(),
            title: String::new(),
            text: String::new(),
            requirements: vec!["FR32".into()],
            state,
            why: None,
            manual: None,
            checks: Vec::new(),
        };
        let pass = [check(CheckState::Passed)];
        let verified = row(State::Verified);
        let manual = row(State::Manual);
        assert_eq!(requirement_state(&pass, &[&verified]).0, State::Verified);
        let (state, why) = requirement_state(&pass, &[&manual]);
        assert_eq!(state, State::NotVerified);
        assert_eq!(why.unwrap(), "AC3 is manual");
        let (state, why) = requirement_state(&[], &[&verified]);
        assert_eq!(state, State::NotCovered);
        assert_eq!(why.unwrap(), "no check measures it (AC3 names it)");
        assert_eq!(
            requirement_state(&[check(CheckState::Failed)], &[&verified]).0,
            State::Failed
        );
    }

    #[test]
    fn a_second_run_from_where_the_criterion_asks_is_the_better_evidence() {
        use crate::vantage::VantageNote;
        let at = |check: &str, state: CheckState, holds: Option<bool>| CheckRef {
            check: check.into(),
            vantage: holds.map(|holds| VantageNote {
                namespace: "apps".into(),
                measured_from: if holds {
                    "from pod p in namespace `apps`"
                } else {
                    "from outside the cluster"
                }
                .into(),
                holds,
            }),
            ..check_ref(state)
        };
        let story = |checks: Vec<CheckRef>| StoryRollup {
            story: Some("5.5".into()),
            title: String::new(),
            file: None,
            suites: vec!["s".into()],
            suite_files: Vec::new(),
            criteria: vec![CriterionRow {
                id: "AC2".into(),
                title: String::new(),
                text: String::new(),
                requirements: vec!["FR35".into()],
                state: combine(&checks, None).0,
                why: None,
                manual: None,
                checks: checks.clone(),
            }],
            requirements: vec![RequirementRow {
                id: "FR35".into(),
                description: String::new(),
                state: State::NotVerified,
                why: None,
                criteria: vec!["AC2".into()],
                checks,
            }],
        };
        // From outside: the DNS check passed from the wrong place, the secret login did not
        // run. From `apps`: both measured there.
        let outside = story(vec![
            at("dns", CheckState::Passed, Some(false)),
            at("auth", CheckState::NotSelected, None),
            at("crud", CheckState::Passed, None),
        ]);
        let inside = story(vec![
            at("dns", CheckState::Passed, Some(true)),
            at("auth", CheckState::Passed, None),
            at("crud", CheckState::NotSelected, None),
        ]);
        assert_eq!(outside.criteria[0].state, State::NotVerified);
        let (merged, taken) = merge(&outside, &inside);
        assert_eq!(taken, 2, "dns and auth");
        let checks = &merged.criteria[0].checks;
        assert!(checks[0].vantage.as_ref().unwrap().holds);
        assert_eq!(checks[1].state, CheckState::Passed);
        // Not replaced by a check that did not run.
        assert_eq!(checks[2].state, CheckState::Passed);
        assert_eq!(merged.criteria[0].state, State::Verified);
        assert_eq!(merged.requirements[0].state, State::Verified);
        // A failure from the second run counts.
        let failing = story(vec![at("dns", CheckState::Failed, Some(true))]);
        let (merged, _) = merge(&outside, &failing);
        assert_eq!(merged.criteria[0].state, State::Failed);
    }
}

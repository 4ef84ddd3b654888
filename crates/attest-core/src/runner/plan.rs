//! The plan: of the loaded suites, which checks run, which are ignored and which the name
//! filters leave out, and the permissions the running ones need on each cluster. It is
//! decided before anything runs; the loader asks the same [`Selection`] before it reads a
//! suite's Secrets, so a suite whose checks are all filtered out reads none.

use libtest_mimic::{Arguments, Trial};

use crate::k8s::Permission;
use crate::load::{SelectsChecks, Suite, SuiteCheck};
use crate::redact::Redactor;
use crate::safety::Safety;

/// A run's name filters, libtest's (`FILTER`, `--exact`, `--skip`, `--ignored`,
/// `--include-ignored`), matched against `[kind] suite::check` as `--list` shows it.
#[derive(Clone)]
pub struct Selection {
    args: Arguments,
}

/// What the plan says about one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// A name filter leaves it out: it is counted, never reported.
    NotSelected,
    /// Marked `ignore:` and not asked for with `--ignored`/`--include-ignored`: reported
    /// skipped, with the reason.
    Ignored,
    Run,
}

impl Selection {
    pub fn new(args: Arguments) -> Selection {
        Selection { args }
    }

    pub fn args(&self) -> &Arguments {
        &self.args
    }

    /// What the filters say of the check named `name` (`suite::check`).
    pub fn decide(&self, name: &str, kind: &str, ignored: bool) -> Decision {
        let probe = probe(name.to_owned(), kind, ignored);
        if self.args.is_filtered_out(&probe) {
            Decision::NotSelected
        } else if self.args.is_ignored(&probe) {
            Decision::Ignored
        } else {
            Decision::Run
        }
    }
}

impl SelectsChecks for Selection {
    fn selects(&self, suite_id: &str, check_id: &str, kind: &str, ignored: bool) -> bool {
        self.decide(&format!("{suite_id}::{check_id}"), kind, ignored) != Decision::NotSelected
    }
}

/// A trial that only carries a check's name, kind and ignore flag, for libtest's filters and
/// `--list`.
pub(crate) fn probe(name: String, kind: &str, ignored: bool) -> Trial {
    Trial::test(name, || Ok(()))
        .with_kind(kind)
        .with_ignored_flag(ignored)
}

/// The trial name of a check, as `--list`, filters and `--exact` see it.
pub fn trial_name(suite: &Suite, check: &SuiteCheck) -> String {
    format!("{}::{}", suite.id, check.decl.id)
}

/// One check in the plan.
#[derive(Debug, Clone)]
pub struct Planned {
    pub decision: Decision,
    /// The name reports and the console show (redacted).
    pub name: String,
    /// What the RBAC preflight asks for it: empty unless it runs, its safety class is
    /// allowed, its variables have values and its cluster is available.
    pub permissions: Vec<Permission>,
}

/// Every check of every suite, in order: `suites[i][j]` is check `j` of suite `i`.
pub struct Plan {
    pub suites: Vec<Vec<Planned>>,
}

impl Plan {
    /// Decides each check of `suites`. `cluster_available(suite)` says whether the suite's
    /// cluster may be used in this run at all.
    pub fn new(
        suites: &[Suite],
        selection: &Selection,
        allow: Safety,
        cluster_available: impl Fn(&Suite) -> bool,
        redactor: &Redactor,
    ) -> Plan {
        let suites = suites
            .iter()
            .map(|suite| {
                let available = cluster_available(suite);
                suite
                    .checks
                    .iter()
                    .map(|check| {
                        let name = redactor.redact(&trial_name(suite, check));
                        let decision =
                            selection.decide(&name, check.decl.kind, check.decl.ignore.is_some());
                        let runs = decision == Decision::Run
                            && check.safety <= allow
                            && check.unavailable.is_none()
                            && available;
                        Planned {
                            decision,
                            name,
                            permissions: match runs {
                                true => check.decl.check.permissions(),
                                false => Vec::new(),
                            },
                        }
                    })
                    .collect()
            })
            .collect();
        Plan { suites }
    }

    fn count(&self, which: impl Fn(&Planned) -> bool) -> usize {
        self.suites.iter().flatten().filter(|p| which(p)).count()
    }

    /// Checks the name filters leave out.
    pub fn not_selected(&self) -> usize {
        self.count(|p| p.decision == Decision::NotSelected)
    }

    /// Checks that are reported: run, or skipped as ignored.
    pub fn selected(&self) -> usize {
        self.count(|p| p.decision != Decision::NotSelected)
    }

    /// Whether suite `index` has any check to report.
    pub fn selects_in(&self, index: usize) -> bool {
        self.suites[index]
            .iter()
            .any(|p| p.decision != Decision::NotSelected)
    }

    /// Every check as `--list` and the console see it.
    pub fn trials(&self, suites: &[Suite]) -> Vec<Trial> {
        suites
            .iter()
            .zip(&self.suites)
            .flat_map(|(suite, planned)| {
                suite.checks.iter().zip(planned).map(|(check, p)| {
                    probe(p.name.clone(), check.decl.kind, check.decl.ignore.is_some())
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selection(args: &[&str]) -> Selection {
        let args = std::iter::once("attest").chain(args.iter().copied());
        Selection::new(Arguments::from_iter(args))
    }

    #[test]
    fn filters_match_kind_and_name_and_ignored_checks_are_skipped_not_left_out() {
        let all = selection(&[]);
        assert_eq!(all.decide("s::c", "sql", false), Decision::Run);
        assert_eq!(all.decide("s::c", "sql", true), Decision::Ignored);
        let by_kind = selection(&["[sql]"]);
        assert_eq!(by_kind.decide("s::c", "sql", false), Decision::Run);
        assert_eq!(by_kind.decide("s::c", "dns", false), Decision::NotSelected);
        let exact = selection(&["--exact", "s::c"]);
        assert_eq!(exact.decide("s::c", "sql", false), Decision::Run);
        assert_eq!(exact.decide("s::cd", "sql", false), Decision::NotSelected);
        let included = selection(&["--include-ignored"]);
        assert_eq!(included.decide("s::c", "sql", true), Decision::Run);
        assert!(!selection(&["--skip", "s::"]).selects("s", "c", "sql", false));
    }
}

//! Suite files → validated model: finds files, parses each once into a YAML tree with
//! positions, resolves variables, reads the typed model from the tree (interpolating value by
//! value), checks references, and reports every problem of every file, each at its line and
//! column, before anything runs.
//!
//! Structure is read as written: keys and allowed values are never interpolated, so an error
//! always shows the key the user typed. Values from variables are read and validated after
//! interpolation, and their errors name the variable.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use crate::checks;
use crate::interpolate;
use crate::node_de::{self, from_node, DeError, Scope, VarState, VarValue};
use crate::redact::Redactor;
use crate::safety::Safety;
use crate::suite::{self, CheckDecl, VariableDecl};
use crate::yaml::{self, Node, Pos, Style, Value};

mod criteria;
mod cross_checks;
mod discover;
mod file;
mod overrides;
mod references;
mod variables;

pub use self::discover::discover;
use self::{criteria::*, cross_checks::*, file::*, overrides::*, references::*, variables::*};

/// A suite ready to plan: checks in order, with their place in the file.
#[derive(Debug)]
pub struct Suite {
    pub id: String,
    pub title: String,
    pub story: Option<String>,
    /// The story document, as the suite names it (relative to the suite's folder).
    pub story_file: Option<String>,
    /// The acceptance criteria: from the story document, then the suite's `criteria:`, else
    /// the `ACn` its checks cover.
    pub criteria: Vec<Criterion>,
    pub description: Option<String>,
    /// The suite's requirements, and those its criteria name (with the story's description).
    pub requirements: BTreeMap<String, String>,
    pub path: PathBuf,
    /// What the user should know but that does not stop a run: criteria no check covers.
    pub warnings: Vec<LoadWarning>,
    /// The kubeconfig context the suite names (`kubernetes: {context: …}`).
    pub kube_context: Option<String>,
    /// Each declared variable and where its value comes from in this load: what carrying the
    /// run elsewhere (`attest job`) must hand over, and the Secrets it reads (`attest rbac`).
    pub variables: Vec<SuiteVariable>,
    pub checks: Vec<SuiteCheck>,
}

pub use crate::outcome::Criterion;

/// A declared variable, and where this load takes its value from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuiteVariable {
    pub name: String,
    pub secret: bool,
    pub source: VariableSource,
}

/// Where a variable's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableSource {
    /// From outside the suite file: `--set`, a vars file, a provided value, the environment,
    /// a file. Another machine would not have it.
    Given(String),
    /// A Kubernetes Secret the run reads (its fields expanded); the suite's default applies
    /// when it does not exist.
    KubernetesSecret(crate::external::SecretRef),
    /// The suite's own default (or nothing): any machine loading the suite gets the same.
    Suite,
}

#[derive(Debug)]
pub struct SuiteCheck {
    pub decl: CheckDecl,
    /// `path:line:column` of the check in its suite file.
    pub location: String,
    /// The declared safety class, raised to the kind's least class.
    pub safety: Safety,
    pub requirements: Vec<String>,
    pub acceptance: Vec<String>,
    /// Variables this check sets for later checks: (variable name, export key, secret).
    pub exports: Vec<(String, &'static str, bool)>,
    /// A variable the check uses that has no value in this run, and why: the check does not
    /// run.
    pub unavailable: Option<(String, Arc<Unavailable>)>,
    /// The port-forward the check reaches its target through (`data/service
    /// postgres-postgresql`), if any: its timings include the API server hop.
    pub via: Option<String>,
}

/// Where variable values come from besides the suite's own defaults.
#[derive(Debug, Default, Clone)]
pub struct VarSources {
    /// `--set name=value`, highest precedence.
    pub set: Vec<(String, String)>,
    /// `--vars FILE` contents, in the order given (later files win).
    pub files: Vec<PathBuf>,
    /// Values a tool provides for whichever suites use them (the sandbox's addresses), below
    /// `--set` and above `--vars`; unlike those, names no suite uses are not an error.
    pub provided: Vec<(String, String)>,
    /// Where `kubernetes_secret:` variables are read (none: they have no value).
    pub external: Option<External>,
    /// Which checks the run selects (its name filters), decided from each suite's ids before
    /// its variables are resolved: a suite none of whose checks is selected has no Secret
    /// read. `None`: every check is selected.
    pub selection: Option<Selects>,
}

/// Whether a run selects a check, by suite id, check id, kind and whether it is marked `ignore`
/// (the plan's selection, seen from the loader).
pub trait SelectsChecks: Send + Sync {
    fn selects(&self, suite_id: &str, check_id: &str, kind: &str, ignored: bool) -> bool;
}

/// A [`SelectsChecks`], in [`VarSources`].
#[derive(Clone)]
pub struct Selects(pub Arc<dyn SelectsChecks>);

impl fmt::Debug for Selects {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("Selects(..)")
    }
}

pub use crate::external::{External, ExternalValues, Lookup, Unavailable};

/// What every suite of one load shares.
struct Given<'a> {
    overrides: &'a HashMap<String, Override>,
    external: Option<&'a dyn ExternalValues>,
    selection: Option<&'a dyn SelectsChecks>,
    redactor: &'a Redactor,
    purpose: Purpose,
}

/// What loading is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Running: every variable a check uses needs a value.
    Run,
    /// Listing or linting (`--list`, `attest check`): nothing runs, so variables may be
    /// unset; everything else is checked as for a run.
    Inspect,
}

/// Whether any check of a suite (its parsed file) is selected: only then are its Secrets read.
fn selects_any(selection: Option<&dyn SelectsChecks>, root: &Node, checks: &[Rc<Node>]) -> bool {
    let Some(selection) = selection else {
        return true;
    };
    let suite_id = root
        .get("id")
        .and_then(|id| id.scalar())
        .map_or("", |(id, _)| id);
    checks.iter().any(|check| {
        let check_id = check
            .get("id")
            .and_then(|id| id.scalar())
            .map_or("", |(id, _)| id);
        let kind = check
            .entries()
            .unwrap_or_default()
            .iter()
            .find_map(|e| checks::kind_name(&e.key))
            .unwrap_or("");
        selection.selects(suite_id, check_id, kind, check.get("ignore").is_some())
    })
}

/// Most problems shown per file; the rest are counted.
pub const MAX_PROBLEMS_PER_FILE: usize = 25;

/// A problem with the input: names the file and, where known, line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub path: PathBuf,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
}

impl LoadError {
    pub fn at(path: &Path, line: u64, column: u64, message: impl Into<String>) -> Self {
        LoadError {
            path: path.to_owned(),
            line: Some(line).filter(|l| *l > 0),
            column: Some(column).filter(|c| *c > 0),
            message: message.into(),
        }
    }
    pub fn file(path: &Path, message: impl Into<String>) -> Self {
        LoadError {
            path: path.to_owned(),
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// Something in the input the user should know of that does not stop a run: a name in a
/// `--vars` file that no loaded suite uses but one uses a name close to (a likely typo). Same
/// shape as a [`LoadError`]: the file, where in it, and what.
pub type LoadWarning = LoadError;

/// What loading found: the suites, or every problem that stops the run; and, either way, the
/// warnings to show (on stderr; they never change the exit code).
#[derive(Debug)]
pub struct Loaded {
    pub suites: Result<Vec<Suite>, Vec<LoadError>>,
    pub warnings: Vec<LoadWarning>,
}

/// Loads every suite for a run; collects all errors of all files rather than stopping at the
/// first. Drops the warnings: [`load_suites`] returns them.
pub fn load_all(
    files: &[PathBuf],
    sources: &VarSources,
    redactor: &Redactor,
) -> Result<Vec<Suite>, Vec<LoadError>> {
    load_suites(files, sources, redactor, Purpose::Run).suites
}

/// Loads every suite. With [`Purpose::Inspect`] variables need no values. Drops the
/// warnings: [`load_suites`] returns them.
pub fn load_all_for(
    files: &[PathBuf],
    sources: &VarSources,
    redactor: &Redactor,
    purpose: Purpose,
) -> Result<Vec<Suite>, Vec<LoadError>> {
    load_suites(files, sources, redactor, purpose).suites
}

/// Loads every suite, collecting every problem of every file, and the warnings. With
/// [`Purpose::Inspect`] variables need no values.
pub fn load_suites(
    files: &[PathBuf],
    sources: &VarSources,
    redactor: &Redactor,
    purpose: Purpose,
) -> Loaded {
    let mut errors = Vec::new();
    let (overrides, given_names) = load_overrides(sources, &mut errors);
    let given = Given {
        overrides: &overrides,
        external: sources.external.as_ref().map(|e| &*e.0),
        selection: sources.selection.as_ref().map(|s| &*s.0),
        redactor,
        purpose,
    };
    let mut suites: Vec<Suite> = Vec::new();
    let mut known_names: HashSet<String> = HashSet::new();
    // Files are independent: read them on every core, keep their order.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(files.len() / 8)
        .max(1);
    let loaded: Vec<_> = if threads == 1 {
        files.iter().map(|p| load_suite(p, &given)).collect()
    } else {
        let given = &given;
        std::thread::scope(|scope| {
            let handles: Vec<_> = files
                .chunks(files.len().div_ceil(threads))
                .map(|chunk| {
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|p| load_suite(p, given))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        })
    };
    let mut warnings: Vec<LoadWarning> = Vec::new();
    for (path, (result, names)) in files.iter().zip(loaded) {
        known_names.extend(names);
        match result {
            Ok(suite) => {
                warnings.extend(suite.warnings.iter().cloned());
                if let Some(other) = suites.iter().find(|s| s.id == suite.id) {
                    errors.push(LoadError::file(
                        path,
                        format!(
                            "suite id `{}` is already used by `{}`; suite ids must be unique",
                            suite.id,
                            other.path.display()
                        ),
                    ));
                } else {
                    suites.push(suite);
                }
            }
            Err(mut problems) => {
                problems.sort_by_key(|e| (e.line, e.column));
                problems.dedup();
                if problems.len() > MAX_PROBLEMS_PER_FILE {
                    let more = problems.len() - MAX_PROBLEMS_PER_FILE;
                    problems.truncate(MAX_PROBLEMS_PER_FILE);
                    problems.push(LoadError::file(
                        path,
                        format!("{more} more problem(s) in this file not shown; fix these first"),
                    ));
                }
                errors.append(&mut problems);
            }
        }
    }
    let unknown = unknown_given_names(&given_names, &known_names, &overrides);
    errors.extend(unknown.errors);
    Loaded {
        suites: if errors.is_empty() {
            Ok(suites)
        } else {
            Err(errors)
        },
        warnings: warnings.into_iter().chain(unknown.warnings).collect(),
    }
}

/// Reads one suite; returns it or its problems, and the variable names it declares or uses.
fn load_suite(path: &Path, given: &Given) -> (Result<Suite, Vec<LoadError>>, HashSet<String>) {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => {
            return (
                Err(vec![LoadError::file(
                    path,
                    format!("cannot read suite: {e}"),
                )]),
                HashSet::new(),
            )
        }
    };
    load_suite_bytes(path, &bytes, given)
}

/// Loads one suite from its bytes, as if read from `path` (for fuzzing and tools); variables
/// come from `sources` and the environment.
pub fn load_bytes(
    path: &Path,
    bytes: &[u8],
    sources: &VarSources,
    purpose: Purpose,
) -> Result<Suite, Vec<LoadError>> {
    let mut errors = Vec::new();
    let (overrides, _) = load_overrides(sources, &mut errors);
    let redactor = Redactor::default();
    let given = Given {
        overrides: &overrides,
        external: sources.external.as_ref().map(|e| &*e.0),
        selection: sources.selection.as_ref().map(|s| &*s.0),
        redactor: &redactor,
        purpose,
    };
    let (result, _) = load_suite_bytes(path, bytes, &given);
    match (result, errors.is_empty()) {
        (Ok(suite), true) => Ok(suite),
        (Ok(_), false) => Err(errors),
        (Err(mut problems), _) => {
            problems.append(&mut errors);
            Err(problems)
        }
    }
}

#[cfg(test)]
mod tests;

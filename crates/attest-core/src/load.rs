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

/// Finds suite files: files as given, folders searched recursively for `*.yaml` / `*.yml`.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = found.len();
            collect_yaml(path, &mut found)
                .map_err(|e| LoadError::file(path, format!("cannot read folder: {e}")))?;
            found[before..].sort();
        } else if path.is_file() {
            found.push(path.clone());
        } else {
            return Err(LoadError::file(
                path,
                "no such file or folder (give suite files or folders of them; default `suites/`)",
            ));
        }
    }
    Ok(found)
}

fn collect_yaml(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_yaml(&path, found)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            found.push(path);
        }
    }
    Ok(())
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

/// A value given from outside the suites, with where it came from.
struct Override {
    value: String,
    origin: String,
}

/// A name given with `--set` or in a `--vars` file, for the unknown-name check.
struct GivenName {
    name: String,
    /// `None` for `--set`, else the vars file and the name's position in it.
    file: Option<(PathBuf, Pos)>,
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

/// Given names that no loaded suite declares or uses.
struct UnknownNames {
    /// `--set` names: an instruction that cannot be followed.
    errors: Vec<LoadError>,
    /// Likely typos in `--vars` files.
    warnings: Vec<LoadWarning>,
}

/// `--set` names that no loaded suite declares or uses are errors. A vars file describes an
/// environment (the sandbox's names every service), so its unused names are fine, except
/// that one a typo away from a variable it does not set is worth a warning.
fn unknown_given_names(
    given: &[GivenName],
    known: &HashSet<String>,
    overrides: &HashMap<String, Override>,
) -> UnknownNames {
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let mut candidates: Vec<&str> = known.iter().map(String::as_str).collect();
    candidates.sort_unstable();
    for item in given {
        if known.contains(&item.name) {
            continue;
        }
        let suggestion = node_de::did_you_mean(&item.name, candidates.iter().copied());
        match &item.file {
            None => {
                let hint = suggestion
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_else(|| {
                        " (`attest check` lists nothing; see each suite's `variables:`)".into()
                    });
                errors.push(LoadError::file(
                    Path::new("--set"),
                    format!(
                        "no loaded suite declares or uses a variable `{}`{hint}",
                        item.name
                    ),
                ));
            }
            Some((path, pos)) => {
                if let Some(s) = suggestion.filter(|s| !overrides.contains_key(*s)) {
                    warnings.push(LoadWarning::at(
                        path,
                        pos.line,
                        pos.column,
                        format!(
                            "no loaded suite declares or uses a variable `{}` (did you mean `{s}`?); ignored",
                            item.name
                        ),
                    ));
                }
            }
        }
    }
    UnknownNames { errors, warnings }
}

/// `--vars` files, then provided values, then `--set`, later ones winning.
fn load_overrides(
    sources: &VarSources,
    errors: &mut Vec<LoadError>,
) -> (HashMap<String, Override>, Vec<GivenName>) {
    let mut values = HashMap::new();
    let mut given = Vec::new();
    for path in &sources.files {
        let text = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) => {
                errors.push(LoadError::file(path, format!("cannot read vars file: {e}")));
                continue;
            }
        };
        let root = match yaml::decode(&text).and_then(|t| yaml::parse(&t, yaml::Limits::default()))
        {
            Ok(Some(root)) => root,
            Ok(None) => continue,
            Err(e) => {
                errors.push(LoadError::at(path, e.pos.line, e.pos.column, e.message));
                continue;
            }
        };
        let Some(entries) = root.entries() else {
            errors.push(LoadError::at(
                path,
                root.pos.line,
                root.pos.column,
                format!(
                    "expected a vars file of `name: value` lines, found {}",
                    root.describe()
                ),
            ));
            continue;
        };
        for entry in entries {
            match entry.value.scalar() {
                Some((text, style)) if !(style == Style::Plain && yaml::is_null_text(text)) => {
                    values.insert(
                        entry.key.clone(),
                        Override {
                            value: text.to_owned(),
                            origin: format!("set in `{}`", path.display()),
                        },
                    );
                    given.push(GivenName {
                        name: entry.key.clone(),
                        file: Some((path.clone(), entry.key_pos)),
                    });
                }
                Some(_) => {}
                None => errors.push(LoadError::at(
                    path,
                    entry.value.pos.line,
                    entry.value.pos.column,
                    format!(
                        "`{}`: expected a plain value (a vars file maps names to values), found {}",
                        entry.key,
                        entry.value.describe()
                    ),
                )),
            }
        }
    }
    for (name, value) in &sources.provided {
        values.insert(
            name.clone(),
            Override {
                value: value.clone(),
                origin: "set by the sandbox".into(),
            },
        );
    }
    for (name, value) in &sources.set {
        values.insert(
            name.clone(),
            Override {
                value: value.clone(),
                origin: "set by `--set`".into(),
            },
        );
        given.push(GivenName {
            name: name.clone(),
            file: None,
        });
    }
    (values, given)
}

/// A declared variable, as read from the tree.
struct Declared {
    name: String,
    spec: crate::suite::VariableSpec,
    pos: Pos,
    /// The node of the default value, for positions of its references.
    default_node: Option<Rc<Node>>,
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

fn load_suite_bytes(
    path: &Path,
    bytes: &[u8],
    given: &Given,
) -> (Result<Suite, Vec<LoadError>>, HashSet<String>) {
    let redactor = given.redactor;
    let mut names = HashSet::new();
    let fail = |pos: Pos, message: String| LoadError::at(path, pos.line, pos.column, message);
    let text = match yaml::decode(bytes) {
        Ok(text) => text,
        Err(e) => return (Err(vec![fail(e.pos, e.message)]), names),
    };
    let root = match yaml::parse(&text, yaml::Limits::default()) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return (
                Err(vec![fail(
                    Pos { line: 1, column: 1 },
                    "expected a suite (a map with `id`, `title` and `checks`), found an empty file"
                        .into(),
                )]),
                names,
            )
        }
        Err(e) => return (Err(vec![fail(e.pos, e.message)]), names),
    };
    let mut problems: Vec<DeError> = Vec::new();
    let at = |pos: Pos, message: String| {
        let mut e = DeError::new(message);
        e.pos = Some(pos);
        e
    };
    let Some(entries) = root.entries() else {
        return (
            Err(vec![fail(
                root.pos,
                format!(
                    "expected a suite (a map with `id`, `title` and `checks`), found {}",
                    root.describe()
                ),
            )]),
            names,
        );
    };
    for entry in entries {
        if !suite::SUITE_FIELDS.contains(&entry.key.as_str()) {
            let mut e = node_de::unknown_key(&entry.key, suite::SUITE_FIELDS);
            e.pos = Some(entry.key_pos);
            problems.push(e);
        }
    }
    for required in ["id", "title", "checks"] {
        if root.get(required).is_none() {
            problems.push(at(
                root.pos,
                format!("missing key `{required}` in this suite (a suite needs `id`, `title` and `checks`)"),
            ));
        }
    }

    // Declarations, read as written: defaults are interpolated when variables are resolved.
    let no_vars = HashMap::new();
    let raw = Scope {
        vars: &no_vars,
        raw: true,
    };
    let mut declared: Vec<Declared> = Vec::new();
    if let Some(node) = root.get("variables") {
        match node.entries() {
            Some(vars) => {
                for entry in vars {
                    if !suite::is_identifier(&entry.key) {
                        problems.push(at(
                            entry.key_pos,
                            format!(
                                "expected a variable name of letters, digits and `_` (not starting with a digit), found `{}`",
                                entry.key
                            ),
                        ));
                        continue;
                    }
                    match from_node::<VariableDecl>(&entry.value, &raw, Some(&entry.key)) {
                        Ok(decl) => {
                            let default_node = match &decl {
                                VariableDecl::Default(_) => Some(entry.value.clone()),
                                VariableDecl::Full(_) => entry.value.get("default").cloned(),
                                VariableDecl::Unset => None,
                            };
                            declared.push(Declared {
                                name: entry.key.clone(),
                                spec: decl.spec(),
                                pos: entry.key_pos,
                                default_node,
                            });
                        }
                        Err(e) => problems.push(e),
                    }
                }
            }
            None if node.is_null() => {}
            None => problems.push(at(
                node.pos,
                format!(
                    "`variables`: expected a map of variable names to defaults or declarations, found {}",
                    node.describe()
                ),
            )),
        }
    }

    // Names later checks register, known only at run time.
    let mut registered: Vec<(String, Pos)> = Vec::new();
    let check_nodes: &[Rc<Node>] = root
        .get("checks")
        .and_then(|c| c.items())
        .unwrap_or_default();
    for check in check_nodes {
        let Some(register) = check.get("register").and_then(|r| r.scalar()) else {
            continue;
        };
        let kind = check
            .entries()
            .unwrap_or_default()
            .iter()
            .find_map(|e| checks::kind_name(&e.key));
        if let Some(kind) = kind {
            for (key, _) in checks::kind_exports(kind) {
                registered.push((format!("{}_{key}", register.0), check.pos));
            }
        }
    }

    let (vars, variables) = resolve_variables(
        &declared,
        &registered,
        given,
        root.get("kubernetes").map(|n| &**n),
        selects_any(given.selection, &root, check_nodes),
        &mut problems,
    );
    names.extend(declared.iter().map(|d| d.name.clone()));

    // Every reference in every value (comments are not values), each at its column.
    let index = LineIndex::new(&text);
    let mut seen: HashSet<*const Node> = HashSet::new();
    for entry in entries.iter().filter(|e| e.key != "variables") {
        scan_references(
            &entry.value,
            &text,
            &index,
            &vars,
            &declared,
            &mut seen,
            &mut names,
            &mut problems,
        );
    }

    let scope = Scope {
        vars: &vars,
        raw: false,
    };
    let read = |key: &str, problems: &mut Vec<DeError>| -> Option<String> {
        let node = root.get(key)?;
        from_node::<String>(node, &scope, Some(key))
            .map_err(|e| problems.push(e))
            .ok()
    };
    let id = read("id", &mut problems);
    if let (Some(id), Some(node)) = (&id, root.get("id")) {
        if !suite::is_valid_id(id) {
            problems.push(at(
                node.pos,
                format!("`id`: expected letters, digits, `-`, `_` and `.` only, found `{id}`"),
            ));
        }
    }
    let title = read("title", &mut problems);
    let mut story_errors: Vec<LoadError> = Vec::new();
    let story_info = read_story(path, &root, &scope, &mut problems, &mut story_errors);
    let story = story_info.id.clone();
    let description = read("description", &mut problems);
    let kube_context = match root.get("kubernetes") {
        Some(node) if !node.is_null() => {
            from_node::<suite::SuiteKubernetes>(node, &scope, Some("kubernetes"))
                .map_err(|e| problems.push(e))
                .ok()
                .and_then(|k| k.context)
                // Empty: the kubeconfig's current context.
                .filter(|c| !c.is_empty())
        }
        _ => None,
    };
    let mut requirements: BTreeMap<String, String> = match root.get("requirements") {
        Some(node) if !node.is_null() => from_node(node, &scope, Some("requirements"))
            .map_err(|e| problems.push(e))
            .unwrap_or_default(),
        _ => BTreeMap::new(),
    };
    // Requirements the story's criteria name count as listed, described as the story does.
    for (id, description) in &story_info.named_requirements {
        requirements
            .entry(id.clone())
            .or_insert_with(|| description.clone().unwrap_or_default());
    }

    let mut decls = Vec::new();
    if let Some(node) = root.get("checks") {
        match node.items() {
            Some([]) => problems.push(at(
                node.pos,
                "`checks`: expected at least one check, found an empty list".into(),
            )),
            Some(items) => {
                for item in items {
                    match suite::check_from_node(item, &scope) {
                        Ok(decl) => decls.push((item.clone(), decl)),
                        Err(mut e) => problems.append(&mut e),
                    }
                }
            }
            None => problems.push(at(
                node.pos,
                format!(
                    "`checks`: expected a list of checks (lines starting with `- id:`), found {}",
                    node.describe()
                ),
            )),
        }
    }

    let known_criteria: Option<HashSet<String>> = (!story_info.criteria.is_empty())
        .then(|| story_info.criteria.iter().map(|c| c.id.clone()).collect());
    let checks_out = cross_check(
        path,
        decls,
        &requirements,
        known_criteria.as_ref(),
        &vars,
        &mut problems,
    );
    let (criteria, warnings) = settle_criteria(
        path,
        story.as_deref(),
        story_info.criteria,
        story_info.pos,
        &checks_out,
    );
    let errors: Vec<LoadError> = story_errors
        .into_iter()
        .chain(problems.into_iter().filter(|e| !e.silent).map(|e| {
            let pos = e.pos.unwrap_or_default();
            LoadError::at(path, pos.line, pos.column, redactor.redact(&e.message))
        }))
        .collect();
    if !errors.is_empty() {
        return (Err(errors), names);
    }
    let (Some(id), Some(title)) = (id, title) else {
        return (
            Err(vec![LoadError::file(path, "the suite has no id or title")]),
            names,
        );
    };
    (
        Ok(Suite {
            id,
            title,
            story,
            story_file: story_info.file,
            criteria,
            description,
            requirements,
            path: path.to_owned(),
            warnings: warnings
                .into_iter()
                .map(|mut w| {
                    w.message = redactor.redact(&w.message);
                    w
                })
                .collect(),
            kube_context,
            variables,
            checks: checks_out,
        }),
        names,
    )
}

/// Byte offsets of line starts, to turn an offset into line and column.
struct LineIndex {
    starts: Vec<usize>,
    /// Per line, whether it is all ASCII: its columns are byte offsets, found in constant
    /// time (a line of 20,000 references would otherwise be counted again for each).
    ascii: Vec<bool>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        let ascii = starts
            .iter()
            .enumerate()
            .map(|(i, &start)| {
                let end = starts.get(i + 1).copied().unwrap_or(text.len());
                text.as_bytes()[start..end].is_ascii()
            })
            .collect();
        LineIndex { starts, ascii }
    }

    fn pos(&self, text: &str, offset: usize) -> Pos {
        let line = self.starts.partition_point(|s| *s <= offset).max(1);
        let start = self.starts[line - 1];
        let column = match self.ascii[line - 1] {
            true => offset.saturating_sub(start) + 1,
            false => text.get(start..offset).map_or(1, |s| s.chars().count() + 1),
        };
        Pos {
            line: line as u64,
            column: column as u64,
        }
    }
}

/// Where a reference stands: its own column when the scalar's source shows it as written,
/// else the scalar's start.
/// References are looked for in order, each after the one before (`cursor`, a byte offset
/// into the scalar's source), so a scalar of many references is scanned once.
fn reference_pos(
    node: &Node,
    source: &str,
    index: &LineIndex,
    written: &str,
    cursor: &mut usize,
) -> Pos {
    let (start, end) = node.range;
    match source
        .get(start + *cursor..end)
        .and_then(|slice| slice.find(written))
    {
        Some(offset) => {
            let at = start + *cursor + offset;
            *cursor += offset + written.len();
            index.pos(source, at)
        }
        None => node.pos,
    }
}

#[allow(clippy::too_many_arguments)]
fn scan_references(
    node: &Rc<Node>,
    source: &str,
    index: &LineIndex,
    vars: &HashMap<String, VarValue>,
    declared: &[Declared],
    seen: &mut HashSet<*const Node>,
    names: &mut HashSet<String>,
    problems: &mut Vec<DeError>,
) {
    // An anchored node is scanned once however often it is aliased (only shared nodes can be
    // met twice).
    if Rc::strong_count(node) > 1 && !seen.insert(Rc::as_ptr(node)) {
        return;
    }
    let text = match &node.value {
        Value::Scalar { text, .. } => text,
        Value::Seq(items) => {
            for item in items {
                scan_references(item, source, index, vars, declared, seen, names, problems);
            }
            return;
        }
        Value::Map(entries) => {
            for entry in entries {
                scan_references(
                    &entry.value,
                    source,
                    index,
                    vars,
                    declared,
                    seen,
                    names,
                    problems,
                );
            }
            return;
        }
    };
    if !interpolate::has_dollar(text) {
        return;
    }
    let tokens = match interpolate::tokens(text) {
        Ok(tokens) => tokens,
        Err(e) => {
            let written: String = text[e.offset..].chars().take(2).collect();
            let pos = reference_pos(node, source, index, &written, &mut 0);
            let mut error = DeError::new(e.message);
            error.pos = Some(pos);
            problems.push(error);
            return;
        }
    };
    let mut cursor = 0;
    for (reference, required) in interpolate::references(&tokens) {
        names.insert(reference.name.clone());
        let written = &text[reference.start..reference.end];
        let pos = reference_pos(node, source, index, written, &mut cursor);
        let message = match vars.get(&reference.name) {
            Some(v) if v.text.is_some() => continue,
            _ if !required => continue,
            Some(_) => match &reference.op {
                Some((interpolate::Op::Required { .. }, message)) if !message.is_empty() => {
                    let text: String = message
                        .iter()
                        .map(|t| match t {
                            interpolate::Token::Text(text) => text.clone(),
                            interpolate::Token::Var(r) => format!("${{{}}}", r.name),
                        })
                        .collect();
                    format!("{}: {text}", unset_variable_hint(&reference.name, declared))
                }
                _ => unset_variable_hint(&reference.name, declared),
            },
            None => {
                // Only the first problems are shown; suggesting for every one of 100,000
                // unknown names against as many known ones would take minutes.
                let suggestion = (problems.len() < SUGGESTED_PROBLEMS)
                    .then(|| {
                        node_de::did_you_mean(&reference.name, vars.keys().map(String::as_str))
                            .map(|s| format!(" (did you mean `{s}`?)"))
                    })
                    .flatten()
                    .unwrap_or_default();
                format!(
                    "unknown variable `{}`{suggestion}: declare it under `variables:` or pass `--set {}=VALUE` (write `$$` for a literal `$`)",
                    reference.name, reference.name
                )
            }
        };
        let mut error = DeError::new(message);
        error.pos = Some(pos);
        problems.push(error);
    }
}

/// How many problems of a file get a "did you mean" suggestion: those that can be shown.
const SUGGESTED_PROBLEMS: usize = MAX_PROBLEMS_PER_FILE;

/// Explains how to give a value to a declared variable that has none.
fn unset_variable_hint(name: &str, declared: &[Declared]) -> String {
    let spec = declared.iter().find(|d| d.name == name).map(|d| &d.spec);
    format!(
        "variable `{name}` has no value; give it with {}",
        ways_to_set(name, spec)
    )
}

/// "`--set a=VALUE`, or `--vars FILE`, or the environment variable `A`".
fn ways_to_set(name: &str, spec: Option<&crate::suite::VariableSpec>) -> String {
    let mut ways = vec![format!("`--set {name}=VALUE`"), "`--vars FILE`".to_owned()];
    if let Some(spec) = spec {
        if let Some(env) = &spec.env {
            ways.push(format!("the environment variable `{env}`"));
        }
        if let Some(file) = &spec.file {
            ways.push(format!("the file `{file}`"));
        }
    }
    ways.join(", or ")
}

/// Values of the declared variables: `--set`, provided values, `--vars`, the environment
/// variable, the file, the Kubernetes Secret, then the default, which may refer to other
/// variables (a cycle is an error). Registered names get stand-ins resolved at run time.
fn resolve_variables(
    declared: &[Declared],
    registered: &[(String, Pos)],
    given: &Given,
    context: Option<&Node>,
    read_secrets: bool,
    problems: &mut Vec<DeError>,
) -> (HashMap<String, VarValue>, Vec<SuiteVariable>) {
    let mut sources: HashMap<&str, VariableSource> = HashMap::new();
    let mut values: HashMap<String, VarValue> = given
        .overrides
        .iter()
        .map(|(name, o)| {
            (
                name.clone(),
                VarValue::known(Some(o.value.clone()), false, o.origin.clone()),
            )
        })
        .collect();
    // A value a check registers is the one later checks see, whatever else sets the name.
    for (name, _) in registered {
        values.insert(
            name.clone(),
            VarValue::stand_in(name, VarState::Runtime, false),
        );
    }
    let mut pending: HashMap<&str, &Declared> = HashMap::new();
    for d in declared {
        if values
            .get(&d.name)
            .is_some_and(|v| v.state == VarState::Runtime)
        {
            continue;
        }
        if let Some(o) = given.overrides.get(&d.name) {
            if let Some(v) = values.get_mut(&d.name) {
                v.secret = d.spec.is_secret();
                v.origin = o.origin.clone();
            }
            sources.insert(&d.name, VariableSource::Given(o.value.clone()));
            continue;
        }
        let from_env = d.spec.env.as_ref().and_then(|var| {
            std::env::var(var)
                .ok()
                .map(|v| (v, format!("from the environment variable `{var}`")))
        });
        let from_file = match (&from_env, &d.spec.file) {
            (None, Some(file)) => match std::fs::read_to_string(file) {
                Ok(text) => Some((
                    text.trim_end_matches(['\n', '\r']).to_owned(),
                    format!("from the file `{file}`"),
                )),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    let mut error =
                        DeError::new(format!("variable `{}`: cannot read `{file}`: {e}", d.name));
                    error.pos = Some(d.pos);
                    problems.push(error);
                    None
                }
            },
            _ => None,
        };
        match from_env.or(from_file) {
            Some((value, origin)) => {
                sources.insert(&d.name, VariableSource::Given(value.clone()));
                values.insert(
                    d.name.clone(),
                    VarValue::known(Some(value), d.spec.is_secret(), origin),
                );
            }
            None if d.spec.default.is_some() || d.spec.kubernetes_secret.is_some() => {
                pending.insert(&d.name, d);
            }
            None => {
                let value = match given.purpose {
                    Purpose::Run => VarValue::known(None, d.spec.is_secret(), ""),
                    Purpose::Inspect => {
                        VarValue::stand_in(&d.name, VarState::Unset, d.spec.is_secret())
                    }
                };
                values.insert(d.name.clone(), value);
            }
        }
    }
    // Secrets and defaults, in dependency order.
    let mut names: Vec<&str> = pending.keys().copied().collect();
    names.sort_unstable();
    let mut resolver = Resolver {
        pending,
        values,
        stack: Vec::new(),
        problems,
        given,
        context,
        context_value: None,
        context_pending: false,
        context_uses_secret: false,
        read_secrets: read_secrets && given.purpose == Purpose::Run,
        secret_reads: Vec::new(),
    };
    // First, so that a context using a Secret's value is caught whatever the order.
    resolver.context();
    for name in names {
        resolver.resolve(name);
    }
    for (name, secret) in std::mem::take(&mut resolver.secret_reads) {
        if let Some(d) = declared.iter().find(|d| d.name == name) {
            sources.insert(&d.name, VariableSource::KubernetesSecret(secret));
        }
    }
    let values = resolver.values;
    let variables = declared
        .iter()
        .filter(|d| !registered.iter().any(|(name, _)| *name == d.name))
        .map(|d| SuiteVariable {
            name: d.name.clone(),
            secret: d.spec.is_secret(),
            source: sources
                .remove(d.name.as_str())
                .unwrap_or(VariableSource::Suite),
        })
        .collect();
    for d in declared.iter().filter(|d| d.spec.is_secret()) {
        let Some(v) = values.get(&d.name) else {
            continue;
        };
        if v.state != VarState::Known {
            continue;
        }
        if let Some(text) = &v.text {
            given.redactor.add(text);
            if let Err(e) = crate::redact::check_secret(&d.name, text) {
                let mut error = DeError::new(e.to_string());
                error.pos = Some(d.pos);
                problems.push(error);
            }
        }
    }
    (values, variables)
}

/// Resolves variables whose value depends on others (defaults, Secret references), each once.
struct Resolver<'a> {
    pending: HashMap<&'a str, &'a Declared>,
    values: HashMap<String, VarValue>,
    /// Names being resolved, to report a cycle.
    stack: Vec<String>,
    problems: &'a mut Vec<DeError>,
    given: &'a Given<'a>,
    /// The suite's `kubernetes:` as written; its context is expanded on the first Secret read.
    context: Option<&'a Node>,
    context_value: Option<Option<String>>,
    context_pending: bool,
    context_uses_secret: bool,
    /// Running, and some check of the suite will run.
    read_secrets: bool,
    /// The Secrets variables are read from (variable, reference), whether or not this load
    /// reads them.
    secret_reads: Vec<(String, crate::k8s::secrets::SecretRef)>,
}

/// A text with its variables' values in place.
struct Expansion {
    text: String,
    /// `Known`, or the state of a variable it uses that has no value yet.
    state: VarState,
    unavailable: Option<Arc<Unavailable>>,
}

impl Resolver<'_> {
    fn problem(&mut self, pos: Pos, message: String) {
        let mut error = DeError::new(message);
        error.pos = Some(pos);
        self.problems.push(error);
    }

    /// Resolves one variable, first the variables its default or Secret reference use.
    fn resolve(&mut self, name: &str) {
        if self.values.contains_key(name) {
            return;
        }
        let Some(d) = self.pending.get(name).copied() else {
            return;
        };
        let default_pos = d.default_node.as_ref().map_or(d.pos, |n| n.pos);
        if let Some(start) = self.stack.iter().position(|n| *n == name) {
            let mut cycle: Vec<String> = self.stack[start..].to_vec();
            cycle.push(name.to_owned());
            self.problem(
                default_pos,
                format!(
                    "the defaults of variables refer to each other in a cycle: {}; give one of them a plain value",
                    cycle.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(" → ")
                ),
            );
            self.values.insert(
                name.to_owned(),
                VarValue::known(Some(String::new()), d.spec.is_secret(), ""),
            );
            return;
        }
        if let Some(secret) = &d.spec.kubernetes_secret {
            if let Some(value) = self.read_secret(d, secret) {
                self.values.insert(name.to_owned(), value);
                return;
            }
        }
        if self.values.contains_key(name) {
            // Set while reporting a cycle through it.
            return;
        }
        let default = d.spec.default.clone().unwrap_or_default();
        let origin = format!("the default on line {}", d.pos.line);
        self.stack.push(name.to_owned());
        let expansion = self.expand(
            &default,
            &format!("default of `{name}`"),
            &format!("the default of `{name}`"),
            default_pos,
            true,
        );
        self.stack.pop();
        if self.values.contains_key(name) {
            return;
        }
        let mut value = VarValue::known(Some(expansion.text), d.spec.is_secret(), origin);
        value.state = expansion.state;
        value.unavailable = expansion.unavailable;
        self.values.insert(name.to_owned(), value);
    }

    /// The value of a variable from a Kubernetes Secret; `None` when the Secret or key is
    /// missing and a default is declared (the default applies).
    fn read_secret(
        &mut self,
        d: &Declared,
        secret: &crate::k8s::secrets::SecretRef,
    ) -> Option<VarValue> {
        let secret_value = d.spec.is_secret();
        let unavailable = |u: Unavailable| {
            let mut value = VarValue::stand_in(&d.name, VarState::Unavailable, secret_value);
            value.unavailable = Some(Arc::new(u));
            Some(value)
        };
        if self.context_pending {
            // The context is being worked out and uses this variable: reported there.
            self.context_uses_secret = true;
            return Some(VarValue::stand_in(&d.name, VarState::Unset, secret_value));
        }
        let what = format!("`kubernetes_secret` of `{}`", d.name);
        self.stack.push(d.name.clone());
        let fields = [&secret.namespace, &secret.name, &secret.key]
            .map(|text| self.expand(text, &what, &what, d.pos, true));
        self.stack.pop();
        let [namespace, name, key] = fields;
        for field in [&namespace, &name, &key] {
            if field.state == VarState::Runtime {
                self.problem(
                    d.pos,
                    format!("{what} is read before the run: it cannot use a value registered by a check"),
                );
            }
            if field.state != VarState::Known {
                let mut value = VarValue::stand_in(&d.name, field.state, secret_value);
                value.unavailable = field.unavailable.clone();
                return Some(value);
            }
        }
        let secret = crate::k8s::secrets::SecretRef {
            namespace: namespace.text,
            name: name.text,
            key: key.text,
        };
        self.secret_reads.push((d.name.clone(), secret.clone()));
        if !self.read_secrets {
            // Listing, linting, or no check of the suite selected: no cluster is read.
            return Some(VarValue::stand_in(&d.name, VarState::Unset, secret_value));
        }
        let context = self.context();
        let Some(external) = self.given.external else {
            return unavailable(Unavailable {
                message: format!(
                    "{} needs the Kubernetes API, which this run has no access to",
                    secret.describe()
                ),
                hint: None,
                skip: true,
            });
        };
        match external.kubernetes_secret(context.as_deref(), &secret) {
            Lookup::Found(text) => {
                if secret_value && crate::redact::check_secret(&d.name, &text).is_err() {
                    return unavailable(Unavailable {
                        message: format!(
                            "{} holds a value under 8 characters or a well-known default: it cannot be masked without mangling other output, and it is guessable",
                            secret.describe()
                        ),
                        hint: Some("set a generated password (charts and operators generate one when none is given)".into()),
                        skip: false,
                    });
                }
                // Registered with the redactor with the other secrets, below.
                Some(VarValue::known(
                    Some(text),
                    secret_value,
                    format!("from {}", secret.describe()),
                ))
            }
            Lookup::Absent(_) if d.spec.default.is_some() => None,
            Lookup::Absent(why) => unavailable(Unavailable {
                message: why,
                hint: Some(format!(
                    "check the Secret's name, namespace and key; or give `{}` a value with {}",
                    d.name,
                    ways_to_set(&d.name, Some(&d.spec))
                )),
                skip: false,
            }),
            Lookup::Unavailable(mut u) => {
                let ways = ways_to_set(&d.name, Some(&d.spec));
                u.hint = Some(match u.hint {
                    Some(hint) => format!("{hint}; or give `{}` a value with {ways}", d.name),
                    None => format!("give `{}` a value with {ways}", d.name),
                });
                unavailable(u)
            }
        }
    }

    /// The suite's kubeconfig context (`kubernetes: {context: …}`), expanded once.
    fn context(&mut self) -> Option<String> {
        if let Some(found) = &self.context_value {
            return found.clone();
        }
        self.context_pending = true;
        let node = self.context.and_then(|k| k.get("context"));
        let found = match node.and_then(|n| n.scalar()) {
            Some((text, _)) if !yaml::is_null_text(text) => {
                let pos = node.map_or(Pos::default(), |n| n.pos);
                let text = text.to_owned();
                let expansion = self.expand(
                    &text,
                    "`kubernetes.context`",
                    "`kubernetes.context`",
                    pos,
                    false,
                );
                if self.context_uses_secret || expansion.state == VarState::Runtime {
                    self.problem(
                        pos,
                        "`kubernetes.context` must be known before the run: it cannot use a variable read from a Secret or registered by a check".into(),
                    );
                }
                Some(expansion.text).filter(|c| !c.is_empty())
            }
            _ => None,
        };
        self.context_pending = false;
        self.context_value = Some(found.clone());
        found
    }

    /// `text` with the values of the variables it uses, resolving them first. `what` names
    /// it in messages ("default of `a`"; `in_what` after "in": "the default of `a`").
    /// Unknown variables are reported unless `report_unknown` is false (the file's scan
    /// reports those outside `variables:`).
    fn expand(
        &mut self,
        text: &str,
        what: &str,
        in_what: &str,
        pos: Pos,
        report_unknown: bool,
    ) -> Expansion {
        let tokens = match interpolate::tokens(text) {
            Ok(tokens) => tokens,
            Err(e) => {
                self.problem(pos, format!("{what}: {}", e.message));
                return Expansion {
                    text: text.to_owned(),
                    state: VarState::Known,
                    unavailable: None,
                };
            }
        };
        let refs = interpolate::references(&tokens);
        for (reference, _) in &refs {
            self.resolve(&reference.name);
        }
        let mut state = VarState::Known;
        let mut unavailable = None;
        for (reference, required) in &refs {
            match self.values.get(&reference.name) {
                Some(v) if v.state != VarState::Known => {
                    state = v.state;
                    unavailable = unavailable.or_else(|| v.unavailable.clone());
                }
                Some(v) if v.text.is_some() => {}
                _ if !required => {}
                None if !report_unknown => {}
                found => {
                    let message = if found.is_some() {
                        format!(
                            "{in_what} uses `${{{}}}`, which has no value",
                            reference.name
                        )
                    } else {
                        format!(
                            "unknown variable `{}` in {in_what}: declare it under `variables:` or pass `--set {}=VALUE`",
                            reference.name, reference.name
                        )
                    };
                    self.problem(pos, message);
                }
            }
        }
        let lookup = |n: &str| self.values.get(n).and_then(|v| v.text.as_deref());
        Expansion {
            text: interpolate::expand(&tokens, &lookup).unwrap_or_default(),
            state,
            unavailable,
        }
    }
}

fn is_acceptance_criterion(item: &str) -> bool {
    item.strip_prefix("AC")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// References between checks: unique ids, `needs` earlier checks, `covers` listed
/// requirements, `register` on kinds that export values.
fn cross_check(
    path: &Path,
    decls: Vec<(Rc<Node>, CheckDecl)>,
    requirements: &BTreeMap<String, String>,
    criteria: Option<&HashSet<String>>,
    vars: &HashMap<String, VarValue>,
    problems: &mut Vec<DeError>,
) -> Vec<SuiteCheck> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut registers: HashSet<String> = HashSet::new();
    let mut checks_out = Vec::new();
    for (node, decl) in decls {
        let key_pos = |key: &str| {
            node.entries()
                .unwrap_or_default()
                .iter()
                .find(|e| e.key == key)
                .map_or(node.pos, |e| e.value.pos)
        };
        let mut error = |pos: Pos, message: String| {
            let mut e = DeError::new(message);
            e.pos = Some(pos);
            problems.push(e);
        };
        if !seen.insert(decl.id.clone()) {
            error(
                key_pos("id"),
                format!("check id `{}` is used twice in this suite", decl.id),
            );
        }
        for need in &decl.needs {
            if need == &decl.id || !seen.contains(need) {
                error(
                    key_pos("needs"),
                    format!(
                        "check `{}` needs `{need}`, which is not an earlier check of this suite",
                        decl.id
                    ),
                );
            }
        }
        let (acceptance, requirement_ids): (Vec<String>, Vec<String>) = decl
            .covers
            .iter()
            .cloned()
            .partition(|item| is_acceptance_criterion(item));
        for requirement in &requirement_ids {
            if !requirements.contains_key(requirement) {
                error(
                    key_pos("covers"),
                    format!(
                        "check `{}` covers `{requirement}`, which the suite's `requirements` does not list (acceptance criteria are written `AC2`)",
                        decl.id
                    ),
                );
            }
        }
        if let Some(known) = criteria {
            for ac in acceptance.iter().filter(|ac| !known.contains(*ac)) {
                let mut listed: Vec<&String> = known.iter().collect();
                listed.sort_by_key(|id| criterion_order(id));
                let listed: Vec<&str> = listed.iter().map(|s| s.as_str()).collect();
                error(
                    key_pos("covers"),
                    format!(
                        "check `{}` covers `{ac}`, which is not one of the story's criteria ({}); add it to `criteria:` or fix the number",
                        decl.id,
                        listed.join(", ")
                    ),
                );
            }
        }
        let mut exports = Vec::new();
        if let Some(name) = &decl.register {
            if suite::is_identifier(name) && !registers.insert(name.clone()) {
                error(
                    key_pos("register"),
                    format!("register name `{name}` is used twice in this suite"),
                );
            }
            let available = checks::kind_exports(decl.kind);
            if available.is_empty() {
                error(
                    key_pos("register"),
                    format!(
                        "kind `{}` registers no values; remove `register:`",
                        decl.kind
                    ),
                );
            }
            exports = available
                .iter()
                .map(|(key, secret)| (format!("{name}_{key}"), *key, *secret))
                .collect();
        }
        let safety = decl.safety.unwrap_or_default().max(decl.check.safety());
        checks_out.push(SuiteCheck {
            location: format!("{}:{}:{}", path.display(), node.pos.line, node.pos.column),
            safety,
            requirements: requirement_ids,
            acceptance,
            exports,
            unavailable: first_unavailable(&node, vars),
            via: port_forward(&node),
            decl,
        });
    }
    checks_out
}

/// The first variable `node` uses (directly or through a default) that has no value in this
/// run, and why.
fn first_unavailable(
    node: &Node,
    vars: &HashMap<String, VarValue>,
) -> Option<(String, Arc<Unavailable>)> {
    match &node.value {
        Value::Scalar { text, .. } => {
            if !interpolate::has_dollar(text) {
                return None;
            }
            let tokens = interpolate::tokens(text).ok()?;
            interpolate::references(&tokens)
                .into_iter()
                .find_map(|(reference, _)| {
                    let why = vars.get(&reference.name)?.unavailable.clone()?;
                    Some((reference.name.clone(), why))
                })
        }
        Value::Seq(items) => items.iter().find_map(|item| first_unavailable(item, vars)),
        Value::Map(entries) => entries
            .iter()
            .find_map(|entry| first_unavailable(&entry.value, vars)),
    }
}

/// What a suite says about its story: its id, document and criteria.
#[derive(Default)]
struct StoryInfo {
    id: Option<String>,
    file: Option<String>,
    criteria: Vec<Criterion>,
    /// FR/NFR IDs the criteria name, with the description the story gives.
    named_requirements: Vec<(String, Option<String>)>,
    /// Where the suite names the story (warnings point there).
    pos: Pos,
}

/// Reads `story:` (an id, or `{id, file}`: the document is read and its criteria parsed) and
/// `criteria:`, merging the suite's criteria into the document's. Problems in the suite go to
/// `problems`; problems in the story document, at its own line and column, to `errors`.
fn read_story(
    path: &Path,
    root: &Node,
    scope: &Scope,
    problems: &mut Vec<DeError>,
    errors: &mut Vec<LoadError>,
) -> StoryInfo {
    let at = |pos: Pos, message: String| {
        let mut e = DeError::new(message);
        e.pos = Some(pos);
        e
    };
    let mut info = StoryInfo {
        pos: root.pos,
        ..StoryInfo::default()
    };
    let mut doc: Option<crate::story::StoryDoc> = None;
    let mut file_pos = root.pos;
    if let Some(node) = root.get("story") {
        info.pos = node.pos;
        if node.entries().is_some() {
            match from_node::<suite::StoryRef>(node, scope, Some("story")) {
                Ok(reference) => {
                    info.id = Some(reference.id);
                    if let Some(file) = reference.file {
                        file_pos = node.get("file").map_or(node.pos, |n| n.pos);
                        let full = path.parent().unwrap_or(Path::new("")).join(&file);
                        match std::fs::read(&full).map(String::from_utf8) {
                            Err(e) => problems.push(at(
                                file_pos,
                                format!(
                                    "`file`: cannot read the story document `{}`: {e} (the path is relative to the suite's folder)",
                                    full.display()
                                ),
                            )),
                            Ok(Err(_)) => problems.push(at(
                                file_pos,
                                format!(
                                    "`file`: the story document `{}` is not UTF-8 text",
                                    full.display()
                                ),
                            )),
                            Ok(Ok(text)) => match crate::story::parse(&text) {
                                Ok(parsed) => doc = Some(parsed),
                                Err(e) => errors.push(LoadError::at(
                                    &full,
                                    e.line as u64,
                                    e.column as u64,
                                    e.message,
                                )),
                            },
                        }
                        info.file = Some(file);
                    }
                }
                Err(e) => problems.push(e),
            }
        } else if !node.is_null() {
            match from_node::<String>(node, scope, Some("story")) {
                Ok(id) => info.id = Some(id),
                Err(e) => problems.push(e),
            }
        }
    }
    let mut inline: Vec<(String, Pos, suite::CriterionSpec)> = Vec::new();
    if let Some(node) = root.get("criteria") {
        match node.entries() {
            Some(entries) => {
                for entry in entries {
                    if !is_acceptance_criterion(&entry.key) {
                        problems.push(at(
                            entry.key_pos,
                            format!(
                                "expected a criterion id such as `AC1`, found `{}`",
                                entry.key
                            ),
                        ));
                        continue;
                    }
                    let spec = if entry.value.entries().is_some() {
                        from_node::<suite::CriterionSpec>(&entry.value, scope, Some(&entry.key))
                    } else {
                        from_node::<String>(&entry.value, scope, Some(&entry.key)).map(|text| {
                            suite::CriterionSpec {
                                text: Some(text),
                                manual: None,
                            }
                        })
                    };
                    match spec {
                        Ok(spec) => {
                            if spec.manual.as_deref().is_some_and(|m| m.trim().is_empty()) {
                                let pos = entry.value.get("manual").map_or(entry.value.pos, |n| n.pos);
                                problems.push(at(pos, "`manual`: expected why no machine can check this criterion, found empty text".into()));
                            }
                            inline.push((entry.key.clone(), entry.key_pos, spec));
                        }
                        Err(e) => problems.push(e),
                    }
                }
            }
            None if node.is_null() => {}
            None => problems.push(at(
                node.pos,
                format!(
                    "`criteria`: expected a map of criteria (`AC1: \"text\"` or `AC1: {{manual: \"why\"}}`), found {}",
                    node.describe()
                ),
            )),
        }
    }
    if let Some(doc) = &doc {
        if !doc.has_criteria_section && inline.is_empty() {
            problems.push(at(
                file_pos,
                format!(
                    "`file`: the story document `{}` has no \"## Acceptance Criteria\" section; list the criteria in the suite instead: `criteria: {{AC1: \"…\"}}`",
                    info.file.as_deref().unwrap_or_default()
                ),
            ));
        }
        for c in &doc.criteria {
            info.criteria.push(Criterion {
                id: c.id.clone(),
                title: c.title.clone(),
                text: c.text.clone(),
                requirements: c.requirements.iter().map(|(id, _)| id.clone()).collect(),
                manual: None,
            });
            info.named_requirements
                .extend(c.requirements.iter().cloned());
        }
    }
    let from_document: Vec<String> = info.criteria.iter().map(|c| c.id.clone()).collect();
    // A document that could not be read was reported; its criteria's text is not missing.
    let unreadable = info.file.is_some() && doc.is_none();
    for (id, pos, spec) in inline.into_iter().filter(|_| !unreadable) {
        if let Some(known) = info.criteria.iter_mut().find(|c| c.id == id) {
            if let Some(text) = spec.text {
                known.title = text.clone();
                known.text = text;
            }
            known.manual = spec.manual;
            continue;
        }
        if !from_document.is_empty() {
            problems.push(at(
                pos,
                format!(
                    "`{id}`: the story document has {}, not `{id}`; fix the number, or the story's \"Acceptance Criteria\"",
                    from_document.join(", ")
                ),
            ));
            continue;
        }
        let Some(text) = spec.text else {
            let why = match (&doc, &info.file) {
                (Some(_), Some(file)) => {
                    format!("`{file}` has no \"## Acceptance Criteria\" section")
                }
                _ => "no story document gives it".to_owned(),
            };
            problems.push(at(
                pos,
                format!("`{id}`: expected the criterion's `text` ({why})"),
            ));
            continue;
        };
        let named = crate::story::mentioned_requirements(&text);
        info.named_requirements.extend(named.iter().cloned());
        info.criteria.push(Criterion {
            id,
            title: text.clone(),
            text,
            requirements: named.into_iter().map(|(id, _)| id).collect(),
            manual: spec.manual,
        });
    }
    info.criteria.sort_by_key(|c| criterion_order(&c.id));
    info
}

/// Sorts `AC2` before `AC10`.
fn criterion_order(id: &str) -> (u64, String) {
    let number = id
        .trim_start_matches("AC")
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX);
    (number, id.to_owned())
}

/// The suite's criteria, and a warning for each one no check covers that is not manual.
/// Without criteria from a document or `criteria:`, the `ACn` the checks cover.
fn settle_criteria(
    path: &Path,
    story: Option<&str>,
    criteria: Vec<Criterion>,
    pos: Pos,
    checks: &[SuiteCheck],
) -> (Vec<Criterion>, Vec<LoadWarning>) {
    if criteria.is_empty() {
        let mut ids: Vec<String> = checks
            .iter()
            .flat_map(|c| c.acceptance.iter().cloned())
            .collect();
        ids.sort_by_key(|id| criterion_order(id));
        ids.dedup();
        let derived = ids
            .into_iter()
            .map(|id| Criterion {
                id,
                title: String::new(),
                text: String::new(),
                requirements: Vec::new(),
                manual: None,
            })
            .collect();
        return (derived, Vec::new());
    }
    let story = story.map(|s| format!(" of story {s}")).unwrap_or_default();
    let warnings = criteria
        .iter()
        .filter(|c| c.manual.is_none())
        .filter(|c| !checks.iter().any(|check| check.acceptance.contains(&c.id)))
        .map(|c| {
            LoadWarning::at(
                path,
                pos.line,
                pos.column,
                format!(
                    "{}{story} (\"{}\") is covered by no check and not declared manual; add it to a check's `covers`, or declare `criteria: {{{}: {{manual: \"why no machine can check it\"}}}}`",
                    c.id, c.title, c.id
                ),
            )
        })
        .collect();
    (criteria, warnings)
}

/// The port-forward a check's target is reached through: `data/service postgres-postgresql`.
fn port_forward(node: &Node) -> Option<String> {
    match &node.value {
        Value::Map(entries) => entries.iter().find_map(|entry| {
            if entry.key == "via" {
                let forward = entry.value.get("port-forward")?;
                let field = |name: &str| {
                    forward
                        .get(name)
                        .and_then(|n| n.scalar().map(|(t, _)| t.to_owned()))
                };
                let namespace = field("namespace").unwrap_or_default();
                let target = field("service")
                    .map(|s| format!("service {s}"))
                    .or_else(|| field("pod").map(|p| format!("pod {p}")))
                    .unwrap_or_default();
                Some(format!("{namespace}/{target}"))
            } else {
                port_forward(&entry.value)
            }
        }),
        Value::Seq(items) => items.iter().find_map(|item| port_forward(item)),
        Value::Scalar { .. } => None,
    }
}

#[cfg(test)]
mod tests;

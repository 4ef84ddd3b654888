//! Suite files → validated model: finds files, resolves variables, parses, checks references.
//!
//! Variables are interpolated while parsing (serde-saphyr properties), so `port: ${pg_port}`
//! becomes a number and every error still points at the line and column in the suite file.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;
use serde_saphyr::Spanned;

use crate::checks;
use crate::context::runtime_marker;
use crate::redact::Redactor;
use crate::suite::{CheckDecl, Safety, SuiteFile, VariableDecl};

/// A suite ready to plan: checks in order, with their place in the file.
#[derive(Debug)]
pub struct Suite {
    pub id: String,
    pub title: String,
    pub story: Option<String>,
    pub description: Option<String>,
    pub requirements: BTreeMap<String, String>,
    pub path: PathBuf,
    pub checks: Vec<SuiteCheck>,
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
}

/// Where variable values come from besides the suite's own defaults.
#[derive(Debug, Default, Clone)]
pub struct VarSources {
    /// `--set name=value`, highest precedence.
    pub set: Vec<(String, String)>,
    /// `--vars FILE` contents, in the order given (later files win).
    pub files: Vec<PathBuf>,
}

/// A problem with the input: names the file and, where known, line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub path: PathBuf,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub message: String,
}

impl LoadError {
    fn at(path: &Path, line: u64, column: u64, message: impl Into<String>) -> Self {
        LoadError {
            path: path.to_owned(),
            line: Some(line).filter(|l| *l > 0),
            column: Some(column).filter(|c| *c > 0),
            message: message.into(),
        }
    }
    fn file(path: &Path, message: impl Into<String>) -> Self {
        LoadError {
            path: path.to_owned(),
            line: None,
            column: None,
            message: message.into(),
        }
    }
    fn from_yaml(path: &Path, error: &serde_saphyr::Error) -> Self {
        let (line, column) = error
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        let mut message = error.without_snippet().to_string();
        // serde-saphyr appends " at line L column C"; we print the position up front instead.
        if let Some(cut) = message.rfind(" at line ") {
            message.truncate(cut);
        }
        if matches!(error, serde_saphyr::Error::UnresolvedProperty { .. }) {
            message.push_str(
                " (declare it under `variables:` in the suite, or pass `--set NAME=VALUE` or `--vars FILE`)",
            );
        }
        LoadError::at(path, line, column, message)
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

fn yaml_options() -> serde_saphyr::Options {
    // `on`/`yes` stay strings: a password or a value of `on` must not turn into `true`.
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    options
}

/// Loads every suite; collects all errors rather than stopping at the first.
pub fn load_all(
    files: &[PathBuf],
    sources: &VarSources,
    redactor: &Redactor,
) -> Result<Vec<Suite>, Vec<LoadError>> {
    let overrides = load_overrides(sources).map_err(|e| vec![e])?;
    let mut suites: Vec<Suite> = Vec::new();
    let mut errors = Vec::new();
    for path in files {
        match load_suite(path, &overrides, redactor) {
            Ok(suite) => {
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
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(suites)
    } else {
        Err(errors)
    }
}

/// `--vars` files then `--set` values, later ones winning.
fn load_overrides(sources: &VarSources) -> Result<HashMap<String, String>, LoadError> {
    let mut values = HashMap::new();
    for path in &sources.files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| LoadError::file(path, format!("cannot read vars file: {e}")))?;
        let map: BTreeMap<String, VariableDecl> =
            serde_saphyr::from_str_with_options(&text, yaml_options())
                .map_err(|e| LoadError::from_yaml(path, &e))?;
        for (name, decl) in map {
            match decl {
                VariableDecl::Default(value) => {
                    values.insert(name, value);
                }
                VariableDecl::Unset => {}
                VariableDecl::Full(_) => {
                    return Err(LoadError::file(
                        path,
                        format!("`{name}`: a vars file maps names to plain values"),
                    ))
                }
            }
        }
    }
    for (name, value) in &sources.set {
        values.insert(name.clone(), value.clone());
    }
    Ok(values)
}

/// The parts of a suite needed before it can be parsed with variables: declarations and the
/// names that `register:` will define.
struct Preamble {
    variables: BTreeMap<String, VariableDecl>,
    registered: Vec<(String, &'static str)>,
}

fn read_preamble(path: &Path, text: &str) -> Result<Preamble, LoadError> {
    let raw: Value = serde_saphyr::from_str_with_options(text, yaml_options())
        .map_err(|e| LoadError::from_yaml(path, &e))?;
    // A malformed declaration is reported, with its position, by the typed parse; until then
    // the names are still known, so references to them are not misreported as unknown.
    let variables = match raw.get("variables").and_then(Value::as_object) {
        Some(vars) => vars
            .iter()
            .map(|(name, decl)| {
                let decl = serde_json::from_value(decl.clone()).unwrap_or_default();
                (name.clone(), decl)
            })
            .collect(),
        None => BTreeMap::new(),
    };
    let registered = raw
        .get("checks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|check| {
            let name = check.get("register")?.as_str()?.to_owned();
            let kind = check
                .as_object()?
                .keys()
                .find_map(|key| checks::kind_name(key))?;
            Some((name, kind))
        })
        .collect();
    Ok(Preamble {
        variables,
        registered,
    })
}

fn resolve_variables(
    path: &Path,
    preamble: &Preamble,
    overrides: &HashMap<String, String>,
    redactor: &Redactor,
) -> Result<HashMap<String, String>, LoadError> {
    let mut values: HashMap<String, String> = overrides.clone();
    for (name, decl) in &preamble.variables {
        let spec = decl.spec();
        let value = match overrides.get(name) {
            Some(value) => Some(value.clone()),
            None => {
                let from_env = spec.env.as_ref().and_then(|var| std::env::var(var).ok());
                let from_file = match (&from_env, &spec.file) {
                    (None, Some(file)) => match std::fs::read_to_string(file) {
                        Ok(text) => Some(text.trim_end_matches(['\n', '\r']).to_owned()),
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                        Err(e) => {
                            return Err(LoadError::file(
                                path,
                                format!("variable `{name}`: cannot read `{file}`: {e}"),
                            ))
                        }
                    },
                    _ => None,
                };
                from_env.or(from_file).or(spec.default.clone())
            }
        };
        match value {
            Some(value) => {
                if spec.secret {
                    // Masked whatever happens; refused when too short or too common to be
                    // masked without mangling output (see `redact::check_secret`).
                    redactor.add(&value);
                    crate::redact::check_secret(name, &value)
                        .map_err(|e| LoadError::file(path, e.to_string()))?;
                }
                values.insert(name.clone(), value);
            }
            None => {
                values.remove(name);
            }
        }
    }
    for (register, kind) in &preamble.registered {
        for (key, _) in checks::kind_exports(kind) {
            let name = format!("{register}_{key}");
            values.insert(name.clone(), runtime_marker(&name));
        }
    }
    Ok(values)
}

/// Explains how to give a value to a declared variable that has none.
fn unset_variable_hint(name: &str, preamble: &Preamble) -> Option<String> {
    let spec = preamble.variables.get(name)?.spec();
    let mut ways = vec![format!("`--set {name}=VALUE`"), "`--vars FILE`".to_owned()];
    if let Some(env) = &spec.env {
        ways.push(format!("the environment variable `{env}`"));
    }
    if let Some(file) = &spec.file {
        ways.push(format!("the file `{file}`"));
    }
    Some(format!(
        "variable `{name}` has no value; give it with {}",
        ways.join(", or ")
    ))
}

fn load_suite(
    path: &Path,
    overrides: &HashMap<String, String>,
    redactor: &Redactor,
) -> Result<Suite, Vec<LoadError>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![LoadError::file(path, format!("cannot read suite: {e}"))])?;
    let preamble = read_preamble(path, &text).map_err(|e| vec![e])?;
    let values = resolve_variables(path, &preamble, overrides, redactor).map_err(|e| vec![e])?;
    let unknown = undefined_references(path, &text, &values, &preamble);
    if !unknown.is_empty() {
        return Err(unknown);
    }
    let mut options = yaml_options().with_properties(values);
    // Compose rules: quoted values are interpolated too, and `$$` is a literal dollar sign.
    options.property_syntax = serde_saphyr::PropertySyntax::DockerCompose;
    let file: SuiteFile = serde_saphyr::from_str_with_options(&text, options).map_err(|e| {
        let mut error = LoadError::from_yaml(path, &e);
        if let serde_saphyr::Error::UnresolvedProperty { name, .. } = &e {
            if let Some(hint) = unset_variable_hint(name, &preamble) {
                error.message = hint;
            }
        }
        error.message = redactor.redact(&error.message);
        vec![error]
    })?;
    validate(path, file)
}

/// Finds `${name}` and `$name` references to variables nobody defines. Compose-style
/// interpolation would turn them into empty strings; a typo must be an error instead.
fn undefined_references(
    path: &Path,
    text: &str,
    values: &HashMap<String, String>,
    preamble: &Preamble,
) -> Vec<LoadError> {
    let mut errors = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        let mut i = 0;
        while i < chars.len() {
            if chars[i].1 != '$' {
                i += 1;
                continue;
            }
            let next = chars.get(i + 1).map(|c| c.1);
            if next == Some('$') {
                i += 2;
                continue;
            }
            let braced = next == Some('{');
            let start = if braced { i + 2 } else { i + 1 };
            let mut end = start;
            while end < chars.len()
                && (chars[end].1.is_ascii_alphanumeric() || chars[end].1 == '_')
                && !(end == start && chars[end].1.is_ascii_digit())
            {
                end += 1;
            }
            if end > start {
                let name: String = chars[start..end].iter().map(|c| c.1).collect();
                // `${name:-default}` and friends may be unset on purpose.
                let required = !braced || chars.get(end).map(|c| c.1) == Some('}');
                if required && !values.contains_key(&name) {
                    let message = unset_variable_hint(&name, preamble).unwrap_or_else(|| {
                        format!(
                            "unknown variable `{name}`: declare it under `variables:` or pass `--set {name}=VALUE` (write `$$` for a literal `$`)"
                        )
                    });
                    errors.push(LoadError::at(path, index as u64 + 1, i as u64 + 1, message));
                }
            }
            i = end.max(i + 1);
        }
    }
    errors
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn is_acceptance_criterion(item: &str) -> bool {
    item.strip_prefix("AC")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

fn validate(path: &Path, file: SuiteFile) -> Result<Suite, Vec<LoadError>> {
    let mut errors = Vec::new();
    let id = file.id.value.clone();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        errors.push(LoadError::at(
            path,
            file.id.referenced.line(),
            file.id.referenced.column(),
            format!("suite id `{id}` may only use letters, digits, `-`, `_` and `.`"),
        ));
    }
    if file.checks.is_empty() {
        errors.push(LoadError::file(path, "the suite has no checks"));
    }

    let mut seen: HashSet<String> = HashSet::new();
    let mut registers: HashSet<String> = HashSet::new();
    let mut checks_out = Vec::new();
    for Spanned {
        value: decl,
        referenced,
        ..
    } in file.checks
    {
        let (line, column) = (referenced.line(), referenced.column());
        let mut error = |message: String| errors.push(LoadError::at(path, line, column, message));
        if !seen.insert(decl.id.clone()) {
            error(format!(
                "check id `{}` is used twice in this suite",
                decl.id
            ));
        }
        for need in &decl.needs {
            if need == &decl.id || !seen.contains(need) {
                error(format!(
                    "check `{}` needs `{need}`, which is not an earlier check of this suite",
                    decl.id
                ));
            }
        }
        let (acceptance, requirements): (Vec<String>, Vec<String>) = decl
            .covers
            .iter()
            .cloned()
            .partition(|item| is_acceptance_criterion(item));
        for requirement in &requirements {
            if !file.requirements.contains_key(requirement) {
                error(format!(
                    "check `{}` covers `{requirement}`, which the suite's `requirements` does not list (acceptance criteria are written `AC2`)",
                    decl.id
                ));
            }
        }
        if let Some(retry) = &decl.retry {
            if retry.interval.0.is_zero() {
                error(format!(
                    "check `{}`: retry interval must be above zero",
                    decl.id
                ));
            }
        }
        let mut exports = Vec::new();
        if let Some(name) = &decl.register {
            if !is_identifier(name) {
                error(format!(
                    "register name `{name}` must be letters, digits and `_` (it prefixes variables such as `{name}_password`)"
                ));
            } else if !registers.insert(name.clone()) {
                error(format!(
                    "register name `{name}` is used twice in this suite"
                ));
            }
            let available = checks::kind_exports(decl.kind);
            if available.is_empty() {
                error(format!(
                    "kind `{}` registers no values; remove `register:`",
                    decl.kind
                ));
            }
            exports = available
                .iter()
                .map(|(key, secret)| (format!("{name}_{key}"), *key, *secret))
                .collect();
        }
        let safety = decl.safety.unwrap_or_default().max(decl.check.safety());
        checks_out.push(SuiteCheck {
            location: format!("{}:{line}:{column}", path.display()),
            safety,
            requirements,
            acceptance,
            exports,
            decl,
        });
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Suite {
        id,
        title: file.title,
        story: file.story,
        description: file.description,
        requirements: file.requirements,
        path: path.to_owned(),
        checks: checks_out,
    })
}

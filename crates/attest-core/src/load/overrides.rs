//! Values given from outside the suites (`--set`, `--vars` files, values a tool provides), and the names among them no suite uses.

use super::*;

/// A value given from outside the suites, with where it came from.
pub(super) struct Override {
    pub(super) value: String,
    pub(super) origin: String,
}

/// A name given with `--set` or in a `--vars` file, for the unknown-name check.
pub(super) struct GivenName {
    pub(super) name: String,
    /// `None` for `--set`, else the vars file and the name's position in it.
    pub(super) file: Option<(PathBuf, Pos)>,
}

/// Given names that no loaded suite declares or uses.
pub(super) struct UnknownNames {
    /// `--set` names: an instruction that cannot be followed.
    pub(super) errors: Vec<LoadError>,
    /// Likely typos in `--vars` files.
    pub(super) warnings: Vec<LoadWarning>,
}

/// `--set` names that no loaded suite declares or uses are errors. A vars file describes an
/// environment (the sandbox's names every service), so its unused names are fine, except
/// that one a typo away from a variable it does not set is worth a warning.
pub(super) fn unknown_given_names(
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
pub(super) fn load_overrides(
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

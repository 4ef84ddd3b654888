//! One suite file: parse, declarations, checks, each problem at its line and column.

use super::*;

/// A declared variable, as read from the tree.
pub(super) struct Declared {
    pub(super) name: String,
    pub(super) spec: crate::suite::VariableSpec,
    pub(super) pos: Pos,
    /// The node of the default value, for positions of its references.
    pub(super) default_node: Option<Rc<Node>>,
}

/// Loads one suite file: every problem of the file, each at its line and column, or the suite.
/// Also returns the variable names the file declares or references (for `--set` typos).
pub(super) fn load_suite_bytes(
    path: &Path,
    bytes: &[u8],
    given: &Given,
) -> (Result<Suite, Vec<LoadError>>, HashSet<String>) {
    let mut names = HashSet::new();
    let (text, root) = match parse(path, bytes) {
        Ok(parsed) => parsed,
        Err(error) => return (Err(vec![error]), names),
    };
    let entries = root.entries().expect("parse returns a map");
    let mut problems: Vec<DeError> = Vec::new();
    check_top_level_keys(&root, entries, &mut problems);

    let declared = read_declarations(&root, &mut problems);
    let check_nodes: &[Rc<Node>] = root
        .get("checks")
        .and_then(|c| c.items())
        .unwrap_or_default();
    let registered = registered_names(check_nodes);
    let (vars, variables) = resolve_variables(
        &declared,
        &registered,
        given,
        root.get("kubernetes").map(|n| &**n),
        selects_any(given.selection, &root, check_nodes),
        &mut problems,
    );
    names.extend(declared.iter().map(|d| d.name.clone()));
    scan_all_references(&text, entries, &vars, &declared, &mut names, &mut problems);

    let scope = Scope {
        vars: &vars,
        raw: false,
    };
    let mut story_errors: Vec<LoadError> = Vec::new();
    let header = read_header(path, &root, &scope, &mut problems, &mut story_errors);
    let decls = read_checks(&root, &scope, &mut problems);

    let story_info = header.story_info;
    let known_criteria: Option<HashSet<String>> = (!story_info.criteria.is_empty())
        .then(|| story_info.criteria.iter().map(|c| c.id.clone()).collect());
    let checks_out = cross_check(
        path,
        decls,
        &header.requirements,
        known_criteria.as_ref(),
        &vars,
        &mut problems,
    );
    let (criteria, warnings) = settle_criteria(
        path,
        story_info.id.as_deref(),
        story_info.criteria,
        story_info.pos,
        &checks_out,
    );
    let errors = file_errors(path, story_errors, problems, given.redactor);
    if !errors.is_empty() {
        return (Err(errors), names);
    }
    let (Some(id), Some(title)) = (header.id, header.title) else {
        return (
            Err(vec![LoadError::file(path, "the suite has no id or title")]),
            names,
        );
    };
    (
        Ok(Suite {
            id,
            title,
            story: story_info.id,
            story_file: story_info.file,
            criteria,
            description: header.description,
            requirements: header.requirements,
            path: path.to_owned(),
            warnings: warnings
                .into_iter()
                .map(|mut w| {
                    w.message = given.redactor.redact(&w.message);
                    w
                })
                .collect(),
            kube_context: header.kube_context,
            variables,
            checks: checks_out,
        }),
        names,
    )
}

/// A problem at a place in the file, collected with the others rather than returned at once.
fn at(pos: Pos, message: String) -> DeError {
    let mut e = DeError::new(message);
    e.pos = Some(pos);
    e
}

/// Bytes to a YAML tree whose top is a map: the one problem that stops reading the file
/// early, since nothing else can be read without it.
fn parse(path: &Path, bytes: &[u8]) -> Result<(String, Rc<Node>), LoadError> {
    let fail = |pos: Pos, message: String| LoadError::at(path, pos.line, pos.column, message);
    let text = yaml::decode(bytes).map_err(|e| fail(e.pos, e.message))?;
    let root = match yaml::parse(&text, yaml::Limits::default()) {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Err(fail(
                Pos { line: 1, column: 1 },
                "expected a suite (a map with `id`, `title` and `checks`), found an empty file"
                    .into(),
            ))
        }
        Err(e) => return Err(fail(e.pos, e.message)),
    };
    if root.entries().is_none() {
        return Err(fail(
            root.pos,
            format!(
                "expected a suite (a map with `id`, `title` and `checks`), found {}",
                root.describe()
            ),
        ));
    }
    Ok((text, root))
}

/// Unknown keys (typos) and missing required ones, at the suite's top level.
fn check_top_level_keys(root: &Node, entries: &[yaml::Entry], problems: &mut Vec<DeError>) {
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
}

/// The `variables:` declarations, read as written: defaults are interpolated only when
/// variables are resolved, so a default may name another variable.
fn read_declarations(root: &Node, problems: &mut Vec<DeError>) -> Vec<Declared> {
    let no_vars = HashMap::new();
    let raw = Scope {
        vars: &no_vars,
        raw: true,
    };
    let mut declared: Vec<Declared> = Vec::new();
    let Some(node) = root.get("variables") else {
        return declared;
    };
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
    declared
}

/// The variables checks will register (`register: NAME` gives `NAME_<key>`): known only at run
/// time, yet references to them are not mistakes.
fn registered_names(check_nodes: &[Rc<Node>]) -> Vec<(String, Pos)> {
    let mut registered: Vec<(String, Pos)> = Vec::new();
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
    registered
}

/// Every reference in every value outside `variables:` (comments are not values), each
/// problem at its column, so a typo in a name is found before anything runs.
fn scan_all_references(
    text: &str,
    entries: &[yaml::Entry],
    vars: &HashMap<String, VarValue>,
    declared: &[Declared],
    names: &mut HashSet<String>,
    problems: &mut Vec<DeError>,
) {
    let index = LineIndex::new(text);
    let mut seen: HashSet<*const Node> = HashSet::new();
    for entry in entries.iter().filter(|e| e.key != "variables") {
        scan_references(
            &entry.value,
            text,
            &index,
            vars,
            declared,
            &mut seen,
            names,
            problems,
        );
    }
}

/// What the suite says about itself, read with variables in place.
struct Header {
    id: Option<String>,
    title: Option<String>,
    description: Option<String>,
    story_info: StoryInfo,
    kube_context: Option<String>,
    /// The suite's requirements and those its story's criteria name.
    requirements: BTreeMap<String, String>,
}

/// The suite's own fields (id, title, story, description, kubernetes, requirements): each
/// read on its own, so one mistake does not hide the others.
fn read_header(
    path: &Path,
    root: &Node,
    scope: &Scope,
    problems: &mut Vec<DeError>,
    story_errors: &mut Vec<LoadError>,
) -> Header {
    let read = |key: &str, problems: &mut Vec<DeError>| -> Option<String> {
        let node = root.get(key)?;
        from_node::<String>(node, scope, Some(key))
            .map_err(|e| problems.push(e))
            .ok()
    };
    let id = read("id", problems);
    if let (Some(id), Some(node)) = (&id, root.get("id")) {
        if !suite::is_valid_id(id) {
            problems.push(at(
                node.pos,
                format!("`id`: expected letters, digits, `-`, `_` and `.` only, found `{id}`"),
            ));
        }
    }
    let title = read("title", problems);
    let story_info = read_story(path, root, scope, problems, story_errors);
    let description = read("description", problems);
    let kube_context = match root.get("kubernetes") {
        Some(node) if !node.is_null() => {
            from_node::<suite::SuiteKubernetes>(node, scope, Some("kubernetes"))
                .map_err(|e| problems.push(e))
                .ok()
                .and_then(|k| k.context)
                // Empty: the kubeconfig's current context.
                .filter(|c| !c.is_empty())
        }
        _ => None,
    };
    let mut requirements: BTreeMap<String, String> = match root.get("requirements") {
        Some(node) if !node.is_null() => from_node(node, scope, Some("requirements"))
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
    Header {
        id,
        title,
        description,
        story_info,
        kube_context,
        requirements,
    }
}

/// Each check of `checks:`, with its node (for positions in later cross-checks); a broken
/// check is a problem, and the others are still read.
fn read_checks(
    root: &Node,
    scope: &Scope,
    problems: &mut Vec<DeError>,
) -> Vec<(Rc<Node>, CheckDecl)> {
    let mut decls = Vec::new();
    let Some(node) = root.get("checks") else {
        return decls;
    };
    match node.items() {
        Some([]) => problems.push(at(
            node.pos,
            "`checks`: expected at least one check, found an empty list".into(),
        )),
        Some(items) => {
            for item in items {
                match suite::check_from_node(item, scope) {
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
    decls
}

/// The file's problems as load errors, the story's first, every message redacted: a secret
/// variable's value may be quoted in one.
fn file_errors(
    path: &Path,
    story_errors: Vec<LoadError>,
    problems: Vec<DeError>,
    redactor: &Redactor,
) -> Vec<LoadError> {
    story_errors
        .into_iter()
        .chain(problems.into_iter().filter(|e| !e.silent).map(|e| {
            let pos = e.pos.unwrap_or_default();
            LoadError::at(path, pos.line, pos.column, redactor.redact(&e.message))
        }))
        .collect()
}

/// The port-forward a check's target is reached through: `data/service postgres-postgresql`.
pub(super) fn port_forward(node: &Node) -> Option<String> {
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

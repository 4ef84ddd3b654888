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

pub(super) fn load_suite_bytes(
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

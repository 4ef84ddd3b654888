//! What needs the whole suite: references between checks (`needs`, registered names), criteria and requirements named.

use super::*;

pub(super) fn is_acceptance_criterion(item: &str) -> bool {
    item.strip_prefix("AC")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit() || c == '.'))
}

/// References between checks: unique ids, `needs` earlier checks, `covers` listed
/// requirements, `register` on kinds that export values.
pub(super) fn cross_check(
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
pub(super) fn first_unavailable(
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

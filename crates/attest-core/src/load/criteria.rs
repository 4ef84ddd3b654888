//! A suite's story: the document it names, its acceptance criteria and FR/NFR IDs, settled with the suite's own.

use super::*;

/// What a suite says about its story: its id, document and criteria.
#[derive(Default)]
pub(super) struct StoryInfo {
    pub(super) id: Option<String>,
    pub(super) file: Option<String>,
    pub(super) criteria: Vec<Criterion>,
    /// FR/NFR IDs the criteria name, with the description the story gives.
    pub(super) named_requirements: Vec<(String, Option<String>)>,
    /// Where the suite names the story (warnings point there).
    pub(super) pos: Pos,
}

/// Reads `story:` (an id, or `{id, file}`: the document is read and its criteria parsed) and
/// `criteria:`, merging the suite's criteria into the document's. Problems in the suite go to
/// `problems`; problems in the story document, at its own line and column, to `errors`.
pub(super) fn read_story(
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
pub(super) fn criterion_order(id: &str) -> (u64, String) {
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
pub(super) fn settle_criteria(
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

//! `${name}` references in a suite's values, each at its column, and the hint for an unset one.

use super::*;

/// Byte offsets of line starts, to turn an offset into line and column.
pub(super) struct LineIndex {
    pub(super) starts: Vec<usize>,
    /// Per line, whether it is all ASCII: its columns are byte offsets, found in constant
    /// time (a line of 20,000 references would otherwise be counted again for each).
    pub(super) ascii: Vec<bool>,
}

impl LineIndex {
    pub(super) fn new(text: &str) -> Self {
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

    pub(super) fn pos(&self, text: &str, offset: usize) -> Pos {
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
pub(super) fn reference_pos(
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
pub(super) fn scan_references(
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
pub(super) const SUGGESTED_PROBLEMS: usize = MAX_PROBLEMS_PER_FILE;

/// Explains how to give a value to a declared variable that has none.
pub(super) fn unset_variable_hint(name: &str, declared: &[Declared]) -> String {
    let spec = declared.iter().find(|d| d.name == name).map(|d| &d.spec);
    format!(
        "variable `{name}` has no value; give it with {}",
        ways_to_set(name, spec)
    )
}

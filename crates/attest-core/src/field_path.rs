//! A path into a JSON object, as suites write it: `status.conditions[type=Ready].status`. Used
//! by Kubernetes field assertions and by comparisons whose operand is another field.

use std::fmt;

use serde_json::Value;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
    /// The first list element whose `key` equals `value`.
    Where(String, String),
}

/// A field path: `status.conditions[type=Ready].status`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    text: String,
    pub(crate) steps: Vec<Step>,
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FieldPath {
    /// A path as written: `status.conditions[type=Ready].status`.
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        let mut steps = Vec::new();
        let mut rest = text.trim();
        let bad = |why: &str| format!("field path `{text}`: {why}");
        if rest.is_empty() {
            return Err(bad("empty"));
        }
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('[') {
                let end = after
                    .find(']')
                    .ok_or_else(|| bad("expected `]` to close the `[`"))?;
                let inner = after[..end].trim();
                if let Some(quoted) = inner.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
                    steps.push(Step::Key(quoted.to_owned()));
                } else if let Ok(index) = inner.parse::<usize>() {
                    steps.push(Step::Index(index));
                } else if let Some((key, value)) = inner.split_once('=') {
                    steps.push(Step::Where(key.trim().to_owned(), value.trim().to_owned()));
                } else {
                    return Err(bad("expected `[0]`, `[key=value]` or `[\"key\"]`"));
                }
                rest = &after[end + 1..];
                rest = rest.strip_prefix('.').unwrap_or(rest);
            } else {
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                let key = &rest[..end];
                if key.is_empty() {
                    return Err(bad("empty segment"));
                }
                steps.push(Step::Key(key.to_owned()));
                rest = &rest[end..];
                rest = rest.strip_prefix('.').unwrap_or(rest);
            }
        }
        Ok(FieldPath {
            text: text.trim().to_owned(),
            steps,
        })
    }

    /// The value at this path, if present.
    pub fn lookup<'a>(&self, object: &'a Value) -> Option<&'a Value> {
        let mut current = object;
        for step in &self.steps {
            current = match step {
                Step::Key(key) => current.get(key)?,
                Step::Index(i) => current.get(*i)?,
                Step::Where(key, value) => current
                    .as_array()?
                    .iter()
                    .find(|item| item.get(key).map(scalar_text).as_deref() == Some(value))?,
            };
            if current.is_null() {
                return None;
            }
        }
        Some(current)
    }
}

/// A value as text for messages and comparisons: strings bare, everything else as JSON.
pub fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

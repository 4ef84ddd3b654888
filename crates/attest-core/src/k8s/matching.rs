//! Judging Kubernetes objects: partial objects (`expect:`) and field assertions (`fields:`).
//!
//! Partial objects: fields not written are ignored; maps match key by key; a `null` asserts
//! the field is absent; a list matches when every element written matches a different
//! element of the object's list, in any order (so `containers: [{name: paperless}]` finds
//! that container among others); scalars compare equal as quantities when both sides are
//! quantities (`8Gi` = `8589934592`), as numbers when both are numbers (`5432` = `"5432"`),
//! else as text.
//!
//! Field assertions: `PATH OP VALUE` with `==`, `!=`, `<`, `<=`, `>`, `>=`, `=~` (regex), or
//! `PATH exists` / `PATH absent`; `age(PATH) < 26h` compares the age of a timestamp. Paths
//! are dotted (`status.phase`), with `[0]` indexes, `[type=Ready]` list selectors and
//! `["app.kubernetes.io/name"]` for keys containing dots.

use std::fmt;
use std::time::{Duration, SystemTime};

use regex::Regex;
use serde_json::Value;

use super::quantity;
use crate::outcome::Mismatch;

/// One step of a path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
    /// The first list element whose `key` equals `value`.
    Where(String, String),
}

/// A field path: `status.conditions[type=Ready].status`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldPath {
    text: String,
    steps: Vec<Step>,
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FieldPath {
    pub fn parse(text: &str) -> Result<FieldPath, String> {
        let mut steps = Vec::new();
        let mut rest = text.trim();
        let bad = |why: &str| format!("field path `{text}`: {why}");
        if rest.is_empty() {
            return Err(bad("empty"));
        }
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').ok_or_else(|| bad("`[` without `]`"))?;
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

/// Whether two scalars are equal the way Kubernetes users mean it.
pub fn scalars_equal(expected: &Value, found: &Value) -> bool {
    let (e, f) = (scalar_text(expected), scalar_text(found));
    if e == f {
        return true;
    }
    match (quantity::parse(&e), quantity::parse(&f)) {
        (Some(a), Some(b)) => (a - b).abs() <= f64::EPSILON * a.abs().max(b.abs()).max(1.0),
        _ => false,
    }
}

/// Compares a partial object with an object; appends one mismatch per differing field.
pub fn partial_match(expected: &Value, found: Option<&Value>, path: &str, out: &mut Vec<Mismatch>) {
    let shown = |v: Option<&Value>| match v {
        None | Some(Value::Null) => "nothing (absent)".to_owned(),
        Some(v) => short(v),
    };
    let here = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else if key.starts_with('[') {
            format!("{path}{key}")
        } else {
            format!("{path}.{key}")
        }
    };
    match (expected, found) {
        (Value::Null, None | Some(Value::Null)) => {}
        (Value::Null, Some(found)) => out.push(Mismatch {
            path: path.to_owned(),
            expected: "absent".into(),
            found: short(found),
        }),
        (Value::Object(fields), Some(Value::Object(object))) => {
            for (key, value) in fields {
                partial_match(value, object.get(key), &here(key), out);
            }
        }
        (Value::Array(items), Some(Value::Array(list))) => {
            let mut used = vec![false; list.len()];
            for (i, item) in items.iter().enumerate() {
                let matched = list.iter().enumerate().position(|(j, candidate)| {
                    if used[j] {
                        return false;
                    }
                    let mut probe = Vec::new();
                    partial_match(item, Some(candidate), "", &mut probe);
                    probe.is_empty()
                });
                match matched {
                    Some(j) => used[j] = true,
                    None => out.push(Mismatch {
                        path: here(&format!("[{i}]")),
                        expected: format!("an element matching {}", short(item)),
                        found: format!("none among {} element(s)", list.len()),
                    }),
                }
            }
        }
        (Value::Object(_) | Value::Array(_), found) => out.push(Mismatch {
            path: path.to_owned(),
            expected: short(expected),
            found: shown(found),
        }),
        (scalar, Some(found)) if !found.is_object() && !found.is_array() => {
            if !scalars_equal(scalar, found) {
                out.push(Mismatch {
                    path: path.to_owned(),
                    expected: scalar_text(scalar),
                    found: scalar_text(found),
                });
            }
        }
        (scalar, found) => out.push(Mismatch {
            path: path.to_owned(),
            expected: scalar_text(scalar),
            found: shown(found),
        }),
    }
}

/// JSON, cut for one line of a report.
fn short(value: &Value) -> String {
    let text = scalar_text(value);
    if text.chars().count() > 80 {
        format!("{}…", text.chars().take(79).collect::<String>())
    } else {
        text
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Matches,
}

impl Op {
    fn symbol(self) -> &'static str {
        match self {
            Op::Eq => "==",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Matches => "=~",
        }
    }
    fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Eq => ordering == Equal,
            Op::Ne => ordering != Equal,
            Op::Lt => ordering == Less,
            Op::Le => ordering != Greater,
            Op::Gt => ordering == Greater,
            Op::Ge => ordering != Less,
            Op::Matches => false,
        }
    }
}

/// One field assertion, parsed at load.
#[derive(Debug, Clone)]
pub enum FieldAssertion {
    Exists(FieldPath),
    Absent(FieldPath),
    Compare {
        path: FieldPath,
        op: Op,
        value: String,
        regex: Option<Regex>,
    },
    /// `age(PATH) OP DURATION`: how long ago a timestamp was.
    Age {
        path: FieldPath,
        op: Op,
        limit: Duration,
    },
}

impl fmt::Display for FieldAssertion {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            FieldAssertion::Exists(path) => write!(f, "{path} exists"),
            FieldAssertion::Absent(path) => write!(f, "{path} absent"),
            FieldAssertion::Compare {
                path, op, value, ..
            } => {
                write!(f, "{path} {} {value}", op.symbol())
            }
            FieldAssertion::Age { path, op, limit } => write!(
                f,
                "age({path}) {} {}",
                op.symbol(),
                humantime::format_duration(*limit)
            ),
        }
    }
}

impl FieldAssertion {
    pub fn parse(text: &str) -> Result<FieldAssertion, String> {
        let text = text.trim();
        if let Some(path) = text.strip_suffix(" exists") {
            return Ok(FieldAssertion::Exists(FieldPath::parse(path)?));
        }
        if let Some(path) = text.strip_suffix(" absent") {
            return Ok(FieldAssertion::Absent(FieldPath::parse(path)?));
        }
        let ops = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("=~", Op::Matches),
            ("<=", Op::Le),
            (">=", Op::Ge),
            ("<", Op::Lt),
            (">", Op::Gt),
        ];
        let (at, symbol, op) = ops
            .iter()
            .filter_map(|(symbol, op)| text.find(&format!(" {symbol} ")).map(|at| (at, *symbol, *op)))
            .min_by_key(|(at, _, _)| *at)
            .ok_or_else(|| {
                format!(
                    "`{text}`: expected `PATH OP VALUE` with one of ==, !=, <, <=, >, >=, =~ (spaces around it), `PATH exists`, `PATH absent` or `age(PATH) < 26h`"
                )
            })?;
        let left = text[..at].trim();
        let value = text[at + symbol.len() + 2..]
            .trim()
            .trim_matches('"')
            .to_owned();
        if let Some(inner) = left.strip_prefix("age(").and_then(|s| s.strip_suffix(')')) {
            let limit = crate::suite::parse_duration(&value)?;
            if op == Op::Matches {
                return Err(format!(
                    "`{text}`: age() compares with <, <=, >, >=, == or !="
                ));
            }
            return Ok(FieldAssertion::Age {
                path: FieldPath::parse(inner)?,
                op,
                limit,
            });
        }
        let regex = match op {
            Op::Matches => {
                Some(Regex::new(&value).map_err(|e| format!("`{text}`: invalid regex: {e}"))?)
            }
            _ => None,
        };
        Ok(FieldAssertion::Compare {
            path: FieldPath::parse(left)?,
            op,
            value,
            regex,
        })
    }

    /// Judges one object; `None` when it holds, else the mismatch.
    pub fn judge(&self, object: &Value, now: SystemTime) -> Option<Mismatch> {
        let miss = |path: &FieldPath, expected: String, found: String| {
            Some(Mismatch {
                path: path.to_string(),
                expected,
                found,
            })
        };
        match self {
            FieldAssertion::Exists(path) => match path.lookup(object) {
                Some(_) => None,
                None => miss(path, "present".into(), "nothing (absent)".into()),
            },
            FieldAssertion::Absent(path) => match path.lookup(object) {
                None => None,
                Some(found) => miss(path, "absent".into(), short(found)),
            },
            FieldAssertion::Compare {
                path,
                op,
                value,
                regex,
            } => {
                let expected = format!("{} {value}", op.symbol());
                let Some(found) = path.lookup(object) else {
                    return miss(path, expected, "nothing (absent)".into());
                };
                let text = scalar_text(found);
                let holds = match (op, regex) {
                    (Op::Matches, Some(regex)) => regex.is_match(&text),
                    (Op::Eq, _) => scalars_equal(&Value::String(value.clone()), found),
                    (Op::Ne, _) => !scalars_equal(&Value::String(value.clone()), found),
                    (op, _) => match (quantity::parse(&text), quantity::parse(value)) {
                        (Some(a), Some(b)) => a.partial_cmp(&b).is_some_and(|o| op.holds(o)),
                        _ => op.holds(text.as_str().cmp(value.as_str())),
                    },
                };
                if holds {
                    None
                } else {
                    miss(path, expected, short(found))
                }
            }
            FieldAssertion::Age { path, op, limit } => {
                let expected =
                    format!("age {} {}", op.symbol(), humantime::format_duration(*limit));
                let Some(found) = path.lookup(object) else {
                    return miss(path, expected, "nothing (absent)".into());
                };
                let text = scalar_text(found);
                let Ok(at) = humantime::parse_rfc3339_weak(&text) else {
                    return miss(path, expected, format!("`{text}`, not a timestamp"));
                };
                let age = now.duration_since(at).unwrap_or_default();
                let age_secs = Duration::from_secs(age.as_secs());
                if op.holds(age_secs.cmp(limit)) {
                    None
                } else {
                    miss(
                        path,
                        expected,
                        format!("{text} (age {})", humantime::format_duration(age_secs)),
                    )
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pvc() -> Value {
        json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data-postgres-postgresql-0", "namespace": "data",
                         "labels": {"app.kubernetes.io/name": "postgresql"}},
            "spec": {"storageClassName": "nfs-client", "accessModes": ["ReadWriteOnce"]},
            "status": {"phase": "Pending", "capacity": {"storage": "8Gi"},
                       "conditions": [{"type": "Resizing", "status": "False"}, {"type": "Ready", "status": "True"}]}
        })
    }

    #[test]
    fn partial_objects_ignore_unwritten_fields_and_name_each_difference() {
        let mut out = Vec::new();
        let expected = json!({"spec": {"storageClassName": "nfs-client", "accessModes": ["ReadWriteOnce"]},
                              "status": {"phase": "Bound", "capacity": {"storage": "8589934592"}}});
        partial_match(&expected, Some(&pvc()), "", &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].to_string(),
            "* status.phase: expected Bound, found Pending"
        );
    }

    #[test]
    fn null_asserts_absence_and_lists_match_in_any_order() {
        let mut out = Vec::new();
        let expected =
            json!({"status": {"conditions": [{"type": "Ready", "status": "True"}], "phase": null}});
        partial_match(&expected, Some(&pvc()), "", &mut out);
        assert_eq!(out[0].path, "status.phase");
        assert_eq!(out[0].expected, "absent");
        assert_eq!(out.len(), 1);
        let mut out = Vec::new();
        partial_match(
            &json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            Some(&pvc()),
            "",
            &mut out,
        );
        assert_eq!(out[0].path, "status.conditions[0]");
    }

    #[test]
    fn field_assertions_compare_quantities_selectors_and_ages() {
        let now = SystemTime::now();
        let object = pvc();
        let holds = |text: &str| FieldAssertion::parse(text).unwrap().judge(&object, now);
        assert!(holds("status.capacity.storage == 8589934592").is_none());
        assert!(holds("status.capacity.storage >= 8Gi").is_none());
        assert!(holds("status.capacity.storage < 1Gi").is_some());
        assert!(holds("status.conditions[type=Ready].status == True").is_none());
        assert!(holds("metadata.labels[\"app.kubernetes.io/name\"] == postgresql").is_none());
        assert!(holds("spec.accessModes[0] =~ ^ReadWrite").is_none());
        assert!(holds("status.phase absent").is_some());
        let miss = holds("status.phase == Bound").unwrap();
        assert_eq!(
            miss.to_string(),
            "* status.phase: expected == Bound, found Pending"
        );

        let two_hours_ago =
            humantime::format_rfc3339_seconds(now - Duration::from_secs(7200)).to_string();
        let backup = json!({"status": {"lastSuccessfulTime": two_hours_ago}});
        let age = FieldAssertion::parse("age(status.lastSuccessfulTime) < 26h").unwrap();
        assert!(age.judge(&backup, now).is_none());
        let age = FieldAssertion::parse("age(status.lastSuccessfulTime) < 1h").unwrap();
        assert!(age.judge(&backup, now).unwrap().found.contains("age 2h"));
        assert!(FieldAssertion::parse("status.phase is Bound").is_err());
    }
}

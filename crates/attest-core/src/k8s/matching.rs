//! Judging Kubernetes objects: partial objects (`expect:`) and field assertions (`fields:`).
//!
//! Partial objects: fields not written are ignored; maps match key by key; a `null` asserts
//! the field is absent; a list matches when every element written matches a different
//! element of the object's list, in any order (so `containers: [{name: paperless}]` finds
//! that container among others); scalars compare equal as quantities when both sides are
//! quantities (`8Gi` = `8589934592`), as numbers when both are numbers (`5432` = `"5432"`),
//! else as text.
//!
//! Field assertions: `PATH OP VALUE` with `==`, `!=`, `<`, `<=`, `>`, `>=`, `=~` (a regular
//! expression in the grammar of [`crate::matchers::parse_regex`]: `=~ /worker/`), or
//! `PATH exists` / `PATH absent`; `age(PATH) < 26h` compares the age of a timestamp. Paths
//! are dotted (`status.phase`), with `[0]` indexes, `[type=Ready]` list selectors and
//! `["app.kubernetes.io/name"]` for keys containing dots. They are parsed when the suite
//! loads.
//!
//! Evidence: every value shown (found, expected, an assertion as written) goes through
//! [`Disclosure`], which never shows a Secret's values, only their keys and sizes.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use schemars::JsonSchema;
use serde::{de, Deserialize, Deserializer};
use serde_json::Value;

use super::quantity;
use crate::matchers::{Comparison, Op, Operand, Operands, OPERATORS};
use crate::outcome::Mismatch;

use crate::field_path::Step;
pub use crate::field_path::{scalar_text, FieldPath};

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

/// The annotation `kubectl apply` leaves on an object: a copy of it as applied, a Secret's
/// values included.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// What evidence may show of an object's values: all of them, except a Secret's. Of a Secret,
/// the values under `data` and `stringData` (and the `last-applied-configuration` annotation,
/// which copies them) show as their size only (`<secret value, 24 bytes>`); keys stay visible.
/// This is the one place values become evidence text, for found and expected values alike;
/// comparisons use the real values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Disclosure {
    secret: bool,
}

impl Disclosure {
    /// How much of `object`'s values may be shown.
    pub fn of(object: &Value) -> Disclosure {
        Disclosure {
            secret: object.get("kind").and_then(Value::as_str) == Some("Secret"),
        }
    }

    /// For text about several objects at once: concealing when any of them is a Secret.
    pub fn of_all<'a>(objects: impl IntoIterator<Item = &'a Value>) -> Disclosure {
        Disclosure {
            secret: objects.into_iter().any(|o| Disclosure::of(o).secret),
        }
    }

    /// `value`, found or expected at `at` in the object, as one line of evidence.
    fn show(self, at: &[Step], value: &Value) -> String {
        short(&self.masked(at, value))
    }

    /// Text written in the suite for the field at `at` (an operand), as evidence.
    fn show_text(self, at: &[Step], text: &str) -> String {
        self.show(at, &Value::String(text.to_owned()))
    }

    /// Whether the value at `at` is a secret value.
    fn conceals(self, at: &[Step]) -> bool {
        let key = |step: &Step, name: &str| matches!(step, Step::Key(k) if k == name);
        self.secret
            && match at {
                [top, ..] if key(top, "data") || key(top, "stringData") => true,
                [metadata, annotations, annotation, ..] => {
                    key(metadata, "metadata")
                        && key(annotations, "annotations")
                        && key(annotation, LAST_APPLIED)
                }
                _ => false,
            }
    }

    /// `value` with every secret value in it replaced by its size; maps keep their keys.
    fn masked(self, at: &[Step], value: &Value) -> Value {
        if !self.secret {
            return value.clone();
        }
        match value {
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(key, item)| (key.clone(), self.masked(&child(at, key), item)))
                    .collect(),
            ),
            _ if self.conceals(at) => Value::String(secret_size(at, value)),
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| self.masked(&index(at, i), item))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

/// `<secret value, 24 bytes>`: the size of a secret value, in bytes of the secret itself (a
/// `data` value decoded from base64, as Kubernetes stores it).
fn secret_size(at: &[Step], value: &Value) -> String {
    let text = scalar_text(value);
    let in_data = matches!(at.first(), Some(Step::Key(k)) if k == "data");
    let bytes = in_data
        .then(|| {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()
        })
        .flatten()
        .map_or(text.len(), |decoded| decoded.len());
    format!("<secret value, {bytes} bytes>")
}

fn child(at: &[Step], key: &str) -> Vec<Step> {
    let mut path = at.to_vec();
    path.push(Step::Key(key.to_owned()));
    path
}

fn index(at: &[Step], i: usize) -> Vec<Step> {
    let mut path = at.to_vec();
    path.push(Step::Index(i));
    path
}

/// A location as a mismatch names it: `spec.containers[0].image`.
fn path_text(at: &[Step]) -> String {
    let mut text = String::new();
    for step in at {
        match step {
            Step::Key(key) if text.is_empty() => text.push_str(key),
            Step::Key(key) => {
                text.push('.');
                text.push_str(key);
            }
            Step::Index(i) => text.push_str(&format!("[{i}]")),
            Step::Where(key, value) => text.push_str(&format!("[{key}={value}]")),
        }
    }
    text
}

/// Compares a partial object with an object; appends one mismatch per differing field.
pub fn partial_match(expected: &Value, object: &Value, out: &mut Vec<Mismatch>) {
    compare(expected, Some(object), &[], Disclosure::of(object), out);
}

fn compare(
    expected: &Value,
    found: Option<&Value>,
    at: &[Step],
    shown: Disclosure,
    out: &mut Vec<Mismatch>,
) {
    let mut differ = |expected: String, found: String| {
        out.push(Mismatch {
            path: path_text(at),
            expected,
            found,
            subject: None,
        })
    };
    let found_text = |found: Option<&Value>| match found {
        None | Some(Value::Null) => "nothing (absent)".to_owned(),
        Some(v) => shown.show(at, v),
    };
    match (expected, found) {
        (Value::Null, None | Some(Value::Null)) => {}
        (Value::Null, Some(found)) => differ("absent".into(), shown.show(at, found)),
        (Value::Object(fields), Some(Value::Object(object))) => {
            for (key, value) in fields {
                compare(value, object.get(key), &child(at, key), shown, out);
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
                    compare(item, Some(candidate), &index(at, j), shown, &mut probe);
                    probe.is_empty()
                });
                match matched {
                    Some(j) => used[j] = true,
                    None => {
                        let here = index(at, i);
                        out.push(Mismatch {
                            path: path_text(&here),
                            expected: format!("an element matching {}", shown.show(&here, item)),
                            found: format!("none among {} element(s)", list.len()),
                            subject: None,
                        });
                    }
                }
            }
        }
        (Value::Object(_) | Value::Array(_), found) => {
            differ(shown.show(at, expected), found_text(found))
        }
        (scalar, Some(found)) if !found.is_object() && !found.is_array() => {
            if !scalars_equal(scalar, found) {
                differ(shown.show(at, scalar), shown.show(at, found));
            }
        }
        (scalar, found) => differ(shown.show(at, scalar), found_text(found)),
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

/// What a field assertion says, as the grammar's error messages list it.
const ASSERTION_FORMS: &str = "`PATH OP VALUE` with one of ==, !=, <, <=, >, >=, =~ (spaces around it), `PATH exists`, `PATH absent` or `age(PATH) < 26h`";

/// One field assertion, parsed when the suite loads. Shown only through
/// [`FieldAssertion::describe`], which conceals a Secret's values.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(with = "String")]
pub enum FieldAssertion {
    Exists(FieldPath),
    Absent(FieldPath),
    /// `PATH OP OPERAND`, the operand read by the one grammar of comparisons
    /// ([`Comparison`]): a value, `/re/`, `[a, b]`, or another field of the object.
    Compare {
        path: FieldPath,
        comparison: Comparison,
    },
    /// `age(PATH) OP DURATION`: how long ago a timestamp was.
    Age {
        path: FieldPath,
        op: Op,
        /// The operator as written.
        symbol: &'static str,
        limit: Duration,
        /// The limit as written (`26h`), for messages.
        written: String,
    },
}

impl<'de> Deserialize<'de> for FieldAssertion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        FieldAssertion::parse(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// How many `[` are open at the end of `text` (a `]` inside quotes does not close one).
fn bracket_depth(text: &str) -> usize {
    let (mut depth, mut quoted) = (0usize, false);
    for c in text.chars() {
        match c {
            '"' if depth > 0 => quoted = !quoted,
            '[' if !quoted => depth += 1,
            ']' if !quoted => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    depth
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
        // The first operator with spaces around it, outside the path's brackets
        // (`labels["a in b"]`), splits the path from the comparison.
        // A bracket never closed: the first operator, so the path's own error names it.
        let first = |outside: bool| {
            OPERATORS
                .iter()
                .filter_map(|(symbol, _)| {
                    let spaced = format!(" {symbol} ");
                    text.match_indices(&spaced)
                        .map(|(at, _)| at)
                        .find(|at| !outside || bracket_depth(&text[..*at]) == 0)
                        .map(|at| (at, *symbol))
                })
                .min_by_key(|(at, symbol)| (*at, std::cmp::Reverse(symbol.len())))
        };
        let found = first(true).or_else(|| first(false));
        let Some((at, _)) = found else {
            // `status.phase = Bound`: SQL's and YAML's habit, not an operator here.
            let single_equals = text.contains(" = ");
            return Err(format!(
                "expected {ASSERTION_FORMS}, found `{text}`{}",
                if single_equals {
                    " (`=` alone is not an operator: write `==`)"
                } else {
                    ""
                }
            ));
        };
        let left = text[..at].trim();
        let comparison = Comparison::parse(&text[at..], Operands::ValuesOrFields, text)
            .map_err(|e| e.to_string())?;
        if let Some(inner) = left.strip_prefix("age(").and_then(|s| s.strip_suffix(')')) {
            if matches!(comparison.op, Op::Matches | Op::In) {
                return Err(format!(
                    "`{text}`: age() compares with <, <=, >, >=, == or !="
                ));
            }
            let written = comparison.written;
            let limit =
                crate::duration::parse_duration(&written).map_err(|e| format!("`{text}`: {e}"))?;
            return Ok(FieldAssertion::Age {
                path: FieldPath::parse(inner)?,
                op: comparison.op,
                symbol: comparison.symbol,
                limit,
                written,
            });
        }
        Ok(FieldAssertion::Compare {
            path: FieldPath::parse(left)?,
            comparison,
        })
    }

    /// The assertion as written, with a Secret's values concealed.
    pub fn describe(&self, shown: Disclosure) -> String {
        match self {
            FieldAssertion::Exists(path) => format!("{path} exists"),
            FieldAssertion::Absent(path) => format!("{path} absent"),
            FieldAssertion::Compare { path, comparison } => format!(
                "{path} {} {}",
                comparison.symbol,
                shown.show_text(&path.steps, &comparison.written)
            ),
            FieldAssertion::Age {
                path,
                symbol,
                written,
                ..
            } => format!("age({path}) {symbol} {written}"),
        }
    }

    /// Judges one object: `Ok` with what was measured for the evidence (an age), or the
    /// mismatch.
    pub fn judge(&self, object: &Value, now: SystemTime) -> Result<Option<String>, Mismatch> {
        let shown = Disclosure::of(object);
        let miss = |path: &FieldPath, expected: String, found: String| {
            Err(Mismatch {
                path: path.to_string(),
                expected,
                found,
                subject: None,
            })
        };
        match self {
            FieldAssertion::Exists(path) => match path.lookup(object) {
                Some(_) => Ok(None),
                None => miss(path, "present".into(), "nothing (absent)".into()),
            },
            FieldAssertion::Absent(path) => match path.lookup(object) {
                None => Ok(None),
                Some(found) => miss(path, "absent".into(), shown.show(&path.steps, found)),
            },
            FieldAssertion::Compare { path, comparison } => {
                let symbol = comparison.symbol;
                // The operand: as written, or the other field's value (shown next to its path).
                let (operand, expected) = match &comparison.operand {
                    Operand::Field(other) => match other.lookup(object) {
                        Some(operand) => (
                            operand.clone(),
                            format!(
                                "{symbol} {} ({})",
                                comparison.written,
                                shown.show(&other.steps, operand)
                            ),
                        ),
                        None => {
                            let expected = format!("{symbol} {} (absent)", comparison.written);
                            let found = format!("nothing to compare with: {other} is absent");
                            return miss(path, expected, found);
                        }
                    },
                    _ => (
                        Value::String(comparison.written.clone()),
                        format!(
                            "{symbol} {}",
                            shown.show_text(&path.steps, &comparison.written)
                        ),
                    ),
                };
                let Some(found) = path.lookup(object) else {
                    return miss(path, expected, "nothing (absent)".into());
                };
                if field_holds(comparison, &operand, found) {
                    Ok(None)
                } else {
                    miss(path, expected, shown.show(&path.steps, found))
                }
            }
            FieldAssertion::Age {
                path,
                op,
                symbol,
                limit,
                written,
            } => {
                let expected = format!("age {symbol} {written}");
                let Some(found) = path.lookup(object) else {
                    return miss(path, expected, "nothing (absent)".into());
                };
                if shown.conceals(&path.steps) {
                    // Not even how old a secret timestamp is.
                    return miss(path, expected, shown.show(&path.steps, found));
                }
                let text = scalar_text(found);
                let Ok(at) = humantime::parse_rfc3339_weak(&text) else {
                    return miss(path, expected, format!("`{text}`, not a timestamp"));
                };
                let age = Duration::from_secs(now.duration_since(at).unwrap_or_default().as_secs());
                let holds = op.holds(age.cmp(limit));
                let age = humantime::format_duration(age);
                if holds {
                    Ok(Some(format!("age {age}")))
                } else {
                    miss(path, expected, format!("{text} (age {age})"))
                }
            }
        }
    }
}

/// Whether a field's value meets a comparison whose operand is `operand` (the value as
/// written, or the other field's): equal as quantities, numbers or text; ordered as
/// quantities when both are, else as text; `~` by the expression; `in` equal to one choice.
fn field_holds(comparison: &Comparison, operand: &Value, found: &Value) -> bool {
    let text = scalar_text(found);
    match (&comparison.operand, comparison.op) {
        (Operand::Pattern(re), _) => re.is_match(&text),
        (Operand::OneOf(choices), _) => choices
            .iter()
            .any(|(choice, _)| scalars_equal(&Value::String(choice.clone()), found)),
        (_, Op::Eq) => scalars_equal(operand, found),
        (_, Op::Ne) => !scalars_equal(operand, found),
        (_, op) => {
            let operand = scalar_text(operand);
            match (quantity::parse(&text), quantity::parse(&operand)) {
                (Some(a), Some(b)) => a.partial_cmp(&b).is_some_and(|o| op.holds(o)),
                _ => op.holds(text.as_str().cmp(operand.as_str())),
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
        partial_match(&expected, &pvc(), &mut out);
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
        partial_match(&expected, &pvc(), &mut out);
        assert_eq!(out[0].path, "status.phase");
        assert_eq!(out[0].expected, "absent");
        assert_eq!(out.len(), 1);
        let mut out = Vec::new();
        partial_match(
            &json!({"status": {"conditions": [{"type": "Ready", "status": "False"}]}}),
            &pvc(),
            &mut out,
        );
        assert_eq!(out[0].path, "status.conditions[0]");
    }

    #[test]
    fn an_operand_can_be_another_field_of_the_same_object() {
        let now = SystemTime::now();
        let rolling = json!({
            "kind": "StatefulSet",
            "metadata": {"generation": 4},
            "spec": {"replicas": 3},
            "status": {"observedGeneration": 4, "updatedReplicas": 2, "readyReplicas": 3},
        });
        let judge = |text: &str| FieldAssertion::parse(text).unwrap().judge(&rolling, now);
        assert!(judge("status.observedGeneration == .metadata.generation").is_ok());
        assert!(judge("status.readyReplicas == .spec.replicas").is_ok());
        assert!(judge("status.updatedReplicas < .spec.replicas").is_ok());
        let mismatch = judge("status.updatedReplicas == .spec.replicas").unwrap_err();
        assert_eq!(mismatch.expected, "== .spec.replicas (3)");
        assert_eq!(mismatch.found, "2");
        let mismatch = judge("status.readyReplicas == .spec.missing").unwrap_err();
        assert_eq!(mismatch.expected, "== .spec.missing (absent)");
        // Quoted, it is text; after =~, a regex; a bad path is a load error.
        assert!(judge(r#"status.readyReplicas != ".spec.replicas""#).is_ok());
        assert!(judge("status.readyReplicas =~ .").is_ok());
        assert!(FieldAssertion::parse("status.readyReplicas == .spec[").is_err());
    }

    #[test]
    fn a_bare_path_under_metadata_spec_or_status_is_a_field_and_quotes_make_text() {
        let now = SystemTime::now();
        let rolling = json!({
            "kind": "Deployment",
            "metadata": {"generation": 4},
            "spec": {"replicas": 3},
            "status": {"observedGeneration": 4, "updatedReplicas": 3, "readyReplicas": 2},
        });
        let judge = |text: &str| FieldAssertion::parse(text).unwrap().judge(&rolling, now);
        assert!(judge("status.observedGeneration == metadata.generation").is_ok());
        assert!(judge("status.updatedReplicas == spec.replicas").is_ok());
        assert!(judge("status.readyReplicas < spec.replicas").is_ok());
        let miss = judge("status.readyReplicas == spec.replicas").unwrap_err();
        assert_eq!(
            miss.to_string(),
            "* status.readyReplicas: expected == spec.replicas (3), found 2"
        );
        let miss = judge("status.readyReplicas >= spec.replicaz").unwrap_err();
        assert_eq!(miss.expected, ">= spec.replicaz (absent)");
        assert_eq!(
            miss.found,
            "nothing to compare with: spec.replicaz is absent"
        );
        // Quoted, the same words are text.
        assert!(judge("status.readyReplicas != 'spec.replicas'").is_ok());
        assert!(judge(r#"status.readyReplicas == "spec.replicas""#).is_err());
        // Other roots stay text unless written with a leading dot.
        let config = json!({"kind": "ConfigMap", "data": {"host": "db.data", "copy": "db.data"}});
        let judge = |text: &str| FieldAssertion::parse(text).unwrap().judge(&config, now);
        assert!(judge("data.host == db.data").is_ok());
        assert!(judge("data.host == .data.copy").is_ok());
    }

    #[test]
    fn an_operator_word_inside_a_quoted_key_is_part_of_the_path() {
        let now = SystemTime::now();
        let object = json!({"metadata": {"labels": {"tier in use": "db", "a ~ b": "x"}}});
        let judge = |text: &str| FieldAssertion::parse(text).unwrap().judge(&object, now);
        assert!(judge(r#"metadata.labels["tier in use"] == db"#).is_ok());
        assert!(judge(r#"metadata.labels["a ~ b"] in [x, y]"#).is_ok());
        let miss = judge(r#"metadata.labels["tier in use"] == web"#).unwrap_err();
        assert_eq!(miss.path, r#"metadata.labels["tier in use"]"#);
    }

    #[test]
    fn kubernetes_fields_and_sql_values_share_one_operator_set() {
        let now = SystemTime::now();
        let object = pvc();
        let judge = |text: &str| FieldAssertion::parse(text).unwrap().judge(&object, now);
        // `~` and `=~` are one operator; `in` takes a list, read as quantities too.
        assert!(judge("status.phase ~ /^Pend/").is_ok());
        assert!(judge("status.phase =~ /^Pend/").is_ok());
        assert!(judge("status.phase in [Bound, Pending]").is_ok());
        assert!(judge("status.capacity.storage in [8589934592]").is_ok());
        let miss = judge("status.phase in [Bound, Lost]").unwrap_err();
        assert_eq!(
            miss.to_string(),
            "* status.phase: expected in [Bound, Lost], found Pending"
        );
        // The regex is what is between the slashes, not the slashes themselves.
        let slashes = json!({"spec": {"path": "/re/"}, "status": {"phase": "re"}});
        let re = FieldAssertion::parse("status.phase =~ /^re$/").unwrap();
        assert!(re.judge(&slashes, now).is_ok());
        let re = FieldAssertion::parse("spec.path =~ /^re$/").unwrap();
        assert!(re.judge(&slashes, now).is_err());
        // The same parser's errors, with the assertion as written.
        let err = FieldAssertion::parse("status.phase in Bound").unwrap_err();
        assert_eq!(
            err,
            "expected a list such as `in [a, b]`, found `status.phase in Bound`"
        );
        let err = FieldAssertion::parse("status.phase == spec.[").unwrap_err();
        assert!(
            err.starts_with("`status.phase == spec.[`: field path `spec.[`"),
            "{err}"
        );
        // In SQL, a dotted word is text, never a field.
        let sql: Comparison = "== spec.replicas".parse().unwrap();
        assert!(sql.holds(Some("spec.replicas")).unwrap());
        assert!("=~ /^a/"
            .parse::<Comparison>()
            .unwrap()
            .holds(Some("ab"))
            .unwrap());
    }

    #[test]
    fn field_assertions_compare_quantities_selectors_and_ages() {
        let now = SystemTime::now();
        let object = pvc();
        let holds = |text: &str| FieldAssertion::parse(text).unwrap().judge(&object, now);
        assert!(holds("status.capacity.storage == 8589934592").is_ok());
        assert!(holds("status.capacity.storage >= 8Gi").is_ok());
        assert!(holds("status.capacity.storage < 1Gi").is_err());
        assert!(holds("status.conditions[type=Ready].status == True").is_ok());
        assert!(holds("metadata.labels[\"app.kubernetes.io/name\"] == postgresql").is_ok());
        assert!(holds("spec.accessModes[0] =~ ^ReadWrite").is_ok());
        assert!(holds("status.phase absent").is_err());
        let miss = holds("status.phase == Bound").unwrap_err();
        assert_eq!(
            miss.to_string(),
            "* status.phase: expected == Bound, found Pending"
        );

        let two_hours_ago =
            humantime::format_rfc3339_seconds(now - Duration::from_secs(7200)).to_string();
        let backup = json!({"status": {"lastSuccessfulTime": two_hours_ago}});
        let age = FieldAssertion::parse("age(status.lastSuccessfulTime) < 26h").unwrap();
        assert!(age.judge(&backup, now).is_ok());
        let age = FieldAssertion::parse("age(status.lastSuccessfulTime) < 1h").unwrap();
        assert!(age
            .judge(&backup, now)
            .unwrap_err()
            .found
            .contains("age 2h"));
        assert!(FieldAssertion::parse("status.phase is Bound").is_err());
    }

    #[test]
    fn passing_ages_show_the_measured_age_and_the_limit_as_written() {
        let now = SystemTime::now();
        let two_hours_ago =
            humantime::format_rfc3339_seconds(now - Duration::from_secs(7200)).to_string();
        let backup = json!({"status": {"lastSuccessfulTime": two_hours_ago}});
        let age = FieldAssertion::parse("age(status.lastSuccessfulTime) < 26h").unwrap();
        assert_eq!(age.judge(&backup, now), Ok(Some("age 2h".to_owned())));
        assert_eq!(
            age.describe(Disclosure::default()),
            "age(status.lastSuccessfulTime) < 26h"
        );
        let miss = FieldAssertion::parse("age(status.lastSuccessfulTime) <= 90m")
            .unwrap()
            .judge(&backup, now)
            .unwrap_err();
        assert_eq!(miss.expected, "age <= 90m");
    }

    #[test]
    fn regexes_between_slashes_match_what_is_between_them() {
        let pod = json!({"spec": {"nodeName": "k3s-worker-02",
            "containers": [{"image": "registry-1.docker.io/bitnami/postgresql:latest"}]}});
        let now = SystemTime::now();
        let judge = |text: &str| FieldAssertion::parse(text).unwrap().judge(&pod, now);
        assert!(judge("spec.nodeName =~ /worker/").is_ok());
        assert!(judge("spec.containers[0].image =~ /:latest$/").is_ok());
        assert!(judge("spec.nodeName =~ /(?i)WORKER-0[1-3]$/").is_ok());
        // Without slashes the text is the expression, as before.
        assert!(judge("spec.nodeName =~ ^k3s-").is_ok());
        let miss = judge("spec.nodeName =~ /^worker/").unwrap_err();
        assert_eq!(
            miss.to_string(),
            "* spec.nodeName: expected =~ /^worker/, found k3s-worker-02"
        );
        let flags = FieldAssertion::parse("spec.nodeName =~ /worker/i").unwrap_err();
        assert!(flags.contains("flags inside"), "{flags}");
        let bad = FieldAssertion::parse("spec.nodeName =~ /(/").unwrap_err();
        assert!(bad.contains("invalid regular expression `/(/`"), "{bad}");
    }

    #[test]
    fn malformed_assertions_say_what_was_expected() {
        let err = |text: &str| FieldAssertion::parse(text).unwrap_err();
        let single = err("status.phase = Bound");
        assert!(
            single.starts_with("expected `PATH OP VALUE`") && single.contains("write `==`"),
            "{single}"
        );
        let parsecs = err("age(metadata.creationTimestamp) < 26 parsecs");
        assert!(
            parsecs.contains("expected a duration like `500ms`") && parsecs.contains("26 parsecs"),
            "{parsecs}"
        );
        let unclosed = err("status.conditions[type=Ready.status == True");
        assert!(
            unclosed.contains("expected `]` to close the `[`"),
            "{unclosed}"
        );
    }

    /// A Secret whose password is `hunter2-correct-horse`, in every place a value can hide.
    fn secret() -> (Value, &'static str, String) {
        let raw = "hunter2-correct-horse";
        let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
        let applied =
            json!({"apiVersion": "v1", "kind": "Secret", "stringData": {"password": raw}})
                .to_string();
        let object = json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "app", "namespace": "data",
                         "annotations": {LAST_APPLIED: applied, "team": "db"}},
            "type": "Opaque",
            "data": {"password": encoded, "username": "YXBw"},
            "stringData": {"password": raw},
        });
        (object, raw, encoded)
    }

    #[test]
    fn a_secrets_values_never_show_only_their_keys_and_sizes() {
        let (object, raw, encoded) = secret();
        let now = SystemTime::now();
        let mut texts = Vec::new();
        let mut mismatches = Vec::new();
        for expected in [
            json!({"data": {"password": "d3Jvbmc="}}),
            json!({"data": {"password": encoded}, "stringData": {"password": "wrong"}}),
            json!({"data": null}),
            json!({"data": ["list"]}),
            json!({"metadata": {"annotations": {"team": "web"}}}),
            json!({"metadata": {"annotations": null}}),
            json!({"metadata": {"annotations": {LAST_APPLIED: "x"}}}),
            json!(["the whole object"]),
        ] {
            partial_match(&expected, &object, &mut mismatches);
        }
        for assertion in [
            "data.password == d3Jvbmc=".to_owned(),
            format!("data.password != {encoded}"),
            "data.password absent".into(),
            "data absent".into(),
            "stringData.password =~ /^hunter/".into(),
            "metadata.annotations exists".into(),
            format!("metadata.annotations[\"{LAST_APPLIED}\"] absent"),
            "age(data.password) < 1h".into(),
        ] {
            let assertion = FieldAssertion::parse(&assertion).unwrap();
            texts.push(assertion.describe(Disclosure::of(&object)));
            mismatches.extend(assertion.judge(&object, now).err());
        }
        // Comparisons see the real values.
        let real = FieldAssertion::parse(&format!("data.password == {encoded}")).unwrap();
        assert_eq!(real.judge(&object, now), Ok(None));
        texts.push(real.describe(Disclosure::of_all([&pvc(), &object])));
        assert_eq!(mismatches.len(), 14, "{mismatches:#?}");
        texts.extend(mismatches.iter().map(ToString::to_string));
        let all = texts.join("\n");
        for hidden in [raw, encoded.as_str(), "hunter"] {
            assert!(!all.contains(hidden), "`{hidden}` shown in:\n{all}");
        }
        assert!(
            all.contains(
                "* data.password: expected <secret value, 5 bytes>, found <secret value, 21 bytes>"
            ),
            "{all}"
        );
        assert!(
            all.contains(
                r#"{"password":"<secret value, 21 bytes>","username":"<secret value, 3 bytes>"}"#
            ),
            "{all}"
        );
        assert!(
            all.contains("data.password == <secret value, 21 bytes>"),
            "{all}"
        );
        assert!(
            all.contains(&format!(
                r#"found {{"{LAST_APPLIED}":"<secret value, 85 bytes>","#
            )),
            "{all}"
        );
        // Other kinds show their values.
        let mut out = Vec::new();
        partial_match(
            &json!({"data": {"password": "x"}}),
            &json!({"kind": "ConfigMap", "data": {"password": "y"}}),
            &mut out,
        );
        assert_eq!(out[0].to_string(), "* data.password: expected x, found y");
    }
}

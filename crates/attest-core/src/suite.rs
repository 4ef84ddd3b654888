//! The suite file format: what a YAML suite may say, as typed data.
//!
//! Every type here is deserialized straight from serde-saphyr, so a mistake anywhere in a
//! suite is reported with the file, line and column where it stands.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::checks::{self, Check, FieldProblem};
use crate::duration::HumanDuration;
use crate::node_de::{from_node, DeError, NodeDe, Scope, VarState};
use crate::safety::Safety;
use crate::vantage::Vantage;
use crate::yaml::{is_null_text, Entry, Node, Pos, Style};

/// One suite file: a story or concern, its requirements, variables and ordered checks.
/// (The loader reads suites key by key from the YAML tree, see `load.rs`; this type describes
/// the format for the JSON Schema.)
#[derive(Debug, JsonSchema)]
#[schemars(title = "attest suite")]
pub struct SuiteFile {
    /// Stable identifier, used as the JUnit classname and in check names (`<suite>::<check>`).
    pub id: String,
    /// Human title of the suite, e.g. the story title.
    pub title: String,
    /// The story this suite validates: its id (`"5.5"`), or `{id, file}` naming the story's
    /// Markdown document, whose "Acceptance Criteria" section gives the criteria.
    pub story: Option<StoryDecl>,
    /// Acceptance criteria by id (`AC1`): their text when no story file has them, and
    /// `manual: "why"` for a criterion no machine can check.
    pub criteria: BTreeMap<String, CriterionDecl>,
    /// Free text shown in reports.
    pub description: Option<String>,
    /// Requirement IDs (FR35, NFR25, ...) with a one-line description each.
    pub requirements: BTreeMap<String, String>,
    /// Variables the checks use as `${name}`, with defaults.
    pub variables: BTreeMap<String, VariableDecl>,
    /// Which cluster the suite's Kubernetes checks talk to, unless the run says otherwise.
    pub kubernetes: Option<SuiteKubernetes>,
    /// The checks, run in this order.
    pub checks: Vec<serde_json::Value>,
}

/// A suite's story: its id, or its id and document.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(untagged)]
pub enum StoryDecl {
    /// The story's id, e.g. "5.5".
    Id(String),
    /// The story's id and its Markdown document.
    Document(StoryRef),
}

/// A story with its document.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StoryRef {
    /// The story's id, e.g. "5.2".
    #[serde(deserialize_with = "scalar_string")]
    pub id: String,
    /// The story's Markdown document, relative to the suite file's folder. Its "Acceptance
    /// Criteria" section gives the criteria (numbered items, or bold Given/When/Then blocks
    /// numbered by order), and the FR/NFR IDs they name.
    #[serde(default)]
    pub file: Option<String>,
}

/// One acceptance criterion in a suite: its text, or a map.
#[derive(Debug, Clone, JsonSchema)]
#[schemars(untagged)]
pub enum CriterionDecl {
    /// The criterion's text.
    Text(String),
    /// Text and/or why it is checked by hand.
    Full(CriterionSpec),
}

/// A criterion's text and whether it is checked by hand.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CriterionSpec {
    /// The criterion's text (taken from the story file when it has the criterion).
    #[serde(default)]
    pub text: Option<String>,
    /// Why no machine can check this criterion: reports show it as manual, not missing
    /// (checks covering it are shown as supporting evidence).
    #[serde(default)]
    pub manual: Option<String>,
}

fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    scalar_string_opt(d)?.ok_or_else(|| de::Error::custom("expected the story id, found nothing"))
}

/// A suite's cluster.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SuiteKubernetes {
    /// Kubeconfig context for this suite's checks and Secrets (`attest run --context`
    /// overrides it for the whole run).
    #[serde(default)]
    pub context: Option<String>,
}

/// A variable declaration: a plain default value, or a map saying where the value comes from.
#[derive(Debug, Clone, Default, JsonSchema)]
#[schemars(untagged)]
pub enum VariableDecl {
    #[default]
    #[schemars(skip)]
    Unset,
    /// A default value.
    Default(String),
    /// A full declaration.
    Full(VariableSpec),
}

/// Where a variable's value comes from, and whether it must be kept out of all output.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariableSpec {
    /// Value used when nothing else sets the variable.
    #[serde(default, deserialize_with = "scalar_string_opt")]
    pub default: Option<String>,
    /// Environment variable that sets the value (before the default, after `--set` and `--vars`).
    #[serde(default)]
    pub env: Option<String>,
    /// File whose contents (trimmed) set the value, e.g. a mounted Secret.
    #[serde(default)]
    pub file: Option<String>,
    /// A key of a Kubernetes Secret, read through the suite's cluster before anything runs
    /// (after `env` and `file`, before `default`). Always secret. If it cannot be read, the
    /// checks using the variable are errors saying why; a missing Secret or key falls back
    /// to `default`.
    #[serde(default)]
    pub kubernetes_secret: Option<crate::k8s::secrets::SecretRef>,
    /// A secret value never appears in console output, reports or error messages. Default:
    /// true for `kubernetes_secret`, else false (`secret: false` for a Secret's non-secret
    /// keys, such as CloudNativePG's `port` and `dbname`).
    #[serde(default)]
    pub secret: Option<bool>,
    /// What the variable is for.
    #[serde(default)]
    pub description: Option<String>,
}

impl VariableSpec {
    /// Whether the value must be kept out of all output.
    pub fn is_secret(&self) -> bool {
        self.secret.unwrap_or(self.kubernetes_secret.is_some())
    }
}

impl VariableDecl {
    pub fn spec(&self) -> VariableSpec {
        match self {
            VariableDecl::Unset => VariableSpec::default(),
            VariableDecl::Default(value) => VariableSpec {
                default: Some(value.clone()),
                ..VariableSpec::default()
            },
            VariableDecl::Full(spec) => spec.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for VariableDecl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DeclVisitor;
        impl<'de> Visitor<'de> for DeclVisitor {
            type Value = VariableDecl;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a default value or a map with `default`, `env`, `file`, `kubernetes_secret`, `secret`",
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(VariableDecl::Default(v.to_owned()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(VariableDecl::Default(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(VariableDecl::Default(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(VariableDecl::Default(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(VariableDecl::Default(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(VariableDecl::Unset)
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(VariableDecl::Unset)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                VariableSpec::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(VariableDecl::Full)
            }
        }
        deserializer.deserialize_any(DeclVisitor)
    }
}

fn scalar_string_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct ScalarVisitor;
    impl<'de> Visitor<'de> for ScalarVisitor {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a plain default value (text, a number or a boolean)")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(ScalarVisitor)
}

/// Polling: re-run the check until it passes or its timeout runs out.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Retry {
    /// Time between attempts.
    pub interval: HumanDuration,
    /// At most this many attempts (default: as many as fit in the timeout).
    #[serde(default)]
    pub attempts: Option<u32>,
    /// How long one attempt may take (default: whatever is left of the check's timeout).
    /// A slow attempt then counts as a failed observation instead of ending the check.
    #[serde(default)]
    pub attempt_timeout: Option<HumanDuration>,
}

/// Default time a check may take, retries included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// One check as written in a suite: the common fields plus exactly one kind key.
#[derive(Debug)]
pub struct CheckDecl {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub covers: Vec<String>,
    pub timeout: Duration,
    pub retry: Option<Retry>,
    pub needs: Vec<String>,
    pub safety: Option<Safety>,
    pub register: Option<String>,
    pub ignore: Option<String>,
    /// `from:`: the namespace of the pod the criterion is about (reports say whether the run
    /// measured it from there).
    pub from: Option<Vantage>,
    /// The kind's YAML name (`dns`, `tcp`, ...).
    pub kind: &'static str,
    pub check: Box<dyn Check>,
}

/// The common keys of a check, besides the kind key.
pub const CHECK_FIELDS: &[&str] = &[
    "id",
    "title",
    "description",
    "covers",
    "timeout",
    "retry",
    "needs",
    "safety",
    "register",
    "ignore",
    "from",
];

/// The keys of a suite file.
pub const SUITE_FIELDS: &[&str] = &[
    "id",
    "title",
    "story",
    "criteria",
    "description",
    "requirements",
    "kubernetes",
    "variables",
    "checks",
];

/// Whether `id` is a valid suite or check id.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// Whether `name` can prefix variables (`register:`) or be a variable.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Reads one check from its node, reporting every problem it can find (each common key, the
/// kind's fields, and what the kind's [`crate::checks::Kind::validate`] finds), each at its
/// position.
pub fn check_from_node(node: &Node, scope: &Scope) -> Result<CheckDecl, Vec<DeError>> {
    let mut errors: Vec<DeError> = Vec::new();
    let Some(entries) = node.entries() else {
        let mut e = DeError::new(format!(
            "expected a check (a map with `id`, `title` and one kind key such as `tcp:`), found {}",
            node.describe()
        ));
        e.pos = Some(node.pos);
        return Err(vec![e]);
    };
    fn read<'a, T: Deserialize<'a>>(
        entry: &'a Entry,
        scope: &'a Scope<'a>,
        errors: &mut Vec<DeError>,
    ) -> Option<T> {
        from_node::<T>(&entry.value, scope, Some(&entry.key))
            .map_err(|e| errors.push(e))
            .ok()
    }
    let at = |pos: Pos, message: String| {
        let mut e = DeError::new(message);
        e.pos = Some(pos);
        e
    };
    let mut id = None;
    let mut title = None;
    let mut description = None;
    let mut covers = Vec::new();
    let mut timeout = None;
    let mut retry = None;
    let mut needs = Vec::new();
    let mut safety = None;
    let mut register = None;
    let mut ignore = None;
    let mut from = None;
    let mut kind: Option<(&'static str, &Entry)> = None;
    for entry in entries {
        let value = &entry.value;
        match entry.key.as_str() {
            "id" => {
                if let Some(text) = read::<String>(entry, scope, &mut errors) {
                    if is_valid_id(&text) {
                        id = Some(text);
                    } else {
                        errors.push(at(
                            value.pos,
                            format!(
                            "`id`: expected letters, digits, `-`, `_` and `.` only, found `{text}`"
                        ),
                        ));
                        id = Some(text);
                    }
                }
            }
            "title" => title = read::<String>(entry, scope, &mut errors),
            "description" => description = read::<String>(entry, scope, &mut errors),
            "covers" => covers = read::<Vec<String>>(entry, scope, &mut errors).unwrap_or_default(),
            "timeout" => {
                if let Some(d) = read::<HumanDuration>(entry, scope, &mut errors) {
                    if d.0.is_zero() {
                        errors.push(at(value.pos, "`timeout`: expected a duration above zero, found `0s`; a check needs time to run".into()));
                    }
                    timeout = Some(d.0);
                }
            }
            "retry" => {
                if let Some(r) = read::<Retry>(entry, scope, &mut errors) {
                    let field = |name: &str| value.get(name).map_or(value.pos, |n| n.pos);
                    if r.interval.0.is_zero() {
                        errors.push(at(
                            field("interval"),
                            "`interval`: expected a duration above zero, found a zero interval"
                                .into(),
                        ));
                    }
                    if r.attempts == Some(0) {
                        errors.push(at(field("attempts"), "`attempts`: expected at least 1 attempt, found `0`; leave `attempts` out to retry until the timeout".into()));
                    }
                    if r.attempt_timeout.is_some_and(|t| t.0.is_zero()) {
                        errors.push(at(
                            field("attempt_timeout"),
                            "`attempt_timeout`: expected a duration above zero, found `0s`".into(),
                        ));
                    }
                    retry = Some(r);
                }
            }
            "needs" => needs = read::<Vec<String>>(entry, scope, &mut errors).unwrap_or_default(),
            "safety" => safety = read::<Safety>(entry, scope, &mut errors),
            "register" => {
                if let Some(name) = read::<String>(entry, scope, &mut errors) {
                    if !is_identifier(&name) {
                        errors.push(at(value.pos, format!(
                            "`register`: expected letters, digits and `_` (it prefixes variables such as `{name}_password`), found `{name}`"
                        )));
                    }
                    register = Some(name);
                }
            }
            "ignore" => {
                let plain_flag = matches!(
                    value.scalar(),
                    Some((text, Style::Plain)) if matches!(text, "true" | "false" | "True" | "False" | "TRUE" | "FALSE" | "yes" | "no" | "on" | "off") || is_null_text(text)
                );
                if plain_flag {
                    errors.push(at(value.pos, format!(
                        "`ignore`: expected the reason to leave the check out (text such as `\"flaky until #12 is fixed\"`), found {}",
                        value.describe()
                    )));
                } else if let Some(reason) = read::<String>(entry, scope, &mut errors) {
                    if reason.trim().is_empty() {
                        errors.push(at(value.pos, "`ignore`: expected the reason to leave the check out, found empty text".into()));
                    }
                    ignore = Some(reason);
                }
            }
            "from" => {
                if let Some(vantage) = read::<Vantage>(entry, scope, &mut errors) {
                    if !crate::validate::is_dns_label(&vantage.namespace) {
                        let pos = value.get("namespace").map_or(value.pos, |n| n.pos);
                        errors.push(at(pos, format!(
                            "`from.namespace`: expected a namespace name (lowercase letters, digits and `-`, at most 63), found `{}`",
                            vantage.namespace
                        )));
                    }
                    from = Some(vantage);
                }
            }
            other => match checks::kind_name(other) {
                Some(name) => {
                    if let Some((first, _)) = kind {
                        errors.push(at(entry.key_pos, format!(
                            "a check has exactly one kind, but this one has `{first}` and `{name}`; split it into two checks"
                        )));
                    } else {
                        kind = Some((name, entry));
                    }
                }
                None => {
                    let expected: Vec<&str> = CHECK_FIELDS
                        .iter()
                        .chain(checks::KIND_NAMES.iter())
                        .copied()
                        .collect();
                    let mut e = crate::node_de::unknown_key(other, &expected);
                    e.pos = Some(entry.key_pos);
                    errors.push(e);
                }
            },
        }
    }
    if id.is_none() && node.get("id").is_none() {
        errors.push(at(
            node.pos,
            "missing key `id` in this check (a stable name such as `service-dns`)".into(),
        ));
    }
    if title.is_none() && node.get("title").is_none() {
        errors.push(at(
            node.pos,
            "missing key `title` in this check (one line saying what it proves)".into(),
        ));
    }
    let check = match kind {
        None => {
            let name = id
                .as_deref()
                .map(|id| format!(" `{id}`"))
                .unwrap_or_default();
            errors.push(at(
                node.pos,
                format!(
                    "check{name} has no kind; add one of: {}",
                    checks::KIND_NAMES.join(", ")
                ),
            ));
            None
        }
        Some((name, entry)) => {
            match checks::deserialize_kind(name, NodeDe::new(&entry.value, scope, Some(name))) {
                Ok(check) => {
                    for problem in check.validate() {
                        errors.extend(locate_problem(&entry.value, name, &problem, scope));
                    }
                    Some((name, check))
                }
                Err(e) => {
                    errors.push(e.at_node(&entry.value));
                    None
                }
            }
        }
    };
    match (id, title, check) {
        (Some(id), Some(title), Some((kind, check))) if errors.is_empty() => Ok(CheckDecl {
            id,
            title,
            description,
            covers,
            timeout: timeout.unwrap_or(DEFAULT_TIMEOUT),
            retry,
            needs,
            safety,
            register,
            ignore,
            from,
            kind,
            check,
        }),
        _ => Err(errors),
    }
}

/// Places a kind's [`FieldProblem`] at its field, names the variables its value came from, and
/// drops it when the value is only known later (a registered value, or an unset variable while
/// listing).
fn locate_problem(
    body: &Node,
    kind: &str,
    problem: &FieldProblem,
    scope: &Scope,
) -> Option<DeError> {
    // `status.0` of `status: 999` is `status` itself.
    let mut path = problem.field.as_str();
    let mut node = body.path(path);
    while node.is_none() && !path.is_empty() {
        path = path.rsplit_once('.').map_or("", |(head, _)| head);
        node = body.path(path).filter(|_| !path.is_empty());
    }
    let label = if node.is_some() {
        path
    } else {
        problem.field.as_str()
    };
    let mut message = if label.is_empty() {
        format!("`{kind}`: {}", problem.message)
    } else {
        format!("`{label}`: {}", problem.message)
    };
    if let Some(node) = node {
        let mut scalars = Vec::new();
        node.scalars(&mut scalars);
        let mut names = Vec::new();
        for scalar in scalars {
            let Some((text, _)) = scalar.scalar() else {
                continue;
            };
            if !crate::interpolate::has_dollar(text) {
                continue;
            }
            let Ok(tokens) = crate::interpolate::tokens(text) else {
                continue;
            };
            for (reference, _) in crate::interpolate::references(&tokens) {
                match scope.vars.get(&reference.name) {
                    Some(v) if v.state != VarState::Known => return None,
                    Some(v) if v.secret => {
                        names.push(format!("`${{{}}}` (secret)", reference.name))
                    }
                    Some(v) if !v.origin.is_empty() => {
                        names.push(format!("`${{{}}}`, {}", reference.name, v.origin))
                    }
                    _ => names.push(format!("`${{{}}}`", reference.name)),
                }
            }
        }
        if !names.is_empty() {
            names.dedup();
            message.push_str(&format!(" (value from {})", names.join(", ")));
        }
    }
    let mut e = DeError::new(message);
    e.pos = Some(node.map_or(body.pos, |n| n.pos));
    Some(e)
}

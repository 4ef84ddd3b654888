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
use serde_saphyr::Spanned;

use crate::checks::{self, Check};

/// One suite file: a story or concern, its requirements, variables and ordered checks.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "attest suite")]
pub struct SuiteFile {
    /// Stable identifier, used as the JUnit classname and in check names (`<suite>::<check>`).
    #[schemars(with = "String")]
    pub id: Spanned<String>,
    /// Human title of the suite, e.g. the story title.
    pub title: String,
    /// The story this suite validates, e.g. "5.5".
    #[serde(default)]
    pub story: Option<String>,
    /// Free text shown in reports.
    #[serde(default)]
    pub description: Option<String>,
    /// Requirement IDs (FR35, NFR25, ...) with a one-line description each.
    #[serde(default)]
    pub requirements: BTreeMap<String, String>,
    /// Variables the checks use as `${name}`, with defaults.
    #[serde(default)]
    pub variables: BTreeMap<String, VariableDecl>,
    /// The checks, run in this order.
    #[schemars(with = "Vec<serde_json::Value>")]
    pub checks: Vec<Spanned<CheckDecl>>,
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
    /// A secret value never appears in console output, reports or error messages.
    #[serde(default)]
    pub secret: bool,
    /// What the variable is for.
    #[serde(default)]
    pub description: Option<String>,
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
                f.write_str("a default value or a map with `default`, `env`, `file`, `secret`")
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
    match VariableDecl::deserialize(d)? {
        VariableDecl::Default(v) => Ok(Some(v)),
        VariableDecl::Unset => Ok(None),
        VariableDecl::Full(_) => Err(de::Error::custom("expected a scalar default value")),
    }
}

/// How much a check may disturb the environment. Ordered: each class includes the ones before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Safety {
    /// Only observes (the default).
    #[default]
    ReadOnly,
    /// Creates or changes things, and removes them again in teardown.
    Mutating,
    /// Disrupts running workloads (deleting pods, draining nodes).
    Destructive,
}

impl Safety {
    pub fn as_str(self) -> &'static str {
        match self {
            Safety::ReadOnly => "read-only",
            Safety::Mutating => "mutating",
            Safety::Destructive => "destructive",
        }
    }
    /// The command-line flag that lets checks of this class run.
    pub fn opt_in_flag(self) -> &'static str {
        match self {
            Safety::ReadOnly => "",
            Safety::Mutating => "--allow-mutating",
            Safety::Destructive => "--allow-destructive",
        }
    }
}

/// A duration written the humantime way: `500ms`, `10s`, `2m`, `26h`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, JsonSchema)]
#[schemars(with = "String")]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text)
            .map(HumanDuration)
            .map_err(de::Error::custom)
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration `{text}` ({e}); expected a duration like `500ms`, `10s` or `2m`")
    })
}

/// Formats a duration compactly for humans: `0.42 ms`, `1.3 s`, `2m 5s`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if d.as_secs() < 60 {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
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
];

impl<'de> Deserialize<'de> for CheckDecl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(CheckVisitor)
    }
}

struct CheckVisitor;

impl<'de> Visitor<'de> for CheckVisitor {
    type Value = CheckDecl;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a check: `id`, `title` and one kind key such as `dns:` or `tcp:`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<CheckDecl, A::Error> {
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
        let mut kind: Option<(&'static str, Box<dyn Check>)> = None;

        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "id" => id = Some(map.next_value::<String>()?),
                "title" => title = Some(map.next_value::<String>()?),
                "description" => description = Some(map.next_value::<String>()?),
                "covers" => covers = map.next_value::<Vec<String>>()?,
                "timeout" => timeout = Some(map.next_value::<HumanDuration>()?.0),
                "retry" => retry = Some(map.next_value::<Retry>()?),
                "needs" => needs = map.next_value::<Vec<String>>()?,
                "safety" => safety = Some(map.next_value::<Safety>()?),
                "register" => register = Some(map.next_value::<String>()?),
                "ignore" => ignore = Some(map.next_value::<String>()?),
                other => match checks::kind_name(other) {
                    Some(name) => {
                        if let Some((first, _)) = &kind {
                            return Err(de::Error::custom(format!(
                                "a check has exactly one kind, but this one has `{first}` and `{name}`; split it into two checks"
                            )));
                        }
                        kind = Some((name, checks::deserialize_kind(name, &mut map)?));
                    }
                    None => {
                        let expected: Vec<&str> = CHECK_FIELDS
                            .iter()
                            .chain(checks::KIND_NAMES.iter())
                            .copied()
                            .collect();
                        return Err(de::Error::unknown_field(other, leak(expected)));
                    }
                },
            }
        }

        let id = id.ok_or_else(|| de::Error::missing_field("id"))?;
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(de::Error::custom(format!(
                "check id `{id}` may only use letters, digits, `-`, `_` and `.`"
            )));
        }
        let title = title.ok_or_else(|| de::Error::missing_field("title"))?;
        let (kind, check) = kind.ok_or_else(|| {
            de::Error::custom(format!(
                "check `{id}` has no kind; add one of: {}",
                checks::KIND_NAMES.join(", ")
            ))
        })?;
        Ok(CheckDecl {
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
            kind,
            check,
        })
    }
}

/// serde's `unknown_field` wants a `&'static [&'static str]`; the list is small and built once
/// per error, so leaking it is harmless.
fn leak(names: Vec<&'static str>) -> &'static [&'static str] {
    Box::leak(names.into_boxed_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_the_humantime_way() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        let err = parse_duration("ten").unwrap_err();
        assert!(err.contains("expected a duration like"), "{err}");
    }

    #[test]
    fn durations_format_for_humans() {
        assert_eq!(format_duration(Duration::from_micros(420)), "0.42 ms");
        assert_eq!(format_duration(Duration::from_millis(30)), "30.0 ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5 s");
    }

    #[test]
    fn safety_classes_are_ordered() {
        assert!(Safety::ReadOnly < Safety::Mutating);
        assert!(Safety::Mutating < Safety::Destructive);
    }
}

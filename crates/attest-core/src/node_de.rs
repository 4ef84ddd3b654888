//! Typed values from the YAML tree: a serde `Deserializer` over [`Node`] that interpolates
//! variables scalar by scalar, so keys and allowed values are checked as written, every error
//! carries the position of the node it is about, and messages say what was expected and what
//! was found (naming the variable when the value came from one).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};

use crate::interpolate::{self, ExpandError};
use crate::text::runtime_marker;
use crate::yaml::{is_null_text, Entry, Node, Pos, Style, Value};

/// What the loader knows about one variable.
#[derive(Debug, Clone)]
pub struct VarValue {
    /// The value, or a stand-in marker (see [`VarState`]).
    pub text: Option<String>,
    pub state: VarState,
    pub secret: bool,
    /// Where the value came from, for messages: "`--set`", "the default on line 7".
    pub origin: String,
    /// Why it has no value in this run (a Secret that could not be read): the checks using it
    /// do not run and say this.
    pub unavailable: Option<std::sync::Arc<crate::external::Unavailable>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarState {
    Known,
    /// Registered by a check (`register:`): known only when the run reaches it.
    Runtime,
    /// Declared, no value, and values are not needed (`--list`, `attest check`).
    Unset,
    /// No value in this run, for a reason the checks using it report
    /// ([`VarValue::unavailable`]).
    Unavailable,
}

impl VarValue {
    pub fn stand_in(name: &str, state: VarState, secret: bool) -> VarValue {
        VarValue {
            text: Some(runtime_marker(name)),
            state,
            secret,
            origin: String::new(),
            unavailable: None,
        }
    }

    /// A value known before the run (`None`: declared, and nothing sets it).
    pub fn known(text: Option<String>, secret: bool, origin: impl Into<String>) -> VarValue {
        VarValue {
            text,
            state: VarState::Known,
            secret,
            origin: origin.into(),
            unavailable: None,
        }
    }
}

/// Variables in scope while a suite's values are read.
pub struct Scope<'a> {
    pub vars: &'a HashMap<String, VarValue>,
    /// Read values as written, without interpolation (variable declarations).
    pub raw: bool,
}

/// A problem with a value, at the node it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeError {
    pub message: String,
    pub pos: Option<Pos>,
    /// Already reported another way (an unknown variable): not shown again.
    pub silent: bool,
}

impl DeError {
    pub fn new(message: impl Into<String>) -> DeError {
        DeError {
            message: message.into(),
            pos: None,
            silent: false,
        }
    }

    fn silent() -> DeError {
        DeError {
            message: String::new(),
            pos: None,
            silent: true,
        }
    }

    /// Gives an error without a position the node's, rewording library messages and adding
    /// what was found.
    fn at(mut self, node: &Node, key: Option<&str>, found: impl FnOnce() -> String) -> DeError {
        if self.pos.is_some() || self.silent {
            return self;
        }
        self.pos = Some(node.pos);
        let found = found();
        if let Some(name) = self
            .message
            .strip_prefix("data did not match any variant of untagged enum ")
        {
            self.message = format!("expected {}", untagged_expectation(name));
        } else if self.message == "invalid IP address syntax" {
            self.message = "expected an IP address such as `10.43.0.10`".into();
        } else if self.message == "invalid socket address syntax" {
            self.message = "expected an address `ip:port` such as `10.43.0.10:53`".into();
        }
        // Multi-line library messages (regex errors draw a caret): the first line and the
        // last, which says what is wrong.
        if self.message.contains('\n') {
            let first = self
                .message
                .lines()
                .next()
                .unwrap_or_default()
                .trim_end()
                .to_owned();
            let last = self.message.lines().last().unwrap_or_default().trim();
            let last = last.strip_prefix("error: ").unwrap_or(last).to_owned();
            self.message = format!("{first} {last}");
        }
        let shown = match &node.value {
            Value::Scalar { text, .. } => {
                !text.is_empty() && self.message.contains(&format!("`{text}`"))
            }
            _ => false,
        };
        if !shown
            && !self.message.contains("found")
            && !self.message.starts_with("missing key")
            && !self.message.starts_with("unknown value")
        {
            self.message = format!("{}, found {found}", self.message);
        }
        if let Some(key) = key {
            self.message = format!("`{key}`: {}", self.message);
        }
        self
    }

    /// Gives an error without a position the node's.
    pub fn at_node(self, node: &Node) -> DeError {
        self.at(node, None, || node.describe())
    }

    fn at_key(mut self, pos: Pos) -> DeError {
        if self.pos.is_none() {
            self.pos = Some(pos);
        }
        self
    }
}

fn untagged_expectation(name: &str) -> &'static str {
    match name.trim() {
        "OneOrMany" => "a status code or a list of them, such as `302` or `[200, 204]`",
        "Raw" => "a shell line (text) or a list of arguments",
        _ => "a value of another shape here (see `attest schema`)",
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(msg.to_string())
    }

    fn invalid_type(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        DeError::new(format!("expected {exp}, found {}", unexpected(&unexp)))
    }

    fn invalid_value(unexp: de::Unexpected, exp: &dyn de::Expected) -> Self {
        DeError::new(format!("expected {exp}, found {}", unexpected(&unexp)))
    }

    fn invalid_length(len: usize, exp: &dyn de::Expected) -> Self {
        DeError::new(format!("expected {exp}, found {len} item(s)"))
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        DeError::new(format!(
            "unknown value `{variant}`{}; expected one of: {}",
            did_you_mean_text(variant, expected),
            expected.join(", ")
        ))
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        unknown_key(field, expected)
    }

    fn missing_field(field: &'static str) -> Self {
        DeError::new(format!("missing key `{field}` (it is required)"))
    }

    fn duplicate_field(field: &'static str) -> Self {
        DeError::new(format!("key `{field}` is given twice"))
    }
}

/// "unknown key `nmaeserver` (did you mean `nameserver`?); expected one of: …"
pub fn unknown_key(field: &str, expected: &[&str]) -> DeError {
    DeError::new(format!(
        "unknown key `{field}`{}; expected one of: {}",
        did_you_mean_text(field, expected),
        expected.join(", ")
    ))
}

fn unexpected(unexp: &de::Unexpected) -> String {
    match unexp {
        de::Unexpected::Str(s) => format!("`{}`", crate::text::clip(s, 80)),
        de::Unexpected::Unsigned(n) => format!("`{n}`"),
        de::Unexpected::Signed(n) => format!("`{n}`"),
        de::Unexpected::Float(n) => format!("`{n}`"),
        de::Unexpected::Bool(b) => format!("`{b}`"),
        de::Unexpected::Map => "a map".into(),
        de::Unexpected::Seq => "a list".into(),
        de::Unexpected::Unit => "nothing (an empty value)".into(),
        other => other.to_string(),
    }
}

/// The closest candidate, when it is close enough to be a likely typo; of equally close ones,
/// the first in alphabetical order.
pub fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let word_lower = word.to_ascii_lowercase();
    let allowed = |c: &str| (c.len().max(word.len()) / 3).max(1);
    candidates
        .into_iter()
        // Lengths further apart than the allowed distance can't be close: skip the matrix.
        .filter(|c| c.len().abs_diff(word.len()) <= allowed(c))
        // Levenshtein distance with a transposition counting as one edit.
        .map(|c| {
            (
                strsim::osa_distance(&word_lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, c)| *d <= allowed(c))
        // Ties go to the first in alphabetical order, so the candidates need no sorting.
        .min_by(|(d1, c1), (d2, c2)| d1.cmp(d2).then_with(|| c1.cmp(c2)))
        .map(|(_, c)| c)
}

fn did_you_mean_text(word: &str, candidates: &[&str]) -> String {
    did_you_mean(word, candidates.iter().copied())
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

/// A scalar after interpolation.
struct Expanded<'a> {
    text: Cow<'a, str>,
    style: Style,
    /// Variables it refers to, in order.
    vars: Vec<String>,
    /// The value is a stand-in (a registered value, or an unset variable while only listing).
    deferred: bool,
}

/// Deserializes one node.
#[derive(Clone, Copy)]
pub struct NodeDe<'a> {
    pub node: &'a Node,
    pub scope: &'a Scope<'a>,
    pub key: Option<&'a str>,
}

impl<'a> NodeDe<'a> {
    pub fn new(node: &'a Node, scope: &'a Scope<'a>, key: Option<&'a str>) -> Self {
        NodeDe { node, scope, key }
    }

    fn expand(&self, text: &'a str, style: Style) -> Result<Expanded<'a>, DeError> {
        if self.scope.raw || !interpolate::has_dollar(text) {
            return Ok(Expanded {
                text: Cow::Borrowed(text),
                style,
                vars: Vec::new(),
                deferred: false,
            });
        }
        // Malformed references and unknown variables are reported by the loader's scan of
        // the whole file, once, at their exact column.
        let tokens = interpolate::tokens(text).map_err(|_| DeError::silent())?;
        let refs = interpolate::references(&tokens);
        let vars: Vec<String> = refs.iter().map(|(r, _)| r.name.clone()).collect();
        let deferred = refs.iter().any(|(r, _)| {
            self.scope
                .vars
                .get(&r.name)
                .is_some_and(|v| v.state != VarState::Known)
        });
        let lookup = |name: &str| self.scope.vars.get(name).and_then(|v| v.text.as_deref());
        let text = interpolate::expand(&tokens, &lookup).map_err(|e| match e {
            ExpandError::Unset { .. } | ExpandError::Required { .. } => DeError::silent(),
        })?;
        Ok(Expanded {
            text: Cow::Owned(text),
            style,
            vars,
            deferred,
        })
    }

    fn scalar(&self) -> Result<Option<Expanded<'a>>, DeError> {
        match &self.node.value {
            Value::Scalar { text, style } => self.expand(text, *style).map(Some),
            _ => Ok(None),
        }
    }

    /// "`abc`", or "`abc` (from `${pg_port}`, set by `--set`)", never a secret.
    fn found(&self, expanded: Option<&Expanded>) -> String {
        let Some(expanded) = expanded else {
            return self.node.describe();
        };
        if expanded.vars.is_empty() {
            return self.node.describe();
        }
        let secret = expanded
            .vars
            .iter()
            .find(|v| self.scope.vars.get(*v).is_some_and(|v| v.secret));
        if let Some(name) = secret {
            return format!("the value of the secret variable `{name}` (not shown)");
        }
        let origins: Vec<String> = expanded
            .vars
            .iter()
            .map(|name| match self.scope.vars.get(name) {
                Some(v) if !v.origin.is_empty() => format!("`${{{name}}}`, {}", v.origin),
                _ => format!("`${{{name}}}`"),
            })
            .collect();
        format!(
            "`{}` (from {})",
            crate::text::clip(&expanded.text, 80),
            origins.join(", ")
        )
    }

    fn fail<T>(&self, message: String, expanded: Option<&Expanded>) -> Result<T, DeError> {
        let found = self.found(expanded);
        Err(DeError::new(message).at(self.node, self.key, || found))
    }

    fn fix<T>(
        &self,
        result: Result<T, DeError>,
        expanded: Option<&Expanded>,
    ) -> Result<T, DeError> {
        result.map_err(|e| e.at(self.node, self.key, || self.found(expanded)))
    }

    fn integer<V: Visitor<'a>>(
        self,
        visitor: V,
        min: i128,
        max: i128,
        visit: impl FnOnce(V, i128) -> Result<V::Value, DeError>,
    ) -> Result<V::Value, DeError> {
        let Some(expanded) = self.scalar()? else {
            return self.fail(format!("expected a whole number from {min} to {max}"), None);
        };
        if expanded.deferred {
            return self.deferred_scalar(visitor, &expanded, |v| visit(v, min.max(0).min(max)));
        }
        match parse_integer(&expanded.text) {
            Some(n) if (min..=max).contains(&n) => {
                let result = visit(visitor, n);
                self.fix(result, Some(&expanded))
            }
            _ => self.fail(
                format!("expected a whole number from {min} to {max}"),
                Some(&expanded),
            ),
        }
    }

    /// A stand-in value where the real one is only known later: accepted while listing
    /// (placeholder), an error where a typed value is needed before the run.
    fn deferred_scalar<V: Visitor<'a>>(
        self,
        visitor: V,
        expanded: &Expanded,
        placeholder: impl FnOnce(V) -> Result<V::Value, DeError>,
    ) -> Result<V::Value, DeError> {
        let runtime = expanded.vars.iter().find(|v| {
            self.scope
                .vars
                .get(*v)
                .is_some_and(|v| v.state == VarState::Runtime)
        });
        match runtime {
            Some(name) => self.fail(
                format!(
                    "`${{{name}}}` is registered by an earlier check and known only when the run reaches it; it can be used in text fields (connections, queries, commands, URLs), not here"
                ),
                None,
            ),
            None => placeholder(visitor),
        }
    }
}

/// YAML 1.2 core integers: decimal with an optional sign, `0x…`, `0o…`.
fn parse_integer(text: &str) -> Option<i128> {
    let text = text.trim();
    if let Some(hex) = text.strip_prefix("0x") {
        return i128::from_str_radix(hex, 16).ok();
    }
    if let Some(oct) = text.strip_prefix("0o") {
        return i128::from_str_radix(oct, 8).ok();
    }
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_float(text: &str) -> Option<f64> {
    let text = text.trim();
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let looks_numeric = !body.is_empty()
        && body.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || ".eE+-".contains(c));
    looks_numeric.then(|| text.parse().ok()).flatten()
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim() {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

macro_rules! integer_methods {
    ($($method:ident => $ty:ty, $visit:ident;)*) => {
        $(
            fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
                self.integer(visitor, <$ty>::MIN as i128, <$ty>::MAX as i128, |v, n| v.$visit(n as $ty))
            }
        )*
    };
}

impl<'a> de::Deserializer<'a> for NodeDe<'a> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(entries) => {
                let result = visitor.visit_map(MapDe::new(entries, self.scope));
                self.fix(result, None)
            }
            Value::Seq(items) => {
                let result = visitor.visit_seq(SeqDe {
                    items,
                    index: 0,
                    scope: self.scope,
                });
                self.fix(result, None)
            }
            Value::Scalar { .. } => {
                let expanded = self.scalar()?.expect("a scalar");
                let text = expanded.text.as_ref();
                // A value from variables is typed by what it became (`"${codes}"` → 204).
                let typed = expanded.style == Style::Plain || !expanded.vars.is_empty();
                let result = if !typed || expanded.deferred {
                    visitor.visit_str(text)
                } else if is_null_text(text) && expanded.vars.is_empty() {
                    visitor.visit_unit()
                } else if let Some(b) = parse_bool(text) {
                    visitor.visit_bool(b)
                } else if let Some(n) = parse_integer(text) {
                    if let Ok(n) = u64::try_from(n) {
                        visitor.visit_u64(n)
                    } else if let Ok(n) = i64::try_from(n) {
                        visitor.visit_i64(n)
                    } else {
                        visitor.visit_str(text)
                    }
                } else if let Some(f) = parse_float(text) {
                    visitor.visit_f64(f)
                } else {
                    visitor.visit_str(text)
                };
                self.fix(result, Some(&expanded))
            }
        }
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let Some(expanded) = self.scalar()? else {
            return self.fail("expected `true` or `false`".into(), None);
        };
        if expanded.deferred {
            return self.deferred_scalar(visitor, &expanded, |v| v.visit_bool(false));
        }
        match parse_bool(&expanded.text) {
            Some(b) => {
                let result = visitor.visit_bool(b);
                self.fix(result, Some(&expanded))
            }
            None => self.fail("expected `true` or `false`".into(), Some(&expanded)),
        }
    }

    integer_methods! {
        deserialize_i8 => i8, visit_i8;
        deserialize_i16 => i16, visit_i16;
        deserialize_i32 => i32, visit_i32;
        deserialize_i64 => i64, visit_i64;
        deserialize_u8 => u8, visit_u8;
        deserialize_u16 => u16, visit_u16;
        deserialize_u32 => u32, visit_u32;
        deserialize_u64 => u64, visit_u64;
    }

    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        let Some(expanded) = self.scalar()? else {
            return self.fail("expected a number".into(), None);
        };
        if expanded.deferred {
            return self.deferred_scalar(visitor, &expanded, |v| v.visit_f64(0.0));
        }
        match parse_float(&expanded.text) {
            Some(f) => {
                let result = visitor.visit_f64(f);
                self.fix(result, Some(&expanded))
            }
            None => self.fail("expected a number".into(), Some(&expanded)),
        }
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.scalar()? {
            Some(expanded) => {
                if expanded.style == Style::Plain
                    && expanded.vars.is_empty()
                    && is_null_text(&expanded.text)
                {
                    return self.fail("expected text".into(), Some(&expanded));
                }
                let result = visitor.visit_str(&expanded.text);
                self.fix(result, Some(&expanded))
            }
            None => self.fail("expected text".into(), None),
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_unit()
        } else {
            self.fail("expected nothing (an empty value)".into(), None)
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Seq(items) => {
                let result = visitor.visit_seq(SeqDe {
                    items,
                    index: 0,
                    scope: self.scope,
                });
                self.fix(result, None)
            }
            _ => {
                let expanded = self.scalar()?;
                self.fail(
                    "expected a list such as `[a, b]` or lines starting with `- `".into(),
                    expanded.as_ref(),
                )
            }
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(entries) => {
                let result = visitor.visit_map(MapDe::new(entries, self.scope));
                self.fix(result, None)
            }
            _ => {
                let expanded = self.scalar()?;
                self.fail(
                    "expected a map of `key: value` lines".into(),
                    expanded.as_ref(),
                )
            }
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Map(entries) => {
                let result = visitor.visit_map(MapDe::new(entries, self.scope));
                self.fix(result, None)
            }
            _ => {
                let expanded = self.scalar()?;
                let keys: Vec<String> = fields.iter().map(|f| format!("`{f}`")).collect();
                self.fail(
                    format!("expected a map with keys among {}", keys.join(", ")),
                    expanded.as_ref(),
                )
            }
        }
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Scalar { .. } => {
                let expanded = self.scalar()?.expect("a scalar");
                if expanded.deferred {
                    let first = variants.first().copied().unwrap_or_default();
                    return self.deferred_scalar(visitor, &expanded, |v| {
                        v.visit_enum(first.into_deserializer())
                    });
                }
                let text = expanded.text.clone().into_owned();
                let result = visitor.visit_enum(UnitVariant(text));
                self.fix(result, Some(&expanded))
            }
            Value::Map(entries) if entries.len() == 1 => {
                let result = visitor.visit_enum(MapVariant {
                    entry: &entries[0],
                    scope: self.scope,
                });
                self.fix(result, None)
            }
            _ => self.fail(format!("expected one of: {}", variants.join(", ")), None),
        }
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct SeqDe<'a> {
    items: &'a [std::rc::Rc<Node>],
    index: usize,
    scope: &'a Scope<'a>,
}

impl<'a> de::SeqAccess<'a> for SeqDe<'a> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(item) = self.items.get(self.index) else {
            return Ok(None);
        };
        self.index += 1;
        let de = NodeDe::new(item, self.scope, None);
        seed.deserialize(de)
            .map(Some)
            .map_err(|e| e.at(item, None, || item.describe()))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len() - self.index)
    }
}

pub struct MapDe<'a> {
    entries: &'a [Entry],
    index: usize,
    scope: &'a Scope<'a>,
}

impl<'a> MapDe<'a> {
    fn new(entries: &'a [Entry], scope: &'a Scope<'a>) -> Self {
        MapDe {
            entries,
            index: 0,
            scope,
        }
    }
}

impl<'a> de::MapAccess<'a> for MapDe<'a> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.get(self.index) else {
            return Ok(None);
        };
        seed.deserialize(KeyDe(&entry.key))
            .map(Some)
            .map_err(|e| e.at_key(entry.key_pos))
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let entry = &self.entries[self.index];
        self.index += 1;
        let de = NodeDe::new(&entry.value, self.scope, Some(&entry.key));
        seed.deserialize(de)
            .map_err(|e| e.at(&entry.value, Some(&entry.key), || entry.value.describe()))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len() - self.index)
    }
}

/// A map key: always text as written, never interpolated.
struct KeyDe<'a>(&'a str);

impl<'de> de::Deserializer<'de> for KeyDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_str(self.0)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

struct UnitVariant(String);

impl<'a> de::EnumAccess<'a> for UnitVariant {
    type Error = DeError;
    type Variant = UnitOnly;

    fn variant_seed<V: DeserializeSeed<'a>>(
        self,
        seed: V,
    ) -> Result<(V::Value, UnitOnly), DeError> {
        let value = seed.deserialize(self.0.as_str().into_deserializer())?;
        Ok((value, UnitOnly))
    }
}

struct UnitOnly;

impl<'a> de::VariantAccess<'a> for UnitOnly {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'a>>(self, _seed: T) -> Result<T::Value, DeError> {
        Err(DeError::new("expected a map `name: value` for this choice"))
    }

    fn tuple_variant<V: Visitor<'a>>(self, _len: usize, _visitor: V) -> Result<V::Value, DeError> {
        Err(DeError::new("expected a list for this choice"))
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DeError> {
        Err(DeError::new("expected a map for this choice"))
    }
}

struct MapVariant<'a> {
    entry: &'a Entry,
    scope: &'a Scope<'a>,
}

impl<'a> de::EnumAccess<'a> for MapVariant<'a> {
    type Error = DeError;
    type Variant = NodeDe<'a>;

    fn variant_seed<V: DeserializeSeed<'a>>(
        self,
        seed: V,
    ) -> Result<(V::Value, NodeDe<'a>), DeError> {
        let value = seed
            .deserialize(KeyDe(&self.entry.key))
            .map_err(|e| e.at_key(self.entry.key_pos))?;
        Ok((
            value,
            NodeDe::new(&self.entry.value, self.scope, Some(&self.entry.key)),
        ))
    }
}

impl<'a> de::VariantAccess<'a> for NodeDe<'a> {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'a>>(self, seed: T) -> Result<T::Value, DeError> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'a>>(self, _len: usize, visitor: V) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_seq(self, visitor)
    }

    fn struct_variant<V: Visitor<'a>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

/// Reads one node as `T`.
pub fn from_node<'a, T: serde::Deserialize<'a>>(
    node: &'a Node,
    scope: &'a Scope<'a>,
    key: Option<&'a str>,
) -> Result<T, DeError> {
    let node_ref = node;
    T::deserialize(NodeDe::new(node, scope, key))
        .map_err(|e| e.at(node_ref, key, || node_ref.describe()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{parse, Limits};
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct T {
        host: String,
        port: u16,
        #[serde(default)]
        mode: Option<Mode>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "kebab-case")]
    enum Mode {
        Open,
        VerifyFull,
    }

    fn read(yaml: &str, vars: &[(&str, &str)]) -> Result<T, DeError> {
        let root = parse(yaml, Limits::default()).unwrap().unwrap();
        let vars: HashMap<String, VarValue> = vars
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    VarValue::known(Some(v.to_string()), false, "set by `--set`"),
                )
            })
            .collect();
        let scope = Scope {
            vars: &vars,
            raw: false,
        };
        from_node(&root, &scope, None)
    }

    #[test]
    fn keys_and_values_stay_visible_after_interpolation() {
        let err = read("host: ${h}\npotr: 1\n", &[("h", "x")]).unwrap_err();
        assert!(
            err.message.contains("`potr`") && err.message.contains("`port`"),
            "{}",
            err.message
        );
        assert_eq!(err.pos, Some(Pos { line: 2, column: 1 }));
        let err = read("host: ${h}\nport: 1\nmode: verify_full\n", &[("h", "x")]).unwrap_err();
        assert!(
            err.message.contains("`verify_full`") && err.message.contains("verify-full"),
            "{}",
            err.message
        );
    }

    #[test]
    fn numbers_say_the_range_and_the_variable() {
        let err = read("host: h\nport: ${p}\n", &[("p", "70000")]).unwrap_err();
        assert!(err.message.contains("0 to 65535"), "{}", err.message);
        assert!(
            err.message
                .contains("`70000` (from `${p}`, set by `--set`)"),
            "{}",
            err.message
        );
        assert_eq!(err.pos, Some(Pos { line: 2, column: 7 }));
        let ok = read("host: h\nport: \"${p}\"\nmode: open\n", &[("p", "5432")]).unwrap();
        assert_eq!((ok.host.as_str(), ok.port), ("h", 5432));
        assert_eq!(ok.mode, Some(Mode::Open));
    }

    #[test]
    fn missing_keys_point_at_the_map() {
        let err = read("\n\nport: 1\n", &[]).unwrap_err();
        assert!(
            err.message.contains("missing key `host`"),
            "{}",
            err.message
        );
        assert_eq!(err.pos, Some(Pos { line: 3, column: 1 }));
    }

    #[test]
    fn typos_are_recognised() {
        assert_eq!(
            did_you_mean("tiemout", ["timeout", "title"]),
            Some("timeout")
        );
        assert_eq!(did_you_mean("zzz", ["timeout"]), None);
    }
}

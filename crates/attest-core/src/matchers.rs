//! Matchers shared by check kinds: text patterns (a literal substring, or `/regex/`) and
//! value comparisons (`>= 215`, `== false`, `< 26h`, `in [a, b]`).

use std::fmt;
use std::time::Duration;

use regex::Regex;
use schemars::JsonSchema;
use serde::{de, Deserialize, Deserializer};

use crate::duration::parse_duration;
use crate::redact::Redactor;
use crate::text::clip;

/// A pattern written in a suite: `text` matches as a substring, `/re/` as a regular expression.
#[derive(Clone, JsonSchema)]
#[schemars(with = "String")]
pub enum Pattern {
    Literal(String),
    Regex(Regex),
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, String> {
        match between_slashes(text) {
            Some(_) => parse_regex(text).map(Pattern::Regex),
            None => Ok(Pattern::Literal(text.to_owned())),
        }
    }

    pub fn is_match(&self, haystack: &str) -> bool {
        match self {
            Pattern::Literal(text) => haystack.contains(text.as_str()),
            Pattern::Regex(re) => re.is_match(haystack),
        }
    }
}

/// The text between the slashes of `/re/` (a lone `/` is not a regular expression).
fn between_slashes(text: &str) -> Option<&str> {
    text.strip_prefix('/')
        .and_then(|t| t.strip_suffix('/'))
        .filter(|_| text.len() >= 2)
}

/// The one regular-expression grammar of comparisons: the SQL comparison `~ /re/` and a
/// Kubernetes field's `=~ /re/` both read their operand here, when the suite loads, so a bad
/// expression is a load error at its line and column.
///
/// - `/re/` is the expression between the slashes: `/worker/` matches `k3s-worker-02`,
///   `/:latest$/` an image tagged `latest`. Flags go inside: `/(?i)ready/`.
/// - Text without slashes is an expression as written (`^ReadWrite`), so `=~ ^Bound$` keeps
///   working; a slash inside it is a literal slash.
/// - `/re/i` (a flag after the closing slash) is refused rather than read as text with
///   slashes that can never match what was meant.
///
/// Matching is unanchored (`/worker/` finds the word anywhere); anchor with `^` and `$`.
pub fn parse_regex(text: &str) -> Result<Regex, String> {
    let text = text.trim();
    if let Some(flags) = literal_looks_like_regex(text) {
        return Err(format!(
            "expected `/regex/` with any flags inside (e.g. `/(?i)text/`), found `{text}`: the `{flags}` after the closing `/` is not part of the expression"
        ));
    }
    let source = between_slashes(text).unwrap_or(text);
    Regex::new(source).map_err(|e| format!("invalid regular expression `{text}`: {e}"))
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Pattern::Literal(text) => write!(f, "`{text}`"),
            Pattern::Regex(re) => write!(f, "`/{}/`", re.as_str()),
        }
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Pattern::parse(&String::deserialize(d)?).map_err(de::Error::custom)
    }
}

/// How a forbidden match is shown: the line itself (redacted before it is shortened, so no
/// part of a secret survives the cut), or only its number (for files that may hold secrets).
#[derive(Clone, Copy)]
pub enum ShowMatch<'r> {
    Line(&'r Redactor),
    LineNumber,
}

/// Something that matches text and shows as the suite wrote it: a [`Pattern`], or a pattern
/// matched regardless of case.
pub trait TextMatcher: fmt::Display {
    fn is_match(&self, text: &str) -> bool;
}

impl TextMatcher for Pattern {
    fn is_match(&self, text: &str) -> bool {
        Pattern::is_match(self, text)
    }
}

/// Checks `contains` (each must match) and `excludes` (none may match) against a text; returns
/// one line per problem, empty when all is well.
pub fn check_patterns<M: TextMatcher>(
    text: &str,
    contains: &[M],
    excludes: &[M],
    show: ShowMatch<'_>,
) -> Vec<String> {
    let missing = contains
        .iter()
        .filter(|p| !p.is_match(text))
        .map(|p| format!("{p} not found"));
    let present = excludes.iter().filter(|p| p.is_match(text)).map(move |p| {
        match text.lines().enumerate().find(|(_, line)| p.is_match(line)) {
            Some((index, line)) => match show {
                ShowMatch::Line(redactor) => {
                    format!("{p} found: `{}`", clip(&redactor.redact(line.trim()), 120))
                }
                ShowMatch::LineNumber => format!("{p} found on line {}", index + 1),
            },
            None => format!("{p} found"),
        }
    });
    missing.chain(present).collect()
}

/// A comparison written in a suite as `op operand` and parsed when the suite loads:
/// `>= 215`, `== false`, `!= ''`, `== null`, `~ /^active$/`, `in [active, idle]`, `< 26h`.
/// The one grammar of comparisons: the `sql` kind's `expect:` and `rows:`, a `kube` check's
/// `count:` and the right side of its `fields:` (`status.phase == Bound`) are all read here,
/// with one set of operators ([`OPERATORS`]). Observed values arrive as text (PostgreSQL's
/// text output, a Kubernetes field) and are read as the kind of value the operand is.
#[derive(Clone, JsonSchema)]
#[schemars(with = "String")]
pub struct Comparison {
    pub op: Op,
    /// The operator as written (`=~` and `~` are one operator).
    pub symbol: &'static str,
    pub operand: Operand,
    /// The operand as written, without the quotes around it (`Bound`, `[a, b]`, `/re/`).
    pub written: String,
    /// As written, for messages.
    text: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Matches,
    In,
}

/// Every spelling of every operator, longest first where one starts another.
pub const OPERATORS: [(&str, Op); 9] = [
    ("==", Op::Eq),
    ("!=", Op::Ne),
    (">=", Op::Ge),
    ("<=", Op::Le),
    (">", Op::Gt),
    ("<", Op::Lt),
    ("=~", Op::Matches),
    ("~", Op::Matches),
    ("in", Op::In),
];

impl Op {
    /// Whether an ordering of found against expected satisfies the operator (`==` and `!=`
    /// included; never `~` or `in`).
    pub fn holds(self, ordering: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            Op::Eq => ordering == Equal,
            Op::Ne => ordering != Equal,
            Op::Lt => ordering == Less,
            Op::Le => ordering != Greater,
            Op::Gt => ordering == Greater,
            Op::Ge => ordering != Less,
            Op::Matches | Op::In => false,
        }
    }

    fn orders(self) -> bool {
        matches!(self, Op::Gt | Op::Ge | Op::Lt | Op::Le)
    }
}

/// What the observed value is compared with.
#[derive(Debug, Clone)]
pub enum Operand {
    /// `==`, `!=`, `<`, `<=`, `>`, `>=`.
    Value(Value),
    /// `~ /re/`.
    Pattern(Regex),
    /// `in [a, b]`: equal to one of them (each as written, and as a value).
    OneOf(Vec<(String, Value)>),
    /// Another field of the same object (`== spec.replicas`, `== .spec.replicas`), where
    /// [`Operands::ValuesOrFields`] allows one.
    Field(crate::field_path::FieldPath),
}

/// Which operands a comparison may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operands {
    /// Values only, and an order only between numbers or durations (SQL values, counts).
    Values,
    /// Values, or a field of the same object; any two values have an order (quantities such
    /// as `8Gi` by size, text by its characters). Kubernetes fields.
    ValuesOrFields,
}

/// The top-level keys of a Kubernetes object that make an unquoted operand a field of the
/// same object (`spec.replicas`); any path can be written with a leading dot instead
/// (`.data.password`), and quotes always make text (`'spec.replicas'`).
const FIELD_ROOTS: [&str; 3] = ["metadata", "spec", "status"];

/// An unquoted operand that names a field: `.PATH`, or `PATH` under one of [`FIELD_ROOTS`].
fn field_operand(written: &str) -> Option<&str> {
    if let Some(path) = written.strip_prefix('.') {
        return path
            .starts_with(|c: char| c.is_ascii_alphabetic())
            .then_some(path);
    }
    FIELD_ROOTS
        .iter()
        .any(|root| {
            written
                .strip_prefix(root)
                .is_some_and(|rest| rest.starts_with(['.', '[']))
        })
        .then_some(written)
}

/// Why a comparison cannot be read; `shown` is the text the suite wrote (the whole field
/// assertion for a Kubernetes field).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComparisonError {
    #[error("`{shown}` should start with ==, !=, >, >=, <, <=, ~ or in (e.g. `>= 215`)")]
    NoOperator { shown: String },
    #[error("expected one operator (==, !=, >, >=, <, <=, ~ or in) and a value, found `{shown}`")]
    TwoOperators { shown: String },
    #[error("expected a list such as `in [a, b]`, found `{shown}`")]
    NotAList { shown: String },
    #[error("`{shown}`: only numbers and durations (`26h`) can be ordered")]
    Unordered { shown: String },
    /// A regular expression or a field path that cannot be read.
    #[error("`{shown}`: {reason}")]
    Operand { shown: String, reason: String },
}

/// A typed operand. Extension point: a new kind of value (Kubernetes quantities such as `8Gi`
/// or `500m` for `status.capacity.storage >= 8Gi`) is a new variant, recognised in
/// [`Value::parse`] and read from observed text in [`Value::read_like`]; `Comparison` itself
/// does not change.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`: SQL NULL, a missing field.
    Null,
    Bool(bool),
    /// Finite numbers only: `NaN` and `inf` stay text.
    Number(f64),
    /// A humantime duration (`26h`, `500ms`); observed text is a PostgreSQL interval
    /// (`1 day 02:00:00`) or a humantime duration.
    Duration(Duration),
    Text(String),
}

impl Value {
    /// An operand as written: quotes make it text; otherwise null, a number, a duration, a
    /// boolean, or text, in that order.
    pub fn parse(text: &str) -> Value {
        let text = text.trim();
        for quote in ['\'', '"'] {
            if let Some(inner) = text.strip_prefix(quote).and_then(|t| t.strip_suffix(quote)) {
                return Value::Text(inner.to_owned());
            }
        }
        if text.eq_ignore_ascii_case("null") {
            Value::Null
        } else if let Some(n) = finite_number(text) {
            Value::Number(n)
        } else if let Some(b) = boolean(text) {
            Value::Bool(b)
        } else if let Ok(d) = parse_duration(text) {
            Value::Duration(d)
        } else {
            Value::Text(text.to_owned())
        }
    }

    /// Observed text as a signed magnitude of the operand's kind: a number, or the seconds
    /// of a duration (a PostgreSQL interval such as `1 day 02:00:00` or `-00:00:05`, or a
    /// humantime duration such as `26h`).
    fn magnitude_of(&self, observed: &str) -> Option<f64> {
        match self {
            Value::Number(_) => finite_number(observed),
            Value::Duration(_) => parse_interval(observed)
                .or_else(|| parse_duration(observed).ok().map(|d| d.as_secs_f64())),
            Value::Null | Value::Bool(_) | Value::Text(_) => None,
        }
    }

    /// Seconds of a duration, the number of a number: what ordering compares.
    fn magnitude(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            Value::Duration(d) => Some(d.as_secs_f64()),
            Value::Null | Value::Bool(_) | Value::Text(_) => None,
        }
    }

    /// Whether observed text (`None`: NULL) is this value, read as its kind (`1.0 == 1`,
    /// `t == true`, `1 day == 24h`).
    fn equals(&self, observed: Option<&str>) -> bool {
        match (self, observed) {
            (Value::Null, observed) => observed.is_none(),
            (_, None) => false,
            (Value::Bool(b), Some(text)) => boolean(text) == Some(*b),
            (Value::Number(_) | Value::Duration(_), Some(text)) => {
                self.magnitude_of(text).is_some() && self.magnitude_of(text) == self.magnitude()
            }
            (Value::Text(t), Some(text)) => t == text,
        }
    }
}

fn finite_number(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok().filter(|n| n.is_finite())
}

/// Booleans as PostgreSQL's text output and YAML write them.
fn boolean(text: &str) -> Option<bool> {
    match text.trim() {
        "t" | "true" => Some(true),
        "f" | "false" => Some(false),
        _ => None,
    }
}

impl fmt::Debug for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Comparison {
    type Err = ComparisonError;
    fn from_str(text: &str) -> Result<Self, ComparisonError> {
        Comparison::parse(text, Operands::Values, text.trim())
    }
}

/// Removes one pair of matching quotes: `'5'` is the text `5`.
fn unquoted(text: &str) -> Option<&str> {
    ['\'', '"'].into_iter().find_map(|quote| {
        text.strip_prefix(quote)
            .and_then(|t| t.strip_suffix(quote))
            .filter(|_| text.len() >= 2)
    })
}

impl Comparison {
    /// The one parser of `op operand`; `shown` is what messages quote.
    pub fn parse(
        text: &str,
        operands: Operands,
        shown: &str,
    ) -> Result<Comparison, ComparisonError> {
        let text = text.trim();
        let shown = || shown.to_owned();
        let (symbol, op, rest) = OPERATORS
            .iter()
            .find_map(|(symbol, op)| {
                let rest = text.strip_prefix(symbol)?;
                // `in` is a word: `in [a]`, never `inactive`.
                if *op == Op::In && !rest.starts_with(char::is_whitespace) {
                    return None;
                }
                Some((*symbol, *op, rest.trim()))
            })
            .ok_or_else(|| ComparisonError::NoOperator { shown: shown() })?;
        if rest.starts_with(['=', '<', '>', '!', '~']) {
            return Err(ComparisonError::TwoOperators { shown: shown() });
        }
        if op == Op::In && !(rest.starts_with('[') && rest.ends_with(']')) {
            return Err(ComparisonError::NotAList { shown: shown() });
        }
        let bad_operand = |reason: String| ComparisonError::Operand {
            shown: shown(),
            reason,
        };
        let operand = match op {
            Op::Matches => Operand::Pattern(parse_regex(rest).map_err(bad_operand)?),
            Op::In => Operand::OneOf(
                rest.trim_start_matches('[')
                    .trim_end_matches(']')
                    .split(',')
                    .map(|choice| {
                        let choice = choice.trim();
                        let written = unquoted(choice).unwrap_or(choice).to_owned();
                        (written, Value::parse(choice))
                    })
                    .collect(),
            ),
            _ => match field_operand(rest).filter(|_| operands == Operands::ValuesOrFields) {
                Some(path) => {
                    Operand::Field(crate::field_path::FieldPath::parse(path).map_err(bad_operand)?)
                }
                None => {
                    let value = Value::parse(rest);
                    if op.orders() && operands == Operands::Values && value.magnitude().is_none() {
                        return Err(ComparisonError::Unordered { shown: shown() });
                    }
                    Operand::Value(value)
                }
            },
        };
        Ok(Comparison {
            op,
            symbol,
            operand,
            written: unquoted(rest).unwrap_or(rest).to_owned(),
            text: text.to_owned(),
        })
    }
}

impl Comparison {
    /// The comparison as the suite wrote it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Why this cannot compare a count of `things` (rows, objects): only ==, !=, <, <=, >, >=
    /// with a whole, non-negative number can.
    pub fn count_problem(&self, things: &str) -> Option<String> {
        match &self.operand {
            Operand::Value(Value::Number(n)) if *n >= 0.0 && n.fract() == 0.0 => None,
            _ => Some(format!(
                "expected a whole number of {things} such as `>= 1`, found `{}`",
                self.text
            )),
        }
    }
}

impl<'de> Deserialize<'de> for Comparison {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse::<Comparison>()
            .map_err(de::Error::custom)
    }
}

impl Comparison {
    /// Whether the observed value (text; `None` is SQL NULL or a missing field) satisfies the
    /// comparison. An error when the observed value cannot be read as the operand's kind and
    /// an order was asked for (`< 26h` against `abc`).
    pub fn holds(&self, observed: Option<&str>) -> Result<bool, String> {
        match &self.operand {
            Operand::Pattern(re) => Ok(observed.is_some_and(|text| re.is_match(text))),
            Operand::OneOf(choices) => Ok(choices.iter().any(|(_, c)| c.equals(observed))),
            Operand::Field(path) => Err(format!(
                "`{}`: the field `{path}` is a field of an object, and there is none here",
                self.text
            )),
            Operand::Value(value) => match self.op {
                Op::Eq => Ok(value.equals(observed)),
                Op::Ne => Ok(!value.equals(observed)),
                _ => self.order(observed, value),
            },
        }
    }

    fn order(&self, observed: Option<&str>, limit: &Value) -> Result<bool, String> {
        let Some(text) = observed else {
            return Ok(false);
        };
        let (Some(a), Some(b)) = (limit.magnitude_of(text), limit.magnitude()) else {
            return Err(match limit {
                Value::Duration(_) => format!(
                    "`{text}` is not an interval; compare it with `{}` as e.g. `now() - max(created_at)`",
                    self.text
                ),
                _ => format!("cannot order `{text}` against `{}`: not a number", self.text),
            });
        };
        Ok(a.partial_cmp(&b).is_some_and(|o| self.op.holds(o)))
    }
}

/// Seconds in a PostgreSQL interval as printed by the default `postgres` style:
/// `1 year 2 mons 3 days 04:05:06.5`, `-00:00:05`, `2 days`.
pub fn parse_interval(text: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut parts = text.split_whitespace().peekable();
    let mut seen = false;
    while let Some(part) = parts.next() {
        if part.contains(':') {
            let negative = part.starts_with('-');
            let mut fields = part.trim_start_matches(['-', '+']).split(':');
            let h: f64 = fields.next()?.parse().ok()?;
            let m: f64 = fields.next()?.parse().ok()?;
            let s: f64 = fields.next().unwrap_or("0").parse().ok()?;
            let secs = h * 3600.0 + m * 60.0 + s;
            total += if negative { -secs } else { secs };
        } else {
            let n: f64 = part.parse().ok()?;
            let unit = parts.next()?;
            let scale = match unit.trim_end_matches('s') {
                "year" => 365.0 * 86400.0,
                "mon" => 30.0 * 86400.0,
                "day" => 86400.0,
                "hour" => 3600.0,
                "min" | "minute" => 60.0,
                "sec" | "second" => 1.0,
                _ => return None,
            };
            total += n * scale;
        }
        seen = true;
    }
    seen.then_some(total)
}
/// The `x` of `/re/x`: text that looks like a regex with flags after its closing slash, which
/// attest takes as literal text (flags go inside: `/(?i)re/`).
pub(crate) fn literal_looks_like_regex(text: &str) -> Option<&str> {
    let body = text.strip_prefix('/')?;
    let close = body.rfind('/')?;
    let flags = &body[close + 1..];
    // One letter (`/x/q`, `/x/i`) or letters that are all regex flags (`/x/gi`); a path such
    // as `/var/db` stays literal text.
    let flag_like = flags.len() == 1 && flags.chars().all(|c| c.is_ascii_alphabetic())
        || (!flags.is_empty() && flags.len() <= 4 && flags.chars().all(|c| "gimsuxyU".contains(c)));
    (close > 0 && flag_like).then_some(flags)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_regex_patterns() {
        let literal = Pattern::parse("Applying migrations").unwrap();
        assert!(literal.is_match("  Applying migrations... OK"));
        let re = Pattern::parse("/sqlite[0-9]?/").unwrap();
        assert!(re.is_match("found db.sqlite3"));
        assert!(!re.is_match("postgresql"));
        assert!(Pattern::parse("/(/")
            .unwrap_err()
            .contains("invalid regular expression"));
        // A lone slash is a literal, not an empty regex.
        assert!(matches!(Pattern::parse("/").unwrap(), Pattern::Literal(_)));
    }

    #[test]
    fn pattern_problems_name_what_was_wrong() {
        let text = "ok line\nERROR: sqlite locked\n";
        let problems = check_patterns(
            text,
            &[
                Pattern::parse("ok").unwrap(),
                Pattern::parse("migrated").unwrap(),
            ],
            &[Pattern::parse("/(?i)sqlite/").unwrap()],
            ShowMatch::Line(&Redactor::default()),
        );
        assert_eq!(problems.len(), 2);
        assert!(problems[0].contains("`migrated` not found"));
        assert!(problems[1].contains("ERROR: sqlite locked"));
        let numbered = check_patterns(
            text,
            &[],
            &[Pattern::parse("sqlite").unwrap()],
            ShowMatch::LineNumber,
        );
        assert_eq!(numbered, vec!["`sqlite` found on line 2".to_owned()]);
    }

    fn c(text: &str) -> Comparison {
        text.parse().unwrap()
    }

    #[test]
    fn numeric_boolean_text_and_regex_comparisons() {
        assert!(c(">= 215").holds(Some("215")).unwrap());
        assert!(!c(">= 215").holds(Some("214")).unwrap());
        assert!(c("== false").holds(Some("f")).unwrap());
        assert!(c("!= ''").holds(Some("x")).unwrap());
        assert!(c("~ /^act/").holds(Some("active")).unwrap());
        assert!(c("in [active, inactive]").holds(Some("inactive")).unwrap());
        assert!(c("== null").holds(None).unwrap());
        assert!(c("== NaN").holds(Some("NaN")).unwrap());
        assert!("=> 3"
            .parse::<Comparison>()
            .unwrap_err()
            .to_string()
            .contains("should start with"));
    }

    #[test]
    fn comparisons_and_field_assertions_share_one_regex_grammar() {
        // Slashes delimit; without them the text is the expression.
        assert!(parse_regex("/worker/").unwrap().is_match("k3s-worker-02"));
        assert!(parse_regex("/:latest$/")
            .unwrap()
            .is_match("postgresql:latest"));
        assert!(parse_regex("^ReadWrite").unwrap().is_match("ReadWriteOnce"));
        assert!(c("~ /:latest$/").holds(Some("postgresql:latest")).unwrap());
        assert!(c("~ ^act").holds(Some("active")).unwrap());
        // Flags after the closing slash, and bad expressions, are refused when loading.
        for bad in ["~ /active/i", "~ /(/"] {
            let err = bad.parse::<Comparison>().unwrap_err().to_string();
            assert!(err.starts_with(&format!("`{bad}`: ")), "{err}");
        }
        assert!(parse_regex("/x/i").unwrap_err().contains("flags inside"));
    }

    #[test]
    fn intervals_compare_with_humantime_durations() {
        assert_eq!(parse_interval("1 day 02:00:00"), Some(93600.0));
        assert_eq!(parse_interval("-00:00:05"), Some(-5.0));
        assert_eq!(parse_interval("3 days"), Some(259200.0));
        assert!(c("< 26h").holds(Some("1 day 01:59:59")).unwrap());
        assert!(!c("< 26h").holds(Some("1 day 02:00:01")).unwrap());
        assert!(c("< 26h")
            .holds(Some("abc"))
            .unwrap_err()
            .contains("not an interval"));
    }

    #[test]
    fn operands_are_typed_when_the_suite_loads() {
        assert!(matches!(
            c("== 1").operand,
            Operand::Value(Value::Number(_))
        ));
        assert!(matches!(
            c("< 26h").operand,
            Operand::Value(Value::Duration(_))
        ));
        assert!(matches!(
            c("== t").operand,
            Operand::Value(Value::Bool(true))
        ));
        assert!(matches!(
            c("== '5'").operand,
            Operand::Value(Value::Text(_))
        ));
        // Read as the operand's kind: numbers numerically, durations in either notation.
        assert!(c("== 1").holds(Some("1.0")).unwrap());
        assert!(c("in [1, 2]").holds(Some("2.00")).unwrap());
        assert!(!c("== '5'").holds(Some("5.0")).unwrap());
        assert!(c("< 5s").holds(Some("-00:00:05")).unwrap());
        assert!(c("== 1d").holds(Some("24:00:00")).unwrap());
        assert!(!c("== 1").holds(None).unwrap() && c("!= null").holds(Some("x")).unwrap());
        assert!(c("> 3")
            .holds(Some("abc"))
            .unwrap_err()
            .contains("not a number"));
        // Only numbers and durations have an order.
        let err = ">= abc".parse::<Comparison>().unwrap_err().to_string();
        assert!(err.contains("can be ordered"), "{err}");
    }
}

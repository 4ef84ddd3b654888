//! `sql`: run a query and assert on its result: the value (first column of the first row, or a
//! named column of every row), the row count, emptiness, or an interval's age.

use regex::Regex;
use schemars::JsonSchema;
use serde::{de, Deserialize, Deserializer};
use std::fmt;
use tokio_postgres::SimpleQueryMessage;

use super::{Kind, Verdict};
use crate::context::CheckContext;
use crate::matchers::clip;
use crate::pg::{server_error, ConnectionSpec};
use crate::suite::parse_duration;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlCheck {
    pub connection: ConnectionSpec,
    pub query: String,
    /// Condition on the value: `>= 215`, `== false`, `!= ''`, `~ /^active$/`, `in [a, b]`,
    /// `< 26h` (the value is an interval, e.g. `now() - max(created_at)`).
    #[serde(default)]
    pub expect: Option<Comparison>,
    /// Judge this column in every row instead of the first column of the first row.
    #[serde(default)]
    pub column: Option<String>,
    /// Condition on the number of rows, e.g. `>= 1`.
    #[serde(default)]
    pub rows: Option<Comparison>,
    /// Whether the result must be empty (`true`) or not (`false`).
    #[serde(default)]
    pub empty: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Matches,
    In,
}

/// `op operand`, parsed when the suite loads.
#[derive(Clone, JsonSchema)]
#[schemars(with = "String")]
pub struct Comparison {
    op: Op,
    text: String,
    operand: String,
    regex: Option<Regex>,
    choices: Vec<String>,
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
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let ops = [
            ("==", Op::Eq),
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("<=", Op::Le),
            (">", Op::Gt),
            ("<", Op::Lt),
            ("~", Op::Matches),
            ("in ", Op::In),
        ];
        let (op, rest) = ops
            .iter()
            .find_map(|(token, op)| text.strip_prefix(token).map(|rest| (*op, rest.trim())))
            .ok_or_else(|| {
                format!("`{text}` should start with ==, !=, >, >=, <, <=, ~ or in (e.g. `>= 215`)")
            })?;
        let operand = rest.trim_matches(|c| c == '\'' || c == '"').to_owned();
        let regex = match op {
            Op::Matches => {
                let pattern = rest
                    .strip_prefix('/')
                    .and_then(|r| r.strip_suffix('/'))
                    .unwrap_or(rest);
                Some(
                    Regex::new(pattern)
                        .map_err(|e| format!("`{text}`: invalid regular expression: {e}"))?,
                )
            }
            _ => None,
        };
        let choices = match op {
            Op::In => rest
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .map(|c| c.trim().trim_matches(|c| c == '\'' || c == '"').to_owned())
                .collect(),
            _ => Vec::new(),
        };
        Ok(Comparison {
            op,
            text: text.to_owned(),
            operand,
            regex,
            choices,
        })
    }
}

impl<'de> Deserialize<'de> for Comparison {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

/// Booleans as PostgreSQL's text protocol writes them.
fn normalize_bool(text: &str) -> &str {
    match text {
        "t" | "true" => "true",
        "f" | "false" => "false",
        other => other,
    }
}

impl Comparison {
    /// Whether `value` (PostgreSQL text output; `None` is SQL NULL) satisfies the comparison.
    pub fn holds(&self, value: Option<&str>) -> Result<bool, String> {
        let Some(value) = value else {
            return Ok(match self.op {
                Op::Eq => self.operand.eq_ignore_ascii_case("null"),
                Op::Ne => !self.operand.eq_ignore_ascii_case("null"),
                _ => false,
            });
        };
        let ordering = |a: f64, b: f64| match self.op {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
            Op::Matches | Op::In => unreachable!("handled before"),
        };
        match self.op {
            Op::Matches => Ok(self.regex.as_ref().is_some_and(|re| re.is_match(value))),
            Op::In => Ok(self
                .choices
                .iter()
                .any(|c| normalize_bool(c) == normalize_bool(value))),
            _ => {
                // Only finite numbers compare as numbers; "NaN" or "inf" text compares as text.
                let number = |text: &str| text.parse::<f64>().ok().filter(|n| n.is_finite());
                if let (Some(a), Some(b)) = (number(value), number(&self.operand)) {
                    return Ok(ordering(a, b));
                }
                if let Ok(limit) = parse_duration(&self.operand) {
                    let age = parse_interval(value)
                        .ok_or_else(|| format!("`{value}` is not an interval; compare it with `{}` as e.g. `now() - max(created_at)`", self.text))?;
                    return Ok(ordering(age, limit.as_secs_f64()));
                }
                match self.op {
                    Op::Eq => Ok(normalize_bool(value) == normalize_bool(&self.operand)),
                    Op::Ne => Ok(normalize_bool(value) != normalize_bool(&self.operand)),
                    _ => Err(format!(
                        "cannot order `{value}` against `{}`: neither numbers nor an interval",
                        self.operand
                    )),
                }
            }
        }
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

impl Kind for SqlCheck {
    fn target(&self) -> String {
        self.connection.label()
    }

    fn validate(&self) -> Vec<super::FieldProblem> {
        use super::FieldProblem;
        let mut problems = crate::validate::connection(&self.connection);
        if self.query.trim().is_empty() {
            problems.push(FieldProblem::new(
                "query",
                "expected a query, found empty text",
            ));
        }
        // What cannot work in this comparison, known before running it: an operand that is
        // itself an operator (`=== 1`), an unclosed list, an ordering against text that is
        // neither a number nor a duration; for row counts (`counts`), anything but a number.
        fn problem(c: &Comparison, counts: bool) -> Option<String> {
            if crate::validate::is_deferred(&c.operand) {
                return None;
            }
            let found = format!("found `{}`", c.text);
            let operand = c.operand.trim();
            if operand.is_empty() && !c.text.contains("''") && !c.text.contains("\"\"") {
                return Some(format!("expected a value after the operator, {found}"));
            }
            if operand.starts_with(['=', '<', '>', '!', '~']) {
                return Some(format!(
                    "expected one operator (==, !=, >, >=, <, <=, ~ or in) and a value, {found}"
                ));
            }
            let number = operand.parse::<f64>().is_ok_and(f64::is_finite);
            match c.op {
                Op::In if !(c.text.trim_end().ends_with(']') && c.text.contains('[')) => {
                    Some(format!("expected a list such as `in [a, b]`, {found}"))
                }
                Op::Matches | Op::In if counts => Some(format!(
                    "expected a row count comparison such as `>= 1`, {found}"
                )),
                _ if counts
                    && !(number
                        && operand
                            .parse::<f64>()
                            .is_ok_and(|n| n >= 0.0 && n.fract() == 0.0)) =>
                {
                    Some(format!(
                        "expected a whole number of rows such as `>= 1`, {found}"
                    ))
                }
                Op::Gt | Op::Ge | Op::Lt | Op::Le
                    if !number && parse_duration(operand).is_err() =>
                {
                    Some(format!(
                    "expected a number (`>= 215`) or a duration (`< 26h`) to order against, {found}"
                ))
                }
                _ => None,
            }
        }
        if let Some(expect) = &self.expect {
            problems.extend(problem(expect, false).map(|m| FieldProblem::new("expect", m)));
        }
        if let Some(rows) = &self.rows {
            problems.extend(problem(rows, true).map(|m| FieldProblem::new("rows", m)));
        }
        problems
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let target = match self.connection.resolve(ctx) {
            Ok(target) => target,
            Err(e) => return Verdict::error(e),
        };
        let query = match ctx.expand(&self.query) {
            Ok(query) => query,
            Err(e) => return Verdict::error(e),
        };
        let client = match ctx
            .services
            .sessions
            .client(ctx.services.network.as_ref(), &target)
            .await
        {
            Ok(client) => client,
            Err(e) => return super::cannot_connect(&target, &e),
        };
        let started = std::time::Instant::now();
        let messages = match client.simple_query(&query).await {
            Ok(messages) => messages,
            Err(e) => {
                return Verdict::fail(format!("query failed: {}", server_error(&e)))
                    .expected("the query runs")
                    .found(server_error(&e))
                    .hint("run it in psql as the same role to see the whole error; a permission error means a missing GRANT")
            }
        };
        let elapsed = started.elapsed();
        let rows: Vec<_> = messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(row),
                _ => None,
            })
            .collect();
        let one_line = query.split_whitespace().collect::<Vec<_>>().join(" ");
        let shown_query = clip(&ctx.redactor.redact(&one_line), 80);

        let mut problems = Vec::new();
        let mut shown = format!("{} row(s)", rows.len());
        if let Some(empty) = self.empty {
            if empty != rows.is_empty() {
                problems.push(if empty {
                    format!("{} row(s), expected none", rows.len())
                } else {
                    "no rows, expected some".into()
                });
            }
        }
        if let Some(condition) = &self.rows {
            match condition.holds(Some(&rows.len().to_string())) {
                Ok(true) => {}
                Ok(false) => {
                    problems.push(format!("{} row(s), expected `{condition}`", rows.len()))
                }
                Err(e) => return Verdict::error(e),
            }
        }
        if let Some(condition) = &self.expect {
            let values: Vec<Option<&str>> = match &self.column {
                None => match rows.first() {
                    Some(row) => vec![row.get(0)],
                    None => {
                        problems.push(format!(
                            "no rows, so no value to compare with `{condition}`"
                        ));
                        vec![]
                    }
                },
                Some(_) if rows.is_empty() => {
                    problems.push(format!(
                        "no rows, so no value to compare with `{condition}`"
                    ));
                    vec![]
                }
                Some(column) => {
                    let mut values = Vec::new();
                    for row in &rows {
                        match row.try_get(column.as_str()) {
                            Ok(value) => values.push(value),
                            Err(_) => {
                                return Verdict::error(format!(
                                    "the result has no column `{column}`"
                                ))
                            }
                        }
                    }
                    values
                }
            };
            for value in &values {
                match condition.holds(*value) {
                    Ok(true) => {}
                    Ok(false) => problems.push(format!(
                        "value `{}`, expected `{condition}`",
                        value.unwrap_or("NULL")
                    )),
                    Err(e) => return Verdict::error(e),
                }
            }
            if let Some(first) = values.first() {
                shown = format!(
                    "value `{}` ({} row(s))",
                    first.unwrap_or("NULL"),
                    rows.len()
                );
            }
        }
        let expectation = [
            self.expect.as_ref().map(|c| format!("value {c}")),
            self.rows.as_ref().map(|c| format!("rows {c}")),
            self.empty.map(|e| {
                if e {
                    "no rows".to_owned()
                } else {
                    "some rows".to_owned()
                }
            }),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ");
        let verdict = if problems.is_empty() {
            Verdict::pass(format!(
                "`{shown_query}` as {}: {shown}, {expectation}",
                target.user
            ))
        } else {
            Verdict::fail(format!(
                "`{shown_query}` as {}: {}",
                target.user,
                problems.join("; ")
            ))
            .expected(expectation)
            .found(shown)
        };
        verdict
            .measure("rows", rows.len() as f64)
            .measure("query_ms", super::millis(elapsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            .contains("should start with"));
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
}

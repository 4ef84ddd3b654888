//! `sql`: run a query and assert on its result: the value (first column of the first row, or a
//! named column of every row), the row count, emptiness, or an interval's age.

use schemars::JsonSchema;
use serde::Deserialize;
use tokio_postgres::SimpleQueryMessage;

use super::connection::ConnectionSpec;
use super::{Kind, Verdict};
use crate::context::CheckContext;
use crate::matchers::Comparison;
use crate::pg::server_error;
use crate::text::clip;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlCheck {
    pub connection: ConnectionSpec,
    pub query: String,
    /// Condition on the value: `>= 215`, `== false`, `!= ''`, `~ /^active$/` (or `=~`), `in [a, b]`,
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

impl Kind for SqlCheck {
    const DESCRIPTION: &'static str =
        "Runs a query and judges the value, a column of every row, the row count or emptiness.";
    fn connection(&self) -> Option<&ConnectionSpec> {
        Some(&self.connection)
    }

    fn validate(&self) -> Vec<super::FieldProblem> {
        // Comparisons (`expect`, `rows`) are checked as they are read (`matchers::Comparison`).
        let mut problems = crate::validate::connection(&self.connection);
        if self.query.trim().is_empty() {
            problems.push(super::FieldProblem::new(
                "query",
                "expected a query, found empty text",
            ));
        }
        if let Some(problem) = self
            .rows
            .as_ref()
            .and_then(|rows| rows.count_problem("rows"))
        {
            problems.push(super::FieldProblem::new("rows", problem));
        }
        problems
    }

    fn query_ahead(&self) -> Option<super::QueryAhead<'_>> {
        // A value registered by an earlier check is known only once that check has run.
        let deferred =
            crate::text::is_deferred(&self.query) || self.connection.has_runtime_values();
        (!deferred).then_some(super::QueryAhead {
            connection: &self.connection,
            query: &self.query,
        })
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let target = match super::resolve_connection(&self.connection, ctx).await {
            Ok(target) => target,
            Err(fault) => return fault.into(),
        };
        let query = match ctx.expand(&self.query) {
            Ok(query) => query,
            Err(e) => return Verdict::error(e),
        };
        // The query's time: on the server, for one sent ahead; else from the moment it is sent.
        let ahead = match &ctx.ahead {
            Some(ahead) => {
                let services = &ctx.services;
                let pipeline = &ahead.pipeline;
                pipeline
                    .answer(
                        ahead.position,
                        &target,
                        &services.sessions,
                        &services.network,
                    )
                    .await
            }
            None => None,
        };
        let (answer, elapsed) = match ahead {
            Some(answered) => answered,
            None => {
                // Waits for a free session when the server's share of the pool is in use; a
                // timeout or Ctrl-C while the query runs cancels it on the server (see
                // `pg::Lease`).
                let mut session = match ctx
                    .services
                    .sessions
                    .lease(&ctx.services.network, &target)
                    .await
                {
                    Ok(session) => session,
                    Err(e) => return super::cannot_connect(&target, &e),
                };
                let started = std::time::Instant::now();
                let answer = session.simple_query(&query).await;
                (answer, started.elapsed())
            }
        };
        let messages = match answer {
            Ok(messages) => messages,
            Err(e) => {
                return Verdict::fail(format!("query failed: {}", server_error(&e)))
                    .expected("the query runs")
                    .found(server_error(&e))
                    .hint("run it in psql as the same role to see the whole error; a permission error means a missing GRANT")
            }
        };
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

//! `pg-crud` (mutating): as a given role, create a scratch table, insert N rows, read them
//! back, update, delete, verifying counts at each step and timing each; drop the table after.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Deserialize;

use super::ConnectionSpec;
use super::{millis, Kind, Verdict};
use crate::context::CheckContext;
use crate::duration::format_duration;
use crate::pg::{ident, literal, server_error, sqlstate, teardown_session, unique_name};
use crate::safety::Safety;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgCrudCheck {
    /// Connection as the application role.
    pub connection: ConnectionSpec,
    /// How many rows to write (default 100).
    #[serde(default = "hundred")]
    pub rows: u32,
    /// Schema for the scratch table (default `public`).
    #[serde(default = "public")]
    pub schema: String,
}

fn hundred() -> u32 {
    100
}

fn public() -> String {
    "public".into()
}

const MAX_ROWS: u32 = 1_000_000;

fn step_failed(step: &str, role: &str, schema: &str, error: &tokio_postgres::Error) -> Verdict {
    let hint = match (step, sqlstate(error)) {
        ("create", Some("42501")) => format!(
            "role `{role}` has no CREATE on schema {schema} — the stories grant `ALL ON SCHEMA public`"
        ),
        (_, Some("42501")) => format!("role `{role}` lacks a privilege on its own table: check ALTER DEFAULT PRIVILEGES"),
        _ => "run the same statement in psql as this role for the full error".to_owned(),
    };
    Verdict::fail(format!(
        "{step} failed as `{role}`: {}",
        server_error(error)
    ))
    .expected(format!("`{role}` can {step}"))
    .found(server_error(error))
    .hint(hint)
}

impl Kind for PgCrudCheck {
    const DESCRIPTION: &'static str = "Mutating: as the role, creates a scratch table, inserts, reads, updates and deletes rows, drops it.";
    const SAFETY: Safety = Safety::Mutating;
    fn connection(&self) -> Option<&ConnectionSpec> {
        Some(&self.connection)
    }

    fn validate(&self) -> Vec<super::FieldProblem> {
        let mut problems = crate::validate::connection(&self.connection);
        problems.extend(crate::validate::count(
            "rows",
            self.rows.into(),
            1,
            MAX_ROWS.into(),
        ));
        problems
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        if self.rows == 0 || self.rows > MAX_ROWS {
            return Verdict::error(format!("rows must be between 1 and {MAX_ROWS}"));
        }
        let (target, session) = match super::open_session(&self.connection, ctx).await {
            Ok(opened) => opened,
            Err(verdict) => return verdict,
        };
        let table = format!(
            "{}.{}",
            ident(&self.schema),
            ident(&unique_name("attest_crud"))
        );
        // Raised just before CREATE TABLE is sent; teardown undoes only what was attempted.
        let attempted = Arc::new(AtomicBool::new(false));
        {
            let (network, target, table) =
                (ctx.services.network.clone(), target.clone(), table.clone());
            let attempted = attempted.clone();
            ctx.on_teardown(format!("drop scratch table {table}"), async move {
                if !attempted.load(Ordering::SeqCst) {
                    return Ok(());
                }
                let (session, _) = teardown_session(network.as_ref(), &target, &target.dbname)
                    .await
                    .map_err(|e| e.to_string())?;
                session
                    .client
                    .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
                    .await
                    .map_err(|e| server_error(&e))
            });
        }
        let client = &session.client;
        let n = i64::from(self.rows);
        let role = &target.user;
        let mut timings: Vec<(&str, Duration)> = Vec::new();

        macro_rules! step {
            ($name:literal, $future:expr) => {{
                let started = Instant::now();
                let result = $future.await;
                timings.push(($name, started.elapsed()));
                match result {
                    Ok(value) => value,
                    Err(e) => return step_failed($name, role, &self.schema, &e),
                }
            }};
        }

        attempted.store(true, Ordering::SeqCst);
        step!(
            "create",
            client.batch_execute(&format!(
                "CREATE TABLE {table} (id bigint PRIMARY KEY, payload text NOT NULL); COMMENT ON TABLE {table} IS {}",
                literal(&ctx.marker())
            ))
        );
        let inserted = step!(
            "insert",
            client.execute(&format!("INSERT INTO {table} SELECT g, 'row ' || g FROM generate_series(1, $1::bigint) g"), &[&n])
        );
        let read: i64 = step!(
            "read",
            client.query_one(
                &format!("SELECT count(*) FROM {table} WHERE payload = 'row ' || id"),
                &[]
            )
        )
        .get(0);
        let updated = step!(
            "update",
            client.execute(
                &format!("UPDATE {table} SET payload = 'updated ' || id"),
                &[]
            )
        );
        let deleted = step!(
            "delete",
            client.execute(&format!("DELETE FROM {table}"), &[])
        );
        let left: i64 = step!(
            "verify",
            client.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        )
        .get(0);
        step!("drop", client.batch_execute(&format!("DROP TABLE {table}")));

        let counts = [
            ("inserted", inserted as i64),
            ("read back", read),
            ("updated", updated as i64),
            ("deleted", deleted as i64),
        ];
        let mut problems: Vec<String> = counts
            .iter()
            .filter(|(_, count)| *count != n)
            .map(|(what, count)| format!("{what} {count} rows, expected {n}"))
            .collect();
        if left != 0 {
            problems.push(format!("{left} rows left after delete"));
        }
        let steps = timings
            .iter()
            .map(|(name, d)| format!("{name} {}", format_duration(*d)))
            .collect::<Vec<_>>()
            .join(", ");
        let mut verdict = if problems.is_empty() {
            Verdict::pass(format!(
                "as `{role}`: create, insert {n}, read, update, delete verified ({steps})"
            ))
        } else {
            Verdict::fail(format!("as `{role}`: {}", problems.join("; ")))
                .expected(format!("{n} rows through every step"))
                .found(steps)
        };
        for (name, d) in timings {
            verdict = verdict.measure(format!("{name}_ms"), millis(d));
        }
        verdict.measure("rows", n as f64)
    }
}

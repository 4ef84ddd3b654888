//! `pg-sentinel`: write a random token to a sentinel table, or verify a token written earlier
//! (data surviving a pod delete or a node drain). The written row is removed at the end.

use schemars::JsonSchema;
use serde::Deserialize;

use super::ConnectionSpec;
use super::{Kind, Verdict};
use crate::context::CheckContext;
use crate::pg::{literal, server_error, teardown_session};
use crate::safety::Safety;

const TABLE: &str = "attest_sentinel";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgSentinelCheck {
    pub connection: ConnectionSpec,
    /// `write` a fresh token, or `verify` one.
    pub action: SentinelAction,
    /// Which sentinel (several may coexist).
    #[serde(default = "default_name")]
    pub name: String,
    /// For `verify`: the token written earlier, e.g. `${before_token}`.
    #[serde(default)]
    pub token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SentinelAction {
    Write,
    Verify,
}

fn default_name() -> String {
    "persistence".into()
}

impl Kind for PgSentinelCheck {
    const DESCRIPTION: &'static str = "Mutating: writes a random token (`action: write`) or verifies one written earlier (`action: verify`).";
    const EXPORTS: &'static [(&'static str, bool)] = &[("token", false)];

    fn connection(&self) -> Option<&ConnectionSpec> {
        Some(&self.connection)
    }

    fn validate(&self) -> Vec<super::FieldProblem> {
        let mut problems = crate::validate::connection(&self.connection);
        if self.action == SentinelAction::Verify && self.token.is_none() {
            problems.push(super::FieldProblem::new("action", "expected `token:` with `action: verify` (the token an earlier `action: write` registered, e.g. `${before_token}`), found none"));
        }
        problems
    }

    /// Writing creates a table row (and the table); verifying only reads.
    fn safety(&self) -> Safety {
        match self.action {
            SentinelAction::Write => Safety::Mutating,
            SentinelAction::Verify => Safety::ReadOnly,
        }
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let (target, session) = match super::open_session(&self.connection, ctx).await {
            Ok(opened) => opened,
            Err(verdict) => return verdict,
        };
        let client = &session.client;
        match self.action {
            SentinelAction::Write => {
                let token = crate::pg::generate_password();
                // Registered first: a write cut short by a timeout or Ctrl-C is cleaned up too.
                let (network, owner, name) = (
                    ctx.services.network.clone(),
                    target.clone(),
                    self.name.clone(),
                );
                ctx.on_teardown(format!("remove sentinel `{}`", self.name), async move {
                    let (session, _) = teardown_session(network.as_ref(), &owner, &owner.dbname)
                        .await
                        .map_err(|e| e.to_string())?;
                    let cleanup = format!(
                        "DO $$ BEGIN
                           IF to_regclass('{TABLE}') IS NOT NULL THEN
                             DELETE FROM {TABLE} WHERE name = {name};
                             IF NOT EXISTS (SELECT 1 FROM {TABLE}) THEN DROP TABLE {TABLE}; END IF;
                           END IF;
                         END $$",
                        name = literal(&name)
                    );
                    session
                        .client
                        .batch_execute(&cleanup)
                        .await
                        .map_err(|e| server_error(&e))
                });
                let sql = format!(
                    "CREATE TABLE IF NOT EXISTS {TABLE} (name text PRIMARY KEY, token text NOT NULL, written_at timestamptz NOT NULL DEFAULT now()); COMMENT ON TABLE {TABLE} IS {}",
                    literal(&ctx.marker())
                );
                if let Err(e) = client.batch_execute(&sql).await {
                    return Verdict::fail(format!(
                        "cannot create the sentinel table: {}",
                        server_error(&e)
                    ));
                }
                let upsert = format!("INSERT INTO {TABLE} (name, token) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET token = EXCLUDED.token, written_at = now()");
                if let Err(e) = client.execute(&upsert, &[&self.name, &token]).await {
                    return Verdict::fail(format!(
                        "cannot write the sentinel: {}",
                        server_error(&e)
                    ));
                }
                Verdict::pass(format!(
                    "wrote sentinel `{}` to {}",
                    self.name,
                    target.describe()
                ))
                .export("token", token)
            }
            SentinelAction::Verify => {
                let Some(expected) = &self.token else {
                    return Verdict::error("`verify` needs `token:`, e.g. `${before_token}` from a `write` check with `register: before`");
                };
                let expected = match ctx.expand(expected) {
                    Ok(token) => token,
                    Err(e) => return Verdict::error(e),
                };
                let sql = format!("SELECT token, written_at::text FROM {TABLE} WHERE name = $1");
                match client.query_opt(&sql, &[&self.name]).await {
                    Ok(Some(row)) if row.get::<_, String>(0) == expected => Verdict::pass(format!(
                        "sentinel `{}` written at {} is intact",
                        self.name,
                        row.get::<_, String>(1)
                    )),
                    Ok(Some(_)) => Verdict::fail(format!("sentinel `{}` holds a different token", self.name))
                        .expected("the token written earlier")
                        .found("another token: the data was rewritten or restored from elsewhere"),
                    Ok(None) => Verdict::fail(format!("sentinel `{}` is gone: the data did not survive", self.name))
                        .expected("the sentinel row")
                        .found("no row")
                        .hint("check that the pod mounts the same PVC (`kubectl describe pod`), and its storage class"),
                    // No sentinel table at all: the server started from an empty data
                    // directory (a volume that did not follow the pod, an emptyDir).
                    Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE) => {
                        Verdict::fail(format!(
                            "sentinel `{}` is gone: the data did not survive (its table {TABLE} does not exist: the server started from an empty data directory)",
                            self.name
                        ))
                        .expected("the sentinel row")
                        .found(format!("no table {TABLE}"))
                        .hint("the data directory was replaced: check that the pod mounts the same PVC (`kubectl describe pod`), not an emptyDir")
                    }
                    Err(e) => Verdict::fail(format!("cannot read the sentinel: {}", server_error(&e))),
                }
            }
        }
    }
}

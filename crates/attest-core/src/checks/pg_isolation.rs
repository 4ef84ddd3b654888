//! `pg-isolation` (mutating: it tries things that must fail): as an application role, expect
//! denial of what the stories say an app user must not do. A denial that does not happen is a
//! failure naming the hole; anything an attempt created is removed at once.

use schemars::JsonSchema;
use serde::Deserialize;

use super::ConnectionSpec;
use super::{Kind, Verdict};
use crate::context::CheckContext;
use crate::pg::{
    connect, ident, quote_qualified, server_error, sqlstate, teardown_session, unique_name,
    ConnectError,
};
use crate::safety::Safety;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgIsolationCheck {
    /// Connection as the application role.
    pub connection: ConnectionSpec,
    /// Other services' databases the role must not connect to.
    #[serde(default)]
    pub databases: Vec<String>,
    /// Tables (`schema.table`, in the connection's database) the role must not read.
    #[serde(default)]
    pub tables: Vec<String>,
    /// Expect CREATE ROLE to be denied (default true).
    #[serde(default = "yes")]
    pub create_role: bool,
    /// Expect CREATE DATABASE to be denied (default true).
    #[serde(default = "yes")]
    pub create_database: bool,
}

fn yes() -> bool {
    true
}

/// One attempt: what was tried, and whether (and how) it was denied.
struct Probe {
    action: String,
    denied: Result<String, String>,
}

/// Tries `CREATE <object> <name>`; denial is the expected outcome. Anything created is dropped
/// at once (and again by teardown, should that fail or the check be cancelled).
async fn probe_create(
    client: &tokio_postgres::Client,
    object: &str,
    name: &str,
    role: &str,
    plural: &str,
    fix: &str,
) -> Result<String, String> {
    let name = ident(name);
    match client
        .batch_execute(&format!("CREATE {object} {name}"))
        .await
    {
        Ok(()) => {
            let _ = client.batch_execute(&format!("DROP {object} {name}")).await;
            Err(format!(
                "role `{role}` can create {plural}: `ALTER ROLE {} {fix}`",
                ident(role)
            ))
        }
        Err(e) if sqlstate(&e) == Some("42501") => Ok("42501".to_owned()),
        Err(e) => Err(format!(
            "could not probe CREATE {object}: {}",
            server_error(&e)
        )),
    }
}

impl Kind for PgIsolationCheck {
    const DESCRIPTION: &'static str = "Mutating: expects CONNECT to other databases, SELECT on tables, CREATE ROLE and CREATE DATABASE to be denied.";
    const SAFETY: Safety = Safety::Mutating;
    fn connection(&self) -> Option<&ConnectionSpec> {
        Some(&self.connection)
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let target = match super::resolve_connection(&self.connection, ctx).await {
            Ok(target) => target.tagged(),
            Err(fault) => return fault.into(),
        };
        let role = target.user.clone();
        let mut probes = Vec::new();

        for database in &self.databases {
            let mut other = target.clone();
            other.dbname = database.clone();
            let denied = match connect(ctx.services.network.as_ref(), &other).await {
                Ok(_) => Err(format!(
                    "role `{role}` can connect to database `{database}`: run `REVOKE CONNECT ON DATABASE {} FROM PUBLIC` (or tighten pg_hba.conf)",
                    ident(database)
                )),
                Err(ConnectError::Server { code, .. }) if code == "42501" || code == "28000" => Ok(code),
                Err(ConnectError::Server { code, .. }) if code == "3D000" => Err(format!("database `{database}` does not exist, so nothing is proven: check the name")),
                Err(e) => Err(format!("could not probe database `{database}`: {e}")),
            };
            probes.push(Probe {
                action: format!("CONNECT {database}"),
                denied,
            });
        }

        let session = match connect(ctx.services.network.as_ref(), &target).await {
            Ok(session) => session,
            Err(e) => return super::cannot_connect(&target, &e),
        };
        let client = &session.client;

        for table in &self.tables {
            let sql = format!("SELECT 1 FROM {} LIMIT 1", quote_qualified(table));
            let denied = match client.simple_query(&sql).await {
                Ok(_) => Err(format!("role `{role}` can read `{table}`: revoke its SELECT, or keep the table in another database")),
                Err(e) if sqlstate(&e) == Some("42501") => Ok("42501".to_owned()),
                Err(e) => Err(format!("could not probe `{table}`: {}", server_error(&e))),
            };
            probes.push(Probe {
                action: format!("SELECT {table}"),
                denied,
            });
        }

        let (probe_role, probe_database) =
            (unique_name("attest_probe"), unique_name("attest_probe"));
        {
            let (network, target) = (ctx.services.network.clone(), target.clone());
            let (probe_role, probe_database) = (probe_role.clone(), probe_database.clone());
            ctx.on_teardown("drop anything the CREATE probes made", async move {
                let (session, _) = teardown_session(network.as_ref(), &target, &target.dbname)
                    .await
                    .map_err(|e| e.to_string())?;
                // Only what exists: even `DROP ROLE IF EXISTS` needs CREATEROLE, which the
                // application role (rightly) lacks. Separate statements: DROP DATABASE may not
                // run inside a transaction block.
                let probes = [
                    (
                        "SELECT 1 FROM pg_database WHERE datname = $1",
                        "DATABASE",
                        &probe_database,
                    ),
                    (
                        "SELECT 1 FROM pg_roles WHERE rolname = $1",
                        "ROLE",
                        &probe_role,
                    ),
                ];
                for (exists, object, name) in probes {
                    let found = session.client.query_opt(exists, &[name]).await;
                    if found.map_err(|e| server_error(&e))?.is_some() {
                        let drop = format!("DROP {object} {}", ident(name));
                        session
                            .client
                            .batch_execute(&drop)
                            .await
                            .map_err(|e| server_error(&e))?;
                    }
                }
                Ok(())
            });
        }
        let creations = [
            (
                self.create_role,
                "ROLE",
                &probe_role,
                "roles",
                "NOCREATEROLE",
            ),
            (
                self.create_database,
                "DATABASE",
                &probe_database,
                "databases",
                "NOCREATEDB",
            ),
        ];
        for (_, object, name, plural, fix) in creations.into_iter().filter(|c| c.0) {
            let denied = probe_create(client, object, name, &role, plural, fix).await;
            probes.push(Probe {
                action: format!("CREATE {object}"),
                denied,
            });
        }

        if probes.is_empty() {
            return Verdict::error("nothing to probe: list `databases` or `tables`, or leave create_role/create_database on");
        }
        let denials: Vec<String> = probes
            .iter()
            .filter_map(|p| {
                p.denied
                    .as_ref()
                    .ok()
                    .map(|code| format!("{} ({code})", p.action))
            })
            .collect();
        let holes: Vec<&str> = probes
            .iter()
            .filter_map(|p| p.denied.as_ref().err().map(String::as_str))
            .collect();
        let expected = probes
            .iter()
            .map(|p| p.action.as_str())
            .collect::<Vec<_>>()
            .join(", ");
        let verdict = if holes.is_empty() {
            Verdict::pass(format!("`{role}` was denied: {}", denials.join(", ")))
        } else {
            Verdict::fail(holes.join("; "))
                .expected(format!("denied: {expected}"))
                .found(if denials.is_empty() {
                    "nothing was denied".to_owned()
                } else {
                    format!("denied only: {}", denials.join(", "))
                })
        };
        verdict
            .measure("probes", probes.len() as f64)
            .measure("denied", denials.len() as f64)
    }
}

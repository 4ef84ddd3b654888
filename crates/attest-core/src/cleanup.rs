//! What a run that could not clean up leaves behind, and how `attest cleanup` finds it.
//!
//! Every object a check creates on a server (roles, databases, tables) carries a `COMMENT`
//! starting with [`MARKER_PREFIX`] and naming the run, suite, check and time. A run killed with
//! SIGKILL, or a power cut, cannot run its teardown; `attest cleanup` lists such objects and,
//! with `--drop`, removes them. It never touches an object without the marker: a leftover is
//! deleted, never adopted or patched by a later run (Chainsaw #2351 is the anti-example).

use std::fmt;

use crate::net::Network;
use crate::pg::{connect, drop_database, ident, server_error, Target};

/// The start of every marker comment.
pub const MARKER_PREFIX: &str = "attest-run ";

/// The comment that marks an object created by `check` of `suite` in run `run_id`.
pub fn marker(run_id: &str, suite: &str, check: &str) -> String {
    format!(
        "{MARKER_PREFIX}{run_id} suite={suite} check={check} created={}",
        humantime::format_rfc3339_seconds(std::time::SystemTime::now())
    )
}

/// A run id: sortable by time, unique by a random suffix (`20261123T174501-k3x9qa`).
pub fn new_run_id() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let compact: String = now.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let suffix = Alphanumeric
        .sample_string(&mut rand::rng(), 6)
        .to_lowercase();
    format!("{}-{suffix}", compact.trim_end_matches('Z'))
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftoverKind {
    Database,
    Role,
    /// A table, in the database named.
    Table {
        database: String,
    },
}

/// One marked object found on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    pub kind: LeftoverKind,
    pub name: String,
    /// The marker: which run, suite and check created it, and when.
    pub marker: String,
}

impl fmt::Display for Leftover {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.kind {
            LeftoverKind::Database => write!(f, "database {}", self.name)?,
            LeftoverKind::Role => write!(f, "role {}", self.name)?,
            LeftoverKind::Table { database } => write!(f, "table {} in {database}", self.name)?,
        }
        write!(f, " ({})", self.marker)
    }
}

/// Lists every marked database, role and table the `admin` connection can see.
pub async fn find(network: &dyn Network, admin: &Target) -> Result<Vec<Leftover>, String> {
    let session = connect(network, admin)
        .await
        .map_err(|e| format!("cannot connect as {}: {e}", admin.describe()))?;
    let pattern = format!("{MARKER_PREFIX}%");
    let mut found = Vec::new();
    for (kind, sql) in [
        (
            LeftoverKind::Database,
            "SELECT datname::text, shobj_description(oid, 'pg_database') FROM pg_database
             WHERE shobj_description(oid, 'pg_database') LIKE $1 ORDER BY 1",
        ),
        (
            LeftoverKind::Role,
            "SELECT rolname::text, shobj_description(oid, 'pg_authid') FROM pg_roles
             WHERE shobj_description(oid, 'pg_authid') LIKE $1 ORDER BY 1",
        ),
    ] {
        let rows = session
            .client
            .query(sql, &[&pattern])
            .await
            .map_err(|e| server_error(&e))?;
        found.extend(rows.iter().map(|row| Leftover {
            kind: kind.clone(),
            name: row.get(0),
            marker: row.get(1),
        }));
    }
    // Tables live inside databases: look in each one we may connect to, except those that
    // are leftovers themselves (they go whole).
    for database in connectable_databases(&session.client).await? {
        if found
            .iter()
            .any(|l| l.kind == LeftoverKind::Database && l.name == database)
        {
            continue;
        }
        let mut inside = admin.clone();
        inside.dbname = database.clone();
        let Ok(session) = connect(network, &inside).await else {
            continue;
        };
        let rows = session
            .client
            .query(
                "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),
                        obj_description(c.oid, 'pg_class')
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind = 'r' AND obj_description(c.oid, 'pg_class') LIKE $1
                 ORDER BY 1",
                &[&pattern],
            )
            .await
            .map_err(|e| server_error(&e))?;
        found.extend(rows.iter().map(|row| Leftover {
            kind: LeftoverKind::Table {
                database: database.clone(),
            },
            name: row.get(0),
            marker: row.get(1),
        }));
    }
    Ok(found)
}

async fn connectable_databases(client: &tokio_postgres::Client) -> Result<Vec<String>, String> {
    let rows = client
        .query(
            "SELECT datname::text FROM pg_database WHERE datallowconn AND NOT datistemplate ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| server_error(&e))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Drops what [`find`] listed: tables, then databases, then roles (after dropping what they
/// own in every database). Returns one line per object: what was done or why not.
pub async fn drop_all(
    network: std::sync::Arc<dyn Network>,
    admin: &Target,
    leftovers: &[Leftover],
) -> Vec<Result<String, String>> {
    let mut report = Vec::new();
    for leftover in leftovers {
        if !leftover.marker.starts_with(MARKER_PREFIX) {
            report.push(Err(format!("{leftover}: no attest marker; left alone")));
            continue;
        }
        if let LeftoverKind::Table { database } = &leftover.kind {
            let mut inside = admin.clone();
            inside.dbname = database.clone();
            let result = match connect(network.as_ref(), &inside).await {
                Ok(session) => session
                    .client
                    .batch_execute(&format!("DROP TABLE IF EXISTS {}", leftover.name))
                    .await
                    .map_err(|e| server_error(&e)),
                Err(e) => Err(e.to_string()),
            };
            report.push(result.map(|()| format!("dropped {leftover}")));
        }
    }
    for leftover in leftovers {
        if leftover.kind == LeftoverKind::Database && leftover.marker.starts_with(MARKER_PREFIX) {
            let result = drop_database(network.clone(), admin.clone(), leftover.name.clone()).await;
            report.push(
                result
                    .map(|()| format!("dropped {leftover}"))
                    .map_err(|e| e.to_string()),
            );
        }
    }
    for leftover in leftovers {
        if leftover.kind == LeftoverKind::Role && leftover.marker.starts_with(MARKER_PREFIX) {
            report.push(
                drop_role(network.as_ref(), admin, &leftover.name)
                    .await
                    .map(|()| format!("dropped {leftover}")),
            );
        }
    }
    report
}

async fn drop_role(network: &dyn Network, admin: &Target, role: &str) -> Result<(), String> {
    let session = connect(network, admin).await.map_err(|e| e.to_string())?;
    // A role cannot go while it owns or is granted anything, in any database.
    for database in connectable_databases(&session.client).await? {
        let mut inside = admin.clone();
        inside.dbname = database;
        if let Ok(inner) = connect(network, &inside).await {
            inner
                .client
                .batch_execute(&format!("DROP OWNED BY {}", ident(role)))
                .await
                .map_err(|e| server_error(&e))?;
        }
    }
    session
        .client
        .batch_execute(&format!("DROP ROLE IF EXISTS {}", ident(role)))
        .await
        .map_err(|e| server_error(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_name_the_run_suite_and_check() {
        let id = new_run_id();
        assert!(id.len() > 10 && id.contains('-'), "{id}");
        let text = marker(&id, "story-5.5", "provision");
        assert!(text.starts_with(&format!(
            "attest-run {id} suite=story-5.5 check=provision created="
        )));
    }
}

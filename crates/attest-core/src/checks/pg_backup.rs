//! `pg-backup` (mutating): `pg_dump` a database (custom format), restore it into a scratch
//! database with `pg_restore`, and compare tables, row counts and checksums; the scratch
//! database is dropped at the end.

use std::path::{Path, PathBuf};
use std::time::Instant;

use schemars::JsonSchema;
use serde::Deserialize;
use tokio_postgres::Client;

use super::ConnectionSpec;
use super::{millis, Kind, Verdict};
use crate::context::CheckContext;
use crate::duration::format_duration;
use crate::net::{endpoint, Endpoint};
use crate::pg::{
    connect, drop_database, find_program, ident, literal, quote_parts, quote_qualified,
    server_error, unique_name, SslMode, Target,
};
use crate::safety::Safety;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgBackupCheck {
    /// A role that can read the whole database and create databases (for the scratch copy).
    pub connection: ConnectionSpec,
    /// Database to back up (default: the connection's).
    #[serde(default)]
    pub database: Option<String>,
    /// Tables (`schema.table`) whose whole contents must match by checksum.
    #[serde(default)]
    pub checksum_tables: Vec<String>,
}

/// Writes a 0600 password file for the client tools: the password then appears neither in
/// their argv nor in their environment.
fn write_passfile(
    dir: &Path,
    target: &Target,
    endpoint: &Endpoint,
) -> Result<Option<PathBuf>, String> {
    let Some(password) = &target.password else {
        return Ok(None);
    };
    let escape = |text: &str| text.replace('\\', "\\\\").replace(':', "\\:");
    let (_, port) = endpoint.host_port();
    let line = format!(
        "{}:{}:*:{}:{}\n",
        escape(&target.host),
        port,
        escape(&target.user),
        escape(password)
    );
    let path = dir.join("pgpass");
    // Created 0600, so the password is never readable by others, not even for a moment.
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut file| file.write_all(line.as_bytes()))
        .map_err(|e| format!("cannot write a password file: {e}"))?;
    Ok(Some(path))
}

/// A client tool run against `target` at `endpoint`: the password comes from a 0600 file,
/// never argv. Through a bridge, `-h` keeps the logical host name (TLS verifies it) and
/// `PGHOSTADDR` says where to connect.
fn tool(
    program: &Path,
    target: &Target,
    endpoint: &Endpoint,
    passfile: Option<&Path>,
) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(program);
    let (_, port) = endpoint.host_port();
    command
        .args([
            "--no-password",
            "-h",
            &target.host,
            "-p",
            &port.to_string(),
            "-U",
            &target.user,
        ])
        .env("PGAPPNAME", &target.application_name)
        .env(
            "PGSSLMODE",
            match target.sslmode {
                SslMode::Disable => "disable",
                SslMode::Prefer => "prefer",
                SslMode::Require => "require",
                SslMode::VerifyCa => "verify-ca",
                SslMode::VerifyFull => "verify-full",
            },
        )
        .kill_on_drop(true);
    // Only what we pass may steer the tools: no inherited service file or host override.
    for inherited in [
        "PGPASSWORD",
        "PGPASSFILE",
        "PGHOSTADDR",
        "PGSERVICE",
        "PGSERVICEFILE",
        "PGDATABASE",
    ] {
        command.env_remove(inherited);
    }
    if let Some(passfile) = passfile {
        command.env("PGPASSFILE", passfile);
    }
    if let Some(bridge) = endpoint.bridge_addr() {
        command.env("PGHOSTADDR", bridge.ip().to_string());
    }
    if let Some(root) = &target.sslrootcert {
        command.env("PGSSLROOTCERT", root);
    }
    command
}

async fn run_tool(mut command: tokio::process::Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .await
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// Tables with their row counts, sorted by name.
async fn inventory(client: &Client) -> Result<Vec<(String, i64)>, String> {
    let rows = client
        .query(
            "SELECT table_schema, table_name FROM information_schema.tables
             WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
             ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(|e| server_error(&e))?;
    let mut tables = Vec::new();
    for row in rows {
        let (schema, table): (String, String) = (row.get(0), row.get(1));
        let quoted = quote_parts(&[&schema, &table]);
        let name = format!("{schema}.{table}");
        let count: i64 = client
            .query_one(&format!("SELECT count(*) FROM {quoted}"), &[])
            .await
            .map_err(|e| format!("counting {name}: {}", server_error(&e)))?
            .get(0);
        tables.push((name, count));
    }
    Ok(tables)
}

async fn checksum(client: &Client, table: &str) -> Result<String, String> {
    let quoted = quote_qualified(table);
    let sql = format!(
        "SELECT coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), 'empty') FROM {quoted} t"
    );
    client
        .query_one(&sql, &[])
        .await
        .map(|row| row.get(0))
        .map_err(|e| format!("checksum of {table}: {}", server_error(&e)))
}

impl Kind for PgBackupCheck {
    const DESCRIPTION: &'static str = "Mutating: pg_dump of a database, pg_restore into a scratch database, compares tables, rows and checksums.";
    const SAFETY: Safety = Safety::Mutating;
    fn connection(&self) -> Option<&ConnectionSpec> {
        Some(&self.connection)
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let mut source = match super::resolve_connection(&self.connection, ctx).await {
            Ok(target) => target.tagged(),
            Err(fault) => return fault.into(),
        };
        if let Some(database) = &self.database {
            match ctx.expand(database) {
                Ok(database) => source.dbname = database,
                Err(e) => return Verdict::error(e),
            }
        }
        let (pg_dump, pg_restore) = match (find_program("pg_dump"), find_program("pg_restore")) {
            (Ok(dump), Ok(restore)) => (dump, restore),
            (Err(e), _) | (_, Err(e)) => return Verdict::error(e.to_string()),
        };
        let workdir = match tempfile::Builder::new().prefix("attest-backup-").tempdir() {
            Ok(dir) => dir,
            Err(e) => return Verdict::error(format!("cannot create a temporary folder: {e}")),
        };
        let dump_file = workdir.path().join("dump.pgc");
        // pg_dump and pg_restore dial for themselves: give them an address on this route.
        let route = source.route();
        let endpoint = match endpoint(&ctx.services.network, &route).await {
            Ok(endpoint) => endpoint,
            Err(e) => return Verdict::fail(e.to_string()).hint(e.hint()),
        };
        let passfile = match write_passfile(workdir.path(), &source, &endpoint) {
            Ok(passfile) => passfile,
            Err(e) => return Verdict::error(e),
        };

        let started = Instant::now();
        let mut dump = tool(&pg_dump, &source, &endpoint, passfile.as_deref());
        dump.args(["-Fc", "-d", &source.dbname, "-f"])
            .arg(&dump_file);
        if let Err(e) = run_tool(dump, "pg_dump").await {
            return Verdict::fail(e).hint("pg_dump must be at least the server's major version, and the role must read every table");
        }
        let dump_time = started.elapsed();
        let dump_bytes = std::fs::metadata(&dump_file).map(|m| m.len()).unwrap_or(0);

        let scratch_name = unique_name("attest_restore");
        let mut admin = source.clone();
        admin.dbname = "postgres".into();
        // Raised just before CREATE DATABASE is sent; teardown undoes only what was attempted.
        let attempted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let drop = {
            let (network, admin, name) = (
                ctx.services.network.clone(),
                admin.clone(),
                scratch_name.clone(),
            );
            let attempted = attempted.clone();
            async move {
                if !attempted.load(std::sync::atomic::Ordering::SeqCst) {
                    return Ok(());
                }
                drop_database(network, admin, name)
                    .await
                    .map_err(|e| e.to_string())
            }
        };
        ctx.on_teardown(format!("drop scratch database `{scratch_name}`"), drop);
        let admin_session = match connect(ctx.services.network.as_ref(), &admin).await {
            Ok(session) => session,
            Err(e) => return super::cannot_connect(&admin, &e),
        };
        // Marked right after creation (CREATE DATABASE cannot share a transaction), so a run
        // killed later leaves a copy of the data that `attest cleanup` can find.
        let create = format!("CREATE DATABASE {}", ident(&scratch_name));
        let mark = format!(
            "COMMENT ON DATABASE {} IS {}",
            ident(&scratch_name),
            literal(&ctx.marker())
        );
        let client = &admin_session.client;
        attempted.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Err(e) = async {
            client.batch_execute(&create).await?;
            client.batch_execute(&mark).await
        }
        .await
        {
            return Verdict::fail(format!(
                "cannot create the scratch database: {}",
                server_error(&e)
            ))
            .hint("the restore test needs a role with CREATEDB");
        }
        let restore_started = Instant::now();
        let mut restore = tool(&pg_restore, &source, &endpoint, passfile.as_deref());
        restore
            .args([
                "--no-owner",
                "--no-acl",
                "--exit-on-error",
                "-d",
                &scratch_name,
            ])
            .arg(&dump_file);
        if let Err(e) = run_tool(restore, "pg_restore").await {
            return Verdict::fail(e)
                .hint("the dump does not restore cleanly: try `pg_restore --list` on it");
        }
        let restore_time = restore_started.elapsed();

        let mut restored = source.clone();
        restored.dbname = scratch_name.clone();
        let (original, copy) = match (
            connect(ctx.services.network.as_ref(), &source).await,
            connect(ctx.services.network.as_ref(), &restored).await,
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => {
                return Verdict::fail(format!("cannot connect to compare: {e}"))
            }
        };
        let (before, after) = match (
            inventory(&original.client).await,
            inventory(&copy.client).await,
        ) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(e), _) | (_, Err(e)) => return Verdict::fail(e),
        };
        let mut problems = Vec::new();
        for (table, count) in &before {
            match after.iter().find(|(name, _)| name == table) {
                None => problems.push(format!("{table} missing after restore")),
                Some((_, restored)) if restored != count => {
                    problems.push(format!("{table}: {count} rows, {restored} after restore"))
                }
                Some(_) => {}
            }
        }
        for table in &self.checksum_tables {
            match (
                checksum(&original.client, table).await,
                checksum(&copy.client, table).await,
            ) {
                (Ok(a), Ok(b)) if a == b => {}
                (Ok(_), Ok(_)) => problems.push(format!("{table}: contents differ after restore")),
                (Err(e), _) | (_, Err(e)) => problems.push(e),
            }
        }
        let rows: i64 = before.iter().map(|(_, n)| n).sum();
        let summary = format!(
            "dump of `{}` {:.1} kB in {}, restore in {}: {} tables, {rows} rows{}",
            source.dbname,
            dump_bytes as f64 / 1024.0,
            format_duration(dump_time),
            format_duration(restore_time),
            before.len(),
            if self.checksum_tables.is_empty() {
                String::new()
            } else {
                format!(", checksums of {}", self.checksum_tables.join(", "))
            }
        );
        let verdict = if problems.is_empty() {
            Verdict::pass(format!("{summary} match"))
        } else {
            Verdict::fail(format!("restore differs: {}", problems.join("; ")))
                .expected("the same tables, row counts and checksums")
                .found(summary)
        };
        verdict
            .measure("dump_bytes", dump_bytes as f64)
            .measure("dump_ms", millis(dump_time))
            .measure("restore_ms", millis(restore_time))
            .measure("tables", before.len() as f64)
            .measure("rows", rows as f64)
    }
}

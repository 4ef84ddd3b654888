//! `pg-provision` (mutating): create an application database and role the way the stories do,
//! hand the credentials to later checks, and drop exactly what was created at the end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use super::ConnectionSpec;
use super::{millis, Kind, Verdict};
use crate::context::CheckContext;
use crate::duration::format_duration;
use crate::net::Network;
use crate::pg::{
    connect, drop_database, ident, literal, server_error, sqlstate, teardown_session, unique_name,
    Target,
};
use crate::safety::Safety;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PgProvisionCheck {
    /// An administrative connection (a role with CREATEDB and CREATEROLE, e.g. `postgres`).
    pub connection: ConnectionSpec,
    /// Database name (a unique suffix is added unless `unique: false`).
    pub database: String,
    /// Role name (likewise suffixed).
    pub role: String,
    /// The role's password; generated (32 random characters) when absent.
    #[serde(default)]
    pub password: Option<String>,
    /// Add a random suffix to both names so runs never collide (default true).
    #[serde(default = "yes")]
    pub unique: bool,
    /// Revoke CONNECT on the new database from PUBLIC, so only its role gets in (default true).
    #[serde(default = "yes")]
    pub revoke_public_connect: bool,
}

fn yes() -> bool {
    true
}

/// The grants of Stories 5.5 and 10.2, run inside the new database.
fn schema_grants(role: &str) -> String {
    let role = ident(role);
    format!(
        "GRANT ALL ON SCHEMA public TO {role};
         GRANT ALL PRIVILEGES ON ALL TABLES IN SCHEMA public TO {role};
         GRANT ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public TO {role};
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {role};
         ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO {role};"
    )
}

/// What this check created, as far as teardown may assume: a flag is raised just before its
/// CREATE is sent (it may commit even if we are cancelled) and lowered when the server says
/// the object already existed, so a pre-existing database or role is never dropped.
#[derive(Default)]
struct Created {
    role: AtomicBool,
    database: AtomicBool,
}

/// Stops the check's own sessions, then drops what it created; safe to run twice.
async fn drop_created(
    network: Arc<dyn Network>,
    admin: Target,
    database: String,
    role: String,
    created: Arc<Created>,
) -> Result<(), String> {
    // No CREATE was ever sent (the server never answered, say): nothing to undo, and no
    // reason to wait on that server again.
    if !created.database.load(Ordering::SeqCst) && !created.role.load(Ordering::SeqCst) {
        return Ok(());
    }
    let (session, _) = teardown_session(network.as_ref(), &admin, "postgres")
        .await
        .map_err(|e| e.to_string())?;
    if created.database.load(Ordering::SeqCst) {
        drop_database(network.clone(), admin.clone(), database)
            .await
            .map_err(|e| e.to_string())?;
    }
    if created.role.load(Ordering::SeqCst) {
        let role_exists = session
            .client
            .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
            .await
            .map_err(|e| server_error(&e))?
            .is_some();
        if role_exists {
            let drop_role = format!("DROP OWNED BY {0}; DROP ROLE {0}", ident(&role));
            session
                .client
                .batch_execute(&drop_role)
                .await
                .map_err(|e| server_error(&e))?;
        }
    }
    Ok(())
}

impl PgProvisionCheck {
    async fn create(
        &self,
        ctx: &CheckContext,
        admin: &Target,
        names: Names<'_>,
        created: &Created,
    ) -> Result<(), Verdict> {
        let Names {
            database,
            role,
            password,
        } = names;
        let step_failed = |step: &str, error: tokio_postgres::Error| {
            let found = server_error(&error);
            let hint = match sqlstate(&error) {
                Some("42710") | Some("42P04") => "it already exists and was left alone: pick another name, or keep `unique: true`",
                _ => "provisioning needs a role with CREATEDB and CREATEROLE, such as the chart's `postgres` superuser",
            };
            Verdict::fail(format!("{step} failed: {found}"))
                .expected(format!("{} may {step}", admin.user))
                .found(found)
                .hint(hint)
        };
        let session = connect(ctx.services.network.as_ref(), admin)
            .await
            .map_err(|e| super::cannot_connect(admin, &e))?;
        // A SCRAM verifier computed here: the password itself never travels in SQL text, so it
        // cannot end up in the server log or pg_stat_activity.
        let verifier = postgres_protocol::password::scram_sha_256(password.as_bytes());
        // One implicit transaction: the role never exists without attest's marker.
        let create_role = format!(
            "CREATE ROLE {0} LOGIN PASSWORD {1}; COMMENT ON ROLE {0} IS {2}",
            ident(role),
            literal(&verifier),
            literal(&ctx.marker())
        );
        created.role.store(true, Ordering::SeqCst);
        if let Err(e) = session.client.batch_execute(&create_role).await {
            if sqlstate(&e) == Some("42710") {
                created.role.store(false, Ordering::SeqCst);
            }
            return Err(step_failed("create a role", e));
        }
        created.database.store(true, Ordering::SeqCst);
        if let Err(e) = session
            .client
            .batch_execute(&format!("CREATE DATABASE {}", ident(database)))
            .await
        {
            if sqlstate(&e) == Some("42P04") {
                created.database.store(false, Ordering::SeqCst);
            }
            return Err(step_failed("create a database", e));
        }
        // CREATE DATABASE cannot share a transaction: marked right after (a SIGKILL between the
        // two leaves it unmarked; `attest cleanup` names the marked role that owns its grants).
        session
            .client
            .batch_execute(&format!(
                "COMMENT ON DATABASE {} IS {}",
                ident(database),
                literal(&ctx.marker())
            ))
            .await
            .map_err(|e| step_failed("mark the database", e))?;
        let mut database_grants = format!(
            "GRANT ALL PRIVILEGES ON DATABASE {} TO {};",
            ident(database),
            ident(role)
        );
        if self.revoke_public_connect {
            database_grants.push_str(&format!(
                "REVOKE CONNECT ON DATABASE {} FROM PUBLIC;",
                ident(database)
            ));
        }
        session
            .client
            .batch_execute(&database_grants)
            .await
            .map_err(|e| step_failed("grant on the database", e))?;

        let mut inside = admin.clone();
        inside.dbname = database.to_owned();
        let session = connect(ctx.services.network.as_ref(), &inside)
            .await
            .map_err(|e| super::cannot_connect(&inside, &e))?;
        session
            .client
            .batch_execute(&schema_grants(role))
            .await
            .map_err(|e| step_failed("grant on schema public", e))?;
        Ok(())
    }
}

/// The names and password one provisioning creates.
struct Names<'a> {
    database: &'a str,
    role: &'a str,
    password: &'a str,
}

impl Kind for PgProvisionCheck {
    const DESCRIPTION: &'static str =
        "Mutating: creates a database and a role with the stories' grants; teardown drops them.";
    const SAFETY: Safety = Safety::Mutating;
    const EXPORTS: &'static [(&'static str, bool)] =
        &[("user", false), ("password", true), ("database", false)];
    fn connection(&self) -> Option<&ConnectionSpec> {
        Some(&self.connection)
    }

    fn validate(&self) -> Vec<super::FieldProblem> {
        let mut problems = crate::validate::connection(&self.connection);
        for (field, name) in [("database", &self.database), ("role", &self.role)] {
            if name.is_empty() || name.len() > 50 {
                problems.push(super::FieldProblem::new(field, format!("expected a name of 1 to 50 bytes (PostgreSQL keeps 63, and a unique suffix is added), found {} bytes", name.len())));
            }
        }
        problems
    }

    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let admin = match super::resolve_connection(&self.connection, ctx).await {
            Ok(target) => target.tagged(),
            Err(fault) => return fault.into(),
        };
        let (database, role) = if self.unique {
            (unique_name(&self.database), unique_name(&self.role))
        } else {
            (self.database.clone(), self.role.clone())
        };
        let password = match &self.password {
            Some(password) => match ctx.expand(password) {
                Ok(password) => password,
                Err(e) => return Verdict::error(e),
            },
            None => crate::pg::generate_password(),
        };
        ctx.redactor.add(&password);

        // Cleanup is registered before anything exists, so a failure half-way still cleans up.
        let created = Arc::new(Created::default());
        ctx.on_teardown(
            format!("drop database `{database}` and role `{role}`"),
            drop_created(
                ctx.services.network.clone(),
                admin.clone(),
                database.clone(),
                role.clone(),
                created.clone(),
            ),
        );

        let started = std::time::Instant::now();
        let names = Names {
            database: &database,
            role: &role,
            password: &password,
        };
        if let Err(verdict) = self.create(ctx, &admin, names, &created).await {
            return verdict;
        }
        let elapsed = started.elapsed();
        Verdict::pass(format!(
            "created database `{database}` and role `{role}` with the stories' grants in {}",
            format_duration(elapsed)
        ))
        .measure("provision_ms", millis(elapsed))
        .export("user", role)
        .export("password", password)
        .export("database", database)
    }
}

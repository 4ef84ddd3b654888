//! `pg-provision` (mutating): create an application database and role the way the stories do,
//! hand the credentials to later checks, and drop exactly what was created at the end.

use std::sync::Arc;

use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Deserialize;

use super::{millis, Check, Kind, Verdict};
use crate::context::CheckContext;
use crate::pg::{
    connect, drop_database, ident, literal, server_error, unique_name, ConnectionSpec, Dialer,
    Target,
};
use crate::suite::{format_duration, Safety};

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

impl Kind for PgProvisionCheck {
    const SAFETY: Safety = Safety::Mutating;
    const EXPORTS: &'static [(&'static str, bool)] =
        &[("user", false), ("password", true), ("database", false)];
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

/// Drops the database and the role, whatever exists of them; safe to run twice.
pub async fn drop_database_and_role(
    dialer: Arc<dyn Dialer>,
    admin: Target,
    database: String,
    role: String,
) -> Result<(), String> {
    drop_database(dialer.clone(), admin.clone(), database).await?;
    let mut admin = admin;
    admin.dbname = "postgres".into();
    let session = connect(dialer.as_ref(), &admin)
        .await
        .map_err(|e| format!("cannot connect as {} to clean up: {e}", admin.describe()))?;
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
    Ok(())
}

impl PgProvisionCheck {
    async fn observe(&self, ctx: &CheckContext) -> Verdict {
        let admin = match self.connection.resolve(ctx) {
            Ok(target) => target,
            Err(e) => return Verdict::error(e),
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
            None => crate::sandbox::generate_password(),
        };
        ctx.redactor.add(&password);

        // Cleanup is registered before anything exists, so a failure half-way still cleans up.
        ctx.on_teardown(
            format!("drop database `{database}` and role `{role}`"),
            drop_database_and_role(
                ctx.dialer.clone(),
                admin.clone(),
                database.clone(),
                role.clone(),
            ),
        );

        let started = std::time::Instant::now();
        if let Err(verdict) = self.create(ctx, &admin, &database, &role, &password).await {
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

    async fn create(
        &self,
        ctx: &CheckContext,
        admin: &Target,
        database: &str,
        role: &str,
        password: &str,
    ) -> Result<(), Verdict> {
        let step_failed = |step: &str, error: tokio_postgres::Error| {
            Verdict::fail(format!("{step} failed: {}", server_error(&error)))
                .expected(format!("{} may {step}", admin.user))
                .found(server_error(&error))
                .hint("provisioning needs a role with CREATEDB and CREATEROLE, such as the chart's `postgres` superuser")
        };
        let session = connect(ctx.dialer.as_ref(), admin)
            .await
            .map_err(|e| super::cannot_connect(admin, &e))?;
        let create_role = format!(
            "CREATE ROLE {} LOGIN PASSWORD {}",
            ident(role),
            literal(password)
        );
        session
            .client
            .batch_execute(&create_role)
            .await
            .map_err(|e| step_failed("create a role", e))?;
        let create_database = format!("CREATE DATABASE {}", ident(database));
        session
            .client
            .batch_execute(&create_database)
            .await
            .map_err(|e| step_failed("create a database", e))?;
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
        let session = connect(ctx.dialer.as_ref(), &inside)
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

impl Check for PgProvisionCheck {
    fn target(&self) -> String {
        self.connection.label()
    }

    fn run<'a>(&'a self, ctx: &'a CheckContext) -> BoxFuture<'a, Verdict> {
        Box::pin(self.observe(ctx))
    }
}

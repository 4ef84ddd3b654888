//! Provisions the sandbox's PostgreSQL the way the stories left their servers: Paperless-ngx's
//! database with a Django-like schema (Story 10.2), the application database of Story 5.5, and
//! the compose host's `homelab` database with one database per service.

use tokio_postgres::{Client, NoTls};

use super::postgres::TempPostgres;
use attest_core::pg::generate_password;
use attest_core::pg::{ident, literal};

/// The compose host's services, each with its own database and role.
pub const SERVICES: &[&str] = &["vikunja", "hedgedoc", "linkding", "navidrome"];

/// Tables Paperless-ngx's migrations create (a subset; the stories count at least 17).
const PAPERLESS_TABLES: &[&str] = &[
    "auth_group",
    "auth_permission",
    "auth_user",
    "django_admin_log",
    "django_content_type",
    "django_session",
    "documents_correspondent",
    "documents_customfield",
    "documents_document",
    "documents_documenttype",
    "documents_note",
    "documents_paperlesstask",
    "documents_savedview",
    "documents_storagepath",
    "documents_tag",
    "paperless_mail_mailaccount",
    "paperless_mail_mailrule",
];

/// Generated passwords of every role the sandbox creates.
pub struct Credentials {
    pub superuser: String,
    pub paperless: String,
    pub app: String,
    pub homelab: String,
    pub services: Vec<(&'static str, String)>,
}

impl Credentials {
    pub fn generate() -> Credentials {
        Credentials {
            superuser: generate_password(),
            paperless: generate_password(),
            app: generate_password(),
            homelab: generate_password(),
            services: SERVICES.iter().map(|s| (*s, generate_password())).collect(),
        }
    }
}

async fn login(
    pg: &TempPostgres,
    user: &str,
    password: &str,
    dbname: &str,
) -> Result<Client, String> {
    let mut config = tokio_postgres::Config::new();
    config
        .host(pg.host())
        .port(pg.port())
        .user(user)
        .password(password)
        .dbname(dbname);
    let (client, connection) = config
        .connect(NoTls)
        .await
        .map_err(|e| format!("sandbox: cannot log in as {user} to {dbname}: {e}"))?;
    tokio::spawn(connection);
    Ok(client)
}

async fn exec(client: &Client, sql: &str) -> Result<(), String> {
    client.batch_execute(sql).await.map_err(|e| {
        format!(
            "sandbox provisioning failed: {}",
            attest_core::pg::server_error(&e)
        )
    })
}

/// A database only its role may connect to.
async fn private_database(
    admin: &Client,
    database: &str,
    role: &str,
    owner: bool,
) -> Result<(), String> {
    let (db, role) = (ident(database), ident(role));
    let create = if owner {
        format!("CREATE DATABASE {db} OWNER {role}")
    } else {
        format!("CREATE DATABASE {db}")
    };
    exec(admin, &create).await?;
    exec(admin, &format!("GRANT ALL PRIVILEGES ON DATABASE {db} TO {role}; REVOKE CONNECT ON DATABASE {db} FROM PUBLIC;")).await
}

/// The schema grants of Stories 5.5 and 10.2.
async fn schema_grants(pg: &TempPostgres, database: &str, role: &str) -> Result<(), String> {
    let client = pg.superuser_client(database).await?;
    let role = ident(role);
    exec(
        &client,
        &format!(
            "GRANT ALL ON SCHEMA public TO {role};
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO {role};
             ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO {role};"
        ),
    )
    .await
}

pub async fn provision(pg: &TempPostgres, creds: &Credentials) -> Result<(), String> {
    let admin = pg.superuser_client("postgres").await?;
    let role = |name: &str, password: &str, extra: &str| {
        format!(
            "CREATE ROLE {} LOGIN {extra} PASSWORD {}",
            ident(name),
            literal(password)
        )
    };

    // Story 10.2: paperless / paperless_user, tables created by the app role's migrations.
    exec(&admin, &role("paperless_user", &creds.paperless, "")).await?;
    private_database(&admin, "paperless", "paperless_user", false).await?;
    schema_grants(pg, "paperless", "paperless_user").await?;
    let paperless = login(pg, "paperless_user", &creds.paperless, "paperless").await?;
    exec(&paperless, "CREATE TABLE django_migrations (id bigserial PRIMARY KEY, app text NOT NULL, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now());
        INSERT INTO django_migrations (app, name) SELECT 'documents', format('%s_migration', lpad(g::text, 4, '0')) FROM generate_series(1, 215) g;").await?;
    for table in PAPERLESS_TABLES {
        exec(
            &paperless,
            &format!(
                "CREATE TABLE {} (id bigserial PRIMARY KEY, created timestamptz DEFAULT now())",
                ident(table)
            ),
        )
        .await?;
    }

    // Story 5.5: app_test_db / app_user.
    exec(&admin, &role("app_user", &creds.app, "")).await?;
    private_database(&admin, "app_test_db", "app_user", false).await?;
    schema_grants(pg, "app_test_db", "app_user").await?;

    // The compose host: homelab administers its own database; one database per service.
    // Like POSTGRES_USER in the official image: the compose deployment's superuser.
    exec(&admin, &role("homelab", &creds.homelab, "SUPERUSER")).await?;
    private_database(&admin, "homelab", "homelab", true).await?;
    for (service, password) in &creds.services {
        exec(&admin, &role(service, password, "")).await?;
        private_database(&admin, service, service, true).await?;
    }
    let homelab = login(pg, "homelab", &creds.homelab, "homelab").await?;
    exec(&homelab, HOMELAB_SCHEMA).await?;
    Ok(())
}

/// The management database of the compose story, with a fresh successful backup.
const HOMELAB_SCHEMA: &str = "
CREATE TABLE service_configs (
    id SERIAL PRIMARY KEY,
    service_name VARCHAR(50) UNIQUE NOT NULL,
    database_name VARCHAR(50) NOT NULL,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE backup_log (
    id SERIAL PRIMARY KEY,
    service_name VARCHAR(50) NOT NULL,
    backup_type VARCHAR(20) NOT NULL,
    backup_path VARCHAR(255),
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN DEFAULT true
);
CREATE TABLE user_activity (
    id SERIAL PRIMARY KEY,
    service_name VARCHAR(50) NOT NULL,
    action VARCHAR(100) NOT NULL,
    user_identifier VARCHAR(100),
    ip_address INET,
    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP
);
INSERT INTO service_configs (service_name, database_name) VALUES
    ('vikunja', 'vikunja'), ('hedgedoc', 'hedgedoc'), ('linkding', 'linkding'), ('navidrome', 'navidrome');
INSERT INTO backup_log (service_name, backup_type, backup_path, created_at, success) VALUES
    ('homelab', 'pg_dump', '/backups/homelab-old.sql', now() - interval '3 days', false),
    ('homelab', 'pg_dump', '/backups/homelab.sql', now() - interval '2 hours', true);
INSERT INTO user_activity (service_name, action, user_identifier, ip_address) VALUES
    ('vikunja', 'login', 'admin', '10.0.0.5');
CREATE VIEW service_status AS
SELECT
    sc.service_name,
    sc.database_name,
    sc.created_at as setup_date,
    CASE
        WHEN EXISTS (
            SELECT 1 FROM pg_stat_activity
            WHERE datname = sc.database_name
            AND state = 'active'
        ) THEN 'active'
        ELSE 'inactive'
    END as status,
    pg_size_pretty(pg_database_size(sc.database_name)) as database_size
FROM service_configs sc;
";

/// Names of all databases and roles: compared before and after a run to find leftovers.
pub async fn inventory(pg: &TempPostgres) -> Result<Vec<String>, String> {
    let admin = pg.superuser_client("postgres").await?;
    let rows = admin
        .query(
            "SELECT 'database ' || datname FROM pg_database UNION ALL SELECT 'role ' || rolname FROM pg_roles ORDER BY 1",
            &[],
        )
        .await
        .map_err(|e| attest_core::pg::server_error(&e))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

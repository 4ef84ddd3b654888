//! Mutating PostgreSQL kinds against a real server: they pass, fail for the right reason, and
//! leave no databases or roles behind after a passing, a failing and an interrupted run.

mod common;

use attest_sandbox::postgres::TempPostgres;
use common::Attest;

const PASSWORD: &str = "Adm1n-Secret-pw";

async fn server() -> TempPostgres {
    common::postgres(PASSWORD, false, None).await
}

/// Names of all databases and roles, to compare before and after a run.
async fn inventory(pg: &TempPostgres) -> (Vec<String>, Vec<String>) {
    let client = pg.superuser_client("postgres").await.unwrap();
    let names = |sql: &'static str| {
        let client = &client;
        async move {
            let rows = client.query(sql, &[]).await.unwrap();
            rows.iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
        }
    };
    (
        names("SELECT datname::text FROM pg_database ORDER BY 1").await,
        names("SELECT rolname::text FROM pg_roles ORDER BY 1").await,
    )
}

/// A suite with an admin connection anchor and an app connection built from registered values.
fn suite(pg: &TempPostgres, checks: &str) -> String {
    format!(
        r#"id: t
title: mutating
variables:
  pw: {{secret: true, env: TEST_ADMIN_PASSWORD}}
  evil: {{default: "x\"; DROP TABLE victim; --"}}
checks:
  - id: provision
    title: provision
    register: app
    pg-provision:
      connection: &admin {{host: 127.0.0.1, port: {port}, user: postgres, password: "${{pw}}", dbname: postgres, sslmode: disable}}
      database: appdb
      role: app_user
{checks}"#,
        port = pg.port()
    )
}

const APP: &str = "{host: 127.0.0.1, port: PORT, user: \"${app_user}\", password: \"${app_password}\", dbname: \"${app_database}\", sslmode: disable}";

fn app(pg: &TempPostgres) -> String {
    APP.replace("PORT", &pg.port().to_string())
}

fn attest(yaml: &str) -> Attest {
    Attest::new()
        .suite("t", yaml)
        .env("TEST_ADMIN_PASSWORD", PASSWORD)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_kinds_pass_and_clean_up_after_a_passing_run() {
    let pg = server().await;
    let admin = pg.superuser_client("postgres").await.unwrap();
    admin
        .batch_execute("CREATE DATABASE privatedb")
        .await
        .unwrap();
    admin
        .batch_execute("REVOKE CONNECT ON DATABASE privatedb FROM PUBLIC")
        .await
        .unwrap();
    let before = inventory(&pg).await;
    let app = app(&pg);
    let checks = format!(
        r#"  - id: app-login
    title: app role logs in, not superuser
    needs: [provision]
    postgres: {{connection: {app}, superuser: false}}
  - id: crud
    title: crud as app
    pg-crud: {{connection: {app}, rows: 50}}
  - id: isolation
    title: isolation
    pg-isolation: {{connection: {app}, databases: [privatedb]}}
  - id: sentinel-write
    title: sentinel write
    register: before
    pg-sentinel: {{connection: {app}, action: write}}
  - id: sentinel-verify
    title: sentinel verify
    pg-sentinel: {{connection: {app}, action: verify, token: "${{before_token}}"}}
  - id: backup
    title: backup round trip
    pg-backup: {{connection: *admin, database: "${{app_database}}", checksum_tables: [public.attest_sentinel]}}
"#
    );
    let out = attest(&suite(&pg, &checks))
        .args(&["run", "--allow-mutating"])
        .run_async()
        .await;
    out.assert_code(0);
    out.expect("provision", "passed", "created database `appdb_");
    out.expect("crud", "passed", "insert 50");
    out.expect("isolation", "passed", "CREATE ROLE (42501)");
    out.expect("sentinel-verify", "passed", "intact");
    let backup = out.expect(
        "backup",
        "passed",
        "checksums of public.attest_sentinel match",
    );
    assert!(backup["measurements"]["dump_bytes"].as_f64().unwrap() > 0.0);
    assert!(!out.all_output().contains(PASSWORD));
    assert_eq!(
        inventory(&pg).await,
        before,
        "databases or roles left behind"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutating_checks_are_skipped_without_opt_in() {
    let pg = server().await;
    let before = inventory(&pg).await;
    let out = attest(&suite(&pg, "")).args(&["run"]).run_async().await;
    out.assert_code(0);
    out.expect("provision", "skipped", "--allow-mutating");
    assert_eq!(inventory(&pg).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_run_still_cleans_up() {
    let pg = server().await;
    let before = inventory(&pg).await;
    let app = app(&pg);
    let checks = format!(
        "  - id: short\n    title: migrations short by one\n    sql: {{connection: {app}, query: \"SELECT 214\", expect: \">= 215\"}}\n"
    );
    let out = attest(&suite(&pg, &checks))
        .args(&["run", "--allow-mutating"])
        .run_async()
        .await;
    out.assert_code(1);
    out.expect("short", "failed", "value `214`, expected `>= 215`");
    assert_eq!(inventory(&pg).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_run_still_cleans_up() {
    let pg = server().await;
    let before = inventory(&pg).await;
    let checks = "  - id: slow\n    title: slow\n    timeout: 60s\n    command: {run: \"touch started; sleep 30\"}\n";
    let attest = attest(&suite(&pg, checks)).args(&["run", "--allow-mutating"]);
    let marker = attest.path().join("started");
    let child = attest.spawn();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !marker.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(marker.exists(), "the slow check never started");
    common::signal(child.id(), "INT");
    let out = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap();
    out.assert_code(130);
    out.expect("slow", "error", "interrupted");
    assert_eq!(
        inventory(&pg).await,
        before,
        "teardown did not run on Ctrl-C"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_names_are_quoted_not_executed() {
    let pg = server().await;
    let admin = pg.superuser_client("postgres").await.unwrap();
    admin
        .batch_execute("CREATE TABLE victim (id int)")
        .await
        .unwrap();
    let before = inventory(&pg).await;
    let yaml = suite(&pg, "").replace("role: app_user", "role: \"${evil}\"");
    let out = attest(&yaml)
        .args(&["run", "--allow-mutating"])
        .run_async()
        .await;
    out.assert_code(0);
    out.expect("provision", "passed", "DROP TABLE victim");
    admin
        .query_one("SELECT count(*) FROM victim", &[])
        .await
        .expect("victim table survived");
    assert_eq!(inventory(&pg).await, before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_without_schema_grant_fails_with_a_hint() {
    let pg = server().await;
    let admin = pg.superuser_client("postgres").await.unwrap();
    admin
        .batch_execute("CREATE ROLE bare LOGIN PASSWORD 'bare-pw'")
        .await
        .unwrap();
    // PostgreSQL 15 gives PUBLIC no CREATE on schema public unless the role owns the database.
    admin.batch_execute("CREATE DATABASE baredb").await.unwrap();
    let yaml = format!(
        "id: t\ntitle: t\nchecks:\n  - id: crud\n    title: crud\n    pg-crud: {{connection: {{host: 127.0.0.1, port: {}, user: bare, password: bare-pw, dbname: baredb, sslmode: disable}}}}\n",
        pg.port()
    );
    let out = attest(&yaml)
        .args(&["run", "--allow-mutating"])
        .run_async()
        .await;
    out.assert_code(1);
    out.expect_in(
        "crud",
        "failed",
        "hint",
        "has no CREATE on schema public — the stories grant `ALL ON SCHEMA public`",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_names_the_hole_when_an_app_user_reaches_another_database() {
    let pg = server().await;
    let admin = pg.superuser_client("postgres").await.unwrap();
    admin
        .batch_execute("CREATE DATABASE otherdb")
        .await
        .unwrap();
    let app = app(&pg);
    let checks = format!(
        "  - id: isolation\n    title: isolation\n    pg-isolation: {{connection: {app}, databases: [otherdb], create_database: false}}\n"
    );
    let out = attest(&suite(&pg, &checks))
        .args(&["run", "--allow-mutating"])
        .run_async()
        .await;
    out.assert_code(1);
    out.expect("isolation", "failed", "can connect to database `otherdb`");
    out.expect("isolation", "failed", "REVOKE CONNECT ON DATABASE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_verify_fails_when_the_data_is_gone() {
    let pg = server().await;
    let app = app(&pg);
    let checks = format!(
        r#"  - id: verify
    title: verify a token never written
    pg-sentinel: {{connection: {app}, action: verify, token: not-the-token}}
"#
    );
    let out = attest(&suite(&pg, &checks))
        .args(&["run", "--allow-mutating"])
        .run_async()
        .await;
    out.assert_code(1);
    out.expect(
        "verify",
        "failed",
        "is gone: the data did not survive (its table attest_sentinel does not exist",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_without_client_tools_names_the_debian_package() {
    let pg = server().await;
    let checks = "  - id: backup\n    title: backup\n    pg-backup: {connection: *admin}\n";
    let out = attest(&suite(&pg, checks))
        .env("PG_BINDIR", "/nonexistent")
        .args(&["run", "--allow-mutating"])
        .run_async()
        .await;
    out.assert_code(1);
    out.expect("backup", "error", "postgresql-client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolation_reports_denied_reads_of_another_roles_table() {
    let pg = server().await;
    let admin = pg.superuser_client("postgres").await.unwrap();
    admin
        .batch_execute(
            "CREATE ROLE other_service; CREATE TABLE private_notes (note text);
             ALTER TABLE private_notes OWNER TO other_service;",
        )
        .await
        .unwrap();
    // The app role may log in to `postgres` (PUBLIC keeps CONNECT there) but not read the table.
    let app = app(&pg).replace("dbname: \"${app_database}\"", "dbname: postgres");
    let checks = format!(
        "  - id: isolation\n    title: isolation\n    pg-isolation: {{connection: {app}, tables: [public.private_notes]}}\n"
    );
    let out = attest(&suite(&pg, &checks))
        .args(&["run", "--allow-mutating"])
        .run_async()
        .await;
    out.assert_code(0);
    out.expect("isolation", "passed", "SELECT public.private_notes (42501)");
    admin
        .batch_execute("GRANT SELECT ON private_notes TO PUBLIC")
        .await
        .unwrap();
    let out = attest(&suite(&pg, &checks))
        .args(&["run", "--allow-mutating"])
        .run_async()
        .await;
    out.assert_code(1);
    out.expect("isolation", "failed", "can read `public.private_notes`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provision_never_drops_what_already_existed() {
    let pg = server().await;
    let admin = pg.superuser_client("postgres").await.unwrap();
    admin
        .batch_execute("CREATE ROLE app_user LOGIN")
        .await
        .unwrap();
    admin.batch_execute("CREATE DATABASE appdb").await.unwrap();
    let before = inventory(&pg).await;
    let yaml = suite(&pg, "").replace("role: app_user", "role: app_user\n      unique: false");
    let out = attest(&yaml)
        .args(&["run", "--allow-mutating"])
        .run_async()
        .await;
    out.assert_code(1);
    out.expect("provision", "failed", "already exists");
    assert_eq!(
        inventory(&pg).await,
        before,
        "pre-existing role or database was dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_verify_only_reads_so_it_runs_without_allow_mutating() {
    let pg = server().await;
    let yaml = format!(
        r#"id: t
title: verify only
variables:
  pw: {{secret: true, env: TEST_ADMIN_PASSWORD}}
checks:
  - id: write
    title: write, mutating, skipped without the flag
    pg-sentinel:
      connection: &admin {{host: 127.0.0.1, port: {port}, user: postgres, password: "${{pw}}", dbname: postgres, sslmode: disable}}
      action: write
  - id: verify
    title: verify, read-only, runs
    pg-sentinel: {{connection: *admin, action: verify, token: not-written}}
"#,
        port = pg.port()
    );
    let out = attest(&yaml).args(&["run"]).run_async().await;
    out.assert_code(1);
    out.expect("write", "skipped", "runs only with --allow-mutating");
    let verify = out.result("verify");
    assert_ne!(verify["status"], "skipped", "{verify:#}");
    assert_eq!(verify["status"], "failed", "{verify:#}");
}

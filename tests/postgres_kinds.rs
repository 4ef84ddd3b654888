//! `postgres`, `sql` and `pg-ready` against a real PostgreSQL started by the test (initdb on a
//! free loopback port, scram-sha-256, TLS with a generated CA).

mod common;

use attest_sandbox::postgres::{PostgresOptions, TempPostgres};
use common::{one_check, Attest};

const PASSWORD: &str = "Sup3r-Secret-pw";

async fn server() -> TempPostgres {
    common::postgres(PASSWORD, true, None).await
}

fn connection(pg: &TempPostgres, extra: &str) -> String {
    format!(
        "connection:\n  host: 127.0.0.1\n  port: {}\n  user: postgres\n  password: ${{pw}}\n  dbname: postgres\n{extra}",
        pg.port()
    )
}

fn run(kind: &str, body: &str) -> Attest {
    let suite = one_check(kind, body).replacen(
        "checks:",
        "variables:\n  pw: {secret: true, env: TEST_PG_PASSWORD}\nchecks:",
        1,
    );
    Attest::new()
        .suite("t", &suite)
        .env("TEST_PG_PASSWORD", PASSWORD)
        .args(&["run"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_authenticates_and_reports_facts() {
    let pg = server().await;
    let body = connection(
        &pg,
        "  sslmode: disable\nserver_version: \"1*\"\nsuperuser: true\nssl: false",
    );
    let out = run("postgres", &body).run_async().await;
    out.assert_code(0);
    out.expect("c", "passed", "authenticated");
    assert!(!out.all_output().contains(PASSWORD));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_wrong_password_fails_with_28p01_and_auth_fails_passes() {
    let pg = server().await;
    let body = connection(&pg, "  sslmode: disable").replace("${pw}", "wrong-password");
    let out = run("postgres", &body).run_async().await;
    out.assert_code(1);
    out.expect("c", "failed", "28P01");
    let out = run("postgres", &format!("{body}\nexpect: auth-fails"))
        .run_async()
        .await;
    out.assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_missing_database_and_refused_port() {
    let pg = server().await;
    let body = connection(&pg, "  sslmode: disable").replace("dbname: postgres", "dbname: nope");
    run("postgres", &format!("{body}\nexpect: db-missing"))
        .run_async()
        .await
        .assert_code(0);
    let out = run("postgres", &body).run_async().await;
    out.expect("c", "failed", "3D000");
    let port = pg.port();
    pg.stop().await;
    let body =
        format!("connection: {{host: 127.0.0.1, port: {port}, sslmode: disable}}\nexpect: refused");
    run("postgres", &body).run_async().await.assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_verify_full_uses_tls_and_fails_on_superuser_expectation() {
    let pg = server().await;
    let ca = pg.ca_cert_path().unwrap().display().to_string();
    let body = connection(
        &pg,
        &format!("  sslmode: verify-full\n  sslrootcert: {ca}\nssl: true"),
    )
    .replace("host: 127.0.0.1", "host: localhost");
    let out = run("postgres", &body).run_async().await;
    out.assert_code(0);
    out.expect("c", "passed", "TLS");
    let out = run("postgres", &format!("{body}\nsuperuser: false"))
        .run_async()
        .await;
    out.assert_code(1);
    out.expect("c", "failed", "is a superuser");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_asserts_values_rows_and_reports_server_errors() {
    let pg = server().await;
    let client = pg.superuser_client("postgres").await.unwrap();
    client
        .batch_execute(
            "CREATE TABLE django_migrations (id serial, name text);
             INSERT INTO django_migrations (name) SELECT 'm' || g FROM generate_series(1, 215) g;
             CREATE TABLE backup_log (created_at timestamptz, success bool);
             INSERT INTO backup_log VALUES (now() - interval '27 hours', true);",
        )
        .await
        .unwrap();
    let base = connection(&pg, "  sslmode: disable");
    let out = run(
        "sql",
        &format!("{base}\nquery: SELECT count(*) FROM django_migrations\nexpect: \">= 215\""),
    )
    .run_async()
    .await;
    out.assert_code(0);
    let out = run(
        "sql",
        &format!("{base}\nquery: SELECT count(*) FROM django_migrations\nexpect: \">= 216\""),
    )
    .run_async()
    .await;
    out.assert_code(1);
    out.expect("c", "failed", "value `215`, expected `>= 216`");
    let stale =
        "query: SELECT now() - max(created_at) FROM backup_log WHERE success\nexpect: \"< 26h\"";
    let out = run("sql", &format!("{base}\n{stale}")).run_async().await;
    out.assert_code(1);
    out.expect("c", "failed", "expected `< 26h`");
    let out = run(
        "sql",
        &format!("{base}\nquery: SELECT * FROM missing_table\nrows: \">= 1\""),
    )
    .run_async()
    .await;
    out.assert_code(1);
    out.expect("c", "failed", "42P01");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_ready_accepting_and_no_response() {
    let pg = server().await;
    let body = format!(
        "connection: {{host: 127.0.0.1, port: {}, user: nobody, sslmode: disable}}",
        pg.port()
    );
    let out = run("pg-ready", &body).run_async().await;
    out.assert_code(0);
    out.expect("c", "passed", "accepting connections");
    pg.pause().await.unwrap();
    let out = run("pg-ready", &body).run_async().await;
    out.assert_code(1);
    out.expect("c", "failed", "no response");
    run("pg-ready", &format!("{body}\nexpect: no-response"))
        .run_async()
        .await
        .assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_mid_run_fails_the_checks_after_it() {
    let pg = server().await;
    let base = connection(&pg, "  sslmode: disable");
    let query = "query: SELECT 1\nexpect: \"== 1\"";
    let yaml = format!(
        "id: t\ntitle: t\nvariables:\n  pw: {{secret: true, env: TEST_PG_PASSWORD}}\nchecks:\n  - id: before\n    title: before\n    sql:\n{}\n  - id: stop\n    title: stop the server\n    command: {{run: \"sleep 0\"}}\n  - id: after\n    title: after\n    sql:\n{}\n",
        indent(&format!("{base}\n{query}")),
        indent(&format!("{base}\n{query}"))
    );
    // The server goes away between the two checks; the command check is the pause point.
    let yaml = yaml.replace(
        "sleep 0",
        "touch stopping; while [ -e stopping ]; do sleep 0.05; done",
    );
    let attest = Attest::new()
        .suite("t", &yaml)
        .env("TEST_PG_PASSWORD", PASSWORD)
        .args(&["run"]);
    let marker = attest.path().join("stopping");
    let child = attest.spawn();
    while !marker.exists() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    pg.pause().await.unwrap();
    std::fs::remove_file(&marker).unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap();
    out.assert_code(1);
    out.expect("before", "passed", "value `1`");
    out.expect("after", "failed", "cannot connect");
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_required_against_a_plaintext_server_fails() {
    let pg = TempPostgres::start(PostgresOptions {
        superuser_password: PASSWORD.into(),
        tls: false,
        max_connections: None,
    })
    .await
    .unwrap();
    let out = run("postgres", &connection(&pg, "  sslmode: require"))
        .run_async()
        .await;
    out.assert_code(1);
    out.expect("c", "failed", "TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_password_file_is_honoured_as_libpq_does_and_hints_fit_the_host() {
    let pg = server().await;
    let dir = tempfile::tempdir().unwrap();
    let passfile = dir.path().join("pgpass");
    std::fs::write(
        &passfile,
        format!("127.0.0.1:{}:*:postgres:{PASSWORD}\n", pg.port()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&passfile, std::fs::Permissions::from_mode(0o600)).unwrap();
    // No password in the suite: it comes from PGPASSFILE, and stays out of every output.
    let body = connection(&pg, "  sslmode: disable").replace("  password: ${pw}\n", "");
    let out = run("postgres", &body)
        .env("PGPASSFILE", passfile.to_str().unwrap())
        .run_async()
        .await;
    out.assert_code(0);
    assert!(!out.all_output().contains(PASSWORD));
    // A wrong password against a plain host gets a hint for that kind of host, not kubectl.
    let body = connection(&pg, "  sslmode: disable").replace("${pw}", "wrong-password");
    let out = run("postgres", &body).run_async().await;
    let hint = out.expect_in("c", "failed", "hint", "compose")["hint"].clone();
    assert!(!hint.as_str().unwrap().contains("kubectl"), "{hint}");
}

/// A suite of `sql` checks on one connection is sent ahead, pipelined on one session: each
/// check still gets its own answer (a wrong value, a server error in the middle do not touch
/// the others, since each query is its own implicit transaction), and a check that times out
/// stops the pipeline: its query is cancelled on the server and the checks after it send
/// their own queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_of_sql_checks_is_pipelined_and_each_gets_its_own_answer() {
    let pg = server().await;
    let conn = indent(&connection(
        &pg,
        "  sslmode: disable\n  application_name: attest-pipelined",
    ));
    let check = |id: &str, extra: &str, body: &str| {
        format!(
            "  - id: {id}\n    title: {id}\n{extra}    sql:\n{conn}\n{}\n",
            indent(body)
        )
    };
    let mut checks = Vec::new();
    for i in 0..40 {
        checks.push(check(
            &format!("v{i}"),
            "",
            &format!("query: SELECT {i}\nexpect: \"== {i}\""),
        ));
    }
    checks.push(check("wrong", "", "query: SELECT 7\nexpect: \"== 8\""));
    checks.push(check(
        "broken",
        "",
        "query: SELECT * FROM no_such_table\nrows: \">= 1\"",
    ));
    checks.push(check(
        "after-error",
        "",
        "query: SELECT 'still' \nexpect: \"== still\"",
    ));
    checks.push(check(
        "slow",
        "    timeout: 1s\n",
        "query: SELECT 'slept' FROM pg_sleep(20)\nexpect: \"== slept\"",
    ));
    // Queued behind the slow one when it was stopped: it still gets its own answer.
    checks.push(check(
        "slow-after",
        "    timeout: 10s\n",
        "query: SELECT 'woke' FROM pg_sleep(1)\nexpect: \"== woke\"",
    ));
    for i in 0..5 {
        checks.push(check(
            &format!("after-timeout-{i}"),
            "",
            &format!("query: SELECT {i} + 100\nexpect: \"== {}\"", i + 100),
        ));
    }
    let suite = format!(
        "id: p\ntitle: pipelined\nvariables:\n  pw: {{secret: true, env: TEST_PG_PASSWORD}}\nchecks:\n{}",
        checks.concat()
    );
    let started = std::time::Instant::now();
    let out = Attest::new()
        .suite("p", &suite)
        .env("TEST_PG_PASSWORD", PASSWORD)
        .args(&["run"])
        .run_async()
        .await;
    let took = started.elapsed();
    out.assert_code(1);
    for i in 0..40 {
        out.expect(&format!("v{i}"), "passed", &format!("`{i}`"));
    }
    out.expect("wrong", "failed", "value `7`, expected `== 8`");
    out.expect("broken", "failed", "42P01");
    out.expect("after-error", "passed", "still");
    out.expect("slow", "failed", "did not finish within its timeout");
    out.expect("slow-after", "passed", "woke");
    for i in 0..5 {
        out.expect(
            &format!("after-timeout-{i}"),
            "passed",
            &format!("`{}`", i + 100),
        );
    }
    // The sleeping query was cancelled, not left to run its 20 s.
    assert!(took < std::time::Duration::from_secs(15), "{took:?}");
    let client = pg.superuser_client("postgres").await.unwrap();
    let mut sleeping = 1;
    for _ in 0..50 {
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(20)%' AND state = 'active' AND pid <> pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        sleeping = row.get::<_, i64>(0);
        if sleeping == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(sleeping, 0, "the timed-out query still runs on the server");
}

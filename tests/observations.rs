//! A polling check that gives up reports what it last saw, in every output: the console, JUnit,
//! Markdown and JSON. Against a real closed port and a real PostgreSQL value that never
//! reaches its expectation.

mod common;

use attest_sandbox::listeners;
use attest_sandbox::postgres::{PostgresOptions, TempPostgres};
use common::{Attest, Output};

const PASSWORD: &str = "Sup3r-Secret-pw";

/// The last observation must be in all four outputs.
fn assert_everywhere(out: &Output, needles: &[&str]) {
    for (name, text) in [
        ("console", format!("{}{}", out.stdout, out.stderr)),
        ("junit.xml", out.report("junit.xml")),
        ("report.md", out.report("report.md")),
        ("report.json", out.report("report.json")),
    ] {
        for needle in needles {
            assert!(text.contains(needle), "{name} lacks `{needle}`:\n{text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_tcp_check_reports_its_last_observation() {
    let closed = listeners::closed_port().await.unwrap();
    let suite = format!(
        "id: t\ntitle: t\nchecks:\n  - id: port\n    title: port opens\n    timeout: 2s\n    retry: {{interval: 300ms}}\n    tcp: {{host: 127.0.0.1, port: {}}}\n",
        closed.port()
    );
    let out = Attest::new()
        .suite("t", &suite)
        .args(&["run"])
        .run_async()
        .await;
    out.assert_code(1);
    let result = out.result("port");
    assert_eq!(result["status"], "failed");
    let message = result["message"].as_str().unwrap();
    assert!(message.starts_with("gave up after "), "{message}");
    assert!(
        message.contains("; last: connect #1 to 127.0.0.1:"),
        "{message}"
    );
    assert!(result["attempts"].as_u64().unwrap() >= 3, "{result:#}");
    assert!(
        result["found"]
            .as_str()
            .unwrap()
            .contains("Connection refused"),
        "{result:#}"
    );
    assert_everywhere(&out, &["gave up after", "Connection refused"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_sql_check_reports_the_value_it_last_read() {
    let pg = TempPostgres::start(PostgresOptions {
        superuser_password: PASSWORD.into(),
        tls: false,
        max_connections: None,
    })
    .await
    .unwrap();
    let suite = format!(
        r#"id: t
title: t
variables:
  pw: {{secret: true, env: TEST_PG_PASSWORD}}
checks:
  - id: migrations
    title: all migrations applied
    timeout: 2s
    retry: {{interval: 300ms}}
    sql:
      connection: {{host: 127.0.0.1, port: {}, user: postgres, password: "${{pw}}", dbname: postgres, sslmode: disable}}
      query: SELECT 214 AS applied
      expect: ">= 215"
"#,
        pg.port()
    );
    let out = Attest::new()
        .suite("t", &suite)
        .env("TEST_PG_PASSWORD", PASSWORD)
        .args(&["run"])
        .run_async()
        .await;
    out.assert_code(1);
    let result = out.result("migrations");
    let message = result["message"].as_str().unwrap();
    assert!(message.starts_with("gave up after "), "{message}");
    assert!(message.contains("last: "), "{message}");
    assert_everywhere(&out, &["gave up after", "214"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_budget_turns_a_hanging_attempt_into_an_observation() {
    // A listener that accepts and never answers: each HTTP attempt hangs until its budget.
    let silent = listeners::silent().await.unwrap();
    let port = silent.addr.port();
    let suite = format!(
        "id: t\ntitle: t\nchecks:\n  - id: web\n    title: web answers\n    timeout: 3s\n    retry: {{interval: 100ms, attempt_timeout: 500ms}}\n    http: {{url: \"http://127.0.0.1:{port}/\"}}\n"
    );
    let out = Attest::new()
        .suite("t", &suite)
        .args(&["run"])
        .run_async()
        .await;
    out.assert_code(1);
    let result = out.result("web");
    let message = result["message"].as_str().unwrap();
    assert!(message.starts_with("gave up after "), "{message}");
    assert!(
        message.contains("did not finish within 500 ms"),
        "{message}"
    );
    assert!(result["attempts"].as_u64().unwrap() >= 3, "{result:#}");
}

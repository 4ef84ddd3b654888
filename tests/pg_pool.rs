//! The `sql` kind's session pool against a real PostgreSQL: a query whose check times out or
//! is interrupted is cancelled on the server, and many suites share a few sessions without
//! running out of connection slots or running one after the other.

mod common;

use std::time::{Duration, Instant};

use attest_sandbox::postgres::TempPostgres;
use common::{Attest, Output};

const PASSWORD: &str = "Sup3r-Secret-pw";

async fn server(max_connections: Option<u32>) -> TempPostgres {
    common::postgres(PASSWORD, true, max_connections).await
}

/// A `sql` check as a list item of `checks:`.
fn sql_check(pg: &TempPostgres, id: &str, extra: &str, query: &str, expect: &str) -> String {
    format!(
        "  - id: {id}\n    title: {id}\n{extra}    sql:\n      connection: {{host: 127.0.0.1, port: {port}, user: postgres, password: \"${{pw}}\", dbname: postgres}}\n      query: \"{query}\"\n      expect: \"{expect}\"\n",
        port = pg.port()
    )
}

fn suite(id: &str, checks: &str) -> String {
    format!(
        "id: {id}\ntitle: {id}\nvariables:\n  pw: {{secret: true, env: TEST_PG_PASSWORD}}\nchecks:\n{checks}"
    )
}

fn attest() -> Attest {
    Attest::new().env("TEST_PG_PASSWORD", PASSWORD)
}

/// Statements still running on the server that contain `needle`, other than this one.
async fn running(pg: &TempPostgres, needle: &str) -> i64 {
    let client = pg.superuser_client("postgres").await.unwrap();
    client
        .query_one(
            "SELECT count(*) FROM pg_stat_activity
             WHERE query LIKE '%' || $1 || '%' AND state = 'active' AND pid <> pg_backend_pid()",
            &[&needle],
        )
        .await
        .unwrap()
        .get(0)
}

/// Waits (at most 5 s) until no statement containing `needle` runs; returns how many still do.
async fn settled(pg: &TempPostgres, needle: &str) -> i64 {
    let clock = Instant::now();
    loop {
        let left = running(pg, needle).await;
        if left == 0 || clock.elapsed() > Duration::from_secs(5) {
            return left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn count_status(out: &Output, status: &str) -> usize {
    out.json()["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == status)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_query_is_cancelled_and_the_next_check_on_the_target_passes() {
    let pg = server(None).await;
    // Default sslmode (`prefer`) on a TLS server: the cancel request goes over TLS too.
    let checks = sql_check(
        &pg,
        "slow",
        "    timeout: 1s\n",
        "SELECT pg_sleep(30)",
        "== ''",
    ) + &sql_check(&pg, "next", "    timeout: 5s\n", "SELECT 1", "== 1");
    let clock = Instant::now();
    let out = attest()
        .suite("t", &suite("t", &checks))
        .args(&["run"])
        .run_async()
        .await;
    assert!(
        clock.elapsed() < Duration::from_secs(15),
        "{:?}",
        clock.elapsed()
    );
    out.assert_code(1);
    out.expect("slow", "failed", "did not finish within its timeout of 1");
    out.expect("next", "passed", "value `1`");
    assert_eq!(
        settled(&pg, "pg_sleep(30)").await,
        0,
        "pg_sleep still running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_cancels_the_running_query_before_attest_exits() {
    let pg = server(None).await;
    let checks = sql_check(
        &pg,
        "slow",
        "    timeout: 60s\n",
        "SELECT pg_sleep(31)",
        "== ''",
    )
    .replace("dbname: postgres}", "dbname: postgres, sslmode: disable}");
    let child = attest()
        .suite("t", &suite("t", &checks))
        .args(&["run"])
        .spawn();
    let clock = Instant::now();
    while running(&pg, "pg_sleep(31)").await == 0 {
        assert!(
            clock.elapsed() < Duration::from_secs(20),
            "the query never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    common::signal(child.id(), "INT");
    let out = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap();
    out.assert_code(130);
    out.expect("slow", "error", "interrupted");
    assert_eq!(
        settled(&pg, "pg_sleep(31)").await,
        0,
        "pg_sleep still running"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_suites_share_twenty_connection_slots_without_failures() {
    let pg = server(Some(20)).await;
    // Each check also counts the client sessions open while it runs: never more than half
    // of the 17 slots free to others (20 minus 3 reserved for superusers).
    let query = "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'";
    let mut attest = attest();
    for n in 0..200 {
        let check = sql_check(&pg, "c", "", query, "<= 8");
        attest = attest.suite(&format!("s{n:03}"), &suite(&format!("s{n:03}"), &check));
    }
    let out = attest.args(&["run", "--quiet"]).run_async().await;
    out.assert_code(0);
    assert_eq!(count_status(&out, "passed"), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_size_caps_sessions_per_server_across_roles() {
    let pg = server(None).await;
    let admin = pg.superuser_client("postgres").await.unwrap();
    admin
        .batch_execute(&format!(
            "CREATE ROLE reader LOGIN PASSWORD '{PASSWORD}'; GRANT pg_read_all_stats TO reader"
        ))
        .await
        .unwrap();
    let query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'attest'";
    let mut attest = attest();
    for n in 0..30 {
        let checks = sql_check(&pg, "a", "", query, "<= 3")
            + &sql_check(&pg, "b", "", query, "<= 3").replace("user: postgres", "user: reader")
            + &sql_check(&pg, "c", "", "SELECT pg_sleep(0.01)", "== ''");
        attest = attest.suite(&format!("s{n:02}"), &suite(&format!("s{n:02}"), &checks));
    }
    let out = attest
        .args(&["run", "--quiet", "--pg-pool-size", "3"])
        .run_async()
        .await;
    out.assert_code(0);
    assert_eq!(count_status(&out, "passed"), 90);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_suites_of_ten_sleeps_run_side_by_side() {
    let pg = server(None).await;
    let mut attest = attest();
    for n in 0..20 {
        let checks: String = (0..10)
            .map(|i| sql_check(&pg, &format!("c{i}"), "", "SELECT pg_sleep(0.05)", "== ''"))
            .collect();
        attest = attest.suite(&format!("s{n:02}"), &suite(&format!("s{n:02}"), &checks));
    }
    let clock = Instant::now();
    let out = attest.args(&["run", "--quiet"]).run_async().await;
    let elapsed = clock.elapsed();
    out.assert_code(0);
    assert_eq!(count_status(&out, "passed"), 200);
    // 500 ms when the suites run side by side, 10 s one after the other; the benchmark
    // (bench/run) measures it properly.
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}");
}

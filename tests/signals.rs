//! Every way a mutating run can be stopped, against a real PostgreSQL: SIGINT, SIGTERM, SIGHUP,
//! a second signal, a closed stdout, and SIGKILL followed by `attest cleanup`. After each,
//! databases, roles, tables, sessions, child processes and temporary files are compared with
//! what was there before.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use attest_sandbox::postgres::TempPostgres;
use common::Attest;

const PASSWORD: &str = "Adm1n-Secret-pw";

async fn server() -> TempPostgres {
    common::postgres(PASSWORD, false, None).await
}

/// Everything a run could leave on the server: databases, roles, tables in `postgres`, and
/// attest's sessions (all named; this test's own clients are not).
async fn server_state(pg: &TempPostgres) -> Vec<String> {
    let client = pg.superuser_client("postgres").await.unwrap();
    let mut state = Vec::new();
    for sql in [
        "SELECT 'db ' || datname FROM pg_database",
        "SELECT 'role ' || rolname FROM pg_roles",
        "SELECT 'table ' || schemaname || '.' || tablename FROM pg_tables WHERE schemaname = 'public'",
        "SELECT 'session ' || application_name FROM pg_stat_activity
         WHERE backend_type = 'client backend' AND application_name <> ''",
    ] {
        let rows = client.query(sql, &[]).await.unwrap();
        state.extend(rows.iter().map(|r| r.get::<_, String>(0)));
    }
    state.sort();
    state
}

/// A run that provisions a database and role, writes a sentinel row, creates a CRUD table,
/// dumps and restores, then blocks in a command until it is stopped.
fn mutating_suite(pg: &TempPostgres) -> String {
    format!(
        r#"id: t
title: mutating
variables:
  pw: {{secret: true, env: TEST_ADMIN_PASSWORD}}
checks:
  - id: provision
    title: provision
    register: app
    pg-provision:
      connection: &admin {{host: 127.0.0.1, port: {port}, user: postgres, password: "${{pw}}", dbname: postgres, sslmode: disable}}
      database: appdb
      role: app_user
  - id: sentinel
    title: sentinel
    pg-sentinel: {{connection: *admin, action: write}}
  - id: backup
    title: backup
    pg-backup: {{connection: *admin}}
  - id: crud
    title: crud
    pg-crud: {{connection: *admin, rows: 10}}
  - id: slow
    title: slow
    timeout: 60s
    command: {{run: "touch started; sleep 30 & sleep 30; wait"}}
"#,
        port = pg.port()
    )
}

fn attest(pg: &TempPostgres, tmp: &Path) -> Attest {
    Attest::new()
        .suite("t", &mutating_suite(pg))
        .env("TEST_ADMIN_PASSWORD", PASSWORD)
        .env("TMPDIR", tmp.to_str().unwrap())
        .args(&["run", "--allow-mutating"])
}

/// Waits (at most 30 s) until the blocking check has started.
async fn until_started(dir: &Path) {
    let marker = dir.join("started");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the slow check never started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn signal(pid: u32, name: &str) {
    assert!(common::signal(pid, name), "kill -{name} {pid} failed");
}

/// Processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<String> {
    processes_where(|text| text.contains(needle))
}

/// Processes whose command line is exactly `command` (the blocking check's `sleep 30`, not a
/// `sleep 300` of anything else on the machine).
fn processes_running(command: &str) -> Vec<String> {
    processes_where(|text| text.trim_end() == command)
}

fn processes_where(matches: impl Fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true);
        if matches(&text) && !zombie {
            found.push(text);
        }
    }
    found
}

async fn assert_nothing_left(pg: &TempPostgres, before: &[String], tmp: &Path, what: &str) {
    // A closed session's backend ends a moment after its client: allow it that (bounded).
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut state = server_state(pg).await;
    while state != before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        state = server_state(pg).await;
    }
    assert_eq!(state, before, "{what}: the server differs");
    let leftovers: Vec<_> = std::fs::read_dir(tmp).unwrap().flatten().collect();
    assert!(
        leftovers.is_empty(),
        "{what}: temporary files left: {leftovers:?}"
    );
    assert_command_stopped(what).await;
}

/// The blocking check's command group is killed; gives the kernel a moment to reap (bounded).
async fn assert_command_stopped(what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_running("sleep 30").is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        processes_running("sleep 30"),
        Vec::<String>::new(),
        "{what}: processes left"
    );
}

async fn stopped_by(signals: &[&str], code: i32, reason: &str) {
    let pg = server().await;
    let tmp = tempfile::tempdir().unwrap();
    let before = server_state(&pg).await;
    let attest = attest(&pg, tmp.path());
    let dir = attest.path().to_owned();
    let child = attest.spawn();
    until_started(&dir).await;
    for name in signals {
        signal(child.id(), name);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap();
    out.assert_code(code);
    out.expect("slow", "error", reason);
    // Every run that starts writes its three reports, and says how it ended.
    let json = out.json();
    assert_eq!(json["final_state"], "interrupted", "{json:#}");
    assert!(out.report("junit.xml").contains("<testsuites"));
    assert!(out.report("report.md").contains("INTERRUPTED"));
    assert_eq!(out.result("provision")["status"], "passed");
    assert_nothing_left(&pg, &before, tmp.path(), &signals.join("+")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_tears_down_writes_reports_and_exits_143() {
    stopped_by(&["TERM"], 143, "interrupted while running (SIGTERM)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_tears_down_writes_reports_and_exits_129() {
    stopped_by(&["HUP"], 129, "interrupted while running (SIGHUP)").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_still_tears_down_and_writes_reports() {
    stopped_by(&["INT", "INT"], 130, "interrupted while running (SIGINT").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stdout_does_not_stop_teardown_or_reports() {
    let pg = server().await;
    let tmp = tempfile::tempdir().unwrap();
    let before = server_state(&pg).await;
    // The same run without the blocking check, its stdout closed before attest writes a line
    // (as `attest run … | head -0` would).
    let yaml = mutating_suite(&pg).replace(
        "command: {run: \"touch started; sleep 30 & sleep 30; wait\"}",
        "command: {run: \"true\"}",
    );
    let attest = Attest::new()
        .suite("t", &yaml)
        .env("TEST_ADMIN_PASSWORD", PASSWORD)
        .env("TMPDIR", tmp.path().to_str().unwrap())
        .args(&["run", "--allow-mutating"]);
    let out = tokio::task::spawn_blocking(move || attest.run_with_closed_stdout())
        .await
        .unwrap();
    out.assert_code(0);
    assert_eq!(
        out.json()["summary"]["passed"],
        5,
        "{}",
        out.report("report.json")
    );
    assert!(!out.stderr.contains("panicked at"), "{}", out.stderr);
    assert_nothing_left(&pg, &before, tmp.path(), "closed stdout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_attest_cleanup_finds_and_drops_every_leftover() {
    let pg = server().await;
    let tmp = tempfile::tempdir().unwrap();
    let before = server_state(&pg).await;
    let attest = attest(&pg, tmp.path());
    let dir = attest.path().to_owned();
    let child = attest.spawn();
    until_started(&dir).await;
    signal(child.id(), "KILL");
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    // Its watchdog stops the command's group once attest is gone.
    assert_command_stopped("SIGKILL").await;
    let after_kill = server_state(&pg).await;
    assert_ne!(after_kill, before, "SIGKILL should leave something to find");

    let cleanup = |drop: bool| {
        let mut args = vec![
            "cleanup".to_owned(),
            "--host=127.0.0.1".to_owned(),
            format!("--port={}", pg.port()),
            "--user=postgres".to_owned(),
            "--dbname=postgres".to_owned(),
            "--sslmode=disable".to_owned(),
        ];
        if drop {
            args.push("--drop".into());
        }
        Attest::new()
            .env("PGPASSWORD", PASSWORD)
            .args(&args.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let listed = cleanup(false).run_async().await;
    listed.assert_code(1);
    for expected in [
        "database appdb_",
        "role app_user_",
        "database attest_restore_",
        "table public.attest_sentinel",
    ] {
        assert!(
            listed.stdout.contains(expected),
            "`{expected}` not listed:\n{}",
            listed.stdout
        );
    }
    assert!(listed.stdout.contains("attest-run "), "{}", listed.stdout);

    // An object without the marker is never touched, even with a name like ours.
    let admin = pg.superuser_client("postgres").await.unwrap();
    admin
        .batch_execute("CREATE DATABASE attest_restore_mine")
        .await
        .unwrap();

    cleanup(true).run_async().await.assert_code(0);
    let mut expected = before.clone();
    expected.push("db attest_restore_mine".into());
    expected.sort();
    let mut after = server_state(&pg).await;
    after.retain(|line| !line.starts_with("session "));
    expected.retain(|line| !line.starts_with("session "));
    assert_eq!(after, expected, "cleanup left something, or took too much");
    cleanup(false).run_async().await.assert_code(0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresponsive_server_costs_the_checks_timeouts_not_a_teardown_wait() {
    // Accepts connections and never answers, like a server stuck behind a dead NFS mount.
    let silent = attest_sandbox::listeners::silent().await.unwrap();
    let port = silent.addr.port();
    let suite = format!(
        r#"id: t
title: unresponsive
variables:
  pw: {{secret: true, env: TEST_ADMIN_PASSWORD}}
checks:
  - id: provision
    title: provision
    timeout: 2s
    pg-provision:
      connection: &admin {{host: 127.0.0.1, port: {port}, user: postgres, password: "${{pw}}", dbname: postgres, sslmode: disable}}
      database: appdb
      role: app_user
  - id: crud
    title: crud
    timeout: 2s
    pg-crud: {{connection: *admin}}
  - id: backup
    title: backup
    timeout: 2s
    pg-backup: {{connection: *admin}}
"#
    );
    let started = Instant::now();
    let out = Attest::new()
        .suite("t", &suite)
        .env("TEST_ADMIN_PASSWORD", PASSWORD)
        .args(&["run", "--allow-mutating"])
        .run_async()
        .await;
    let took = started.elapsed();
    out.assert_code(1);
    for check in ["provision", "crud", "backup"] {
        assert_eq!(
            out.result(check)["status"],
            "failed",
            "{:#}",
            out.result(check)
        );
    }
    assert!(
        out.json()["teardown_failures"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing to undo"
    );
    assert!(
        took < Duration::from_secs(9),
        "three 2 s timeouts took {took:?}"
    );
}

/// `attest sandbox up` killed with SIGKILL (no handler can run): its PostgreSQL stops and its
/// folders (passwords, the checkout with its secrets file) are removed by their watchdogs.
#[test]
fn a_sigkilled_sandbox_leaves_no_server_and_no_secrets_behind() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_attest"))
        .args(["sandbox", "up", "--no-kubernetes"])
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut vars, mut checkout) = (None, None);
    for line in stdout.lines() {
        let line = line.unwrap();
        let line = line.trim();
        if line.ends_with(".vars.yaml") && !line.contains(' ') {
            vars = Some(std::path::PathBuf::from(line));
        }
        if let Some(path) = line.strip_prefix("homelab checkout") {
            checkout = Some(std::path::PathBuf::from(path.trim()));
        }
        if line.starts_with("attest run suites/") {
            break;
        }
    }
    let (vars, checkout) = (
        vars.expect("vars file path"),
        checkout.expect("checkout path"),
    );
    let pg_dir = vars.parent().unwrap().to_owned();
    assert!(pg_dir.join("data").is_dir() && checkout.is_dir());
    signal(child.id(), "KILL");
    let _ = child.wait();
    let deadline = Instant::now() + Duration::from_secs(20);
    while (pg_dir.exists() || checkout.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!pg_dir.exists(), "{} is left behind", pg_dir.display());
    assert!(!checkout.exists(), "{} is left behind", checkout.display());
    assert_eq!(
        processes_with(&pg_dir.display().to_string()),
        Vec::<String>::new(),
        "the sandbox's PostgreSQL still runs"
    );
}

/// Before anything exists to tear down (loading, `attest check`), a signal ends attest at
/// once with the signal's exit code, instead of being swallowed until the load is done.
#[test]
fn a_signal_while_loading_ends_attest_at_once() {
    // Slow to check on purpose: 30,000 misspelt references to as many declared variables.
    let mut yaml = String::from("id: k\ntitle: K\nvariables:\n");
    for i in 0..30_000 {
        yaml.push_str(&format!("  known_{i}: {{default: x}}\n"));
    }
    yaml.push_str("checks:\n  - id: c\n    title: c\n    command:\n      run: 'echo");
    for i in 0..30_000 {
        yaml.push_str(&format!(" ${{unknown_{i}}}"));
    }
    yaml.push_str("'\n");
    let running = Attest::new()
        .suite("slow", &yaml)
        .args(&["check", "suites"])
        .spawn();
    std::thread::sleep(Duration::from_millis(300));
    assert!(common::signal(running.id(), "TERM"));
    // Had the signal waited for the load, the exit code would be 2 (its problems).
    let out = running.wait();
    out.assert_code(143);
    assert!(out.stderr.contains("SIGTERM: stopping"), "{}", out.stderr);
}

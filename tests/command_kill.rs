//! `command` checks leave nothing running: the whole process group is stopped when the
//! command exits, times out, the run is interrupted or attest is killed, and background
//! children do not keep a check waiting.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{one_check, Attest};

/// Whether any process of the group is still running (zombies are dead already; reaping
/// orphans is up to init). Linux /proc.
fn group_running(pgid: u32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        let Some(close) = stat.rfind(')') else {
            return false;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        fields.len() > 2 && fields[2] == pgid.to_string() && !["Z", "X"].contains(&fields[0])
    })
}

/// Polls until the group is gone; returns how long that took, or None.
fn gone_within(pgid: u32, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if !group_running(pgid) {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Shell (in a suite, `$` doubled) that writes the command's process group id to `pgid`: that
/// of the watchdog leading the group, not the shell's own `$$`.
const WRITE_PGID: &str = "cut -d' ' -f5 /proc/$$$$/stat > pgid";

fn pgid_in(dir: &Path) -> u32 {
    let text = std::fs::read_to_string(dir.join("pgid")).expect("the command wrote its pgid");
    text.trim().parse().expect("a process group id")
}

fn with_timeout(suite: &str, timeout: &str) -> String {
    suite.replace("timeout: 10s", &format!("timeout: {timeout}"))
}

#[test]
fn a_timed_out_command_ignoring_sigterm_leaves_no_process() {
    let suite = with_timeout(
        &one_check(
            "command",
            &format!("run: \"{WRITE_PGID}; trap '' TERM; sleep 1000\""),
        ),
        "1s",
    );
    let started = Instant::now();
    let out = Attest::new().suite("t", &suite).args(&["run"]).run();
    let took = started.elapsed();
    out.assert_code(1);
    out.expect("c", "failed", "did not finish within its timeout");
    let pgid = pgid_in(&out.dir);
    // attest's exit does not wait out the grace period: it kills what is left.
    let dead_after = gone_within(pgid, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("processes of group {pgid} survived attest"));
    eprintln!("run took {took:?}; group gone {dead_after:?} after attest exited");
    assert!(took < Duration::from_secs(5), "run took {took:?}");
}

#[test]
fn a_background_child_does_not_keep_the_check_waiting() {
    let suite = one_check(
        "command",
        &format!("run: \"{WRITE_PGID}; sleep 1000 & echo started\"\nstdout_contains: [started]"),
    );
    let started = Instant::now();
    let out = Attest::new().suite("t", &suite).args(&["run"]).run();
    let took = started.elapsed();
    out.assert_code(0);
    out.expect("c", "passed", "were stopped");
    assert!(took < Duration::from_secs(3), "run took {took:?}");
    let pgid = pgid_in(&out.dir);
    assert!(!group_running(pgid), "the background `sleep` survived");
}

#[test]
fn a_background_child_ignoring_sigterm_is_killed_after_the_grace() {
    let suite = one_check(
        "command",
        &format!("run: \"{WRITE_PGID}; (trap '' TERM; sleep 1000) & echo started\"\nstdout_contains: [started]"),
    );
    let started = Instant::now();
    let out = Attest::new().suite("t", &suite).args(&["run"]).run();
    let took = started.elapsed();
    out.assert_code(0);
    out.expect("c", "passed", "ignored SIGTERM and were killed");
    eprintln!("run with a SIGTERM-ignoring leftover took {took:?}");
    assert!(took < Duration::from_secs(6), "run took {took:?}");
    assert!(!group_running(pgid_in(&out.dir)));
}

/// Starts attest on `suite` and waits until its command has written the group id.
fn spawn_until_pgid_written(suite: &str) -> common::Running {
    let attest = Attest::new().suite("t", suite).args(&["run"]);
    let marker = attest.path().join("pgid");
    let child = attest.spawn();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::read_to_string(&marker).map_or(true, |t| !t.ends_with('\n'))
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn sigkill_of_attest_leaves_no_process_of_the_command_behind() {
    // A child, a grandchild that an inner shell starts in the background, and a subshell
    // that ignores SIGTERM. (37 s: other tests look for their own leftover `sleep 30`.)
    let suite = with_timeout(
        &one_check(
            "command",
            &format!(
                "run: \"sh -c 'sleep 37 & sleep 37' & (trap '' TERM; sleep 37) & {WRITE_PGID}; sleep 37\""
            ),
        ),
        "60s",
    );
    let child = spawn_until_pgid_written(&suite);
    // Not a group of one: the command and its children are running.
    std::thread::sleep(Duration::from_millis(200));
    let dir = child.path().to_owned();
    let pgid = pgid_in(&dir);
    assert!(group_running(pgid), "group {pgid} is not running");
    assert!(common::signal(child.id(), "KILL"));
    let killed = Instant::now();
    child.wait();
    let dead_after = gone_within(pgid, Duration::from_secs(6))
        .unwrap_or_else(|| panic!("processes of group {pgid} survived attest's SIGKILL"));
    eprintln!(
        "group gone {dead_after:?} after attest's death ({:?} after SIGKILL)",
        killed.elapsed()
    );
}

#[test]
fn ctrl_c_stops_the_running_command_group() {
    let suite = with_timeout(
        &one_check(
            "command",
            &format!("run: \"(trap '' TERM; sleep 1000) & {WRITE_PGID}; sleep 1000\""),
        ),
        "60s",
    );
    let child = spawn_until_pgid_written(&suite);
    common::signal(child.id(), "INT");
    let interrupted = Instant::now();
    let out = child.wait();
    out.assert_code(130);
    let pgid = pgid_in(&out.dir);
    let dead_after = gone_within(pgid, Duration::from_secs(5))
        .unwrap_or_else(|| panic!("processes of group {pgid} survived Ctrl-C"));
    eprintln!(
        "attest exited {:?} after SIGINT; group gone {dead_after:?} later",
        interrupted.elapsed()
    );
}

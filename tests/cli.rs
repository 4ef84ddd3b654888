//! Black-box behaviour of the binary: exit codes, libtest flags, load errors, reports,
//! redaction.

mod common;

use common::{one_check, Attest};

const PASSING: &str = r#"
id: demo
title: Demo suite
story: "5.5"
requirements:
  FR35: Applications can connect to PostgreSQL
checks:
  - id: first
    title: First check
    covers: [FR35, AC2]
    command:
      run: "echo hello"
      stdout_contains: [hello]
  - id: second
    title: Second check
    covers: [AC3]
    command:
      run: [printf, ok]
"#;

/// `--simulated`: a check by name or every check of a kind is labelled in every report; a
/// value that names neither is refused before anything runs.
#[test]
fn simulated_results_are_labelled_and_a_bad_label_is_refused() {
    let out = Attest::new()
        .suite("demo", PASSING)
        .args(&[
            "run",
            "--simulated",
            "demo::first=a stand-in shell",
            "--simulated",
            "[command]=any shell",
        ])
        .run();
    out.assert_code(0);
    assert_eq!(out.result("first")["simulated"], "a stand-in shell");
    assert_eq!(out.result("second")["simulated"], "any shell");
    assert!(out
        .report("junit.xml")
        .contains("simulated: a stand-in shell"));
    assert!(out.report("report.md").contains("simulated: any shell"));
    let out = Attest::new()
        .suite("demo", PASSING)
        .args(&[
            "run",
            "--simulated",
            "first=why",
            "--simulated",
            "[nokind]=why",
        ])
        .run();
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("expected SUITE::CHECK=WHY or [KIND]=WHY"),
        "{}",
        out.stderr
    );
    assert!(out.stdout.is_empty(), "nothing ran: {}", out.stdout);
}

#[test]
fn passing_run_exits_zero_and_writes_all_reports() {
    let out = Attest::new().suite("demo", PASSING).args(&["run"]).run();
    out.assert_code(0);
    assert!(
        out.stdout.contains("test [command] demo::first"),
        "{}",
        out.stdout
    );
    let json = out.json();
    assert_eq!(json["summary"]["passed"], 2);
    assert_eq!(json["target"], "live");
    let first = out.result("first");
    assert_eq!(first["requirements"][0], "FR35");
    assert_eq!(first["story"], "5.5");
    assert_eq!(first["ac"], "AC2");
    assert_eq!(first["kind"], "command");
    assert!(out
        .report("junit.xml")
        .contains("first: First check [FR35, AC2]"));
    assert!(out
        .report("report.md")
        .contains("| AC2 | FR35 | First check (`first`) | ✅ passed |"));
}

#[test]
fn failing_check_exits_one_explains_and_still_reports() {
    let suite = one_check(
        "command",
        "run: \"echo nope; exit 3\"\nstdout_contains: [yes]",
    );
    let out = Attest::new().suite("t", &suite).args(&["run"]).run();
    out.assert_code(1);
    assert!(
        out.stdout.contains("exit code 3, expected 0"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("expected: exit code 0"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("at:       suites/t.yaml:4:5"),
        "{}",
        out.stdout
    );
    out.expect("c", "failed", "`yes` not found");
    let junit = out.report("junit.xml");
    assert!(junit.contains("<failure"), "{junit}");
    assert!(
        junit.contains("found:"),
        "failure body carries expected/found: {junit}"
    );
}

/// Runs a broken suite and returns stderr, asserting exit code 2 and no reports.
fn load_error(yaml: &str) -> String {
    let out = Attest::new().suite("bad", yaml).args(&["run"]).run();
    out.assert_code(2);
    assert!(
        !out.dir.join("reports/report.json").exists(),
        "no run, no report"
    );
    out.stderr
}

#[test]
fn yaml_syntax_error_names_file_line_and_column() {
    let err = load_error("id: t\ntitle: x\nchecks:\n  - id: [unclosed\n");
    assert!(err.contains("suites/bad.yaml:"), "{err}");
    let position = regex::Regex::new(r"suites/bad\.yaml:\d+:\d+: ").unwrap();
    assert!(position.is_match(&err), "{err}");
}

#[test]
fn unknown_key_names_file_line_and_column() {
    let yaml = one_check("dns", "name: example.org\nnmaeserver: 127.0.0.1");
    let err = load_error(&yaml);
    assert!(err.contains("suites/bad.yaml:9:7"), "{err}");
    assert!(err.contains("nmaeserver"), "{err}");
}

#[test]
fn unknown_check_key_lists_what_is_allowed() {
    let yaml = "id: t\ntitle: x\nchecks:\n  - id: c\n    title: c\n    tiemout: 5s\n    command: {run: 'true'}\n";
    let err = load_error(yaml);
    assert!(err.contains("suites/bad.yaml:6:5"), "{err}");
    assert!(err.contains("tiemout") && err.contains("timeout"), "{err}");
}

#[test]
fn bad_duration_names_file_line_and_column() {
    let yaml = "id: t\ntitle: x\nchecks:\n  - id: c\n    title: c\n    timeout: ten seconds\n    command: {run: 'true'}\n";
    let err = load_error(yaml);
    assert!(err.contains("suites/bad.yaml:6:14"), "{err}");
    assert!(err.contains("expected a duration like"), "{err}");
}

#[test]
fn bad_type_names_file_line_and_column() {
    let err = load_error(&one_check("tcp", "host: 127.0.0.1\nport: not-a-port"));
    assert!(err.contains("suites/bad.yaml:9:13"), "{err}");
}

#[test]
fn undefined_variable_is_an_error_at_its_position() {
    let err = load_error(&one_check("tcp", "host: ${pg_hots}\nport: 5432"));
    assert!(err.contains("suites/bad.yaml:8:13"), "{err}");
    assert!(err.contains("unknown variable `pg_hots`"), "{err}");
}

#[test]
fn a_check_needs_exactly_one_kind() {
    let err = load_error("id: t\ntitle: x\nchecks:\n  - id: c\n    title: c\n");
    assert!(err.contains("has no kind"), "{err}");
    let two = "id: t\ntitle: x\nchecks:\n  - id: c\n    title: c\n    command: {run: 'true'}\n    file: {path: x}\n";
    assert!(load_error(two).contains("exactly one kind"));
}

#[test]
fn references_are_validated() {
    let yaml = "id: t\ntitle: x\nrequirements: {FR1: one}\nchecks:\n  - id: c\n    title: c\n    covers: [FR2]\n    needs: [later]\n    command: {run: 'true'}\n";
    let err = load_error(yaml);
    assert!(err.contains("covers `FR2`"), "{err}");
    assert!(err.contains("needs `later`"), "{err}");
}

#[test]
fn list_prints_checks_and_runs_nothing() {
    let suite = one_check("command", "run: touch ran");
    let out = Attest::new()
        .suite("t", &suite)
        .args(&["run", "--list"])
        .run();
    out.assert_code(0);
    assert!(out.stdout.contains("t::c: test"), "{}", out.stdout);
    assert!(!out.dir.join("ran").exists(), "--list must not run checks");
}

#[test]
fn filters_exact_and_skip_select_checks() {
    let out = Attest::new()
        .suite("demo", PASSING)
        .args(&["run", "second"])
        .run();
    out.assert_code(0);
    assert_eq!(out.json()["results"].as_array().unwrap().len(), 1);
    assert!(out.stdout.contains("1 filtered out"), "{}", out.stdout);

    let out = Attest::new()
        .suite("demo", PASSING)
        .args(&["run", "--exact", "demo::first"])
        .run();
    assert_eq!(out.json()["results"][0]["check"], "first");

    let out = Attest::new()
        .suite("demo", PASSING)
        .args(&["run", "--skip", "first"])
        .run();
    let results = out.json()["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["check"], "second");
}

#[test]
fn filter_matching_nothing_is_a_usage_error() {
    let out = Attest::new()
        .suite("demo", PASSING)
        .args(&["run", "nothing-like-this"])
        .run();
    out.assert_code(2);
    assert!(out.stderr.contains("no check matched"), "{}", out.stderr);
}

#[test]
fn ignored_checks_run_only_when_asked() {
    let yaml = "id: t\ntitle: x\nchecks:\n  - id: c\n    title: c\n    ignore: flaky on weekends\n    command: {run: 'false'}\n";
    let out = Attest::new().suite("t", yaml).args(&["run"]).run();
    out.assert_code(0);
    out.expect("c", "skipped", "flaky on weekends");
    let out = Attest::new()
        .suite("t", yaml)
        .args(&["run", "--include-ignored"])
        .run();
    out.assert_code(1);
    out.expect("c", "failed", "exit code 1");
    let out = Attest::new()
        .suite("t", yaml)
        .args(&["run", "--ignored"])
        .run();
    out.assert_code(1);
}

#[test]
fn mutating_checks_need_an_explicit_opt_in() {
    let yaml = "id: t\ntitle: x\nchecks:\n  - id: c\n    title: c\n    safety: mutating\n    command: {run: touch made}\n";
    let out = Attest::new().suite("t", yaml).args(&["run"]).run();
    out.assert_code(0);
    out.expect("c", "skipped", "--allow-mutating");
    assert!(!out.dir.join("made").exists());
    let out = Attest::new()
        .suite("t", yaml)
        .args(&["run", "--allow-mutating"])
        .run();
    out.assert_code(0);
    out.expect("c", "passed", "exited 0");
    assert!(out.dir.join("made").exists());
}

/// A run that skipped checks is never reported as a plain PASSED: the console's last line,
/// report.md's banner, report.json and JUnit say what was not verified and why; with
/// `--require-all` it fails with its own exit code.
#[test]
fn skipped_checks_are_not_verified_and_require_all_fails_the_run() {
    let yaml = "id: t\ntitle: x\nchecks:\n  - id: ok\n    title: ok\n    command: {run: 'true'}\n  - id: m1\n    title: m1\n    safety: mutating\n    command: {run: 'true'}\n  - id: m2\n    title: m2\n    safety: mutating\n    command: {run: 'true'}\n  - id: later\n    title: later\n    ignore: not yet\n    command: {run: 'true'}\n";
    let out = Attest::new().suite("t", yaml).args(&["run"]).run();
    out.assert_code(0);
    let last = out.stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        "PASSED 1 · NOT VERIFIED 3 (2: runs only with --allow-mutating; 1: ignored in the suite (run with --include-ignored))",
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--require-all"), "{}", out.stderr);
    let json = out.json();
    assert_eq!(json["final_state"], "success");
    assert_eq!(json["verdict"]["line"], last);
    assert_eq!(json["verdict"]["verified"], 1);
    assert_eq!(json["verdict"]["not_verified"], 3);
    let causes = &json["verdict"]["not_verified_by_cause"];
    assert_eq!(causes[0]["cause"], "not-allowed");
    assert_eq!(causes[0]["count"], 2);
    assert_eq!(out.result("m1")["skip"]["cause"], "not-allowed");
    let markdown = out.report("report.md");
    assert!(
        markdown.contains(&format!("**⚠ {last}**")) && !markdown.contains("✅ PASSED"),
        "{markdown}"
    );
    assert!(
        markdown.contains("- 2 check(s): runs only with --allow-mutating"),
        "{markdown}"
    );
    let junit = out.report("junit.xml");
    assert!(
        junit.contains("<skipped message=\"mutating check: runs only with --allow-mutating\""),
        "{junit}"
    );
    assert!(
        junit.contains("name=\"verdict\" value=\"PASSED 1 · NOT VERIFIED 3"),
        "{junit}"
    );

    let strict = Attest::new()
        .suite("t", yaml)
        .args(&["run", "--require-all"])
        .run();
    strict.assert_code(3);
    assert_eq!(strict.json()["final_state"], "not-verified");
    assert!(strict
        .report("report.md")
        .contains("**⚠ PASSED 1 · NOT VERIFIED 3"));
    // Everything verified: a plain PASSED, also under --require-all.
    let all = Attest::new()
        .suite("t", yaml)
        .args(&[
            "run",
            "--require-all",
            "--allow-mutating",
            "--include-ignored",
        ])
        .run();
    all.assert_code(0);
    assert_eq!(
        all.stderr.lines().last(),
        Some("PASSED 4"),
        "{}",
        all.stderr
    );
    assert!(all.report("report.md").contains("**✅ PASSED 4**"));
    // A failure is named first; what was skipped still shows.
    let failing = yaml.replace(
        "id: ok\n    title: ok\n    command: {run: 'true'}",
        "id: ok\n    title: ok\n    command: {run: 'false'}",
    );
    let out = Attest::new()
        .suite("t", &failing)
        .args(&["run", "--require-all"])
        .run();
    out.assert_code(1);
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("FAILED 1 · passed 0 · NOT VERIFIED 3"),
        "{last}"
    );
}

/// Checks a name filter leaves out are said to be so, not counted as verified.
#[test]
fn the_verdict_counts_checks_the_filter_left_out() {
    let out = Attest::new()
        .suite("demo", PASSING)
        .args(&["run", "first"])
        .run();
    out.assert_code(0);
    assert_eq!(
        out.stderr.lines().last(),
        Some("PASSED 1 · 1 not selected by the filter"),
        "{}",
        out.stderr
    );
    assert_eq!(out.json()["verdict"]["not_selected"], 1);
}

#[test]
fn a_failed_prerequisite_skips_dependents_instead_of_failing_them() {
    let yaml = "id: t\ntitle: x\nchecks:\n  - id: a\n    title: a\n    command: {run: 'false'}\n  - id: b\n    title: b\n    needs: [a]\n    command: {run: 'true'}\n";
    let out = Attest::new().suite("t", yaml).args(&["run"]).run();
    out.assert_code(1);
    out.expect("a", "failed", "exit code 1");
    out.expect("b", "skipped", "needs `a`, which was failed");
}

#[test]
fn retry_polls_until_the_check_passes() {
    let yaml = r#"
id: t
title: x
checks:
  - id: eventually
    title: passes on the third try
    timeout: 10s
    retry: { interval: 50ms }
    command:
      run: "echo x >> tries; test $$(wc -l < tries) -ge 3"
"#;
    let out = Attest::new().suite("t", yaml).args(&["run"]).run();
    out.assert_code(0);
    assert_eq!(out.result("eventually")["attempts"], 3);
}

#[test]
fn timeout_stops_a_slow_check_with_a_clear_message() {
    let yaml = "id: t\ntitle: x\nchecks:\n  - id: slow\n    title: slow\n    timeout: 300ms\n    command: {run: 'sleep 5'}\n";
    let started = std::time::Instant::now();
    let out = Attest::new().suite("t", yaml).args(&["run"]).run();
    out.assert_code(1);
    out.expect(
        "slow",
        "failed",
        "did not finish within its timeout of 300 ms",
    );
    assert!(
        started.elapsed().as_secs() < 4,
        "the command was not killed at its timeout"
    );
}

#[test]
fn registered_values_flow_to_later_checks() {
    let yaml = r#"
id: t
title: x
checks:
  - id: produce
    title: produce
    register: token
    command: { run: "echo abc123" }
  - id: consume
    title: consume
    command:
      run: [sh, -c, "test \"$0\" = abc123", "${token_stdout}"]
"#;
    let out = Attest::new().suite("t", yaml).args(&["run"]).run();
    out.assert_code(0);
}

#[test]
fn secrets_never_appear_in_any_output() {
    let secret = "Pl4nted-S3cret-Value";
    let yaml = r#"
id: t
title: x
variables:
  db_password: { secret: true, env: TEST_DB_PASSWORD }
checks:
  - id: leaks-on-failure
    title: echoes the secret and fails
    command:
      run: "echo password=${db_password}; echo ${db_password} >&2; exit 1"
  - id: leaks-on-success
    title: echoes the secret in a URL
    command:
      run: "echo postgres://u:${db_password}@h/db"
      stdout_contains: ["${db_password}"]
"#;
    let out = Attest::new()
        .suite("t", yaml)
        .env("TEST_DB_PASSWORD", secret)
        .args(&["run"])
        .run();
    out.assert_code(1);
    let everything = out.all_output();
    assert!(!everything.contains(secret), "secret leaked:\n{everything}");
    assert!(
        everything.contains("[REDACTED]"),
        "redaction marker expected:\n{everything}"
    );
}

#[test]
fn secrets_stay_out_of_load_errors() {
    let secret = "An0ther-Planted-Secret";
    let yaml = "id: t\ntitle: x\nvariables:\n  pw: {secret: true, env: TEST_PW}\nchecks:\n  - id: c\n    title: c\n    tcp: {host: h, port: ${pw}}\n";
    let out = Attest::new()
        .suite("t", yaml)
        .env("TEST_PW", secret)
        .args(&["run"])
        .run();
    out.assert_code(2);
    assert!(!out.stderr.contains(secret), "{}", out.stderr);
}

#[test]
fn vars_file_and_set_override_defaults() {
    let yaml = "id: t\ntitle: x\nvariables:\n  word: default\nchecks:\n  - id: c\n    title: c\n    command: {run: 'test ${word} = from-set'}\n";
    let out = Attest::new()
        .suite("t", yaml)
        .file("vars.yaml", "word: from-file\n")
        .args(&["run", "--vars", "vars.yaml", "--set", "word=from-set"])
        .run();
    out.assert_code(0);
    let out = Attest::new()
        .suite("t", yaml)
        .file("vars.yaml", "word: from-set\n")
        .args(&["run", "--vars", "vars.yaml"])
        .run();
    out.assert_code(0);
}

#[test]
fn junit_validates_against_the_jenkins_schema() {
    let yaml = r#"
id: mixed
title: "Mixed <results> & \"quotes\""
story: "10.2"
requirements: { FR66: "PostgreSQL backend" }
checks:
  - id: ok
    title: passes
    covers: [FR66, AC1]
    command: { run: "true" }
  - id: bad
    title: fails with <xml> & ansi
    command: { run: "printf '\\033[31mred\\033[0m'; exit 2" }
  - id: skip
    title: skipped
    needs: [bad]
    command: { run: "true" }
"#;
    let out = Attest::new().suite("mixed", yaml).args(&["run"]).run();
    out.assert_code(1);
    common::assert_valid_junit(&out.dir.join("reports/junit.xml"));
}

#[test]
fn markdown_tables_render_with_escaped_pipes() {
    use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
    let yaml = r#"
id: md
title: Markdown
requirements: { FR1: "one | two" }
checks:
  - id: pipe
    title: "a | b"
    covers: [FR1, AC1]
    command: { run: "echo 'x | y'", stdout_contains: ["nope | never"] }
"#;
    let out = Attest::new().suite("md", yaml).args(&["run"]).run();
    out.assert_code(1);
    let markdown = out.report("report.md");
    // Every row of every table must have as many cells as its header.
    let mut tables = 0;
    let mut cells_in_row = 0;
    let mut header_cells = 0;
    for event in Parser::new_ext(&markdown, Options::ENABLE_TABLES) {
        match event {
            Event::Start(Tag::Table(alignments)) => {
                tables += 1;
                header_cells = alignments.len();
            }
            Event::Start(Tag::TableRow) | Event::Start(Tag::TableHead) => cells_in_row = 0,
            Event::Start(Tag::TableCell) => cells_in_row += 1,
            Event::End(TagEnd::TableRow) | Event::End(TagEnd::TableHead) => {
                assert_eq!(cells_in_row, header_cells, "ragged row in:\n{markdown}")
            }
            _ => {}
        }
    }
    assert!(
        tables >= 3,
        "suite, traceability and environment tables:\n{markdown}"
    );
    assert!(markdown.contains("a \\| b"), "{markdown}");
}

#[test]
fn schema_describes_every_kind() {
    let out = Attest::new().args(&["schema"]).run();
    out.assert_code(0);
    let schema: serde_json::Value = serde_json::from_str(&out.stdout).expect("schema is JSON");
    let check = &schema["properties"]["checks"]["items"];
    for kind in ["dns", "tcp", "http", "file", "command"] {
        assert!(check["properties"][kind].is_object(), "kind {kind} missing");
    }
    assert_eq!(check["additionalProperties"], false);
}

#[test]
fn version_and_usage_errors() {
    let out = Attest::new().args(&["--version"]).run();
    out.assert_code(0);
    assert!(out.stdout.starts_with("attest "), "{}", out.stdout);
    Attest::new()
        .args(&["run", "--no-such-flag"])
        .run()
        .assert_code(2);
    let out = Attest::new().args(&["run", "missing.yaml"]).run();
    out.assert_code(2);
    assert!(out.stderr.contains("missing.yaml"), "{}", out.stderr);
}

#[test]
fn json_console_format_is_not_corrupted() {
    let out = Attest::new()
        .suite("demo", PASSING)
        .args(&["run", "--format", "json"])
        .run();
    out.assert_code(0);
    let lines: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(lines.len() >= 3, "{}", out.stdout);
    for line in lines {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line}"));
    }
}

#[test]
fn quiet_and_single_threaded_runs_still_report_everything() {
    let out = Attest::new()
        .suite("demo", PASSING)
        .args(&["run", "-q", "--test-threads", "1"])
        .run();
    out.assert_code(0);
    assert!(
        out.stdout.contains(".."),
        "terse output expected: {}",
        out.stdout
    );
    assert!(!out.stdout.contains("test [command]"), "{}", out.stdout);
    assert_eq!(out.json()["summary"]["passed"], 2);
}

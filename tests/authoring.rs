//! Suite authoring that never surprises: every problem is reported as `file:line:column: what
//! was expected, what was found`, exit 2, before anything runs (issue 8).

mod common;

use std::path::{Path, PathBuf};

use common::{one_check, Attest};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `# expect: LINE WORD` on the first line, optionally `# args: …` on the second.
struct Expectation {
    line: u64,
    word: String,
    args: Vec<String>,
}

fn expectation(bytes: &[u8]) -> Expectation {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.split(['\n', '\r']);
    let first = lines.next().unwrap_or_default();
    let rest = first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("first line must be `# expect: LINE WORD`, found {first:?}"));
    let (line, word) = rest.split_once(' ').expect("LINE WORD");
    let args = lines
        .next()
        .and_then(|l| l.strip_prefix("# args: "))
        .map(|a| a.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default();
    Expectation {
        line: line.parse().expect("a line number"),
        word: word.to_owned(),
        args,
    }
}

#[test]
fn every_malformed_suite_is_reported_at_its_defect() {
    let dir = repo().join("tests/data/malformed");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 150, "corpus has {} files", files.len());
    let (mut exit2, mut located, mut named, mut panics) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    let mut snapshot = String::new();
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let bytes = std::fs::read(path).unwrap();
        let want = expectation(&bytes);
        let mut attest = Attest::new().file(name, "");
        std::fs::write(attest.path().join(name), &bytes).unwrap();
        let mut args = vec!["run".to_owned(), name.to_owned()];
        args.extend(want.args.iter().cloned());
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        attest = attest.args(&arg_refs);
        let out = attest.run();
        let errors: Vec<&str> = out
            .stderr
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect();
        let at_line = format!("error: {name}:{}:", want.line);
        let here: Vec<&&str> = errors.iter().filter(|l| l.starts_with(&at_line)).collect();
        let is_exit2 = out.code == 2;
        let is_located = here.iter().any(|l| {
            l[at_line.len()..]
                .split(':')
                .next()
                .is_some_and(|c| c.parse::<u64>().is_ok())
        });
        let is_named = here.iter().any(|l| l.contains(&want.word));
        let panicked = out.stderr.contains("panicked");
        exit2 += usize::from(is_exit2);
        located += usize::from(is_located);
        named += usize::from(is_named);
        panics += usize::from(panicked);
        if !(is_exit2 && is_located && is_named) || panicked {
            failures.push(format!(
                "{name}: exit {}, want line {} naming {:?}\n{}",
                out.code, want.line, want.word, out.stderr
            ));
        }
        snapshot.push_str(&format!("{name}\n"));
        for line in errors {
            snapshot.push_str(&format!("  {line}\n"));
        }
    }
    eprintln!(
        "malformed corpus: {} files, exit 2: {exit2}, located: {located}, named: {named}, panics: {panics}",
        files.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    insta::assert_snapshot!("malformed_messages", snapshot);
}

#[test]
fn every_problem_of_a_file_is_reported_in_one_pass() {
    // An unknown variable no longer hides the misspelt key three lines above it.
    let yaml = "id: t\ntitle: x\nchecks:\n  - id: c\n    title: c\n    tcp:\n      hots: db\n      port: 1\n      count: ${cuont}\n";
    let out = Attest::new().suite("bad", yaml).args(&["run"]).run();
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("suites/bad.yaml:7:7: unknown key `hots`"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("suites/bad.yaml:9:14: unknown variable `cuont`"),
        "{}",
        out.stderr
    );
}

#[test]
fn comments_are_not_references() {
    let yaml = "id: t\ntitle: x   # set ${NOT_A_VARIABLE} someday\nchecks:\n  - id: c\n    title: c  # ${ALSO_NOT}\n    command: {run: 'true'}  # $x\n";
    let out = Attest::new().suite("t", yaml).args(&["run"]).run();
    out.assert_code(0);
}

#[test]
fn keys_and_values_stay_visible_after_interpolation() {
    let yaml = "id: t\ntitle: x\nvariables:\n  pg_host: db\n  mode: verify_full\nchecks:\n  - id: c\n    title: c\n    postgres:\n      connection:\n        host: ${pg_host}\n        prot: 5432\n        sslmode: ${mode}\n";
    let out = Attest::new().suite("bad", yaml).args(&["run"]).run();
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("12:9: unknown key `prot` (did you mean `port`?)"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("interpolated"), "{}", out.stderr);
    // Fixed, the value from the variable is named with the variable.
    let yaml = yaml.replace("prot", "port");
    let out = Attest::new().suite("bad", &yaml).args(&["run"]).run();
    assert!(
        out.stderr
            .contains("unknown value `verify_full` (did you mean `verify-full`?)"),
        "{}",
        out.stderr
    );
}

#[test]
fn values_from_variables_are_validated_naming_the_variable() {
    let out = Attest::new()
        .suite(
            "t",
            &one_check("tcp", "host: db\nport: ${pg_port}")
                .replace("checks:", "variables:\n  pg_port: 5432\nchecks:"),
        )
        .args(&["run", "--set", "pg_port=0"])
        .run();
    out.assert_code(2);
    assert!(
        out.stderr.contains("suites/t.yaml:11:13: `port`: expected a port from 1 to 65535, found `0` (value from `${pg_port}`, set by `--set`)"),
        "{}",
        out.stderr
    );
}

fn big_suite(checks: usize) -> String {
    let mut yaml = String::from("id: big\ntitle: big suite\nvariables:\n  pg_host: db.example\nchecks:\n  - id: anchor\n    title: anchor\n    pg-ready:\n      connection: &superuser {host: \"${pg_host}\", port: 5432, user: postgres}\n");
    for i in 0..checks {
        yaml.push_str(&format!(
            "  - id: c{i}\n    title: check number {i}\n    pg-ready:\n      connection: *superuser\n"
        ));
    }
    yaml
}

#[test]
fn large_suites_and_many_aliases_load() {
    // One anchor referred to 150 times, as the README recommends.
    let out = Attest::new()
        .suite("s", &big_suite(150))
        .args(&["check"])
        .run();
    out.assert_code(0);
    // 50,000 checks: far past serde-saphyr's old node budget.
    let out = Attest::new()
        .suite("s", &big_suite(50_000))
        .args(&["check"])
        .run();
    out.assert_code(0);
    assert!(out.stdout.contains("50001 check(s)"), "{}", out.stdout);
}

#[test]
fn a_10_mb_suite_loads() {
    let mut yaml = big_suite(1000);
    let filler = "x".repeat(10_000);
    for i in 0..1000 {
        yaml.push_str(&format!("  - id: d{i}\n    title: long\n    description: \"{filler}\"\n    command: {{run: 'true'}}\n"));
    }
    assert!(yaml.len() > 10_000_000);
    Attest::new()
        .suite("s", &yaml)
        .args(&["check"])
        .run()
        .assert_code(0);
}

#[test]
fn alias_bombs_name_the_limit_and_how_to_raise_it() {
    let path = repo().join("tests/data/malformed/alias-bomb.yaml");
    let bomb = std::fs::read_to_string(path).unwrap();
    let out = Attest::new().suite("bomb", &bomb).args(&["check"]).run();
    out.assert_code(2);
    assert!(
        out.stderr.contains("ATTEST_MAX_YAML_NODES=N"),
        "{}",
        out.stderr
    );
    // Raised, the same document loads as far as its other problems.
    let out = Attest::new()
        .suite("bomb", &bomb)
        .env("ATTEST_MAX_YAML_NODES", "20000000")
        .args(&["check"])
        .run();
    assert!(
        !out.stderr.contains("ATTEST_MAX_YAML_NODES"),
        "{}",
        out.stderr
    );
}

#[test]
fn every_file_reports_its_problems() {
    let out = Attest::new()
        .suite(
            "a",
            "id: a\ntitle: x\nchecks:\n  - id: c\n    title: c\n    tcp: {host: db, port: abc}\n",
        )
        .suite(
            "b",
            "id: b\ntitle: x\nchecks:\n  - id: c\n    title: c\n    tcp: {host: db, prot: 1}\n",
        )
        .args(&["run"])
        .run();
    out.assert_code(2);
    assert!(out.stderr.contains("suites/a.yaml:6:"), "{}", out.stderr);
    assert!(out.stderr.contains("suites/b.yaml:6:"), "{}", out.stderr);
    assert!(
        out.stderr.contains("2 problem(s) in 2 file(s)"),
        "{}",
        out.stderr
    );
}

#[test]
fn problems_per_file_are_capped() {
    let mut yaml = String::from("id: t\ntitle: x\nchecks:\n");
    for i in 0..40 {
        yaml.push_str(&format!(
            "  - id: c{i}\n    title: c\n    tcp: {{host: db, port: 0}}\n"
        ));
    }
    let out = Attest::new().suite("t", &yaml).args(&["check"]).run();
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("15 more problem(s) in this file not shown"),
        "{}",
        out.stderr
    );
}

#[test]
fn defaults_refer_to_other_variables() {
    let yaml = "id: t\ntitle: x\nvariables:\n  a: base\n  b: \"${a}-x\"\n  c: {default: \"${b}/y\"}\nchecks:\n  - id: c\n    title: c\n    command: {run: 'test \"${c}\" = \"$$EXPECT\"'}\n";
    let out = Attest::new()
        .suite("t", yaml)
        .env("EXPECT", "base-x/y")
        .args(&["run"])
        .run();
    out.assert_code(0);
    let out = Attest::new()
        .suite("t", yaml)
        .env("EXPECT", "set-x/y")
        .args(&["run", "--set", "a=set"])
        .run();
    out.assert_code(0);
}

#[test]
fn unknown_set_names_are_errors_with_a_suggestion() {
    let yaml = "id: t\ntitle: x\nvariables:\n  pg_host: db\nchecks:\n  - id: c\n    title: c\n    command: {run: 'echo ${pg_host}'}\n";
    let out = Attest::new()
        .suite("t", yaml)
        .args(&["run", "--set", "pg_hots=x"])
        .run();
    out.assert_code(2);
    assert!(out.stderr.contains("--set: no loaded suite declares or uses a variable `pg_hots` (did you mean `pg_host`?)"), "{}", out.stderr);
}

/// `attest sandbox up`'s vars file names every service of the sandbox; a suite that uses none
/// of them (`db_host`, not `pg_host`) still runs. A near miss is at most a warning, which the
/// loader returns (`load::Loaded::warnings`; tested in `attest-core`'s `load::tests`).
#[test]
fn names_in_a_vars_file_that_no_suite_uses_do_not_stop_the_run() {
    let yaml = "id: t\ntitle: x\nvariables:\n  db_host: db\n  admin_password: {secret: true, default: Adm1n-Pass-Word}\nchecks:\n  - id: c\n    title: c\n    command: {run: 'echo ${db_host} ${admin_password}'}\n";
    let vars = "pg_host: 127.0.0.1\napp_password: App-Pass-W0rd\npaperless_url: http://paperless/\nother_service_url: http://x/\n";
    for command in ["run", "check"] {
        let out = Attest::new()
            .suite("t", yaml)
            .file("sandbox.vars.yaml", vars)
            .args(&[command, "--vars", "sandbox.vars.yaml"])
            .run();
        out.assert_code(0);
        assert!(!out.stderr.contains("error"), "{}", out.stderr);
        assert!(!out.stderr.contains("other_service_url"), "{}", out.stderr);
        // A near miss is still pointed out, as a warning at its line.
        assert!(
            out.stderr.contains(
                "warning: sandbox.vars.yaml:1:1: no loaded suite declares or uses a variable `pg_host` (did you mean `db_host`?)"
            ),
            "{}",
            out.stderr
        );
    }
}

#[test]
fn listing_and_checking_need_no_values() {
    let yaml = "id: t\ntitle: x\nvariables:\n  pw: {secret: true, env: ATTEST_TEST_UNSET_PW}\n  port: {env: ATTEST_TEST_UNSET_PORT}\nchecks:\n  - id: c\n    title: c\n    postgres:\n      connection: {host: db, port: \"${port}\", password: \"${pw}\"}\n";
    let out = Attest::new()
        .suite("t", yaml)
        .args(&["run", "--list"])
        .run();
    out.assert_code(0);
    assert!(out.stdout.contains("t::c"), "{}", out.stdout);
    let out = Attest::new().suite("t", yaml).args(&["check"]).run();
    out.assert_code(0);
    assert!(
        out.stdout
            .contains("1 suite file(s), 1 check(s): no problems"),
        "{}",
        out.stdout
    );
    // Running needs them.
    let out = Attest::new().suite("t", yaml).args(&["run"]).run();
    out.assert_code(2);
    assert!(
        out.stderr.contains("variable `pw` has no value"),
        "{}",
        out.stderr
    );
    // `check` still reports real problems, and unknown variables.
    let broken = yaml.replace("${port}", "${prot}");
    let out = Attest::new().suite("t", &broken).args(&["check"]).run();
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("unknown variable `prot` (did you mean `port`?)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_selected_check_whose_needs_were_filtered_out_fails_the_run() {
    let yaml = "id: t\ntitle: x\nchecks:\n  - id: first\n    title: f\n    command: {run: 'true'}\n  - id: second\n    title: s\n    needs: [first]\n    command: {run: 'true'}\n";
    let out = Attest::new()
        .suite("t", yaml)
        .args(&["run", "second"])
        .run();
    out.assert_code(1);
    assert!(
        out.stderr.contains("`t::second` was selected but not run"),
        "{}",
        out.stderr
    );
    out.expect("second", "skipped", "which was not selected");
    // Selecting both is green.
    Attest::new()
        .suite("t", yaml)
        .args(&["run", "t::"])
        .run()
        .assert_code(0);
}

#[test]
fn the_bundled_suites_pass_attest_check() {
    let out = Attest::new()
        .args(&["check", repo().join("suites").to_str().unwrap()])
        .run();
    out.assert_code(0);
}

#[test]
fn pod_env_reads_plain_numbers_and_booleans_as_text_as_the_schema_does() {
    let yaml = "id: t\ntitle: x\nchecks:\n  - id: c\n    title: c\n    pod-env:\n      workload: {namespace: docs, name: paperless-paperless-ngx}\n      expect:\n        PAPERLESS_DBPORT: 5432\n        PAPERLESS_DEBUG: false\n        PAPERLESS_DBENGINE: postgresql\n";
    let out = Attest::new().suite("env", yaml).args(&["check"]).run();
    out.assert_code(0);
}

#[test]
fn unquoted_references_in_flow_maps_suggest_quotes() {
    let yaml = "id: t\ntitle: x\nvariables: {h: db}\nchecks:\n  - id: c\n    title: c\n    pg-ready: {connection: {host: ${h}}}\n";
    let out = Attest::new().suite("t", yaml).args(&["check"]).run();
    out.assert_code(2);
    assert!(
        out.stderr.contains("write `${…}` in quotes: `\"${h}\"`"),
        "{}",
        out.stderr
    );
    let fixed = yaml.replace("${h}}}", "\"${h}\"}}");
    Attest::new()
        .suite("t", &fixed)
        .args(&["check"])
        .run()
        .assert_code(0);
}

/// A program on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// check-jsonschema (`scripts/test` installs it; without it the schema tests fail, naming
/// the install command).
fn schema_validator() -> Option<PathBuf> {
    on_path("check-jsonschema")
}

fn validate_with_schema(schema: &Path, files: &[PathBuf]) -> (bool, String) {
    let validator = schema_validator().unwrap();
    let out = std::process::Command::new(validator)
        .arg("--schemafile")
        .arg(schema)
        .args(files)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_schema_accepts_every_suite_and_rejects_broken_ones() {
    assert!(
        schema_validator().is_some(),
        "check-jsonschema is not installed: `python3 -m pip install check-jsonschema` (scripts/test does)"
    );
    let out = Attest::new().args(&["schema"]).run();
    out.assert_code(0);
    let schema = out.dir.join("schema.json");
    std::fs::write(&schema, &out.stdout).unwrap();
    let mut good: Vec<PathBuf> = std::fs::read_dir(repo().join("suites"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    good.extend(
        std::fs::read_dir(repo().join("tests/data/schema/valid"))
            .unwrap()
            .map(|e| e.unwrap().path()),
    );
    good.sort();
    let (ok, text) = validate_with_schema(&schema, &good);
    assert!(ok, "the schema rejects suites attest accepts:\n{text}");
    let mut bad: Vec<PathBuf> = std::fs::read_dir(repo().join("tests/data/schema/invalid"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    bad.sort();
    assert!(bad.len() >= 10);
    // One validator per file, all at once: each must fail on its own defect.
    let validator = schema_validator().unwrap();
    let running: Vec<_> = bad
        .iter()
        .map(|file| {
            let child = std::process::Command::new(&validator)
                .arg("--schemafile")
                .arg(&schema)
                .arg(file)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            (file, child)
        })
        .collect();
    for (file, mut child) in running {
        let status = child.wait().unwrap();
        assert!(!status.success(), "the schema accepts {}", file.display());
    }
}

#[test]
fn the_schema_compiles_in_ajv_strict_mode() {
    let ajv = on_path("ajv")
        .expect("ajv is not installed: `npm install --global ajv-cli@5` (scripts/test does)");
    let out = Attest::new().args(&["schema"]).run();
    let schema = out.dir.join("schema.json");
    std::fs::write(&schema, &out.stdout).unwrap();
    let compiled = std::process::Command::new(&ajv)
        .args(["compile", "--spec=draft2020", "--strict=true", "-s"])
        .arg(&schema)
        .output()
        .unwrap();
    assert!(
        compiled.status.success(),
        "{}{}",
        String::from_utf8_lossy(&compiled.stdout),
        String::from_utf8_lossy(&compiled.stderr)
    );
    for suite in std::fs::read_dir(repo().join("suites")).unwrap() {
        let suite = suite.unwrap().path();
        let valid = std::process::Command::new(&ajv)
            .args(["validate", "--spec=draft2020", "--strict=true", "-s"])
            .arg(&schema)
            .arg("-d")
            .arg(&suite)
            .output()
            .unwrap();
        assert!(
            valid.status.success(),
            "{}: {}",
            suite.display(),
            String::from_utf8_lossy(&valid.stderr)
        );
    }
}

#[test]
fn sandbox_up_writes_one_complete_private_vars_file() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_attest"))
        .args(["sandbox", "up"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut vars = None;
    let mut ready = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.trim_start().starts_with('/') && line.ends_with(".vars.yaml") {
            vars = Some(PathBuf::from(line.trim()));
        }
        if line.trim_start().starts_with("attest run ") {
            ready = Some(line.trim().to_owned());
            break;
        }
    }
    let vars = vars.expect("the vars file path is printed");
    let ready = ready.expect("a ready `attest run` line is printed");
    assert!(
        ready.contains(&format!("--vars {}", vars.display())),
        "{ready}"
    );
    assert!(
        !vars.starts_with(dir.path()) && !vars.starts_with(repo()),
        "{}",
        vars.display()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&vars).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let text = std::fs::read_to_string(&vars).unwrap();
    for name in [
        "pg_host:",
        "pg_port:",
        "pg_user:",
        "pg_password:",
        "pg_ca_file:",
        "app_database:",
        "dns_server:",
        "vikunja_password:",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    // The bundled suites take every value they need from it.
    let out = Attest::new()
        .args(&[
            "check",
            repo().join("suites").to_str().unwrap(),
            "--vars",
            vars.to_str().unwrap(),
        ])
        .run();
    out.assert_code(0);
    terminate(child.id());
    let _ = child.wait();
    assert!(!vars.exists(), "the vars file is removed with the sandbox");
}

fn terminate(pid: u32) {
    common::signal(pid, "TERM");
}

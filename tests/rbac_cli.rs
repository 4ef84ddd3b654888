//! `attest rbac` and `attest job --dry-run` without a cluster (the real binary): the RBAC of
//! the bundled suites (snapshot), selection by filter and opt-ins, secret values kept out of
//! everything but the Secret's data, and the errors (exit 2). Applying the output to a real
//! control plane is tests/in_cluster.rs.

mod common;

use base64::Engine;
use common::Attest;

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rbac(args: &[&str]) -> common::Output {
    Attest::new()
        .args(&["rbac"])
        .args(args)
        .env_remove("KUBECONFIG")
        .run()
}

#[test]
fn rbac_of_the_bundled_suites() {
    let suites = repo().join("suites");
    let out = rbac(&[
        suites.to_str().unwrap(),
        "--allow-destructive",
        "-n",
        "apps",
    ]);
    out.assert_code(0);
    insta::assert_snapshot!("rbac_bundled_suites", out.stdout);
    // The same input gives the same bytes.
    let again = rbac(&[
        suites.to_str().unwrap(),
        "--allow-destructive",
        "-n",
        "apps",
    ]);
    assert_eq!(out.stdout, again.stdout);
}

#[test]
fn the_selection_decides_the_rules() {
    let suites = repo().join("suites");
    let suites = suites.to_str().unwrap();
    // Read-only: no drain, so nothing cluster-wide but the preflight and the PV read.
    let out = rbac(&[suites]);
    out.assert_code(0);
    assert!(!out.stdout.contains("pods/eviction"), "{}", out.stdout);
    assert!(!out.stdout.contains("- nodes"), "{}", out.stdout);
    assert!(out.stdout.contains("selfsubjectaccessreviews"));
    // One suite by filter: only its namespace, and its Secret variable by name.
    let out = rbac(&[suites, "story-10.2::"]);
    out.assert_code(0);
    assert_eq!(
        out.stdout.matches("\nkind: Role\n").count(),
        1,
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("namespace: docs"));
    assert!(out
        .stdout
        .contains("story-10.2 (variable `paperless_db_password`)"));
    assert!(out.stdout.contains("- paperless-secrets"));
    assert!(!out.stdout.contains("namespace: data\n"), "{}", out.stdout);
    // A filter matching nothing, a bad namespace: exit 2.
    rbac(&[suites, "no-such-check"]).assert_code(2);
    let out = rbac(&[suites, "-n", "Apps_Bad"]);
    out.assert_code(2);
    assert!(
        out.stderr.contains("--namespace: expected a DNS label"),
        "{}",
        out.stderr
    );
}

const SECRET_SUITE: &str = r#"id: s
title: secrets
variables:
  from_set: {secret: true}
  from_vars: {secret: true}
  from_env: {secret: true, env: ATTEST_TEST_FROM_ENV}
  plain: {default: a-default}
  port: {}
  from_cluster:
    kubernetes_secret: {namespace: data, name: postgres-postgresql, key: postgres-password}
checks:
  - id: c
    title: uses them all
    command: {run: "true ${from_set} ${from_vars} ${from_env} ${plain} ${port} ${from_cluster}"}
  - id: k
    title: a pod
    pod-exec: {pod: {namespace: data, name: postgres-postgresql-0}, command: ["true"]}
"#;

const SET_SECRET: &str = "Set-Secret-Value-1";
const VARS_SECRET: &str = "Vars-Secret-Value-2";
const ENV_SECRET: &str = "Env-Secret-Value-3";

fn job(extra: &[&str]) -> common::Output {
    Attest::new()
        .suite("s", SECRET_SUITE)
        .file(
            "env.vars.yaml",
            &format!("from_vars: {VARS_SECRET}\nport: 5432\nunused: x\n"),
        )
        .env("ATTEST_TEST_FROM_ENV", ENV_SECRET)
        .env_remove("KUBECONFIG")
        .args(&["job", "suites/s.yaml", "-n", "apps", "--set"])
        .args(&[&format!("from_set={SET_SECRET}"), "--vars", "env.vars.yaml"])
        .args(extra)
        .run()
}

/// Every form of a value a reader could recover it from.
fn forms(value: &str) -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        value.to_owned(),
        b64.encode(value),
        b64.encode(value).trim_end_matches('=').to_owned(),
        value.bytes().map(|b| format!("{b:02x}")).collect(),
    ]
}

#[test]
fn job_keeps_every_secret_value_in_the_secret() {
    let out = job(&["--dry-run", "-o", "yaml"]);
    out.assert_code(0);
    let documents: Vec<&str> = out.stdout.split("\n---\n").collect();
    let secret_doc = documents
        .iter()
        .find(|d| d.contains("\nkind: Secret\n"))
        .expect("a Secret");
    for doc in documents.iter().filter(|d| !d.contains("\nkind: Secret\n")) {
        for value in [SET_SECRET, VARS_SECRET, ENV_SECRET] {
            for form in forms(value) {
                assert!(!doc.contains(&form), "`{form}` in\n{doc}");
            }
        }
    }
    assert!(out.stderr.is_empty() || !out.stderr.contains("Secret-Value"));
    // The Secret's data is the vars file with the three values.
    let encoded = secret_doc
        .lines()
        .skip_while(|l| !l.contains("secret-vars.yaml"))
        .nth(1)
        .unwrap()
        .trim();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    let vars = String::from_utf8(decoded).unwrap();
    for (name, value) in [
        ("from_set", SET_SECRET),
        ("from_vars", VARS_SECRET),
        ("from_env", ENV_SECRET),
    ] {
        assert!(vars.contains(&format!("{name}: {value}")), "{vars}");
    }
    assert!(!vars.contains("port"), "{vars}");
    // The ConfigMap has the plain value given, not the default, not unused names, and the
    // value read from the cluster stays there (its Secret readable by name).
    let config = documents
        .iter()
        .find(|d| d.contains("\nkind: ConfigMap\n"))
        .unwrap();
    let vars_file: Vec<&str> = config
        .lines()
        .skip_while(|l| !l.starts_with("  attest-job-vars.yaml:"))
        .skip(1)
        .take_while(|l| l.starts_with("    "))
        .collect();
    assert!(vars_file.contains(&"    port: \"5432\""), "{vars_file:?}");
    assert_eq!(vars_file.len(), 2, "{vars_file:?}");
    assert!(
        out.stdout.contains("- postgres-postgresql\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("/etc/attest/secret/secret-vars.yaml"));
}

#[test]
fn job_refuses_a_secret_written_into_a_suite() {
    let out = Attest::new()
        .suite(
            "s",
            "id: s\ntitle: t\nvariables:\n  pw: {secret: true, default: Written-Into-The-Suite}\nchecks:\n  - id: c\n    title: t\n    command: {run: [\"true\", \"${pw}\"]}\n",
        )
        .args(&["job", "suites/s.yaml", "--dry-run"])
        .run();
    out.assert_code(2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr
            .contains("`s.yaml` holds the value of a secret variable"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("Written-Into"), "{}", out.stderr);
}

#[test]
fn job_without_dry_run_needs_a_cluster_and_says_so() {
    // Live (tests/in_cluster_job.rs runs it on real nodes); here no cluster can be reached.
    let out = job(&["--kubeconfig", "/nonexistent/kubeconfig"]);
    out.assert_code(3);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr.contains("attest job: cannot reach the cluster"),
        "{}",
        out.stderr
    );
    for secret in [SET_SECRET, VARS_SECRET, ENV_SECRET] {
        assert!(!out.stderr.contains(secret), "{}", out.stderr);
    }
    // Bad placement flags: exit 2, nothing printed.
    let out = job(&["--dry-run", "--toleration", "key:Sometimes"]);
    out.assert_code(2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr.contains("the effect is NoSchedule"),
        "{}",
        out.stderr
    );
    let out = job(&[
        "--dry-run",
        "--toleration",
        "dedicated=attest:NoSchedule",
        "--node-selector",
        "pool=tests",
    ]);
    out.assert_code(0);
    assert!(
        out.stdout.contains("key: dedicated") && out.stdout.contains("pool: tests"),
        "{}",
        out.stdout
    );
}

#[test]
fn rbac_refuses_a_name_taken_from_a_secret() {
    let out = Attest::new()
        .suite(
            "s",
            "id: s\ntitle: t\nvariables:\n  ns: {secret: true}\nchecks:\n  - id: c\n    title: t\n    kube: {apiVersion: v1, kind: Pod, namespace: \"${ns}\"}\n",
        )
        .args(&["rbac", "suites/s.yaml", "--set", "ns=a-secret-namespace"])
        .run();
    out.assert_code(2);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(!out.stderr.contains("a-secret-namespace"), "{}", out.stderr);
    // Without a value, the namespace cannot be known: exit 2 naming the check.
    let out = Attest::new()
        .suite(
            "s",
            "id: s\ntitle: t\nvariables:\n  ns: {}\nchecks:\n  - id: c\n    title: t\n    kube: {apiVersion: v1, kind: Pod, namespace: \"${ns}\"}\n",
        )
        .args(&["rbac", "suites/s.yaml"])
        .run();
    out.assert_code(2);
    assert!(
        out.stderr
            .contains("`s::c`: its namespace comes from a variable with no value here (`${ns}`)"),
        "{}",
        out.stderr
    );
}

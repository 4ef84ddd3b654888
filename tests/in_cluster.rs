//! `attest rbac` and `attest job --dry-run` against the local control plane (upstream
//! kube-apiserver with RBAC, kwok's nodes): the API server takes every manifest; a run
//! authenticated only by a token of the generated ServiceAccount passes every check of the
//! suite (RBAC preflight included); RBAC generated without one check makes the preflight name
//! exactly that check's missing permission. Needs the binaries of `scripts/kube-build`
//! (ATTEST_KUBE_BIN).

mod common;

use std::path::Path;

use attest_sandbox::kube::{self, KubeOptions, KubeTestbed, PostgresTarget};
use base64::Engine;
use common::testbed::token_kubeconfig;
use common::{Attest, Output};

const PAPERLESS_PASSWORD: &str = "paperless-testbed-pw-7731";
const API_TOKEN: &str = "api-token-from-the-command-line-9d1";

fn start() -> KubeTestbed {
    let bin_dir = kube::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    // Nothing here connects to PostgreSQL: the Secrets only need some password.
    let target = PostgresTarget {
        host: "127.0.0.1".into(),
        port: 9,
        superuser_password: "superuser-testbed-pw-1208".into(),
        paperless_password: PAPERLESS_PASSWORD.into(),
        bin_dir: None,
    };
    KubeTestbed::start(KubeOptions::new(bin_dir, target))
        .unwrap_or_else(|e| panic!("the testbed did not start: {e}"))
}

fn kubectl(kube: &KubeTestbed, args: &[&str]) -> String {
    kube.kubectl_output(args).unwrap_or_else(|e| panic!("{e}"))
}

fn apply(kube: &KubeTestbed, name: &str, yaml: &str) -> String {
    let file = kube.dir().join(name);
    std::fs::write(&file, yaml).unwrap();
    kubectl(kube, &["apply", "-f", file.to_str().unwrap()])
}

/// Every kind of read a Kubernetes check makes: a named object, a label selector, all
/// namespaces, a cluster-scoped kind, a CRD, exec into a named pod, logs by selector, a
/// workload's environment, a variable from a Secret, and a secret given on the command line.
const SUITE: &str = r#"id: incluster
title: what an in-cluster run reads
variables:
  paperless_pw:
    kubernetes_secret: {namespace: docs, name: paperless-secrets, key: PAPERLESS_DBPASS}
  api_token: {secret: true}
checks:
  - id: statefulset
    title: a named object
    kube: {apiVersion: apps/v1, kind: StatefulSet, namespace: data, name: postgres-postgresql}
  - id: claims-everywhere
    title: claims in every namespace
    kube: {apiVersion: v1, kind: PersistentVolumeClaim, count: ">= 1"}
  - id: node
    title: a cluster-scoped kind by name
    kube: {apiVersion: v1, kind: Node, name: k3s-worker-01}
  - id: cnpg
    title: a CRD
    kube:
      apiVersion: postgresql.cnpg.io/v1
      kind: Cluster
      namespace: paperless-ngx
      name: paperless-ngx-db
      fields: ["status.readyInstances >= 1"]
  - id: exec
    title: exec in a named pod
    pod-exec: {pod: {namespace: data, name: postgres-postgresql-0}, command: ["true"]}
  - id: logs
    title: logs by selector
    pod-logs:
      pod: {namespace: docs, selector: app.kubernetes.io/name=paperless-ngx}
      contains: ["Connected to PostgreSQL"]
  - id: env
    title: a workload's environment
    pod-env:
      workload: {namespace: docs, kind: Deployment, name: paperless-paperless-ngx}
      expect: {PAPERLESS_DBENGINE: postgresql}
  - id: values
    title: the values from the Secret and the command line
    command: {run: "test \"${paperless_pw}\" = \"$$EXPECTED_PW\" && test -n \"${api_token}\""}
"#;

const CHECKS: [&str; 8] = [
    "statefulset",
    "claims-everywhere",
    "node",
    "cnpg",
    "exec",
    "logs",
    "env",
    "values",
];

fn attest(suite: &Path, args: &[&str]) -> Output {
    Attest::new()
        .env_remove("KUBECONFIG")
        .env("EXPECTED_PW", PAPERLESS_PASSWORD)
        .args(args)
        .args(&[suite.to_str().unwrap()])
        .run()
}

#[test]
fn the_generated_rbac_is_all_an_in_cluster_run_needs() {
    let kube = start();
    let admin = kube.kubeconfig().to_str().unwrap().to_owned();
    let suite = kube.dir().join("in-cluster.yaml");
    std::fs::write(&suite, SUITE).unwrap();

    // RBAC, with the CRD's resource discovered through the admin kubeconfig.
    let rbac = attest(
        &suite,
        &[
            "rbac",
            "-n",
            "apps",
            "--service-account",
            "runner",
            "--kubeconfig",
            &admin,
        ],
    );
    rbac.assert_code(0);
    assert!(
        rbac.stdout.contains("postgresql.cnpg.io/v1 Cluster: resource `clusters` (namespaced) from the cluster's API discovery"),
        "{}",
        rbac.stdout
    );
    assert!(!rbac.stdout.contains("GUESSED"), "{}", rbac.stdout);
    let applied = apply(&kube, "rbac.yaml", &rbac.stdout);
    for object in [
        "serviceaccount/runner",
        "role.rbac.authorization.k8s.io/attest-apps-runner",
        "rolebinding.rbac.authorization.k8s.io/attest-apps-runner",
        "clusterrole.rbac.authorization.k8s.io/attest-apps-runner",
        "clusterrolebinding.rbac.authorization.k8s.io/attest-apps-runner",
    ] {
        assert!(applied.contains(object), "{object} not in:\n{applied}");
    }
    // One Role per namespace the checks read: data, docs, paperless-ngx.
    let roles = kubectl(
        &kube,
        &[
            "get",
            "roles",
            "-A",
            "-l",
            "attest.dev/service-account=runner",
            "-o",
            "jsonpath={.items[*].metadata.namespace}",
        ],
    );
    assert_eq!(roles.trim(), "data docs paperless-ngx");

    // The Job's manifests, with a secret given on the command line.
    let job = Attest::new()
        .env_remove("KUBECONFIG")
        .args(&[
            "job",
            suite.to_str().unwrap(),
            "-n",
            "apps",
            "--service-account",
            "runner",
        ])
        .args(&["--dry-run", "-o", "yaml", "--image", "attest:test", "--set"])
        .args(&[&format!("api_token={API_TOKEN}")])
        .run();
    job.assert_code(0);
    assert!(!job.stdout.contains(API_TOKEN));
    let applied = apply(&kube, "job.yaml", &job.stdout);
    for object in [
        "configmap/attest-suites",
        "secret/attest-vars",
        "job.batch/attest",
    ] {
        assert!(applied.contains(object), "{object} not in:\n{applied}");
    }
    let account = kubectl(
        &kube,
        &["get", "job", "attest", "-n", "apps", "-o", "jsonpath={.spec.template.spec.serviceAccountName} {.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem}"],
    );
    assert_eq!(account.trim(), "runner true");
    let config = kubectl(
        &kube,
        &[
            "get",
            "configmap",
            "attest-suites",
            "-n",
            "apps",
            "-o",
            "json",
        ],
    );
    assert!(config.contains("what an in-cluster run reads"));
    assert!(!config.contains(API_TOKEN));
    let stored = kubectl(
        &kube,
        &[
            "get",
            "secret",
            "attest-vars",
            "-n",
            "apps",
            "-o",
            "jsonpath={.data.secret-vars\\.yaml}",
        ],
    );
    let vars = base64::engine::general_purpose::STANDARD
        .decode(stored.trim())
        .unwrap();
    assert!(String::from_utf8(vars)
        .unwrap()
        .contains(&format!("api_token: {API_TOKEN}")));

    // A run with nothing but the ServiceAccount's token: every check passes.
    let token = token_kubeconfig(&kube, "apps", "runner");
    let token = token.to_str().unwrap();
    let set = format!("api_token={API_TOKEN}");
    let run = attest(&suite, &["run", "--kubeconfig", token, "--set", &set]);
    run.assert_code(0);
    run.assert_passed(&CHECKS);

    // RBAC made without one check: the preflight names that check's permission, the rest pass.
    let partial = attest(
        &suite,
        &[
            "rbac",
            "-n",
            "apps",
            "--service-account",
            "partial",
            "--kubeconfig",
            &admin,
            "--skip",
            "incluster::exec",
        ],
    );
    partial.assert_code(0);
    assert!(!partial.stdout.contains("pods/exec"), "{}", partial.stdout);
    apply(&kube, "partial.yaml", &partial.stdout);
    let token = token_kubeconfig(&kube, "apps", "partial");
    let run = attest(
        &suite,
        &[
            "run",
            "--kubeconfig",
            token.to_str().unwrap(),
            "--set",
            &set,
        ],
    );
    run.assert_code(1);
    run.expect(
        "exec",
        "error",
        "missing permission: get pods postgres-postgresql-0 in namespace data, get pods/exec postgres-postgresql-0 in namespace data, create pods/exec postgres-postgresql-0 in namespace data (RBAC preflight)",
    );
    let others: Vec<&str> = CHECKS.iter().copied().filter(|c| *c != "exec").collect();
    run.assert_passed(&others);

    // Against cluster-admin: every verb of every resource this API server serves.
    let served = kubectl(&kube, &["api-resources", "-o", "wide", "--no-headers"]);
    const VERBS: [&str; 8] = [
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    ];
    let admin_grants: usize = served
        .split(|c: char| c.is_whitespace() || ",[]".contains(c))
        .filter(|word| VERBS.contains(word))
        .count();
    let bundled = repo_suites_rbac(&admin);
    eprintln!(
        "bundled suites (--allow-destructive): {} resource-verb grants; cluster-admin here: {admin_grants} plus every non-resource URL",
        bundled
    );
    assert!(
        bundled * 10 < admin_grants,
        "{bundled} of {admin_grants} in:\n{served}"
    );

    // attest's objects are found by their labels, and only they.
    let labelled = kubectl(
        &kube,
        &[
            "get",
            "clusterroles",
            "-l",
            "app.kubernetes.io/managed-by=attest",
            "-o",
            "name",
        ],
    );
    assert_eq!(
        labelled.trim(),
        "clusterrole.rbac.authorization.k8s.io/attest-apps-partial\nclusterrole.rbac.authorization.k8s.io/attest-apps-runner"
    );
    kube.stop().unwrap();
}

/// Resource-verb pairs the RBAC of the bundled suites grants (discovery through `kubeconfig`).
fn repo_suites_rbac(kubeconfig: &str) -> usize {
    let suites = Path::new(env!("CARGO_MANIFEST_DIR")).join("suites");
    let out = attest(
        &suites,
        &[
            "rbac",
            "--allow-destructive",
            "-n",
            "apps",
            "--kubeconfig",
            kubeconfig,
        ],
    );
    out.assert_code(0);
    assert!(!out.stdout.contains("GUESSED"), "{}", out.stdout);
    // Each rule: its resources times its verbs (the output is one item per line).
    let mut pairs = 0;
    for rule in out.stdout.split("\n- apiGroups:").skip(1) {
        let count = |key: &str| {
            rule.split(&format!("\n  {key}:\n"))
                .nth(1)
                .map_or(0, |rest| {
                    rest.lines().take_while(|l| l.starts_with("  - ")).count()
                })
        };
        pairs += count("resources") * count("verbs");
    }
    pairs
}

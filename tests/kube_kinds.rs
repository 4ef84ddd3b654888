//! The Kubernetes check kinds against the local control plane (upstream kube-apiserver, etcd,
//! controllers; kwok pods): each passes in the good case and fails for the right reason with
//! a clear message; the RBAC preflight with a restricted ServiceAccount; the API server
//! stopped mid-run. Needs the binaries of `scripts/kube-build` (ATTEST_KUBE_BIN).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use attest_sandbox::kube::{self, KubeOptions, KubeTestbed, PostgresTarget};
use attest_sandbox::postgres::{PostgresOptions, TempPostgres};
use common::{Attest, Output};

const PASSWORD: &str = "Sup3r-secret-pw";
const PAPERLESS_PASSWORD: &str = "paperless-Pw-0123";

struct Bed {
    kube: KubeTestbed,
    postgres: TempPostgres,
    _paperless: attest_sandbox::listeners::Listener,
    runtime: tokio::runtime::Runtime,
}

fn start() -> Bed {
    let bin_dir = kube::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let postgres = runtime
        .block_on(TempPostgres::start(PostgresOptions {
            superuser_password: PASSWORD.into(),
            tls: false,
            max_connections: None,
        }))
        .unwrap();
    let target = PostgresTarget {
        host: postgres.host().to_owned(),
        port: postgres.port(),
        superuser_password: PASSWORD.into(),
        paperless_password: PAPERLESS_PASSWORD.into(),
        bin_dir: Some(postgres.bin_dir().to_path_buf()),
    };
    // Port-forwards to the Paperless pods' port 8000 land on this loopback web server.
    let paperless = runtime
        .block_on(attest_sandbox::listeners::http_paperless())
        .unwrap();
    let mut options = KubeOptions::new(bin_dir, target);
    options.paperless_http_port = Some(paperless.addr.port());
    let kube =
        KubeTestbed::start(options).unwrap_or_else(|e| panic!("the testbed did not start: {e}"));
    Bed {
        kube,
        postgres,
        _paperless: paperless,
        runtime,
    }
}

fn run(kubeconfig: &Path, suite: &str) -> Output {
    Attest::new()
        .suite("k", suite)
        .env("TEST_PG_PASSWORD", PASSWORD)
        .args(&["run", "--kubeconfig", kubeconfig.to_str().unwrap()])
        .run()
}

const SUITE: &str = r#"id: k
title: Kubernetes kinds
variables:
  pw: {secret: true, env: TEST_PG_PASSWORD}
checks:
  # kube
  - id: pvc-bound
    title: the claim is Bound on nfs-client, 8Gi
    kube:
      apiVersion: v1
      kind: PersistentVolumeClaim
      namespace: data
      name: data-postgres-postgresql-0
      expect: {spec: {storageClassName: nfs-client, accessModes: [ReadWriteOnce]}}
      fields: ["status.phase == Bound", "status.capacity.storage == 8589934592"]
  - id: pvc-wrong-class
    title: wrong storage class
    kube:
      apiVersion: v1
      kind: PersistentVolumeClaim
      namespace: data
      name: data-postgres-postgresql-0
      expect: {spec: {storageClassName: local-path}}
  - id: pvc-wrong-size
    title: wrong size
    kube:
      apiVersion: v1
      kind: PersistentVolumeClaim
      namespace: data
      name: data-postgres-postgresql-0
      fields: ["status.capacity.storage >= 16Gi"]
  - id: pvc-pending
    title: a claim that never becomes Pending
    timeout: 2s
    retry: {interval: 400ms}
    kube:
      apiVersion: v1
      kind: PersistentVolumeClaim
      namespace: data
      name: data-postgres-postgresql-0
      fields: ["status.phase == Pending"]
  - id: cnpg-healthy
    title: the CloudNativePG cluster is healthy with its instances
    kube:
      apiVersion: postgresql.cnpg.io/v1
      kind: Cluster
      namespace: paperless-ngx
      name: paperless-ngx-db
      fields: ["status.phase == Cluster in healthy state", "status.readyInstances >= 1"]
  - id: cnpg-unhealthy
    title: five instances
    kube:
      apiVersion: postgresql.cnpg.io/v1
      kind: Cluster
      namespace: paperless-ngx
      name: paperless-ngx-db
      fields: ["status.readyInstances == 5"]
  - id: backup-recent
    title: the last backup completed within 26h
    kube:
      apiVersion: batch/v1
      kind: CronJob
      namespace: paperless-ngx
      name: paperless-ngx-backup
      fields: ["age(status.lastSuccessfulTime) < 26h"]
  - id: nothing-here
    title: no such pod
    kube: {apiVersion: v1, kind: Pod, namespace: data, name: does-not-exist, absent: true}
  - id: unknown-kind
    title: a CRD that is not installed
    kube: {apiVersion: example.com/v1, kind: Widget, namespace: data}
  - id: three-nodes
    title: three schedulable nodes
    kube: {apiVersion: v1, kind: Node, count: "3"}
  # pod-exec
  - id: pgdata
    title: PGDATA holds pg_wal, base, global
    pod-exec:
      pod: {namespace: data, name: postgres-postgresql-0}
      command: [sh, -c, 'ls "$$PGDATA"']
      stdout_contains: ["/(?m)^pg_wal$/", "/(?m)^base$/", "/(?m)^global$/"]
  - id: no-sqlite
    title: no SQLite files in the Paperless pod
    pod-exec:
      pod: {namespace: docs, selector: app.kubernetes.io/name=paperless-ngx}
      command: [find, ../data, -name, "*.sqlite3"]
      stdout_excludes: [".sqlite3"]
  - id: exec-no-pod
    title: a pod that does not exist
    pod-exec:
      pod: {namespace: data, name: postgres-postgresql-7}
      command: ["true"]
  # pod-logs
  - id: paperless-logs
    title: logs show the PostgreSQL connection and migrations, no SQLite
    pod-logs:
      pod: {namespace: docs, selector: app.kubernetes.io/name=paperless-ngx}
      contains: ["Connected to PostgreSQL", "Apply database migrations"]
      excludes: [sqlite]
      ignore_case: true
  - id: forbidden-line
    title: a log line that must not appear
    pod-logs:
      pod: {namespace: docs, selector: app.kubernetes.io/name=paperless-ngx}
      excludes: ["/Applying \\w+/"]
  # pod-env
  - id: paperless-env
    title: Paperless uses PostgreSQL, password from its Secret
    pod-env:
      workload: {namespace: docs, kind: Deployment, name: paperless-paperless-ngx}
      expect:
        PAPERLESS_DBENGINE: postgresql
        PAPERLESS_DBNAME: paperless
        PAPERLESS_DBPASS: {secret: paperless-secrets, key: PAPERLESS_DBPASS}
  - id: env-wrong-secret
    title: the password from another Secret
    pod-env:
      workload: {namespace: docs, kind: Deployment, name: paperless-paperless-ngx}
      expect:
        PAPERLESS_DBPASS: {secret: postgres-postgresql, key: postgres-password}
        PAPERLESS_DBSSLMODE: require
  # routes through a port-forward, passwords from Secrets
  - id: sql-through-port-forward
    title: SQL through a port-forward, the superuser password read from its Secret
    sql:
      connection: &forwarded
        host: postgres-postgresql.data.svc.cluster.local
        port: 5432
        user: postgres
        dbname: postgres
        sslmode: disable
        password_secret: {namespace: data, name: postgres-postgresql, key: postgres-password}
        via: {port-forward: {namespace: data, service: postgres-postgresql}}
      query: SELECT 41 + 1
      expect: "== 42"
  - id: secret-without-key
    title: a Secret without the key
    postgres:
      connection:
        host: postgres-postgresql.data.svc.cluster.local
        port: 5432
        user: postgres
        sslmode: disable
        password_secret: {namespace: data, name: postgres-postgresql, key: admin-password}
        via: {port-forward: {namespace: data, service: postgres-postgresql}}
  - id: web-through-port-forward
    title: Paperless answers through a port-forward to its Service (named target port)
    http:
      url: http://paperless-paperless-ngx.docs.svc.cluster.local:8000/
      via: {port-forward: {namespace: docs, service: paperless-paperless-ngx}}
      status: 302
      location: /accounts/login/
  - id: pg-through-port-forward
    title: PostgreSQL answers through a port-forward to its Service
    tcp:
      host: postgres-postgresql.data.svc.cluster.local
      port: 5432
      via: {port-forward: {namespace: data, service: postgres-postgresql}}
"#;

#[test]
fn every_kubernetes_kind_passes_and_fails_for_the_right_reason() {
    let bed = start();
    let kube = &bed.kube;
    let out = run(kube.kubeconfig(), SUITE);
    out.assert_code(1);
    out.assert_passed(&[
        "pvc-bound",
        "cnpg-healthy",
        "backup-recent",
        "nothing-here",
        "three-nodes",
        "pgdata",
        "no-sqlite",
        "paperless-logs",
        "paperless-env",
        "pg-through-port-forward",
        "web-through-port-forward",
        "sql-through-port-forward",
    ]);
    let mismatch = |check: &str| out.result(check)["mismatches"][0].clone();
    out.expect(
        "pvc-wrong-class",
        "failed",
        "spec.storageClassName is nfs-client",
    );
    assert_eq!(
        out.result("pvc-wrong-class")["subject"],
        "v1/PersistentVolumeClaim data/data-postgres-postgresql-0"
    );
    assert_eq!(mismatch("pvc-wrong-class")["expected"], "local-path");
    out.expect("pvc-wrong-size", "failed", "status.capacity.storage is 8Gi");
    out.expect("pvc-pending", "failed", "gave up after");
    out.expect(
        "pvc-pending",
        "failed",
        "last: v1/PersistentVolumeClaim data/data-postgres-postgresql-0: status.phase is Bound",
    );
    out.expect("cnpg-unhealthy", "failed", "status.readyInstances is");
    out.expect(
        "unknown-kind",
        "error",
        "serves no kind `Widget` in `example.com/v1`",
    );
    out.expect_in("unknown-kind", "error", "hint", "CRD installed");
    out.expect(
        "exec-no-pod",
        "failed",
        "no pod postgres-postgresql-7 in namespace data",
    );
    out.expect("forbidden-line", "failed", "found in");
    out.expect("forbidden-line", "failed", "Applying");
    out.expect(
        "env-wrong-secret",
        "failed",
        "env PAPERLESS_DBPASS is Secret paperless-secrets key PAPERLESS_DBPASS",
    );
    assert_eq!(
        out.result("env-wrong-secret")["mismatches"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Chainsaw-style evidence in the console and the Markdown report.
    assert!(
        out.stdout.contains("v1/PersistentVolumeClaim data/data-postgres-postgresql-0\n* spec.storageClassName: expected local-path, found nfs-client"),
        "{}",
        out.stdout
    );
    assert!(out
        .report("report.md")
        .contains("* status.phase: expected == Pending, found Bound"));
    // The cluster is in the environment fingerprint, with the number of API requests.
    let json = out.json();
    let environment = &json["environment"];
    assert!(
        environment["kubernetes server"]
            .as_str()
            .unwrap()
            .starts_with("https://127.0.0.1:"),
        "{environment:#}"
    );
    assert_eq!(environment["kubernetes version"], "v1.35.4");
    let requests: u64 = environment["kubernetes API requests"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(requests > 10 && requests < 120, "{requests} API requests");
    let missing_key = out.expect(
        "secret-without-key",
        "error",
        "Secret data/postgres-postgresql has no key `admin-password` (its keys: postgres-password)",
    );
    // The hint travels with the error up to the report.
    assert_eq!(
        missing_key["hint"],
        "`kubectl get secret postgres-postgresql -n data -o jsonpath='{.data}'` shows its keys (not their values)"
    );
    // Secrets never show: the Secrets' real passwords are nowhere.
    assert!(!out.all_output().contains(PAPERLESS_PASSWORD));
    assert!(!out.all_output().contains(PASSWORD));

    // A planted SQLite file is found and quoted.
    let data = kube
        .pod_root("docs", "paperless-paperless-ngx")
        .join("usr/src/paperless/data");
    assert!(data.is_dir(), "{} is the pod's data folder", data.display());
    let planted = data.join("db.sqlite3");
    std::fs::write(&planted, "").unwrap();
    let out = run(kube.kubeconfig(), SUITE);
    out.expect("no-sqlite", "failed", "`.sqlite3` found");
    out.expect("no-sqlite", "failed", "db.sqlite3");
    std::fs::remove_file(&planted).unwrap();

    rbac_preflight_reports_missing_permissions_before_the_run(&bed);
    variables_come_from_secrets(&bed);
    suites_talk_to_their_own_context(&bed);
    runs_in_a_pod_as_its_service_account(&bed);
    drop(bed);
}

/// Inside a pod (no kubeconfig; `KUBERNETES_SERVICE_HOST`/`_PORT` and the ServiceAccount's
/// token, CA and namespace under /var/run/secrets/kubernetes.io/serviceaccount), attest
/// authenticates as that ServiceAccount: its RBAC applies, and the report says so. The mount
/// is made in a private mount namespace, over a tmpfs on /run: nothing on the host changes.
fn runs_in_a_pod_as_its_service_account(bed: &Bed) {
    let account = bed
        .kube
        .service_account(
            "data",
            "attest-job",
            "get,list",
            "persistentvolumeclaims,pods",
        )
        .unwrap();
    let attest = Attest::new().suite(
        "pod",
        r#"id: pod
title: from inside the cluster
kubernetes: {context: do-nyc3-prod}
checks:
  - id: claim-bound
    title: the data claim is Bound
    kube:
      apiVersion: v1
      kind: PersistentVolumeClaim
      namespace: data
      name: data-postgres-postgresql-0
      fields: ["status.phase == Bound"]
  - id: no-exec
    title: exec is not granted
    pod-exec:
      pod: {namespace: data, name: postgres-postgresql-0}
      command: ["true"]
"#,
    );
    let mount = attest.path().join("serviceaccount");
    account.write_mount(&mount).unwrap();
    let port = account
        .server
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/');
    let script = format!(
        "mount -t tmpfs attest-sa /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount && cp {}/* /run/secrets/kubernetes.io/serviceaccount/ && exec \"$@\"",
        mount.display()
    );
    let home = attest.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let out = attest
        .wrapped(&[
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .env_remove("KUBECONFIG")
        .env("HOME", home.to_str().unwrap())
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", port)
        .args(&["run"])
        .run();
    out.assert_code(1);
    assert_eq!(
        out.result("claim-bound")["status"],
        "passed",
        "{:#}\n{}",
        out.result("claim-bound"),
        out.stderr
    );
    out.expect(
        "no-exec",
        "error",
        "missing permission: get pods/exec postgres-postgresql-0 in namespace data, create pods/exec postgres-postgresql-0 in namespace data (RBAC preflight)",
    );
    // A suite's context needs a kubeconfig; in a pod, the pod's own account is used.
    assert_eq!(
        out.json()["environment"]["kubernetes context"],
        "in-cluster (ServiceAccount in data); the suite's context `do-nyc3-prod` needs a kubeconfig"
    );
    assert!(!out.all_output().contains(&account.token));
}

fn variables_come_from_secrets(bed: &Bed) {
    let suite = format!(
        r#"id: v
title: variables from Secrets
variables:
  ns: data
  pg_password:
    kubernetes_secret: {{namespace: "${{ns}}", name: postgres-postgresql, key: postgres-password}}
  no_key:
    kubernetes_secret: {{namespace: data, name: postgres-postgresql, key: admin-password}}
  no_secret:
    kubernetes_secret: {{namespace: data, name: no-such-secret, key: x}}
    default: the-default-value
    secret: false
checks:
  - id: login
    title: the chart's superuser password, read from its Secret, logs in
    postgres:
      connection: {{host: "{host}", port: {port}, user: postgres, password: "${{pg_password}}", dbname: postgres, sslmode: disable}}
  - id: printed
    title: a command printing the value shows it masked
    command: {{run: [echo, "pw=${{pg_password}}"], stdout_contains: ["pw=Sup3r"]}}
  - id: no-key
    title: a key the Secret does not have
    command: {{run: ["true", "${{no_key}}"]}}
  - id: fallback
    title: no such Secret, the default applies
    command: {{run: [echo, "${{no_secret}}"], stdout_contains: [the-default-value]}}
"#,
        host = bed.postgres.host(),
        port = bed.postgres.port()
    );
    let out = Attest::new()
        .suite("v", &suite)
        .args(&[
            "run",
            "--kubeconfig",
            bed.kube.kubeconfig().to_str().unwrap(),
        ])
        .run();
    out.assert_code(1);
    out.assert_passed(&["login", "printed", "fallback"]);
    out.expect(
        "no-key",
        "error",
        "`${no_key}` has no value: Secret data/postgres-postgresql has no key `admin-password` (its keys: postgres-password); the check did not run",
    );
    out.expect_in("no-key", "error", "hint", "`--set no_key=VALUE`");
    assert!(!out.all_output().contains(PASSWORD), "{}", out.all_output());
    // A run whose filter leaves none of the suite's checks reads none of its Secrets: no
    // API request at all.
    let filtered = Attest::new()
        .suite("v", &suite)
        .suite("other", &common::one_check("command", "run: [\"true\"]"))
        .args(&[
            "run",
            "--kubeconfig",
            bed.kube.kubeconfig().to_str().unwrap(),
            "t::",
        ])
        .run();
    filtered.assert_code(0);
    let environment = &filtered.json()["environment"];
    assert!(
        environment.get("kubernetes API requests").is_none(),
        "{environment:#}"
    );
    // `--list` reads no Secret: it works without any cluster.
    let listed = Attest::new()
        .suite("v", &suite)
        .args(&["run", "--list", "--kubeconfig", "/nonexistent/kubeconfig"])
        .run();
    listed.assert_code(0);
    assert!(listed.stdout.contains("v::login"), "{}", listed.stdout);
}

/// Suites with `kubernetes: {context}` use that context (its RBAC, its Secrets); `--context`
/// overrides every suite's.
fn suites_talk_to_their_own_context(bed: &Bed) {
    let kube = &bed.kube;
    // A second context for a ServiceAccount that may read pods in `data`, nothing else.
    let viewer = kube
        .restricted_kubeconfig("data", "viewer", "get,list", "pods")
        .unwrap();
    let kubectl = kube::bin_dir().unwrap().join("kubectl");
    let flatten = |args: &[&str]| {
        let output = std::process::Command::new(&kubectl)
            .args(args)
            .env(
                "KUBECONFIG",
                format!("{}:{}", kube.kubeconfig().display(), viewer.display()),
            )
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let merged = flatten(&["config", "view", "--flatten"]);
    let admin_context = flatten(&["config", "current-context"]).trim().to_owned();
    assert_ne!(admin_context, "t");
    let exec = |id: &str| {
        format!(
            "  - id: {id}\n    title: exec in the database pod\n    pod-exec:\n      pod: {{namespace: data, name: postgres-postgresql-0}}\n      command: [\"true\"]\n"
        )
    };
    let own = format!(
        "id: own\ntitle: names its context\nkubernetes: {{context: t}}\nvariables:\n  pw:\n    kubernetes_secret: {{namespace: data, name: postgres-postgresql, key: postgres-password}}\nchecks:\n{}  - id: own-secret\n    title: uses a Secret value\n    command: {{run: [\"true\", \"${{pw}}\"]}}\n",
        exec("own-exec")
    );
    let current = format!(
        "id: current\ntitle: the current context\nchecks:\n{}",
        exec("current-exec")
    );
    // Naming the current context is the same as naming none: one client.
    let named_current = format!(
        "id: named-current\ntitle: names the current context\nkubernetes: {{context: {admin_context}}}\nchecks:\n{}",
        exec("named-current-exec")
    );
    let attest = || {
        Attest::new()
            .file("merged.kubeconfig", &merged)
            .suite("own", &own)
            .suite("current", &current)
            .suite("named-current", &named_current)
            .suite(
                "elsewhere",
                &format!(
                    "id: elsewhere\ntitle: a context the kubeconfig lacks\nkubernetes: {{context: nowhere}}\nchecks:\n{}",
                    exec("elsewhere-exec")
                ),
            )
    };
    let out = attest()
        .args(&["run", "--kubeconfig", "merged.kubeconfig"])
        .run();
    out.assert_code(1);
    assert_eq!(out.result("current-exec")["status"], "passed");
    out.expect(
        "own-exec",
        "error",
        "missing permission: get pods/exec postgres-postgresql-0 in namespace data, create pods/exec postgres-postgresql-0 in namespace data",
    );
    out.expect(
        "own-secret",
        "error",
        "`${pw}` has no value: cannot read Secret data/postgres-postgresql key `postgres-password`",
    );
    out.expect_in(
        "own-secret",
        "error",
        "hint",
        r#"resources: ["secrets"], resourceNames: ["postgres-postgresql"], verbs: ["get"]"#,
    );
    let contexts = out.json()["environment"]["kubernetes context"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut listed: Vec<&str> = contexts.split(", ").collect();
    listed.sort_unstable();
    assert_eq!(listed, [admin_context.as_str(), "t"], "{contexts}");
    assert_eq!(out.result("named-current-exec")["status"], "passed");
    out.expect(
        "elsewhere-exec",
        "error",
        "the kubeconfig has no context `nowhere` (its contexts: ",
    );

    // `--context` wins over the suite's own.
    let out = attest()
        .args(&[
            "run",
            "--kubeconfig",
            "merged.kubeconfig",
            "--context",
            &admin_context,
        ])
        .run();
    out.assert_code(0);
    assert_eq!(out.result("own-exec")["status"], "passed");
    assert_eq!(out.result("own-secret")["status"], "passed");
    assert!(!out.all_output().contains(PASSWORD));
}

fn rbac_preflight_reports_missing_permissions_before_the_run(bed: &Bed) {
    let kube = &bed.kube;
    let config = kube
        .restricted_kubeconfig("data", "reader", "get,list", "pods,persistentvolumeclaims")
        .unwrap();
    let suite = r#"id: r
title: restricted
checks:
  - id: pvc
    title: may read claims in data
    kube: {apiVersion: v1, kind: PersistentVolumeClaim, namespace: data, name: data-postgres-postgresql-0}
  - id: exec
    title: may not exec
    timeout: 60s
    pod-exec:
      pod: {namespace: data, name: postgres-postgresql-0}
      command: ["true"]
  - id: other-namespace
    title: may not read docs
    kube: {apiVersion: apps/v1, kind: Deployment, namespace: docs, name: paperless-paperless-ngx}
"#;
    let started = Instant::now();
    let out = Attest::new()
        .suite("r", suite)
        .args(&["run", "--kubeconfig", config.to_str().unwrap()])
        .run();
    out.assert_code(1);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "nothing may hang on a 403"
    );
    assert_eq!(
        out.result("pvc")["status"],
        "passed",
        "{:#}",
        out.result("pvc")
    );
    out.expect(
        "exec",
        "error",
        "missing permission: get pods/exec postgres-postgresql-0 in namespace data, create pods/exec postgres-postgresql-0 in namespace data (RBAC preflight)",
    );
    out.expect_in(
        "exec",
        "error",
        "hint",
        r#"a Role rule {apiGroups: [""], resources: ["pods/exec"], resourceNames: ["postgres-postgresql-0"], verbs: ["create"]}"#,
    );
    out.expect(
        "other-namespace",
        "error",
        "missing permission: get deployments paperless-paperless-ngx in namespace docs",
    );
    assert!(out.result("exec")["duration_ms"].as_u64().unwrap() < 1000);
}

/// A Secret applied the client-side way, so its `last-applied-configuration` annotation copies
/// the value too.
const APPLIED_SECRET_VALUE: &str = "applied-Secret-value-42";

fn base64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[test]
fn regexes_ages_exit_codes_every_differing_object_and_no_secret_value_shown() {
    let bed = start();
    let kube = &bed.kube;
    let applied = std::env::temp_dir().join(format!("attest-secret-{}.yaml", std::process::id()));
    std::fs::write(
        &applied,
        format!("apiVersion: v1\nkind: Secret\nmetadata: {{name: applied, namespace: data}}\nstringData: {{password: {APPLIED_SECRET_VALUE}}}\n"),
    )
    .unwrap();
    kube.kubectl_output(&["apply", "-f", applied.to_str().unwrap()])
        .unwrap();
    std::fs::remove_file(&applied).unwrap();
    let suite = format!(
        r#"id: f
title: values as evidence
checks:
  - id: on-a-worker
    title: the database pod runs on a worker, from an image tagged latest
    kube:
      apiVersion: v1
      kind: Pod
      namespace: data
      name: postgres-postgresql-0
      fields: ["spec.nodeName =~ /worker/", "spec.containers[0].image =~ /:latest$/", "age(metadata.creationTimestamp) < 26h"]
  - id: on-control-plane
    title: a node name it does not have
    kube:
      apiVersion: v1
      kind: Pod
      namespace: data
      name: postgres-postgresql-0
      fields: ["spec.nodeName =~ /^control/"]
  - id: every-node-differs
    title: a label no node has
    kube: {{apiVersion: v1, kind: Node, fields: ["metadata.labels.tier == gold"]}}
  - id: secret-matches
    title: the superuser password compared without showing it
    kube:
      apiVersion: v1
      kind: Secret
      namespace: data
      name: postgres-postgresql
      fields: ["data.postgres-password == {encoded}"]
  - id: secret-differs
    title: another password, in expect and fields
    kube:
      apiVersion: v1
      kind: Secret
      namespace: data
      name: postgres-postgresql
      expect: {{data: {{postgres-password: d3Jvbmc=}}}}
      fields: ["data.postgres-password == d3Jvbmc=", "data absent"]
  - id: secret-polls
    title: a password that never comes
    timeout: 2s
    retry: {{interval: 400ms}}
    kube:
      apiVersion: v1
      kind: Secret
      namespace: data
      name: postgres-postgresql
      fields: ["data.postgres-password == d3Jvbmc="]
  - id: applied-secret
    title: a Secret applied client-side, its annotation and data
    kube:
      apiVersion: v1
      kind: Secret
      namespace: data
      name: applied
      expect: {{metadata: {{annotations: null}}}}
      fields: ["data.password absent"]
  - id: env-number
    title: an unquoted port number
    pod-env:
      workload: {{namespace: docs, kind: Deployment, name: paperless-paperless-ngx}}
      expect: {{PAPERLESS_DBPORT: 5432}}
  - id: env-other-number
    title: another port number
    pod-env:
      workload: {{namespace: docs, kind: Deployment, name: paperless-paperless-ngx}}
      expect: {{PAPERLESS_DBPORT: 5433}}
  - id: exit-0
    title: a command that succeeds
    pod-exec:
      pod: {{namespace: data, name: postgres-postgresql-0}}
      command: [sh, -c, "exit 0"]
  - id: exit-3
    title: a command that exits 3
    pod-exec:
      pod: {{namespace: data, name: postgres-postgresql-0}}
      command: [sh, -c, "exit 3"]
      exit_code: 3
"#,
        encoded = base64(PASSWORD)
    );
    let out = run(kube.kubeconfig(), &suite);
    out.assert_code(1);
    out.assert_passed(&["on-a-worker", "secret-matches", "env-number", "exit-0"]);
    // `/re/` is the expression between the slashes.
    out.expect(
        "on-control-plane",
        "failed",
        "spec.nodeName is k3s-worker-0",
    );
    assert_eq!(
        out.result("on-control-plane")["mismatches"][0]["expected"],
        "=~ /^control/"
    );
    // A passing age shows what was measured and the limit as written.
    out.expect(
        "on-a-worker",
        "passed",
        "age(metadata.creationTimestamp) < 26h (age ",
    );
    assert!(!out.result("on-a-worker")["message"]
        .as_str()
        .unwrap()
        .contains("1day"));
    // Each differing object has its block.
    out.expect("every-node-differs", "failed", "3 of 3 objects differ");
    for node in ["k3s-worker-01", "k3s-worker-02", "k3s-worker-03"] {
        let block = format!(
            "v1/Node {node}\n* metadata.labels.tier: expected == gold, found nothing (absent)"
        );
        assert!(out.stdout.contains(&block), "{block}\n{}", out.stdout);
        let row = block.replace('\n', "<br>");
        assert!(out.report("report.md").contains(&row), "{row}");
    }
    let every_node = out.result("every-node-differs");
    let subjects: Vec<&str> = every_node["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap())
        .collect();
    assert_eq!(
        subjects,
        [
            "v1/Node k3s-worker-01",
            "v1/Node k3s-worker-02",
            "v1/Node k3s-worker-03"
        ]
    );
    // A Secret's values show as their size, on every path.
    out.expect(
        "secret-matches",
        "passed",
        "data.postgres-password == <secret value, 15 bytes>",
    );
    out.expect(
        "secret-differs",
        "failed",
        "data.postgres-password is <secret value, 15 bytes>",
    );
    let mismatches = out.result("secret-differs")["mismatches"].clone();
    assert_eq!(
        mismatches[0],
        serde_json::json!({"path": "data.postgres-password", "expected": "<secret value, 5 bytes>",
            "found": "<secret value, 15 bytes>", "subject": "v1/Secret data/postgres-postgresql"})
    );
    assert_eq!(
        mismatches[2]["found"],
        r#"{"postgres-password":"<secret value, 15 bytes>"}"#
    );
    out.expect(
        "secret-polls",
        "failed",
        "; last: v1/Secret data/postgres-postgresql: data.postgres-password is <secret value, 15 bytes>",
    );
    out.expect(
        "applied-secret",
        "failed",
        "kubectl.kubernetes.io/last-applied-configuration\":\"<secret value, ",
    );
    let all = out.all_output();
    for hidden in [
        PASSWORD.to_owned(),
        base64(PASSWORD),
        APPLIED_SECRET_VALUE.to_owned(),
        base64(APPLIED_SECRET_VALUE),
    ] {
        assert!(!all.contains(&hidden), "`{hidden}` shown:\n{all}");
    }
    // Unquoted numbers are literal values.
    out.expect(
        "env-other-number",
        "failed",
        "env PAPERLESS_DBPORT is `5432`",
    );
    // The exit code the API gave, or its words when it gave none: never a made-up -1.
    out.expect("exit-0", "passed", "exited 0 as expected");
    // kwok reports a non-zero exit as an internal error with no exit code (see README,
    // "Simulated"); a kubelet sends the code, which `ExecEnd` unit tests cover.
    let exit_3 = out.expect(
        "exit-3",
        "failed",
        "expected exit code 3, but the API gave no exit code, only: Internal error occurred",
    );
    let message = exit_3["message"].as_str().unwrap();
    assert!(
        message.ends_with("exit status 3") && !message.contains("-1"),
        "{exit_3:#}"
    );
    assert!(exit_3["measurements"].get("exit_code").is_none());
    assert_eq!(out.result("exit-0")["measurements"]["exit_code"], 0.0);
    drop(bed);
}

#[test]
fn a_stopped_api_server_fails_checks_within_their_timeout_and_the_run_completes() {
    let bed = start();
    let kube = &bed.kube;
    let suite = r#"id: s
title: api server stops
checks:
  - id: before
    title: reachable first
    kube: {apiVersion: v1, kind: Namespace, name: data}
  - id: stop
    title: the API server goes away
    command: {run: "touch stop-now; sleep 2"}
  - id: after
    title: then unreachable
    timeout: 3s
    kube: {apiVersion: v1, kind: Namespace, name: docs}
"#;
    let attest = Attest::new().suite("s", suite).args(&[
        "run",
        "--kubeconfig",
        kube.kubeconfig().to_str().unwrap(),
    ]);
    let marker = attest.path().join("stop-now");
    let child = attest.spawn();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "the run never reached the stop step"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stop kube-apiserver (the testbed's own processes only).
    let apiserver: Vec<String> = kube::processes_in(kube.dir())
        .into_iter()
        .filter(|p| p.contains("kube-apiserver"))
        .collect();
    assert!(!apiserver.is_empty(), "no kube-apiserver process found");
    for line in &apiserver {
        let pid = line.split_whitespace().next().unwrap();
        common::signal(pid.parse().unwrap(), "STOP");
    }
    let started = Instant::now();
    let out = child.wait();
    for line in &apiserver {
        let pid = line.split_whitespace().next().unwrap();
        common::signal(pid.parse().unwrap(), "CONT");
    }
    out.assert_code(1);
    assert_eq!(out.result("before")["status"], "passed");
    let after = out.result("after");
    assert!(
        after["status"] == "failed" || after["status"] == "error",
        "{after:#}"
    );
    assert!(after["duration_ms"].as_u64().unwrap() <= 4000, "{after:#}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(out.report("junit.xml").contains("after"));
    drop(bed.runtime);
    let _ = bed.postgres;
}

#[test]
fn a_rollout_is_judged_by_comparing_fields_of_the_same_object() {
    let bed = start();
    let suite = r#"id: r
title: rollout by field operands
checks:
  - id: rolled-out
    title: the StatefulSet's controller has seen its spec and every replica is updated and ready
    timeout: 60s
    retry: {interval: 500ms}
    kube:
      apiVersion: apps/v1
      kind: StatefulSet
      namespace: data
      name: postgres-postgresql
      fields:
        - status.observedGeneration == metadata.generation
        - status.updatedReplicas == spec.replicas
        - status.readyReplicas == .spec.replicas
        - status.replicas != 'spec.replicas'
  - id: operand-differs
    title: a field compared with another field of a different value
    kube:
      apiVersion: apps/v1
      kind: StatefulSet
      namespace: data
      name: postgres-postgresql
      fields: ["status.replicas == spec.revisionHistoryLimit"]
  - id: operand-missing
    title: a field compared with a field the object does not have
    kube:
      apiVersion: apps/v1
      kind: StatefulSet
      namespace: data
      name: postgres-postgresql
      fields: ["status.readyReplicas == spec.replicaz"]
"#;
    let out = run(bed.kube.kubeconfig(), suite);
    out.assert_code(1);
    out.assert_passed(&["rolled-out"]);
    out.expect(
        "rolled-out",
        "passed",
        "status.observedGeneration == metadata.generation, status.updatedReplicas == spec.replicas",
    );
    out.expect(
        "operand-differs",
        "failed",
        "apps/v1/StatefulSet data/postgres-postgresql: status.replicas is 1",
    );
    let mismatch = &out.result("operand-differs")["mismatches"][0];
    assert_eq!(mismatch["path"], "status.replicas");
    assert_eq!(mismatch["expected"], "== spec.revisionHistoryLimit (10)");
    assert_eq!(mismatch["found"], "1");
    assert!(
        out.stdout
            .contains("* status.replicas: expected == spec.revisionHistoryLimit (10), found 1"),
        "{}",
        out.stdout
    );
    let mismatch = &out.result("operand-missing")["mismatches"][0];
    assert_eq!(mismatch["expected"], "== spec.replicaz (absent)");
    assert_eq!(
        mismatch["found"],
        "nothing to compare with: spec.replicaz is absent"
    );
}

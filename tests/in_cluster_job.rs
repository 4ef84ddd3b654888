//! `attest job` live, against the testbed's control plane with its two real nodes
//! (crates/attest-sandbox/src/kube/nodes.rs): attest's image is built from this test's own
//! attest binary (scripts/attest-image) and imported into the nodes' containerds; the Job's
//! pod runs that binary. Needs what tests/real_nodes.rs needs (root, scripts/kube-build,
//! scripts/node-images, a network namespace of its own):
//!   unshare --net sh -c 'ip link set lo up && exec cargo nextest run --offline --test in_cluster_job'
//!
//! One testbed start for every path (a start takes about a minute): success, a failing check,
//! an image that does not exist, SIGTERM mid-run, SIGKILL then `attest cleanup`; a fleet run
//! over two kubeconfig contexts (same API server and real nodes, two namespaces) with merged
//! reports, and one refused by one context's preflight; and the image built by dockerd from
//! deploy/Dockerfile (while the testbed starts) running the Job. After each, nothing labelled
//! with the run marker is left.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use attest_sandbox::docker::{self, DockerEngine};
use attest_sandbox::kube::{nodes, KubeTestbed};
use common::testbed::{eventually, stories_postgres_ready, token_kubeconfig, Bed};

const PASSWORD: &str = "Sup3r-secret";
const TOKEN: &str = "job-Token-7f3a";

const SUITE: &str = r#"id: injob
title: attest job on real nodes
variables:
  from_secret:
    kubernetes_secret: {namespace: data, name: postgres-postgresql, key: postgres-password}
  given_pw: {secret: true}
  token: {secret: true}
checks:
  - id: pg-pod
    title: the stories' PostgreSQL pod, by name
    kube: {apiVersion: v1, kind: Pod, namespace: data, name: postgres-postgresql-0}
  - id: pg-tcp
    title: its Service by name, from the pod
    tcp: {host: postgres-postgresql.data.svc.cluster.local, port: 5432}
  - id: pg-auth-secret
    title: the password read from the chart's Secret in the pod
    postgres:
      connection: {host: postgres-postgresql.data.svc.cluster.local, port: 5432, user: postgres, password: "${from_secret}", dbname: postgres, sslmode: disable}
  - id: pg-auth-given
    title: the password given to attest job (the Job's Secret)
    postgres:
      connection: {host: postgres-postgresql.data.svc.cluster.local, port: 5432, user: postgres, password: "${given_pw}", dbname: postgres, sslmode: disable}
"#;

const FAILING: &str = r#"id: fails
title: a check that fails
checks:
  - id: too-many-pods
    title: fifty pods in data
    kube: {apiVersion: v1, kind: Pod, namespace: data, count: ">= 50"}
"#;

const SLOW: &str = r#"id: slow
title: a check that waits
checks:
  - id: waits
    title: fifty pods in data, retried for two minutes
    timeout: 120s
    retry: {interval: 2s}
    kube: {apiVersion: v1, kind: Pod, namespace: data, count: ">= 50"}
"#;

/// A launcher allowed to create and delete everything `attest job` creates, and to watch its
/// pod, but holding none of the permissions the run's Roles grant, nor `escalate`/`bind`.
const LAUNCHER: &str = r#"apiVersion: v1
kind: ServiceAccount
metadata: {name: launcher, namespace: default}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: attest-test-launcher}
rules:
  - apiGroups: [""]
    resources: [serviceaccounts, configmaps, secrets]
    verbs: [create, delete]
  - apiGroups: [""]
    resources: [events]
    verbs: [list]
  - apiGroups: [batch]
    resources: [jobs]
    verbs: [create, delete, get]
  - apiGroups: [rbac.authorization.k8s.io]
    resources: [roles, rolebindings, clusterroles, clusterrolebindings]
    verbs: [create, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: attest-test-launcher-pods, namespace: default}
rules:
  - apiGroups: [""]
    resources: [pods, pods/log]
    verbs: [get, list, delete]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: attest-test-launcher}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: attest-test-launcher}
subjects: [{kind: ServiceAccount, name: launcher, namespace: default}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: attest-test-launcher-pods, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: attest-test-launcher-pods}
subjects: [{kind: ServiceAccount, name: launcher, namespace: default}]
"#;

/// Everything labelled with the run marker, in every namespace (empty: nothing left).
fn left(kube: &KubeTestbed) -> String {
    let mut all = String::new();
    for kinds in [
        "all,cm,secret,sa,role,rolebinding",
        "clusterrole,clusterrolebinding",
    ] {
        let out = kube
            .kubectl()
            .args(["get", kinds, "-A", "-l", "attest.dev/run", "-o", "name"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        all.push_str(&String::from_utf8_lossy(&out.stdout));
    }
    all
}

fn assert_nothing_left(kube: &KubeTestbed, after: &str) {
    let rest = left(kube);
    assert!(rest.is_empty(), "after {after}, left behind:\n{rest}");
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

fn job_command(kube: &KubeTestbed, dir: &Path, suite: &str, extra: &[&str]) -> Command {
    job_command_as(kube.kubeconfig(), dir, suite, extra)
}

/// `attest job` in namespace `default`, unless `extra` names contexts (each its own).
fn job_command_as(kubeconfig: &Path, dir: &Path, suite: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_attest"));
    command
        .current_dir(dir)
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .args(["job", suite])
        .args(
            (!extra.contains(&"--context"))
                .then_some(["-n", "default"])
                .into_iter()
                .flatten(),
        )
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "--toleration",
            "attest.dev/real-node:NoSchedule",
            "--node-selector",
            "type=real",
        ])
        .args(
            (!extra.contains(&"--start-timeout"))
                .then_some(["--start-timeout", "40s"])
                .into_iter()
                .flatten(),
        )
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn run_job(kube: &KubeTestbed, dir: &Path, suite: &str, extra: &[&str]) -> Run {
    run_job_as(kube.kubeconfig(), dir, suite, extra)
}

fn run_job_as(kubeconfig: &Path, dir: &Path, suite: &str, extra: &[&str]) -> Run {
    let clock = Instant::now();
    let out = job_command_as(kubeconfig, dir, suite, extra)
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: clock.elapsed(),
    };
    eprintln!(
        "--- attest job {suite} {extra:?}: exit {:?} in {:?}\n--- stdout:\n{}\n--- stderr:\n{}",
        run.code, run.took, run.stdout, run.stderr
    );
    run
}

fn no_secret(run: &Run, reports: &Path) {
    for value in [PASSWORD, TOKEN] {
        assert!(!run.stdout.contains(value) && !run.stderr.contains(value));
        for entry in std::fs::read_dir(reports).into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            assert!(!text.contains(value), "{}", entry.path().display());
        }
    }
}

fn json(path: PathBuf) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Spawns `attest job` on the slow suite and returns once its pod runs.
fn start_slow(kube: &KubeTestbed, dir: &Path) -> std::process::Child {
    let command = job_command(
        kube,
        dir,
        "slow.yaml",
        &["--report-dir", "slow-reports", "--timeout", "5m"],
    );
    start_slow_in(kube, command, &["default"])
}

/// Spawns `command` (an `attest job` of the slow suite) and returns once its pod runs in
/// each of `namespaces`.
fn start_slow_in(
    kube: &KubeTestbed,
    mut command: Command,
    namespaces: &[&str],
) -> std::process::Child {
    let child = command.spawn().unwrap();
    for namespace in namespaces {
        eventually(
            &format!("the slow Job's pod running in {namespace}"),
            Duration::from_secs(90),
            || {
                let out = kube.kubectl_output(&[
                    "get",
                    "pods",
                    "-n",
                    namespace,
                    "-l",
                    "attest.dev/run",
                    "-o",
                    "jsonpath={.items[*].status.phase}",
                ])?;
                match out.trim() {
                    "Running" => Ok(()),
                    other => Err(other.to_owned()),
                }
            },
        );
    }
    // Let the run in the pod get going (preflight, first tries).
    std::thread::sleep(Duration::from_secs(3));
    child
}

fn finish(mut child: std::process::Child) -> Run {
    let code = child.wait().unwrap().code();
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    eprintln!("--- exit {code:?}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}");
    Run {
        code,
        stdout,
        stderr,
        took: Duration::ZERO,
    }
}

/// A kubeconfig with the admin's cluster under several contexts: (name, namespace, user),
/// the user `admin` (the testbed's) or a ServiceAccount `default/NAME` by its token.
fn fleet_kubeconfig(kube: &KubeTestbed, contexts: &[(&str, &str, &str)]) -> PathBuf {
    let view = kube
        .kubectl_output(&["config", "view", "--raw", "-o", "json"])
        .unwrap_or_else(|e| panic!("{e}"));
    let mut config: serde_json::Value = serde_json::from_str(&view).unwrap();
    let cluster = config["contexts"][0]["context"]["cluster"].clone();
    let admin = config["contexts"][0]["context"]["user"].clone();
    let mut users = config["users"].as_array().cloned().unwrap_or_default();
    let mut named = Vec::new();
    for (name, namespace, user) in contexts {
        let user = match *user {
            "admin" => admin.clone(),
            account => {
                let token = kube
                    .kubectl_output(&[
                        "create",
                        "token",
                        account,
                        "-n",
                        "default",
                        "--duration=30m",
                    ])
                    .unwrap_or_else(|e| panic!("{e}"));
                users.push(serde_json::json!({"name": account, "user": {"token": token.trim()}}));
                serde_json::Value::from(account)
            }
        };
        named.push(serde_json::json!({
            "name": name,
            "context": {"cluster": cluster, "user": user, "namespace": namespace},
        }));
    }
    config["users"] = users.into();
    config["contexts"] = named.into();
    config["current-context"] = contexts[0].0.into();
    let names: Vec<&str> = contexts.iter().map(|c| c.0).collect();
    let path = kube
        .dir()
        .join(format!("fleet-{}.kubeconfig", names.join("-")));
    std::fs::write(&path, config.to_string()).unwrap();
    path
}

/// deploy/Dockerfile built by a dockerd of the test's own (its network and mount namespaces,
/// no bridge, no firewall rules, `--network none`) on the base image of scripts/node-images,
/// with its .deb files in the build context and this test's attest binary (stripped), then
/// `docker save`d into `out`. Err: why no engine can run here (the step is skipped).
fn docker_build(images: &Path, work: &Path, out: &Path) -> Result<Duration, String> {
    if let Some(why) = docker::unavailable() {
        return Err(why);
    }
    let clock = Instant::now();
    let context = work.join("context");
    std::fs::create_dir_all(&context).unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(root.join("deploy/Dockerfile"), context.join("Dockerfile")).unwrap();
    let strip = Command::new("strip")
        .arg("-o")
        .arg(context.join("attest"))
        .arg(env!("CARGO_BIN_EXE_attest"))
        .status()
        .unwrap();
    assert!(strip.success());
    let debs = std::fs::read_dir(images.join("deploy-debs")).unwrap_or_else(|e| {
        panic!(
            "{}/deploy-debs: {e}; run scripts/node-images",
            images.display()
        )
    });
    for deb in debs.flatten() {
        std::fs::copy(deb.path(), context.join(deb.file_name())).unwrap();
    }
    let engine = DockerEngine::start(&work.join("engine")).unwrap_or_else(|e| panic!("{e}"));
    let started = clock.elapsed();
    let base = images.join("base.tar");
    let run = |args: &[&str]| engine.docker(args).unwrap_or_else(|e| panic!("{e}"));
    run(&["load", "-i", base.to_str().unwrap()]);
    let build = Instant::now();
    let log = run(&[
        "build",
        "--network",
        "none",
        "-t",
        "attest-docker:test",
        context.to_str().unwrap(),
    ]);
    assert!(
        log.contains("Successfully tagged attest-docker:test"),
        "{log}"
    );
    let built = build.elapsed();
    run(&["save", "-o", out.to_str().unwrap(), "attest-docker:test"]);
    drop(engine);
    eprintln!(
        "deploy/Dockerfile: dockerd up in {started:?}, built in {built:?}, saved ({:.1} MB), {:?} in all",
        std::fs::metadata(out).unwrap().len() as f64 / 1e6,
        clock.elapsed()
    );
    Ok(clock.elapsed())
}

#[test]
fn attest_job_runs_in_the_cluster_brings_reports_back_and_leaves_nothing() {
    // The Dockerfile's image builds while the testbed starts.
    let work = tempfile::tempdir().unwrap();
    let docker_tar = work.path().join("attest-docker.tar");
    let images = nodes::images_dir().unwrap_or_else(|e| panic!("{e}"));
    let docker = {
        let (images, work, out) = (
            images.clone(),
            work.path().join("docker"),
            docker_tar.clone(),
        );
        std::thread::spawn(move || docker_build(&images, &work, &out))
    };
    let bed = Bed::start_with_real_nodes(PASSWORD);
    let kube = bed.kube();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    std::fs::write(dir.join("injob.yaml"), SUITE).unwrap();
    std::fs::write(dir.join("fails.yaml"), FAILING).unwrap();
    std::fs::write(dir.join("slow.yaml"), SLOW).unwrap();

    // attest's image, from this very binary, into both real nodes.
    let clock = Instant::now();
    let tarball = kube.dir().join("attest-image.tar");
    let image = nodes::attest_image(Path::new(env!("CARGO_BIN_EXE_attest")), &tarball, true)
        .unwrap_or_else(|e| panic!("{e}"));
    let built = clock.elapsed();
    let imported = kube
        .nodes()
        .expect("real nodes")
        .import_image(&tarball)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "image {image}: {:.1} MB, built in {built:?}, imported into both nodes in {imported:?}",
        std::fs::metadata(&tarball).unwrap().len() as f64 / 1e6
    );
    assert_eq!(
        image,
        format!("docker.io/library/attest:{}", env!("CARGO_PKG_VERSION"))
    );
    // The stories' PostgreSQL must be up for the checks.
    stories_postgres_ready(kube, Duration::from_secs(90));

    // 0. A launcher that may create every object but does not hold what the Roles grant (nor
    // `escalate`/`bind`): refused before anything is created, naming what is missing.
    let yaml = kube.dir().join("launcher.yaml");
    std::fs::write(&yaml, LAUNCHER).unwrap();
    kube.kubectl_output(&["apply", "-f", yaml.to_str().unwrap()])
        .unwrap_or_else(|e| panic!("{e}"));
    let limited = token_kubeconfig(kube, "default", "launcher");
    let out = job_command_as(&limited, dir, "injob.yaml", &["--report-dir", "none"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("--- a narrowed launcher: {:?}\n{stderr}", out.status.code());
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("you may not create what the run needs (nothing was created)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`escalate` and `bind` on roles and clusterroles"),
        "{stderr}"
    );
    assert!(
        stderr.contains("get pods postgres-postgresql-0 in namespace data"),
        "{stderr}"
    );
    assert!(!stderr.contains("create configmaps"), "{stderr}");
    assert_nothing_left(kube, "a refused launcher");

    // 1. Success: the default image (attest:VERSION), every check passing with only the
    // generated RBAC, the console and the reports from the pod.
    let set_pw = format!("given_pw={PASSWORD}");
    let set_token = format!("token={TOKEN}");
    let run = run_job(
        kube,
        dir,
        "injob.yaml",
        &[
            "--set",
            &set_pw,
            "--set",
            &set_token,
            "--report-dir",
            "ok-reports",
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    // The pod's console: attest run's own lines, live.
    assert!(
        run.stdout.contains("injob::pg-auth-given"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr
            .contains("attest job: the pod\'s attest exited 0"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stdout.contains("attest-report-frame"),
        "{}",
        run.stdout
    );
    let reports = dir.join("ok-reports");
    for name in ["junit.xml", "report.md", "report.json"] {
        assert!(reports.join(name).is_file(), "no {name}");
    }
    let report = json(reports.join("report.json"));
    let text = report.to_string();
    for check in ["pg-pod", "pg-tcp", "pg-auth-secret", "pg-auth-given"] {
        assert!(text.contains(check), "{check} not in report.json");
    }
    assert!(
        std::fs::read_to_string(reports.join("junit.xml"))
            .unwrap()
            .contains("failures=\"0\""),
        "junit.xml"
    );
    no_secret(&run, &reports);
    eprintln!("attest job to reports: {:?}", run.took);
    assert_nothing_left(kube, "a passing run");

    // 1b. A fleet: two contexts (the same API server and real nodes, namespaces attest-east
    // and attest-west), their Jobs side by side, the reports merged and labelled.
    for namespace in ["attest-east", "attest-west"] {
        kube.kubectl_output(&["create", "namespace", namespace])
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let fleet = fleet_kubeconfig(
        kube,
        &[
            ("east", "attest-east", "admin"),
            ("west", "attest-west", "admin"),
        ],
    );
    let run = run_job_as(
        &fleet,
        dir,
        "injob.yaml",
        &[
            "--context",
            "east",
            "--context",
            "west",
            "--set",
            &set_pw,
            "--set",
            &set_token,
            "--report-dir",
            "fleet-reports",
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the preflight passed in all 2 clusters (east, west)"),
        "{}",
        run.stderr
    );
    for context in ["east", "west"] {
        // Each cluster's live console, prefixed; its own reports in its folder.
        let line = format!("[{context}] ");
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(&line) && l.contains("injob::pg-auth-given")),
            "{}",
            run.stdout
        );
        assert!(
            run.stderr.contains(&format!(
                "[{context}] attest job: the pod's attest exited 0"
            )),
            "{}",
            run.stderr
        );
        let own = json(dir.join(format!("fleet-reports/{context}/report.json")));
        assert_eq!(own["results"].as_array().unwrap().len(), 4);
    }
    let reports = dir.join("fleet-reports");
    let merged = json(reports.join("report.json"));
    assert_eq!(merged["exit_code"], 0);
    let results = merged["results"].as_array().unwrap();
    assert_eq!(results.len(), 8, "{merged:#}");
    for (context, namespace) in [("east", "attest-east"), ("west", "attest-west")] {
        let mine: Vec<_> = results
            .iter()
            .filter(|r| r["cluster"] == context && r["namespace"] == namespace)
            .collect();
        assert_eq!(mine.len(), 4, "{merged:#}");
        assert!(mine.iter().all(|r| r["status"] == "passed"), "{merged:#}");
    }
    common::assert_valid_junit(&reports.join("junit.xml"));
    let junit = std::fs::read_to_string(reports.join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"<testsuite name="east/attest-east/injob""#),
        "{junit}"
    );
    assert!(
        junit.contains(r#"<testsuite name="west/attest-west/injob""#),
        "{junit}"
    );
    let markdown = std::fs::read_to_string(reports.join("report.md")).unwrap();
    assert!(
        markdown.contains("## Cluster `west`, namespace `attest-west`"),
        "{markdown}"
    );
    no_secret(&run, &reports);
    for context in ["east", "west"] {
        no_secret(&run, &reports.join(context));
    }
    eprintln!(
        "attest job, two contexts, to merged reports: {:?}",
        run.took
    );
    assert_nothing_left(kube, "a fleet run");

    // 1c. One context's preflight fails (the narrowed launcher): nothing is created in either.
    let refused = fleet_kubeconfig(
        kube,
        &[
            ("east", "attest-east", "admin"),
            ("narrow", "default", "launcher"),
        ],
    );
    let run = run_job_as(
        &refused,
        dir,
        "injob.yaml",
        &[
            "--context",
            "east",
            "--context",
            "narrow",
            "--report-dir",
            "none",
        ],
    );
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("[narrow] attest job: you may not create what the run needs"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "nothing was created in any of the 2 clusters: the preflight failed in narrow"
        ),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("creating"), "{}", run.stderr);
    assert!(!dir.join("none").exists());
    assert_nothing_left(kube, "a fleet refused by one preflight");

    // 1d. SIGTERM while both clusters' pods run: everything deleted in both, exit 143.
    let command = job_command_as(
        &fleet,
        dir,
        "slow.yaml",
        &[
            "--context",
            "east",
            "--context",
            "west",
            "--report-dir",
            "slow-fleet",
            "--timeout",
            "5m",
        ],
    );
    let child = start_slow_in(kube, command, &["attest-east", "attest-west"]);
    assert!(common::signal(child.id(), "TERM"));
    let run = finish(child);
    assert_eq!(run.code, Some(143), "{}", run.stderr);
    for context in ["east", "west"] {
        assert!(
            run.stderr.contains(&format!(
                "[{context}] attest job: interrupted (SIGTERM); deleted the"
            )),
            "{}",
            run.stderr
        );
    }
    assert_nothing_left(kube, "SIGTERM to a fleet run");

    // 2. A failing check: exit 1, and its reports.
    let run = run_job(kube, dir, "fails.yaml", &["--report-dir", "fail-reports"]);
    assert_eq!(run.code, Some(1), "{}", run.stderr);
    let text = std::fs::read_to_string(dir.join("fail-reports/report.md")).unwrap();
    assert!(text.contains("too-many-pods"), "{text}");
    assert!(
        run.stderr
            .contains("attest job: the pod\'s attest exited 1"),
        "{}",
        run.stderr
    );
    assert_nothing_left(kube, "a failing run");

    // 3. An image that does not exist: a verdict quoting the pod's events, nothing left.
    let run = run_job(
        kube,
        dir,
        "fails.yaml",
        &[
            "--image",
            "docker.io/local/no-such-attest:0",
            "--report-dir",
            "none",
        ],
    );
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(run.stderr.contains("nothing ran"), "{}", run.stderr);
    assert!(
        run.stderr.contains("ImagePullBackOff") || run.stderr.contains("ErrImagePull"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("the pod's events"), "{}", run.stderr);
    assert!(run.stderr.contains("no-such-attest"), "{}", run.stderr);
    assert!(!dir.join("none").exists());
    // Only this run's events (by uid), not those of the earlier Jobs of the same name.
    assert_eq!(
        run.stderr.matches("Created pod:").count(),
        1,
        "{}",
        run.stderr
    );
    assert_nothing_left(kube, "a missing image");

    // 3b. A pod that never schedules (no node has the label): a verdict after --start-timeout
    // quoting the scheduler's event, nothing left.
    let run = run_job(
        kube,
        dir,
        "fails.yaml",
        &[
            "--node-selector",
            "type=nowhere",
            "--start-timeout",
            "8s",
            "--report-dir",
            "none",
        ],
    );
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("did not start within 8 s: not scheduled (Unschedulable"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("FailedScheduling"), "{}", run.stderr);
    assert_nothing_left(kube, "an unschedulable pod");

    // 3c. --timeout while the pod runs: a verdict, exit 3, nothing left.
    let run = run_job(
        kube,
        dir,
        "slow.yaml",
        &["--timeout", "20s", "--report-dir", "none"],
    );
    assert_eq!(run.code, Some(3), "{}", run.stderr);
    assert!(
        run.stderr.contains("timed out after 20 s (the pod attest-"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("running 1 test"), "{}", run.stdout);
    assert_nothing_left(kube, "--timeout");

    // 4. SIGTERM mid-run: everything deleted, exit 143.
    let child = start_slow(kube, dir);
    assert!(!left(kube).is_empty());
    assert!(common::signal(child.id(), "TERM"));
    let run = finish(child);
    assert_eq!(run.code, Some(143), "{}", run.stderr);
    assert!(
        run.stderr.contains("interrupted (SIGTERM)"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("deleted the"), "{}", run.stderr);
    assert_nothing_left(kube, "SIGTERM");

    // 5. SIGKILL: leftovers, which `attest cleanup --kubeconfig` lists, then deletes.
    let child = start_slow(kube, dir);
    assert!(common::signal(child.id(), "KILL"));
    let _ = finish(child);
    let before = left(kube);
    assert!(before.contains("job.batch/attest"), "{before}");
    let cleanup = |drop: bool| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_attest"));
        command
            .args(["cleanup", "--kubeconfig"])
            .arg(kube.kubeconfig())
            .env("NO_COLOR", "1");
        for var in ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE"] {
            command.env_remove(var);
        }
        if drop {
            command.arg("--drop");
        }
        let out = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        eprintln!(
            "--- attest cleanup (drop: {drop}): {:?}\n{stdout}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), stdout)
    };
    let (code, listed) = cleanup(false);
    assert_eq!(code, Some(1));
    assert!(listed.contains("Job default/attest"), "{listed}");
    assert!(
        listed.contains("ClusterRole attest-default-attest"),
        "{listed}"
    );
    let (code, _) = cleanup(true);
    assert_eq!(code, Some(0));
    eventually(
        "nothing left after attest cleanup --drop",
        Duration::from_secs(60),
        || {
            let rest = left(kube);
            rest.is_empty().then_some(()).ok_or(rest)
        },
    );
    let (code, _) = cleanup(false);
    assert_eq!(code, Some(0));

    // 6. The image deploy/Dockerfile builds (with dockerd, while the testbed started), saved,
    // imported into the real nodes' containerds, as the Job's image: the pod's console,
    // reports and exit code come from the attest in it.
    match docker.join().unwrap() {
        Err(why) => eprintln!("SKIPPED the Dockerfile image: {why}"),
        Ok(took) => {
            let imported = kube
                .nodes()
                .expect("real nodes")
                .import_image(&docker_tar)
                .unwrap_or_else(|e| panic!("{e}"));
            eprintln!(
                "deploy/Dockerfile's image: built and saved in {took:?}, imported in {imported:?}"
            );
            let run = run_job(
                kube,
                dir,
                "fails.yaml",
                &[
                    "--image",
                    "docker.io/library/attest-docker:test",
                    "--report-dir",
                    "docker-reports",
                ],
            );
            assert_eq!(run.code, Some(1), "{}", run.stderr);
            assert!(
                run.stdout.contains("fails::too-many-pods"),
                "{}",
                run.stdout
            );
            assert!(
                run.stderr.contains("attest job: the pod's attest exited 1"),
                "{}",
                run.stderr
            );
            let report = json(dir.join("docker-reports/report.json"));
            assert_eq!(report["results"][0]["check"], "too-many-pods");
            assert_eq!(report["results"][0]["status"], "failed");
            eprintln!(
                "attest job with the Dockerfile's image, to reports: {:?}",
                run.took
            );
            assert_nothing_left(kube, "the Dockerfile's image");
        }
    }
    // 7. Reports larger than kubelet's containerLogMaxSize (10 MiB by default): 14,000
    // checks give 10.4 MB of reports, about 14 MB of base64 frames in the pod's log, read
    // through one follow stream and checked frame by frame (size and digest).
    let checks: String = (0..14_000)
        .map(|i| format!("  - {{id: f{i:05}, title: passwd, file: {{path: /etc/passwd}}}}\n"))
        .collect();
    std::fs::write(
        dir.join("big.yaml"),
        format!("id: big\ntitle: a big report\nchecks:\n{checks}"),
    )
    .unwrap();
    let run = run_job(
        kube,
        dir,
        "big.yaml",
        &["--report-dir", "big-reports", "--timeout", "5m"],
    );
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let big = dir.join("big-reports");
    let bytes: u64 = ["junit.xml", "report.md", "report.json"]
        .iter()
        .map(|name| std::fs::metadata(big.join(name)).unwrap().len())
        .sum();
    // Base64 makes 4 bytes of 3: more than 10 MiB of frames in the log.
    assert!(bytes * 4 / 3 > 10 << 20, "{bytes} bytes of reports");
    let report = json(big.join("report.json"));
    assert_eq!(report["results"].as_array().unwrap().len(), 14_000);
    assert_eq!(report["summary"]["passed"], 14_000);
    eprintln!(
        "attest job with {:.1} MB of reports ({:.1} MB of frames), to reports: {:?}",
        bytes as f64 / 1e6,
        bytes as f64 * 4.0 / 3.0 / 1e6,
        run.took
    );
    assert_nothing_left(kube, "a big report");
}

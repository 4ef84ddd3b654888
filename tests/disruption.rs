//! `pod-delete` and `node-drain` against the local control plane (upstream kube-apiserver,
//! controller-manager with the StatefulSet, PV and disruption controllers, scheduler; kwok's
//! nodes and pods): what needs no process (UIDs, claims and volumes, nodes, budgets, cordon and
//! uncordon) is real. Each scenario passes, or fails or is refused for its own reason; the
//! node is never left cordoned, even after SIGTERM; after SIGKILL `attest cleanup` finds it.
//! Needs the binaries of `scripts/kube-build` (ATTEST_KUBE_BIN).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use attest_sandbox::kube::{self, KubeOptions, KubeTestbed, PostgresTarget};
use common::{Attest, Output};

/// Two kwok nodes of their own (label `pool=dis`), so the stories' pods on k3s-worker-0x are
/// never in the way, and a StatefulSet with a claim on an NFS volume (no node affinity).
const WORKLOADS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: dis}
---
apiVersion: v1
kind: Node
metadata:
  name: dis-node-1
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/hostname: dis-node-1, pool: dis, type: kwok}
status:
  allocatable: {cpu: "4", memory: 15Gi, pods: "110"}
  capacity: {cpu: "4", memory: 16Gi, pods: "110"}
---
apiVersion: v1
kind: Node
metadata:
  name: dis-node-2
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {kubernetes.io/hostname: dis-node-2, pool: dis, type: kwok}
status:
  allocatable: {cpu: "4", memory: 15Gi, pods: "110"}
  capacity: {cpu: "4", memory: 16Gi, pods: "110"}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-pg}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  claimRef: {apiVersion: v1, kind: PersistentVolumeClaim, namespace: dis, name: data-pg-0}
  nfs: {server: nas.invalid, path: /volume1/k8s/dis-data-pg-0}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: pg, namespace: dis}
spec:
  replicas: 1
  serviceName: pg
  selector: {matchLabels: {app: pg}}
  template:
    metadata: {labels: {app: pg}}
    spec:
      nodeSelector: {pool: dis}
      terminationGracePeriodSeconds: 1
      containers: [{name: postgresql, image: docker.io/bitnami/postgresql:18.1.0}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: manual
      resources: {requests: {storage: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: bare, namespace: dis}
spec:
  nodeName: k3s-worker-01
  containers: [{name: c, image: busybox}]
"#;

/// A claim on a local-path volume: node affinity pins it (and its pod) to dis-node-1.
const LOCAL_PATH: &str = r#"
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv-local}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: local-path
  claimRef: {apiVersion: v1, kind: PersistentVolumeClaim, namespace: dis, name: data-lp-0}
  hostPath: {path: /var/lib/rancher/k3s/storage/pvc-local_dis_data-lp-0, type: DirectoryOrCreate}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [dis-node-1]}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: lp, namespace: dis}
spec:
  replicas: 1
  serviceName: lp
  selector: {matchLabels: {app: lp}}
  template:
    metadata: {labels: {app: lp}}
    spec:
      nodeSelector: {pool: dis}
      containers: [{name: c, image: busybox}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: local-path
      resources: {requests: {storage: 1Gi}}
"#;

const BUDGET: &str = r#"
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: pg, namespace: dis}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: pg}}
"#;

fn start() -> KubeTestbed {
    let bin_dir = kube::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    // Nothing here connects to PostgreSQL: the Secrets only need some password.
    let target = PostgresTarget {
        host: "127.0.0.1".into(),
        port: 9,
        superuser_password: "unused-pw".into(),
        paperless_password: "unused-pw".into(),
        bin_dir: None,
    };
    KubeTestbed::start(KubeOptions::new(bin_dir, target))
        .unwrap_or_else(|e| panic!("the testbed did not start: {e}"))
}

fn kubectl(kube: &KubeTestbed, args: &[&str]) -> String {
    kube.kubectl_output(args).unwrap_or_else(|e| panic!("{e}"))
}

fn apply(kube: &KubeTestbed, yaml: &str) {
    static APPLIED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = APPLIED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = kube.dir().join(format!("apply-{n}.yaml"));
    std::fs::write(&file, yaml).unwrap();
    kubectl(kube, &["apply", "-f", file.to_str().unwrap()]);
}

fn eventually<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// (uid, node) of a Ready pod `name` in dis, other than `not_uid`.
fn ready_pod(kube: &KubeTestbed, name: &str, not_uid: &str) -> (String, String) {
    eventually(
        &format!("pod {name} Ready"),
        Duration::from_secs(60),
        || {
            let out = kube
            .kubectl_output(&[
                "get", "pod", name, "-n", "dis", "-o",
                "jsonpath={.metadata.uid} {.spec.nodeName} {.status.conditions[?(@.type==\"Ready\")].status} {.metadata.deletionTimestamp}",
            ])
            .ok()?;
            let parts: Vec<&str> = out.split_whitespace().collect();
            match parts.as_slice() {
                [uid, node, "True"] if *uid != not_uid => Some((uid.to_string(), node.to_string())),
                _ => None,
            }
        },
    )
}

fn unschedulable(kube: &KubeTestbed, node: &str) -> bool {
    kubectl(
        kube,
        &["get", "node", node, "-o", "jsonpath={.spec.unschedulable}"],
    )
    .trim()
        == "true"
}

fn mark(kube: &KubeTestbed, node: &str) -> String {
    kubectl(
        kube,
        &[
            "get",
            "node",
            node,
            "-o",
            "jsonpath={.metadata.annotations.attest\\.dev/cordoned-by}",
        ],
    )
}

fn other(node: &str) -> &'static str {
    if node == "dis-node-1" {
        "dis-node-2"
    } else {
        "dis-node-1"
    }
}

fn attest(kubeconfig: &Path, suite: &str) -> Attest {
    Attest::new().suite("d", suite).args(&[
        "run",
        "--allow-destructive",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ])
}

fn run(kubeconfig: &Path, suite: &str) -> Output {
    let out = attest(kubeconfig, suite).run();
    // API requests of the whole run (preflight and discovery included), for the record.
    let checks: Vec<String> = out.json()["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{} {}",
                r["check"].as_str().unwrap_or(""),
                r["status"].as_str().unwrap_or("")
            )
        })
        .collect();
    eprintln!(
        "API requests: {} for [{}]",
        requests(&out),
        checks.join(", ")
    );
    out
}

fn drain_suite(timeout: &str) -> String {
    format!(
        r#"id: d
title: drain
checks:
  - id: drain
    title: the PostgreSQL pod's node is drained, the pod comes back elsewhere with its claim
    timeout: {timeout}
    register: moved
    node-drain:
      pod: {{namespace: dis, name: pg-0}}
"#
    )
}

/// The API requests a run made (report.json's environment), for the report.
fn requests(out: &Output) -> String {
    out.json()["environment"]["kubernetes API requests"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| out.json()["environment"].to_string())
}

#[test]
fn pod_delete_and_node_drain_against_the_control_plane() {
    let kube = start();
    let config = kube.kubeconfig().to_path_buf();
    apply(&kube, WORKLOADS);
    let (uid0, node0) = ready_pod(&kube, "pg-0", "");
    let volume = kubectl(
        &kube,
        &[
            "get",
            "pvc",
            "data-pg-0",
            "-n",
            "dis",
            "-o",
            "jsonpath={.spec.volumeName}",
        ],
    );
    assert_eq!(volume, "pv-pg");

    // pod-delete: a new UID, the same claim on the same volume, deletion to Ready measured.
    let cnpg_uid = kubectl(
        &kube,
        &[
            "get",
            "cluster.postgresql.cnpg.io",
            "paperless-ngx-db",
            "-n",
            "paperless-ngx",
            "-o",
            "jsonpath={.metadata.uid}",
        ],
    );
    apply(
        &kube,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata:
  name: operator-owned
  namespace: paperless-ngx
  ownerReferences: [{{apiVersion: postgresql.cnpg.io/v1, kind: Cluster, name: paperless-ngx-db, uid: "{cnpg_uid}", controller: true}}]
spec:
  nodeName: k3s-worker-02
  containers: [{{name: c, image: busybox}}]
"#
        ),
    );
    eventually("operator-owned Running", Duration::from_secs(30), || {
        (kubectl(
            &kube,
            &[
                "get",
                "pod",
                "operator-owned",
                "-n",
                "paperless-ngx",
                "-o",
                "jsonpath={.status.phase}",
            ],
        ) == "Running")
            .then_some(())
    });
    let out = run(
        &config,
        r#"id: d
title: pod-delete
checks:
  - id: delete
    title: the PostgreSQL pod is deleted and comes back with its claim
    timeout: 60s
    register: pg
    pod-delete:
      pod: {namespace: dis, selector: app=pg}
      grace_period: 0
  - id: registered
    title: the new pod is the one registered
    kube:
      apiVersion: v1
      kind: Pod
      namespace: dis
      name: "${pg_name}"
      fieldSelector: "spec.nodeName=${pg_node}"
  - id: delete-registered
    title: the pod a registered name names is deleted again
    timeout: 60s
    pod-delete:
      pod: {namespace: dis, name: "${pg_name}"}
      grace_period: 0
  - id: bare
    title: a pod without a controller
    pod-delete:
      pod: {namespace: dis, name: bare}
  - id: never-back
    title: a pod whose owner never recreates it (no operator runs here)
    timeout: 4s
    pod-delete:
      pod: {namespace: paperless-ngx, name: operator-owned}
      grace_period: 0
"#,
    );
    out.assert_passed(&["delete", "registered", "delete-registered"]);
    let result = out.expect(
        "delete",
        "passed",
        &format!("deleted pod dis/pg-0 (uid {uid0} on {node0})"),
    );
    let message = result["message"].as_str().unwrap();
    assert!(
        message.contains("claims: data-pg-0 → pv-pg (same volumes)"),
        "{message}"
    );
    assert!(
        result["measurements"]["ready_after_ms"].as_f64().unwrap() > 0.0,
        "{result:#}"
    );
    let (uid1, node1) = ready_pod(&kube, "pg-0", "");
    assert_ne!(uid1, uid0);
    let again = out.result("delete-registered");
    let again = again["message"].as_str().unwrap();
    assert!(again.contains(&format!("(uid {uid1})")), "{again}");
    let between = message
        .split("replacement pod dis/pg-0 (uid ")
        .nth(1)
        .unwrap();
    let between = &between[..between.find(')').unwrap()];
    assert!(
        again.starts_with(&format!("deleted pod dis/pg-0 (uid {between} ")),
        "{again}"
    );
    out.expect("bare", "failed", "refused: pod dis/bare");
    out.expect("bare", "failed", "has no controller (no owner at all)");
    kubectl(&kube, &["get", "pod", "bare", "-n", "dis"]);
    out.expect("never-back", "failed", "no replacement pod within");
    out.expect(
        "never-back",
        "failed",
        "(Cluster paperless-ngx-db); last: no new pod of Cluster paperless-ngx-db",
    );

    // node-drain: the pod moves to the other node, with its claim; the node is uncordoned;
    // every other pod it evicted is named.
    apply(
        &kube,
        &format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: side, namespace: dis}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: side}}}}
  template:
    metadata: {{labels: {{app: side}}}}
    spec:
      nodeSelector: {{kubernetes.io/hostname: {node1}}}
      containers: [{{name: c, image: busybox}}]
"#
        ),
    );
    eventually("the side pod Running", Duration::from_secs(30), || {
        (kubectl(
            &kube,
            &[
                "get",
                "pods",
                "-n",
                "dis",
                "-l",
                "app=side",
                "-o",
                "jsonpath={.items[*].status.phase}",
            ],
        ) == "Running")
            .then_some(())
    });
    let out = run(&config, &drain_suite("60s"));
    let result = out.expect(
        "drain",
        "passed",
        &format!("evicted pod dis/pg-0 (uid {uid1} on {node1})"),
    );
    let (uid2, node2) = ready_pod(&kube, "pg-0", &uid1);
    assert_eq!(node2, other(&node1), "{result:#}");
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .contains(&format!("node {node1} uncordoned")),
        "{result:#}"
    );
    assert!(
        result["found"]
            .as_str()
            .unwrap()
            .contains(&format!("drain of {node1}: evicts dis/pg-0")),
        "{result:#}"
    );
    assert!(
        result["message"]
            .as_str()
            .unwrap()
            .contains(&format!("also evicted from {node1}: dis/side-")),
        "{result:#}"
    );
    assert!(!unschedulable(&kube, &node1));
    assert_eq!(mark(&kube, &node1), "");
    kubectl(&kube, &["delete", "deployment", "side", "-n", "dis"]);

    // A node cordoned before the run is drained, and stays cordoned.
    kubectl(&kube, &["cordon", &node2]);
    let out = run(&config, &drain_suite("60s"));
    out.expect(
        "drain",
        "passed",
        &format!("node {node2} was cordoned before the run and stays cordoned"),
    );
    assert!(unschedulable(&kube, &node2));
    kubectl(&kube, &["uncordon", &node2]);
    let (uid3, node3) = ready_pod(&kube, "pg-0", &uid2);
    assert_eq!(node3, node1);

    // A single schedulable node: refused before the cordon.
    kubectl(&kube, &["cordon", other(&node3)]);
    let out = run(&config, &drain_suite("20s"));
    out.expect(
        "drain",
        "failed",
        &format!("refused to drain node {node3}: no other schedulable node could take dis/pg-0"),
    );
    out.expect("drain", "failed", &format!("{} (cordoned)", other(&node3)));
    out.expect("drain", "failed", "nothing was cordoned or evicted");
    assert!(!unschedulable(&kube, &node3));
    kubectl(&kube, &["uncordon", other(&node3)]);
    assert_eq!(ready_pod(&kube, "pg-0", "").0, uid3);

    // A budget that allows no disruption: the verdict names it within the timeout; uncordoned.
    apply(&kube, BUDGET);
    eventually("the budget's status", Duration::from_secs(30), || {
        (kubectl(
            &kube,
            &[
                "get",
                "pdb",
                "pg",
                "-n",
                "dis",
                "-o",
                "jsonpath={.status.currentHealthy}",
            ],
        ) == "1")
            .then_some(())
    });
    let started = Instant::now();
    let out = run(&config, &drain_suite("6s"));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    out.expect("drain", "failed", "blocked by PodDisruptionBudget dis/pg (0 disruptions allowed): dis/pg-0 could not be evicted");
    out.expect("drain", "failed", &format!("node {node3} uncordoned"));
    assert!(!unschedulable(&kube, &node3));
    assert_eq!(ready_pod(&kube, "pg-0", "").0, uid3);

    // SIGTERM and Ctrl-C in the middle of a drain: uncordoned, reports written.
    for (signal, code) in [("TERM", 143), ("INT", 130)] {
        let running = attest(&config, &drain_suite("120s")).spawn();
        eventually("the cordon", Duration::from_secs(30), || {
            unschedulable(&kube, &node3).then_some(())
        });
        std::thread::sleep(Duration::from_millis(500));
        assert!(common::signal(running.id(), signal));
        let out = running.wait();
        out.assert_code(code);
        out.expect("drain", "error", "interrupted while running");
        assert!(out.report("report.md").contains("INTERRUPTED"));
        assert!(
            !unschedulable(&kube, &node3),
            "SIG{signal} left {node3} cordoned"
        );
        assert_eq!(mark(&kube, &node3), "");
    }

    // SIGKILL: nothing can run; `attest cleanup` finds the node and uncordons it.
    let running = attest(&config, &drain_suite("120s")).spawn();
    eventually("the cordon", Duration::from_secs(30), || {
        unschedulable(&kube, &node3).then_some(())
    });
    assert!(common::signal(running.id(), "KILL"));
    running.wait();
    assert!(unschedulable(&kube, &node3));
    assert!(mark(&kube, &node3).starts_with("attest-run "));
    let cleanup = |drop: bool| {
        let mut args = vec!["cleanup", "--kubeconfig", config.to_str().unwrap()];
        if drop {
            args.push("--drop");
        }
        Attest::new().args(&args).run()
    };
    let listed = cleanup(false);
    listed.assert_code(1);
    assert!(
        listed
            .stdout
            .contains(&format!("node {node3} (cordoned; attest-run ")),
        "{}",
        listed.stdout
    );
    assert!(unschedulable(&kube, &node3));
    let dropped = cleanup(true);
    dropped.assert_code(0);
    assert!(
        dropped.stderr.contains(&format!("uncordoned node {node3}")),
        "{}",
        dropped.stderr
    );
    assert!(!unschedulable(&kube, &node3));
    cleanup(false).assert_code(0);
    kubectl(&kube, &["delete", "pdb", "pg", "-n", "dis"]);

    // A volume pinned to its node (local-path): refused before the cordon, the volume named.
    apply(&kube, LOCAL_PATH);
    let (_, lp_node) = ready_pod(&kube, "lp-0", "");
    assert_eq!(lp_node, "dis-node-1");
    let out = run(&config, "id: d\ntitle: t\nchecks:\n  - id: drain\n    title: t\n    node-drain: {pod: {namespace: dis, name: lp-0}}\n");
    out.expect("drain", "failed", "refused to drain node dis-node-1: volume pv-local (claim data-lp-0) is pinned to this node by its node affinity kubernetes.io/hostname In [dis-node-1]");
    assert!(!unschedulable(&kube, "dis-node-1"));
    kubectl(&kube, &["delete", "statefulset", "lp", "-n", "dis"]);

    // Missing permissions: each named, before anything is deleted or cordoned.
    let restricted = kube
        .restricted_kubeconfig("dis", "reader", "get,list", "pods")
        .unwrap();
    let out = run(
        &restricted,
        r#"id: d
title: t
checks:
  - id: delete
    title: t
    pod-delete: {pod: {namespace: dis, name: pg-0}}
  - id: drain
    title: t
    node-drain: {pod: {namespace: dis, name: pg-0}}
"#,
    );
    out.expect("delete", "error", "missing permission: get persistentvolumeclaims in namespace dis, get persistentvolumes cluster-wide, get statefulsets in namespace dis");
    out.expect("delete", "error", "delete pods pg-0 in namespace dis");
    out.expect("drain", "error", "get nodes cluster-wide, list nodes cluster-wide, patch nodes cluster-wide, list pods cluster-wide, create pods/eviction cluster-wide, list poddisruptionbudgets cluster-wide");
    assert_eq!(ready_pod(&kube, "pg-0", "").0, uid3);
    assert!(!unschedulable(&kube, &node3));

    kube.stop().unwrap();
}

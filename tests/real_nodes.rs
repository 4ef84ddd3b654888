//! The testbed's real nodes (crates/attest-sandbox/src/kube/nodes.rs): kubelets with their own
//! containerds, running real containers from the images of `scripts/node-images`.
//!
//! Needs root, the binaries of `scripts/kube-build`, the images of `scripts/node-images`,
//! Debian's containerd, runc and containernetworking-plugins (scripts/test installs them), and
//! a network namespace of its own, because the nodes add links and iptables chains to theirs:
//!   unshare --net sh -c 'ip link set lo up && exec cargo test --offline --test real_nodes'
//! Without any of these each test fails, naming the missing piece. Every test checks at the
//! end that no process, cgroup, mount, link or folder of its testbed is left.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use attest_sandbox::kube::{self, nodes, KubeOptions, KubeTestbed, PostgresTarget};
use common::testbed::{eventually, stories_postgres_ready, Bed};

const PASSWORD: &str = "Sup3r-secret";

/// One set of real nodes at a time in the tests' network namespace (their addresses are
/// fixed); under nextest, .config/nextest.toml runs these tests one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Resident memory (MiB) of the nodes' processes: kubelets, containerds, shims, containers.
fn nodes_memory(kube: &KubeTestbed) -> u64 {
    memory(kube, kube.nodes().unwrap().dir())
}

/// Resident memory (MiB) of the processes naming `dir` and of the nodes' containers.
fn memory(kube: &KubeTestbed, dir: &Path) -> u64 {
    let mut pids: Vec<String> = kube::processes_in(dir)
        .iter()
        .filter_map(|p| p.split(' ').next().map(str::to_owned))
        .collect();
    for entry in std::fs::read_dir("/sys/fs/cgroup/memory")
        .into_iter()
        .flatten()
        .flatten()
    {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(&format!("attest-{}-", kube.name()))
        {
            let out = Command::new("find")
                .arg(entry.path())
                .args(["-name", "cgroup.procs", "-exec", "cat", "{}", "+"])
                .output()
                .unwrap();
            pids.extend(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .map(str::to_owned),
            );
        }
    }
    pids.sort();
    pids.dedup();
    let kib: u64 = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .sum();
    kib / 1024
}

fn assert_clean(dir: &Path, name: &str) {
    let left = kube::processes_in(dir);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    assert!(!dir.exists(), "{} is left behind", dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let needle = dir.display().to_string();
    let left: Vec<&str> = mounts.lines().filter(|l| l.contains(&needle)).collect();
    assert!(left.is_empty(), "mounts left behind: {left:?}");
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        for i in 1..=2 {
            let cgroup = entry.path().join(format!("attest-{name}-{i}"));
            assert!(!cgroup.exists(), "{} is left behind", cgroup.display());
        }
    }
    let links = std::process::Command::new("ip")
        .args(["-o", "link"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&links.stdout);
    assert!(
        !links.contains("attest-rn") && !links.contains("attest-br"),
        "links left behind:\n{links}"
    );
    let shims = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|p| std::fs::read(p.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("containerd-shim") && c.contains(&needle))
        .collect::<Vec<_>>();
    assert!(shims.is_empty(), "shims left behind: {shims:?}");
    let proxies: Vec<String> = kube::processes_in(dir)
        .into_iter()
        .filter(|p| p.contains("kube-proxy"))
        .collect();
    assert!(proxies.is_empty(), "kube-proxy left behind: {proxies:?}");
    // kube-proxy's and kubelet's iptables chains, in this (the testbed's) namespace.
    for cmd in ["iptables-save", "ip6tables-save"] {
        let out = Command::new(cmd).output().unwrap();
        let rules = String::from_utf8_lossy(&out.stdout);
        let left: Vec<&str> = rules.lines().filter(|l| l.contains("KUBE-")).collect();
        assert!(left.is_empty(), "{cmd}: chains left behind: {left:?}");
    }
}

fn kubectl(kube: &KubeTestbed, args: &[&str]) -> String {
    kube.kubectl_output(args).unwrap_or_else(|e| panic!("{e}"))
}

fn run(kube: &KubeTestbed, args: &[&str]) -> Output {
    kube.kubectl().args(args).output().unwrap()
}

fn apply(kube: &KubeTestbed, yaml: &str) {
    let path = kube.dir().join(format!("apply-{}.yaml", rand_suffix()));
    std::fs::write(&path, yaml).unwrap();
    kubectl(kube, &["apply", "-f", &path.display().to_string()]);
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
}

const PROBE: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: probe
  namespace: default
spec:
  nodeSelector: {kubernetes.io/hostname: k3s-real-01}
  tolerations: [{key: attest.dev/real-node, operator: Exists, effect: NoSchedule}]
  terminationGracePeriodSeconds: 1
  containers:
  - name: probe
    image: attest.local/debian:bookworm
    imagePullPolicy: Never
    command: [sh, -c, 'echo "started as $(id -u) in $(hostname)"; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 1; done']
"#;

#[test]
fn a_pod_runs_on_a_real_node_with_real_exec_and_logs() {
    let _serial = serial();
    let bed = Bed::start_with_real_nodes(PASSWORD);
    let kube = bed.kube();

    // Both real nodes registered, Ready, with their addresses inside the namespace, the real
    // runtime, and the kwok nodes still there.
    let nodes = kubectl(
        kube,
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.addresses[?(@.type==\"InternalIP\")].address} {.status.nodeInfo.containerRuntimeVersion} {.metadata.labels.node\\.kubernetes\\.io/instance-type}{\"\\n\"}{end}",
        ],
    );
    eprintln!("{nodes}");
    for (name, ip) in [("k3s-real-01", "100.64.0.1"), ("k3s-real-02", "100.64.0.2")] {
        let line = nodes
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{nodes}"));
        assert!(line.contains(ip), "{line}");
        assert!(line.contains("containerd://1."), "{line}");
        assert!(line.ends_with(" k3s"), "{line}");
    }
    assert!(nodes.contains("k3s-worker-01"), "{nodes}");

    let clock = Instant::now();
    apply(kube, PROBE);
    let pod = ["get", "pod", "probe", "-n", "default"];
    let ip = eventually("the probe pod Ready", Duration::from_secs(60), || {
        let out = kube.kubectl_output(
            &[
                &pod[..],
                &[
                    "-o",
                    "jsonpath={.status.phase} {.status.containerStatuses[0].ready} {.status.podIP} {.spec.nodeName}",
                ],
            ]
            .concat(),
        )?;
        match out.split(' ').collect::<Vec<_>>()[..] {
            ["Running", "true", ip, "k3s-real-01"] => Ok(ip.to_owned()),
            _ => Err(out),
        }
    });
    assert!(ip.starts_with("100.65.1."), "pod IP {ip}");
    eprintln!("probe pod Ready in {:?}", clock.elapsed());

    // exec: real output from inside the container, and its real exit code.
    let out = run(
        kube,
        &[
            "exec",
            "probe",
            "-n",
            "default",
            "--",
            "sh",
            "-c",
            "cat /etc/debian_version; hostname; tr '\\0' ' ' </proc/1/cmdline; echo; exit 7",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "{out:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("12."), "{stdout}");
    assert_eq!(lines[1], "probe", "{stdout}");
    assert!(lines[2].starts_with("sh -c echo"), "{stdout}");
    let out = run(kube, &["exec", "probe", "-n", "default", "--", "true"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = run(
        kube,
        &["exec", "probe", "-n", "default", "--", "/no/such/binary"],
    );
    assert_ne!(out.status.code(), Some(0), "{out:?}");

    // logs: what the container printed, through the API and the kubelet.
    let logs = eventually("two ticks in the logs", Duration::from_secs(20), || {
        let logs = kube.kubectl_output(&["logs", "probe", "-n", "default"])?;
        match logs.contains("tick 2") {
            true => Ok(logs),
            false => Err(logs),
        }
    });
    assert!(
        logs.starts_with("started as 0 in probe\ntick 1\n"),
        "{logs}"
    );
    eprintln!(
        "memory of the nodes with one pod: {} MiB; of the whole testbed: {} MiB",
        nodes_memory(kube),
        memory(kube, kube.dir())
    );

    // An image no node has (and no registry to pull from): a clear reason on the pod, soon.
    apply(
        kube,
        &PROBE
            .replace("name: probe", "name: missing")
            .replace("attest.local/debian:bookworm", "attest.local/none:1")
            .replace("imagePullPolicy: Never", "imagePullPolicy: IfNotPresent"),
    );
    let reason = eventually(
        "the missing image's reason",
        Duration::from_secs(60),
        || {
            let out = kube.kubectl_output(&[
                "get",
                "pod",
                "missing",
                "-n",
                "default",
                "-o",
                "jsonpath={.status.containerStatuses[0].state.waiting.reason}",
            ])?;
            match out.as_str() {
                "ErrImagePull" | "ImagePullBackOff" => Ok(out),
                _ => Err(out),
            }
        },
    );
    eprintln!("missing image: {reason}");
    kubectl(
        kube,
        &["delete", "pod", "missing", "-n", "default", "--wait=false"],
    );

    let clock = Instant::now();
    kubectl(
        kube,
        &["delete", "pod", "probe", "-n", "default", "--wait=true"],
    );
    eprintln!("pod deleted in {:?}", clock.elapsed());
    let clock = Instant::now();
    let (dir, name) = bed.stop();
    assert_clean(&dir, &name);
    eprintln!("testbed stopped in {:?}", clock.elapsed());
}

/// A StatefulSet shaped as the stories' Bitnami one (same image reference, PGDATA, uid 1001,
/// read-only root, emptyDir mounts), on the real nodes only, its claim bound to a volume both
/// nodes can mount: a host folder (hostPath), as both nodes run on this machine.
fn postgres_manifests(volume: &Path) -> String {
    format!(
        r#"apiVersion: v1
kind: Namespace
metadata: {{name: realpg}}
---
apiVersion: v1
kind: Secret
metadata: {{name: pg, namespace: realpg}}
stringData: {{postgres-password: "{PASSWORD}"}}
---
apiVersion: v1
kind: PersistentVolume
metadata: {{name: realpg-data}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: real-shared
  claimRef: {{namespace: realpg, name: data-pg-0}}
  hostPath: {{path: "{volume}", type: Directory}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: pg, namespace: realpg}}
spec:
  replicas: 1
  serviceName: pg
  selector: {{matchLabels: {{app: pg}}}}
  template:
    metadata: {{labels: {{app: pg}}}}
    spec:
      nodeSelector: {{type: real}}
      tolerations: [{{key: attest.dev/real-node, operator: Exists, effect: NoSchedule}}]
      terminationGracePeriodSeconds: 10
      securityContext: {{fsGroup: 1001}}
      containers:
      - name: postgresql
        image: registry-1.docker.io/bitnami/postgresql:latest
        imagePullPolicy: IfNotPresent
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {{drop: [ALL]}}
          readOnlyRootFilesystem: true
          runAsGroup: 1001
          runAsNonRoot: true
          runAsUser: 1001
          seccompProfile: {{type: RuntimeDefault}}
        env:
        - {{name: POSTGRESQL_PORT_NUMBER, value: "5432"}}
        - {{name: POSTGRESQL_VOLUME_DIR, value: /bitnami/postgresql}}
        - {{name: PGDATA, value: /bitnami/postgresql/data}}
        - name: POSTGRES_PASSWORD
          valueFrom: {{secretKeyRef: {{name: pg, key: postgres-password}}}}
        - {{name: POSTGRESQL_SHARED_PRELOAD_LIBRARIES, value: pgaudit}}
        ports: [{{name: tcp-postgresql, containerPort: 5432}}]
        readinessProbe:
          periodSeconds: 1
          exec: {{command: [/bin/sh, -c, -e, 'exec pg_isready -U "postgres" -h 127.0.0.1 -p 5432']}}
        volumeMounts:
        - {{name: empty-dir, mountPath: /tmp, subPath: tmp-dir}}
        - {{name: empty-dir, mountPath: /opt/bitnami/postgresql/conf, subPath: app-conf-dir}}
        - {{name: empty-dir, mountPath: /opt/bitnami/postgresql/tmp, subPath: app-tmp-dir}}
        - {{name: data, mountPath: /bitnami/postgresql}}
      volumes:
      - {{name: empty-dir, emptyDir: {{}}}}
  volumeClaimTemplates:
  - metadata: {{name: data}}
    spec:
      accessModes: [ReadWriteOnce]
      storageClassName: real-shared
      resources: {{requests: {{storage: 1Gi}}}}
"#,
        volume = volume.display()
    )
}

/// `kubectl port-forward` to loopback: (process, local port).
fn port_forward(kube: &KubeTestbed, namespace: &str, target: &str, port: u16) -> (Child, u16) {
    let mut child = kube
        .kubectl()
        .args(["port-forward", "-n", namespace, target])
        .arg(format!(":{port}"))
        .args(["--address", "127.0.0.1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // Keep reading: kubectl prints a line per connection.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let local = line
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected port-forward output: {line}"));
    (child, local)
}

/// A real session through a port-forward to the pod: psql's output for `sql`.
fn psql(kube: &KubeTestbed, psql: &Path, sql: &str) -> Result<String, String> {
    let (mut forward, port) = port_forward(kube, "realpg", "pod/pg-0", 5432);
    let out = Command::new(psql)
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .arg(format!(
            "host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=5"
        ))
        .env("PGPASSWORD", PASSWORD)
        .output()
        .map_err(|e| e.to_string());
    let _ = forward.kill();
    let _ = forward.wait();
    let out = out?;
    match out.status.success() {
        true => Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned()),
        false => Err(String::from_utf8_lossy(&out.stderr).into_owned()),
    }
}

/// (uid, node) of pg-0 once it is Running and ready.
fn pg_ready(kube: &KubeTestbed, not_uid: &str) -> (String, String) {
    eventually("pg-0 Running and ready", Duration::from_secs(90), || {
        let out = kube.kubectl_output(&[
            "get",
            "pod",
            "pg-0",
            "-n",
            "realpg",
            "-o",
            "jsonpath={.metadata.uid} {.status.phase} {.status.containerStatuses[0].ready} {.spec.nodeName}",
        ])?;
        match out.split(' ').collect::<Vec<_>>()[..] {
            [uid, "Running", "true", node] if uid != not_uid => {
                Ok((uid.to_owned(), node.to_owned()))
            }
            _ => Err(out),
        }
    })
}

#[test]
fn postgres_keeps_its_rows_across_a_pod_delete_and_a_drain_to_the_other_node() {
    let _serial = serial();
    let bed = Bed::start_with_real_nodes(PASSWORD);
    let kube = bed.kube();
    let psql_bin = bed.postgres().bin_dir().join("psql");

    let volume = kube.dir().join("nodes/shared/realpg-data");
    std::fs::create_dir_all(&volume).unwrap();
    std::os::unix::fs::chown(&volume, Some(1001), Some(1001)).unwrap();
    apply(kube, &postgres_manifests(&volume));
    let clock = Instant::now();
    let (uid, node) = pg_ready(kube, "");
    eprintln!("pg-0 ready on {node} in {:?}", clock.elapsed());
    eprintln!(
        "memory of the nodes with PostgreSQL: {} MiB",
        nodes_memory(kube)
    );
    assert!(node.starts_with("k3s-real-"), "{node}");
    // The Bitnami layout, made by a real initdb in the container, on the host folder.
    for sub in ["pg_wal", "base", "global"] {
        assert!(volume.join("data").join(sub).is_dir(), "no PGDATA/{sub}");
    }
    let row = format!("row-{}", rand_suffix());
    let out = psql(
        kube,
        &psql_bin,
        &format!(
            "CREATE TABLE kept (v text); INSERT INTO kept VALUES ('{row}'); SELECT version();"
        ),
    )
    .unwrap();
    assert!(out.contains("PostgreSQL 15."), "{out}");

    // Delete the pod: the StatefulSet controller makes a new one (new UID), on the same claim.
    kubectl(
        kube,
        &["delete", "pod", "pg-0", "-n", "realpg", "--wait=false"],
    );
    let clock = Instant::now();
    let (uid2, node2) = pg_ready(kube, &uid);
    eprintln!("pg-0 back ({uid2}) on {node2} in {:?}", clock.elapsed());
    let claim = kubectl(
        kube,
        &[
            "get",
            "pod",
            "pg-0",
            "-n",
            "realpg",
            "-o",
            "jsonpath={.spec.volumes[?(@.name==\"data\")].persistentVolumeClaim.claimName}",
        ],
    );
    assert_eq!(claim, "data-pg-0");
    let read = eventually("the row after the delete", Duration::from_secs(30), || {
        psql(kube, &psql_bin, "SELECT v FROM kept")
    });
    assert_eq!(read, row);

    // Cordon and evict (drain): the pod comes up on the other real node, with its data.
    let clock = Instant::now();
    kubectl(
        kube,
        &[
            "drain",
            &node2,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=90s",
        ],
    );
    let (uid3, node3) = pg_ready(kube, &uid2);
    eprintln!("pg-0 moved ({uid3}) to {node3} in {:?}", clock.elapsed());
    assert_ne!(node3, node2);
    assert!(node3.starts_with("k3s-real-"), "{node3}");
    let read = eventually("the row after the drain", Duration::from_secs(30), || {
        psql(kube, &psql_bin, "SELECT v FROM kept")
    });
    assert_eq!(read, row);

    // Pod networking across the nodes: a pod on the drained node (uncordoned) reaches
    // PostgreSQL's pod IP on the other node over the CNI bridges.
    kubectl(kube, &["uncordon", &node2]);
    apply(
        kube,
        &PROBE.replace(
            "kubernetes.io/hostname: k3s-real-01",
            &format!("kubernetes.io/hostname: {node2}"),
        ),
    );
    let pg_ip = kubectl(
        kube,
        &[
            "get",
            "pod",
            "pg-0",
            "-n",
            "realpg",
            "-o",
            "jsonpath={.status.podIP}",
        ],
    );
    let connect = format!("exec 3<>/dev/tcp/{pg_ip}/5432 && echo connected");
    let out = eventually(
        "a connection from the other node's pod",
        Duration::from_secs(60),
        || {
            let out = run(
                kube,
                &[
                    "exec", "probe", "-n", "default", "--", "bash", "-c", &connect,
                ],
            );
            match out.status.success() {
                true => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
                false => Err(format!("{out:?}")),
            }
        },
    );
    assert_eq!(out.trim(), "connected");

    let (dir, name) = bed.stop();
    assert_clean(&dir, &name);
}

/// Story 5.2's disruptions done by attest itself on the real nodes: `pod-delete` and
/// `node-drain` between a sentinel's write and its verify, with a real PostgreSQL restarted in a
/// new container on the same volume; and the same PostgreSQL with its data on an `emptyDir`,
/// whose verify fails because the sentinel is gone.
#[test]
fn attest_deletes_and_drains_postgres_on_real_nodes_and_the_sentinel_survives_only_on_its_volume() {
    let _serial = serial();
    let bed = Bed::start_with_real_nodes(PASSWORD);
    let kube = bed.kube();
    let volume = kube.dir().join("nodes/shared/realpg-data");
    std::fs::create_dir_all(&volume).unwrap();
    std::os::unix::fs::chown(&volume, Some(1001), Some(1001)).unwrap();
    let manifests = postgres_manifests(&volume);
    // The same PostgreSQL with its data on an emptyDir: a new container starts from scratch.
    let sts = &manifests[manifests.find("apiVersion: apps/v1").unwrap()..];
    let ephemeral = sts[..sts.find("  volumeClaimTemplates:").unwrap()]
        .replace("name: pg, namespace", "name: eph, namespace")
        .replace("serviceName: pg", "serviceName: eph")
        .replace("app: pg", "app: eph")
        .replace(
            "      - {name: empty-dir, emptyDir: {}}\n",
            "      - {name: empty-dir, emptyDir: {}}\n      - {name: data, emptyDir: {}}\n",
        );
    let services = "---\napiVersion: v1\nkind: Service\nmetadata: {name: pg, namespace: realpg}\nspec: {selector: {app: pg}, ports: [{port: 5432, targetPort: 5432}]}\n---\napiVersion: v1\nkind: Service\nmetadata: {name: eph, namespace: realpg}\nspec: {selector: {app: eph}, ports: [{port: 5432, targetPort: 5432}]}\n";
    apply(kube, &format!("{manifests}---\n{ephemeral}{services}"));
    let (uid, node) = pg_ready(kube, "");
    eprintln!("pg-0 ready on {node}");
    let suite = r#"id: real
title: disruptions on real nodes
variables:
  pw: {secret: true, env: REAL_PG_PASSWORD}
checks:
  - id: write
    title: a sentinel on the claim's volume
    register: before
    timeout: 90s
    retry: {interval: 2s}
    pg-sentinel:
      connection: &pg {host: pg.realpg.svc.cluster.local, port: 5432, user: postgres, password: "${pw}", dbname: postgres, sslmode: disable, via: {port-forward: {namespace: realpg, service: pg}}}
      action: write
  - id: eph-write
    title: a sentinel on an emptyDir
    register: eph
    timeout: 90s
    retry: {interval: 2s}
    pg-sentinel:
      connection: &eph {host: eph.realpg.svc.cluster.local, port: 5432, user: postgres, password: "${pw}", dbname: postgres, sslmode: disable, via: {port-forward: {namespace: realpg, service: eph}}}
      action: write
  - id: eph-delete
    title: the emptyDir PostgreSQL's pod is deleted and comes back
    needs: [eph-write]
    timeout: 120s
    pod-delete: {pod: {namespace: realpg, name: eph-0}}
  - id: eph-gone
    title: its sentinel did not survive
    needs: [eph-delete]
    timeout: 40s
    retry: {interval: 2s}
    pg-sentinel: {connection: *eph, action: verify, token: "${eph_token}"}
  - id: delete
    title: the PostgreSQL pod is deleted and comes back on its claim
    needs: [write]
    register: deleted
    timeout: 120s
    pod-delete: {pod: {namespace: realpg, name: pg-0}}
  - id: intact-after-delete
    title: the sentinel survived the delete
    needs: [delete]
    timeout: 90s
    retry: {interval: 2s}
    pg-sentinel: {connection: *pg, action: verify, token: "${before_token}"}
  - id: drain
    title: its node is drained; it comes back on the other node
    needs: [intact-after-delete]
    register: drained
    timeout: 180s
    node-drain: {pod: {namespace: realpg, name: pg-0}, delete_emptydir_data: true}
  - id: intact-after-drain
    title: the sentinel survived the drain
    needs: [drain]
    timeout: 90s
    retry: {interval: 2s}
    pg-sentinel: {connection: *pg, action: verify, token: "${before_token}"}
"#;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("real.yaml"), suite).unwrap();
    let clock = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_attest"))
        .args(["run", "--allow-destructive", "--kubeconfig"])
        .arg(kube.kubeconfig())
        .arg("real.yaml")
        .current_dir(dir.path())
        .env("REAL_PG_PASSWORD", PASSWORD)
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    eprintln!("the suite took {:?}", clock.elapsed());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report = std::fs::read_to_string(dir.path().join("reports/report.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&report).unwrap();
    let result = |id: &str| -> (String, String) {
        let r = json["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["check"] == id)
            .unwrap_or_else(|| panic!("no {id}: {report}"));
        (
            r["status"].as_str().unwrap().to_owned(),
            r["message"].as_str().unwrap().to_owned(),
        )
    };
    for id in [
        "write",
        "eph-write",
        "eph-delete",
        "delete",
        "intact-after-delete",
        "drain",
        "intact-after-drain",
    ] {
        let (status, message) = result(id);
        eprintln!("{id}: {status}: {message}");
        assert_eq!(status, "passed", "{id}: {message}\n{stderr}");
    }
    let (status, message) = result("eph-gone");
    assert_eq!(status, "failed", "{message}");
    assert!(
        message.contains("is gone: the data did not survive"),
        "{message}"
    );
    let (_, deleted) = result("delete");
    assert!(
        deleted.contains(&format!("deleted pod realpg/pg-0 (uid {uid} on {node})")),
        "{deleted}"
    );
    assert!(
        deleted.contains("claims: data-pg-0 → realpg-data (same volumes)"),
        "{deleted}"
    );
    let (_, drained) = result("drain");
    let (uid3, node3) = pg_ready(kube, "");
    assert!(
        drained.contains(&format!("Ready on {node3} (was ")),
        "{drained}"
    );
    assert!(drained.contains("uncordoned"), "{drained}");
    assert_ne!(uid3, uid);
    let cordoned = kubectl(
        kube,
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[*].spec.unschedulable}",
        ],
    );
    assert!(
        !cordoned.contains("true"),
        "a node stayed cordoned: {cordoned}"
    );
    eprintln!(
        "API requests: {}",
        json["environment"]["kubernetes API requests"]
    );
    let (dir, name) = bed.stop();
    assert_clean(&dir, &name);
}

/// Client pods, one per real node, running as a ServiceAccount allowed to read pods in their
/// namespace, its token, CA and namespace projected where the ServiceAccount admission plugin
/// would put them (the testbed runs without admission plugins, so nothing adds them).
fn client_pods() -> String {
    let mut yaml = String::from(
        r#"apiVersion: v1
kind: Namespace
metadata: {name: podnet}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: client, namespace: podnet}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: read-pods, namespace: podnet}
rules: [{apiGroups: [""], resources: [pods], verbs: [get]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: client-reads-pods, namespace: podnet}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-pods}
subjects: [{kind: ServiceAccount, name: client, namespace: podnet}]
---
apiVersion: v1
kind: Service
metadata: {name: clients, namespace: podnet}
spec:
  selector: {app: client}
  ports: [{port: 5432}]
"#,
    );
    for (i, node) in nodes::NODE_NAMES.iter().enumerate() {
        yaml += &format!(
            r#"---
apiVersion: v1
kind: Pod
metadata: {{name: client-{n}, namespace: podnet, labels: {{app: client}}}}
spec:
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  tolerations: [{{key: attest.dev/real-node, operator: Exists, effect: NoSchedule}}]
  terminationGracePeriodSeconds: 1
  serviceAccountName: client
  containers:
  - name: client
    image: attest.local/postgresql:15
    imagePullPolicy: Never
    command: [sh, -c, 'trap "exit 0" TERM; while true; do sleep 1; done']
    volumeMounts:
    - {{name: sa, mountPath: /var/run/secrets/kubernetes.io/serviceaccount, readOnly: true}}
  volumes:
  - name: sa
    projected:
      sources:
      - serviceAccountToken: {{path: token, expirationSeconds: 3600}}
      - configMap: {{name: kube-root-ca.crt, items: [{{key: ca.crt, path: ca.crt}}]}}
      - downwardAPI: {{items: [{{path: namespace, fieldRef: {{fieldPath: metadata.namespace}}}}]}}
"#,
            n = i + 1,
        );
    }
    yaml
}

/// From inside a pod: a TCP connection to the `kubernetes` Service, then an HTTPS request
/// through it (certificate checked against the projected CA, for the Service's IP and name)
/// with the pod's own ServiceAccount token, reading the pod itself.
const API_FROM_POD: &str = r#"sa=/var/run/secrets/kubernetes.io/serviceaccount
echo "service $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT"
timeout 5 bash -c 'exec 3<>/dev/tcp/$KUBERNETES_SERVICE_HOST/$KUBERNETES_SERVICE_PORT' && echo "tcp connected"
printf 'GET /api/v1/namespaces/%s/pods/%s HTTP/1.1\r\nHost: kubernetes.default.svc\r\nAuthorization: Bearer %s\r\nAccept: application/json\r\nConnection: close\r\n\r\n' \
  "$(cat $sa/namespace)" "$(hostname)" "$(cat $sa/token)" |
  timeout 10 openssl s_client -quiet -connect "$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT" \
    -servername kubernetes.default.svc -verify_hostname kubernetes.default.svc \
    -verify_ip "$KUBERNETES_SERVICE_HOST" -CAfile $sa/ca.crt -verify_return_error 2>&1"#;

/// What a pod sees of the network, for failure messages: whether kube-proxy runs, its log, the
/// Service rules of the testbed's namespace.
fn network_state(kube: &KubeTestbed) -> String {
    let nodes = kube.nodes().unwrap();
    let nat = Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let services: Vec<&str> = nat
        .lines()
        .filter(|l| l.starts_with("-A KUBE-SERVICES"))
        .collect();
    let log = nodes.proxy_log();
    let tail: Vec<&str> = log.lines().rev().take(8).collect();
    format!(
        "kube-proxy: {}\nKUBE-SERVICES rules in the testbed's namespace: {}\n{}\nkube-proxy's log (last lines, newest first):\n{}",
        match nodes.proxy_pid() {
            Some(pid) => format!("running (pid {pid})"),
            None => "NOT RUNNING".to_owned(),
        },
        services.len(),
        services.join("\n"),
        tail.join("\n")
    )
}

fn exec_in(kube: &KubeTestbed, pod: &str, script: &str) -> Output {
    run(
        kube,
        &["exec", pod, "-n", "podnet", "--", "bash", "-c", script],
    )
}

#[test]
fn pods_on_real_nodes_reach_the_api_server_and_postgres_through_cluster_ips() {
    let _serial = serial();
    let bed = Bed::start_with_real_nodes(PASSWORD);
    let kube = bed.kube();
    let nodes = kube.nodes().unwrap();
    assert!(
        nodes.proxy_pid().is_some(),
        "kube-proxy does not run after the start:\n{}",
        network_state(kube)
    );

    // The `kubernetes` Service: a ClusterIP outside loopback, its endpoint the address the
    // apiserver advertises in the testbed's namespace.
    let api = kubectl(
        kube,
        &[
            "get",
            "service",
            "kubernetes",
            "-n",
            "default",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    );
    assert_eq!(api, nodes::API_SERVICE_IP);
    let endpoint = kubectl(
        kube,
        &[
            "get",
            "endpointslice",
            "kubernetes",
            "-n",
            "default",
            "-o",
            "jsonpath={.endpoints[*].addresses[*]}",
        ],
    );
    assert_eq!(endpoint, nodes::API_ADDRESS);
    // The stories' PostgreSQL (data/postgres-postgresql, on a real node) behind its Service.
    let (pg_ip, pg_node) = stories_postgres_ready(kube, Duration::from_secs(60));
    let pg_service = kubectl(
        kube,
        &[
            "get",
            "service",
            "postgres-postgresql",
            "-n",
            "data",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    );
    assert!(pg_service.starts_with("100.66."), "{pg_service}");
    eprintln!("PostgreSQL pod {pg_ip} on {pg_node}, Service {pg_service}");

    apply(kube, &client_pods());
    for i in 1..=2 {
        let pod = format!("client-{i}");
        eventually(&format!("{pod} Ready"), Duration::from_secs(60), || {
            let out = kube.kubectl_output(&[
                "get",
                "pod",
                &pod,
                "-n",
                "podnet",
                "-o",
                "jsonpath={.status.containerStatuses[0].ready}",
            ])?;
            match out.as_str() {
                "true" => Ok(()),
                _ => Err(out),
            }
        });
    }

    for i in 1..=2 {
        let pod = format!("client-{i}");
        let node = nodes::NODE_NAMES[i - 1];
        // (a) The API server, through the `kubernetes` Service, as the pod's ServiceAccount.
        let out = exec_in(kube, &pod, API_FROM_POD);
        let text = String::from_utf8_lossy(&out.stdout);
        let service = format!("service {}:443", nodes::API_SERVICE_IP);
        assert!(
            text.contains(&service) && text.contains("tcp connected"),
            "{pod} on {node} did not connect to the `kubernetes` Service:\n{text}{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            network_state(kube)
        );
        assert!(
            text.contains("HTTP/1.1 200 OK")
                && text.contains(r#""kind":"Pod""#)
                && text.contains(&format!(r#""name":"{pod}""#)),
            "{pod} on {node}: no authenticated answer from the API server through its Service:\n{text}\n{}",
            network_state(kube)
        );
        // (b) The stories' PostgreSQL, by its Service's ClusterIP, with the password of its
        // Secret: the server answering is the pod behind the Service.
        let script = format!(
            "pg_isready -h {pg_service} -p 5432 -t 10 && PGPASSWORD='{PASSWORD}' psql -h {pg_service} -p 5432 -U postgres -d postgres -XAt -c 'select host(inet_server_addr())'"
        );
        let out = exec_in(kube, &pod, &script);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("accepting connections"),
            "{pod} on {node}: PostgreSQL not reachable at its Service {pg_service}:\n{text}{}\n{}",
            String::from_utf8_lossy(&out.stderr),
            network_state(kube)
        );
        assert_eq!(
            text.lines().last(),
            Some(pg_ip.as_str()),
            "{pod} on {node}: {text}"
        );
        // (c) Names: the testbed's DNS (kubelet's clusterDNS) answers Services' ClusterIPs,
        // short names through the pod's search path, and a Service made after the start.
        let clients = kubectl(
            kube,
            &[
                "get",
                "service",
                "clients",
                "-n",
                "podnet",
                "-o",
                "jsonpath={.spec.clusterIP}",
            ],
        );
        let script = format!(
            "grep nameserver /etc/resolv.conf; getent hosts postgres-postgresql.data.svc.cluster.local; getent hosts kubernetes.default; for i in $(seq 1 20); do getent hosts clients && break; sleep 0.5; done; PGPASSWORD='{PASSWORD}' psql -h postgres-postgresql.data -U postgres -d postgres -XAt -c 'select 41 + 1'"
        );
        let out = exec_in(kube, &pod, &script);
        let text = String::from_utf8_lossy(&out.stdout);
        let dns = nodes
            .dns_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let expected = [
            format!("nameserver {dns}"),
            format!("{pg_service} postgres-postgresql.data.svc.cluster.local"),
            format!(
                "{} kubernetes.default.svc.cluster.local",
                nodes::API_SERVICE_IP
            ),
            format!("{clients} clients.podnet.svc.cluster.local"),
            "42".to_owned(),
        ];
        let lines: Vec<String> = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        assert_eq!(
            lines,
            expected,
            "{pod} on {node}: names through the testbed's DNS:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!(
            "{pod} on {node}: API server and PostgreSQL reached through their ClusterIPs and names"
        );
    }
    eprintln!(
        "memory of kube-proxy: {} MiB",
        nodes
            .proxy_pid()
            .and_then(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .unwrap_or(0)
            / 1024
    );

    // Without kube-proxy (stopped, its rules removed) the same ClusterIPs lead nowhere: what
    // the pods reached above was kube-proxy's doing.
    nodes.stop_proxy().unwrap();
    assert!(nodes.proxy_pid().is_none());
    let out = exec_in(
        kube,
        "client-1",
        &format!(
            "timeout 5 bash -c 'exec 3<>/dev/tcp/{}/443' && echo api; pg_isready -h {pg_service} -p 5432 -t 5 && echo pg; true",
            nodes::API_SERVICE_IP
        ),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !text.lines().any(|l| l == "api" || l == "pg"),
        "ClusterIPs still answer without kube-proxy:\n{text}"
    );
    let (dir, name) = bed.stop();
    assert_clean(&dir, &name);
}

/// Not a test on its own: `killed_testbed_leaves_no_node_behind` runs this in a child process,
/// which it then kills.
#[test]
#[ignore = "helper process for killed_testbed_leaves_no_node_behind"]
fn helper_start_real_nodes_and_wait_to_be_killed() {
    if std::env::var_os("ATTEST_REAL_NODES_HELPER").is_none() {
        return;
    }
    let bed = Bed::start_with_real_nodes(PASSWORD);
    let kube = bed.kube();
    apply(kube, PROBE);
    eventually("the probe pod Running", Duration::from_secs(60), || {
        let out = kube.kubectl_output(&[
            "get",
            "pod",
            "probe",
            "-n",
            "default",
            "-o",
            "jsonpath={.status.phase}",
        ])?;
        match out.as_str() {
            "Running" => Ok(()),
            _ => Err(out),
        }
    });
    println!("TESTBED {} {}", kube.dir().display(), kube.name());
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn killed_testbed_leaves_no_node_behind() {
    let _serial = serial();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_start_real_nodes_and_wait_to_be_killed",
            "--ignored",
            "--nocapture",
        ])
        .env("ATTEST_REAL_NODES_HELPER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut found = None;
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.trim().strip_prefix("TESTBED ") {
            let (dir, name) = rest.split_once(' ').unwrap();
            found = Some((std::path::PathBuf::from(dir), name.to_owned()));
            break;
        }
        line.clear();
    }
    let (dir, name) = found.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the helper did not start a testbed")
    });
    // The container's processes, found through the node's cgroup.
    let procs = Command::new("find")
        .arg(format!("/sys/fs/cgroup/pids/attest-{name}-1"))
        .args(["-name", "cgroup.procs", "-exec", "cat", "{}", "+"])
        .output()
        .unwrap();
    let containers: Vec<String> = String::from_utf8_lossy(&procs.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(!containers.is_empty(), "no container process found");
    assert!(!kube::processes_in(&dir).is_empty(), "the nodes run");
    // SIGKILL: no destructor, no signal handler runs in the helper.
    child.kill().unwrap();
    child.wait().unwrap();
    eventually(
        "the watchdog deleting the testbed and its nodes",
        Duration::from_secs(60),
        || {
            let left = kube::processes_in(&dir);
            match left.is_empty() && !dir.exists() {
                true => Ok(()),
                false => Err(format!("{left:?}, folder exists: {}", dir.exists())),
            }
        },
    );
    let alive: Vec<&String> = containers
        .iter()
        .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
        .collect();
    assert!(alive.is_empty(), "container processes left: {alive:?}");
    assert_clean(&dir, &name);
}

#[test]
fn node_addresses_in_use_fail_the_start_clearly_and_leave_nothing() {
    let _serial = serial();
    let bin_dir = kube::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    let images = nodes::images_dir().unwrap_or_else(|e| panic!("{e}"));
    // Someone else holds a node address in this namespace.
    let ip = |args: &[&str]| {
        let out = Command::new("ip").args(args).output().unwrap();
        assert!(out.status.success(), "ip {args:?}: {out:?}");
    };
    ip(&["addr", "add", "100.64.0.9/32", "dev", "lo"]);
    let target = PostgresTarget {
        host: "127.0.0.1".into(),
        port: 1,
        superuser_password: PASSWORD.into(),
        paperless_password: "p".into(),
        bin_dir: None,
    };
    let mut options = KubeOptions::new(bin_dir, target);
    options.real_nodes = Some(images);
    let clock = Instant::now();
    let result = KubeTestbed::start(options);
    ip(&["addr", "del", "100.64.0.9/32", "dev", "lo"]);
    let error = result.err().expect("the start fails");
    eprintln!("failed in {:?}: {error}", clock.elapsed());
    assert!(
        error.contains("100.64.0.") && error.contains("in use"),
        "{error}"
    );
    // Checked before anything starts.
    assert!(
        clock.elapsed() < Duration::from_secs(2),
        "{:?}",
        clock.elapsed()
    );
    // The failed start cleaned up after itself (the testbed was dropped inside `start`).
    let left: Vec<String> = std::fs::read_dir("/sys/fs/cgroup/pids")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("attest-attest-"))
        .collect();
    assert!(left.is_empty(), "cgroups left: {left:?}");
    let procs: Vec<String> = kube::processes_in(Path::new("/tmp"))
        .into_iter()
        .filter(|p| p.contains("attest-kube-"))
        .collect();
    assert!(procs.is_empty(), "processes left: {procs:?}");
}

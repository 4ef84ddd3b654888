//! The Kubernetes testbed, driven with the real (built) kubectl: the stories' claim bound on
//! NFS, the StatefulSet controller recreating a deleted pod, drain moving it, exec, logs,
//! port-forward to the real PostgreSQL, the CloudNativePG and external-secrets objects, RBAC.
//!
//! Needs the binaries of `scripts/kube-build` (or ATTEST_KUBE_BIN): without them every test
//! here fails, naming the command that builds them. Each scenario group is one test function
//! running its steps in sequence; the read-only groups share one testbed while they overlap
//! (one process under nextest, so usually one testbed per function), and every function
//! checks at the end that no process and no folder of its testbed is left.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use attest_sandbox::kube::{self, KubeOptions, KubeTestbed, PostgresTarget};
use common::testbed::{eventually, Bed};

const PASSWORD: &str = "Sup3r-secret";
const PAPERLESS_PASSWORD: &str = "paperless-Pw";

/// Stops everything and checks that nothing of the testbed is left.
fn finish(bed: Bed) {
    let (dir, _) = bed.stop();
    assert_clean(&dir);
}

fn assert_clean(dir: &Path) {
    let left = kube::processes_in(dir);
    assert!(left.is_empty(), "processes left behind: {left:?}");
    assert!(!dir.exists(), "{} is left behind", dir.display());
}

static SHARED: Mutex<Weak<Bed>> = Mutex::new(Weak::new());

/// The read-only groups' testbed, started by the first of them.
fn shared() -> Arc<Bed> {
    let mut slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(bed) = slot.upgrade() {
        return bed;
    }
    let bed = Arc::new(Bed::start(PASSWORD));
    *slot = Arc::downgrade(&bed);
    bed
}

/// The last user of the shared testbed stops it.
fn release(bed: Arc<Bed>) {
    let slot = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(bed) = Arc::into_inner(bed) {
        drop(slot);
        finish(bed);
    }
}

fn kubectl(kube: &KubeTestbed, args: &[&str]) -> String {
    kube.kubectl_output(args).unwrap_or_else(|e| panic!("{e}"))
}

fn jsonpath(kube: &KubeTestbed, args: &[&str], path: &str) -> String {
    let mut all = args.to_vec();
    let format = format!("jsonpath={path}");
    all.extend(["-o", &format]);
    kubectl(kube, &all)
}

#[test]
fn claim_is_bound_on_nfs_and_survives_pod_deletion_and_drain() {
    let bed = Bed::start(PASSWORD);
    let kube = bed.kube();

    // Story 5.2 AC 2: the claim, Bound, on nfs-client, 8Gi.
    let pvcs = kubectl(kube, &["get", "pvc", "-n", "data"]);
    let row = pvcs
        .lines()
        .find(|l| l.starts_with("data-postgres-postgresql-0 "))
        .unwrap_or_else(|| panic!("no claim in:\n{pvcs}"));
    for word in ["Bound", "8Gi", "RWO", "nfs-client"] {
        assert!(
            row.split_whitespace().any(|w| w == word),
            "{word} missing in: {row}"
        );
    }
    let volume = jsonpath(
        kube,
        &["get", "pvc", "-n", "data", "data-postgres-postgresql-0"],
        "{.spec.volumeName}",
    );
    let server = jsonpath(kube, &["get", "pv", &volume], "{.spec.nfs.server}");
    assert_eq!(server, "nfs.homelab.invalid");

    // AC 4: delete the pod; the StatefulSet controller recreates it on the same claim.
    let pod = ["get", "pod", "-n", "data", "postgres-postgresql-0"];
    let old_uid = jsonpath(kube, &pod, "{.metadata.uid}");
    // Not `--wait`: kubectl's wait for deletion can miss it when the StatefulSet recreates a
    // pod of the same name at once, and then waits for its whole timeout. The new UID is the
    // proof of deletion.
    kubectl(
        kube,
        &[
            "delete",
            "pod",
            "postgres-postgresql-0",
            "-n",
            "data",
            "--wait=false",
        ],
    );
    let new_uid = eventually(
        "a new postgres-postgresql-0 Running",
        Duration::from_secs(60),
        || {
            let out = kube.kubectl_output(
                &[
                    &pod[..],
                    &["-o", "jsonpath={.metadata.uid} {.status.phase}"],
                ]
                .concat(),
            )?;
            match out.split_once(' ') {
                Some((uid, "Running")) if uid != old_uid => Ok(uid.to_owned()),
                _ => Err(out),
            }
        },
    );
    assert_ne!(new_uid, old_uid);
    let claim = jsonpath(
        kube,
        &pod,
        "{.spec.volumes[?(@.name==\"data\")].persistentVolumeClaim.claimName}",
    );
    assert_eq!(claim, "data-postgres-postgresql-0");

    // AC 5: drain its node; it moves to another node, still on the claim; uncordon restores.
    let node = jsonpath(kube, &pod, "{.spec.nodeName}");
    assert!(node.starts_with("k3s-worker-"), "{node}");
    // The chart's PodDisruptionBudget (maxUnavailable 1) lets the eviction through once the
    // real disruption controller has counted the new pod healthy.
    let pdb = ["get", "pdb", "-n", "data", "postgres-postgresql"];
    eventually(
        "the PodDisruptionBudget allowing one disruption",
        Duration::from_secs(60),
        || {
            let allowed = kube.kubectl_output(
                &[&pdb[..], &["-o", "jsonpath={.status.disruptionsAllowed}"]].concat(),
            )?;
            (allowed == "1").then_some(()).ok_or(allowed)
        },
    );
    let drained = kube
        .kubectl()
        .args([
            "drain",
            &node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=60s",
        ])
        .output()
        .unwrap();
    assert!(
        drained.status.success(),
        "{}",
        String::from_utf8_lossy(&drained.stderr)
    );
    let stdout = String::from_utf8_lossy(&drained.stdout);
    assert!(
        stdout.contains("evicting pod data/postgres-postgresql-0") || stdout.contains("evicted"),
        "{stdout}"
    );
    let moved_to = eventually(
        "postgres-postgresql-0 Running on another node",
        Duration::from_secs(60),
        || {
            let out = kube.kubectl_output(
                &[
                    &pod[..],
                    &["-o", "jsonpath={.spec.nodeName} {.status.phase}"],
                ]
                .concat(),
            )?;
            match out.split_once(' ') {
                Some((to, "Running")) if !to.is_empty() && to != node => Ok(to.to_owned()),
                _ => Err(out),
            }
        },
    );
    assert!(moved_to.starts_with("k3s-worker-"));
    let claim = jsonpath(
        kube,
        &pod,
        "{.spec.volumes[?(@.name==\"data\")].persistentVolumeClaim.claimName}",
    );
    assert_eq!(claim, "data-postgres-postgresql-0");
    let phase = jsonpath(
        kube,
        &["get", "pvc", "-n", "data", "data-postgres-postgresql-0"],
        "{.status.phase}",
    );
    assert_eq!(phase, "Bound");
    assert_eq!(
        jsonpath(kube, &["get", "node", &node], "{.spec.unschedulable}"),
        "true"
    );
    kubectl(kube, &["uncordon", &node]);
    assert_eq!(
        jsonpath(kube, &["get", "node", &node], "{.spec.unschedulable}"),
        ""
    );
    let ready = jsonpath(
        kube,
        &["get", "nodes"],
        "{range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{end}",
    );
    assert_eq!(ready, "TrueTrueTrue");

    finish(bed);
}

#[test]
fn exec_logs_and_port_forward_behave_like_the_stories_pods() {
    let bed = shared();
    let kube = bed.kube();

    // Exec runs in the pod's stand-in folder: PGDATA with base, global, pg_wal.
    let listing = kubectl(
        kube,
        &[
            "exec",
            "-n",
            "data",
            "postgres-postgresql-0",
            "--",
            "ls",
            "bitnami/postgresql/data",
        ],
    );
    for dir in ["base", "global", "pg_wal", "PG_VERSION"] {
        assert!(
            listing.lines().any(|l| l == dir),
            "{dir} missing in:\n{listing}"
        );
    }
    let via_env = kubectl(
        kube,
        &[
            "exec",
            "-n",
            "data",
            "postgres-postgresql-0",
            "--",
            "sh",
            "-c",
            "ls \"$PGDATA\"/pg_wal",
        ],
    );
    assert!(via_env.contains("000000010000000000000001"), "{via_env}");
    let pwd = kubectl(
        kube,
        &["exec", "-n", "data", "postgres-postgresql-0", "--", "pwd"],
    );
    assert_eq!(
        Path::new(pwd.trim()),
        kube.pod_root("data", "postgres-postgresql-0")
    );
    let uid = kubectl(
        kube,
        &[
            "exec",
            "-n",
            "data",
            "postgres-postgresql-0",
            "--",
            "id",
            "-u",
        ],
    );
    let we_are_root = std::fs::metadata(kube.dir())
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap();
    if we_are_root {
        assert_eq!(uid.trim(), "65534", "exec must not run as root");
    }
    // psql inside the "pod" reaches the real server, as in story 5.2's commands.
    let env_password = format!("PGPASSWORD={PASSWORD}");
    let sql = kubectl(
        kube,
        &[
            "exec",
            "-n",
            "data",
            "postgres-postgresql-0",
            "--",
            "env",
            &env_password,
            "psql",
            "-U",
            "postgres",
            "-Atc",
            "SELECT 40 + 2",
        ],
    );
    assert_eq!(sql.trim(), "42");

    // Story 10.2: the Paperless pod's environment and no SQLite file anywhere in it.
    let deploy = "deploy/paperless-paperless-ngx";
    let env = kubectl(kube, &["exec", "-n", "docs", deploy, "--", "env"]);
    for line in [
        "PAPERLESS_DBENGINE=postgresql",
        "PAPERLESS_DBHOST=postgres-postgresql.data.svc.cluster.local",
        "PAPERLESS_DBNAME=paperless",
        "PAPERLESS_DBUSER=paperless_user",
        "PAPERLESS_DBPORT=5432",
    ] {
        assert!(env.lines().any(|l| l == line), "{line} missing in:\n{env}");
    }
    let sqlite = kubectl(
        kube,
        &[
            "exec",
            "-n",
            "docs",
            deploy,
            "--",
            "find",
            "..",
            "-name",
            "*.sqlite3",
        ],
    );
    assert_eq!(sqlite, "");
    let data = kubectl(kube, &["exec", "-n", "docs", deploy, "--", "ls", "../data"]);
    assert!(data.contains("index"), "{data}");

    // Logs: Paperless connecting to PostgreSQL and migrating; PostgreSQL ready.
    let logs = kubectl(kube, &["logs", "-n", "docs", deploy]);
    assert!(logs.contains("Connected to PostgreSQL"), "{logs}");
    assert!(logs.contains("Apply database migrations..."), "{logs}");
    assert!(
        logs.lines()
            .any(|l| l.starts_with("  Applying ") && l.ends_with("... OK")),
        "{logs}"
    );
    assert!(!logs.to_lowercase().contains("sqlite"), "{logs}");
    let logs = kubectl(
        kube,
        &[
            "logs",
            "-n",
            "data",
            "postgres-postgresql-0",
            "--timestamps",
        ],
    );
    assert!(
        logs.contains("database system is ready to accept connections"),
        "{logs}"
    );
    let first = logs.split_whitespace().next().unwrap();
    assert!(
        first.len() >= 20 && first.ends_with('Z'),
        "RFC 3339 timestamps: {first}"
    );

    // Port-forward to the pod and to the Service reaches the real PostgreSQL.
    for target in ["pod/postgres-postgresql-0", "svc/postgres-postgresql"] {
        let (mut forward, port) = port_forward(kube, "data", target, 5432);
        let psql = bed.postgres().bin_dir().join("psql");
        let out = Command::new(psql)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-Atc",
                "SELECT 1",
            ])
            .env("PGPASSWORD", PASSWORD)
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .unwrap();
        let _ = forward.kill();
        let _ = forward.wait();
        assert!(
            out.status.success(),
            "{target}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1", "{target}");
    }
    release(bed);
}

#[test]
fn operator_objects_rbac_and_loopback_only_listeners() {
    let bed = shared();
    let kube = bed.kube();

    // CloudNativePG, external-secrets, the restic CronJob, with their statuses.
    let clusters = kubectl(kube, &["get", "clusters.postgresql.cnpg.io", "-A"]);
    assert!(
        clusters.contains("paperless-ngx-db") && clusters.contains("Cluster in healthy state"),
        "{clusters}"
    );
    let backups = jsonpath(
        kube,
        &["get", "backups.postgresql.cnpg.io", "-n", "paperless-ngx"],
        "{.items[*].status.phase}",
    );
    assert_eq!(backups, "completed");
    let scheduled = jsonpath(
        kube,
        &[
            "get",
            "scheduledbackups.postgresql.cnpg.io",
            "-n",
            "paperless-ngx",
            "paperless-ngx-db-daily",
        ],
        "{.status.lastScheduleTime}",
    );
    assert!(scheduled.ends_with('Z'), "{scheduled}");
    let ready = jsonpath(
        kube,
        &["get", "externalsecrets", "-n", "paperless-ngx"],
        "{range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{\" \"}{end}",
    );
    assert_eq!(ready.trim(), ["True"; 6].join(" "));
    let policy = jsonpath(
        kube,
        &[
            "get",
            "networkpolicy",
            "-n",
            "paperless-ngx",
            "paperless-ngx",
        ],
        "{.spec.egress[*].ports[*].port}",
    );
    assert_eq!(policy, "53 53 5432 6379");
    let cronjob = [
        "get",
        "cronjob",
        "-n",
        "paperless-ngx",
        "paperless-ngx-backup",
    ];
    assert!(jsonpath(kube, &cronjob, "{.status.lastSuccessfulTime}").ends_with('Z'));
    assert!(jsonpath(kube, &cronjob, "{.status.lastScheduleTime}").ends_with('Z'));
    let jobs = kubectl(
        kube,
        &[
            "get",
            "jobs",
            "-n",
            "paperless-ngx",
            "-l",
            "app.kubernetes.io/name=paperless-ngx-backup",
        ],
    );
    assert!(jobs.contains("Complete"), "{jobs}");
    let secret = jsonpath(
        kube,
        &["get", "secret", "-n", "data", "postgres-postgresql"],
        "{.data.postgres-password}",
    );
    assert_eq!(secret, base64(PASSWORD));

    // RBAC is real: a ServiceAccount token only gets what its Role grants.
    let config = kube
        .restricted_kubeconfig("data", "reader", "get,list,watch", "pods")
        .unwrap();
    let server = jsonpath(
        kube,
        &["config", "view", "--raw"],
        "{.clusters[0].cluster.server}",
    );
    assert!(server.starts_with("https://127.0.0.1:"), "{server}");
    let can = |verb: &str, resource: &str, namespace: &str| {
        let out = kube
            .kubectl()
            .env("KUBECONFIG", &config)
            .args(["auth", "can-i", verb, resource, "-n", namespace])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(can("get", "pods", "data"), "yes");
    assert_eq!(can("list", "pods", "data"), "yes");
    assert_eq!(can("create", "pods", "data"), "no");
    assert_eq!(can("create", "pods/exec", "data"), "no");
    assert_eq!(can("get", "secrets", "data"), "no");
    assert_eq!(can("get", "pods", "docs"), "no");
    let denied = kube
        .kubectl()
        .env("KUBECONFIG", &config)
        .args(["get", "secrets", "-n", "data"])
        .output()
        .unwrap();
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("forbidden"));

    // Safety: pod IPs and Service ClusterIPs are loopback addresses (headless Services have
    // none), so nothing could send a packet off this machine even by dialing them.
    let pod_ips = jsonpath(kube, &["get", "pods", "-A"], "{.items[*].status.podIP}");
    let pod_ips: Vec<&str> = pod_ips.split_whitespace().collect();
    assert!(pod_ips.len() >= 6, "{pod_ips:?}");
    assert!(
        pod_ips.iter().all(|ip| ip.starts_with("127.128.")),
        "{pod_ips:?}"
    );
    let cluster_ips = jsonpath(
        kube,
        &["get", "services", "-A"],
        "{.items[*].spec.clusterIP}",
    );
    for ip in cluster_ips.split_whitespace().filter(|ip| *ip != "None") {
        assert!(ip.starts_with("127.64."), "{cluster_ips}");
    }
    let addresses = jsonpath(
        kube,
        &["get", "nodes"],
        "{.items[*].status.addresses[*].address}",
    );
    assert_eq!(addresses, "localhost localhost localhost");

    // Safety: every listening socket of every component is on 127.0.0.1.
    let listeners = listening_sockets(kube.dir());
    assert!(listeners.len() >= 5, "{listeners:?}");
    for (process, addr) in &listeners {
        assert!(
            addr.starts_with("127.0.0.1:"),
            "{process} listens on {addr}"
        );
    }
    release(bed);
}

#[test]
fn missing_binaries_fail_with_the_command_that_builds_them() {
    let empty = tempfile::tempdir().unwrap();
    let err = kube::explain(kube::locate_from(Some(empty.path().into()))).unwrap_err();
    assert!(err.contains("ATTEST_KUBE_BIN="), "{err}");
    assert!(err.contains("has no executable `kube-apiserver`"), "{err}");
    assert!(err.contains("scripts/kube-build"), "{err}");
    // Under CI the binaries must be there: scripts/test builds them and sets ATTEST_KUBE_BIN.
    if std::env::var_os("CI").is_some() {
        kube::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Starts `kubectl port-forward` on a free loopback port; returns it and the port.
fn port_forward(
    kube: &KubeTestbed,
    namespace: &str,
    target: &str,
    port: u16,
) -> (std::process::Child, u16) {
    let mut child = kube
        .kubectl()
        .args([
            "port-forward",
            "-n",
            namespace,
            target,
            &format!(":{port}"),
            "--address",
            "127.0.0.1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    // Keep reading: kubectl prints a line per connection, and a Go program dies of SIGPIPE
    // when its stdout is closed.
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    // "Forwarding from 127.0.0.1:40123 -> 5432"
    let local = line
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected port-forward output: {line}"));
    (child, local)
}

/// (process, local address) of every listening TCP socket of the testbed's processes.
fn listening_sockets(dir: &Path) -> Vec<(String, String)> {
    let mut inodes = std::collections::HashMap::new();
    for process in kube::processes_in(dir) {
        let pid = process.split(' ').next().unwrap().to_owned();
        let name = process
            .split(' ')
            .nth(1)
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let fds = PathBuf::from(format!("/proc/{pid}/fd"));
        for fd in std::fs::read_dir(fds).into_iter().flatten().flatten() {
            if let Ok(link) = std::fs::read_link(fd.path()) {
                let link = link.display().to_string();
                if let Some(inode) = link
                    .strip_prefix("socket:[")
                    .and_then(|l| l.strip_suffix(']'))
                {
                    inodes.insert(inode.to_owned(), name.clone());
                }
            }
        }
    }
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for row in text.lines().skip(1) {
            let cols: Vec<&str> = row.split_whitespace().collect();
            // local_address, state 0A = LISTEN, inode in column 9.
            if cols.len() > 9 && cols[3] == "0A" {
                if let Some(process) = inodes.get(cols[9]) {
                    found.push((process.clone(), decode_address(cols[1])));
                }
            }
        }
    }
    found
}

/// /proc/net/tcp's `0100007F:1F90` → `127.0.0.1:8080` (IPv6 rows decoded as hex).
fn decode_address(text: &str) -> String {
    let (addr, port) = text.split_once(':').unwrap();
    let port = u16::from_str_radix(port, 16).unwrap();
    if addr.len() == 8 {
        let n = u32::from_str_radix(addr, 16).unwrap();
        let ip = std::net::Ipv4Addr::from(n.swap_bytes());
        format!("{ip}:{port}")
    } else {
        format!("[{addr}]:{port}")
    }
}

fn base64(text: &str) -> String {
    const TABLE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Not a test on its own: `killed_testbed_is_deleted_by_its_watchdog` runs this in a child
/// process, which it then kills.
#[test]
#[ignore = "helper process for killed_testbed_is_deleted_by_its_watchdog"]
fn helper_start_a_testbed_and_wait_to_be_killed() {
    if std::env::var_os("ATTEST_KUBE_HELPER").is_none() {
        return;
    }
    let bin_dir = kube::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    // Nothing dials PostgreSQL during a start: a closed port will do.
    let target = PostgresTarget {
        host: "127.0.0.1".into(),
        port: 1,
        superuser_password: PASSWORD.into(),
        paperless_password: PAPERLESS_PASSWORD.into(),
        bin_dir: None,
    };
    let testbed = KubeTestbed::start(KubeOptions::new(bin_dir, target)).unwrap();
    println!("TESTBED {}", testbed.dir().display());
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

#[test]
fn killed_testbed_is_deleted_by_its_watchdog() {
    kube::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_start_a_testbed_and_wait_to_be_killed",
            "--ignored",
            "--nocapture",
        ])
        .env("ATTEST_KUBE_HELPER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut dir = None;
    let mut line = String::new();
    while stdout.read_line(&mut line).unwrap() > 0 {
        if let Some(path) = line.trim().strip_prefix("TESTBED ") {
            dir = Some(PathBuf::from(path));
            break;
        }
        line.clear();
    }
    let dir = dir.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the helper did not start a testbed")
    });
    assert!(!kube::processes_in(&dir).is_empty(), "the testbed runs");
    // SIGKILL: no destructor, no signal handler runs in the helper.
    child.kill().unwrap();
    child.wait().unwrap();
    eventually(
        "the watchdog deleting the testbed",
        Duration::from_secs(30),
        || {
            let left = kube::processes_in(&dir);
            match left.is_empty() && !dir.exists() {
                true => Ok(()),
                false => Err(format!("{left:?}, folder exists: {}", dir.exists())),
            }
        },
    );
}

#[test]
fn sandbox_up_stops_its_testbed_on_sigterm() {
    kube::bin_dir().unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_attest"))
        .args(["sandbox", "up"])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // What to paste (the vars file, kubectl lines) comes on stdout; status on stderr.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    let printed = std::thread::spawn(move || {
        let mut text = String::new();
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines_tx.send(line.clone());
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut line, mut seen, mut dir) = (String::new(), String::new(), None);
    while stderr.read_line(&mut line).unwrap() > 0 {
        seen.push_str(&line);
        if let Some((_, path)) = line.trim().split_once("kubeconfig ") {
            // <tmp>/attest-kube-XXXX/work/clusters/<name>/kubeconfig.yaml
            dir = Path::new(path).ancestors().nth(4).map(Path::to_path_buf);
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
        line.clear();
    }
    // The printed `attest run` line, followed as a user would: its Kubernetes checks reach
    // the testbed only through the kubeconfig and context the line carries.
    let run_line = lines_rx
        .iter()
        .map(|l| l.trim().to_owned())
        .find(|l| l.starts_with("attest run "))
        .unwrap_or_else(|| {
            let _ = child.kill();
            panic!("no `attest run` line on stdout")
        });
    let reports = tempfile::tempdir().unwrap();
    let words: Vec<&str> = run_line.split_whitespace().skip(2).collect();
    let run = Command::new(env!("CARGO_BIN_EXE_attest"))
        .arg("run")
        .args(&words)
        .args(["story-5.2::", "--report-dir"])
        .arg(reports.path())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let run_stderr = String::from_utf8_lossy(&run.stderr);
    let report = std::fs::read_to_string(reports.path().join("report.json")).unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(&report).unwrap_or_default();
    let kube_results: Vec<&serde_json::Value> = json["results"]
        .as_array()
        .map(|r| r.iter().filter(|r| r["kind"] == "kube").collect())
        .unwrap_or_default();
    let all_passed =
        kube_results.len() >= 3 && kube_results.iter().all(|r| r["status"] == "passed");
    if run.status.code() != Some(0) || !all_passed {
        let _ = child.kill();
        panic!(
            "following `{run_line}`: exit {:?}\n{run_stderr}\n{report}",
            run.status.code()
        );
    }
    let dir = dir.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("no kubeconfig line in:\n{seen}")
    });
    assert!(!kube::processes_in(&dir).is_empty(), "the testbed runs");
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{seen}");
    let printed = printed.join().unwrap();
    assert!(printed.contains("get pvc -A"), "{printed}");
    assert_clean(&dir);
}

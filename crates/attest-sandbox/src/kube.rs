//! The local Kubernetes testbed: real upstream kube-apiserver, etcd, kube-controller-manager
//! and kube-scheduler started by kwokctl's `binary` runtime, kwok simulating the nodes and
//! their pods, and the stories' cluster (fixtures/kubernetes/) applied on top. Everything
//! binds 127.0.0.1; the pods' exec, logs and port-forward are served by kwok from per-pod
//! folders, log files and tunnels to the throwaway PostgreSQL (see fixtures/kubernetes/kwok.yaml).
//!
//! [`KubeTestbed::start`] is the one entry point; dropping the testbed (or [`KubeTestbed::stop`],
//! or [`stop_all`] from a signal handler) deletes the cluster and its temporary folder.

mod binaries;
pub mod nodes;
mod pod_dns;
mod render;

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use attest_core::watchdog::Watchdog;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tempfile::TempDir;

pub use binaries::{
    bin_dir, build, build_command, explain, go_present, locate, locate_from, missing_in,
    workspace_root, Binaries, BINARIES,
};

/// ClusterIPs of Services on kwok's nodes only: inside loopback, which kube-apiserver accepts
/// for Services, so nothing on this machine could ever dial one off it. With real nodes, whose
/// pods have a loopback of their own, Services take [`nodes::SERVICE_CIDR`] instead.
const SERVICE_CIDR: &str = "127.64.0.0/16";
/// Pod IPs kwok hands out by default ([`KubeOptions::pod_cidr`]): inside loopback too, so even
/// the apiserver's pods/proxy and services/proxy could only ever reach this machine. The price:
/// the EndpointSlice controller refuses loopback addresses, so Services have no endpoints
/// (port-forward to a Service still works: kubectl picks a pod by the Service's selector).
pub const LOOPBACK_POD_CIDR: &str = "127.128.0.0/16";
/// The user `kubectl exec` runs as when the testbed runs as root (`nobody`'s usual uid).
const NOBODY: u32 = 65534;
/// Cluster names of this process, so a signal handler can delete them all ([`stop_all`]).
static LIVE: Mutex<Vec<Live>> = Mutex::new(Vec::new());

#[derive(Clone)]
struct Live {
    name: String,
    dir: PathBuf,
    bin_dir: PathBuf,
}

/// The PostgreSQL that port-forward and exec reach, and the passwords the cluster's Secrets
/// hold (the stories' `postgres-postgresql` and `paperless-secrets`).
#[derive(Clone, Debug)]
pub struct PostgresTarget {
    pub host: String,
    pub port: u16,
    pub superuser_password: String,
    pub paperless_password: String,
    /// Where psql lives, put first on PATH of `kubectl exec` (optional).
    pub bin_dir: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct KubeOptions {
    /// Folder with every one of [`BINARIES`] (see [`bin_dir`]).
    pub bin_dir: PathBuf,
    pub postgres: PostgresTarget,
    /// Loopback port port-forward to the Paperless pods (port 8000) tunnels to, if any.
    pub paperless_http_port: Option<u16>,
    /// The stories' cluster; default `fixtures/kubernetes` of this workspace.
    pub fixtures: PathBuf,
    /// For the whole start: cluster up, fixtures applied, pods running.
    pub timeout: Duration,
    /// Where kwok takes pod IPs from: [`LOOPBACK_POD_CIDR`] by default. kwok's own default,
    /// 10.0.0.0/24, gives Services real EndpointSlices, but fictitious addresses that the
    /// apiserver's proxy subresources would dial off this machine outside a network namespace.
    pub pod_cidr: String,
    /// Real nodes ([`nodes`]) next to kwok's: the folder of `scripts/node-images`' images
    /// ([`nodes::images_dir`]); None (the default) runs kwok's nodes only.
    pub real_nodes: Option<PathBuf>,
}

impl KubeOptions {
    pub fn new(bin_dir: PathBuf, postgres: PostgresTarget) -> KubeOptions {
        KubeOptions {
            bin_dir,
            postgres,
            paperless_http_port: None,
            fixtures: workspace_root().join("fixtures/kubernetes"),
            timeout: Duration::from_secs(120),
            pod_cidr: LOOPBACK_POD_CIDR.to_owned(),
            real_nodes: None,
        }
    }
}

/// A running testbed; deleted on drop.
pub struct KubeTestbed {
    /// `None` once torn down.
    dir: Option<TempDir>,
    path: PathBuf,
    name: String,
    bin_dir: PathBuf,
    kubeconfig: PathBuf,
    startup: Duration,
    /// Deletes the cluster if this process dies without stopping it (see [`watchdog`]).
    watchdog: Option<Watchdog>,
    /// The real nodes, when asked for ([`KubeOptions::real_nodes`]).
    nodes: Option<nodes::Nodes>,
}

/// A ServiceAccount's credentials, as a pod running as it gets them.
#[derive(Debug, Clone)]
pub struct ServiceAccount {
    pub name: String,
    pub namespace: String,
    pub token: String,
    /// `https://127.0.0.1:PORT`.
    pub server: String,
    /// The cluster CA's PEM file.
    pub ca: PathBuf,
}

impl ServiceAccount {
    /// Writes `token`, `ca.crt` and `namespace` into `dir`, as the kubelet mounts them.
    pub fn write_mount(&self, dir: &Path) -> Result<(), String> {
        let fail = |e: std::io::Error| format!("cannot write into {}: {e}", dir.display());
        fs::create_dir_all(dir).map_err(fail)?;
        fs::write(dir.join("token"), &self.token).map_err(fail)?;
        fs::copy(&self.ca, dir.join("ca.crt")).map_err(fail)?;
        fs::write(dir.join("namespace"), &self.namespace).map_err(fail)?;
        Ok(())
    }
}

impl KubeTestbed {
    /// Creates the cluster (`kwokctl create cluster --runtime binary`, every binary given by
    /// path so nothing is downloaded), applies the stories' cluster with the real passwords,
    /// sets the operators' statuses, runs the backup Job, and waits until the claim is Bound
    /// and every pod Running. Blocking; from async code call it in `spawn_blocking`.
    pub fn start(options: KubeOptions) -> Result<KubeTestbed, String> {
        let clock = Instant::now();
        if let Some(name) = missing_in(&options.bin_dir) {
            let dir = options.bin_dir.display();
            return Err(format!(
                "{dir} has no `{name}`; build with `{}`",
                build_command()
            ));
        }
        if let Some(images) = &options.real_nodes {
            nodes::preflight(&options.bin_dir, images)?;
        }
        let dir = tempfile::Builder::new()
            .prefix("attest-kube-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary folder: {e}"))?;
        let path = dir.path().to_path_buf();
        let name = format!(
            "attest-{}-{:04x}",
            std::process::id(),
            rand::random::<u16>()
        );
        let kubeconfig = path.join(format!("work/clusters/{name}/kubeconfig.yaml"));
        // Registered before anything runs: a failed or interrupted start is still cleaned up.
        let live = Live {
            name: name.clone(),
            dir: path.clone(),
            bin_dir: options.bin_dir.clone(),
        };
        let watchdog = watchdog(&live)?;
        LIVE.lock().unwrap_or_else(|p| p.into_inner()).push(live);
        let mut testbed = KubeTestbed {
            dir: Some(dir),
            path,
            name,
            bin_dir: options.bin_dir.clone(),
            kubeconfig,
            startup: Duration::ZERO,
            watchdog: Some(watchdog),
            nodes: None,
        };
        let now = Utc::now();
        let deadline = clock + options.timeout;
        testbed.prepare(&options, now)?;
        testbed.create_cluster(deadline)?;
        match &options.real_nodes {
            None => testbed.apply_fixtures(&options, now, deadline)?,
            // The nodes start while the fixtures are applied: the stories' PostgreSQL goes to
            // them ([`render::postgres_on_real_nodes`]) and is scheduled once they are Ready.
            Some(images) => {
                let pki = testbed.pki();
                let cluster = nodes::Cluster {
                    dir: &testbed.path,
                    name: &testbed.name,
                    bin_dir: &testbed.bin_dir,
                    kubeconfig: &testbed.kubeconfig,
                    images,
                    pki: &pki,
                };
                let bed = &testbed;
                let (started, applied) = std::thread::scope(|scope| {
                    let nodes = scope.spawn(|| {
                        nodes::Nodes::start(&cluster, |a| bed.kubectl_output(a), deadline)
                    });
                    let applied = bed.apply_fixtures(&options, now, deadline);
                    let started = nodes
                        .join()
                        .unwrap_or_else(|_| Err("starting the real nodes panicked".into()));
                    (started, applied)
                });
                // Kept first, so that a failed apply still stops them (teardown).
                let started = started?;
                testbed.nodes = Some(started);
                applied?;
            }
        }
        testbed.wait_ready(deadline)?;
        testbed.startup = clock.elapsed();
        Ok(testbed)
    }

    /// kwokctl's PKI of this cluster: `ca.crt`/`ca.key`, `admin.crt`/`admin.key`.
    pub fn pki(&self) -> PathBuf {
        self.path.join(format!("work/clusters/{}/pki", self.name))
    }

    /// The admin kubeconfig (client certificate in `system:masters`), server on 127.0.0.1.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The admin kubeconfig's context (kwokctl names it after the cluster).
    pub fn context(&self) -> String {
        format!("kwok-{}", self.name)
    }

    /// The built kubectl, with KUBECONFIG set and a discovery cache of its own.
    pub fn kubectl(&self) -> Command {
        let mut command = Command::new(self.bin_dir.join("kubectl"));
        command
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", self.path.join("kubectl-cache"))
            .stdin(Stdio::null());
        command
    }

    /// Runs the built kubectl with `args`; its stdout, or an error with its stderr.
    pub fn kubectl_output(&self, args: &[&str]) -> Result<String, String> {
        let output = self.kubectl().args(args).output();
        let output = output.map_err(|e| format!("cannot run kubectl: {e}"))?;
        match output.status.success() {
            true => Ok(String::from_utf8_lossy(&output.stdout).into_owned()),
            false => Err(format!(
                "`kubectl {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr).trim()
            )),
        }
    }

    /// The kwokctl cluster name, unique per start.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The testbed's temporary folder: kwok's workdir, the pods' folders, the log files.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The stand-in of a pod's filesystem (`namespace`/`pod or workload name`), as listed in
    /// fixtures/kubernetes/pods.txt.
    pub fn pod_root(&self, namespace: &str, name: &str) -> PathBuf {
        self.path.join("pods").join(namespace).join(name)
    }

    /// A new ServiceAccount `name` in `namespace` whose Role grants only `verbs` on
    /// `resources` there, and what a pod running as it would see: a token, the API server and
    /// its CA (as mounted under /var/run/secrets/kubernetes.io/serviceaccount).
    pub fn service_account(
        &self,
        namespace: &str,
        name: &str,
        verbs: &str,
        resources: &str,
    ) -> Result<ServiceAccount, String> {
        self.kubectl_output(&["create", "serviceaccount", name, "-n", namespace])?;
        let (verbs, resources) = (format!("--verb={verbs}"), format!("--resource={resources}"));
        self.kubectl_output(&["create", "role", name, "-n", namespace, &verbs, &resources])?;
        let (role, account) = (
            format!("--role={name}"),
            format!("--serviceaccount={namespace}:{name}"),
        );
        self.kubectl_output(&[
            "create",
            "rolebinding",
            name,
            "-n",
            namespace,
            &role,
            &account,
        ])?;
        let token =
            self.kubectl_output(&["create", "token", name, "-n", namespace, "--duration=30m"])?;
        let view = |path: &str| {
            self.kubectl_output(&["config", "view", "--raw", "-o", &format!("jsonpath={path}")])
        };
        Ok(ServiceAccount {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            token: token.trim().to_owned(),
            server: view("{.clusters[0].cluster.server}")?,
            ca: PathBuf::from(view("{.clusters[0].cluster.certificate-authority}")?),
        })
    }

    /// A kubeconfig for a new ServiceAccount (see [`KubeTestbed::service_account`]), a token
    /// rather than the admin certificate, so RBAC applies: what a least-privilege user of
    /// attest would have.
    pub fn restricted_kubeconfig(
        &self,
        namespace: &str,
        name: &str,
        verbs: &str,
        resources: &str,
    ) -> Result<PathBuf, String> {
        let account = self.service_account(namespace, name, verbs, resources)?;
        let config = self.path.join(format!("{name}.kubeconfig"));
        fs::write(
            &config,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\nusers:\n- name: {name}\n  user: {{token: \"{}\"}}\ncontexts:\n- name: t\n  context: {{cluster: t, user: {name}}}\ncurrent-context: t\n",
                account.server,
                account.ca.display(),
                account.token
            ),
        )
        .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        Ok(config)
    }

    /// The host folder the stories' PostgreSQL keeps its data in when it runs on the real
    /// nodes (its PersistentVolume's hostPath).
    pub fn postgres_volume(&self) -> PathBuf {
        self.path.join("volumes").join(render::POSTGRES_CLAIM)
    }

    /// Rewrites the manifests of the stories' PostgreSQL (02-storage.yaml, 10-postgres-bitnami.yaml)
    /// for the real nodes ([`render::postgres_on_real_nodes`]) and makes its volume: a folder
    /// owned by the image's uid 1001, as the chart's fsGroup would make it on NFS.
    fn postgres_on_real_nodes(&self, manifests: &Path) -> Result<(), String> {
        let volume = self.postgres_volume();
        fs::create_dir_all(&volume)
            .map_err(|e| format!("cannot create {}: {e}", volume.display()))?;
        std::os::unix::fs::chown(&volume, Some(1001), Some(1001))
            .map_err(|e| format!("cannot give {} to uid 1001: {e}", volume.display()))?;
        set_mode(&volume, 0o700)?;
        let mut changed = 0;
        for name in ["02-storage.yaml", "10-postgres-bitnami.yaml"] {
            let path = manifests.join(name);
            let file = path.display().to_string();
            let json =
                self.kubectl_output(&["create", "--dry-run=client", "-o", "json", "-f", &file])?;
            // One JSON document per object, one after the other: made a List.
            let items = serde_json::Deserializer::from_str(&json)
                .into_iter::<Value>()
                .collect::<Result<Vec<Value>, _>>()
                .map_err(|e| format!("kubectl printed JSON we cannot read: {e}"))?;
            let mut list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
            changed += render::postgres_on_real_nodes(&mut list, nodes::TAINT, &volume);
            // JSON is YAML: the file keeps its name and its place in the apply order.
            write_private(&path, &list.to_string())?;
        }
        match changed {
            2 => Ok(()),
            n => Err(format!(
                "fixtures/kubernetes: expected the StatefulSet data/postgres-postgresql and the PersistentVolume of its claim {}, changed {n} objects",
                render::POSTGRES_CLAIM
            )),
        }
    }

    /// The real nodes, if the testbed has them.
    pub fn nodes(&self) -> Option<&nodes::Nodes> {
        self.nodes.as_ref()
    }

    /// How long [`KubeTestbed::start`] took.
    pub fn startup_time(&self) -> Duration {
        self.startup
    }

    /// Deletes the cluster and the temporary folder; an error if a process survived.
    pub fn stop(mut self) -> Result<(), String> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), String> {
        let Some(dir) = self.dir.take() else {
            return Ok(());
        };
        let live = Live {
            name: self.name.clone(),
            dir: self.path.clone(),
            bin_dir: self.bin_dir.clone(),
        };
        if let Some(mut watchdog) = self.watchdog.take() {
            // We delete the cluster ourselves.
            watchdog.stand_down();
        }
        // The nodes first: a kubelet would otherwise outlive its apiserver, retrying.
        let stopped = nodes::stop(&self.path);
        self.nodes = None;
        let result = stopped.and(delete(&live));
        LIVE.lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|l| l.name != self.name);
        let removed = dir
            .close()
            .map_err(|e| format!("cannot remove {}: {e}", self.path.display()));
        result.and(removed)
    }

    /// Temporary folders, pods' stand-ins, log files and the kwokctl config.
    fn prepare(&self, options: &KubeOptions, now: DateTime<Utc>) -> Result<(), String> {
        let io = |p: &Path, e: std::io::Error| format!("cannot prepare {}: {e}", p.display());
        // Others may traverse (for the pods' folders) but not list the testbed folder.
        set_mode(&self.path, 0o711)?;
        for (sub, mode) in [
            ("work", 0o700),
            ("home", 0o700),
            ("kubectl-cache", 0o700),
            ("manifests", 0o700),
            ("pods", 0o755),
            ("logs", 0o755),
        ] {
            let dir = self.path.join(sub);
            fs::create_dir(&dir).map_err(|e| io(&dir, e))?;
            set_mode(&dir, mode)?;
        }
        let fixtures = &options.fixtures;
        let read = |name: &str| {
            let path = fixtures.join(name);
            fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
        };
        let pods = self.path.join("pods");
        render::pod_tree(&read("pods.txt")?, &pods)?;
        let run_as = (fs::metadata(&self.path)
            .map_err(|e| io(&self.path, e))?
            .uid()
            == 0)
            .then(nobody);
        if let Some((uid, gid)) = run_as {
            for namespace in fs::read_dir(&pods).map_err(|e| io(&pods, e))?.flatten() {
                chown_tree(&namespace.path(), uid, gid)?;
            }
        }
        let logs = fixtures.join("logs");
        for entry in fs::read_dir(&logs).map_err(|e| io(&logs, e))?.flatten() {
            let file = entry.file_name().to_string_lossy().into_owned();
            if let Some(stem) = file.strip_suffix(".log") {
                let text = read(&format!("logs/{file}"))?;
                let log = render::cri_log(&text, now).map_err(|e| format!("logs/{file}: {e}"))?;
                let path = self.path.join("logs").join(format!("{stem}.log"));
                fs::write(&path, log).map_err(|e| io(&path, e))?;
            }
        }
        let pg = &options.postgres;
        let mut exec_path = String::new();
        if let Some(dir) = &pg.bin_dir {
            exec_path = format!("{}:", dir.display());
        }
        exec_path.push_str("/usr/local/bin:/usr/bin:/bin");
        let security_context = match run_as {
            Some((uid, gid)) => format!("securityContext: {{runAsUser: {uid}, runAsGroup: {gid}}}"),
            None => String::new(),
        };
        let names = [
            "apiserver",
            "etcd",
            "etcd_peer",
            "kwok",
            "controller_manager",
            "scheduler",
        ];
        let port_names: Vec<String> = names.iter().map(|n| format!("port_{n}")).collect();
        let ports = free_ports(names.len())?;
        // With real nodes (only ever in a network namespace of the testbed's own, checked by
        // `nodes::preflight` before this), pods reach the apiserver through the `kubernetes`
        // Service: it listens on that namespace's addresses, advertises node 1's, and keeps the
        // Service's endpoints; its certificate names that address and the Service's ClusterIP.
        let (service_cidr, bind, advertise, reconciler, sans) = match options.real_nodes {
            None => (
                SERVICE_CIDR,
                "127.0.0.1",
                "127.0.0.1",
                "none",
                String::new(),
            ),
            Some(_) => (
                nodes::SERVICE_CIDR,
                "0.0.0.0",
                nodes::API_ADDRESS,
                "lease",
                format!(", {}, {}", nodes::API_ADDRESS, nodes::API_SERVICE_IP),
            ),
        };
        let mut values = HashMap::from([
            ("service_cidr", service_cidr.to_owned()),
            ("apiserver_bind", bind.to_owned()),
            ("apiserver_advertise", advertise.to_owned()),
            ("endpoint_reconciler", reconciler.to_owned()),
            ("apiserver_sans", format!("[127.0.0.1, localhost{sans}]")),
            ("pod_cidr", options.pod_cidr.clone()),
            ("pki", self.pki().display().to_string()),
            ("pg_host", pg.host.clone()),
            ("pg_port", pg.port.to_string()),
            ("pg_password", yaml_escape(&pg.superuser_password)),
            ("paperless_password", yaml_escape(&pg.paperless_password)),
            ("pods", pods.display().to_string()),
            ("logs", self.path.join("logs").display().to_string()),
            ("security_context", security_context),
            ("exec_path", exec_path),
            // Nothing listens on port 1: without a Paperless stand-in, forwards are refused.
            (
                "paperless_http_port",
                options.paperless_http_port.unwrap_or(1).to_string(),
            ),
        ]);
        for (name, port) in port_names.iter().zip(ports) {
            values.insert(name.as_str(), port.to_string());
        }
        let config = render::fill(&read("kwok.yaml")?, &values, now)
            .map_err(|e| format!("fixtures/kubernetes/kwok.yaml: {e}"))?;
        write_private(&self.path.join("kwok.yaml"), &config)
    }

    /// kwokctl with a clean environment: HOME and KWOK_WORKDIR inside the testbed, so no
    /// ~/.kwok/kwok.yaml is read and no ~/.kube/config written; our binaries first on PATH
    /// (kwokctl looks kubectl up there).
    fn create_cluster(&self, deadline: Instant) -> Result<(), String> {
        let live = self.live();
        let bin = |name: &str| self.bin_dir.join(name).display().to_string();
        let wait = format!("{}s", remaining(deadline).as_secs().max(10));
        let mut command = kwokctl(&live);
        command
            .args(["create", "cluster", "--runtime", "binary", "--config"])
            .arg(self.path.join("kwok.yaml"))
            .args(["--kube-apiserver-binary", &bin("kube-apiserver")])
            .args([
                "--kube-controller-manager-binary",
                &bin("kube-controller-manager"),
            ])
            .args(["--kube-scheduler-binary", &bin("kube-scheduler")])
            .args(["--kwok-controller-binary", &bin("kwok")])
            .args(["--etcd-binary", &bin("etcd")])
            .args(["--wait", &wait]);
        let output = command
            .output()
            .map_err(|e| format!("cannot run kwokctl: {e}"))?;
        if output.status.success() && self.kubeconfig.is_file() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(format!(
            "`kwokctl create cluster` failed ({}):\n{}{}",
            output.status,
            tail(&stderr, 10),
            self.component_logs()
        ))
    }

    fn apply_fixtures(
        &self,
        options: &KubeOptions,
        now: DateTime<Utc>,
        deadline: Instant,
    ) -> Result<(), String> {
        let fixtures = &options.fixtures;
        let crds = fixtures.join("crds").display().to_string();
        self.kubectl_output(&["apply", "--server-side", "-f", &crds])?;
        // Not `kubectl wait`: it fails on a CRD whose status is still empty.
        loop {
            let list: Value =
                serde_json::from_str(&self.kubectl_output(&["get", "crd", "-o", "json"])?)
                    .map_err(|e| format!("kubectl printed JSON we cannot read: {e}"))?;
            let items = list["items"].as_array().cloned().unwrap_or_default();
            let pending: Vec<String> = items
                .iter()
                .filter(|crd| {
                    let conditions = crd["status"]["conditions"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    !conditions
                        .iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                })
                .map(|crd| crd["metadata"]["name"].as_str().unwrap_or("?").to_owned())
                .collect();
            if pending.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "CRDs not Established in time: {}",
                    pending.join(", ")
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }

        // The manifests, filled in, plus the Secrets with the real passwords (never committed).
        let manifests = self.path.join("manifests");
        let mut names: Vec<String> = fs::read_dir(fixtures)
            .map_err(|e| format!("cannot list {}: {e}", fixtures.display()))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".yaml") && n != "kwok.yaml")
            .collect();
        names.sort();
        for name in &names {
            let text = fs::read_to_string(fixtures.join(name))
                .map_err(|e| format!("cannot read {name}: {e}"))?;
            let text = render::fill(&text, &HashMap::new(), now)
                .map_err(|e| format!("fixtures/kubernetes/{name}: {e}"))?;
            write_private(&manifests.join(name), &text)?;
        }
        write_private(
            &manifests.join("05-secrets.yaml"),
            &secrets(&options.postgres),
        )?;
        if options.real_nodes.is_some() {
            self.postgres_on_real_nodes(&manifests)?;
        }
        let dir = manifests.display().to_string();
        self.kubectl_output(&["apply", "--server-side", "-f", &dir])?;

        // What the operators would write, through the status subresource; the file name is
        // the field manager (cloudnative-pg, external-secrets).
        let status = fixtures.join("status");
        let mut files: Vec<PathBuf> = fs::read_dir(&status)
            .map_err(|e| format!("cannot list {}: {e}", status.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .collect();
        files.sort();
        for file in files {
            let stem = file
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = fs::read_to_string(&file).map_err(|e| format!("cannot read {stem}: {e}"))?;
            let text = render::fill(&text, &HashMap::new(), now)
                .map_err(|e| format!("fixtures/kubernetes/status/{stem}.yaml: {e}"))?;
            let target = manifests.join(format!("status-{stem}.yaml"));
            write_private(&target, &text)?;
            let manager = format!("--field-manager={stem}");
            let target = target.display().to_string();
            let args = [
                "apply",
                "--server-side",
                "--subresource=status",
                &manager,
                "-f",
                &target,
            ];
            self.kubectl_output(&args)?;
        }

        // The restic backup's last run: a real Job from the CronJob, named as the CronJob
        // controller names its Jobs; kwok completes its pod, the Job controller the Job.
        let job = format!("paperless-ngx-backup-{}", now.timestamp() / 60);
        let from = "--from=cronjob/paperless-ngx-backup";
        self.kubectl_output(&["create", "job", from, &job, "-n", "paperless-ngx"])?;
        Ok(())
    }

    /// Polls until the story's claim is Bound, the StatefulSet and Deployments are ready,
    /// every pod Running (or Succeeded) and the backup Job complete; then records the
    /// CronJob's last schedule time from that Job, as the CronJob controller would have.
    fn wait_ready(&self, deadline: Instant) -> Result<(), String> {
        let mut last = Vec::new();
        while Instant::now() < deadline {
            let json = self.kubectl_output(&[
                "get",
                "pvc,statefulset,deployment,job,pod",
                "-A",
                "-o",
                "json",
            ])?;
            let list: Value = serde_json::from_str(&json)
                .map_err(|e| format!("kubectl printed JSON we cannot read: {e}"))?;
            last = unready(&list);
            if last.is_empty() {
                let job =
                    list["items"].as_array().into_iter().flatten().find(|i| {
                        i["kind"] == "Job" && i["metadata"]["namespace"] == "paperless-ngx"
                    });
                if let Some(started) = job.and_then(|j| j["status"]["startTime"].as_str()) {
                    let patch = format!(r#"{{"status":{{"lastScheduleTime":"{started}"}}}}"#);
                    self.kubectl_output(&[
                        "patch",
                        "cronjob",
                        "paperless-ngx-backup",
                        "-n",
                        "paperless-ngx",
                        "--subresource=status",
                        "--type=merge",
                        "--field-manager=cronjob-controller",
                        "-p",
                        &patch,
                    ])?;
                }
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(format!(
            "the Kubernetes testbed was not ready in time:\n{}{}",
            last.iter()
                .map(|l| format!("  * {l}\n"))
                .collect::<String>(),
            self.component_logs()
        ))
    }

    fn live(&self) -> Live {
        Live {
            name: self.name.clone(),
            dir: self.path.clone(),
            bin_dir: self.bin_dir.clone(),
        }
    }

    /// The last lines of each component's log, to explain a failed start.
    fn component_logs(&self) -> String {
        let logs = self.path.join(format!("work/clusters/{}/logs", self.name));
        let mut text = String::new();
        for entry in fs::read_dir(&logs).into_iter().flatten().flatten() {
            let content = fs::read_to_string(entry.path()).unwrap_or_default();
            let name = entry.file_name().to_string_lossy().into_owned();
            text.push_str(&format!("--- {name} (last lines)\n{}", tail(&content, 5)));
        }
        text
    }
}

impl Drop for KubeTestbed {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("attest: {e}");
        }
    }
}

/// Deletes every testbed this process started (for a SIGINT/SIGTERM handler that is about to
/// exit without running destructors).
pub fn stop_all() {
    let live: Vec<Live> = std::mem::take(&mut *LIVE.lock().unwrap_or_else(|p| p.into_inner()));
    for testbed in live {
        if let Err(e) = nodes::stop(&testbed.dir).and(delete(&testbed)) {
            eprintln!("attest: {e}");
        }
        let _ = fs::remove_dir_all(&testbed.dir);
    }
}

/// Processes whose command line mentions `dir` (the components run from symlinks in the
/// testbed's folder): none may survive a stop.
pub fn processes_in(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) && pid != std::process::id() {
            found.push(format!("{pid} {}", cmdline.trim()));
        }
    }
    found
}

/// `kwokctl delete cluster`, then a kill of anything that survived it, waiting until gone.
fn delete(live: &Live) -> Result<(), String> {
    let output = kwokctl(live).args(["delete", "cluster"]).output();
    let mut problem = match output {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!(
            "`kwokctl delete cluster` failed: {}",
            tail(&String::from_utf8_lossy(&out.stderr), 3)
        )),
        Err(e) => Some(format!("cannot run kwokctl: {e}")),
    };
    let clock = Instant::now();
    loop {
        let left = processes_in(&live.dir);
        if left.is_empty() {
            break;
        }
        if clock.elapsed() > Duration::from_secs(10) {
            problem = Some(format!(
                "processes survived the testbed: {}",
                left.join("; ")
            ));
            break;
        }
        for process in &left {
            let pid = process.split(' ').next().unwrap_or_default();
            let _ = Command::new("kill")
                .args(["-KILL", pid])
                .stderr(Stdio::null())
                .status();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    match problem {
        None => Ok(()),
        Some(p) => Err(p),
    }
}

/// A shell ([`Watchdog`]) that deletes the real nodes, the cluster and its folder if this
/// process dies before [`KubeTestbed::stop`] (SIGKILL, a test harness's timeout, a panic that
/// aborts), so no container, etcd or apiserver outlives us.
fn watchdog(live: &Live) -> Result<Watchdog, String> {
    let script = r#"read -r line
[ -f "$2/nodes/cleanup" ] && sh "$2/nodes/cleanup" >/dev/null 2>&1
"$0" --name "$1" delete cluster >/dev/null 2>&1; rm -rf "$2""#;
    Watchdog::start(script, |shell| {
        kwokctl_env(live, shell)
            .arg(live.bin_dir.join("kwokctl"))
            .arg(&live.name)
            .arg(&live.dir);
    })
    .map_err(|e| format!("cannot start the testbed's watchdog shell: {e}"))
}

fn kwokctl(live: &Live) -> Command {
    let mut command = Command::new(live.bin_dir.join("kwokctl"));
    kwokctl_env(live, &mut command)
        .arg("--name")
        .arg(&live.name)
        .stdin(Stdio::null());
    command
}

/// A clean environment: HOME and KWOK_WORKDIR inside the testbed, our binaries first on PATH.
fn kwokctl_env<'c>(live: &Live, command: &'c mut Command) -> &'c mut Command {
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", live.bin_dir.display());
    command
        .env_clear()
        .env("PATH", path)
        .env("HOME", live.dir.join("home"))
        .env("KWOK_WORKDIR", live.dir.join("work"))
}

/// What is not ready yet in a `kubectl get -A -o json` list, one line per object and field.
fn unready(list: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    let name = |i: &Value| {
        let m = &i["metadata"];
        format!(
            "{} {}/{}",
            i["kind"].as_str().unwrap_or("?"),
            m["namespace"].as_str().unwrap_or(""),
            m["name"].as_str().unwrap_or("?")
        )
    };
    let field =
        |i: &Value, path: &[&str]| -> Value { path.iter().fold(i.clone(), |v, k| v[*k].clone()) };
    let expect = |missing: &mut Vec<String>, i: &Value, path: &[&str], want: &Value| {
        let found = field(i, path);
        if &found != want {
            missing.push(format!(
                "{}: {}: expected {want}, found {found}",
                name(i),
                path.join(".")
            ));
        }
    };
    let kinds = |kind: &str| items.iter().filter(move |i| i["kind"] == kind).count();
    for (kind, at_least) in [
        ("StatefulSet", 1),
        ("Deployment", 4),
        ("Job", 1),
        ("Pod", 6),
    ] {
        if kinds(kind) < at_least {
            missing.push(format!(
                "{kind}: expected at least {at_least}, found {}",
                kinds(kind)
            ));
        }
    }
    for item in &items {
        match item["kind"].as_str().unwrap_or_default() {
            "PersistentVolumeClaim" => {
                expect(&mut missing, item, &["status", "phase"], &"Bound".into())
            }
            "StatefulSet" | "Deployment" => {
                let want = field(item, &["spec", "replicas"]);
                expect(&mut missing, item, &["status", "readyReplicas"], &want);
            }
            "Job" => expect(&mut missing, item, &["status", "succeeded"], &1.into()),
            "Pod" => {
                let phase = field(item, &["status", "phase"]);
                if phase != "Running" && phase != "Succeeded" {
                    missing.push(format!(
                        "{}: status.phase: expected Running, found {phase}",
                        name(item)
                    ));
                }
            }
            _ => {}
        }
    }
    missing
}

/// The Secrets of the stories, from the real passwords; the ones external-secrets would have
/// created get random values.
fn secrets(pg: &PostgresTarget) -> String {
    let random = || {
        use rand::Rng;
        let mut rng = rand::rng();
        (0..32)
            .map(|_| rng.sample(rand::distr::Alphanumeric) as char)
            .collect::<String>()
    };
    let secret = |namespace: &str, name: &str, data: &[(&str, String)], labels: &str| {
        let data: String = data
            .iter()
            .map(|(k, v)| format!("  {k}: \"{}\"\n", yaml_escape(v)))
            .collect();
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name}\n  namespace: {namespace}\n{labels}type: Opaque\nstringData:\n{data}---\n"
        )
    };
    let helm = "  labels:\n    app.kubernetes.io/instance: postgres\n    app.kubernetes.io/managed-by: Helm\n    app.kubernetes.io/name: postgresql\n";
    let eso = "  labels:\n    reconcile.external-secrets.io/managed: \"true\"\n";
    let cnpg = "  labels:\n    cnpg.io/cluster: paperless-ngx-db\n    cnpg.io/reload: \"true\"\n";
    let mut text = String::from(
        "# Generated at start from the throwaway PostgreSQL's real passwords; never committed.\n",
    );
    text += &secret(
        "data",
        "postgres-postgresql",
        &[("postgres-password", pg.superuser_password.clone())],
        helm,
    );
    text += &secret(
        "docs",
        "paperless-secrets",
        &[
            ("PAPERLESS_DBPASS", pg.paperless_password.clone()),
            ("PAPERLESS_SECRET_KEY", random()),
        ],
        "",
    );
    let app = [
        ("username", "paperless-ngx".to_owned()),
        ("password", pg.paperless_password.clone()),
        ("dbname", "paperless-ngx".to_owned()),
        ("host", "paperless-ngx-db-rw".to_owned()),
        ("port", "5432".to_owned()),
    ];
    text += &secret("paperless-ngx", "paperless-ngx-db-app", &app, cnpg);
    for (name, keys) in [
        ("paperless-ngx-admin", &["username", "password"][..]),
        ("paperless-ngx-secret-key", &["key"]),
        ("paperless-ngx-redis", &["password"]),
        ("paperless-ngx-restic", &["password"]),
        (
            "paperless-ngx-postgres-s3",
            &["ACCESS_KEY_ID", "ACCESS_SECRET_KEY"],
        ),
        (
            "paperless-ngx-files-s3",
            &["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"],
        ),
    ] {
        let data: Vec<(&str, String)> = keys.iter().map(|k| (*k, random())).collect();
        text += &secret("paperless-ngx", name, &data, eso);
    }
    text
}

/// Escapes text for a double-quoted YAML scalar.
fn yaml_escape(text: &str) -> String {
    text.replace('\\', r"\\").replace('"', "\\\"")
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    fs::write(path, text)
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(0o600)))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))
}

fn chown_tree(path: &Path, uid: u32, gid: u32) -> Result<(), String> {
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .map_err(|e| format!("cannot give {} to uid {uid}: {e}", path.display()))?;
    if path.is_dir() && !path.is_symlink() {
        let entries =
            fs::read_dir(path).map_err(|e| format!("cannot list {}: {e}", path.display()))?;
        for entry in entries.flatten() {
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// uid and gid of `nobody` from /etc/passwd (65534 when absent).
fn nobody() -> (u32, u32) {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 3 && f[0] == "nobody")
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .unwrap_or((NOBODY, NOBODY))
}

/// `n` distinct loopback ports free right now, picked by the OS (held together, so distinct).
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners = (0..n)
        .map(|_| std::net::TcpListener::bind(("127.0.0.1", 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot find free ports on 127.0.0.1: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("cannot find free ports on 127.0.0.1: {e}"))
}

fn remaining(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unready_names_each_object_and_field() {
        let list: Value = serde_json::from_str(
            r#"{"items":[
              {"kind":"PersistentVolumeClaim","metadata":{"namespace":"data","name":"data-postgres-postgresql-0"},"status":{"phase":"Pending"}},
              {"kind":"Pod","metadata":{"namespace":"data","name":"p"},"status":{"phase":"Pending"}}
            ]}"#,
        )
        .unwrap();
        let lines = unready(&list);
        assert!(lines.contains(
            &"PersistentVolumeClaim data/data-postgres-postgresql-0: status.phase: expected \"Bound\", found \"Pending\"".to_owned()
        ), "{lines:?}");
        assert!(lines
            .iter()
            .any(|l| l.starts_with("Pod data/p: status.phase")));
        assert!(lines
            .iter()
            .any(|l| l.starts_with("StatefulSet: expected at least 1")));
    }

    #[test]
    fn secrets_hold_the_real_passwords_escaped() {
        let pg = PostgresTarget {
            host: "127.0.0.1".into(),
            port: 5432,
            superuser_password: "s\"p".into(),
            paperless_password: "pp".into(),
            bin_dir: None,
        };
        let text = secrets(&pg);
        assert!(text.contains("  postgres-password: \"s\\\"p\"\n"));
        assert!(text.contains("  PAPERLESS_DBPASS: \"pp\"\n"));
    }
}

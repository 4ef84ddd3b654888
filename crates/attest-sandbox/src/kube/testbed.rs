//! The testbed's life: [`KubeTestbed::start`] (prepare, create the cluster, apply the
//! stories' cluster, start the real nodes, wait until ready), what callers ask of a running
//! testbed, and its stop (also on drop).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use attest_core::watchdog::Watchdog;
use chrono::Utc;
use tempfile::TempDir;

use super::binaries::{build_command, missing_in, workspace_root};
use super::cleanup::delete;
use super::kwok::{watchdog, Live, LIVE};
use super::util::tail;
use super::{nodes, PostgresTarget};

/// ClusterIPs of Services on kwok's nodes only: inside loopback, which kube-apiserver accepts
/// for Services, so nothing on this machine could ever dial one off it. With real nodes, whose
/// pods have a loopback of their own, Services take [`nodes::SERVICE_CIDR`] instead.
pub(super) const SERVICE_CIDR: &str = "127.64.0.0/16";
/// Pod IPs kwok hands out by default ([`KubeOptions::pod_cidr`]): inside loopback too, so even
/// the apiserver's pods/proxy and services/proxy could only ever reach this machine. The price:
/// the EndpointSlice controller refuses loopback addresses, so Services have no endpoints
/// (port-forward to a Service still works: kubectl picks a pod by the Service's selector).
pub const LOOPBACK_POD_CIDR: &str = "127.128.0.0/16";

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
    pub(super) dir: Option<TempDir>,
    pub(super) path: PathBuf,
    pub(super) name: String,
    pub(super) bin_dir: PathBuf,
    pub(super) kubeconfig: PathBuf,
    pub(super) startup: Duration,
    /// Deletes the cluster if this process dies without stopping it (see [`watchdog`]).
    pub(super) watchdog: Option<Watchdog>,
    /// The real nodes, when asked for ([`KubeOptions::real_nodes`]).
    pub(super) nodes: Option<nodes::Nodes>,
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

    pub(super) fn teardown(&mut self) -> Result<(), String> {
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

    pub(super) fn live(&self) -> Live {
        Live {
            name: self.name.clone(),
            dir: self.path.clone(),
            bin_dir: self.bin_dir.clone(),
        }
    }

    /// The last lines of each component's log, to explain a failed start.
    pub(super) fn component_logs(&self) -> String {
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

//! Real nodes for the testbed: each a kubelet (built by `scripts/kube-build` from the pinned
//! module) with a containerd of its own (Debian's containerd and runc), running real
//! containers from the images of `scripts/node-images`, next to kwok's simulated nodes.
//!
//! Where they run: in the testbed's own network namespace, which must not be the host's (it
//! may have no link but loopback and the nodes' own): the control plane runs there too, so
//! kubelets reach the apiserver on loopback, pods reach it on node 1's address (it listens on
//! the namespace's addresses when real nodes run, see kube.rs), and the apiserver reaches the
//! kubelets on node addresses that exist only in that namespace. `attest sandbox` moves itself
//! into such a namespace, the tests run under `unshare --net`. Everything the nodes add to the
//! network (a veth pair carrying the node addresses, one CNI bridge per node, kubelet's and
//! kube-proxy's iptables chains, the pods' DNS on port 53) lives in that namespace; in the
//! host's namespace the nodes refuse to start.
//!
//! Per node: its own containerd (root, state, socket, runc root, `/run/containerd` for shim
//! sockets, CNI config and IP store), started in a mount namespace of its own
//! (`unshare --mount --propagation slave`) that its kubelet joins, so every mount the node
//! makes (kubelet's root dir, volumes, container root filesystems, pod network namespaces)
//! disappears with the node's processes and none reaches the host's mount table; its own
//! cgroup root (kubelet's `cgroupRoot`), pod log folder, root dir and port, and its own
//! client certificate (`system:node:NAME`). Its containerd root starts as a hard-linked copy
//! of a template holding the images (made once per images and containerd version).
//!
//! Pod networking: one kube-proxy (iptables mode, from the same pinned module) for the
//! namespace both nodes share, so pods reach ClusterIP Services, the `kubernetes` one included
//! (the apiserver listens in that namespace and advertises node 1's address, see kube.rs).
//! One, not one per node: both nodes' pods are routed through the same namespace and its one
//! netfilter table, whose KUBE-* chains kube-proxy owns and rewrites whole on every sync; two
//! would overwrite each other with the same rules. It takes node 1's name, so only node 1's
//! endpoints count as local for `internalTrafficPolicy`/`externalTrafficPolicy: Local`.
//!
//! Stopping (also from the watchdog after a SIGKILL) is one generated shell script,
//! `nodes/cleanup`: kubelets and kube-proxy, then every process in the nodes' cgroups (the
//! containers), then every process whose command line names the nodes' folder (containerd,
//! shims), then kube-proxy's iptables rules (`kube-proxy --cleanup`) and kubelet's chains, the
//! cgroup folders and the links.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Node addresses (on a veth pair inside the testbed's namespace): the shared address space
/// of RFC 6598, which no interface of our machines uses (checked at start).
pub const NODE_NET: &str = "100.64.0";
/// Pod addresses: node `i` gets `100.65.i.0/24` on its CNI bridge.
pub const POD_NET: &str = "100.65";
/// ClusterIPs of Services when real nodes run (`--service-cluster-ip-range`): RFC 6598 too, free
/// in the namespace (checked at start), where kube-proxy's rules give them meaning. Not loopback
/// as with kwok's nodes only: inside a pod, 127.0.0.0/8 is the pod's own.
pub const SERVICE_CIDR: &str = "100.66.0.0/16";
const SERVICE_NET: &str = "100.66";
/// The `kubernetes` Service's ClusterIP (the first of [`SERVICE_CIDR`]), in the apiserver's
/// certificate.
pub const API_SERVICE_IP: &str = "100.66.0.1";
/// The address the apiserver advertises (the `kubernetes` Service's endpoint) when real nodes
/// run: node 1's, in the testbed's namespace, where the apiserver then listens on every address.
pub const API_ADDRESS: &str = "100.64.0.1";
/// kubelet's `clusterDNS`: where the pods' DNS ([`super::pod_dns`]) answers, port 53 of node 1's
/// address in the testbed's namespace.
pub const DNS_ADDRESS: &str = "100.64.0.1";
/// Taint of the real nodes: only pods that tolerate it (the tests', PostgreSQL's) go there.
pub const TAINT: &str = "attest.dev/real-node";
/// Names of the real nodes, as k3s agents would register (labels below).
pub const NODE_NAMES: [&str; 2] = ["k3s-real-01", "k3s-real-02"];
/// Where kubelet binds its device-plugin socket, whatever its root folder (private per node).
const DEVICE_PLUGINS: &str = "/var/lib/kubelet/device-plugins";
/// The pause image `scripts/node-images` builds (kubernetes' build/pause at the pinned version).
const PAUSE_IMAGE: &str = "attest.local/pause:3.10.1";
/// Image tarballs of `scripts/node-images`, imported into each node's containerd.
pub const IMAGES: [&str; 3] = ["pause", "base", "postgresql"];
/// What the nodes run from the host (Debian packages containerd, runc, iproute2, iptables,
/// util-linux, openssl), looked up on PATH (kube-proxy runs iptables-save/-restore).
const HOST_TOOLS: [&str; 11] = [
    "containerd",
    "containerd-shim-runc-v2",
    "runc",
    "ctr",
    "ip",
    "iptables",
    "iptables-save",
    "iptables-restore",
    "unshare",
    "nsenter",
    "openssl",
];
/// The CNI plugins (Debian's containernetworking-plugins).
const CNI_BIN: &str = "/usr/lib/cni";
const VETH: [&str; 2] = ["attest-rn1", "attest-rn2"];

/// attest's image from an attest binary (`scripts/attest-image BINARY OUT`, cached by
/// content): writes the tarball to `out` and returns the image's name
/// (`docker.io/library/attest:VERSION`, what the Job's default `attest:VERSION` means).
/// `strip`: the binary's symbols removed in the image (a debug build shrinks to a sixth).
pub fn attest_image(binary: &Path, out: &Path, strip: bool) -> Result<String, String> {
    let script = super::workspace_root().join("scripts/attest-image");
    let output = Command::new("python3")
        .arg(&script)
        .arg(binary)
        .arg(out)
        .args(strip.then_some("--strip"))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The folder of `scripts/node-images` (built or not) and whether it is complete.
pub fn images_dir() -> Result<PathBuf, String> {
    let script = super::workspace_root().join("scripts/node-images");
    let output = Command::new("bash")
        .arg(&script)
        .arg("--print-dir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    match output.status.success() {
        true => Ok(dir),
        false => Err(format!(
            "the real nodes' images are not built yet ({}); build them with `{}` (as root, about 2 minutes, once)",
            dir.display(),
            script.display()
        )),
    }
}

/// Why real nodes cannot run here (the first missing piece), or None.
pub fn unavailable(bin_dir: &Path, images: &Path) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    if !fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0) {
        return Some("real nodes need root (containerd, cgroups, mounts)".to_owned());
    }
    for binary in ["kubelet", "kube-proxy"] {
        if !bin_dir.join(binary).is_file() {
            return Some(format!(
                "{} has no {binary}; build it with `{}`",
                bin_dir.display(),
                super::build_command()
            ));
        }
    }
    for tool in HOST_TOOLS {
        if which(tool).is_none() {
            return Some(format!(
                "`{tool}` is not on PATH; install Debian's containerd, runc, iproute2, iptables, util-linux and openssl (scripts/test does)"
            ));
        }
    }
    for plugin in ["bridge", "host-local", "loopback"] {
        if !Path::new(CNI_BIN).join(plugin).is_file() {
            return Some(format!(
                "{CNI_BIN}/{plugin} is missing; install Debian's containernetworking-plugins"
            ));
        }
    }
    for image in IMAGES {
        if !images.join(format!("{image}.tar")).is_file() {
            return Some(format!(
                "{} has no {image}.tar; build the images with `{}`",
                images.display(),
                super::workspace_root()
                    .join("scripts/node-images")
                    .display()
            ));
        }
    }
    if host_namespace() {
        return Some(
            "real nodes add links, routes and iptables chains to their network namespace, so they never run in the host's: run inside a network namespace of its own (`attest sandbox` does; tests: unshare --net)"
                .to_owned(),
        );
    }
    if !Path::new("/sys/fs/cgroup/memory").is_dir()
        && !Path::new("/sys/fs/cgroup/cgroup.controllers").is_file()
    {
        return Some("no cgroup hierarchy under /sys/fs/cgroup".to_owned());
    }
    None
}

/// Whether this network namespace may be the host's: it has a link other than loopback and
/// the ones real nodes make (`attest-*`, and the pods' `veth*`). A namespace made for the run
/// (`unshare --net`) has only `lo`. (Comparing with PID 1's namespace does not work where PID
/// 1 belongs to a container manager: seen on our machines, where the host's shell is not in
/// PID 1's namespace and that link is unreadable from a new one.)
fn host_namespace() -> bool {
    match Command::new("ip").args(["-o", "link"]).output() {
        Ok(out) if out.status.success() => foreign_links(&String::from_utf8_lossy(&out.stdout)),
        _ => true,
    }
}

/// Whether `ip -o link` lists a link that is neither loopback nor one of the nodes' own.
fn foreign_links(links: &str) -> bool {
    links.lines().any(|line| {
        let name = line.split(':').nth(1).unwrap_or_default().trim();
        let name = name.split('@').next().unwrap_or_default();
        !(name == "lo" || name.starts_with("attest-") || name.starts_with("veth"))
    })
}

pub(crate) fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

/// The running real nodes of one testbed.
pub struct Nodes {
    dir: PathBuf,
    bin_dir: PathBuf,
    /// containerds and kubelets, reaped once the cleanup script has stopped them.
    children: Vec<Child>,
    /// The pods' DNS, in this process.
    dns: Option<super::pod_dns::PodDns>,
    /// Measured while starting: images imported, all nodes Ready.
    pub import_time: Duration,
    pub startup: Duration,
}

/// What the nodes need from the testbed.
pub struct Cluster<'a> {
    /// The testbed's folder; the nodes use `nodes/` inside it.
    pub dir: &'a Path,
    pub name: &'a str,
    pub bin_dir: &'a Path,
    pub kubeconfig: &'a Path,
    pub images: &'a Path,
    /// kwokctl's PKI (`ca.crt`, `ca.key`): each node gets a client certificate from it.
    pub pki: &'a Path,
}

impl Nodes {
    /// The folder the watchdog looks for: `nodes/cleanup` inside the testbed's folder.
    pub fn cleanup_script(testbed_dir: &Path) -> PathBuf {
        testbed_dir.join("nodes/cleanup")
    }

    /// Starts the nodes and waits until both are Ready; on error everything started is
    /// stopped again (the caller's teardown runs the cleanup script too).
    pub fn start(
        cluster: &Cluster,
        kubectl: impl Fn(&[&str]) -> Result<String, String>,
        deadline: Instant,
    ) -> Result<Nodes, String> {
        let clock = Instant::now();
        if let Some(why) = unavailable(cluster.bin_dir, cluster.images) {
            return Err(format!("real nodes cannot run here: {why}"));
        }
        let dir = cluster.dir.join("nodes");
        fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let cgroups = cgroup_roots(cluster.name);
        fs::write(
            Self::cleanup_script(cluster.dir),
            cleanup_script(&dir, &cgroups, &cluster.bin_dir.join("kube-proxy")),
        )
        .and_then(|()| {
            fs::set_permissions(
                Self::cleanup_script(cluster.dir),
                fs::Permissions::from_mode(0o700),
            )
        })
        .map_err(|e| format!("cannot write the nodes' cleanup script: {e}"))?;
        let mut nodes = Nodes {
            dir: dir.clone(),
            bin_dir: cluster.bin_dir.to_path_buf(),
            children: Vec::new(),
            dns: None,
            import_time: Duration::ZERO,
            startup: Duration::ZERO,
        };
        network()?;
        make_cgroups(&cgroups)?;
        // One port per kubelet, then kube-proxy's healthz and metrics (127.0.0.1).
        let ports = super::free_ports(NODE_NAMES.len() + 2)?;
        // Each node's containerd root: a hard-linked copy of a template that has the images
        // (made once per images folder), else an import into each.
        let import = Instant::now();
        let template = template(cluster.images, deadline);
        let mut containerds = Vec::new();
        for (i, name) in NODE_NAMES.iter().enumerate() {
            let node = Node::new(&dir, i + 1, name, ports[i], &cgroups.name);
            node.write_config(cluster.pki)?;
            let cloned = match &template {
                Ok(root) => node.clone_root(root).is_ok(),
                Err(_) => false,
            };
            let child = node.start_containerd(deadline)?;
            let pid = child.id();
            nodes.children.push(child);
            containerds.push((node, pid, cloned));
        }
        std::thread::scope(|scope| {
            let jobs: Vec<_> = containerds
                .iter()
                .filter(|(_, _, cloned)| !cloned)
                .map(|(node, _, _)| scope.spawn(|| node.import(cluster.images)))
                .collect();
            jobs.into_iter()
                .map(|j| {
                    j.join()
                        .unwrap_or_else(|_| Err("an import panicked".into()))
                })
                .collect::<Result<Vec<()>, String>>()
        })?;
        nodes.import_time = import.elapsed();
        let containerds: Vec<(Node, u32)> = containerds
            .into_iter()
            .map(|(node, pid, _)| (node, pid))
            .collect();
        let server = fs::read_to_string(cluster.kubeconfig)
            .ok()
            .and_then(|text| {
                text.lines().find_map(|l| {
                    l.trim()
                        .strip_prefix("server:")
                        .map(|s| s.trim().to_owned())
                })
            })
            .ok_or_else(|| format!("no server in {}", cluster.kubeconfig.display()))?;
        let dns_ip = DNS_ADDRESS.parse().expect("an IPv4 address");
        nodes.dns = Some(super::pod_dns::PodDns::start(dns_ip, &server, cluster.pki)?);
        for (node, pid) in &containerds {
            node.identity(cluster.pki, &server)?;
            nodes.children.push(node.start_kubelet(cluster, *pid)?);
        }
        let proxy = Proxy {
            dir: dir.join("proxy"),
            healthz: ports[NODE_NAMES.len()],
            metrics: ports[NODE_NAMES.len() + 1],
        };
        let child = proxy.start(cluster, &server)?;
        let pid = child.id();
        nodes.children.push(child);
        wait_ready(&kubectl, deadline, &containerds)?;
        proxy.wait_healthy(pid, deadline)?;
        nodes.startup = clock.elapsed();
        Ok(nodes)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Imports an image tarball (docker-archive or OCI layout, e.g. from
    /// `scripts/attest-image`) into every node's containerd (`ctr -n k8s.io images import`),
    /// as the node images are; pods then run it by the name inside the tarball with
    /// `imagePullPolicy: IfNotPresent` or `Never`. Returns the time it took.
    pub fn import_image(&self, tarball: &Path) -> Result<Duration, String> {
        let clock = Instant::now();
        if !tarball.is_file() {
            return Err(format!("no image tarball at {}", tarball.display()));
        }
        for (i, name) in NODE_NAMES.iter().enumerate() {
            let node = Node::new(&self.dir, i + 1, name, 0, "");
            node.import_tar(tarball)?;
        }
        Ok(clock.elapsed())
    }

    /// A node's log (`kubelet` or `containerd`), for failures.
    pub fn log(&self, node: usize, what: &str) -> String {
        fs::read_to_string(self.dir.join(format!("{node}/{what}.log"))).unwrap_or_default()
    }

    /// Where the pods' DNS answers (kubelet's `clusterDNS`, port 53).
    pub fn dns_addr(&self) -> Option<std::net::SocketAddr> {
        self.dns.as_ref().map(|d| d.addr())
    }

    /// kube-proxy's PID while it runs (None once it exited or was stopped).
    pub fn proxy_pid(&self) -> Option<u32> {
        let pid: u32 = fs::read_to_string(self.dir.join("proxy/kube-proxy.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        // A zombie (exited, not yet reaped by us) does not count.
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let state = stat.rsplit(')').next()?.split_whitespace().next()?;
        (state != "Z").then_some(pid)
    }

    /// kube-proxy's log, for failures.
    pub fn proxy_log(&self) -> String {
        fs::read_to_string(self.dir.join("proxy/kube-proxy.log")).unwrap_or_default()
    }

    /// Stops kube-proxy and removes its rules (`kube-proxy --cleanup`), as the cleanup script
    /// does, leaving the nodes running: what pods see without it (for tests).
    pub fn stop_proxy(&self) -> Result<(), String> {
        if let Some(pid) = self.proxy_pid() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            let clock = Instant::now();
            while self.proxy_pid().is_some() && clock.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let out = Command::new(self.bin_dir.join("kube-proxy"))
            .arg("--cleanup")
            .env("PATH", SCRIPT_PATH)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run kube-proxy --cleanup: {e}"))?;
        match out.status.success() {
            true => Ok(()),
            false => Err(format!(
                "kube-proxy --cleanup failed: {}",
                super::tail(&String::from_utf8_lossy(&out.stderr), 5)
            )),
        }
    }
}

/// PATH for what the nodes run from scripts and the watchdog (whose environment is minimal):
/// iptables and ip live in sbin on Debian.
const SCRIPT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The namespace's one kube-proxy (see the module's documentation).
struct Proxy {
    dir: PathBuf,
    healthz: u16,
    metrics: u16,
}

impl Proxy {
    /// Its own client certificate (`system:kube-proxy`, which the default ClusterRoleBinding
    /// `system:node-proxier` grants what kube-proxy needs) and configuration, then kube-proxy
    /// itself, in this (the testbed's) network namespace; no mount namespace: it mounts nothing.
    fn start(&self, cluster: &Cluster, server: &str) -> Result<Child, String> {
        fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        client_identity(&self.dir, cluster.pki, server, "system:kube-proxy", None)?;
        let config = format!(
            r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
# kube-proxy of attest's testbed (generated): one for the network namespace both real nodes
# share, named after node 1.
clientConnection: {{kubeconfig: "{kubeconfig}"}}
hostnameOverride: {node}
mode: iptables
# The node's address (no server binds it): node 1's in the testbed's namespace.
bindAddress: {ip}
healthzBindAddress: 127.0.0.1:{healthz}
metricsBindAddress: 127.0.0.1:{metrics}
clusterCIDR: {POD_NET}.0.0/16
detectLocalMode: ClusterCIDR
nodePortAddresses: [primary]
iptables: {{localhostNodePorts: false, minSyncPeriod: 1s, syncPeriod: 30s}}
# Leave the kernel's conntrack settings alone (the limit is not per namespace) and the OOM
# score too (no CAP_SYS_RESOURCE here).
conntrack: {{maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}}
oomScoreAdj: 0
"#,
            kubeconfig = self.dir.join("kubeconfig.yaml").display(),
            node = NODE_NAMES[0],
            ip = API_ADDRESS,
            healthz = self.healthz,
            metrics = self.metrics,
        );
        let path = self.dir.join("config.yaml");
        fs::write(&path, config).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        let log = fs::File::create(self.dir.join("kube-proxy.log"))
            .map_err(|e| format!("cannot create kube-proxy's log: {e}"))?;
        let child = Command::new(cluster.bin_dir.join("kube-proxy"))
            .arg(format!("--config={}", path.display()))
            .arg(format!("--hostname-override={}", NODE_NAMES[0]))
            .arg("--v=2")
            .env("PATH", SCRIPT_PATH)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start kube-proxy: {e}"))?;
        fs::write(self.dir.join("kube-proxy.pid"), child.id().to_string())
            .map_err(|e| format!("cannot write kube-proxy's pid: {e}"))?;
        Ok(child)
    }

    /// Until kube-proxy's /healthz answers 200: it has written its rules at least once.
    fn wait_healthy(&self, pid: u32, deadline: Instant) -> Result<(), String> {
        loop {
            let last = match http_status(self.healthz, "/healthz") {
                Ok(200) => return Ok(()),
                Ok(code) => format!("/healthz answered {code}"),
                Err(e) => e,
            };
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let exited = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            if Instant::now() > deadline || matches!(exited, None | Some("Z")) {
                let log = fs::read_to_string(self.dir.join("kube-proxy.log")).unwrap_or_default();
                return Err(format!(
                    "kube-proxy was not healthy in time or exited ({last}); its log (last lines):\n{}",
                    super::tail(&log, 10)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The status code of a plain HTTP GET to 127.0.0.1:`port`.
fn http_status(port: u16, path: &str) -> Result<u16, String> {
    use std::io::{Read, Write};
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(1))
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).map_err(|e| e.to_string())?;
    String::from_utf8_lossy(&head[9..12])
        .parse()
        .map_err(|_| format!("not HTTP: {}", String::from_utf8_lossy(&head)))
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A containerd root holding the images, made once next to them (`containerd-template-VERSION/`
/// in the images folder, whose name is already keyed by their content), so that a node's root is
/// a hard-linked copy in a second instead of an import of 15-20 s per node. Made in a folder
/// of its own, then renamed into place: a concurrent maker loses the rename and cleans up.
fn template(images: &Path, deadline: Instant) -> Result<PathBuf, String> {
    // Keyed by containerd's version too: its databases' format is its own.
    let version = Command::new("containerd")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let version = version.split_whitespace().nth(2).unwrap_or("unknown");
    let version: String = version
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let done = images.join(format!("containerd-template-{version}"));
    let root = done.join("containerd/root");
    if done.join("complete").is_file() {
        return Ok(root);
    }
    let stage = images.join(format!(".template-{}", std::process::id()));
    let _ = fs::remove_dir_all(&stage);
    let node = Node {
        index: 0,
        name: "template".to_owned(),
        dir: stage.clone(),
        port: 0,
        cgroup_root: String::new(),
    };
    let made = (|| {
        node.write_config(images)?;
        let mut child = node.start_containerd(deadline)?;
        let imported = node.import(images);
        let _ = child.kill();
        let _ = child.wait();
        imported?;
        fs::write(stage.join("complete"), "")
            .map_err(|e| format!("cannot write into {}: {e}", stage.display()))
    })();
    if let Err(e) = made {
        let _ = fs::remove_dir_all(&stage);
        return Err(e);
    }
    if fs::rename(&stage, &done).is_err() {
        let _ = fs::remove_dir_all(&stage);
    }
    match done.join("complete").is_file() {
        true => Ok(root),
        false => Err(format!("cannot make {}", done.display())),
    }
}

/// Runs the cleanup script of a testbed's nodes, if it has nodes; an error names what stayed.
pub fn stop(testbed_dir: &Path) -> Result<(), String> {
    let script = Nodes::cleanup_script(testbed_dir);
    if !script.is_file() {
        return Ok(());
    }
    let output = Command::new("sh")
        .arg(&script)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    match output.status.success() {
        true => Ok(()),
        false => Err(format!(
            "the real nodes were not cleaned up: {}",
            text.trim()
        )),
    }
}

struct CgroupRoots {
    /// kubelet's `cgroupRoot` (`/attest-<cluster>`; each node takes `/attest-<cluster>-<i>`).
    name: String,
    /// The hierarchies (v1: one folder per mounted controller; v2: the unified one).
    mounts: Vec<PathBuf>,
}

fn cgroup_roots(cluster: &str) -> CgroupRoots {
    let base = Path::new("/sys/fs/cgroup");
    let mut mounts = Vec::new();
    if base.join("cgroup.controllers").is_file() {
        mounts.push(base.to_path_buf());
    } else {
        for entry in fs::read_dir(base).into_iter().flatten().flatten() {
            let path = entry.path();
            // Including the v2 part of a hybrid setup (`unified`): runc creates the
            // containers' cgroups there too.
            if path.is_dir() && !path.is_symlink() {
                mounts.push(path);
            }
        }
    }
    CgroupRoots {
        name: format!("attest-{cluster}"),
        mounts,
    }
}

/// Creates each node's cgroup root in every hierarchy (cpuset's with its parent's CPUs and
/// memory nodes, which a new v1 cpuset lacks).
fn make_cgroups(roots: &CgroupRoots) -> Result<(), String> {
    for mount in &roots.mounts {
        for i in 1..=NODE_NAMES.len() {
            let dir = mount.join(format!("{}-{i}", roots.name));
            fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create the cgroup {}: {e}", dir.display()))?;
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(value) = fs::read_to_string(mount.join(file)) {
                    fs::write(dir.join(file), value.trim())
                        .map_err(|e| format!("cannot write {}: {e}", dir.join(file).display()))?;
                }
            }
        }
    }
    Ok(())
}

/// Whether the nodes' address ranges are free in this namespace.
fn addresses_free() -> Result<(), String> {
    let used = Command::new("ip")
        .args(["-4", "-o", "addr"])
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    let used = String::from_utf8_lossy(&used.stdout);
    for net in [
        format!(" {NODE_NET}."),
        format!(" {POD_NET}."),
        format!(" {SERVICE_NET}."),
    ] {
        if used.contains(&net) {
            return Err(format!(
                "addresses{net}x are in use in this network namespace (another testbed with real nodes?):\n{used}"
            ));
        }
    }
    Ok(())
}

/// Everything that can be known before the testbed starts: the pieces ([`unavailable`]) and
/// free node addresses. Checked first, so a start that cannot get real nodes fails at once.
pub fn preflight(bin_dir: &Path, images: &Path) -> Result<(), String> {
    if let Some(why) = unavailable(bin_dir, images) {
        return Err(format!("real nodes cannot run here: {why}"));
    }
    addresses_free()
}

/// The veth pair with the node addresses, and forwarding between the nodes' pod bridges, in
/// our (non-host) namespace. A second testbed with real nodes in the same namespace is refused.
fn network() -> Result<(), String> {
    addresses_free()?;
    let ip = |args: &[&str]| -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run ip: {e}"))?;
        match out.status.success() {
            true => Ok(()),
            false => Err(format!(
                "`ip {}` failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    };
    ip(&[
        "link", "add", VETH[0], "type", "veth", "peer", "name", VETH[1],
    ])?;
    for (i, link) in VETH.iter().enumerate() {
        ip(&[
            "addr",
            "add",
            &format!("{NODE_NET}.{}/24", i + 1),
            "dev",
            link,
        ])?;
        ip(&["link", "set", link, "up"])?;
    }
    // Per namespace: pods on one node's bridge reach the other node's pods.
    fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .map_err(|e| format!("cannot enable forwarding in the testbed's namespace: {e}"))
}

struct Node {
    index: usize,
    name: String,
    dir: PathBuf,
    port: u16,
    cgroup_root: String,
}

impl Node {
    fn new(nodes: &Path, index: usize, name: &str, port: u16, cgroup_base: &str) -> Node {
        Node {
            index,
            name: name.to_owned(),
            dir: nodes.join(index.to_string()),
            port,
            cgroup_root: format!("/{cgroup_base}-{index}"),
        }
    }

    fn ip(&self) -> String {
        format!("{NODE_NET}.{}", self.index)
    }

    fn path(&self, rel: &str) -> String {
        self.dir.join(rel).display().to_string()
    }

    fn write_config(&self, pki: &Path) -> Result<(), String> {
        for sub in [
            "containerd/state",
            "containerd/run",
            "runc",
            "opt",
            "cni",
            "cni-ipam",
            "kubelet",
            "pod-logs",
            "volume-plugins",
        ] {
            let dir = self.dir.join(sub);
            fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let containerd = format!(
            r#"# containerd of real node {name} (generated by attest's testbed)
version = 2
root = "{root}"
state = "{state}"
[grpc]
  address = "{sock}"
[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  # No CAP_SYS_RESOURCE here: a negative oom_score_adj (kubelet asks -998 for sandboxes)
  # would fail in runc.
  restrict_oom_score_adj = true
  # Pod network namespaces under our state folder, not /var/run/netns.
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{runc}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN}"
    conf_dir = "{cni}"
"#,
            name = self.name,
            root = self.path("containerd/root"),
            state = self.path("containerd/state"),
            sock = self.path("containerd.sock"),
            opt = self.path("opt"),
            runc = self.path("runc"),
            cni = self.path("cni"),
        );
        let cni = format!(
            r#"{{
  "cniVersion": "1.0.0",
  "name": "attest-pods",
  "plugins": [{{
    "type": "bridge",
    "bridge": "attest-br{i}",
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {{
      "type": "host-local",
      "dataDir": "{ipam}",
      "ranges": [[{{"subnet": "{POD_NET}.{i}.0/24"}}]],
      "routes": [{{"dst": "{POD_NET}.0.0/16"}}, {{"dst": "{NODE_NET}.0/24"}}, {{"dst": "{SERVICE_CIDR}"}}]
    }}
  }}]
}}
"#,
            i = self.index,
            ipam = self.path("cni-ipam"),
        );
        let kubelet = format!(
            r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# Real node {name} of attest's testbed (generated).
containerRuntimeEndpoint: unix://{sock}
address: {ip}
port: {port}
readOnlyPort: 0
healthzPort: 0
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: {cgroup_root}
cgroupsPerQOS: true
failSwapOn: false
podLogsDir: {logs}
volumePluginDir: {plugins}
# Pods' names come from the testbed's DNS only (kube/pod_dns.rs), never from this machine's.
resolvConf: ""
clusterDNS: [{DNS_ADDRESS}]
clusterDomain: cluster.local
# Callers (the apiserver, with the admin certificate) authenticate against the cluster CA and
# are authorized by the apiserver (SubjectAccessReview); nobody else gets in.
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: "{ca}"}}
authorization: {{mode: Webhook}}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {{"memory.available": "50Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%"}}
serializeImagePulls: false
"#,
            name = self.name,
            sock = self.path("containerd.sock"),
            ip = self.ip(),
            port = self.port,
            cgroup_root = self.cgroup_root,
            logs = self.path("pod-logs"),
            plugins = self.path("volume-plugins"),
            ca = pki.join("ca.crt").display(),
        );
        for (file, text) in [
            ("containerd.toml", containerd),
            ("cni/10-attest.conflist", cni),
            ("kubelet.yaml", kubelet),
        ] {
            let path = self.dir.join(file);
            fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
        Ok(())
    }

    /// `cp -al` of the template root; then each bolt database (`*.db`: containerd's metadata
    /// and the snapshotter's) is replaced by a copy of its own, as those are written in place.
    /// Blobs and unpacked layers stay shared: both are never written (overlayfs lower layers).
    fn clone_root(&self, template: &Path) -> Result<(), String> {
        let root = self.dir.join("containerd/root");
        let out = Command::new("cp")
            .arg("-al")
            .arg(template)
            .arg(&root)
            .output()
            .map_err(|e| format!("cannot run cp: {e}"))?;
        if !out.status.success() {
            let _ = fs::remove_dir_all(&root);
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        // The databases are one level down (io.containerd.metadata.v1.bolt/meta.db,
        // io.containerd.snapshotter.v1.overlayfs/metadata.db); the snapshots below are shared.
        let private = || -> std::io::Result<()> {
            for plugin in fs::read_dir(&root)?.flatten() {
                if !plugin.file_type()?.is_dir() {
                    continue;
                }
                for file in fs::read_dir(plugin.path())?.flatten() {
                    let path = file.path();
                    if path.extension().is_some_and(|x| x == "db") {
                        fs::remove_file(&path)?;
                        fs::copy(
                            template.join(plugin.file_name()).join(file.file_name()),
                            &path,
                        )?;
                    }
                }
            }
            Ok(())
        };
        private().map_err(|e| {
            let _ = fs::remove_dir_all(&root);
            format!(
                "cannot copy containerd's databases into {}: {e}",
                root.display()
            )
        })
    }

    /// containerd in a mount namespace of its own, with a private `/run/containerd` (where
    /// containerd 1.6 puts shim sockets, whatever its state folder) and a private
    /// `/var/lib/kubelet/device-plugins` (kubelet binds its device-plugin socket there whatever
    /// its root folder: two kubelets sharing it race, and the loser's container manager never
    /// starts, so its node never registers); returns its PID.
    fn start_containerd(&self, deadline: Instant) -> Result<Child, String> {
        let log = fs::File::create(self.dir.join("containerd.log"))
            .map_err(|e| format!("cannot create containerd's log: {e}"))?;
        for dir in [
            PathBuf::from("/run/containerd"),
            PathBuf::from(DEVICE_PLUGINS),
            PathBuf::from(self.path("device-plugins")),
        ] {
            fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let script = r#"mount --bind "$0" /run/containerd && mount --bind "$2" "$3" && exec containerd --config "$1""#;
        let child = Command::new("unshare")
            .args([
                "--mount",
                "--propagation",
                "slave",
                "--",
                "sh",
                "-c",
                script,
            ])
            .arg(self.path("containerd/run"))
            .arg(self.path("containerd.toml"))
            .arg(self.path("device-plugins"))
            .arg(DEVICE_PLUGINS)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start containerd: {e}"))?;
        let pid = child.id();
        fs::write(self.dir.join("containerd.pid"), pid.to_string())
            .map_err(|e| format!("cannot write containerd's pid: {e}"))?;
        let sock = self.dir.join("containerd.sock");
        while !sock.exists() {
            if Instant::now() > deadline || !Path::new(&format!("/proc/{pid}")).exists() {
                return Err(format!(
                    "containerd of {} did not start; its log:\n{}",
                    self.name,
                    super::tail(
                        &fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default(),
                        10
                    )
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(child)
    }

    fn import(&self, images: &Path) -> Result<(), String> {
        for image in IMAGES {
            self.import_tar(&images.join(format!("{image}.tar")))?;
        }
        Ok(())
    }

    fn import_tar(&self, tar: &Path) -> Result<(), String> {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(self.path("containerd.sock"))
            .args(["-n", "k8s.io", "images", "import"])
            .arg(tar)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run ctr: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "importing {} into {}'s containerd failed: {}",
                tar.display(),
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(())
    }

    /// The node's own client certificate (`system:node:NAME` in `system:nodes`, signed by the
    /// cluster CA, so the Node authorizer applies) and a kubeconfig with it.
    fn identity(&self, pki: &Path, server: &str) -> Result<(), String> {
        let user = format!("system:node:{}", self.name);
        client_identity(&self.dir, pki, server, &user, Some("system:nodes"))
    }

    /// kubelet in its containerd's mount namespace (it must see the volumes it mounts).
    fn start_kubelet(&self, cluster: &Cluster, containerd: u32) -> Result<Child, String> {
        let log = fs::File::create(self.dir.join("kubelet.log"))
            .map_err(|e| format!("cannot create kubelet's log: {e}"))?;
        let labels = format!(
            "node.kubernetes.io/instance-type=k3s,type=real,attest.dev/real-node={}",
            self.index
        );
        let child = Command::new("nsenter")
            .arg(format!("--mount=/proc/{containerd}/ns/mnt"))
            .arg("--")
            .arg(cluster.bin_dir.join("kubelet"))
            .arg(format!("--config={}", self.path("kubelet.yaml")))
            .arg(format!("--kubeconfig={}", self.path("kubeconfig.yaml")))
            .arg(format!("--hostname-override={}", self.name))
            .arg(format!("--node-ip={}", self.ip()))
            .arg(format!("--root-dir={}", self.path("kubelet")))
            .arg(format!("--cert-dir={}", self.path("kubelet/pki")))
            .arg(format!("--node-labels={labels}"))
            .arg(format!("--register-with-taints={TAINT}=true:NoSchedule"))
            .arg("--v=2")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start kubelet: {e}"))?;
        fs::write(self.dir.join("kubelet.pid"), child.id().to_string())
            .map_err(|e| format!("cannot write kubelet's pid: {e}"))?;
        Ok(child)
    }
}

/// A client certificate for `user` (in `group`), signed by the cluster CA, and a kubeconfig with
/// it, in `dir` (`client.key`, `client.crt`, `kubeconfig.yaml`).
fn client_identity(
    dir: &Path,
    pki: &Path,
    server: &str,
    user: &str,
    group: Option<&str>,
) -> Result<(), String> {
    let path = |rel: &str| dir.join(rel).display().to_string();
    let (key, csr, crt, ext) = (
        path("client.key"),
        path("client.csr"),
        path("client.crt"),
        path("client.ext"),
    );
    fs::write(
        &ext,
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .map_err(|e| format!("cannot write {ext}: {e}"))?;
    let subject = match group {
        Some(group) => format!("/O={group}/CN={user}"),
        None => format!("/CN={user}"),
    };
    let ca = pki.join("ca.crt").display().to_string();
    let ca_key = pki.join("ca.key").display().to_string();
    let steps: [Vec<&str>; 2] = [
        vec![
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-subj",
            &subject,
            "-out",
            &csr,
        ],
        vec![
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-set_serial",
            "1",
            "-days",
            "7",
            "-extfile",
            &ext,
            "-out",
            &crt,
        ],
    ];
    for args in steps {
        let out = Command::new("openssl")
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run openssl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`openssl {}` failed: {}",
                args[0],
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
    }
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: testbed\n  cluster: {{server: \"{server}\", certificate-authority: \"{ca}\"}}\nusers:\n- name: {name}\n  user: {{client-certificate: \"{crt}\", client-key: \"{key}\"}}\ncontexts:\n- name: node\n  context: {{cluster: testbed, user: {name}}}\ncurrent-context: node\n",
        name = user,
    );
    fs::write(dir.join("kubeconfig.yaml"), kubeconfig)
        .map_err(|e| format!("cannot write {user}'s kubeconfig: {e}"))
}

fn wait_ready(
    kubectl: &impl Fn(&[&str]) -> Result<String, String>,
    deadline: Instant,
    nodes: &[(Node, u32)],
) -> Result<(), String> {
    let mut last;
    loop {
        let mut pending = Vec::new();
        match kubectl(&["get", "nodes", "-o", "json"]) {
            Ok(json) => {
                let list: Value = serde_json::from_str(&json).unwrap_or_default();
                for (node, _) in nodes {
                    let item = list["items"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .find(|n| n["metadata"]["name"] == node.name.as_str());
                    let ready = item.is_some_and(|n| {
                        n["status"]["conditions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    });
                    if !ready {
                        pending.push(match item {
                            None => format!("{} not registered", node.name),
                            Some(n) => format!(
                                "{} not Ready: {}",
                                node.name,
                                n["status"]["conditions"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .find(|c| c["type"] == "Ready")
                                    .map(|c| c["message"].to_string())
                                    .unwrap_or_default()
                            ),
                        });
                    }
                }
            }
            Err(e) => pending.push(e),
        }
        if pending.is_empty() {
            return Ok(());
        }
        last = pending.join("; ");
        if Instant::now() > deadline {
            let logs: String = nodes
                .iter()
                .map(|(n, _)| {
                    let log = fs::read_to_string(n.dir.join("kubelet.log")).unwrap_or_default();
                    format!(
                        "--- kubelet of {} (last lines)\n{}",
                        n.name,
                        super::tail(&log, 8)
                    )
                })
                .collect();
            return Err(format!(
                "the real nodes were not Ready in time: {last}\n{logs}"
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The one way the nodes stop, from [`stop`] and from the watchdog: kubelets and kube-proxy,
/// containers (every process in the nodes' cgroups), containerd and shims (every process whose
/// command line names the nodes' folder), kube-proxy's rules (`kube-proxy --cleanup`), then
/// any KUBE-* chain left (kubelet's), cgroup folders, links. Exits non-zero, naming them, if any
/// remain. Its iptables commands act on the namespace it runs in: the testbed's (the nodes
/// refuse the host's, and the watchdog runs there too).
fn cleanup_script(dir: &Path, cgroups: &CgroupRoots, kube_proxy: &Path) -> String {
    let roots: Vec<String> = cgroups
        .mounts
        .iter()
        .flat_map(|m| {
            (1..=NODE_NAMES.len())
                .map(move |i| format!("'{}'", m.join(format!("{}-{i}", cgroups.name)).display()))
        })
        .collect();
    format!(
        r#"#!/bin/sh
# Stops the real nodes of one testbed (generated by attest's testbed; run by it and by its
# watchdog). Safe to run twice.
PATH={path}
export PATH
dir='{dir}'
roots="{roots}"
links='{links} attest-br1 attest-br2'
proxy='{proxy}'
by_cmdline() {{
  # One `ps`; the folder is passed through the environment, so awk's own command line does
  # not name it.
  D="$dir/" ps -eo pid=,args= | D="$dir/" awk 'index($0, ENVIRON["D"]) && !index($0, ENVIRON["D"] "cleanup") {{ print $1 }}'
}}
in_cgroups() {{
  for r in $roots; do [ -d "$r" ] && find "$r" -name cgroup.procs -exec cat {{}} + 2>/dev/null; done
}}
until_gone() {{
  i=0
  while left=$("$1") && [ -n "$left" ] && [ $i -lt 100 ]; do
    kill -KILL $left 2>/dev/null
    i=$((i + 1))
    sleep 0.1
  done
}}
# KUBE-* chains of one table (`$1`: iptables or ip6tables, `$2`: the table).
kube_chains() {{
  "$1-save" -t "$2" 2>/dev/null | sed -n 's/^:\(KUBE-[^ ]*\) .*/\1/p'
}}
# Removes every KUBE-* chain (kubelet's; kube-proxy's if its own cleanup failed) and the rules
# that jump to them, in this namespace.
sweep_chains() {{
  for cmd in iptables ip6tables; do
    for t in filter nat mangle; do
      chains=$(kube_chains "$cmd" "$t")
      [ -n "$chains" ] || continue
      "$cmd-save" -t "$t" | grep -- '^-A [A-Z]* .*-j KUBE-' | grep -v -- '^-A KUBE-' |
        sed 's/^-A/-D/' | while read -r rule; do eval "$cmd -t $t $rule" 2>/dev/null; done
      for c in $chains; do "$cmd" -t "$t" -F "$c" 2>/dev/null; done
      for c in $chains; do "$cmd" -t "$t" -X "$c" 2>/dev/null; done
    done
  done
}}
for f in "$dir"/*/kubelet.pid "$dir"/proxy/kube-proxy.pid; do [ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null; done
sleep 0.5
for f in "$dir"/*/kubelet.pid "$dir"/proxy/kube-proxy.pid; do [ -f "$f" ] && kill -KILL "$(cat "$f")" 2>/dev/null; done
until_gone in_cgroups
until_gone by_cmdline
if [ -d "$dir/proxy" ]; then
  "$proxy" --cleanup >/dev/null 2>&1
  sweep_chains
fi
for r in $roots; do [ -d "$r" ] && find "$r" -depth -type d -exec rmdir {{}} + 2>/dev/null; done
for l in $links; do ip link del "$l" 2>/dev/null; done
status=0
left=$(by_cmdline; in_cgroups)
[ -n "$left" ] && {{ echo "processes left: $left"; status=1; }}
for r in $roots; do [ -d "$r" ] && {{ echo "cgroup left: $r"; status=1; }}; done
if [ -d "$dir/proxy" ]; then
  for cmd in iptables ip6tables; do
    for t in filter nat mangle; do
      left=$(kube_chains "$cmd" "$t")
      [ -n "$left" ] && {{ echo "$cmd chains left in $t:" $left; status=1; }}
    done
  done
fi
exit $status
"#,
        path = SCRIPT_PATH,
        proxy = kube_proxy.display(),
        dir = dir.display(),
        roots = roots.join(" ").replace('\'', ""),
        links = VETH[0],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_and_our_own_links_make_a_namespace_of_our_own() {
        let fresh = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN\n";
        assert!(!foreign_links(fresh));
        let ours = format!(
            "{fresh}5: attest-rn2@attest-rn1: <BROADCAST> mtu 1500\n6: attest-rn1@attest-rn2: <BROADCAST> mtu 1500\n7: veth1a2b3c4d@if3: <BROADCAST> mtu 1500\n"
        );
        assert!(!foreign_links(&ours));
        let host = format!("{fresh}4: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400\n");
        assert!(foreign_links(&host));
    }

    #[test]
    fn missing_kubelet_is_named_with_the_command_that_builds_it() {
        let empty = tempfile::tempdir().unwrap();
        let why = unavailable(empty.path(), empty.path()).unwrap();
        assert!(
            why.contains("kubelet") && why.contains("kube-build") || why.contains("root"),
            "{why}"
        );
    }

    #[test]
    fn cleanup_script_kills_by_cgroup_and_folder_and_spares_itself() {
        let roots = CgroupRoots {
            name: "attest-x".into(),
            mounts: vec![PathBuf::from("/sys/fs/cgroup/pids")],
        };
        let script = cleanup_script(
            Path::new("/tmp/t/nodes"),
            &roots,
            Path::new("/cache/bin/kube-proxy"),
        );
        assert!(script.contains("dir='/tmp/t/nodes'"), "{script}");
        assert!(script.contains("/sys/fs/cgroup/pids/attest-x-1 /sys/fs/cgroup/pids/attest-x-2"));
        assert!(script.contains(r#"!index($0, ENVIRON["D"] "cleanup")"#));
        assert!(
            script.contains(r#""$dir"/proxy/kube-proxy.pid"#),
            "{script}"
        );
        assert!(script.contains("proxy='/cache/bin/kube-proxy'"), "{script}");
        assert!(script.contains(r#""$proxy" --cleanup"#), "{script}");
    }
}

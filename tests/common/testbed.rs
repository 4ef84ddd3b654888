//! The local control plane (kwok's nodes, or with its two real nodes too) and the throwaway
//! PostgreSQL the stories' pods point at; a kubeconfig holding nothing but a ServiceAccount's
//! token, for the tests that run attest with generated RBAC only; and polling.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use attest_sandbox::kube::{self, nodes, KubeOptions, KubeTestbed, PostgresTarget};
use attest_sandbox::postgres::{PostgresOptions, TempPostgres};

/// A throwaway PostgreSQL and the testbed in front of it.
pub struct Bed {
    kube: Option<KubeTestbed>,
    postgres: Option<TempPostgres>,
    _runtime: tokio::runtime::Runtime,
}

impl Bed {
    /// PostgreSQL (superuser password `password`) and the testbed on kwok's nodes.
    pub fn start(password: &str) -> Bed {
        Bed::starting(password, false)
    }

    /// The same, with the two real nodes (the stories' PostgreSQL pod runs on one).
    pub fn start_with_real_nodes(password: &str) -> Bed {
        Bed::starting(password, true)
    }

    fn starting(password: &str, real_nodes: bool) -> Bed {
        let bin_dir = kube::bin_dir().unwrap_or_else(|e| panic!("{e}"));
        let images = real_nodes.then(|| {
            let images = nodes::images_dir().unwrap_or_else(|e| panic!("{e}"));
            if let Some(why) = nodes::unavailable(&bin_dir, &images) {
                panic!("real nodes cannot run here: {why}");
            }
            images
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let options = PostgresOptions {
            superuser_password: password.to_owned(),
            tls: false,
            max_connections: None,
        };
        let postgres = runtime.block_on(TempPostgres::start(options)).unwrap();
        let target = PostgresTarget {
            host: postgres.host().to_owned(),
            port: postgres.port(),
            superuser_password: password.to_owned(),
            paperless_password: "paperless-Pw".to_owned(),
            bin_dir: Some(postgres.bin_dir().to_path_buf()),
        };
        let mut options = KubeOptions::new(bin_dir, target);
        if images.is_some() {
            options.real_nodes = images;
            options.timeout = Duration::from_secs(240);
        }
        let testbed = KubeTestbed::start(options)
            .unwrap_or_else(|e| panic!("the testbed did not start: {e}"));
        match testbed.nodes() {
            Some(nodes) => eprintln!(
                "testbed {} with real nodes started in {:?} (nodes: {:?}, of which image import {:?})",
                testbed.name(),
                testbed.startup_time(),
                nodes.startup,
                nodes.import_time
            ),
            None => eprintln!(
                "testbed {} started in {:?}",
                testbed.name(),
                testbed.startup_time()
            ),
        }
        Bed {
            kube: Some(testbed),
            postgres: Some(postgres),
            _runtime: runtime,
        }
    }

    pub fn kube(&self) -> &KubeTestbed {
        self.kube.as_ref().unwrap()
    }

    pub fn postgres(&self) -> &TempPostgres {
        self.postgres.as_ref().unwrap()
    }

    /// Stops everything; the testbed's folder and name, to look for what it left.
    pub fn stop(mut self) -> (PathBuf, String) {
        let testbed = self.kube.take().unwrap();
        let dir = testbed.dir().to_path_buf();
        let name = testbed.name().to_owned();
        testbed.stop().unwrap();
        drop(self.postgres.take());
        (dir, name)
    }
}

impl Drop for Bed {
    fn drop(&mut self) {
        if let Some(testbed) = self.kube.take() {
            let _ = testbed.stop();
        }
        drop(self.postgres.take());
    }
}

/// A kubeconfig holding only a token of ServiceAccount `namespace/name`.
pub fn token_kubeconfig(kube: &KubeTestbed, namespace: &str, name: &str) -> PathBuf {
    let run = |args: &[&str]| kube.kubectl_output(args).unwrap_or_else(|e| panic!("{e}"));
    let token = run(&["create", "token", name, "-n", namespace, "--duration=30m"]);
    let view = |path: &str| run(&["config", "view", "--raw", "-o", &format!("jsonpath={path}")]);
    let config = kube.dir().join(format!("{namespace}-{name}.kubeconfig"));
    std::fs::write(
        &config,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster: {{server: \"{}\", certificate-authority: \"{}\"}}\nusers:\n- name: {name}\n  user: {{token: \"{}\"}}\ncontexts:\n- name: t\n  context: {{cluster: t, user: {name}}}\ncurrent-context: t\n",
            view("{.clusters[0].cluster.server}"),
            view("{.clusters[0].cluster.certificate-authority}"),
            token.trim()
        ),
    )
    .unwrap();
    config
}

/// Polls `probe` until it gives a value, or fails with its last observation.
pub fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let clock = Instant::now();
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) if clock.elapsed() > timeout => {
                panic!("{what}: not within {timeout:?}; last: {last}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// Waits until the stories' PostgreSQL pod (`data/postgres-postgresql-0`) is Ready on a real
/// node; its pod IP and node.
#[allow(dead_code)]
pub fn stories_postgres_ready(kube: &KubeTestbed, timeout: Duration) -> (String, String) {
    eventually("the stories' PostgreSQL Ready", timeout, || {
        let out = kube.kubectl_output(&[
            "get",
            "pod",
            "postgres-postgresql-0",
            "-n",
            "data",
            "-o",
            "jsonpath={.status.containerStatuses[0].ready} {.status.podIP} {.spec.nodeName}",
        ])?;
        match out.split(' ').collect::<Vec<_>>()[..] {
            ["true", ip, node] if ip.starts_with("100.65.") => Ok((ip.to_owned(), node.to_owned())),
            _ => Err(out),
        }
    })
}

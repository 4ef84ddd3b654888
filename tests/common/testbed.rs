//! The local control plane with its two real nodes and the throwaway PostgreSQL the stories'
//! pods point at, for the tests that need real pods; and a kubeconfig holding nothing but a
//! ServiceAccount's token, for the tests that run attest with generated RBAC only.

use std::path::PathBuf;
use std::time::Duration;

use attest_sandbox::kube::{self, nodes, KubeOptions, KubeTestbed, PostgresTarget};
use attest_sandbox::postgres::{PostgresOptions, TempPostgres};

pub struct RealBed {
    kube: Option<KubeTestbed>,
    pub postgres: Option<TempPostgres>,
    _runtime: tokio::runtime::Runtime,
}

impl RealBed {
    /// Starts PostgreSQL (superuser password `password`) and the testbed with real nodes.
    pub fn start(password: &str) -> RealBed {
        let bin_dir = kube::bin_dir().unwrap_or_else(|e| panic!("{e}"));
        let images = nodes::images_dir().unwrap_or_else(|e| panic!("{e}"));
        if let Some(why) = nodes::unavailable(&bin_dir, &images) {
            panic!("real nodes cannot run here: {why}");
        }
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
        options.real_nodes = Some(images);
        options.timeout = Duration::from_secs(240);
        let testbed = KubeTestbed::start(options)
            .unwrap_or_else(|e| panic!("the testbed did not start: {e}"));
        let nodes = testbed.nodes().expect("real nodes");
        eprintln!(
            "testbed {} with real nodes started in {:?} (nodes: {:?}, of which image import {:?})",
            testbed.name(),
            testbed.startup_time(),
            nodes.startup,
            nodes.import_time
        );
        RealBed {
            kube: Some(testbed),
            postgres: Some(postgres),
            _runtime: runtime,
        }
    }

    pub fn kube(&self) -> &KubeTestbed {
        self.kube.as_ref().unwrap()
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

impl Drop for RealBed {
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

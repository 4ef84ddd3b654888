//! The local sandbox: real services on loopback standing in for a cluster, so the bundled
//! suites run with no cluster at all, and optionally a local Kubernetes control plane with the
//! stories' cluster ([`kube`]). `attest sandbox` runs them and tears everything down;
//! `attest sandbox up` keeps the pieces running until Ctrl-C.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub mod dns_server;
pub mod docker;
pub mod kube;
pub mod listeners;
pub mod postgres;
pub mod stories;
pub mod workspace;

/// Cluster service names the sandbox DNS answers, all pointing at loopback.
const SERVICE_NAMES: &[&str] = &[
    "postgres-postgresql.data.svc.cluster.local",
    "paperless.docs.svc.cluster.local",
];

/// Everything the sandbox runs; dropping it stops and removes all of it.
pub struct Sandbox {
    pub dns: dns_server::DnsServer,
    pub postgres: postgres::TempPostgres,
    pub credentials: stories::Credentials,
    /// Databases and roles right after provisioning; anything more after a run is a leftover.
    pub baseline: Vec<String>,
    pub paperless: listeners::Listener,
    pub closed_port: SocketAddr,
    pub workspace: workspace::Workspace,
    /// The Kubernetes testbed, once [`Sandbox::start_kubernetes`] ran.
    pub kube: Option<kube::KubeTestbed>,
}

impl Sandbox {
    pub async fn start() -> Result<Sandbox, String> {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let records: Vec<(String, IpAddr)> = SERVICE_NAMES
            .iter()
            .map(|n| (n.to_string(), loopback))
            .collect();
        let dns = dns_server::DnsServer::start(&records)
            .await
            .map_err(|e| format!("cannot start the sandbox DNS server: {e}"))?;
        let io = |what: &str, e: std::io::Error| format!("cannot start the sandbox {what}: {e}");
        let credentials = stories::Credentials::generate();
        let postgres = postgres::TempPostgres::start(postgres::PostgresOptions {
            superuser_password: credentials.superuser.clone(),
            tls: true,
            max_connections: None,
        })
        .await?;
        stories::provision(&postgres, &credentials).await?;
        let baseline = stories::inventory(&postgres).await?;
        let paperless = listeners::http_paperless()
            .await
            .map_err(|e| io("HTTP server", e))?;
        let closed_port = listeners::closed_port()
            .await
            .map_err(|e| io("closed port", e))?;
        let workspace = workspace::create(credentials.paperless.clone())?;
        Ok(Sandbox {
            dns,
            postgres,
            credentials,
            baseline,
            paperless,
            closed_port,
            workspace,
            kube: None,
        })
    }

    /// Starts the Kubernetes testbed in front of this sandbox's PostgreSQL (its Secrets hold
    /// the generated superuser and paperless_user passwords; port-forward to the Paperless
    /// pods reaches the Paperless stand-in).
    ///
    /// With `real_nodes` (the images folder, see [`kube::nodes`]), two real nodes start too and
    /// the stories' PostgreSQL StatefulSet runs on them for real, its data in a host folder.
    pub async fn start_kubernetes(
        &mut self,
        bin_dir: std::path::PathBuf,
        real_nodes: Option<std::path::PathBuf>,
    ) -> Result<(), String> {
        let target = kube::PostgresTarget {
            host: self.postgres.host().to_owned(),
            port: self.postgres.port(),
            superuser_password: self.credentials.superuser.clone(),
            paperless_password: self.credentials.paperless.clone(),
            bin_dir: Some(self.postgres.bin_dir().to_path_buf()),
        };
        let mut options = kube::KubeOptions::new(bin_dir, target);
        options.paperless_http_port = Some(self.paperless.addr.port());
        if real_nodes.is_some() {
            // Two kubelets, two containerds and PostgreSQL's first initdb, on 2 cores.
            options.timeout = std::time::Duration::from_secs(180);
        }
        options.real_nodes = real_nodes;
        let started = tokio::task::spawn_blocking(move || kube::KubeTestbed::start(options)).await;
        let testbed =
            started.map_err(|e| format!("the Kubernetes testbed start panicked: {e}"))??;
        self.kube = Some(testbed);
        Ok(())
    }

    /// Deletes the Kubernetes testbed, if any (also done on drop).
    pub async fn stop_kubernetes(&mut self) -> Result<(), String> {
        match self.kube.take() {
            Some(testbed) => tokio::task::spawn_blocking(move || testbed.stop())
                .await
                .map_err(|e| format!("stopping the Kubernetes testbed panicked: {e}"))?,
            None => Ok(()),
        }
    }

    /// Variable values that point the bundled suites at the sandbox.
    pub fn variables(&self) -> Vec<(String, String)> {
        let pairs = [
            ("dns_server", self.dns.addr().to_string()),
            ("pg_host", self.postgres.host().to_owned()),
            ("pg_port", self.postgres.port().to_string()),
            ("pg_tls_host", "localhost".to_owned()),
            (
                "pg_ca_file",
                self.postgres
                    .ca_cert_path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            // Another service's database, with CONNECT revoked from PUBLIC as the stories do.
            ("other_database", "paperless".to_owned()),
            ("pg_external_host", "127.0.0.1".to_owned()),
            ("pg_external_port", self.closed_port.port().to_string()),
            ("paperless_url", format!("http://{}/", self.paperless.addr)),
            ("repo_dir", self.workspace.dir.path().display().to_string()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// The testbed's admin kubeconfig, when the testbed runs.
    pub fn kubeconfig(&self) -> Option<std::path::PathBuf> {
        self.kube.as_ref().map(|t| t.kubeconfig().to_path_buf())
    }

    /// The admin context of the testbed's kubeconfig, when the testbed runs.
    pub fn kube_context(&self) -> Option<String> {
        self.kube.as_ref().map(|t| t.context())
    }

    /// Whether the stories' PostgreSQL pod runs for real, on the testbed's real nodes (else
    /// kwok stands it in with the throwaway PostgreSQL behind exec and port-forward).
    pub fn postgres_on_real_node(&self) -> bool {
        self.kube.as_ref().is_some_and(|t| t.nodes().is_some())
    }

    /// Whether the Kubernetes testbed runs (its Secrets hold some of the passwords).
    pub fn has_kubernetes(&self) -> bool {
        self.kube.is_some()
    }

    /// The generated passwords, as variables the suites declare secret.
    pub fn secret_variables(&self) -> Vec<(String, String)> {
        let c = &self.credentials;
        let mut pairs = vec![
            ("pg_password".to_owned(), c.superuser.clone()),
            ("paperless_db_password".to_owned(), c.paperless.clone()),
            ("app_password".to_owned(), c.app.clone()),
            ("homelab_password".to_owned(), c.homelab.clone()),
        ];
        pairs.extend(
            c.services
                .iter()
                .map(|(s, p)| (format!("{s}_password"), p.clone())),
        );
        pairs
    }

    /// Databases and roles a run left behind.
    pub async fn leftovers(&self) -> Result<Vec<String>, String> {
        let now = stories::inventory(&self.postgres).await?;
        Ok(now
            .into_iter()
            .filter(|n| !self.baseline.contains(n))
            .collect())
    }

    /// Every variable `sandbox up` hands out: addresses, ports, users, databases, the CA path
    /// and the passwords, each with a comment saying what it is.
    pub fn all_variables(&self) -> Vec<(String, String, &'static str)> {
        let mut out: Vec<(String, String, &'static str)> = Vec::new();
        let describe = |name: &str| -> &'static str {
            match name {
                "dns_server" => {
                    "DNS server (udp+tcp) answering *.cluster.local, NXDOMAIN for the rest"
                }
                "pg_host" | "pg_port" => "PostgreSQL address",
                "pg_tls_host" => "host name the server certificate is valid for (verify-full)",
                "pg_ca_file" => "PEM of the CA that signed the server certificate",
                "other_database" => "another service's database (CONNECT revoked from PUBLIC)",
                "pg_external_host" | "pg_external_port" => "a port with nothing listening",
                "paperless_url" => "HTTP server answering like Paperless-ngx",
                "repo_dir" => "throwaway homelab git checkout",
                _ => "",
            }
        };
        for (name, value) in self.variables() {
            let text = describe(&name);
            out.push((name, value, text));
        }
        let mut add = |name: &str, value: &str, text: &'static str| {
            out.push((name.to_owned(), value.to_owned(), text));
        };
        add("pg_user", self.postgres.superuser(), "superuser");
        add("pg_database", "postgres", "the superuser's database");
        add("paperless_db_user", "paperless_user", "Paperless role");
        add("paperless_database", "paperless", "Paperless database");
        add("app_user", "app_user", "Story 5.5 application role");
        add(
            "app_database",
            "app_test_db",
            "Story 5.5 application database",
        );
        add("homelab_user", "homelab", "compose host role");
        add("homelab_database", "homelab", "compose host database");
        for service in stories::SERVICES {
            add(&format!("{service}_user"), service, "service role");
            add(&format!("{service}_database"), service, "service database");
        }
        for (name, value) in self.secret_variables() {
            out.push((name, value, "password (secret)"));
        }
        out
    }

    /// Writes every variable to one vars file (mode 0600, created so), outside any checkout:
    /// next to the sandbox PostgreSQL's CA, removed with it. Returns its path.
    pub fn write_vars_file(&self) -> Result<std::path::PathBuf, String> {
        let dir = self
            .postgres
            .ca_cert_path()
            .and_then(std::path::Path::parent)
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir);
        let path = dir.join(format!("attest-sandbox-{}.vars.yaml", std::process::id()));
        let mut text = format!(
            "# attest sandbox up: every address, port, user, database, CA path and password.\n# Use with: {}\n",
            self.run_command(&path)
        );
        for (name, value, what) in self.all_variables() {
            if !what.is_empty() {
                text.push_str(&format!("# {what}\n"));
            }
            // A JSON string is a YAML double-quoted scalar: every character escaped as YAML reads it.
            let quoted = serde_json::to_string(&value).map_err(|e| e.to_string())?;
            text.push_str(&format!("{name}: {quoted}\n"));
        }
        write_private(&path, &text)?;
        Ok(path)
    }

    /// The `attest run` line that points every suite at this sandbox: its vars file and, with
    /// the testbed, its kubeconfig and context (a vars file cannot carry those: they are
    /// options, not variables).
    pub fn run_command(&self, vars_file: &std::path::Path) -> String {
        let mut line = format!(
            "attest run suites/ --allow-mutating --vars {}",
            vars_file.display()
        );
        if let (Some(config), Some(context)) = (self.kubeconfig(), self.kube_context()) {
            line.push_str(&format!(
                " --kubeconfig {} --context {context}",
                config.display()
            ));
        }
        line
    }

    pub fn describe(&self) -> String {
        let mut text = String::new();
        text.push_str(&format!(
            "  DNS server        {} (udp+tcp)\n",
            self.dns.addr()
        ));
        for name in SERVICE_NAMES {
            text.push_str(&format!("    {name} → 127.0.0.1\n"));
        }
        let pg = &self.postgres;
        let ca = pg
            .ca_cert_path()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        text.push_str(&format!(
            "  PostgreSQL        postgresql://postgres@{}:{}/postgres (TLS CA {ca})\n",
            pg.host(),
            pg.port()
        ));
        text.push_str("    databases: paperless, app_test_db, homelab, vikunja, hedgedoc, linkding, navidrome\n");
        text.push_str(&format!(
            "  Paperless web     http://{}/\n",
            self.paperless.addr
        ));
        text.push_str(&format!("  closed port       {}\n", self.closed_port));
        text.push_str(&format!(
            "  homelab checkout  {}\n",
            self.workspace.dir.path().display()
        ));
        if let Some(testbed) = &self.kube {
            let config = testbed.kubeconfig().display();
            let kubectl = testbed.bin_dir().join("kubectl");
            text.push_str(&format!(
                "  Kubernetes        {config} (started in {:.1}s)\n    KUBECONFIG={config} {} get pvc -A\n",
                testbed.startup_time().as_secs_f64(),
                kubectl.display()
            ));
        }
        match self.write_vars_file() {
            Ok(path) => {
                text.push_str(&format!(
                    "\nEvery variable (addresses, users, databases, CA, passwords) is in\n  {}\n(mode 0600; removed when the sandbox stops). Run suites against the sandbox with:\n  {}\n",
                    path.display(),
                    self.run_command(&path)
                ));
            }
            Err(e) => text.push_str(&format!("\nvariables unavailable: {e}\n")),
        }
        text
    }
}

/// Writes `text` to `path`, readable by its owner only (mode 0600 from creation on: a file of
/// passwords is never readable by others, not even for a moment).
pub fn write_private(path: &std::path::Path, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

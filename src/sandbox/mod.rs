//! The local sandbox: real services on loopback standing in for a cluster, so the bundled
//! suites run with no cluster at all. `attest sandbox` runs them and tears everything down;
//! `attest sandbox up` keeps the pieces running until Ctrl-C.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use colored::Colorize;

use crate::cli::{error_line, run_suites, SandboxAction, SandboxArgs};
use crate::exit;
use crate::load::VarSources;

pub mod dns_server;
pub mod listeners;
pub mod postgres;
pub mod workspace;

/// Cluster service names the sandbox DNS answers, all pointing at loopback.
const SERVICE_NAMES: &[&str] = &[
    "postgres-postgresql.data.svc.cluster.local",
    "paperless.docs.svc.cluster.local",
];

/// Everything the sandbox runs; dropping it stops and removes all of it.
pub struct Sandbox {
    pub dns: dns_server::DnsServer,
    pub postgres_port: listeners::Listener,
    pub paperless: listeners::Listener,
    pub closed_port: SocketAddr,
    pub workspace: workspace::Workspace,
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
        let postgres_port = listeners::tcp_accepting()
            .await
            .map_err(|e| io("TCP listener", e))?;
        let paperless = listeners::http_paperless()
            .await
            .map_err(|e| io("HTTP server", e))?;
        let closed_port = listeners::closed_port()
            .await
            .map_err(|e| io("closed port", e))?;
        let workspace = workspace::create(generate_password())?;
        Ok(Sandbox {
            dns,
            postgres_port,
            paperless,
            closed_port,
            workspace,
        })
    }

    /// Variable values that point the bundled suites at the sandbox.
    pub fn variables(&self) -> Vec<(String, String)> {
        let pairs = [
            ("dns_server", self.dns.addr().to_string()),
            ("pg_host", "127.0.0.1".to_owned()),
            ("pg_port", self.postgres_port.addr.port().to_string()),
            ("pg_external_host", "127.0.0.1".to_owned()),
            ("pg_external_port", self.closed_port.port().to_string()),
            ("paperless_url", format!("http://{}/", self.paperless.addr)),
            ("repo_dir", self.workspace.dir.path().display().to_string()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    fn describe(&self) -> String {
        let mut text = String::new();
        text.push_str(&format!(
            "  DNS server        {} (udp+tcp)\n",
            self.dns.addr()
        ));
        for name in SERVICE_NAMES {
            text.push_str(&format!("    {name} → 127.0.0.1\n"));
        }
        text.push_str(&format!(
            "  PostgreSQL port   {}\n",
            self.postgres_port.addr
        ));
        text.push_str(&format!(
            "  Paperless web     http://{}/\n",
            self.paperless.addr
        ));
        text.push_str(&format!("  closed port       {}\n", self.closed_port));
        text.push_str(&format!(
            "  homelab checkout  {}\n",
            self.workspace.dir.path().display()
        ));
        text.push_str("\nPoint suites at it with:\n  attest run");
        for (name, value) in self.variables() {
            text.push_str(&format!(" \\\n    --set {name}={value}"));
        }
        text.push('\n');
        text
    }
}

/// A strong random password, like `openssl rand -base64` in the stories, URL-safe.
pub fn generate_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), 32)
}

pub fn main(args: SandboxArgs, runtime: &tokio::runtime::Runtime) -> u8 {
    let sandbox = match runtime.block_on(Sandbox::start()) {
        Ok(sandbox) => sandbox,
        Err(message) => {
            error_line(&message);
            return exit::USAGE;
        }
    };
    let code = match args.action {
        Some(SandboxAction::Up) => {
            eprintln!("{}\n{}", "attest sandbox is up:".bold(), sandbox.describe());
            eprintln!("Press Ctrl-C to stop and remove it.");
            let _ = runtime.block_on(tokio::signal::ctrl_c());
            exit::SUCCESS
        }
        None => {
            let mut run = args.run;
            // The sandbox is throwaway: mutating checks are safe to run in it.
            run.allow_mutating = true;
            let extra = VarSources {
                set: sandbox.variables(),
                files: Vec::new(),
            };
            let target = run.target.clone().unwrap_or_else(|| "sandbox".into());
            run_suites(&run, extra, target, runtime)
        }
    };
    runtime.block_on(sandbox.dns.shutdown());
    drop(sandbox.workspace);
    code
}

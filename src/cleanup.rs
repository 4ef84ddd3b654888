//! `attest cleanup`: finds (and with `--drop` removes) what runs that could not clean up left
//! on a PostgreSQL server (every object attest creates carries a marker comment) and, with
//! `--kubeconfig` or `--context`, on a cluster: nodes a killed drain left cordoned (they carry
//! attest's annotation).

use clap::Args;

use attest_core::checks::ConnectionSpec;
use attest_core::cleanup;
use attest_core::context::CheckContext;
use attest_core::exit;
use attest_core::net::{DirectNetwork, Network};
use attest_core::pg::SslMode;
use attest_core::redact::Redactor;

use crate::console::{error_line, exit_code, say, Failure};

/// Where the server is and who connects: the fields of a suite's `connection:`; unset ones
/// fall back to the PG* environment (`PGHOST`, `PGPASSWORD`, ...), like psql.
#[derive(Args, Debug)]
pub struct CleanupArgs {
    /// A libpq URI: `postgresql://postgres@host:5432/postgres`.
    #[arg(long)]
    pub uri: Option<String>,
    #[arg(long)]
    pub host: Option<String>,
    #[arg(long)]
    pub port: Option<u16>,
    /// A role that may drop what attest created (the one the suites provisioned with).
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub dbname: Option<String>,
    /// Environment variable holding the password (default: PGPASSWORD).
    #[arg(long, value_name = "VAR")]
    pub password_env: Option<String>,
    /// File holding the password (a mounted Secret).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<std::path::PathBuf>,
    #[arg(long, value_name = "disable|prefer|require|verify-ca|verify-full")]
    pub sslmode: Option<String>,
    #[arg(long, value_name = "FILE")]
    pub sslrootcert: Option<std::path::PathBuf>,
    /// A kubeconfig: also look for nodes a killed `node-drain` left cordoned (attest's
    /// annotation `attest.dev/cordoned-by`), and with --drop uncordon them.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// A context of the kubeconfig (default: its current one); implies the cluster look.
    #[arg(long)]
    pub context: Option<String>,
    /// Drop what was found (default: only list it).
    #[arg(long)]
    pub drop: bool,
}

impl CleanupArgs {
    /// Whether PostgreSQL is meant: any connection field or PG* variable, or no cluster asked.
    fn postgres_meant(&self) -> bool {
        let cluster = self.kubeconfig.is_some() || self.context.is_some();
        let fields = self.uri.is_some()
            || self.host.is_some()
            || self.port.is_some()
            || self.user.is_some()
            || self.dbname.is_some()
            || self.password_env.is_some()
            || self.password_file.is_some();
        let env = ["PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE"]
            .iter()
            .any(|v| std::env::var_os(v).is_some());
        !cluster || fields || env
    }
}

/// Nodes left cordoned by attest: listed, and with `drop` uncordoned.
fn cluster(args: &CleanupArgs, runtime: &tokio::runtime::Runtime) -> Result<u8, Failure> {
    use attest_core::k8s::disruption;
    use attest_core::k8s::{KubeAccess, KubeOptions};
    let access = KubeAccess::new(KubeOptions {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        suite_default: false,
    });
    let limit = std::time::Duration::from_secs(20);
    let nodes = runtime.block_on(async {
        let marked = disruption::marked_nodes(&access, limit)
            .await
            .map_err(|e| Failure::failed(e.to_string()).with_hint(e.hint()))?;
        let where_ = access
            .cluster()
            .map(|c| format!("context {} ({})", c.context, c.server))
            .unwrap_or_else(|| "the cluster".into());
        if marked.is_empty() {
            say(&format!(
                "attest cleanup: no node left cordoned by attest on {where_}"
            ));
            return Ok(exit::SUCCESS);
        }
        for (node, mark, cordoned) in &marked {
            let state = if *cordoned { "cordoned" } else { "schedulable" };
            println!("node {node} ({state}; {mark})");
        }
        if !args.drop {
            say(&format!(
                "attest cleanup: {} node(s) marked by attest; run again with --drop to uncordon them",
                marked.len()
            ));
            return Ok(exit::CHECK_FAILED);
        }
        let mut failed = 0;
        for (node, _, _) in &marked {
            match disruption::uncordon(&access, node, None, limit).await {
                Ok(true) => say(&format!("uncordoned node {node}")),
                Ok(false) => say(&format!("node {node}: no longer marked; left alone")),
                Err(e) => {
                    failed += 1;
                    error_line(&format!("node {node}: {e}"));
                }
            }
        }
        Ok(if failed == 0 {
            exit::SUCCESS
        } else {
            exit::CHECK_FAILED
        })
    });
    // The Jobs' leftovers are looked for even when the nodes could not be; each says why.
    let jobs = job_leftovers(args, &access, runtime);
    Ok(exit::worst([exit_code(nodes), exit_code(jobs)]))
}

/// Objects of `attest job` runs that could not delete them (killed with SIGKILL): everything
/// carrying the run label `attest.dev/run`; with `--drop`, deleted.
fn job_leftovers(
    args: &CleanupArgs,
    access: &attest_core::k8s::KubeAccess,
    runtime: &tokio::runtime::Runtime,
) -> Result<u8, Failure> {
    use attest_core::k8s::launch;
    runtime.block_on(async {
        let client = access
            .client(std::time::Duration::from_secs(20))
            .await
            .map_err(|e| Failure::failed(e.to_string()).with_hint(e.hint()))?;
        let (found, problems) = launch::leftovers(&client, args.drop).await;
        for problem in &problems {
            error_line(&format!("attest cleanup: {problem}"));
        }
        if found.is_empty() {
            say(&format!(
                "attest cleanup: no object of an `attest job` run left (label {})",
                launch::RUN_LABEL
            ));
        }
        for (object, run) in &found {
            let done = if args.drop { "deleted " } else { "" };
            println!("{done}{object} (run {run})");
        }
        if !found.is_empty() && !args.drop {
            say(&format!(
                "attest cleanup: {} object(s) of `attest job` runs; run again with --drop to delete them",
                found.len()
            ));
            return Ok(exit::CHECK_FAILED);
        }
        Ok(if problems.is_empty() {
            exit::SUCCESS
        } else {
            exit::CHECK_FAILED
        })
    })
}

pub fn main(args: CleanupArgs, runtime: &tokio::runtime::Runtime) -> Result<u8, Failure> {
    let cluster_code = match args.kubeconfig.is_some() || args.context.is_some() {
        true => Some(cluster(&args, runtime)),
        false => None,
    };
    if !args.postgres_meant() {
        return cluster_code.unwrap_or(Ok(exit::SUCCESS));
    }
    // Both are cleaned even when the cluster could not be; each says what went wrong.
    let pg_code = postgres(args, runtime);
    match cluster_code {
        None => pg_code,
        Some(cluster_code) => Ok(exit::worst([exit_code(cluster_code), exit_code(pg_code)])),
    }
}

fn postgres(args: CleanupArgs, runtime: &tokio::runtime::Runtime) -> Result<u8, Failure> {
    let sslmode = args
        .sslmode
        .as_deref()
        .map(SslMode::parse)
        .transpose()
        .map_err(|e| Failure::usage(e.to_string()))?;
    let spec = ConnectionSpec {
        uri: args.uri,
        host: args.host,
        port: args.port,
        user: args.user,
        dbname: args.dbname,
        password_env: args.password_env,
        password_file: args.password_file,
        sslmode,
        sslrootcert: args.sslrootcert,
        application_name: Some("attest-cleanup".into()),
        ..ConnectionSpec::default()
    };
    let redactor = Redactor::default();
    let ctx = CheckContext::standalone(redactor.clone());
    let admin = runtime
        .block_on(attest_core::checks::resolve_connection(&spec, &ctx))
        .map_err(|fault| Failure::Usage {
            message: redactor.redact(&fault.message),
            hint: fault.hint.as_deref().map(|h| redactor.redact(h)),
        })?;
    let network: std::sync::Arc<dyn Network> = std::sync::Arc::new(DirectNetwork);
    runtime.block_on(async {
        let found = cleanup::find(network.as_ref(), &admin)
            .await
            .map_err(|e| Failure::failed(redactor.redact(&e)))?;
        if found.is_empty() {
            say(&format!(
                "attest cleanup: nothing left behind on {}",
                admin.describe()
            ));
            return Ok(exit::SUCCESS);
        }
        for leftover in &found {
            println!("{}", redactor.redact(&leftover.to_string()));
        }
        if !args.drop {
            say(&format!(
                "attest cleanup: {} leftover(s); run again with --drop to remove them",
                found.len()
            ));
            return Ok(exit::CHECK_FAILED);
        }
        let mut failed = 0;
        for line in cleanup::drop_all(network.clone(), &admin, &found).await {
            match line {
                Ok(done) => say(&redactor.redact(&done)),
                Err(why) => {
                    failed += 1;
                    error_line(&redactor.redact(&why));
                }
            }
        }
        Ok(if failed == 0 {
            exit::SUCCESS
        } else {
            exit::CHECK_FAILED
        })
    })
}

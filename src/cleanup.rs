//! `attest cleanup`: finds (and with `--drop` removes) what runs that could not clean up left
//! on a PostgreSQL server: every object attest creates carries a marker comment.

use clap::Args;

use attest_core::cleanup;
use attest_core::context::CheckContext;
use attest_core::exit;
use attest_core::net::{DirectNetwork, Network};
use attest_core::pg::{ConnectionSpec, SslMode};
use attest_core::redact::Redactor;

use crate::cli::{error_line, say};

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
    /// Drop what was found (default: only list it).
    #[arg(long)]
    pub drop: bool,
}

pub fn main(args: CleanupArgs, runtime: &tokio::runtime::Runtime) -> u8 {
    let sslmode = match args.sslmode.as_deref().map(SslMode::parse).transpose() {
        Ok(mode) => mode,
        Err(e) => {
            error_line(&e);
            return exit::USAGE;
        }
    };
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
    let admin = match runtime.block_on(spec.resolve(&ctx)) {
        Ok(target) => target,
        Err(e) => {
            error_line(&redactor.redact(&e));
            return exit::USAGE;
        }
    };
    let network: std::sync::Arc<dyn Network> = std::sync::Arc::new(DirectNetwork);
    runtime.block_on(async {
        let found = match cleanup::find(network.as_ref(), &admin).await {
            Ok(found) => found,
            Err(e) => {
                error_line(&redactor.redact(&e));
                return exit::CHECK_FAILED;
            }
        };
        if found.is_empty() {
            say(&format!(
                "attest cleanup: nothing left behind on {}",
                admin.describe()
            ));
            return exit::SUCCESS;
        }
        for leftover in &found {
            println!("{}", redactor.redact(&leftover.to_string()));
        }
        if !args.drop {
            say(&format!(
                "attest cleanup: {} leftover(s); run again with --drop to remove them",
                found.len()
            ));
            return exit::CHECK_FAILED;
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
        if failed == 0 {
            exit::SUCCESS
        } else {
            exit::CHECK_FAILED
        }
    })
}

//! The command line: its subcommands and their dispatch. Each subcommand owns its arguments
//! and lives in a module of its own.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use attest_core::exit;
use attest_core::load::VarSources;
use attest_core::runner::StopSignals;

use crate::check::{check_suites, CheckArgs};
use crate::console::{exit_code, quiet_broken_pipe_panics, say, setup_color};
use crate::evidence::{evidence, EvidenceArgs};
use crate::run::{run_suites, RunArgs};
use crate::sandbox::{self, SandboxArgs};

#[derive(Parser, Debug)]
#[command(
    name = "attest",
    version,
    about = "Turns deployment acceptance criteria into checks: YAML suites in, JUnit and Markdown evidence out."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run suites against the live environment.
    Run(RunArgs),
    /// Start local stand-ins (DNS, listeners, ...) on loopback and run the suites against them.
    Sandbox(SandboxArgs),
    /// Load and validate suites without running anything (exit 0 when they are fine, 2 with
    /// every problem at its file:line:column otherwise); variables need no values.
    Check(CheckArgs),
    /// Print a story's completion notes from a run's report.json (no new run); with --write,
    /// put them into the story's "Completion Notes List".
    Evidence(EvidenceArgs),
    /// Print the JSON Schema of the suite format.
    Schema,
    /// List (and with --drop remove) what runs killed before their teardown left on a
    /// PostgreSQL server; only objects carrying attest's marker are touched.
    Cleanup(crate::cleanup::CleanupArgs),
    /// Print least-privilege RBAC (ServiceAccount, Roles, ClusterRole) for the selected checks.
    Rbac(crate::rbac::RbacArgs),
    /// Run the suites in the cluster as a Job (RBAC, suites, secrets) and bring the reports back; --dry-run -o yaml prints the manifests.
    Job(crate::job::JobArgs),
}

pub fn main() -> ExitCode {
    quiet_broken_pipe_panics();
    let cli = Cli::parse();
    // One crypto provider for every TLS client (PostgreSQL, HTTP).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("attest: cannot start the async runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    // From here on SIGINT, SIGTERM and SIGHUP stop a run cleanly instead of killing it.
    let stop = StopSignals::install(&runtime, say);
    let result = match cli.command {
        Command::Schema => {
            let schema = attest_core::schema::suite_schema();
            println!(
                "{}",
                serde_json::to_string_pretty(&schema).expect("schema serializes")
            );
            Ok(exit::SUCCESS)
        }
        Command::Check(args) => check_suites(&args),
        Command::Evidence(args) => evidence(&args),
        Command::Run(args) => {
            setup_color(args.libtest.color);
            run_suites(
                &args,
                VarSources::default(),
                args.target.clone().unwrap_or_else(|| "live".into()),
                &runtime,
                &stop,
            )
        }
        Command::Cleanup(args) => crate::cleanup::main(args, &runtime),
        Command::Rbac(args) => crate::rbac::main(args, &runtime),
        Command::Job(args) => crate::job::main(args, &runtime, &stop),
        Command::Sandbox(args) => {
            setup_color(args.run.libtest.color);
            sandbox::main(args, &runtime, &stop)
        }
    };
    ExitCode::from(exit_code(result))
}

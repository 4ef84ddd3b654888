//! `attest sandbox`: starts the stand-ins of attest-sandbox and runs the suites against them.

use colored::Colorize;

use attest_core::exit;
use attest_core::load::VarSources;
use attest_sandbox::Sandbox;

use std::sync::Arc;

use attest_core::runner::StopSignals;

use crate::cli::{error_line, run_suites, say, SandboxAction, SandboxArgs};

pub fn main(args: SandboxArgs, runtime: &tokio::runtime::Runtime, stop: &Arc<StopSignals>) -> u8 {
    // Signals are caught from the start (see `StopSignals`): the default action would kill us
    // with a PostgreSQL server and temporary folders still in place.
    let sandbox = match runtime.block_on(Sandbox::start()) {
        Ok(sandbox) => sandbox,
        Err(message) => {
            error_line(&message);
            return exit::USAGE;
        }
    };
    if let Some(signal) = stop.interruption() {
        say(&format!(
            "attest: {} while starting the sandbox; removing it",
            signal.name()
        ));
        runtime.block_on(sandbox.postgres.stop());
        return signal.exit_code();
    }
    let code = match args.action {
        Some(SandboxAction::Up) => {
            // On stdout, so scripts can read the vars file path; status lines stay on stderr.
            {
                use std::io::Write;
                let mut stdout = std::io::stdout();
                let _ = writeln!(
                    stdout,
                    "{}\n{}",
                    "attest sandbox is up:".bold(),
                    sandbox.describe()
                );
                let _ = stdout.flush();
            }
            say("Press Ctrl-C (or send SIGTERM) to stop and remove it.");
            runtime.block_on(stop.cancel.cancelled());
            exit::SUCCESS
        }
        None => {
            let mut run = args.run;
            // The sandbox is throwaway: mutating checks are safe to run in it.
            run.allow_mutating = true;
            let mut set = sandbox.variables();
            set.extend(sandbox.secret_variables());
            // Provided, not `--set`: suites that use other names are not an error.
            let extra = VarSources {
                provided: set,
                ..VarSources::default()
            };
            let target = run.target.clone().unwrap_or_else(|| "sandbox".into());
            let code = run_suites(&run, extra, target, runtime, stop);
            match runtime.block_on(sandbox.leftovers()) {
                Ok(left) if left.is_empty() => code,
                Ok(left) => {
                    error_line(&format!(
                        "the run left these behind in the sandbox PostgreSQL: {}",
                        left.join(", ")
                    ));
                    code.max(exit::CHECK_FAILED)
                }
                Err(e) => {
                    error_line(&format!(
                        "cannot check the sandbox PostgreSQL for leftovers: {e}"
                    ));
                    code.max(exit::CHECK_FAILED)
                }
            }
        }
    };
    runtime.block_on(sandbox.dns.shutdown());
    runtime.block_on(sandbox.postgres.stop());
    drop(sandbox.workspace);
    code
}

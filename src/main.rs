//! The `attest` binary: a thin command line over attest-core.

mod check;
mod cleanup;
mod cli;
mod console;
mod evidence;
mod job;
mod rbac;
mod run;
mod sandbox;

fn main() -> std::process::ExitCode {
    cli::main()
}

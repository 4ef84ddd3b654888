//! The `attest` binary: a thin command line over attest-core.

mod cleanup;
mod cli;
mod job;
mod rbac;
mod sandbox;

fn main() -> std::process::ExitCode {
    cli::main()
}

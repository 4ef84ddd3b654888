//! The `attest` binary: a thin command line over attest-core.

mod cleanup;
mod cli;
mod sandbox;

fn main() -> std::process::ExitCode {
    cli::main()
}

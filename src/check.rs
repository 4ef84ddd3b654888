//! `attest check`: load and validate suites, run nothing.

use std::path::PathBuf;

use clap::Args;

use attest_core::exit;
use attest_core::load::{self, Purpose, VarSources};
use attest_core::redact::Redactor;

use crate::console::{report_load_errors, report_load_warnings, Failure};
use crate::run::{suite_files, AssignmentParser};

#[derive(Args, Debug, Clone)]
pub struct CheckArgs {
    /// Suite files or folders (default `suites/`).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// YAML file of variable values (`name: value`); may be given more than once.
    #[arg(long = "vars", value_name = "FILE")]
    pub vars: Vec<PathBuf>,
    /// Set a variable, over everything else.
    #[arg(long = "set", value_name = "NAME=VALUE", value_parser = AssignmentParser)]
    pub set: Vec<(String, String)>,
    /// Treat every warning as an error (exit 2): an acceptance criterion no check covers and
    /// not declared manual, a likely typo in a vars file.
    #[arg(long)]
    pub strict: bool,
}

/// `attest check`: load and validate, run nothing; for CI lint steps and editors.
pub(crate) fn check_suites(args: &CheckArgs) -> Result<u8, Failure> {
    let mut paths = args.paths.clone();
    if paths.is_empty() {
        paths.push(PathBuf::from("suites"));
    }
    let Some(files) = suite_files(&paths) else {
        return Err(Failure::Listed);
    };
    let redactor = Redactor::default();
    let sources = VarSources {
        set: args.set.clone(),
        files: args.vars.clone(),
        ..VarSources::default()
    };
    let loaded = load::load_suites(&files, &sources, &redactor, Purpose::Inspect);
    if args.strict && !loaded.warnings.is_empty() {
        // --strict: warnings are problems, reported with the load errors.
        let mut errors = loaded.warnings.clone();
        if let Err(more) = &loaded.suites {
            errors.extend(more.iter().cloned());
        }
        report_load_errors(&errors, &redactor);
        return Err(Failure::Listed);
    }
    report_load_warnings(&loaded.warnings, &redactor);
    match loaded.suites {
        Ok(suites) => {
            let checks: usize = suites.iter().map(|s| s.checks.len()).sum();
            println!(
                "{} suite file(s), {checks} check(s): no problems",
                suites.len()
            );
            Ok(exit::SUCCESS)
        }
        Err(errors) => {
            report_load_errors(&errors, &redactor);
            Err(Failure::Listed)
        }
    }
}

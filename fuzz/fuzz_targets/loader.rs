//! Any bytes as a suite file: the loader must answer with a suite or positioned problems,
//! never panic, hang or blow up on aliases.
#![no_main]

use std::path::Path;

use attest_core::load::{load_bytes, Purpose, VarSources};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let sources = VarSources {
        set: vec![
            ("pg_host".into(), "db.example".into()),
            ("pg_port".into(), "5432".into()),
        ],
        ..VarSources::default()
    };
    for purpose in [Purpose::Run, Purpose::Inspect] {
        if let Err(problems) = load_bytes(Path::new("fuzz.yaml"), data, &sources, purpose) {
            for problem in problems {
                // Every problem renders, with a position when it has one.
                let _ = problem.to_string();
            }
        }
    }
});

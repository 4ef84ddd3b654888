//! Reporters: each turns a finished [`RunRecord`] into one file. None reaches back into
//! execution.

use std::path::{Path, PathBuf};

use crate::outcome::RunRecord;

pub mod fleet;
pub mod json;
pub mod junit;
pub mod markdown;

/// Writes `junit.xml`, `report.md` and `report.json` into `dir`; returns the paths written.
pub fn write_all(record: &RunRecord, dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let files = [
        ("junit.xml", junit::render(record)),
        ("report.md", markdown::render(record)),
        ("report.json", json::render(record)),
    ];
    let mut written = Vec::new();
    for (name, content) in files {
        let path = dir.join(name);
        std::fs::write(&path, content)?;
        written.push(path);
    }
    Ok(written)
}

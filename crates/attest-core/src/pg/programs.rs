//! PostgreSQL's own programs (`pg_dump`, `initdb`, ...): the one search for them.

use std::path::{Path, PathBuf};

/// A PostgreSQL program that is not installed where attest looks, and the package that has it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` not found: install Debian's `{package}` package (or set PG_BINDIR){}", looked_in.as_ref().map(|dir| format!(" (looked in PG_BINDIR={})", dir.display())).unwrap_or_default())]
pub struct ProgramNotFound {
    pub name: String,
    pub package: &'static str,
    /// `PG_BINDIR`, when it was set (and then the only place looked in).
    pub looked_in: Option<PathBuf>,
}

/// Finds a PostgreSQL program (`pg_dump`, `initdb`, ...), the one search used everywhere:
/// `PG_BINDIR` alone when set (a silent fallback would hide a typo), else the newest of
/// Debian's versioned folders (the real binaries, not the `pg_wrapper` links), else `PATH`.
pub fn find_program(name: &str) -> Result<PathBuf, ProgramNotFound> {
    let package = match name {
        "pg_dump" | "pg_restore" | "psql" | "pg_isready" => "postgresql-client",
        _ => "postgresql",
    };
    let missing = |looked_in: Option<PathBuf>| ProgramNotFound {
        name: name.to_owned(),
        package,
        looked_in,
    };
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        let path = Path::new(&dir).join(name);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(missing(Some(PathBuf::from(&dir))))
        };
    }
    let newest_debian = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin").join(name)))
        })
        .filter(|(_, path)| path.is_file())
        .max()
        .map(|(_, path)| path);
    newest_debian
        .or_else(|| {
            std::env::var_os("PATH")
                .iter()
                .flat_map(std::env::split_paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| missing(None))
}

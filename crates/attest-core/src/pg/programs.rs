//! PostgreSQL's own programs (`pg_dump`, `initdb`, ...): the one search for them.

use std::path::{Path, PathBuf};

/// Finds a PostgreSQL program (`pg_dump`, `initdb`, ...), the one search used everywhere:
/// `PG_BINDIR` alone when set (a silent fallback would hide a typo), else the newest of
/// Debian's versioned folders (the real binaries, not the `pg_wrapper` links), else `PATH`.
pub fn find_program(name: &str) -> Result<PathBuf, String> {
    let package = match name {
        "pg_dump" | "pg_restore" | "psql" | "pg_isready" => "postgresql-client",
        _ => "postgresql",
    };
    let missing =
        || format!("`{name}` not found: install Debian's `{package}` package (or set PG_BINDIR)");
    if let Some(dir) = std::env::var_os("PG_BINDIR") {
        let path = Path::new(&dir).join(name);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{} (looked in PG_BINDIR={})",
                missing(),
                Path::new(&dir).display()
            ))
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
        .ok_or_else(missing)
}

//! libpq's password file: `PGPASSFILE`, else `~/.pgpass`, read as libpq reads it.
//!
//! Lines are `hostname:port:database:username:password`; the first line whose four fields all
//! match wins; `*` matches anything; `\:` and `\\` escape inside fields; lines starting with
//! `#` are comments. As libpq does, the file is ignored (with no error) when it is missing, and
//! on Unix when it is readable by group or others. A host of `localhost` also matches a
//! connection over a Unix socket (a host starting with `/`), and the default port is 5432.

use std::path::{Path, PathBuf};

/// The password for a connection, from the password file libpq would use.
pub fn lookup(host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let path = passfile_path()?;
    lookup_in(&path, host, port, db, user)
}

/// `PGPASSFILE`, else `$HOME/.pgpass`.
pub fn passfile_path() -> Option<PathBuf> {
    match std::env::var_os("PGPASSFILE") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => std::env::var_os("HOME").map(|home| Path::new(&home).join(".pgpass")),
    }
}

/// [`lookup`] in a given file.
pub fn lookup_in(path: &Path, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    if !safe_permissions(path) {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    find(&text, host, port, db, user)
}

#[cfg(unix)]
fn safe_permissions(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        // libpq: "has group or world access; permissions should be u=rw (0600) or less".
        Ok(meta) => meta.is_file() && meta.mode() & 0o077 == 0,
        Err(_) => false,
    }
}

#[cfg(not(unix))]
fn safe_permissions(path: &Path) -> bool {
    path.is_file()
}

/// The first matching line's password.
pub fn find(text: &str, host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    // libpq compares the socket directory case as `localhost`.
    let host = if host.is_empty() || host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    let port = port.to_string();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_fields(line);
        let [h, p, d, u, password] = fields.as_slice() else {
            continue;
        };
        let matches = |field: &str, value: &str| field == "*" || field == value;
        if matches(h, host) && matches(p, &port) && matches(d, db) && matches(u, user) {
            return Some(password.clone());
        }
    }
    None
}

/// Splits on unescaped `:` into at most five fields, unescaping `\:` and `\\`; the password
/// is the rest of the line.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = Vec::with_capacity(5);
    let mut current = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    current.push(next);
                }
            }
            ':' if fields.len() < 4 => fields.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    fields.push(current);
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# comment\n\
        db.example:5432:app:app_user:first\n\
        db.example:*:*:app_user:second\n\
        *:*:*:postgres:super\\:secret\\\\x\n\
        localhost:5433:*:*:local\n";

    #[test]
    fn the_first_matching_line_wins() {
        assert_eq!(
            find(FILE, "db.example", 5432, "app", "app_user").as_deref(),
            Some("first")
        );
        assert_eq!(
            find(FILE, "db.example", 6543, "other", "app_user").as_deref(),
            Some("second")
        );
        assert_eq!(find(FILE, "elsewhere", 5432, "x", "nobody"), None);
    }

    #[test]
    fn escapes_and_wildcards() {
        assert_eq!(
            find(FILE, "any", 1, "any", "postgres").as_deref(),
            Some("super:secret\\x")
        );
    }

    #[test]
    fn sockets_match_localhost() {
        assert_eq!(
            find(FILE, "/var/run/postgresql", 5433, "x", "y").as_deref(),
            Some("local")
        );
        assert_eq!(find(FILE, "", 5433, "x", "y").as_deref(), Some("local"));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        assert_eq!(
            find("only:three:fields\n*:*:*:*:pw\n", "h", 1, "d", "u").as_deref(),
            Some("pw")
        );
    }

    #[cfg(unix)]
    #[test]
    fn files_others_can_read_are_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pgpass");
        std::fs::write(&path, "*:*:*:*:pw\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(lookup_in(&path, "h", 5432, "d", "u"), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(lookup_in(&path, "h", 5432, "d", "u").as_deref(), Some("pw"));
        assert_eq!(
            lookup_in(&dir.path().join("missing"), "h", 5432, "d", "u"),
            None
        );
    }
}

//! Finding suite files: the paths given, folders searched for `*.yaml`/`*.yml`.

use super::*;

/// Finds suite files: files as given, folders searched recursively for `*.yaml` / `*.yml`.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut found = Vec::new();
    for path in paths {
        if path.is_dir() {
            let before = found.len();
            collect_yaml(path, &mut found)
                .map_err(|e| LoadError::file(path, format!("cannot read folder: {e}")))?;
            found[before..].sort();
        } else if path.is_file() {
            found.push(path.clone());
        } else {
            return Err(LoadError::file(
                path,
                "no such file or folder (give suite files or folders of them; default `suites/`)",
            ));
        }
    }
    Ok(found)
}

pub(super) fn collect_yaml(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_yaml(&path, found)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            found.push(path);
        }
    }
    Ok(())
}

//! Where Concord keeps its data: one directory holding the database, shared by every process.

use std::path::PathBuf;

use crate::CoreError;

/// The variable that chooses the data directory when no `--data-dir` is given.
pub const DATA_DIR_ENV: &str = "CONCORD_DATA_DIR";

/// The data directory: `explicit` (from `--data-dir`), else `CONCORD_DATA_DIR`, else
/// `$XDG_DATA_HOME/concord`, else `~/.local/share/concord`.
pub fn data_dir(explicit: Option<PathBuf>) -> Result<PathBuf, CoreError> {
    resolve(explicit, |name| std::env::var_os(name))
}

fn resolve(
    explicit: Option<PathBuf>,
    env: impl Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<PathBuf, CoreError> {
    let non_empty = |name: &str| env(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = explicit.or_else(|| non_empty(DATA_DIR_ENV)) {
        return absolute(dir);
    }
    // The XDG spec says a relative XDG_DATA_HOME is invalid and must be ignored.
    if let Some(xdg) = non_empty("XDG_DATA_HOME").filter(|p| p.is_absolute()) {
        return Ok(xdg.join("concord"));
    }
    let home = non_empty("HOME").ok_or(CoreError::NoDataDir)?;
    absolute(home.join(".local/share/concord"))
}

/// A relative `--data-dir` is taken from the current directory, as a person typing it expects.
fn absolute(dir: PathBuf) -> Result<PathBuf, CoreError> {
    if dir.is_absolute() {
        return Ok(dir);
    }
    std::path::absolute(&dir).map_err(|_| CoreError::RelativeDataDir { path: dir })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn with(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(v)))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn flag_wins_over_variable_and_xdg() {
        let env = with(&[
            ("CONCORD_DATA_DIR", "/a"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/h"),
        ]);
        assert_eq!(
            resolve(Some("/f".into()), &env).unwrap(),
            PathBuf::from("/f")
        );
        assert_eq!(resolve(None, &env).unwrap(), PathBuf::from("/a"));
    }

    #[test]
    fn xdg_then_home() {
        let env = with(&[("XDG_DATA_HOME", "/x"), ("HOME", "/h")]);
        assert_eq!(resolve(None, &env).unwrap(), PathBuf::from("/x/concord"));
        let env = with(&[("XDG_DATA_HOME", "relative"), ("HOME", "/h")]);
        assert_eq!(
            resolve(None, &env).unwrap(),
            PathBuf::from("/h/.local/share/concord")
        );
    }

    #[test]
    fn nothing_to_go_on_is_an_error() {
        assert!(matches!(
            resolve(None, with(&[])),
            Err(CoreError::NoDataDir)
        ));
    }

    #[test]
    fn a_relative_flag_is_made_absolute() {
        let dir = resolve(Some("rel/dir".into()), with(&[])).unwrap();
        assert!(dir.is_absolute() && dir.ends_with("rel/dir"));
    }
}

//! What a launch asked for: `--hidden` (autostart: start in the tray, window closed) and
//! `--data-dir PATH`. Arguments the app does not know are ignored, not refused, because the
//! app is launched by others too: WebKitWebDriver adds `--automation`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The flag the autostart entry launches with.
pub const HIDDEN_FLAG: &str = "--hidden";
const DATA_DIR_FLAG: &str = "--data-dir";

pub const USAGE: &str = "\
Usage: concord-app [--hidden] [--data-dir PATH]

Concord's tray app. Starts with its window open; --hidden starts in the tray only.
The data directory is PATH, else $CONCORD_DATA_DIR, else $XDG_DATA_HOME/concord,
else ~/.local/share/concord: the same database `concord daemon` uses.";

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Launch {
    pub hidden: bool,
    pub data_dir: Option<PathBuf>,
    pub help: bool,
}

impl Launch {
    /// Parses the arguments after the program name.
    pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Self, String> {
        let mut launch = Self::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            if arg == HIDDEN_FLAG {
                launch.hidden = true;
            } else if arg == "--help" || arg == "-h" {
                launch.help = true;
            } else if arg == DATA_DIR_FLAG {
                let path = args
                    .next()
                    .ok_or_else(|| format!("{DATA_DIR_FLAG} needs a path\n\n{USAGE}"))?;
                launch.data_dir = Some(PathBuf::from(path));
            } else if let Some(path) = arg
                .to_str()
                .and_then(|a| a.strip_prefix(DATA_DIR_FLAG)?.strip_prefix('='))
            {
                launch.data_dir = Some(PathBuf::from(path));
            }
        }
        if launch
            .data_dir
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(format!("{DATA_DIR_FLAG} needs a path\n\n{USAGE}"));
        }
        Ok(launch)
    }
}

/// What the login entry starts: in the tray (`--hidden`), on the data directory this launch
/// was given with `--data-dir` (resolved to an absolute path), else on the default one.
/// The XDG autostart entry does not quote its arguments: a path with spaces does not survive.
pub fn autostart_args(explicit_data_dir: Option<&Path>) -> Vec<String> {
    let mut args = vec![HIDDEN_FLAG.to_owned()];
    if let Some(dir) = explicit_data_dir {
        args.extend([DATA_DIR_FLAG.to_owned(), dir.display().to_string()]);
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Launch, String> {
        Launch::parse(args.iter().map(OsString::from))
    }

    #[test]
    fn no_arguments_opens_the_window_on_the_default_data_dir() {
        assert_eq!(parse(&[]).unwrap(), Launch::default());
    }

    #[test]
    fn autostart_starts_hidden() {
        assert!(parse(&[HIDDEN_FLAG]).unwrap().hidden);
    }

    #[test]
    fn data_dir_in_both_spellings() {
        let expected = Some(PathBuf::from("/tmp/c"));
        assert_eq!(parse(&["--data-dir", "/tmp/c"]).unwrap().data_dir, expected);
        assert_eq!(parse(&["--data-dir=/tmp/c"]).unwrap().data_dir, expected);
    }

    #[test]
    fn a_missing_data_dir_is_refused_with_usage() {
        for args in [&["--data-dir"][..], &["--data-dir="][..]] {
            let error = parse(args).unwrap_err();
            assert!(
                error.contains("needs a path") && error.contains("Usage"),
                "{error}"
            );
        }
    }

    #[test]
    fn autostart_starts_hidden_on_the_data_dir_it_was_given() {
        assert_eq!(autostart_args(None), [HIDDEN_FLAG]);
        let args = autostart_args(Some(Path::new("/data/concord")));
        assert_eq!(args, [HIDDEN_FLAG, "--data-dir", "/data/concord"]);
    }

    #[test]
    fn webdriver_arguments_are_ignored() {
        let launch = parse(&["--automation", "--hidden"]).unwrap();
        assert!(launch.hidden);
        assert_eq!(launch.data_dir, None);
    }
}

//! `kubectl flotilla ...`: the same binary installed (or symlinked) on PATH as
//! `kubectl-flotilla`, which kubectl runs for `kubectl flotilla`. Only help and usage change.

use std::ffi::OsStr;
use std::path::Path;

/// The file name kubectl looks for on PATH.
pub const FILE_NAME: &str = "kubectl-flotilla";

/// The command name for help and usage: `kubectl flotilla` when this process was started as
/// the kubectl plugin (by that file name, with or without an extension such as `.exe`).
pub fn bin_name(argv0: Option<&OsStr>) -> Option<&'static str> {
    let stem = Path::new(argv0?).file_stem()?;
    (stem == FILE_NAME).then_some("kubectl flotilla")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognised_by_file_name_only() {
        for (argv0, want) in [
            (
                "/home/u/.krew/bin/kubectl-flotilla",
                Some("kubectl flotilla"),
            ),
            ("kubectl-flotilla", Some("kubectl flotilla")),
            ("C:/bin/kubectl-flotilla.exe", Some("kubectl flotilla")),
            ("/usr/local/bin/flotilla", None),
            ("/opt/kubectl-flotilla/flotilla", None),
            ("kubectl-flotilla-dev", None),
        ] {
            assert_eq!(bin_name(Some(OsStr::new(argv0))), want, "{argv0}");
        }
        assert_eq!(bin_name(None), None);
    }
}

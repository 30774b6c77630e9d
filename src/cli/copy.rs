//! `flotilla copy SRC DST`: copy one artifact.

use std::process::ExitCode;

/// Arguments of `flotilla copy`.
#[derive(clap::Args, Debug)]
pub struct CopyArgs {
    /// Source reference: `REGISTRY/REPO:TAG`, `REGISTRY/REPO@DIGEST` or `oci:PATH:TAG`.
    pub source: String,
    /// Destination reference, same forms.
    pub destination: String,
}

/// Copies one artifact.
pub async fn run(_args: CopyArgs) -> ExitCode {
    eprintln!("error: flotilla copy is not implemented yet");
    ExitCode::FAILURE
}

//! `flotilla run`: the controller manager.

use std::process::ExitCode;

/// Arguments of `flotilla run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {}

/// Runs the controllers until SIGTERM.
pub async fn run(_args: RunArgs) -> ExitCode {
    ExitCode::FAILURE
}

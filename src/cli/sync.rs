//! `flotilla sync -f policy.yaml`: one sync of a ReplicationPolicy without a cluster.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `flotilla sync`.
#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    /// ReplicationPolicy YAML (the same document a user would `kubectl apply`).
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
}

/// Runs one sync.
pub async fn run(_args: SyncArgs) -> ExitCode {
    eprintln!("error: flotilla sync is not implemented yet");
    ExitCode::FAILURE
}

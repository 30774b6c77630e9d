//! Subcommands of the `flotilla` binary. Each module parses its own arguments and returns the
//! process exit code; errors are printed as one line naming what to fix.

pub mod copy;
pub mod crd;
pub mod kubectl_plugin;
pub mod policy_file;
pub mod run;
pub mod status;
pub mod strict;
pub mod sync;
pub mod token_service;

use std::future::Future;
use std::process::ExitCode;

/// Runs a subcommand on a multi-threaded Tokio runtime.
pub fn block_on<F: Future<Output = ExitCode>>(fut: F) -> ExitCode {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(fut),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::from(2)
        }
    }
}

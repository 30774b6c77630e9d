//! The `flotilla` command: thin dispatch to the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Flotilla: run fleets of OCI registries on Kubernetes and replicate artifacts between them.
#[derive(Parser)]
#[command(name = "flotilla", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller manager (reads kubeconfig the standard way).
    Run(flotilla::cli::run::RunArgs),
    /// Print the CustomResourceDefinitions as YAML, or write them to a directory.
    Crd(flotilla::cli::crd::CrdArgs),
    /// Run one sync of a ReplicationPolicy file, without a cluster.
    Sync(flotilla::cli::sync::SyncArgs),
    /// Copy one artifact between registries or OCI layout directories.
    Copy(flotilla::cli::copy::CopyArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd(args) => flotilla::cli::crd::run(args),
        Command::Run(args) => flotilla::cli::block_on(flotilla::cli::run::run(args)),
        Command::Sync(args) => flotilla::cli::block_on(flotilla::cli::sync::run(args)),
        Command::Copy(args) => flotilla::cli::block_on(flotilla::cli::copy::run(args)),
    }
}

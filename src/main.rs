//! The `flotilla` command: thin dispatch to the library.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

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
    /// Show every Registry and, under each policy's source, its tree of destinations.
    Status(flotilla::cli::status::StatusArgs),
    /// Serve Distribution tokens for a Registry with access rules (the registry pods' sidecar).
    TokenService(flotilla::cli::token_service::TokenServiceArgs),
}

fn main() -> ExitCode {
    let mut command = Cli::command();
    // Started as `kubectl-flotilla` (the kubectl plugin): usage reads `kubectl flotilla ...`.
    if let Some(name) =
        flotilla::cli::kubectl_plugin::bin_name(std::env::args_os().next().as_deref())
    {
        command = command.bin_name(name);
    }
    let cli = Cli::from_arg_matches(&command.get_matches()).unwrap_or_else(|e| e.exit());
    match cli.command {
        Command::Crd(args) => flotilla::cli::crd::run(args),
        Command::Run(args) => flotilla::cli::block_on(flotilla::cli::run::run(args)),
        Command::Sync(args) => flotilla::cli::block_on(flotilla::cli::sync::run(args)),
        Command::Copy(args) => flotilla::cli::block_on(flotilla::cli::copy::run(args)),
        Command::Status(args) => flotilla::cli::block_on(flotilla::cli::status::run(args)),
        Command::TokenService(args) => {
            flotilla::cli::block_on(flotilla::cli::token_service::run(args))
        }
    }
}

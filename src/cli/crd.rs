//! `flotilla crd`: print or write the CustomResourceDefinitions.

use std::path::PathBuf;
use std::process::ExitCode;

/// Arguments of `flotilla crd`.
#[derive(clap::Args, Debug)]
pub struct CrdArgs {
    /// Write one file per CRD into this directory instead of printing a multi-document stream.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

/// Prints the CRDs, or writes them under `--out-dir`.
pub fn run(args: CrdArgs) -> ExitCode {
    match write(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write(args: CrdArgs) -> Result<(), Box<dyn std::error::Error>> {
    for (file, crd) in crate::crd::all() {
        let yaml = crate::crd::to_yaml(&crd)?;
        match &args.out_dir {
            Some(dir) => std::fs::write(dir.join(file), yaml)?,
            None => print!("---\n{yaml}"),
        }
    }
    Ok(())
}

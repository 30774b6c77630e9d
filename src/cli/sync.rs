//! `flotilla sync -f policy.yaml`: one sync of a ReplicationPolicy without a cluster.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::policy_file::{PolicyFileError, parse_documents};
use crate::engine::auth::DockerConfig;
use crate::engine::progress::{Line, Progress, Rate};
use crate::engine::report::Report;
use crate::replication::validate::{Issue, validate};
use crate::sync_config::{self, DockerConfigError, Resolved};

/// How the summary is printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// Lines for humans.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// When to draw live progress on stderr.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProgressMode {
    /// Never: log lines only.
    Never,
    /// When stderr is a terminal.
    #[default]
    Auto,
    /// Always (also when stderr is a file or a pipe).
    Always,
}

impl ProgressMode {
    fn enabled(self) -> bool {
        match self {
            ProgressMode::Never => false,
            ProgressMode::Always => true,
            ProgressMode::Auto => std::io::stderr().is_terminal(),
        }
    }
}

/// Arguments of `flotilla sync`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Endpoints must use `url` (a `registryRef` only exists inside a cluster); `http://` URLs need \
`insecure: true`.

The file is checked as `kubectl apply --validate=strict` and the operator would check it: an unknown \
field (a typo such as `bandwith`) is refused with its path and the nearest known field, and an \
invalid rule (glob, regex, semver range, schedule, quantity) is refused naming its field, \
before any registry is contacted.

Credentials: a `credentialsSecretRef` (and a `caSecretRef`) is resolved from a `kind: Secret` \
document in the same multi-document YAML file (`data` base64 or `stringData`; keys \
`.dockerconfigjson`, or `username` and `password`); when no such Secret is in the file, the \
entry for the endpoint's host in `--authfile` (a docker config.json) stands in, else it is an \
error. Endpoints without a `credentialsSecretRef` use their `--authfile` entry when there is \
one, else go anonymous.

Platforms: with `platforms:` set, an index with children outside the list is pushed as a new \
index of the listed ones (a new digest, logged and counted as platformFiltered: the only case \
where a destination manifest is not byte-identical); a re-sync compares with that digest and \
is a no-op.

Exit status: 0 when every artifact is in sync (conflicts left alone by `overwrite: false` \
are reported but are not failures), 1 when an artifact failed, 2 when nothing could be \
started (bad file, unreachable registry, rejected credentials).")]
pub struct SyncArgs {
    /// ReplicationPolicy YAML (the same document a user would `kubectl apply`), optionally with
    /// the Secrets it refers to as further documents.
    #[arg(short = 'f', long = "filename")]
    pub file: PathBuf,
    /// Docker config JSON (`~/.docker/config.json` format) with credentials by registry host.
    #[arg(long)]
    pub authfile: Option<PathBuf>,
    /// Summary format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Live progress on stderr (artifacts done/total, bytes, rate): `auto` when stderr is a
    /// terminal; otherwise only log lines.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// Plan only: read the source and every destination (pings, listings, HEADs; manifests
    /// too with `platforms`), print each copy and deletion a sync would make, write nothing.
    /// Exit status as for a sync.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs one sync.
pub async fn run(args: SyncArgs) -> ExitCode {
    init_logging();
    let cfg = match load(&args.file, args.authfile.as_deref()) {
        Ok(c) => crate::engine::SyncConfig {
            dry_run: args.dry_run,
            ..c
        },
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let progress = Progress::default();
    let run = crate::engine::sync::run_with_progress(&cfg, &progress);
    match with_progress(args.progress, &progress, run).await {
        Ok(report) => print_report(&report, args.output),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Logs to stderr, `RUST_LOG` or warnings only.
pub(crate) fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                // The certificate verifier logs every refused certificate as an error; the
                // engine reports it once, naming the endpoint.
                tracing_subscriber::EnvFilter::new("warn,rustls_platform_verifier=off")
            }),
        )
        .with_writer(|| LogWriter)
        .try_init();
}

/// Whether a progress line is on stderr now: a log line clears it first (the next tick
/// draws it again below the log line).
static LIVE: AtomicBool = AtomicBool::new(false);

/// Erases the current terminal line.
const CLEAR_LINE: &[u8] = b"\r\x1b[2K";

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut err = std::io::stderr().lock();
        if LIVE.load(Ordering::Relaxed) {
            err.write_all(CLEAR_LINE)?;
        }
        err.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Runs `work`, drawing `progress` on one stderr line five times a second when `mode` says
/// so; the line is erased at the end (the summary follows on stdout).
pub(crate) async fn with_progress<T>(
    mode: ProgressMode,
    progress: &Progress,
    work: impl std::future::Future<Output = T>,
) -> T {
    if !mode.enabled() {
        return work.await;
    }
    let width = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.parse::<usize>().ok())
        .unwrap_or(80)
        .saturating_sub(1)
        .max(20);
    let start = Instant::now();
    let mut rate = Rate::new(Duration::from_secs(3));
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tokio::pin!(work);
    LIVE.store(true, Ordering::Relaxed);
    let out = loop {
        tokio::select! {
            out = &mut work => break out,
            _ = tick.tick() => {
                let snapshot = progress.snapshot();
                let elapsed = start.elapsed();
                let line = Line { snapshot, rate: rate.add(elapsed, snapshot.bytes), elapsed };
                let mut err = std::io::stderr().lock();
                let _ = err.write_all(CLEAR_LINE);
                let _ = err.write_all(line.render(width).as_bytes());
                let _ = err.flush();
            }
        }
    };
    LIVE.store(false, Ordering::Relaxed);
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(CLEAR_LINE);
    let _ = err.flush();
    out
}

/// Prints the summary and maps it to the exit status.
pub(crate) fn print_report(report: &Report, output: Output) -> ExitCode {
    match output {
        Output::Text => print!("{}", report.to_text()),
        Output::Json => match serde_json::to_string_pretty(report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("error: cannot render the summary: {e}");
                return ExitCode::from(2);
            }
        },
    }
    if report.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Why an `--authfile` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum AuthfileError {
    /// Unreadable.
    #[error("cannot read --authfile {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Not a docker config (the error never quotes the file).
    #[error("--authfile {path}: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: DockerConfigError,
    },
}

/// Reads a docker config file.
pub(crate) fn read_authfile(path: &Path) -> Result<DockerConfig, AuthfileError> {
    let bytes = std::fs::read(path).map_err(|source| AuthfileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    sync_config::parse_docker_config(&bytes).map_err(|source| AuthfileError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

/// Why `flotilla sync` cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Unreadable policy file.
    #[error("cannot read policy file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Documents that cannot be read (unknown fields, wrong types, unusable Secrets).
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: PolicyFileError,
    },
    /// A policy the operator would refuse (its `Ready=False` conditions say the same).
    #[error("{path}: {}", issues.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem.
        issues: Vec<Issue>,
    },
    /// A policy that cannot run outside a cluster, or a Secret that does not fit it.
    #[error("{path}: {source}")]
    Spec {
        /// The file.
        path: PathBuf,
        /// Why.
        source: sync_config::SpecError,
    },
    /// The `--authfile`.
    #[error(transparent)]
    Authfile(#[from] AuthfileError),
}

/// Reads, checks and converts the policy file.
pub fn load(path: &Path, authfile: Option<&Path>) -> Result<crate::engine::SyncConfig, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let docs = parse_documents(&text).map_err(|source| LoadError::File {
        path: path.to_path_buf(),
        source,
    })?;
    let spec = docs.spec;
    let issues = validate(&spec);
    if !issues.is_empty() {
        return Err(LoadError::Invalid {
            path: path.to_path_buf(),
            issues,
        });
    }
    let docker_config = authfile.map(read_authfile).transpose()?;
    sync_config::to_sync_config(
        &spec,
        &Resolved {
            secrets: docs.secrets,
            config_maps: docs.config_maps,
            docker_config,
        },
    )
    .map_err(|source| LoadError::Spec {
        path: path.to_path_buf(),
        source,
    })
}

//! `flotilla sync -f policy.yaml`: one sync of a ReplicationPolicy without a cluster.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::{IsTerminal as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;

use crate::api::ReplicationPolicySpec;
use crate::engine::auth::DockerConfig;
use crate::engine::progress::{Line, Progress, Rate};
use crate::engine::report::Report;
use crate::sync_config::{self, Resolved, SecretData};

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

/// Reads a docker config file.
pub(crate) fn read_authfile(path: &Path) -> Result<DockerConfig, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read --authfile {}: {e}", path.display()))?;
    DockerConfig::parse(&bytes).map_err(|e| format!("--authfile {}: {e}", path.display()))
}

fn load(path: &Path, authfile: Option<&Path>) -> Result<crate::engine::SyncConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read policy file {}: {e}", path.display()))?;
    let (spec, secrets) = parse_documents(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let docker_config = authfile.map(read_authfile).transpose()?;
    sync_config::to_sync_config(
        &spec,
        &Resolved {
            secrets,
            docker_config,
        },
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}

/// The one ReplicationPolicy of a multi-document YAML stream, and its Secrets.
pub fn parse_documents(text: &str) -> Result<(ReplicationPolicySpec, SecretData), String> {
    let mut specs = Vec::new();
    let mut secrets = SecretData::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = <serde_yaml::Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| format!("document {} is not valid YAML: {e}", i + 1))?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        match kind {
            "ReplicationPolicy" => {
                let spec = value
                    .get("spec")
                    .cloned()
                    .ok_or_else(|| format!("document {}: ReplicationPolicy without spec", i + 1))?;
                let spec: ReplicationPolicySpec = serde_yaml::from_value(spec).map_err(|e| {
                    format!("document {}: invalid ReplicationPolicy spec: {e}", i + 1)
                })?;
                specs.push(spec);
            }
            "Secret" => {
                let (name, data) =
                    secret(&value).map_err(|e| format!("document {}: {e}", i + 1))?;
                secrets.insert(name, data);
            }
            "" => {
                return Err(format!(
                    "document {} has no kind (expected kind: ReplicationPolicy)",
                    i + 1
                ));
            }
            other => {
                return Err(format!(
                    "document {} has kind {other:?}; only ReplicationPolicy and Secret are read",
                    i + 1
                ));
            }
        }
    }
    match specs.len() {
        1 => Ok((specs.remove(0), secrets)),
        0 => Err("no kind: ReplicationPolicy document found".into()),
        n => Err(format!(
            "{n} ReplicationPolicy documents found; put one per file"
        )),
    }
}

fn secret(value: &serde_yaml::Value) -> Result<(String, BTreeMap<String, Vec<u8>>), String> {
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .ok_or("Secret without metadata.name")?
        .to_string();
    let mut data = BTreeMap::new();
    if let Some(map) = value.get("data").and_then(|d| d.as_mapping()) {
        for (k, v) in map {
            let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                return Err(format!("Secret {name:?}: data values must be strings"));
            };
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .map_err(|_| format!("Secret {name:?}: data.{k} is not base64"))?;
            data.insert(k.to_string(), bytes);
        }
    }
    if let Some(map) = value.get("stringData").and_then(|d| d.as_mapping()) {
        for (k, v) in map {
            let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                return Err(format!(
                    "Secret {name:?}: stringData values must be strings"
                ));
            };
            data.insert(k.to_string(), v.as_bytes().to_vec());
        }
    }
    Ok((name, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_policy_and_secrets() {
        let text = r#"
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {username: u, password: p}
---
apiVersion: v1
kind: Secret
metadata: {name: b64}
data: {username: dQ==}
---
apiVersion: flotilla.dev/v1alpha1
kind: ReplicationPolicy
metadata: {name: p}
spec:
  source: {url: "https://src", credentialsSecretRef: {name: creds}}
  destinations: [{name: a, url: "https://a"}]
"#;
        let (spec, secrets) = parse_documents(text).expect("parses");
        assert_eq!(spec.destinations[0].name, "a");
        assert_eq!(secrets["creds"]["password"], b"p".to_vec());
        assert_eq!(secrets["b64"]["username"], b"u".to_vec());
    }

    #[test]
    fn rejects_what_it_cannot_use() {
        assert!(parse_documents("kind: Deployment\n").is_err());
        assert!(parse_documents("a: [\n").is_err());
        assert!(parse_documents("kind: Secret\nmetadata: {name: x}\n").is_err());
        let e =
            parse_documents("kind: ReplicationPolicy\nspec: {source: 3}\n").expect_err("bad spec");
        assert!(e.contains("invalid ReplicationPolicy spec"), "{e}");
    }
}

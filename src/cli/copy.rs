//! `flotilla copy SRC DST`: copy one artifact between registries and OCI layout directories.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use super::sync::{Output, ProgressMode, init_logging, print_report, read_authfile, with_progress};
use crate::engine::auth::DockerConfig;
use crate::engine::backoff::RetryConfig;
use crate::engine::client::{ClientError, EndpointConfig, RegistryClient};
use crate::engine::layout::Layout;
use crate::engine::progress::Progress;
use crate::engine::single::{self, Side};
use crate::engine::store::Store;

/// Arguments of `flotilla copy`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
References: `[docker://][http(s)://]HOST[:PORT]/REPO:TAG`, `...REPO@sha256:...`, or \
`oci:PATH:TAG` for an OCI image layout directory (created when it is the destination). \
Without a scheme, https is used, or http with --src-insecure/--dest-insecure. A destination \
reference without a tag keeps the source's tag; with a digest the artifact is stored untagged.

Platforms: with --platform, an index with children of other platforms is pushed as a new index \
of the wanted ones (a new digest, counted as platformFiltered: the one case where the copy is not \
byte-identical); an index with none of them is not copied (platformUnmatched); an image \
manifest is copied whole. `linux/arm64` also selects `linux/arm64/v8`.")]
pub struct CopyArgs {
    /// Source reference.
    pub source: String,
    /// Destination reference.
    pub destination: String,
    /// Allow plain HTTP / unverified TLS for the source.
    #[arg(long)]
    pub src_insecure: bool,
    /// Allow plain HTTP / unverified TLS for the destination.
    #[arg(long)]
    pub dest_insecure: bool,
    /// PEM file of CA certificates trusted for the source, besides the system roots.
    #[arg(long, value_name = "PEM")]
    pub src_ca_file: Option<std::path::PathBuf>,
    /// PEM file of CA certificates trusted for the destination, besides the system roots.
    #[arg(long, value_name = "PEM")]
    pub dest_ca_file: Option<std::path::PathBuf>,
    /// Copy only this platform of a multi-platform index, `os/arch[/variant]` (repeatable).
    #[arg(long = "platform", value_name = "OS/ARCH[/VARIANT]", value_parser = parse_platform)]
    pub platforms: Vec<String>,
    /// Docker config JSON with credentials by registry host.
    #[arg(long)]
    pub authfile: Option<std::path::PathBuf>,
    /// Summary format.
    #[arg(long, short = 'o', value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Live progress on stderr (bytes, rate): `auto` when stderr is a terminal.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

/// Checks `os/arch[/variant]` (lower-case letters and digits; `_` in the architecture), the
/// form of a policy's `platforms`.
fn parse_platform(s: &str) -> Result<String, String> {
    let word = |w: &str, underscore: bool| {
        !w.is_empty()
            && w.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || (underscore && c == '_'))
    };
    let parts: Vec<&str> = s.split('/').collect();
    let ok = matches!(parts.len(), 2 | 3)
        && word(parts[0], false)
        && word(parts[1], true)
        && parts.get(2).is_none_or(|v| word(v, false));
    if ok {
        Ok(s.to_string())
    } else {
        Err("expected os/arch or os/arch/variant, e.g. linux/amd64 or linux/arm64/v8".into())
    }
}

/// Reads the PEM CA bundle of `flag`: it must hold at least one certificate.
fn read_ca_file(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path)
        .map_err(|e| format!("{flag} {}: cannot read it ({e})", path.display()))?;
    match reqwest::Certificate::from_pem_bundle(&pem) {
        Ok(certs) if !certs.is_empty() => Ok(pem),
        Ok(_) => Err(format!(
            "{flag} {}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)",
            path.display()
        )),
        Err(_) => Err(format!(
            "{flag} {}: a PEM block in it is not a valid certificate",
            path.display()
        )),
    }
}

/// A parsed reference.
#[derive(Debug, PartialEq, Eq)]
pub enum Reference {
    /// An OCI layout directory.
    Layout {
        /// Directory.
        path: String,
        /// Tag or digest (None: not given).
        reference: Option<String>,
    },
    /// A registry.
    Registry {
        /// `scheme://host:port`.
        url: String,
        /// Repository.
        repo: String,
        /// Tag or digest (None: not given).
        reference: Option<String>,
    },
}

/// Parses `oci:PATH[:TAG|@DIGEST]` or `[docker://][scheme://]host[:port]/repo[:tag|@digest]`.
pub fn parse_reference(s: &str, insecure: bool) -> Result<Reference, String> {
    if let Some(rest) = s.strip_prefix("oci:") {
        let (path, reference) = if let Some((p, d)) = rest.rsplit_once('@') {
            (p, Some(d.to_string()))
        } else {
            match rest.rsplit_once(':') {
                Some((p, t)) if !t.contains('/') && !t.is_empty() => (p, Some(t.to_string())),
                _ => (rest, None),
            }
        };
        if path.is_empty() {
            return Err(format!("{s:?}: oci: needs a directory, e.g. oci:./dir:tag"));
        }
        return Ok(Reference::Layout {
            path: path.to_string(),
            reference,
        });
    }
    let rest = s.strip_prefix("docker://").unwrap_or(s);
    let (scheme, rest) = if let Some(r) = rest.strip_prefix("https://") {
        ("https", r)
    } else if let Some(r) = rest.strip_prefix("http://") {
        ("http", r)
    } else if insecure {
        ("http", rest)
    } else {
        ("https", rest)
    };
    let Some((host, path)) = rest.split_once('/') else {
        return Err(format!(
            "{s:?} is not a reference: expected HOST[:PORT]/REPO:TAG or oci:PATH:TAG"
        ));
    };
    if host.is_empty() || path.is_empty() {
        return Err(format!(
            "{s:?}: registry host and repository are both required"
        ));
    }
    let (repo, reference) = if let Some((r, d)) = path.split_once('@') {
        (r, Some(d.to_string()))
    } else {
        let last = path.rsplit('/').next().unwrap_or(path);
        match last.rsplit_once(':') {
            Some((_, t)) if !t.is_empty() => {
                (&path[..path.len() - t.len() - 1], Some(t.to_string()))
            }
            _ => (path, None),
        }
    };
    if let Some(d) = &reference
        && d.contains(':')
        && d.parse::<crate::engine::digest::Digest>().is_err()
    {
        return Err(format!("{s:?}: {d:?} is not a sha256 digest"));
    }
    Ok(Reference::Registry {
        url: format!("{scheme}://{host}"),
        repo: repo.to_string(),
        reference,
    })
}

/// How one side is reached: plain HTTP / unverified TLS, a CA bundle (PEM).
struct Trust {
    insecure: bool,
    ca: Option<Vec<u8>>,
}

async fn side(
    r: Reference,
    trust: Trust,
    is_dest: bool,
    default_ref: Option<&str>,
    auth: Option<&DockerConfig>,
) -> Result<Side, String> {
    let role = if is_dest { "destination" } else { "source" };
    let ca_flag = if is_dest {
        "--dest-ca-file"
    } else {
        "--src-ca-file"
    };
    match r {
        Reference::Layout { path, reference } => {
            if trust.ca.is_some() {
                return Err(format!(
                    "{ca_flag} applies to a registry, not to {role} oci:{path}"
                ));
            }
            let layout = Layout::open(Path::new(&path), is_dest)
                .await
                .map_err(|e| format!("{role} oci:{path} is not an OCI layout directory ({e})"))?;
            let reference = reference
                .or(default_ref.map(str::to_string))
                .ok_or_else(|| format!("{role} oci:{path} needs a tag, e.g. oci:{path}:latest"))?;
            Ok(Side {
                store: Store::Layout(Arc::new(layout)),
                repo: String::new(),
                reference,
            })
        }
        Reference::Registry {
            url,
            repo,
            reference,
        } => {
            let host = crate::engine::auth::normalize_host(&url);
            let cfg = EndpointConfig {
                url: url.clone(),
                credentials: auth.and_then(|a| a.lookup(&host)).cloned(),
                ca_pem: trust.ca,
                insecure: trust.insecure,
                token_realm: None,
            };
            let client = RegistryClient::new(&cfg, RetryConfig::default())
                .map_err(|e| format!("{role}: {e}"))?;
            client.ping().await.map_err(|e| match e {
                ClientError::Certificate { registry, reason } => format!(
                    "{role}: registry {registry} presented a TLS certificate that is not trusted ({reason}); if a private CA signed it, give that CA with {ca_flag}"
                ),
                e => format!("{role}: {e}"),
            })?;
            let reference = reference
                .or(default_ref.map(str::to_string))
                .ok_or_else(|| {
                    format!("{role} {url}/{repo} needs a tag or digest, e.g. {repo}:latest")
                })?;
            Ok(Side {
                store: Store::Registry(Arc::new(client)),
                repo,
                reference,
            })
        }
    }
}

/// Copies one artifact.
pub async fn run(args: CopyArgs) -> ExitCode {
    init_logging();
    match prepare(&args).await {
        Ok((src, dst)) => {
            let progress = Progress::default();
            let copy = single::copy_with_progress(
                &src,
                &dst,
                RetryConfig::default(),
                &args.platforms,
                &progress,
            );
            match with_progress(args.progress, &progress, copy).await {
                Ok(report) => print_report(&report, args.output),
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn prepare(args: &CopyArgs) -> Result<(Side, Side), String> {
    let auth = args
        .authfile
        .as_deref()
        .map(read_authfile)
        .transpose()
        .map_err(|e| e.to_string())?;
    let src_ref = parse_reference(&args.source, args.src_insecure)?;
    let dst_ref = parse_reference(&args.destination, args.dest_insecure)?;
    let src_ca = args
        .src_ca_file
        .as_deref()
        .map(|p| read_ca_file("--src-ca-file", p))
        .transpose()?;
    let dest_ca = args
        .dest_ca_file
        .as_deref()
        .map(|p| read_ca_file("--dest-ca-file", p))
        .transpose()?;
    let src_trust = Trust {
        insecure: args.src_insecure,
        ca: src_ca,
    };
    let src = side(src_ref, src_trust, false, None, auth.as_ref()).await?;
    let default_dst = if src.reference.starts_with("sha256:") {
        None
    } else {
        Some(src.reference.clone())
    };
    let dest_trust = Trust {
        insecure: args.dest_insecure,
        ca: dest_ca,
    };
    let dst = side(
        dst_ref,
        dest_trust,
        true,
        default_dst.as_deref().or(Some(src.reference.as_str())),
        auth.as_ref(),
    )
    .await?;
    Ok((src, dst))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_references() {
        assert_eq!(
            parse_reference("oci:/tmp/x:v1", false),
            Ok(Reference::Layout {
                path: "/tmp/x".into(),
                reference: Some("v1".into())
            })
        );
        assert_eq!(
            parse_reference("127.0.0.1:5000/a/b:v1", true),
            Ok(Reference::Registry {
                url: "http://127.0.0.1:5000".into(),
                repo: "a/b".into(),
                reference: Some("v1".into())
            })
        );
        let d = format!("sha256:{}", "a".repeat(64));
        assert_eq!(
            parse_reference(&format!("docker://https://reg.example.com/a@{d}"), false),
            Ok(Reference::Registry {
                url: "https://reg.example.com".into(),
                repo: "a".into(),
                reference: Some(d)
            })
        );
        assert_eq!(
            parse_reference("reg:5000/a", false),
            Ok(Reference::Registry {
                url: "https://reg:5000".into(),
                repo: "a".into(),
                reference: None
            })
        );
        assert!(parse_reference("justaname", false).is_err());
        assert!(parse_platform("linux/amd64").is_ok());
        assert!(parse_platform("linux/arm64/v8").is_ok());
        assert!(parse_platform("windows/x86_64").is_ok());
        assert!(parse_platform("linux").is_err());
        assert!(parse_platform("linux/AMD64").is_err());
        assert!(parse_platform("linux/arm64/v8/x").is_err());
        assert!(parse_platform("linux//v8").is_err());
        assert!(parse_reference("reg/a@sha256:zz", false).is_err());
    }
}

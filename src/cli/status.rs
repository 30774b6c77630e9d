//! `flotilla status` (also `kubectl flotilla status`): one picture of the fleet. Lists the
//! Registries and ReplicationPolicies (I/O, here), reduces them to a [`fleet::Fleet`] (pure)
//! and renders that as text or JSON (pure).

pub mod fleet;
pub mod text;

use std::ffi::OsString;
use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams};

use crate::api::{Registry, ReplicationPolicy};

/// Output format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Output {
    /// Tables and trees for humans (colours on a terminal), last errors cut to 80 characters.
    #[default]
    Text,
    /// As `text`, with last errors in full.
    Wide,
    /// One JSON document, stable for scripts (`formatVersion`), never coloured.
    Json,
}

/// Arguments of `flotilla status`.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Each Registry with its ready/desired pods and Ready condition; then each ReplicationPolicy with \
its source and, under it, the destinations as the policy feeds them (a destination with `from` \
under the one feeding it), each with in-sync, last sync and last error (on one line, cut at 80 \
characters; `-o wide` and `-o json` have it in full).

Colours only when stdout is a terminal and NO_COLOR is not set. Kubeconfig is found the \
standard way (KUBECONFIG, ~/.kube/config, in-cluster service account). As a kubectl plugin: \
put the binary on PATH as `kubectl-flotilla` (a symlink will do) and run `kubectl flotilla \
status`.

Exit status: 0 when the picture was printed, 2 when the cluster could not be read.")]
pub struct StatusArgs {
    /// Only this namespace (default: every namespace).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Kubeconfig context (default: the current one).
    #[arg(long)]
    pub context: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "text")]
    pub output: Output,
    /// Seconds to wait for the API server before giving up.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub timeout: u64,
}

/// Why the fleet could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// No usable kubeconfig or in-cluster configuration.
    #[error("cannot load a Kubernetes configuration ({0}); set KUBECONFIG or run inside a cluster")]
    Config(String),
    /// The client could not be built from the configuration.
    #[error("cannot build a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// The CRD of `kind` is not served.
    #[error(
        "the {kind} CRD is not installed in this cluster (install it: `flotilla crd | kubectl apply -f -`)"
    )]
    CrdMissing {
        /// `Registry` or `ReplicationPolicy`.
        kind: &'static str,
    },
    /// RBAC refuses the list.
    #[error("not allowed to list {kind} {scope}: {message}{hint}")]
    Forbidden {
        /// `Registry` or `ReplicationPolicy`.
        kind: &'static str,
        /// `in namespace X` or `in any namespace`.
        scope: String,
        /// The API server's message.
        message: String,
        /// What to try instead.
        hint: &'static str,
    },
    /// Any other failure of the list.
    #[error("cannot list {kind} {scope}: {source}")]
    List {
        /// `Registry` or `ReplicationPolicy`.
        kind: &'static str,
        /// `in namespace X` or `in any namespace`.
        scope: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The API server did not answer in time.
    #[error("the API server did not answer within {0} s (raise --timeout or check the cluster)")]
    Timeout(u64),
}

/// What `flotilla status` reads from the cluster.
#[derive(Debug, Default)]
pub struct Objects {
    /// Every Registry in scope.
    pub registries: Vec<Registry>,
    /// Every ReplicationPolicy in scope.
    pub policies: Vec<ReplicationPolicy>,
}

fn scope(namespace: Option<&str>) -> String {
    namespace.map_or_else(
        || "in any namespace".to_string(),
        |ns| format!("in namespace {ns}"),
    )
}

async fn list<K>(
    client: &kube::Client,
    namespace: Option<&str>,
    kind: &'static str,
) -> Result<Vec<K>, StatusError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    match api.list(&ListParams::default()).await {
        Ok(list) => Ok(list.items),
        Err(kube::Error::Api(s)) if s.is_not_found() => Err(StatusError::CrdMissing { kind }),
        Err(kube::Error::Api(s)) if s.is_forbidden() => Err(StatusError::Forbidden {
            kind,
            scope: scope(namespace),
            message: s.message.clone(),
            hint: if namespace.is_none() {
                " (try one namespace with -n)"
            } else {
                ""
            },
        }),
        Err(source) => Err(StatusError::List {
            kind,
            scope: scope(namespace),
            source,
        }),
    }
}

/// Connects the standard way and lists both kinds, within `timeout`.
pub async fn fetch(args: &StatusArgs) -> Result<Objects, StatusError> {
    let read = async {
        let config = match &args.context {
            None => kube::Config::infer()
                .await
                .map_err(|e| StatusError::Config(e.to_string()))?,
            Some(context) => kube::Config::from_kubeconfig(&kube::config::KubeConfigOptions {
                context: Some(context.clone()),
                ..Default::default()
            })
            .await
            .map_err(|e| StatusError::Config(e.to_string()))?,
        };
        let client = kube::Client::try_from(config).map_err(StatusError::Client)?;
        let ns = args.namespace.as_deref();
        let (registries, policies) = tokio::try_join!(
            list::<Registry>(&client, ns, "Registry"),
            list::<ReplicationPolicy>(&client, ns, "ReplicationPolicy"),
        )?;
        Ok(Objects {
            registries,
            policies,
        })
    };
    tokio::time::timeout(Duration::from_secs(args.timeout), read)
        .await
        .map_err(|_| StatusError::Timeout(args.timeout))?
}

/// Whether text output is coloured: only on a terminal, and never with `NO_COLOR` set to
/// anything but the empty string (<https://no-color.org>).
pub fn use_color(output: Output, stdout_is_terminal: bool, no_color: Option<OsString>) -> bool {
    output != Output::Json && stdout_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// The JSON document of a fleet, ending in a newline.
pub fn render_json(fleet: &fleet::Fleet) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(fleet).map(|s| s + "\n")
}

/// Runs `flotilla status`.
pub async fn run(args: StatusArgs) -> ExitCode {
    let objects = match fetch(&args).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let fleet = fleet::build(&objects.registries, &objects.policies, Timestamp::now());
    let out = match args.output {
        Output::Json => match render_json(&fleet) {
            Ok(json) => json,
            Err(e) => {
                eprintln!("error: cannot write the status as JSON: {e}");
                return ExitCode::from(2);
            }
        },
        Output::Text | Output::Wide => {
            let style = text::Style {
                color: use_color(
                    args.output,
                    std::io::stdout().is_terminal(),
                    std::env::var_os("NO_COLOR"),
                ),
                wide: args.output == Output::Wide,
            };
            let text = text::render(&fleet, style);
            if text.is_empty() {
                eprintln!(
                    "No Registries or ReplicationPolicies found {}.",
                    scope(args.namespace.as_deref())
                );
            }
            text
        }
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        // `flotilla status | head` is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write the output: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fleet::tests::{now, registry, tiers};
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_only_for_text_and_never_with_no_color() {
        assert!(use_color(Output::Text, true, None));
        assert!(use_color(Output::Wide, true, None));
        assert!(!use_color(Output::Text, false, None), "not a terminal");
        assert!(!use_color(Output::Json, true, None), "json");
        assert!(!use_color(Output::Text, true, Some("1".into())), "NO_COLOR");
        assert!(
            use_color(Output::Text, true, Some("".into())),
            "an empty NO_COLOR does not count"
        );
    }

    #[test]
    fn json_is_the_same_picture_with_stable_names() {
        let fleet = fleet::build(&[registry("default", "hq", 1, 1)], &[tiers()], now());
        let v: serde_json::Value =
            serde_json::from_str(&render_json(&fleet).expect("json")).expect("json");
        assert_eq!(v["formatVersion"], 1);
        assert_eq!(v["now"], "2026-12-01T12:00:00Z");
        let r = &v["registries"][0];
        assert_eq!(
            (
                &r["namespace"],
                &r["name"],
                &r["readyReplicas"],
                &r["desiredReplicas"]
            ),
            (
                &"default".into(),
                &"hq".into(),
                &1.into(),
                &serde_json::Value::from(1)
            )
        );
        assert_eq!(r["ready"]["status"], "True");
        let p = &v["policies"][0];
        assert_eq!(p["phase"], "Degraded");
        assert_eq!(p["reason"], "DestinationFailed");
        assert_eq!(
            (&p["inSync"], &p["destinationCount"]),
            (&4.into(), &6.into())
        );
        assert_eq!(p["source"]["endpoint"], "http://hq.example:5000");
        let city2 = &p["destinations"][0]["children"][1];
        assert_eq!(city2["name"], "city-2");
        assert_eq!(city2["from"], "region-1");
        assert_eq!(city2["inSync"], false);
        assert_eq!(city2["lastSyncTime"], "2026-12-01T11:57:00Z");
        assert_eq!(city2["secondsSinceSync"], 180);
        assert_eq!(city2["lastError"], "tiers/app:v1: connection refused");
        assert_eq!(city2["problem"], serde_json::Value::Null);
        assert_eq!(city2["children"], serde_json::json!([]));
        assert!(
            !render_json(&fleet).expect("json").contains('\x1b'),
            "no colour in JSON, ever"
        );
    }

    #[test]
    fn errors_say_what_to_fix() {
        let e = StatusError::CrdMissing { kind: "Registry" };
        assert!(e.to_string().contains("flotilla crd | kubectl apply -f -"));
        let e = StatusError::Forbidden {
            kind: "Registry",
            scope: scope(None),
            message: "registries.flotilla.dev is forbidden".into(),
            hint: " (try one namespace with -n)",
        };
        assert_eq!(
            e.to_string(),
            "not allowed to list Registry in any namespace: registries.flotilla.dev is forbidden (try one namespace with -n)"
        );
    }
}

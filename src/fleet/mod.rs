//! Pure builders of the Registry controller: spec → `config.yml`, owned Kubernetes objects,
//! validation and status. Nothing here performs I/O; the reconciler dereferences, calls these,
//! and applies what they return.

pub mod access;
pub mod config;
pub mod gc;
pub mod gc_job;
pub mod gc_report;
pub mod generated;
pub mod http_route;
pub mod ingress;
pub mod mounts;
pub mod names;
pub mod objects;
pub mod operator_account;
pub mod ownership;
pub mod pod;
pub mod random;
pub mod status;
pub mod validate;

pub use config::{RenderError, render_config};
pub use generated::{GeneratedSecrets, generate_http_secret, generate_token, tls_fingerprint};
pub use names::Names;
pub use objects::{BuildContext, BuildError, Children, build};
pub use status::{ObservedDeployment, status};
pub use validate::{Issue, validate};

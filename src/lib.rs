//! Flotilla: a Kubernetes operator that runs fleets of OCI registries and replicates
//! artifacts between them.

pub mod access;
pub mod api;
pub mod cli;
pub mod conditions;
pub mod controller;
pub mod crd;
pub mod engine;
pub mod field_path;
pub mod fleet;
pub mod issue;
pub mod leader;
pub mod metrics;
pub mod notifications;
pub mod replication;
pub mod s3;
pub mod server;
pub mod sync_config;
pub mod telemetry;

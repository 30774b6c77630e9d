//! Flotilla: a Kubernetes operator that runs fleets of OCI registries and replicates
//! artifacts between them.

pub mod api;
pub mod cli;
pub mod crd;

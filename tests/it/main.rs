//! Every integration and end-to-end test, as one binary (one link instead of one per
//! file): `cargo test --test it` runs them all, `cargo test --test it e2e_gc` one module.

mod support;

mod chart_alerts;
mod cli_copy;
mod cli_dry_run;
mod cli_policy_input;
mod cli_progress;
mod crds_current;
mod e2e_access;
mod e2e_argocd_health;
mod e2e_fleet_auth;
mod e2e_foundation;
mod e2e_gc;
mod e2e_hostile;
mod e2e_ingress;
mod e2e_operator_pod;
mod e2e_packaging;
mod e2e_push_path;
mod e2e_real_node;
mod e2e_registry;
mod e2e_replication;
mod e2e_secrets;
mod e2e_signatures;
mod e2e_status;
mod e2e_tenancy;
mod engine_auth;
mod engine_bandwidth;
mod engine_deletion_safety;
mod engine_faults;
mod engine_foreign;
mod engine_hierarchy;
mod engine_hostile;
mod engine_memory;
mod engine_platforms;
mod engine_push_scope;
mod engine_referrers;
mod engine_referrers_api;
mod engine_signatures;
mod engine_sync;
mod engine_tls;
mod engine_token_auth;
mod prop_parsers;
mod registry_conformance;

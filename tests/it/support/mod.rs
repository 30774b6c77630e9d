//! What the tests share: real control planes, registries, MinIO, nodes and the tools
//! that drive them.

pub mod chart_metrics;
pub mod cluster;
pub mod hostile;
pub mod nginx;
pub mod packaging;
pub mod ports;
pub mod real_node;
pub mod registry;
pub mod registry_proc;
pub mod s3;
pub mod supply_chain;
pub mod token_proc;
pub mod tools;

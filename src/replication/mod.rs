//! The ReplicationPolicy side of Flotilla that needs no cluster: validation, when syncs are
//! due, which policies an event concerns, and the status a sync report gives.

pub mod after;
pub mod decide;
pub mod maintenance;
pub mod pending;
pub mod pending_status;
pub mod reasons;
pub mod refs;
pub mod report_status;
pub mod routing;
pub mod tenancy;
pub mod trigger;
pub mod validate;

//! The ReplicationPolicy side of Flotilla that needs no cluster: validation of what the
//! schema cannot express.

pub mod validate;

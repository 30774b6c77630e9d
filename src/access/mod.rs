//! Access rules and Flotilla's token service for Distribution's `auth: token`: the pure rule
//! matcher, the bundle the operator writes for the service, the signing key and the HTTP
//! service itself.

pub mod bundle;
pub mod jwt;
pub mod rules;
pub mod service;
pub mod tls;

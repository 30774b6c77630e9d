//! Flotilla's receiver for Distribution notifications.
//!
//! A registry POSTs an envelope `{"events":[...]}` (content type
//! `application/vnd.docker.distribution.events.v1+json`) with the `Authorization: Bearer <token>`
//! header Flotilla configured. The receiver, in this order:
//! - admits at most [`Limits::max_concurrent`] posts at once (503 beyond);
//! - checks the token in constant time, from the headers alone: an unauthenticated body is
//!   never read (401);
//! - reads the body within [`Limits::read_timeout`] (408) and [`Limits::max_body_bytes`] (413);
//! - parses the envelope (400 when it is not one, nothing forwarded), skipping (and counting in
//!   the log) each event that is malformed or names a repository, tag or digest outside the
//!   Distribution grammar, and reduces it to manifest pushes and deletes (blob events, pulls
//!   and mounts are dropped);
//! - forwards those to the caller's channel: an envelope that fits the channel all at once or
//!   nothing, a larger one in channel-sized parts, waiting at most [`Limits::forward_timeout`]
//!   for room (503 then, so the registry retries the envelope; copies are idempotent,
//!   duplicates are harmless).
//!
//! What a token may trigger: a Registry's own token (identity `registry/NAMESPACE/NAME`) only
//! policies whose source is that Registry by `registryRef`; the operator-wide token for
//! external registries (identity `external`) only policies whose source is a `url` whose
//! host and port the event names (`target.url` or `request.host`), never a `registryRef`
//! source. The holder of the shared token can thus name any external source; what it gains is
//! bounded, because an event is only a hint: the policy then copies what the *source* serves for
//! that repository and tag, within the policy's own filters, with the policy's own credentials,
//! exactly as its next scheduled sync would. An event carries no content, no credentials and no
//! destination. See `replication::routing::from_source`.

pub(crate) mod event;
mod listener;
mod receiver;
mod tokens;

pub use event::{
    EnvelopeError, ManifestAction, ManifestEvent, Parsed, is_manifest_media_type, parse_envelope,
    valid_digest, valid_repository, valid_tag,
};
pub use listener::{BoundedIo, BoundedListener, ConnectionLimits};
pub use receiver::{
    EVENTS_CONTENT_TYPE, EVENTS_PATH, Limits, MAX_BODY_BYTES, Receiver, router, router_with, serve,
};
pub use tokens::{OwnerEvent, Revoker, Tokens};

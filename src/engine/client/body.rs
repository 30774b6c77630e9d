//! Bounded body reading: nothing remote is read past the limit of its kind.

use bytes::{Bytes, BytesMut};
use reqwest::Response;

use super::RegistryClient;
use super::error::ClientError;
use super::redact::without_secrets;

/// The most read of an error body (only its start is quoted).
pub(super) const MAX_ERROR_BYTES: usize = 4 << 10;

/// A body read so far, refusing to grow past its limit.
#[derive(Debug)]
pub(super) struct Bounded {
    limit: usize,
    buf: BytesMut,
}

/// A body would exceed its limit.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Exceeded;

impl Bounded {
    /// An empty body to read at most `limit` bytes into, refused at once when the declared
    /// `Content-Length` says more.
    pub(super) fn new(limit: usize, content_length: Option<u64>) -> Result<Self, Exceeded> {
        if content_length.is_some_and(|n| n > limit as u64) {
            return Err(Exceeded);
        }
        Ok(Self {
            limit,
            buf: BytesMut::new(),
        })
    }

    /// Adds a chunk, unless it takes the body past the limit.
    pub(super) fn push(&mut self, chunk: &[u8]) -> Result<(), Exceeded> {
        if self.buf.len() + chunk.len() > self.limit {
            return Err(Exceeded);
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// The whole body.
    pub(super) fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

impl RegistryClient {
    /// Reads a response body of at most `limit` bytes: a longer one (by its `Content-Length`
    /// or as it streams) is refused without reading the rest.
    pub(super) async fn read_limited(
        &self,
        mut resp: Response,
        limit: usize,
        what: &str,
    ) -> Result<Bytes, ClientError> {
        let too_large = |Exceeded| ClientError::TooLarge {
            registry: self.name.clone(),
            what: what.to_string(),
            limit,
        };
        let mut body = Bounded::new(limit, resp.content_length()).map_err(too_large)?;
        while let Some(chunk) = resp.chunk().await.map_err(|e| ClientError::Body {
            registry: self.name.clone(),
            reason: format!("{what}: {}", without_secrets(&e)),
        })? {
            body.push(&chunk).map_err(too_large)?;
        }
        Ok(body.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        assert_eq!(Bounded::new(10, Some(11)).err(), Some(Exceeded));
        assert!(Bounded::new(10, Some(10)).is_ok());
        assert!(Bounded::new(10, None).is_ok());
    }

    #[test]
    fn a_body_stops_at_its_limit_whatever_it_declared() {
        // A server that declares nothing (or too little) still cannot send more.
        let mut b = Bounded::new(10, Some(1)).expect("declared small");
        b.push(b"12345").expect("fits");
        b.push(b"67890").expect("fits exactly");
        assert_eq!(b.push(b"x"), Err(Exceeded));
        assert_eq!(b.finish(), Bytes::from_static(b"1234567890"));
        let mut b = Bounded::new(4, None).expect("undeclared");
        assert_eq!(b.push(b"12345"), Err(Exceeded));
    }
}

//! Retry schedule: exponential backoff with jitter, capped, honouring `Retry-After`.

use std::time::Duration;

/// Longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The longest `Retry-After` honoured: a server that asks for more gets no retry (the request
/// fails at once, with a message saying so) rather than a sync that waits for a day.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Default total time of one request other than a blob transfer.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How often and how patiently failed requests are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RetryConfig {
    /// Attempts per request, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failure; doubled after each further failure.
    pub initial_backoff: Duration,
    /// Total time of one attempt of a request other than a blob transfer (headers and body):
    /// a server that drips its answer is cut off then.
    pub request_timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(200),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }
}

impl RetryConfig {
    /// The wait before attempt `attempt + 1` after `attempt` (1-based) failed.
    /// `jitter` in `[0, 1)` spreads the wait over `[base/2, base)` ("equal jitter");
    /// a server's `Retry-After` wins when longer, and nothing exceeds [`MAX_BACKOFF`]
    /// unless the server asked for it.
    pub fn delay(&self, attempt: u32, jitter: f64, retry_after: Option<Duration>) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let base = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(MAX_BACKOFF);
        let jitter = jitter.clamp(0.0, 1.0);
        let computed = base / 2 + base.mul_f64(jitter / 2.0);
        match retry_after {
            Some(server) if server > computed => server.min(MAX_RETRY_AFTER),
            _ => computed,
        }
    }
}

/// Parses a `Retry-After` header given in seconds (the HTTP-date form is treated as absent).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A random jitter in `[0, 1)`.
pub fn jitter() -> f64 {
    rand::random::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> RetryConfig {
        RetryConfig {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
        }
    }

    #[test]
    fn doubles_and_stays_in_jitter_window() {
        let c = cfg();
        assert_eq!(c.delay(1, 0.0, None), Duration::from_millis(50));
        assert_eq!(c.delay(1, 0.999_999, None).as_millis(), 99);
        assert_eq!(c.delay(2, 0.0, None), Duration::from_millis(100));
        assert_eq!(c.delay(3, 0.0, None), Duration::from_millis(200));
    }

    #[test]
    fn capped() {
        assert!(cfg().delay(40, 0.99, None) <= MAX_BACKOFF);
    }

    #[test]
    fn retry_after_wins_when_longer() {
        let c = cfg();
        assert_eq!(
            c.delay(1, 0.0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            c.delay(3, 0.0, Some(Duration::from_millis(1))),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn parses_retry_after_seconds_only() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}

//! A byte-rate limit shared by every transfer of a sync (token bucket that may go into debt).

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

/// Bucket state; pure arithmetic, see [`reserve`].
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    /// Bytes that may pass now (negative: debt to wait off).
    pub available: f64,
    /// When `available` was last refilled.
    pub last: Instant,
}

/// Refills `bucket` at `rate` bytes/s up to one second of burst, takes `n` bytes and returns
/// how long the caller must wait before sending them.
pub fn reserve(bucket: &mut Bucket, rate: u64, now: Instant, n: u64) -> Duration {
    let rate_f = rate.max(1) as f64;
    let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
    bucket.available = (bucket.available + elapsed * rate_f).min(rate_f);
    bucket.last = now;
    bucket.available -= n as f64;
    if bucket.available >= 0.0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(-bucket.available / rate_f)
    }
}

/// Optional global limit.
#[derive(Debug)]
pub struct Limiter {
    rate: Option<u64>,
    bucket: Mutex<Bucket>,
}

impl Limiter {
    /// `None`: unlimited.
    pub fn new(rate: Option<u64>) -> Self {
        Self {
            rate,
            bucket: Mutex::new(Bucket {
                available: 0.0,
                last: Instant::now(),
            }),
        }
    }

    /// Waits until `n` more bytes may pass.
    pub async fn take(&self, n: u64) {
        let Some(rate) = self.rate else { return };
        let wait = {
            let mut b = self.bucket.lock().await;
            reserve(&mut b, rate, Instant::now(), n)
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debt_becomes_wait() {
        let t0 = Instant::now();
        let mut b = Bucket {
            available: 0.0,
            last: t0,
        };
        assert_eq!(reserve(&mut b, 1000, t0, 500), Duration::from_millis(500));
        // one second later the debt is paid and 500 bytes are available again
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(reserve(&mut b, 1000, t1, 500), Duration::ZERO);
        // burst capped at one second of rate
        let t2 = t1 + Duration::from_secs(100);
        assert_eq!(reserve(&mut b, 1000, t2, 1000), Duration::ZERO);
        assert_eq!(reserve(&mut b, 1000, t2, 1000), Duration::from_secs(1));
    }
}

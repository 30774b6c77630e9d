//! Sending one request: credentials attached, auth challenges answered, transient failures
//! retried per the retry policy, and the statuses a call expects told from the others.

use std::time::Duration;

use reqwest::header;
use reqwest::{RequestBuilder, Response, StatusCode};

use super::RegistryClient;
use super::body::MAX_ERROR_BYTES;
use super::error::{ClientError, connect_error};
use super::redact::without_secrets;
use super::request;
use crate::engine::backoff::{self, RetryConfig};

/// What an answer's status means to the retry loop.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// 401: answer the challenge and send again.
    Challenge,
    /// 429 or 5xx: worth another attempt.
    Transient,
    /// Anything else: the caller's to judge.
    Final,
}

/// How the retry loop reads `status`.
pub(super) fn answer(status: StatusCode) -> Answer {
    if status == StatusCode::UNAUTHORIZED {
        Answer::Challenge
    } else if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        Answer::Transient
    } else {
        Answer::Final
    }
}

/// What to do after attempt `attempt` (1-based) failed with `err`.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// Return the error: not retryable, or the attempts are used up.
    GiveUp,
    /// The server asked to wait longer than [`backoff::MAX_RETRY_AFTER`]: fail saying so.
    AskedTooLong(Duration),
    /// Wait this long, then try again.
    RetryAfter(Duration),
}

/// The retry decision, pure (`jitter` in `[0, 1)`).
pub(super) fn next(retry: &RetryConfig, attempt: u32, err: &ClientError, jitter: f64) -> Next {
    if attempt >= retry.max_attempts.max(1) || !err.is_retryable() {
        return Next::GiveUp;
    }
    if let (Some(asked), ClientError::Status { .. }) = (err.retry_after(), err)
        && asked > backoff::MAX_RETRY_AFTER
    {
        return Next::AskedTooLong(asked);
    }
    Next::RetryAfter(retry.delay(attempt, jitter, err.retry_after()))
}

impl RegistryClient {
    /// Sends a request built by `build`, answering auth challenges and retrying connection
    /// errors, 5xx and 429 per the retry policy. Other statuses are returned to the caller.
    pub(super) async fn send<F>(&self, scopes: &[String], build: F) -> Result<Response, ClientError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        self.send_with(scopes, Some(self.retry.request_timeout), build)
            .await
    }

    /// [`Self::send`] with a total deadline per attempt (`None`: the response streams for as
    /// long as it takes, as a blob does; reads still time out when nothing arrives).
    /// Credentials go only to this registry's own origin.
    pub(super) async fn send_with<F>(
        &self,
        scopes: &[String],
        timeout: Option<Duration>,
        build: F,
    ) -> Result<Response, ClientError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let key = scopes.join(" ");
        let mut attempt = 0u32;
        let mut authenticated = false;
        loop {
            attempt += 1;
            let sent = self.attempt(&key, timeout, &build).await?;
            let err = match sent {
                Ok(resp) => match answer(resp.status()) {
                    Answer::Challenge if authenticated => {
                        return Err(ClientError::Unauthorized {
                            registry: self.name.clone(),
                            what: key,
                        });
                    }
                    Answer::Challenge => {
                        self.authenticate(&resp, scopes).await?;
                        authenticated = true;
                        attempt -= 1;
                        continue;
                    }
                    Answer::Transient => self.status_error(resp, "request").await,
                    Answer::Final => return Ok(resp),
                },
                Err(e) => connect_error(&self.name, &e),
            };
            match next(&self.retry, attempt, &err, backoff::jitter()) {
                Next::GiveUp => return Err(err),
                Next::AskedTooLong(asked) => return Err(self.asked_too_long(err, asked)),
                Next::RetryAfter(wait) => {
                    tracing::debug!(registry = %self.name, %err, ?wait, "retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One attempt: the request built, its credentials attached, sent within the bound of
    /// requests in flight. The outer error: the request could not even be built.
    async fn attempt<F>(
        &self,
        scope_key: &str,
        timeout: Option<Duration>,
        build: &F,
    ) -> Result<Result<Response, reqwest::Error>, ClientError>
    where
        F: Fn(&reqwest::Client) -> RequestBuilder,
    {
        let mut builder = build(&self.http);
        if let Some(t) = timeout {
            builder = builder.timeout(t);
        }
        let mut req = builder.build().map_err(|e| ClientError::Url {
            url: self.base.to_string(),
            reason: without_secrets(&e),
        })?;
        request::authorize(&mut req, &self.base, self.auth_header(scope_key));
        let _permit = self.in_flight.acquire().await;
        Ok(self.http.execute(req).await)
    }

    fn asked_too_long(&self, err: ClientError, asked: Duration) -> ClientError {
        match err {
            ClientError::Status { status, path, .. } => ClientError::RetryAfterTooLong {
                registry: self.name.clone(),
                what: path,
                status,
                asked_secs: asked.as_secs(),
                limit_secs: backoff::MAX_RETRY_AFTER.as_secs(),
            },
            other => other,
        }
    }

    /// The error of an unexpected status, quoting the start of its body.
    pub(super) async fn status_error(&self, resp: Response, what: &str) -> ClientError {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(backoff::parse_retry_after);
        let path = resp.url().path().to_string();
        let body = self
            .read_limited(resp, MAX_ERROR_BYTES, "an error body")
            .await
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        ClientError::Status {
            registry: self.name.clone(),
            method: what.to_string(),
            path,
            status,
            body: body
                .chars()
                .take(300)
                .collect::<String>()
                .trim()
                .to_string(),
            retry_after,
        }
    }

    /// `resp` when its status is one of `ok`; a 404 is [`ClientError::NotFound`], a 403
    /// [`ClientError::Unauthorized`], anything else [`ClientError::Status`].
    pub(super) async fn expect(
        &self,
        resp: Response,
        ok: &[StatusCode],
        what: &str,
    ) -> Result<Response, ClientError> {
        if ok.contains(&resp.status()) {
            return Ok(resp);
        }
        match resp.status() {
            StatusCode::NOT_FOUND => Err(ClientError::NotFound {
                registry: self.name.clone(),
                what: what.to_string(),
            }),
            StatusCode::FORBIDDEN => Err(ClientError::Unauthorized {
                registry: self.name.clone(),
                what: what.to_string(),
            }),
            _ => Err(self.status_error(resp, what).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, retry_after: Option<u64>) -> ClientError {
        ClientError::Status {
            registry: "r".into(),
            method: "request".into(),
            path: "/v2/a/manifests/v1".into(),
            status: code,
            body: String::new(),
            retry_after: retry_after.map(Duration::from_secs),
        }
    }

    fn cfg(max_attempts: u32) -> RetryConfig {
        RetryConfig {
            max_attempts,
            initial_backoff: Duration::from_millis(100),
            ..RetryConfig::default()
        }
    }

    #[test]
    fn statuses_sort_into_challenge_transient_and_final() {
        assert_eq!(answer(StatusCode::UNAUTHORIZED), Answer::Challenge);
        for s in [429, 500, 502, 503, 504] {
            assert_eq!(
                answer(StatusCode::from_u16(s).expect("status")),
                Answer::Transient,
                "{s}"
            );
        }
        for s in [200, 201, 202, 307, 400, 403, 404, 405, 416] {
            assert_eq!(
                answer(StatusCode::from_u16(s).expect("status")),
                Answer::Final,
                "{s}"
            );
        }
    }

    #[test]
    fn transient_failures_retry_until_the_attempts_are_used_up() {
        let c = cfg(3);
        let e = status(503, None);
        assert_eq!(
            next(&c, 1, &e, 0.0),
            Next::RetryAfter(Duration::from_millis(50))
        );
        assert_eq!(
            next(&c, 2, &e, 0.0),
            Next::RetryAfter(Duration::from_millis(100))
        );
        assert_eq!(next(&c, 3, &e, 0.0), Next::GiveUp);
        // At least one attempt, even when configured with none.
        assert_eq!(next(&cfg(0), 1, &e, 0.0), Next::GiveUp);
        assert_eq!(next(&c, 1, &status(404, None), 0.0), Next::GiveUp);
        let refused = ClientError::Connect {
            registry: "r".into(),
            reason: "refused".into(),
        };
        assert!(matches!(next(&c, 1, &refused, 0.0), Next::RetryAfter(_)));
    }

    #[test]
    fn retry_after_is_honoured_up_to_its_cap_and_refused_beyond() {
        let c = cfg(5);
        assert_eq!(
            next(&c, 1, &status(429, Some(3)), 0.0),
            Next::RetryAfter(Duration::from_secs(3))
        );
        let cap = backoff::MAX_RETRY_AFTER.as_secs();
        assert_eq!(
            next(&c, 1, &status(429, Some(cap)), 0.0),
            Next::RetryAfter(backoff::MAX_RETRY_AFTER)
        );
        assert_eq!(
            next(&c, 1, &status(503, Some(cap + 1)), 0.0),
            Next::AskedTooLong(Duration::from_secs(cap + 1))
        );
        // The last attempt gives up whatever the server asked.
        assert_eq!(next(&c, 5, &status(503, Some(cap + 1)), 0.0), Next::GiveUp);
    }
}

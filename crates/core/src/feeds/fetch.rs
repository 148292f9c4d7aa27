//! Every HTTP nuance of fetching a feed, in one place: conditional GET (ETag, Last-Modified),
//! gzip and brotli, redirects followed by hand so a permanent move (301/308 all the way) can be
//! told from a temporary one, 410 Gone, 429/503 with Retry-After (the host asked us to slow
//! down: not a failure), a per-host concurrency limit, timeouts, a body size limit and a
//! User-Agent that says who is asking.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use tokio::sync::Semaphore;

use super::FeedError;

pub const USER_AGENT: &str = concat!("Concord/", env!("CARGO_PKG_VERSION"), " (+feed reader)");
/// Bodies larger than this are refused: no feed needs more, and a hostile server gets no
/// further than this into memory.
pub const BODY_BYTES_MAX: usize = 10 * 1024 * 1024;
pub const REDIRECTS_MAX: usize = 5;
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The whole exchange, headers and body, per attempt.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Requests in flight to one host at a time, so no server is hammered.
pub const PER_HOST_MAX: usize = 6;
/// A Retry-After beyond this is read as this: a server cannot silence a feed for weeks.
pub const RETRY_AFTER_MAX: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Clone)]
pub struct FetchLimits {
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    pub body_bytes_max: usize,
    pub per_host: usize,
}

impl Default for FetchLimits {
    fn default() -> Self {
        Self {
            connect_timeout: CONNECT_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            body_bytes_max: BODY_BYTES_MAX,
            per_host: PER_HOST_MAX,
        }
    }
}

/// What the client knows from the last fetch, sent back so the server can answer 304.
#[derive(Debug, Clone, Default)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// How a fetch ended. Only `Failed` counts as a failure of the feed.
#[derive(Debug)]
pub enum FetchOutcome {
    Modified(Fetched),
    NotModified(Caching),
    /// 410: the publisher says the feed is gone for good.
    Gone,
    /// 429 or 503: the host asked for a pause (Retry-After, if it said how long).
    SlowDown {
        status: u16,
        retry_after: Option<Duration>,
    },
    Failed(FetchError),
}

/// Cache hints and where the feed turned out to live.
#[derive(Debug, Clone, Default)]
pub struct Caching {
    pub validators: Validators,
    /// Cache-Control max-age (or the distance to Expires).
    pub max_age: Option<Duration>,
    /// Set when every redirect on the way was permanent (301/308): the feed's new address.
    pub moved_to: Option<String>,
}

#[derive(Debug)]
pub struct Fetched {
    pub body: Vec<u8>,
    /// `charset` of the Content-Type, if any.
    pub charset: Option<String>,
    /// The address the body came from (after any redirect), for resolving relative links.
    pub final_url: String,
    pub caching: Caching,
}

/// Why a fetch failed, classified once here: transient errors are retried with backoff,
/// the others need the person (and say what to do).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    pub class: ErrorClass,
    pub status: Option<u16>,
    pub message: String,
    /// What the person can do about it.
    pub suggestion: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    Transient,
    NeedsAttention,
    Permanent,
}

impl FetchError {
    fn new(
        class: ErrorClass,
        status: Option<u16>,
        message: String,
        suggestion: &'static str,
    ) -> Self {
        Self {
            class,
            status,
            message,
            suggestion,
        }
    }

    fn from_status(status: StatusCode) -> Self {
        let code = status.as_u16();
        let (class, suggestion) = match code {
            401 | 403 => (
                ErrorClass::NeedsAttention,
                "the server refuses access: the feed may need a login or may block readers",
            ),
            404 => (
                ErrorClass::NeedsAttention,
                "the feed is not at this address any more: find its new address on the site",
            ),
            500..=599 => (
                ErrorClass::Transient,
                "the server has trouble; Concord retries later",
            ),
            _ => (ErrorClass::NeedsAttention, "check the feed's address"),
        };
        Self::new(
            class,
            Some(code),
            format!("the server answered {status}"),
            suggestion,
        )
    }

    pub fn from_request(e: &reqwest::Error) -> Self {
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        let (suggestion, class) = if e.is_timeout() {
            (
                "the server is slow or unreachable; Concord retries later",
                ErrorClass::Transient,
            )
        } else if e.is_connect() {
            if message.contains("dns") || message.contains("resolve") {
                (
                    "the host name does not resolve: check the address or your network",
                    ErrorClass::Transient,
                )
            } else {
                (
                    "the server cannot be reached: check your network; Concord retries later",
                    ErrorClass::Transient,
                )
            }
        } else if message.contains("certificate") || message.contains("tls") {
            (
                "the server's certificate is not trusted: check the address",
                ErrorClass::NeedsAttention,
            )
        } else {
            (
                "the connection broke off; Concord retries later",
                ErrorClass::Transient,
            )
        };
        Self::new(class, None, message, suggestion)
    }

    pub fn body_too_large(limit: usize) -> Self {
        Self::new(
            ErrorClass::NeedsAttention,
            None,
            format!("the feed is larger than {} MiB", limit / (1024 * 1024)),
            "this is probably not a feed: check the address",
        )
    }

    pub fn unparsable(reason: String) -> Self {
        Self::new(
            ErrorClass::NeedsAttention,
            None,
            reason,
            "the address does not serve a feed: open it in a browser and look for the site's RSS or Atom link",
        )
    }
}

/// The HTTP client for feeds, shared by all fetches of a refresh (and the per-host limits).
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    limits: FetchLimits,
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl Fetcher {
    pub fn new(limits: FetchLimits) -> Result<Self, FeedError> {
        let tls = tls_config()?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(limits.connect_timeout)
            .timeout(limits.request_timeout)
            .pool_max_idle_per_host(limits.per_host)
            .build()
            .map_err(|e| FeedError::Client(e.to_string()))?;
        Ok(Self {
            client,
            limits,
            hosts: Arc::default(),
        })
    }

    pub fn limits(&self) -> &FetchLimits {
        &self.limits
    }

    fn host_slot(&self, url: &Url) -> Arc<Semaphore> {
        let key = format!(
            "{}:{}",
            url.host_str().unwrap_or(""),
            url.port_or_known_default().unwrap_or(0)
        );
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .entry(key)
            .or_insert_with(|| Arc::new(Semaphore::new(self.limits.per_host.max(1))))
            .clone()
    }

    /// Fetches `url`, sending `validators` so an unchanged feed costs a 304.
    pub async fn fetch(&self, url: &str, validators: &Validators) -> FetchOutcome {
        let mut current = match Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => u,
            _ => {
                return FetchOutcome::Failed(FetchError::new(
                    ErrorClass::Permanent,
                    None,
                    format!("{url:?} is not an http(s) address"),
                    "edit or remove the feed",
                ));
            }
        };
        let mut all_permanent = true;
        let mut redirected = false;
        for _ in 0..=REDIRECTS_MAX {
            let slot = self.host_slot(&current);
            let Ok(_permit) = slot.acquire_owned().await else {
                return FetchOutcome::Failed(FetchError::new(
                    ErrorClass::Transient,
                    None,
                    "shutting down".into(),
                    "",
                ));
            };
            let mut request = self.client.get(current.clone()).header(
                header::ACCEPT,
                "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8",
            );
            if let Some(etag) = &validators.etag {
                request = request.header(header::IF_NONE_MATCH, etag);
            }
            if let Some(lm) = &validators.last_modified {
                request = request.header(header::IF_MODIFIED_SINCE, lm);
            }
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) => return FetchOutcome::Failed(FetchError::from_request(&e)),
            };
            let status = response.status();
            if status.is_redirection() && status != StatusCode::NOT_MODIFIED {
                let Some(next) = response
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| current.join(l).ok())
                else {
                    return FetchOutcome::Failed(FetchError::new(
                        ErrorClass::NeedsAttention,
                        Some(status.as_u16()),
                        format!("the server answered {status} without a valid Location"),
                        "check the feed's address",
                    ));
                };
                all_permanent &= matches!(
                    status,
                    StatusCode::MOVED_PERMANENTLY | StatusCode::PERMANENT_REDIRECT
                );
                redirected = true;
                current = next;
                continue;
            }
            let moved_to = (redirected && all_permanent).then(|| current.to_string());
            return self.finish(response, current, moved_to).await;
        }
        FetchOutcome::Failed(FetchError::new(
            ErrorClass::NeedsAttention,
            None,
            format!("more than {REDIRECTS_MAX} redirects"),
            "the server redirects in circles: check the feed's address",
        ))
    }

    async fn finish(
        &self,
        mut response: reqwest::Response,
        url: Url,
        moved_to: Option<String>,
    ) -> FetchOutcome {
        let status = response.status();
        let headers = response.headers().clone();
        let caching = Caching {
            validators: Validators {
                etag: header_str(&headers, header::ETAG),
                last_modified: header_str(&headers, header::LAST_MODIFIED),
            },
            max_age: max_age(&headers, Utc::now()),
            moved_to,
        };
        match status {
            StatusCode::NOT_MODIFIED => return FetchOutcome::NotModified(caching),
            StatusCode::GONE => return FetchOutcome::Gone,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                let wait = headers
                    .get(header::RETRY_AFTER)
                    .and_then(|v| retry_after(v, Utc::now()));
                // 429 always asks for a pause; 503 does when it says how long, else it is
                // an outage like any 5xx.
                if status == StatusCode::TOO_MANY_REQUESTS || wait.is_some() {
                    return FetchOutcome::SlowDown {
                        status: status.as_u16(),
                        retry_after: wait,
                    };
                }
                return FetchOutcome::Failed(FetchError::from_status(status));
            }
            s if !s.is_success() => return FetchOutcome::Failed(FetchError::from_status(s)),
            _ => {}
        }
        let limit = self.limits.body_bytes_max;
        if response.content_length().is_some_and(|n| n > limit as u64) {
            return FetchOutcome::Failed(FetchError::body_too_large(limit));
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > limit {
                        return FetchOutcome::Failed(FetchError::body_too_large(limit));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return FetchOutcome::Failed(FetchError::from_request(&e)),
            }
        }
        FetchOutcome::Modified(Fetched {
            body,
            charset: charset(&headers),
            final_url: url.to_string(),
            caching,
        })
    }
}

/// rustls on the workspace's one provider (ring, named explicitly as dav.rs does) with the
/// system's trust store. Without any system certificates https feeds fail one by one with a
/// certificate error instead of every refresh failing.
fn tls_config() -> Result<rustls::ClientConfig, FeedError> {
    use hyper_rustls::ConfigBuilderExt;
    let builder = || {
        rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| FeedError::Client(e.to_string()))
    };
    Ok(match builder()?.with_native_roots() {
        Ok(b) => b.with_no_client_auth(),
        Err(e) => {
            tracing::warn!(error = %e, "no system certificates: https feeds will fail");
            builder()?
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth()
        }
    })
}

fn header_str(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The `charset` parameter of the Content-Type.
fn charset(headers: &HeaderMap) -> Option<String> {
    let ct = header_str(headers, header::CONTENT_TYPE)?;
    ct.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// Cache-Control `max-age` (`no-cache`/`no-store` mean none), else the distance to `Expires`.
pub fn max_age(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    if let Some(cc) = header_str(headers, header::CACHE_CONTROL) {
        for directive in cc.split(',') {
            let d = directive.trim();
            if let Some(v) = d
                .strip_prefix("max-age=")
                .or_else(|| d.strip_prefix("s-maxage="))
            {
                return v
                    .trim_matches('"')
                    .parse::<u64>()
                    .ok()
                    .map(Duration::from_secs);
            }
        }
    }
    let expires = header_str(headers, header::EXPIRES)?;
    let at = DateTime::parse_from_rfc2822(&expires).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

/// Retry-After as seconds or an HTTP date, capped at [`RETRY_AFTER_MAX`].
pub fn retry_after(value: &HeaderValue, now: DateTime<Utc>) -> Option<Duration> {
    let s = value.to_str().ok()?.trim();
    let d = match s.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => {
            let at = DateTime::parse_from_rfc2822(s).ok()?;
            (at.with_timezone(&Utc) - now).to_std().unwrap_or_default()
        }
    };
    Some(d.min(RETRY_AFTER_MAX))
}

/// The host part of a URL as the slow-down table keys it.
pub fn host_of(url: &str) -> String {
    Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates_and_is_capped() {
        let now = Utc::now();
        let v = HeaderValue::from_static("120");
        assert_eq!(retry_after(&v, now), Some(Duration::from_secs(120)));
        let v = HeaderValue::from_static("99999999");
        assert_eq!(retry_after(&v, now), Some(RETRY_AFTER_MAX));
        let later = (now + chrono::Duration::seconds(600)).to_rfc2822();
        let v = HeaderValue::from_str(&later).unwrap();
        let d = retry_after(&v, now).unwrap();
        assert!(d.as_secs() >= 599 && d.as_secs() <= 600, "{d:?}");
    }

    #[test]
    fn max_age_prefers_cache_control() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        assert_eq!(max_age(&h, Utc::now()), Some(Duration::from_secs(3600)));
    }
}

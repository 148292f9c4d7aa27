//! The one HTTP client of CalDAV and CardDAV (on libdav), its limits and its typed errors.
//!
//! The collection storage is `sync::storage::caldav`; finding an account's services from what
//! a person types (RFC 6764 well-known and SRV) is `sync::accounts::discovery`. All HTTP goes
//! through one hyper client with rustls (ring, the system's trust store) and explicit limits.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::Uri;
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use libdav::dav::{RequestError, WebDavClient, WebDavError};
use tower_http::auth::AddAuthorization;

/// How long a TCP (and TLS) connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one DAV request may take, from sending to the last byte of the answer.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) type HttpClient = AddAuthorization<Client<HttpsConnector<HttpConnector>, String>>;
pub(crate) type HttpClientError = hyper_util::client::legacy::Error;

/// A username and password for HTTP Basic authentication. `Debug` never shows the password.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why talking CalDAV failed, in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum DavError {
    #[error("{url:?} is not a usable server address: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("no trusted TLS certificates could be loaded from this system: {0}")]
    TrustStore(#[source] std::io::Error),
    /// Needs the person: the username or password is wrong, or the account has no access.
    #[error("the server at {url} rejected the username or password (HTTP {status})")]
    Unauthorized { url: String, status: u16 },
    #[error("the server at {url} did not answer {what} within {} s", .after.as_secs())]
    Timeout {
        url: String,
        what: &'static str,
        after: Duration,
    },
    /// Someone else changed the item since we read it (HTTP 412): re-read, never overwrite.
    #[error("{what} at {url}: the item changed on the server since it was read (HTTP 412)")]
    PreconditionFailed { url: String, what: &'static str },
    #[error("{what} at {url}: the server answered HTTP {status}")]
    Status {
        url: String,
        what: &'static str,
        status: u16,
    },
    /// Needs the person: the collection was deleted or moved, or its address is wrong.
    #[error(
        "there is no collection at {url} on the server (deleted, moved or mistyped?); `concord \
         account discover` lists the account's collections"
    )]
    CollectionMissing { url: String },
    #[error("{what} at {url} failed: {}", request_failure(source.as_ref()))]
    Request {
        url: String,
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl DavError {
    /// The HTTP client's own error, when a request failed on the network (connection, TLS)
    /// rather than on what the server answered.
    pub(crate) fn network_failure(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let DavError::Request { source, .. } = self else {
            return None;
        };
        http_client_error(source.as_ref())
    }
}

/// The HTTP client's error inside libdav's (whose `source()` does not lead to it).
fn http_client_error<'a>(
    source: &'a (dyn std::error::Error + 'static),
) -> Option<&'a (dyn std::error::Error + 'static)> {
    let request = match source.downcast_ref::<WebDavError<HttpClientError>>() {
        Some(WebDavError::Request(request)) => request,
        Some(_) => return None,
        None => source.downcast_ref::<RequestError<HttpClientError>>()?,
    };
    match request {
        RequestError::Client(client) => Some(client),
        RequestError::Http(http) => Some(http.as_ref()),
    }
}

/// A failed request in words: libdav's error, then the HTTP client's causes under it
/// ("... client error (Connect): tcp connect error: Connection refused").
fn request_failure(source: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    chain_into(source, &mut parts);
    if let Some(client) = http_client_error(source) {
        chain_into(client, &mut parts);
    }
    parts.join(": ")
}

/// An error with its causes, each said once ("client error (Connect): tcp connect error:
/// Connection refused"): the outermost alone often hides what happened.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = Vec::new();
    chain_into(err, &mut parts);
    parts.join(": ")
}

fn chain_into(err: &(dyn std::error::Error + 'static), parts: &mut Vec<String>) {
    let mut next = Some(err);
    while let Some(e) = next {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = e.source();
    }
}

/// The HTTP client all DAV requests go through: hyper with rustls (ring, the system's trust
/// store, read only for an https:// address), HTTP/1.1, Basic authentication, connect
/// timeout. Opens no connection yet.
pub(crate) fn webdav_client(
    base_url: &str,
    credentials: &Credentials,
) -> Result<WebDavClient<HttpClient>, DavError> {
    let invalid = |reason: String| DavError::InvalidUrl {
        url: base_url.to_owned(),
        reason,
    };
    let uri: Uri = base_url.parse().map_err(|err| invalid(format!("{err}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        _ => return Err(invalid("it must start with http:// or https://".to_owned())),
    }
    if uri.host().is_none() {
        return Err(invalid("it has no host name".to_owned()));
    }

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(CONNECT_TIMEOUT));
    let tls = match uri.scheme_str() {
        Some("https") => trusted_tls()?,
        _ => untrusting_tls()?,
    };
    let connector = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    let http_client = Client::builder(TokioExecutor::new()).build(connector);
    let http_client =
        AddAuthorization::basic(http_client, &credentials.username, &credentials.password)
            // Keeps the header out of any Debug output of requests.
            .as_sensitive(true);
    Ok(WebDavClient::new(uri, http_client))
}

/// The TLS set-up of https clients: ring (named explicitly, so another crate enabling a second
/// rustls provider changes nothing) and the system's trust store. Reading the store costs
/// milliseconds, so it is read once per process and shared by every client.
fn trusted_tls() -> Result<rustls::ClientConfig, DavError> {
    static TRUSTED: OnceLock<Result<rustls::ClientConfig, (std::io::ErrorKind, String)>> =
        OnceLock::new();
    TRUSTED
        .get_or_init(|| {
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(std::io::Error::other)
            .and_then(ConfigBuilderExt::with_native_roots)
            .map(|builder| builder.with_no_client_auth())
            .map_err(|err| (err.kind(), err.to_string()))
        })
        .clone()
        .map_err(|(kind, reason)| DavError::TrustStore(std::io::Error::new(kind, reason)))
}

/// The TLS set-up of clients made for an http:// address: no trust store is read, and none
/// trusted, so an https request through such a client fails on the server's certificate.
fn untrusting_tls() -> Result<rustls::ClientConfig, DavError> {
    static UNTRUSTING: OnceLock<Result<rustls::ClientConfig, String>> = OnceLock::new();
    UNTRUSTING
        .get_or_init(|| {
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map(|builder| {
                builder
                    .with_root_certificates(rustls::RootCertStore::empty())
                    .with_no_client_auth()
            })
            .map_err(|err| err.to_string())
        })
        .clone()
        .map_err(|reason| DavError::TrustStore(std::io::Error::other(reason)))
}

/// Runs one request with [`REQUEST_TIMEOUT`] and turns libdav's error into a [`DavError`].
pub(crate) async fn bounded<T>(
    client: &WebDavClient<HttpClient>,
    what: &'static str,
    path: &str,
    request: impl Future<Output = Result<T, WebDavError<HttpClientError>>>,
) -> Result<T, DavError> {
    let url = client
        .relative_uri(path)
        .map_or_else(|_| path.to_owned(), |uri| uri.to_string());
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Err(_elapsed) => Err(DavError::Timeout {
            url,
            what,
            after: REQUEST_TIMEOUT,
        }),
        Ok(Ok(value)) => Ok(value),
        Ok(Err(WebDavError::BadStatusCode(status)))
            if status == http::StatusCode::UNAUTHORIZED
                || status == http::StatusCode::FORBIDDEN =>
        {
            Err(DavError::Unauthorized {
                url,
                status: status.as_u16(),
            })
        }
        Ok(Err(WebDavError::BadStatusCode(http::StatusCode::PRECONDITION_FAILED))) => {
            Err(DavError::PreconditionFailed { url, what })
        }
        Ok(Err(WebDavError::BadStatusCode(status))) => Err(DavError::Status {
            url,
            what,
            status: status.as_u16(),
        }),
        Ok(Err(err)) => Err(DavError::Request {
            url,
            what,
            source: Box::new(err),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_never_show_the_password() {
        let shown = format!("{:?}", Credentials::new("alice", "hunter2"));
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn an_address_without_http_or_https_is_refused_with_the_reason() {
        let credentials = Credentials::new("alice", "pw");
        for url in ["example.com/dav", "ftp://example.com/", "not a url"] {
            let err = webdav_client(url, &credentials).unwrap_err();
            assert!(matches!(err, DavError::InvalidUrl { .. }), "{url}: {err:?}");
            assert!(err.to_string().contains(url), "{err}");
        }
    }

    /// A client made for an http:// address trusts no certificate (it never read the system's
    /// trust store): an https request through it fails on the certificate, without a panic.
    /// The TLS server is `openssl s_server` with a certificate made for the test.
    #[tokio::test]
    async fn an_https_request_through_a_client_made_for_http_fails_on_the_certificate() {
        use std::process::{Command, Stdio};
        let dir = tempfile::tempdir().unwrap();
        let (key, cert) = (dir.path().join("key.pem"), dir.path().join("cert.pem"));
        let made = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=127.0.0.1",
            ])
            .args(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null())
            .status()
            .expect("openssl, to make a test certificate");
        assert!(made.success());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(port.to_string())
            .arg("-cert")
            .arg(&cert)
            .arg("-key")
            .arg(&key)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "s_server did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }

        let client = webdav_client(
            &format!("http://127.0.0.1:{port}/"),
            &Credentials::new("a", "b"),
        )
        .unwrap();
        let request = http::Request::get(format!("https://127.0.0.1:{port}/"))
            .body(String::new())
            .unwrap();
        let answer = client.request_raw(request).await;
        let _ = server.kill();
        let _ = server.wait();
        let Err(libdav::dav::RequestError::Client(err)) = answer else {
            panic!("not a client error: {answer:?}");
        };
        let mut chain = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            chain = format!("{chain}: {cause}");
            source = cause.source();
        }
        assert!(chain.contains("certificate"), "{chain}");
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_is_a_request_error_naming_the_url() {
        use crate::sync::accounts::discovery::{DiscoveryOptions, Service, list_collections};
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        let credentials = Credentials::new("a", "b");
        let options = DiscoveryOptions::default();
        let err = list_collections(
            Service::CalDav,
            "http://127.0.0.1:1/",
            &credentials,
            &options,
        )
        .await
        .unwrap_err();
        assert!(matches!(err, DavError::Request { .. }), "{err:?}");
        // The address, and the cause under the client's own words.
        let said = err.to_string();
        assert!(said.contains("127.0.0.1:1"), "{said}");
        assert!(said.to_lowercase().contains("refused"), "{said}");
    }
}

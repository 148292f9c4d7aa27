//! CalDAV, on libdav: from a server address and a username and password to the person's
//! calendars (current-user principal, calendar home set, the calendars in it).
//!
//! The collection storage is `sync::caldav`; finding an account's services from what a person
//! types (RFC 6764 well-known and SRV) is `sync::discovery`. All HTTP goes through one hyper
//! client with rustls (ring, the system's trust store) and explicit limits.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use http::Uri;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use libdav::caldav::{FindCalendarHomeSet, FindCalendars};
use libdav::carddav::{FindAddressBookHomeSet, FindAddressBooks};
use libdav::dav::{FoundCollection, WebDavClient, WebDavError};
use libdav::{CalDavClient, names};
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

/// One calendar collection on a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    /// The collection's path on the server, as the server spells it (ends in `/`).
    pub href: String,
    /// The `DAV:displayname`, if the server has one.
    pub display_name: Option<String>,
    /// The Apple `calendar-color`, if set (for example `#3a429cff`).
    pub color: Option<String>,
    /// Whether the server offers RFC 6578 sync-collection on it.
    pub supports_sync: bool,
}

/// What [`CalDav::discover`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovery {
    /// The current-user principal's path, if the server named one.
    pub principal: Option<String>,
    /// The calendar home sets searched (the base URL's path when the server names none).
    pub calendar_home_sets: Vec<String>,
    /// Every calendar in those home sets.
    pub calendars: Vec<Calendar>,
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
    #[error("{what} at {url} failed: {source}")]
    Request {
        url: String,
        what: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A CalDAV client for one account on one server.
#[derive(Debug)]
pub struct CalDav {
    client: CalDavClient<HttpClient>,
}

impl CalDav {
    /// A client for the server at `base_url` (`http://` or `https://`; the path is where to
    /// start looking, often just `/`). Opens no connection yet.
    pub fn new(base_url: &str, credentials: &Credentials) -> Result<Self, DavError> {
        Ok(Self {
            client: CalDavClient::new(webdav_client(base_url, credentials)?),
        })
    }

    /// The server address this client starts from.
    pub fn base_url(&self) -> String {
        self.client.base_url().to_string()
    }

    /// Principal, calendar home sets and calendars, in that order (RFC 4791 section 6,
    /// RFC 5397). Without a principal or home set, the base URL is searched as the home.
    pub async fn discover(&self) -> Result<Discovery, DavError> {
        let principal = self.current_user_principal().await?;
        let mut calendar_home_sets = match &principal {
            Some(principal) => self.calendar_home_sets(principal).await?,
            None => Vec::new(),
        };
        if calendar_home_sets.is_empty() {
            calendar_home_sets.push(self.client.base_url().path().to_owned());
        }
        let mut calendars = Vec::new();
        for home_set in &calendar_home_sets {
            calendars.extend(self.calendars(home_set).await?);
        }
        Ok(Discovery {
            principal,
            calendar_home_sets,
            calendars,
        })
    }

    /// The path of the current-user principal, asked of the base URL and then of `/`.
    pub async fn current_user_principal(&self) -> Result<Option<String>, DavError> {
        let what = "finding the current-user principal";
        let found = bounded(&self.client, what, self.client.base_url().path(), async {
            self.client
                .find_current_user_principal()
                .await
                .map_err(|err| match err {
                    libdav::dav::FindCurrentUserPrincipalError::RequestError(err) => err,
                    libdav::dav::FindCurrentUserPrincipalError::InvalidInput(err) => {
                        WebDavError::InvalidInput(err)
                    }
                })
        })
        .await?;
        Ok(found.map(|uri| uri.path().to_owned()))
    }

    /// The calendar home sets a principal names (usually one).
    pub async fn calendar_home_sets(&self, principal: &str) -> Result<Vec<String>, DavError> {
        let what = "finding the calendar home set";
        let found = bounded(
            &self.client,
            what,
            principal,
            self.client.request(FindCalendarHomeSet::new(principal)),
        )
        .await?;
        Ok(found
            .home_sets
            .iter()
            .map(|uri| uri.path().to_owned())
            .collect())
    }

    /// The calendars directly inside a calendar home set (a depth-1 PROPFIND).
    pub async fn calendars(&self, home_set: &str) -> Result<Vec<Calendar>, DavError> {
        let what = "listing calendars";
        let found = bounded(
            &self.client,
            what,
            home_set,
            self.client.request(FindCalendars::new(home_set)),
        )
        .await?;
        Ok(found.calendars.into_iter().map(calendar).collect())
    }

    /// The address book home sets a principal names (RFC 6352 section 7.1.1).
    pub async fn address_book_home_sets(&self, principal: &str) -> Result<Vec<String>, DavError> {
        let what = "finding the address book home set";
        let found = bounded(
            &self.client,
            what,
            principal,
            self.client.request(FindAddressBookHomeSet::new(principal)),
        )
        .await?;
        Ok(found
            .home_sets
            .iter()
            .map(|uri| uri.path().to_owned())
            .collect())
    }

    /// The address books directly inside an address book home set.
    pub async fn address_books(&self, home_set: &str) -> Result<Vec<Calendar>, DavError> {
        let what = "listing address books";
        let found = bounded(
            &self.client,
            what,
            home_set,
            self.client.request(FindAddressBooks::new(home_set)),
        )
        .await?;
        Ok(found.addressbooks.into_iter().map(calendar).collect())
    }

    /// Address books of the principal; a server without CardDAV gives none (not an error),
    /// but a rejected password is one.
    pub async fn discover_address_books(
        &self,
        principal: Option<&str>,
    ) -> Result<(Vec<String>, Vec<Calendar>), DavError> {
        fn tolerate<T>(err: DavError) -> Result<Vec<T>, DavError> {
            match err {
                DavError::Unauthorized { .. } => Err(err),
                _ => Ok(Vec::new()),
            }
        }
        let homes = match principal {
            Some(principal) => self
                .address_book_home_sets(principal)
                .await
                .or_else(tolerate)?,
            None => Vec::new(),
        };
        let mut books = Vec::new();
        for home in &homes {
            books.extend(self.address_books(home).await.or_else(tolerate)?);
        }
        Ok((homes, books))
    }
}

/// The HTTP client all DAV requests go through: hyper with rustls (ring, the system's trust
/// store), HTTP/1.1, Basic authentication, connect timeout. Opens no connection yet.
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
    let connector = HttpsConnectorBuilder::new()
        // Named explicitly so another crate enabling a second rustls provider changes nothing.
        .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
        .map_err(DavError::TrustStore)?
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

fn calendar(found: FoundCollection) -> Calendar {
    let property = |name| {
        found
            .properties
            .iter()
            .find(|(property, _)| **property == name)
            .and_then(|(_, value)| value.clone())
    };
    Calendar {
        display_name: property(names::DISPLAY_NAME),
        color: property(names::CALENDAR_COLOUR),
        supports_sync: found.supports_sync,
        href: found.href,
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
            let err = CalDav::new(url, &credentials).unwrap_err();
            assert!(matches!(err, DavError::InvalidUrl { .. }), "{url}: {err:?}");
            assert!(err.to_string().contains(url), "{err}");
        }
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_is_a_request_error_naming_the_url() {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        let client = CalDav::new("http://127.0.0.1:1/", &Credentials::new("a", "b")).unwrap();
        let err = client.discover().await.unwrap_err();
        assert!(matches!(err, DavError::Request { .. }), "{err:?}");
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    }
}

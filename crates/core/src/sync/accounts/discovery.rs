//! RFC 6764 discovery: from what a person types (a host, a URL, or `user@domain`) to the
//! account's calendars and address books, each with display name, colour and supported
//! components. Per service (CalDAV, CardDAV) the order is: the given URL's current-user
//! principal; the `/.well-known/` URI, redirects followed; DNS SRV (`_caldavs._tcp` before
//! `_caldav._tcp`) with the TXT `path=` record, through a resolver whose name server can be
//! chosen. Plain http is used only for this machine or when the person allowed it.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use domain::base::iana::Rtype;
use domain::base::name::Name;
use domain::rdata::{Srv, Txt};
use domain::resolv::StubResolver;
use domain::resolv::stub::conf::{ResolvConf, ServerConf, Transport};
use http::{Method, Request, StatusCode, Uri};
use libdav::caldav::{FindCalendarHomeSet, FindCalendars, GetSupportedComponents};
use libdav::carddav::{FindAddressBookHomeSet, FindAddressBooks};
use libdav::dav::{FindPropertyHrefs, FoundCollection, WebDavClient};
use libdav::names;
use serde::{Deserialize, Serialize};

use crate::dav::{Credentials, DavError, HttpClient, bounded, webdav_client};

pub use crate::sync::state::mapping::{Collection, CollectionKind};

/// The body of the PROPFIND that follows well-known redirects.
const PROPFIND_PRINCIPAL: &str = r#"<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop></D:propfind>"#;
/// Redirects followed from a well-known URI before giving up.
pub const REDIRECTS_MAX: usize = 5;
/// How long one DNS question may take, all attempts included.
pub const DNS_TIMEOUT: Duration = Duration::from_secs(5);
/// SRV targets tried per service.
pub const SRV_TARGETS_MAX: usize = 4;

/// The two services an account can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    CalDav,
    CardDav,
}

impl Service {
    pub const BOTH: [Service; 2] = [Service::CalDav, Service::CardDav];

    pub fn as_str(self) -> &'static str {
        match self {
            Service::CalDav => "caldav",
            Service::CardDav => "carddav",
        }
    }

    fn well_known(self) -> &'static str {
        match self {
            Service::CalDav => "/.well-known/caldav",
            Service::CardDav => "/.well-known/carddav",
        }
    }

    /// The SRV labels, TLS first.
    fn srv_labels(self) -> [(&'static str, bool); 2] {
        match self {
            Service::CalDav => [("_caldavs._tcp", true), ("_caldav._tcp", false)],
            Service::CardDav => [("_carddavs._tcp", true), ("_carddav._tcp", false)],
        }
    }
}

/// How a service's context URL was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FoundVia {
    /// The address the person gave names the principal itself.
    GivenUrl,
    /// `/.well-known/caldav` or `/.well-known/carddav` redirected to it.
    WellKnown,
    /// A DNS SRV record (with its TXT `path=`, or the target's well-known URI).
    Srv,
}

/// Where one service of an account lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceFound {
    pub service: Service,
    pub via: FoundVia,
    /// The URL discovery settled on (where the principal was asked).
    pub context_url: String,
    /// Absolute URL of the current-user principal, if the server named one.
    pub principal: Option<String>,
    /// Absolute URLs of the home sets searched for collections.
    pub home_sets: Vec<String>,
}

/// What [`discover`] found for an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountDiscovery {
    /// The username to sign in with when the person typed `user@domain` and gave none.
    pub username_hint: Option<String>,
    pub services: Vec<ServiceFound>,
    pub collections: Vec<Collection>,
}

impl AccountDiscovery {
    pub fn service(&self, service: Service) -> Option<&ServiceFound> {
        self.services.iter().find(|s| s.service == service)
    }
}

/// Knobs of discovery.
#[derive(Debug, Clone, Default)]
pub struct DiscoveryOptions {
    /// The person allowed plain http to a host other than this machine.
    pub allow_http: bool,
    /// The DNS server for SRV and TXT questions (default: the system's, `/etc/resolv.conf`).
    pub nameserver: Option<SocketAddr>,
    /// Skip asking each calendar for its components (a refresh that only needs the list).
    pub skip_components: bool,
}

impl DiscoveryOptions {
    /// The options with the name server from `CONCORD_NAMESERVER` (`IP:PORT`), if set.
    pub fn from_env(allow_http: bool) -> Self {
        let nameserver = std::env::var("CONCORD_NAMESERVER")
            .ok()
            .and_then(|s| s.trim().parse().ok());
        Self {
            allow_http,
            nameserver,
            skip_components: false,
        }
    }
}

/// Why discovery found nothing usable, in words a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    #[error("{input:?} is not a server address, URL or user@domain: {reason}")]
    Input { input: String, reason: String },
    #[error(
        "{url} is plain http: the password would travel unencrypted. Use https://, or allow \
         plain http on purpose (--insecure-http)"
    )]
    InsecureHttp { url: String },
    #[error(transparent)]
    Dav(#[from] DavError),
    #[error("asking DNS for {name}: {reason}")]
    Dns { name: String, reason: String },
    #[error(
        "no calendar or contact service found for {input:?} (tried {tried}); check the address"
    )]
    NotFound { input: String, tried: String },
}

/// Where discovery starts: a URL, the host to ask SRV about, and a username hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub url: Uri,
    /// The domain for SRV questions.
    pub domain: String,
    pub username_hint: Option<String>,
}

/// Reads what a person typed: `https://dav.example.com/dav/`, `dav.example.com`,
/// `example.com:8443`, or `alice@example.com`. A bare host is https, except this machine.
pub fn parse_input(input: &str) -> Result<Start, DiscoveryError> {
    let input = input.trim();
    let bad = |reason: &str| DiscoveryError::Input {
        input: input.to_owned(),
        reason: reason.to_owned(),
    };
    if input.is_empty() {
        return Err(bad("it is empty"));
    }
    let (text, username_hint) = if !input.contains("://") && !input.contains('/') {
        match input.rsplit_once('@') {
            Some((user, domain)) if !user.is_empty() && !domain.is_empty() => {
                (domain.to_owned(), Some(input.to_owned()))
            }
            Some(_) => return Err(bad("it has an @ but no user or no domain")),
            None => (input.to_owned(), None),
        }
    } else {
        (input.to_owned(), None)
    };
    let text = match text.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "http" | "https" => text.clone(),
            "webcal" => format!("https://{rest}"),
            _ => return Err(bad("it must start with http:// or https://")),
        },
        None => {
            let host = text.split(['/', ':']).next().unwrap_or_default();
            let scheme = if is_loopback_host(host) {
                "http"
            } else {
                "https"
            };
            format!("{scheme}://{text}")
        }
    };
    let mut url: Uri = text.parse().map_err(|err| bad(&format!("{err}")))?;
    let domain = url
        .host()
        .ok_or_else(|| bad("it has no host name"))?
        .to_owned();
    if url.path().is_empty() || url.path_and_query().is_none() {
        let mut parts = url.into_parts();
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
        url = Uri::from_parts(parts).map_err(|err| bad(&format!("{err}")))?;
    }
    Ok(Start {
        url,
        domain,
        username_hint,
    })
}

/// Whether a host is this machine (plain http is fine there).
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn http_allowed(url: &Uri, options: &DiscoveryOptions) -> bool {
    url.scheme_str() != Some("http")
        || options.allow_http
        || url.host().is_some_and(is_loopback_host)
}

/// Finds the account's services and every calendar and address book in them.
pub async fn discover(
    input: &str,
    credentials: &Credentials,
    options: &DiscoveryOptions,
) -> Result<AccountDiscovery, DiscoveryError> {
    let start = parse_input(input)?;
    if !http_allowed(&start.url, options) {
        return Err(DiscoveryError::InsecureHttp {
            url: start.url.to_string(),
        });
    }
    let mut services = Vec::new();
    let mut first_error = None;
    for service in Service::BOTH {
        match locate(service, &start, credentials, options).await {
            Ok(Some(found)) => services.push(found),
            Ok(None) => {}
            // A refused password is the answer for both services.
            Err(err @ DiscoveryError::Dav(DavError::Unauthorized { status: 401, .. })) => {
                return Err(err);
            }
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    if services.is_empty() {
        return Err(first_error.unwrap_or_else(|| DiscoveryError::NotFound {
            input: input.trim().to_owned(),
            tried: format!(
                "{}, its /.well-known/ addresses, and DNS SRV for {}",
                start.url, start.domain
            ),
        }));
    }
    let mut collections: Vec<Collection> = Vec::new();
    for found in &services {
        for home in &found.home_sets {
            for c in list_collections(found.service, home, credentials, options).await? {
                if !collections.iter().any(|k| k.url == c.url) {
                    collections.push(c);
                }
            }
        }
    }
    Ok(AccountDiscovery {
        username_hint: start.username_hint,
        services,
        collections,
    })
}

/// Lists the collections in one home set (absolute URL): calendars with their components,
/// or address books.
pub async fn list_collections(
    service: Service,
    home_set: &str,
    credentials: &Credentials,
    options: &DiscoveryOptions,
) -> Result<Vec<Collection>, DavError> {
    let client = webdav_client(home_set, credentials)?;
    let path = client.base_url().path().to_owned();
    let found = match service {
        Service::CalDav => {
            bounded(
                &client,
                "listing calendars",
                &path,
                client.request(FindCalendars::new(&path)),
            )
            .await?
            .calendars
        }
        Service::CardDav => {
            bounded(
                &client,
                "listing address books",
                &path,
                client.request(FindAddressBooks::new(&path)),
            )
            .await?
            .addressbooks
        }
    };
    let mut out = Vec::with_capacity(found.len());
    for collection in found {
        let mut c = collection_of(&client, service, collection);
        if service == Service::CalDav && !options.skip_components {
            c.components = components(&client, &c.url).await?;
        }
        out.push(c);
    }
    Ok(out)
}

/// The components a calendar accepts; RFC 4791 section 5.2.3: none named means all.
async fn components(client: &WebDavClient<HttpClient>, url: &str) -> Result<Vec<String>, DavError> {
    let path = url
        .parse::<Uri>()
        .map_or_else(|_| url.to_owned(), |u| u.path().to_owned());
    let found = bounded(
        client,
        "reading the calendar's components",
        &path,
        client.request(GetSupportedComponents::new(&path)),
    )
    .await;
    let named: Vec<String> = match found {
        Ok(found) => found
            .components
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
        Err(err @ DavError::Unauthorized { .. }) => return Err(err),
        Err(_) => Vec::new(),
    };
    Ok(if named.is_empty() {
        ["VEVENT", "VTODO", "VJOURNAL"].map(str::to_owned).to_vec()
    } else {
        named
    })
}

fn collection_of(
    client: &WebDavClient<HttpClient>,
    service: Service,
    found: FoundCollection,
) -> Collection {
    let property = |name| {
        found
            .properties
            .iter()
            .find(|(property, _)| **property == name)
            .and_then(|(_, value)| value.clone())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let (kind, color) = match service {
        Service::CalDav => (CollectionKind::Calendar, property(names::CALENDAR_COLOUR)),
        Service::CardDav => (CollectionKind::AddressBook, None),
    };
    let mut href = found.href.clone();
    if !href.ends_with('/') {
        href.push('/');
    }
    Collection {
        kind,
        url: absolute(client.base_url(), &href),
        display_name: property(names::DISPLAY_NAME),
        color,
        components: Vec::new(),
        supports_sync: found.supports_sync,
    }
}

/// Finds one service: given URL, well-known, SRV. `None`: the host offers no such service.
async fn locate(
    service: Service,
    start: &Start,
    credentials: &Credentials,
    options: &DiscoveryOptions,
) -> Result<Option<ServiceFound>, DiscoveryError> {
    let mut first_error: Option<DiscoveryError> = None;
    let mut keep = |err: DiscoveryError| -> Result<(), DiscoveryError> {
        if matches!(
            err,
            DiscoveryError::Dav(DavError::Unauthorized { status: 401, .. })
        ) {
            return Err(err);
        }
        first_error.get_or_insert(err);
        Ok(())
    };
    // 1. The given URL, when it names a principal itself.
    match principal_at(&start.url.to_string(), credentials, false).await {
        Ok(Some(principal)) => {
            let found = from_principal(
                service,
                FoundVia::GivenUrl,
                &start.url.to_string(),
                principal,
                credentials,
            )
            .await?;
            if let Some(found) = found {
                return Ok(Some(found));
            }
        }
        Ok(None) => {}
        Err(err) => keep(err.into())?,
    }
    // 2. The well-known URI on the given host.
    let origin = origin_of(&start.url);
    match follow_well_known(&origin, service, credentials, options).await {
        Ok(Some(context)) => {
            if let Some(found) =
                from_context(service, FoundVia::WellKnown, &context, credentials).await?
            {
                return Ok(Some(found));
            }
        }
        Ok(None) => {}
        Err(err) => keep(err)?,
    }
    // 3. DNS SRV (and TXT path=) for the domain.
    match srv_contexts(service, &start.domain, credentials, options).await {
        Ok(contexts) => {
            for context in contexts {
                match from_context(service, FoundVia::Srv, &context, credentials).await {
                    Ok(Some(found)) => return Ok(Some(found)),
                    Ok(None) => {}
                    Err(err) => keep(err)?,
                }
            }
        }
        Err(err) => keep(err)?,
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(None),
    }
}

/// From a context URL: its principal (asked there, then at `/`), then the home sets.
async fn from_context(
    service: Service,
    via: FoundVia,
    context: &str,
    credentials: &Credentials,
) -> Result<Option<ServiceFound>, DiscoveryError> {
    match principal_at(context, credentials, true).await? {
        Some(principal) => from_principal(service, via, context, principal, credentials).await,
        None => Ok(None),
    }
}

async fn from_principal(
    service: Service,
    via: FoundVia,
    context: &str,
    principal: String,
    credentials: &Credentials,
) -> Result<Option<ServiceFound>, DiscoveryError> {
    let client = webdav_client(&principal, credentials)?;
    let path = client.base_url().path().to_owned();
    let homes = match service {
        Service::CalDav => bounded(
            &client,
            "finding the calendar home set",
            &path,
            client.request(FindCalendarHomeSet::new(&path)),
        )
        .await
        .map(|found| found.home_sets),
        Service::CardDav => bounded(
            &client,
            "finding the address book home set",
            &path,
            client.request(FindAddressBookHomeSet::new(&path)),
        )
        .await
        .map(|found| found.home_sets),
    };
    let homes: Vec<String> = match homes {
        Ok(homes) => homes
            .iter()
            .map(|uri| absolute(client.base_url(), &uri.to_string()))
            .collect(),
        Err(err @ DavError::Unauthorized { .. }) => return Err(err.into()),
        // A server without this service answers the property as missing or refuses it.
        Err(_) => Vec::new(),
    };
    if homes.is_empty() {
        return Ok(None);
    }
    Ok(Some(ServiceFound {
        service,
        via,
        context_url: context.to_owned(),
        principal: Some(principal),
        home_sets: homes,
    }))
}

/// The current-user principal (absolute URL) named at `url`; with `then_root`, also at `/`.
async fn principal_at(
    url: &str,
    credentials: &Credentials,
    then_root: bool,
) -> Result<Option<String>, DavError> {
    let client = webdav_client(url, credentials)?;
    let mut paths = vec![client.base_url().path().to_owned()];
    if then_root && paths[0] != "/" {
        paths.push("/".to_owned());
    }
    for path in paths {
        let found = bounded(
            &client,
            "finding the current-user principal",
            &path,
            client.request(FindPropertyHrefs::new(
                &path,
                &names::CURRENT_USER_PRINCIPAL,
            )),
        )
        .await;
        match found {
            Ok(found) => {
                if let Some(href) = found.hrefs.into_iter().next() {
                    return Ok(Some(absolute(client.base_url(), &href.to_string())));
                }
            }
            Err(err @ (DavError::Unauthorized { status: 401, .. } | DavError::Timeout { .. })) => {
                return Err(err);
            }
            Err(err) if err.network_failure().is_some() => return Err(err),
            // 403 (not this user's path), 404, 405, a web page rather than XML: nothing here.
            Err(_) => {}
        }
    }
    Ok(None)
}

/// Follows `/.well-known/<service>` on `origin`. `Some(url)`: where the redirects led.
/// Asked with PROPFIND, as a DAV client would: a GET can be sent on to a web interface.
async fn follow_well_known(
    origin: &str,
    service: Service,
    credentials: &Credentials,
    options: &DiscoveryOptions,
) -> Result<Option<String>, DiscoveryError> {
    let mut url = format!("{origin}{}", service.well_known());
    for hop in 0..=REDIRECTS_MAX {
        let client = webdav_client(&url, credentials)?;
        let request = Request::builder()
            .method(Method::from_bytes(b"PROPFIND").unwrap_or(Method::GET))
            .uri(client.base_url().clone())
            .header("Depth", "0")
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(PROPFIND_PRINCIPAL.to_owned())
            .map_err(|err| DiscoveryError::Input {
                input: url.clone(),
                reason: err.to_string(),
            })?;
        let answer = tokio::time::timeout(crate::dav::REQUEST_TIMEOUT, client.request_raw(request))
            .await
            .map_err(|_| DavError::Timeout {
                url: url.clone(),
                what: "following the well-known address",
                after: crate::dav::REQUEST_TIMEOUT,
            })?
            .map_err(|err| DavError::Request {
                url: url.clone(),
                what: "following the well-known address",
                source: Box::new(err),
            })?;
        let (head, _) = answer;
        if !head.status.is_redirection() {
            if head.status == StatusCode::UNAUTHORIZED && hop == 0 {
                // RFC 6764 section 5: the server may ask for credentials here; ours were refused.
                return Err(DavError::Unauthorized {
                    url,
                    status: head.status.as_u16(),
                }
                .into());
            }
            return Ok((hop > 0).then_some(url));
        }
        let Some(location) = head
            .headers
            .get(http::header::LOCATION)
            .and_then(|v| v.to_str().ok())
        else {
            return Ok(None);
        };
        let base: Uri =
            url.parse()
                .map_err(|err: http::uri::InvalidUri| DiscoveryError::Input {
                    input: url.clone(),
                    reason: err.to_string(),
                })?;
        let next = absolute(&base, location);
        let next_uri: Uri =
            next.parse()
                .map_err(|err: http::uri::InvalidUri| DiscoveryError::Input {
                    input: next.clone(),
                    reason: err.to_string(),
                })?;
        // Never from https down to plain http unless that is allowed.
        if !http_allowed(&next_uri, options) {
            return Err(DiscoveryError::InsecureHttp { url: next });
        }
        url = next;
    }
    Ok(None)
}

/// Context URLs from DNS: SRV targets in priority order, with the TXT `path=` or the
/// target's well-known URI. Plain-http records only where http is allowed.
async fn srv_contexts(
    service: Service,
    domain: &str,
    credentials: &Credentials,
    options: &DiscoveryOptions,
) -> Result<Vec<String>, DiscoveryError> {
    if domain.parse::<std::net::IpAddr>().is_ok() || domain.starts_with('[') {
        return Ok(Vec::new());
    }
    let resolver = resolver(options);
    let mut contexts = Vec::new();
    for (label, tls) in service.srv_labels() {
        let name = format!("{label}.{}.", domain.trim_end_matches('.'));
        let targets = srv(&resolver, &name).await?;
        if targets.is_empty() {
            continue;
        }
        let path = txt_path(&resolver, &name).await?;
        let scheme = if tls { "https" } else { "http" };
        for (host, port) in targets.into_iter().take(SRV_TARGETS_MAX) {
            let origin = format!("{scheme}://{}", authority(&host, port));
            let Ok(uri) = origin.parse::<Uri>() else {
                continue;
            };
            if !http_allowed(&uri, options) {
                continue;
            }
            match &path {
                Some(path) => contexts.push(format!("{origin}{path}")),
                None => match follow_well_known(&origin, service, credentials, options).await {
                    Ok(Some(context)) => contexts.push(context),
                    _ => contexts.push(format!("{origin}/")),
                },
            }
        }
    }
    Ok(contexts)
}

fn authority(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

fn resolver(options: &DiscoveryOptions) -> StubResolver {
    match options.nameserver {
        Some(addr) => {
            let mut conf = ResolvConf::new();
            let mut server = ServerConf::new(addr, Transport::UdpTcp);
            server.request_timeout = DNS_TIMEOUT;
            conf.servers.push(server);
            conf.options.attempts = 1;
            conf.options.timeout = DNS_TIMEOUT;
            conf.finalize();
            StubResolver::from_conf(conf)
        }
        None => StubResolver::new(),
    }
}

fn dns_error(name: &str, reason: impl std::fmt::Display) -> DiscoveryError {
    DiscoveryError::Dns {
        name: name.to_owned(),
        reason: reason.to_string(),
    }
}

/// SRV targets of `name` (fully qualified), by priority then weight. A single "." target
/// means the service is not offered (RFC 2782): no targets.
async fn srv(resolver: &StubResolver, name: &str) -> Result<Vec<(String, u16)>, DiscoveryError> {
    let qname = Name::<Vec<u8>>::from_str(name).map_err(|err| dns_error(name, err))?;
    let answer = match tokio::time::timeout(DNS_TIMEOUT, resolver.query((qname, Rtype::SRV))).await
    {
        Ok(Ok(answer)) => answer,
        Ok(Err(err)) => return Err(dns_error(name, err)),
        Err(_) => return Err(dns_error(name, "no answer in time")),
    };
    let mut found = Vec::new();
    let records = answer.answer().map_err(|err| dns_error(name, err))?;
    for record in records.limit_to_in::<Srv<_>>() {
        let record = record.map_err(|err| dns_error(name, err))?;
        let srv = record.data();
        let target = srv.target().to_string();
        let target = target.trim_end_matches('.').to_owned();
        found.push((srv.priority(), u16::MAX - srv.weight(), target, srv.port()));
    }
    found.sort();
    if found.len() == 1 && found[0].2.is_empty() {
        return Ok(Vec::new());
    }
    Ok(found
        .into_iter()
        .filter(|f| !f.2.is_empty())
        .map(|(_, _, host, port)| (host, port))
        .collect())
}

/// The `path=` of the TXT record at `name`, if there is one.
async fn txt_path(resolver: &StubResolver, name: &str) -> Result<Option<String>, DiscoveryError> {
    let qname = Name::<Vec<u8>>::from_str(name).map_err(|err| dns_error(name, err))?;
    let answer = match tokio::time::timeout(DNS_TIMEOUT, resolver.query((qname, Rtype::TXT))).await
    {
        Ok(Ok(answer)) => answer,
        // No TXT record is not an error: the target's well-known URI is asked instead.
        Ok(Err(_)) | Err(_) => return Ok(None),
    };
    let records = answer.answer().map_err(|err| dns_error(name, err))?;
    for record in records.limit_to_in::<Txt<_>>() {
        let record = record.map_err(|err| dns_error(name, err))?;
        let text: Vec<u8> = record.data().text();
        if let Some(path) = text.strip_prefix(b"path=") {
            let path = String::from_utf8_lossy(path).trim().to_owned();
            if path.starts_with('/') {
                return Ok(Some(path));
            }
        }
    }
    Ok(None)
}

/// `scheme://authority` of a URL.
fn origin_of(url: &Uri) -> String {
    format!(
        "{}://{}",
        url.scheme_str().unwrap_or("https"),
        url.authority().map_or("", |a| a.as_str())
    )
}

/// `href` (absolute, or a path) made absolute against `base`.
pub fn absolute(base: &Uri, href: &str) -> String {
    if href.starts_with("http://") || href.starts_with("https://") {
        return href.to_owned();
    }
    let origin = origin_of(base);
    if href.starts_with('/') {
        format!("{origin}{href}")
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{origin}{dir}/{href}")
    }
}

/// What "Test connection" found, in the person's words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "kebab-case")]
pub enum ConnectionCheck {
    /// Signed in; the principal and how it was found.
    Connected {
        principal: String,
        via: FoundVia,
    },
    WrongPassword {
        url: String,
    },
    /// A web server answered, but no calendar or contact service was found there.
    NotDav {
        detail: String,
    },
    CertificateProblem {
        detail: String,
    },
    Unreachable {
        detail: String,
    },
    /// The address cannot be used as typed, or needs https.
    BadAddress {
        detail: String,
    },
}

impl ConnectionCheck {
    pub fn is_ok(&self) -> bool {
        matches!(self, ConnectionCheck::Connected { .. })
    }

    /// One sentence for the person, the same in the window and on the command line.
    pub fn message(&self) -> String {
        match self {
            ConnectionCheck::Connected { principal, via } => {
                let via = match via {
                    FoundVia::GivenUrl => "at the address given",
                    FoundVia::WellKnown => "through the server's well-known address",
                    FoundVia::Srv => "through DNS (SRV)",
                };
                format!("Connected: signed in as {principal} (found {via})")
            }
            ConnectionCheck::WrongPassword { url } => {
                format!("Wrong username or password: the server at {url} refused them")
            }
            ConnectionCheck::NotDav { detail } => {
                format!("Not a CalDAV/CardDAV server, or not here: {detail}")
            }
            ConnectionCheck::CertificateProblem { detail } => format!(
                "Certificate problem: the server's TLS certificate is not trusted (expired, self-signed, or for another \
                 name): {detail}"
            ),
            ConnectionCheck::Unreachable { detail } => {
                format!("Cannot reach the server: {detail}")
            }
            ConnectionCheck::BadAddress { detail } => detail.clone(),
        }
    }
}

/// "Test connection": discovery's first steps, with the failure classified.
pub async fn check_connection(
    input: &str,
    credentials: &Credentials,
    options: &DiscoveryOptions,
) -> ConnectionCheck {
    let start = match parse_input(input) {
        Ok(start) => start,
        Err(err) => {
            return ConnectionCheck::BadAddress {
                detail: err.to_string(),
            };
        }
    };
    if !http_allowed(&start.url, options) {
        return ConnectionCheck::BadAddress {
            detail: DiscoveryError::InsecureHttp {
                url: start.url.to_string(),
            }
            .to_string(),
        };
    }
    let mut first_error = None;
    for service in Service::BOTH {
        match locate(service, &start, credentials, options).await {
            Ok(Some(found)) => {
                return ConnectionCheck::Connected {
                    principal: found.principal.unwrap_or(found.context_url),
                    via: found.via,
                };
            }
            Ok(None) => {}
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    match first_error {
        None => ConnectionCheck::NotDav {
            detail: format!(
                "{} names no calendar or address book principal, and neither its /.well-known/ \
                 addresses nor DNS lead to one",
                start.url
            ),
        },
        Some(err) => classify(err),
    }
}

fn classify(err: DiscoveryError) -> ConnectionCheck {
    match err {
        DiscoveryError::Dav(DavError::Unauthorized { url, .. }) => {
            ConnectionCheck::WrongPassword { url }
        }
        DiscoveryError::Dav(DavError::Timeout { url, after, .. }) => ConnectionCheck::Unreachable {
            detail: format!("{url} did not answer within {} s", after.as_secs()),
        },
        DiscoveryError::Dav(
            ref dav @ DavError::Request {
                ref url,
                ref source,
                ..
            },
        ) => {
            let url = url.clone();
            let cause: &(dyn std::error::Error + 'static) =
                dav.network_failure().unwrap_or(source.as_ref());
            let chain = crate::dav::error_chain(cause);
            if is_certificate_problem(cause) {
                ConnectionCheck::CertificateProblem {
                    detail: format!("{url}: {chain}"),
                }
            } else if is_not_http(&chain) {
                ConnectionCheck::NotDav {
                    detail: format!("{url}: {chain}"),
                }
            } else {
                ConnectionCheck::Unreachable {
                    detail: format!("{url}: {chain}"),
                }
            }
        }
        DiscoveryError::Dav(err @ DavError::Status { .. }) => ConnectionCheck::NotDav {
            detail: err.to_string(),
        },
        DiscoveryError::Dns { .. } => ConnectionCheck::Unreachable {
            detail: err.to_string(),
        },
        other => ConnectionCheck::BadAddress {
            detail: other.to_string(),
        },
    }
}

/// Whether a rustls certificate error is somewhere in the chain (an `io::Error` carries it
/// as its inner error, which `source()` skips).
fn is_certificate_problem(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            ) || tls.to_string().contains("certificate");
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && is_certificate_problem(inner)
        {
            return true;
        }
        next = e.source();
    }
    false
}

/// Something answered, but not in HTTP (a TLS or other service on the port).
fn is_not_http(chain: &str) -> bool {
    let chain = chain.to_ascii_lowercase();
    chain.contains("invalid http") || chain.contains("parse") && chain.contains("http")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_person_types_becomes_a_start() {
        let s = parse_input("alice@example.com").unwrap();
        assert_eq!(s.url.to_string(), "https://example.com/");
        assert_eq!(s.domain, "example.com");
        assert_eq!(s.username_hint.as_deref(), Some("alice@example.com"));

        let s = parse_input("dav.example.com:8443").unwrap();
        assert_eq!(s.url.to_string(), "https://dav.example.com:8443/");

        let s = parse_input("127.0.0.1:5232").unwrap();
        assert_eq!(s.url.to_string(), "http://127.0.0.1:5232/");

        let s = parse_input("https://dav.example.com/remote.php/dav").unwrap();
        assert_eq!(s.url.path(), "/remote.php/dav");
        assert_eq!(s.username_hint, None);

        for bad in ["", "ftp://x/", "@example.com", "alice@"] {
            assert!(parse_input(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn plain_http_only_for_this_machine_or_when_allowed() {
        let strict = DiscoveryOptions::default();
        let allowed = DiscoveryOptions {
            allow_http: true,
            ..DiscoveryOptions::default()
        };
        let remote: Uri = "http://dav.example.com/".parse().unwrap();
        assert!(!http_allowed(&remote, &strict));
        assert!(http_allowed(&remote, &allowed));
        for local in [
            "http://127.0.0.1:8/",
            "http://localhost/",
            "http://[::1]:5/",
        ] {
            assert!(http_allowed(&local.parse().unwrap(), &strict), "{local}");
        }
        assert!(http_allowed(
            &"https://x.example/".parse().unwrap(),
            &strict
        ));
    }

    #[test]
    fn hrefs_become_absolute_and_names_readable() {
        let base: Uri = "http://127.0.0.1:5232/user/".parse().unwrap();
        assert_eq!(
            absolute(&base, "/user/cal/"),
            "http://127.0.0.1:5232/user/cal/"
        );
        assert_eq!(absolute(&base, "https://o/x/"), "https://o/x/");
        let c = Collection {
            kind: CollectionKind::Calendar,
            url: "http://h/user/My%20Work/".to_owned(),
            display_name: None,
            color: None,
            components: Vec::new(),
            supports_sync: true,
        };
        assert_eq!(c.name(), "My Work");
    }
}

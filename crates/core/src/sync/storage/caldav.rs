//! A CalDAV calendar or CardDAV address book as a storage, on libdav. Change detection is
//! cheapest first: RFC 6578 sync-collection with the stored token, asking the changed items'
//! data too (`delta`; a server refusing that is asked for etags only); a token the server no
//! longer accepts falls back to a full listing (nothing is deleted for it: the reconciler
//! compares the full listing with what it knows). Servers without sync-collection get a CTag
//! check, then an etag listing. A first sync reads the token (a depth-0 PROPFIND), then the
//! whole collection with its data in one query. Items are fetched with multiget in bounded
//! batches; writes are conditional (If-None-Match: * to create, If-Match to update or
//! delete), and a 412 is reported as "changed", never retried as an overwrite.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use libdav::PropertyName;
use libdav::caldav::GetCalendarResources;
use libdav::carddav::GetAddressBookResources;
use libdav::dav::{
    Delete, GetEtag, GetProperty, ListResources, PutResource, SyncCollection, WebDavClient,
};

use super::delta::{DeltaAnswer, SyncCollectionWithData};
use super::{Fetched, Listed, Listing, StorageError, name_for_uid};
use crate::dav::{Credentials, DavError, HttpClient, bounded, webdav_client};
use crate::sync::item::ItemKind;

/// Items per multiget REPORT (DAVx5 uses 10 to 100).
pub const MULTIGET_BATCH_MAX: usize = 50;
/// From this many items to fetch, one query for the whole collection is cheaper.
pub const WHOLE_COLLECTION_FETCH_MIN: usize = 200;

const CTAG: PropertyName<'static, 'static> =
    PropertyName::new("http://calendarserver.org/ns/", "getctag");
const SYNC_TOKEN: PropertyName<'static, 'static> = PropertyName::new("DAV:", "sync-token");

/// Prefixes of the stored change-detection state, so a token is never taken for a CTag.
const TOKEN_PREFIX: &str = "sync:";
const CTAG_PREFIX: &str = "ctag:";

/// Statuses by which a server refuses one write (a bad or unsupported item, a name in use,
/// over quota) rather than the account or the collection: that item is reported as refused
/// and the other writes go on. A 403 here follows reads that went through, so it is about
/// the item, not the password.
const WRITE_REFUSED_STATUSES: &[u16] = &[400, 403, 405, 409, 413, 415, 422, 507];

#[derive(Debug)]
pub struct DavCollection {
    client: WebDavClient<HttpClient>,
    /// The collection's path, ending in `/`.
    href: String,
    kind: ItemKind,
    /// Items whose data came with the last listing, for the fetch that follows it only.
    prefetched: Mutex<HashMap<String, Fetched>>,
}

impl DavCollection {
    /// The collection at `collection_url` (absolute URL), holding items of `kind`.
    pub fn new(
        collection_url: &str,
        credentials: &Credentials,
        kind: ItemKind,
    ) -> Result<Self, StorageError> {
        let client = webdav_client(collection_url, credentials)?;
        let mut href = client.base_url().path().to_owned();
        if !href.ends_with('/') {
            href.push('/');
        }
        Ok(Self {
            client,
            href,
            kind,
            prefetched: Mutex::new(HashMap::new()),
        })
    }

    pub fn kind(&self) -> ItemKind {
        self.kind
    }

    pub fn href(&self) -> &str {
        &self.href
    }

    /// The signed-in client, for requests on the collection itself (its display name, colour).
    pub(crate) fn client(&self) -> &WebDavClient<HttpClient> {
        &self.client
    }

    /// What changed since `token`. A complete listing that shows nothing is checked against
    /// the collection itself: a collection that is not there (deleted, moved, mistyped) is an
    /// error the person must see, not an empty calendar.
    pub async fn changes(&self, token: Option<&str>) -> Result<Listing, StorageError> {
        let missing = || {
            let url = self
                .client
                .relative_uri(&self.href)
                .map_or_else(|_| self.href.clone(), |uri| uri.to_string());
            StorageError::from(DavError::CollectionMissing { url })
        };
        let listing = match self.changes_of_any_kind(token).await {
            Err(StorageError::Dav(DavError::Status {
                status: 404 | 410, ..
            })) => return Err(missing()),
            other => other?,
        };
        if listing.complete && listing.changed.is_empty() && !self.exists().await? {
            return Err(missing());
        }
        Ok(listing)
    }

    /// Whether the collection is there: a depth-0 PROPFIND answered 404 or 410, or a
    /// multistatus whose every response says 404, says it is not.
    async fn exists(&self) -> Result<bool, StorageError> {
        let request = http::Request::builder()
            .method(
                http::Method::from_bytes(b"PROPFIND")
                    .map_err(|e| StorageError::Invalid(e.to_string()))?,
            )
            .uri(self.client.base_url().clone())
            .header("Depth", "0")
            .header("Content-Type", "application/xml; charset=utf-8")
            .body(
                "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
                 <d:propfind xmlns:d=\"DAV:\"><d:prop><d:resourcetype/></d:prop></d:propfind>"
                    .to_owned(),
            )
            .map_err(|e| StorageError::Invalid(format!("{}: {e}", self.href)))?;
        let answer = bounded(
            &self.client,
            "checking that the collection exists",
            &self.href,
            async {
                self.client
                    .request_raw(request)
                    .await
                    .map_err(libdav::dav::WebDavError::Request)
            },
        )
        .await;
        let (head, body) = match answer {
            Ok(answer) => answer,
            Err(DavError::Status {
                status: 404 | 410, ..
            }) => return Ok(false),
            Err(err) => return Err(err.into()),
        };
        if matches!(head.status.as_u16(), 404 | 410) {
            return Ok(false);
        }
        let text = String::from_utf8_lossy(&body);
        let Ok(doc) = roxmltree::Document::parse(&text) else {
            return Ok(true);
        };
        let statuses: Vec<bool> = doc
            .descendants()
            .filter(|n| n.has_tag_name(("DAV:", "response")))
            .map(|response| {
                response
                    .children()
                    .filter(|n| n.has_tag_name(("DAV:", "status")))
                    .any(|status| status.text().is_some_and(|t| t.contains(" 404")))
            })
            .collect();
        Ok(statuses.is_empty() || !statuses.iter().all(|missing| *missing))
    }

    async fn changes_of_any_kind(&self, token: Option<&str>) -> Result<Listing, StorageError> {
        if let Some(token) = token.and_then(|t| t.strip_prefix(TOKEN_PREFIX))
            && let Some(listing) = self.changes_since(token).await?
        {
            return Ok(listing);
        }
        if token.is_none()
            && let Some(listing) = self.first_listing().await?
        {
            return Ok(listing);
        }
        let full = bounded(
            &self.client,
            "listing the collection (sync-collection)",
            &self.href,
            self.client.request(SyncCollection::new(&self.href)),
        )
        .await;
        match full {
            Ok(found) => Ok(Listing {
                complete: true,
                changed: listed(found.changed),
                deleted: Vec::new(),
                token: Some(format!("{TOKEN_PREFIX}{}", found.new_sync_token)),
                refresh_after_s: None,
            }),
            Err(err @ DavError::Unauthorized { .. }) => Err(err.into()),
            Err(_) => self.changes_without_sync_collection(token).await,
        }
    }

    /// What changed since `token`, the changed items' data in the same answer (kept for the
    /// fetch that follows, so it sends no multiget). A server that refuses that request for
    /// another reason than the token is asked the plain way (etags only). None when the token
    /// is not accepted: the caller lists everything.
    async fn changes_since(&self, token: &str) -> Result<Option<Listing>, StorageError> {
        let answer = bounded(
            &self.client,
            "asking what changed, with the data (sync-collection)",
            &self.href,
            self.client
                .request(SyncCollectionWithData::new(&self.href, token, self.kind)),
        )
        .await;
        let delta = match answer {
            Ok(DeltaAnswer::Changes(delta)) => delta,
            Ok(DeltaAnswer::TokenRejected) => {
                tracing::info!(collection = %self.href, "sync token not accepted; listing everything");
                return Ok(None);
            }
            Err(err @ DavError::Unauthorized { .. }) => return Err(err.into()),
            // Asking again the plain way would only wait as long again.
            Err(err @ DavError::Timeout { .. }) => {
                tracing::info!(collection = %self.href, %err, "no answer to the sync token; listing everything");
                return Ok(None);
            }
            Err(err) => {
                tracing::info!(collection = %self.href, %err, "sync-collection with data refused; asking for etags only");
                return self.changes_since_etags_only(token).await;
            }
        };
        let mut changed = Vec::with_capacity(delta.changed.len());
        let mut prefetched = HashMap::new();
        for item in delta.changed {
            changed.push(Listed {
                href: item.href.clone(),
                etag: item.etag.clone(),
            });
            if let Some(data) = item.data {
                prefetched.insert(
                    item.href.clone(),
                    Fetched {
                        href: item.href,
                        etag: item.etag,
                        raw: data.into_bytes(),
                    },
                );
            }
        }
        *self.prefetched() = prefetched;
        Ok(Some(Listing {
            complete: false,
            changed,
            deleted: delta.deleted,
            token: Some(format!("{TOKEN_PREFIX}{}", delta.token)),
            refresh_after_s: None,
        }))
    }

    /// libdav's sync-collection from `token` (etags only; the items are fetched by multiget).
    /// None when the token is not accepted.
    async fn changes_since_etags_only(&self, token: &str) -> Result<Option<Listing>, StorageError> {
        let delta = bounded(
            &self.client,
            "asking what changed (sync-collection)",
            &self.href,
            self.client
                .request(SyncCollection::new(&self.href).with_sync_token(token)),
        )
        .await;
        match delta {
            Ok(found) => Ok(Some(Listing {
                complete: false,
                changed: listed(found.changed),
                deleted: found.deleted,
                token: Some(format!("{TOKEN_PREFIX}{}", found.new_sync_token)),
                refresh_after_s: None,
            })),
            Err(err @ DavError::Unauthorized { .. }) => Err(err.into()),
            // An expired or invalid token: list everything.
            Err(err) => {
                tracing::info!(collection = %self.href, %err, "sync token not accepted; listing everything");
                Ok(None)
            }
        }
    }

    /// A first sync, with nothing stored: the sync token, then the whole collection with its
    /// data in one query REPORT. On servers such as Radicale this costs about half of a
    /// token-less sync-collection followed by a fetch of every item. The token is read
    /// before the listing, so a change in between is reported again next time, never lost.
    /// None when the server has no token to give (the caller lists another way).
    async fn first_listing(&self) -> Result<Option<Listing>, StorageError> {
        let token = bounded(
            &self.client,
            "reading the collection's sync token",
            &self.href,
            self.client
                .request(GetProperty::new(&self.href, &SYNC_TOKEN)),
        )
        .await;
        let token = match token {
            Ok(found) => found.value.filter(|t| !t.trim().is_empty()),
            Err(err @ DavError::Unauthorized { .. }) => return Err(err.into()),
            Err(_) => None,
        };
        let Some(token) = token else {
            return Ok(None);
        };
        let items = match self.report(None).await {
            Ok(items) => items,
            Err(err) if err.needs_attention() => return Err(err),
            Err(err) => {
                tracing::info!(collection = %self.href, %err, "the collection query failed; listing with sync-collection");
                return Ok(None);
            }
        };
        let changed = items
            .iter()
            .map(|item| Listed {
                href: item.href.clone(),
                etag: item.etag.clone(),
            })
            .collect();
        *self.prefetched() = items
            .into_iter()
            .map(|item| (item.href.clone(), item))
            .collect();
        Ok(Some(Listing {
            complete: true,
            changed,
            deleted: Vec::new(),
            token: Some(format!("{TOKEN_PREFIX}{}", token.trim())),
            refresh_after_s: None,
        }))
    }

    fn prefetched(&self) -> MutexGuard<'_, HashMap<String, Fetched>> {
        self.prefetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// CTag first (unchanged: nothing to do), else an etag listing.
    async fn changes_without_sync_collection(
        &self,
        token: Option<&str>,
    ) -> Result<Listing, StorageError> {
        let ctag = bounded(
            &self.client,
            "reading the collection's CTag",
            &self.href,
            self.client.request(GetProperty::new(&self.href, &CTAG)),
        )
        .await
        .ok()
        .and_then(|found| found.value)
        .map(|ctag| format!("{CTAG_PREFIX}{ctag}"));
        if ctag.is_some() && ctag.as_deref() == token {
            return Ok(Listing {
                token: ctag,
                ..Listing::default()
            });
        }
        let found = bounded(
            &self.client,
            "listing the collection",
            &self.href,
            self.client.request(ListResources::new(&self.href)),
        )
        .await?;
        Ok(Listing {
            complete: true,
            changed: listed(
                found
                    .resources
                    .into_iter()
                    .filter(|r| r.href != self.href)
                    .collect(),
            ),
            deleted: Vec::new(),
            token: ctag,
            refresh_after_s: None,
        })
    }

    /// The items at `hrefs`. Many at once (an initial sync) come in one query REPORT for the
    /// whole collection, since servers such as Radicale pay per request for the collection's
    /// size; the rest, and any the query leaves out, in multiget batches.
    /// Data that came with the listing just made is used as is (only by the first fetch after
    /// it: later ones read the server again).
    pub async fn fetch(&self, hrefs: &[String]) -> Result<Vec<Fetched>, StorageError> {
        let mut out = Vec::with_capacity(hrefs.len());
        let mut prefetched = std::mem::take(&mut *self.prefetched());
        let mut rest: Vec<String> = Vec::with_capacity(hrefs.len());
        for href in hrefs {
            match prefetched.remove(href) {
                Some(item) => out.push(item),
                None => rest.push(href.clone()),
            }
        }
        drop(prefetched);
        if rest.len() >= WHOLE_COLLECTION_FETCH_MIN {
            let wanted: HashSet<&str> = rest.iter().map(String::as_str).collect();
            let mut whole = self.report(None).await?;
            whole.retain(|f| wanted.contains(f.href.as_str()));
            let got: HashSet<String> = whole.iter().map(|f| f.href.clone()).collect();
            out.extend(whole);
            rest.retain(|h| !got.contains(h.as_str()));
        }
        for batch in rest.chunks(MULTIGET_BATCH_MAX) {
            out.extend(self.report(Some(batch)).await?);
        }
        Ok(out)
    }

    /// One multiget REPORT for `hrefs`, or a query for the whole collection. A resource gone
    /// since listing (404) is left out.
    async fn report(&self, hrefs: Option<&[String]>) -> Result<Vec<Fetched>, StorageError> {
        let what = match hrefs {
            Some(_) => "fetching items (multiget)",
            None => "fetching the whole collection (query)",
        };
        let resources = match self.kind {
            ItemKind::Calendar => {
                let request = GetCalendarResources::new(&self.href);
                let request = match hrefs {
                    Some(hrefs) => request.with_hrefs(hrefs),
                    None => request,
                };
                bounded(&self.client, what, &self.href, self.client.request(request))
                    .await?
                    .resources
            }
            ItemKind::Contact => {
                let request = GetAddressBookResources::new(&self.href);
                let request = match hrefs {
                    Some(hrefs) => request.with_hrefs(hrefs),
                    None => request,
                };
                bounded(&self.client, what, &self.href, self.client.request(request))
                    .await?
                    .resources
            }
        };
        Ok(resources
            .into_iter()
            .filter_map(|resource| {
                let content = resource.content.ok()?;
                Some(Fetched {
                    href: resource.href,
                    etag: content.etag,
                    raw: content.data.into_bytes(),
                })
            })
            .collect())
    }

    pub async fn create(&self, uid: &str, raw: &[u8]) -> Result<Listed, StorageError> {
        let href = format!("{}{}", self.href, name_for_uid(uid, self.kind));
        let data = crate::sync::item::decode(raw);
        let put = bounded(
            &self.client,
            "creating an item",
            &href,
            self.client
                .request(PutResource::new(&href).create(data, self.kind.content_type())),
        )
        .await
        .map_err(|err| self.write_error(&href, err))?;
        let etag = match put.etag {
            Some(etag) => etag,
            None => self.etag(&href).await?,
        };
        Ok(Listed { href, etag })
    }

    pub async fn update(&self, href: &str, etag: &str, raw: &[u8]) -> Result<String, StorageError> {
        let data = crate::sync::item::decode(raw);
        let put = bounded(
            &self.client,
            "updating an item",
            href,
            self.client.request(PutResource::new(href).update(
                data,
                self.kind.content_type(),
                etag,
            )),
        )
        .await
        .map_err(|err| self.write_error(href, err))?;
        match put.etag {
            Some(etag) => Ok(etag),
            None => self.etag(href).await,
        }
    }

    pub async fn delete(&self, href: &str, etag: &str) -> Result<(), StorageError> {
        let deleted = bounded(
            &self.client,
            "deleting an item",
            href,
            self.client.request(Delete::new(href).with_etag(etag)),
        )
        .await;
        match deleted {
            Ok(_)
            | Err(DavError::Status {
                status: 404 | 410, ..
            }) => Ok(()),
            Err(err) => Err(self.write_error(href, err)),
        }
    }

    async fn etag(&self, href: &str) -> Result<String, StorageError> {
        let found = bounded(
            &self.client,
            "reading an item's etag",
            href,
            self.client.request(GetEtag::new(href)),
        )
        .await?;
        Ok(found.etag)
    }

    /// A failed write, classified: a lost condition is "changed"; a status by which the
    /// server refuses this one item (it was read fine, so not the account) is "refused".
    fn write_error(&self, href: &str, err: DavError) -> StorageError {
        match err {
            DavError::PreconditionFailed { .. } => StorageError::Changed {
                href: href.to_owned(),
            },
            DavError::Unauthorized { status, .. } | DavError::Status { status, .. }
                if WRITE_REFUSED_STATUSES.contains(&status) =>
            {
                StorageError::Refused {
                    href: href.to_owned(),
                    reason: format!("the server refused it (HTTP {status})"),
                }
            }
            other => other.into(),
        }
    }
}

fn listed(resources: Vec<libdav::dav::ListedResource>) -> Vec<Listed> {
    resources
        .into_iter()
        .filter_map(|r| {
            let etag = r.etag?;
            Some(Listed { href: r.href, etag })
        })
        .collect()
}

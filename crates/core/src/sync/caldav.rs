//! A CalDAV calendar or CardDAV address book as a storage, on libdav. Change detection is
//! cheapest first: RFC 6578 sync-collection with the stored token; a token the server no
//! longer accepts falls back to a full listing (nothing is deleted for it: the reconciler
//! compares the full listing with what it knows). Servers without sync-collection get a CTag
//! check, then an etag listing. Items are fetched with multiget in bounded batches; writes are
//! conditional (If-None-Match: * to create, If-Match to update or delete), and a 412 is
//! reported as "changed", never retried as an overwrite.

use libdav::PropertyName;
use libdav::caldav::GetCalendarResources;
use libdav::carddav::GetAddressBookResources;
use libdav::dav::{
    Delete, GetEtag, GetProperty, ListResources, PutResource, SyncCollection, WebDavClient,
};

use super::item::ItemKind;
use super::storage::{Fetched, Listed, Listing, StorageError, name_for_uid};
use crate::dav::{Credentials, DavError, HttpClient, bounded, webdav_client};

/// Items per multiget REPORT (DAVx5 uses 10 to 100).
pub const MULTIGET_BATCH_MAX: usize = 50;

const CTAG: PropertyName<'static, 'static> =
    PropertyName::new("http://calendarserver.org/ns/", "getctag");

/// Prefixes of the stored change-detection state, so a token is never taken for a CTag.
const TOKEN_PREFIX: &str = "sync:";
const CTAG_PREFIX: &str = "ctag:";

#[derive(Debug)]
pub struct DavCollection {
    client: WebDavClient<HttpClient>,
    /// The collection's path, ending in `/`.
    href: String,
    kind: ItemKind,
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
        Ok(Self { client, href, kind })
    }

    pub fn kind(&self) -> ItemKind {
        self.kind
    }

    pub fn href(&self) -> &str {
        &self.href
    }

    pub async fn changes(&self, token: Option<&str>) -> Result<Listing, StorageError> {
        if let Some(token) = token.and_then(|t| t.strip_prefix(TOKEN_PREFIX)) {
            let delta = bounded(
                &self.client,
                "asking what changed (sync-collection)",
                &self.href,
                self.client
                    .request(SyncCollection::new(&self.href).with_sync_token(token)),
            )
            .await;
            match delta {
                Ok(found) => {
                    return Ok(Listing {
                        complete: false,
                        changed: listed(found.changed),
                        deleted: found.deleted,
                        token: Some(format!("{TOKEN_PREFIX}{}", found.new_sync_token)),
                        refresh_after_s: None,
                    });
                }
                Err(err @ DavError::Unauthorized { .. }) => return Err(err.into()),
                // An expired or invalid token: list everything (below).
                Err(err) => {
                    tracing::info!(collection = %self.href, %err, "sync token not accepted; listing everything")
                }
            }
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

    pub async fn fetch(&self, hrefs: &[String]) -> Result<Vec<Fetched>, StorageError> {
        let mut out = Vec::with_capacity(hrefs.len());
        for batch in hrefs.chunks(MULTIGET_BATCH_MAX) {
            let what = "fetching items (multiget)";
            let resources = match self.kind {
                ItemKind::Calendar => {
                    bounded(
                        &self.client,
                        what,
                        &self.href,
                        self.client
                            .request(GetCalendarResources::new(&self.href).with_hrefs(batch)),
                    )
                    .await?
                    .resources
                }
                ItemKind::Contact => {
                    bounded(
                        &self.client,
                        what,
                        &self.href,
                        self.client
                            .request(GetAddressBookResources::new(&self.href).with_hrefs(batch)),
                    )
                    .await?
                    .resources
                }
            };
            for resource in resources {
                // A resource gone since listing (404) is simply left out.
                if let Ok(content) = resource.content {
                    out.push(Fetched {
                        href: resource.href,
                        etag: content.etag,
                        raw: content.data.into_bytes(),
                    });
                }
            }
        }
        Ok(out)
    }

    pub async fn create(&self, uid: &str, raw: &[u8]) -> Result<Listed, StorageError> {
        let href = format!("{}{}", self.href, name_for_uid(uid, self.kind));
        let data = super::item::decode(raw);
        let put = bounded(
            &self.client,
            "creating an item",
            &href,
            self.client
                .request(PutResource::new(&href).create(data, self.kind.content_type())),
        )
        .await
        .map_err(|err| self.changed_or(&href, err))?;
        let etag = match put.etag {
            Some(etag) => etag,
            None => self.etag(&href).await?,
        };
        Ok(Listed { href, etag })
    }

    pub async fn update(&self, href: &str, etag: &str, raw: &[u8]) -> Result<String, StorageError> {
        let data = super::item::decode(raw);
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
        .map_err(|err| self.changed_or(href, err))?;
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
            Err(err) => Err(self.changed_or(href, err)),
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

    fn changed_or(&self, href: &str, err: DavError) -> StorageError {
        match err {
            DavError::PreconditionFailed { .. } => StorageError::Changed {
                href: href.to_owned(),
            },
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

//! What changed in a collection since a sync token, with the changed items' data in the same
//! answer: an RFC 6578 sync-collection REPORT asking `DAV:getetag` and `C:calendar-data` (or
//! `CR:address-data`), so no multiget has to follow. Hrefs are normalised as libdav does, so
//! they match those of listings and multigets; a rejected token is an answer, not an error.

use http::{Method, Request, StatusCode, Uri};
use libdav::PropertyName;
use libdav::dav::WebDavError;
use libdav::dav::make_relative_url;
use libdav::encoding::normalise_percent_encoded;
use libdav::names;
use libdav::requests::{DavRequest, ParseResponseError, xml_content_type_header};
use libdav::xmlutils::{XmlNode, normalise_newlines, parse_statusline, validate_xml_response};
use roxmltree::Node;

use crate::sync::item::ItemKind;

/// A sync-collection REPORT (sync-level 1) from `token`, asking each changed item's etag and
/// data.
#[derive(Debug, Clone)]
pub(crate) struct SyncCollectionWithData<'a> {
    collection_href: &'a str,
    token: &'a str,
    kind: ItemKind,
}

impl<'a> SyncCollectionWithData<'a> {
    pub(crate) fn new(collection_href: &'a str, token: &'a str, kind: ItemKind) -> Self {
        Self {
            collection_href,
            token,
            kind,
        }
    }

    fn data_property(&self) -> &'static PropertyName<'static, 'static> {
        match self.kind {
            ItemKind::Calendar => &names::CALENDAR_DATA,
            ItemKind::Contact => &names::ADDRESS_DATA,
        }
    }
}

/// The server's answer to [`SyncCollectionWithData`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DeltaAnswer {
    Changes(Delta),
    /// An error naming the `DAV:valid-sync-token` precondition: the token expired or is
    /// unknown.
    TokenRejected,
}

/// The changes since the token asked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delta {
    /// The token to ask with next time.
    pub(crate) token: String,
    pub(crate) changed: Vec<ChangedItem>,
    /// Hrefs of items deleted since the token.
    pub(crate) deleted: Vec<String>,
}

/// An item created or changed since the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChangedItem {
    /// Normalised as libdav normalises hrefs (only characters invalid in a path stay encoded).
    pub(crate) href: String,
    pub(crate) etag: String,
    /// The item's text, with CRLF line ends. None when the server left it out (a server that
    /// ignores the property): the item is then fetched by multiget.
    pub(crate) data: Option<String>,
}

impl DavRequest for SyncCollectionWithData<'_> {
    type Response = DeltaAnswer;
    type ParseError = ParseResponseError;
    type Error<E> = WebDavError<E>;

    fn prepare_request(&self, base_url: Uri) -> Result<Request<String>, http::Error> {
        let prop = XmlNode::new(&names::PROP).with_children(vec![
            XmlNode::new(&names::GETETAG),
            XmlNode::new(self.data_property()),
        ]);
        let report = XmlNode::new(&names::SYNC_COLLECTION).with_children(vec![
            XmlNode::new(&names::SYNC_TOKEN).with_text(self.token),
            XmlNode::new(&names::SYNC_LEVEL).with_text("1"),
            prop,
        ]);
        let (ct_name, ct_value) = xml_content_type_header();
        Request::builder()
            .method(Method::from_bytes(b"REPORT")?)
            .uri(make_relative_url(base_url, self.collection_href)?)
            .header(ct_name, ct_value)
            .body(report.render_node())
    }

    fn parse_response(
        &self,
        parts: &http::response::Parts,
        body: &[u8],
    ) -> Result<DeltaAnswer, ParseResponseError> {
        // RFC 6578 says 403; Xandikos 0.4 answers 412. Either names the precondition.
        if !parts.status.is_success() && names_valid_sync_token(body) {
            return Ok(DeltaAnswer::TokenRejected);
        }
        let doc = validate_xml_response(parts, body)?;
        let root = doc.root_element();
        let token = root
            .children()
            .find(|node| node.is_element() && node.tag_name() == names::SYNC_TOKEN)
            .and_then(|node| node.text())
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| invalid("the sync-collection answer has no DAV:sync-token".to_owned()))?
            .to_owned();
        let collection = normalise_percent_encoded(self.collection_href)
            .map_or_else(|_| self.collection_href.to_owned(), |c| c.into_owned());
        let data_property = self.data_property();
        let mut changed = Vec::new();
        let mut deleted = Vec::new();
        for response in root
            .descendants()
            .filter(|node| node.tag_name() == names::RESPONSE)
        {
            let href = normalised_href(response)?;
            if href == self.collection_href || href == collection {
                continue;
            }
            let etag = text_of(response, &names::GETETAG);
            match etag {
                Some(etag) => {
                    let data = data_of(response, data_property, &href)?;
                    changed.push(ChangedItem {
                        etag: etag.to_owned(),
                        data,
                        href,
                    });
                }
                None if first_status(response, &href)? == Some(StatusCode::NOT_FOUND) => {
                    deleted.push(href);
                }
                None => {
                    return Err(invalid(format!(
                        "the sync-collection answer has no etag for {href}"
                    )));
                }
            }
        }
        Ok(DeltaAnswer::Changes(Delta {
            token,
            changed,
            deleted,
        }))
    }
}

fn invalid(reason: String) -> ParseResponseError {
    ParseResponseError::InvalidResponse(reason.into())
}

/// Whether an error body names the `DAV:valid-sync-token` precondition (RFC 6578 section 3.2).
fn names_valid_sync_token(body: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(body) else {
        return false;
    };
    let Ok(doc) = roxmltree::Document::parse(text) else {
        return false;
    };
    doc.descendants()
        .any(|node| node.tag_name() == names::VALID_SYNC_TOKEN)
}

/// The response's href, percent-decoded except for characters invalid in a path (libdav's
/// normalisation, so it equals the href a multiget or a listing gives for the same item).
fn normalised_href(response: Node) -> Result<String, ParseResponseError> {
    let text = response
        .descendants()
        .find(|node| node.tag_name() == names::HREF)
        .and_then(|node| node.text())
        .ok_or_else(|| invalid("a sync-collection response has no DAV:href".to_owned()))?;
    normalise_percent_encoded(text.trim())
        .map(std::borrow::Cow::into_owned)
        .map_err(|err| invalid(format!("the href {text:?} is badly percent-encoded: {err}")))
}

fn text_of<'a>(node: Node<'a, '_>, name: &PropertyName<'_, '_>) -> Option<&'a str> {
    node.descendants()
        .find(|node| node.tag_name() == *name)
        .and_then(|node| node.text())
}

/// The first DAV:status in the response (the response's own, or its first propstat's).
fn first_status(response: Node, href: &str) -> Result<Option<StatusCode>, ParseResponseError> {
    response
        .descendants()
        .find(|node| node.tag_name() == names::STATUS)
        .and_then(|node| node.text())
        .map(|line| {
            parse_statusline(line.trim()).map_err(|err| {
                invalid(format!(
                    "the status {line:?} of {href} is unreadable: {err}"
                ))
            })
        })
        .transpose()
}

/// The item's data, from a propstat whose status is a success. A property the server reports
/// as missing (a 404 propstat) or leaves empty is None.
fn data_of(
    response: Node,
    property: &PropertyName<'_, '_>,
    href: &str,
) -> Result<Option<String>, ParseResponseError> {
    for propstat in response
        .children()
        .filter(|node| node.tag_name() == names::PROPSTAT)
    {
        let Some(data) = propstat
            .descendants()
            .find(|node| node.tag_name() == *property)
        else {
            continue;
        };
        let ok = match first_status(propstat, href)? {
            Some(status) => status.is_success(),
            // RFC 4918 requires the status; a propstat without one is read as given.
            None => true,
        };
        if !ok {
            continue;
        }
        let text: String = data
            .children()
            .filter(Node::is_text)
            .filter_map(|node| node.text())
            .collect();
        if text.trim().is_empty() {
            return Ok(None);
        }
        // roxmltree reads "\r\n" as "\n" (XML end-of-line handling); iCalendar and vCard
        // need CRLF, as libdav restores for multiget answers.
        return Ok(Some(normalise_newlines(&text)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const COLLECTION: &str = "/user/calendar/";

    fn parts(status: StatusCode) -> http::response::Parts {
        let (parts, ()) = http::Response::builder()
            .status(status)
            .body(())
            .unwrap_or_default()
            .into_parts();
        parts
    }

    fn parse(kind: ItemKind, status: StatusCode, body: &str) -> Result<DeltaAnswer, String> {
        SyncCollectionWithData::new(COLLECTION, "t1", kind)
            .parse_response(&parts(status), body.as_bytes())
            .map_err(|err| err.to_string())
    }

    fn changes(kind: ItemKind, body: &str) -> Delta {
        match parse(kind, StatusCode::MULTI_STATUS, body) {
            Ok(DeltaAnswer::Changes(delta)) => delta,
            other => panic!("not a delta: {other:?}"),
        }
    }

    #[test]
    fn the_request_asks_the_token_and_the_items_data() {
        let request =
            SyncCollectionWithData::new(COLLECTION, "http://r/sync/1&2", ItemKind::Calendar)
                .prepare_request(Uri::from_static("http://127.0.0.1:5232/"))
                .unwrap();
        assert_eq!(request.method().as_str(), "REPORT");
        assert_eq!(
            request.uri().to_string(),
            "http://127.0.0.1:5232/user/calendar/"
        );
        let body = request.body();
        let doc = roxmltree::Document::parse(body).unwrap();
        let root = doc.root_element();
        assert_eq!(root.tag_name(), names::SYNC_COLLECTION);
        assert_eq!(text_of(root, &names::SYNC_TOKEN), Some("http://r/sync/1&2"));
        assert_eq!(text_of(root, &names::SYNC_LEVEL), Some("1"));
        let prop = root
            .descendants()
            .find(|n| n.tag_name() == names::PROP)
            .unwrap();
        let asked: Vec<_> = prop.children().filter(Node::is_element).collect();
        assert_eq!(asked.len(), 2, "{body}");
        assert_eq!(asked[0].tag_name(), names::GETETAG);
        assert_eq!(asked[1].tag_name(), names::CALENDAR_DATA);

        let request = SyncCollectionWithData::new("/user/contacts/", "t", ItemKind::Contact)
            .prepare_request(Uri::from_static("http://127.0.0.1:5232/"))
            .unwrap();
        let doc = roxmltree::Document::parse(request.body()).unwrap();
        assert!(
            doc.descendants()
                .any(|n| n.tag_name() == names::ADDRESS_DATA),
            "{}",
            request.body()
        );
        assert!(
            !doc.descendants()
                .any(|n| n.tag_name() == names::CALENDAR_DATA)
        );
    }

    /// Radicale 3's answer: default DAV namespace, the data as text with LF line ends, a
    /// deleted item as a response with a 404 status and no propstat.
    #[test]
    fn changed_items_come_with_their_data_and_deleted_ones_with_404() {
        let body = "<?xml version='1.0' encoding='utf-8'?>\n<multistatus xmlns=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\"><response><href>/user/calendar/a.ics</href><propstat><prop><getetag>\"e1\"</getetag><C:calendar-data>BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:a\nSUMMARY:Fish &amp; chips\nEND:VEVENT\nEND:VCALENDAR\n</C:calendar-data></prop><status>HTTP/1.1 200 OK</status></propstat></response><response><href>/user/calendar/gone.ics</href><status>HTTP/1.1 404 Not Found</status></response><sync-token>http://radicale.org/ns/sync/abc</sync-token></multistatus>";
        let delta = changes(ItemKind::Calendar, body);
        assert_eq!(delta.token, "http://radicale.org/ns/sync/abc");
        assert_eq!(
            delta.changed,
            vec![ChangedItem {
                href: "/user/calendar/a.ics".to_owned(),
                etag: "\"e1\"".to_owned(),
                data: Some(
                    "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nUID:a\r\nSUMMARY:Fish & chips\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
                        .to_owned()
                ),
            }]
        );
        assert_eq!(delta.deleted, vec!["/user/calendar/gone.ics".to_owned()]);
    }

    /// Xandikos-style prefixes (ns0, ns1), a CardDAV answer with CDATA and CRLF kept.
    #[test]
    fn any_namespace_prefix_is_read_by_namespace() {
        let body = "<ns0:multistatus xmlns:ns0=\"DAV:\" xmlns:ns1=\"urn:ietf:params:xml:ns:carddav\"><ns0:response><ns0:href>/user/calendar/c.vcf</ns0:href><ns0:propstat><ns0:status>HTTP/1.1 200 OK</ns0:status><ns0:prop><ns0:getetag>\"v2\"</ns0:getetag><ns1:address-data><![CDATA[BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:Ada\r\nEND:VCARD\r\n]]></ns1:address-data></ns0:prop></ns0:propstat></ns0:response><ns0:sync-token>http://xandikos/sync/9</ns0:sync-token></ns0:multistatus>";
        let delta = changes(ItemKind::Contact, body);
        assert_eq!(delta.token, "http://xandikos/sync/9");
        assert_eq!(delta.changed.len(), 1);
        assert_eq!(delta.changed[0].etag, "\"v2\"");
        assert_eq!(
            delta.changed[0].data.as_deref(),
            Some("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c\r\nFN:Ada\r\nEND:VCARD\r\n")
        );
        assert!(delta.deleted.is_empty());
    }

    /// A server that ignores the data property (left out, or reported in a 404 propstat):
    /// the item is listed without data, to be fetched by multiget.
    #[test]
    fn data_the_server_leaves_out_is_none() {
        let body = r#"<d:multistatus xmlns:d="DAV:" xmlns:cal="urn:ietf:params:xml:ns:caldav">
  <d:response>
    <d:href>/user/calendar/plain.ics</d:href>
    <d:propstat><d:prop><d:getetag>"p1"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
  </d:response>
  <d:response>
    <d:href>/user/calendar/refused.ics</d:href>
    <d:propstat><d:prop><d:getetag>"r1"</d:getetag></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
    <d:propstat><d:prop><cal:calendar-data>not this</cal:calendar-data></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>
  </d:response>
  <d:response>
    <d:href>/user/calendar/empty.ics</d:href>
    <d:propstat><d:prop><d:getetag>"m1"</d:getetag><cal:calendar-data/></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
  </d:response>
  <d:sync-token>tok-2</d:sync-token>
</d:multistatus>"#;
        let delta = changes(ItemKind::Calendar, body);
        let got: Vec<_> = delta
            .changed
            .iter()
            .map(|c| (c.href.as_str(), c.etag.as_str(), c.data.is_some()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("/user/calendar/plain.ics", "\"p1\"", false),
                ("/user/calendar/refused.ics", "\"r1\"", false),
                ("/user/calendar/empty.ics", "\"m1\"", false),
            ]
        );
    }

    /// Percent-encoding is normalised as libdav does: `%40` and `%20`... an unreserved or
    /// allowed character is decoded, so the href equals a multiget's for the same item.
    #[test]
    fn a_percent_encoded_href_is_normalised_like_libdav() {
        let body = "<multistatus xmlns=\"DAV:\"><response><href>/user/calendar/alice%40example.com%20x.ics</href><propstat><prop><getetag>\"1\"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response><response><href>/user/calendar/</href><propstat><prop><getetag>\"col\"</getetag></prop><status>HTTP/1.1 200 OK</status></propstat></response><sync-token>t</sync-token></multistatus>";
        let delta = changes(ItemKind::Calendar, body);
        let expected = normalise_percent_encoded("/user/calendar/alice%40example.com%20x.ics")
            .unwrap()
            .into_owned();
        assert_eq!(delta.changed.len(), 1, "the collection itself is left out");
        assert_eq!(delta.changed[0].href, expected);
        assert!(delta.changed[0].href.contains('@'), "{expected}");
    }

    #[test]
    fn a_rejected_token_is_an_answer_and_other_refusals_are_errors() {
        let rejected =
            "<?xml version=\"1.0\"?><D:error xmlns:D=\"DAV:\"><D:valid-sync-token/></D:error>";
        assert_eq!(
            parse(ItemKind::Calendar, StatusCode::FORBIDDEN, rejected),
            Ok(DeltaAnswer::TokenRejected)
        );
        // Xandikos 0.4's answer to an unknown token.
        let xandikos = "<ns0:error xmlns:ns0=\"DAV:\"><ns0:valid-sync-token /><ns0:responsedescription>Requested sync token t1 is invalid</ns0:responsedescription></ns0:error>";
        assert_eq!(
            parse(
                ItemKind::Calendar,
                StatusCode::PRECONDITION_FAILED,
                xandikos
            ),
            Ok(DeltaAnswer::TokenRejected)
        );
        let forbidden = parse(ItemKind::Calendar, StatusCode::FORBIDDEN, "no").unwrap_err();
        assert!(forbidden.contains("403"), "{forbidden}");
        let unsupported = parse(ItemKind::Calendar, StatusCode::NOT_IMPLEMENTED, "").unwrap_err();
        assert!(unsupported.contains("501"), "{unsupported}");
        let bad = parse(ItemKind::Calendar, StatusCode::BAD_REQUEST, "<html/>").unwrap_err();
        assert!(bad.contains("400"), "{bad}");
    }

    #[test]
    fn garbage_is_an_error_saying_what_and_where() {
        let truncated = "<multistatus xmlns=\"DAV:\"><response><href>/user/calendar/a.ics</hr";
        let err = parse(ItemKind::Calendar, StatusCode::MULTI_STATUS, truncated).unwrap_err();
        assert!(err.contains("XML"), "{err}");
        let mismatched = "<multistatus xmlns=\"DAV:\">\n<response></multistatus>";
        let err = parse(ItemKind::Calendar, StatusCode::MULTI_STATUS, mismatched).unwrap_err();
        assert!(err.contains("XML") && err.contains("2:"), "{err}");

        let not_utf8 = [0xff, 0xfe, b'<'];
        let err = SyncCollectionWithData::new(COLLECTION, "t", ItemKind::Calendar)
            .parse_response(&parts(StatusCode::MULTI_STATUS), &not_utf8)
            .unwrap_err();
        assert!(
            matches!(err, ParseResponseError::InvalidResponse(_)),
            "{err}"
        );

        for (body, says) in [
            ("<multistatus xmlns=\"DAV:\"/>", "sync-token"),
            (
                "<multistatus xmlns=\"DAV:\"><response><propstat/></response><sync-token>t</sync-token></multistatus>",
                "href",
            ),
            (
                "<multistatus xmlns=\"DAV:\"><response><href>/user/calendar/%zz.ics</href></response><sync-token>t</sync-token></multistatus>",
                "%zz",
            ),
            (
                "<multistatus xmlns=\"DAV:\"><response><href>/user/calendar/x.ics</href><status>HTTP/1.1 200 OK</status></response><sync-token>t</sync-token></multistatus>",
                "/user/calendar/x.ics",
            ),
            (
                "<multistatus xmlns=\"DAV:\"><response><href>/user/calendar/y.ics</href><status>nonsense</status></response><sync-token>t</sync-token></multistatus>",
                "/user/calendar/y.ics",
            ),
        ] {
            let err = parse(ItemKind::Calendar, StatusCode::MULTI_STATUS, body).unwrap_err();
            assert!(err.contains(says), "{body}: {err}");
        }
    }

    #[test]
    fn nothing_changed_is_an_empty_delta_with_the_new_token() {
        let delta = changes(
            ItemKind::Calendar,
            "<multistatus xmlns=\"DAV:\"><sync-token>same</sync-token></multistatus>",
        );
        assert_eq!(
            delta,
            Delta {
                token: "same".to_owned(),
                changed: Vec::new(),
                deleted: Vec::new()
            }
        );
    }

    proptest::proptest! {
        /// Whatever a server answers, it is read or refused with a reason, never a panic.
        #[test]
        fn any_answer_is_read_or_refused_without_a_panic(
            body in "(<multistatus xmlns=\"DAV:\" xmlns:C=\"urn:ietf:params:xml:ns:caldav\">|\
                      </multistatus>|<response>|</response>|<href>[/a-z.%0-9 ]{0,8}</href>|\
                      <propstat>|</propstat>|<prop>|</prop>|<getetag>\"e\"</getetag>|<getetag/>|\
                      <status>HTTP/1.1 [0-9]{3} X</status>|<status>[ -~]{0,6}</status>|\
                      <sync-token>[a-z]{0,3}</sync-token>|<valid-sync-token/>|\
                      <C:calendar-data>[ -~]{0,10}</C:calendar-data>|<C:calendar-data/>|\
                      &amp;|&#0;|&#xD;|<!\\[CDATA\\[x\\]\\]>|[<>&\"' a-z]){0,40}",
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            status in 0usize..4,
        ) {
            let status = [
                StatusCode::MULTI_STATUS,
                StatusCode::OK,
                StatusCode::FORBIDDEN,
                StatusCode::PRECONDITION_FAILED,
            ][status];
            for kind in [ItemKind::Calendar, ItemKind::Contact] {
                let _ = parse(kind, status, &body);
                let _ = SyncCollectionWithData::new(COLLECTION, "t1", kind)
                    .parse_response(&parts(status), &bytes);
            }
        }
    }
}

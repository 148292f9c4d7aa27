//! Entry HTML made safe before it is stored or shown: an allowlist (ammonia), so anything not
//! named here is dropped. No scripts, styles, event handlers, forms, `javascript:` or `data:`
//! URLs; iframes only from video hosts; links open with `rel="noopener noreferrer"`; tracking
//! pixels (1×1 or 0×0 images) removed; relative URLs resolved against the feed's address.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::OnceLock;

use ammonia::{Builder, UrlRelative};

/// HTML longer than this is cut (at a tag boundary, by the parser) before it is sanitized.
pub const HTML_BYTES_MAX: usize = 512 * 1024;

/// iframe sources allowed (embedded videos); any other iframe is removed with its content.
const IFRAME_HOSTS: &[&str] = &[
    "www.youtube.com",
    "www.youtube-nocookie.com",
    "youtube.com",
    "player.vimeo.com",
];

fn iframe_allowed(src: &str) -> bool {
    url::Url::parse(src).is_ok_and(|u| {
        u.scheme() == "https" && u.host_str().is_some_and(|h| IFRAME_HOSTS.contains(&h))
    })
}

fn builder() -> Builder<'static> {
    let mut b = Builder::default();
    b.url_schemes(HashSet::from(["http", "https", "mailto"]))
        .link_rel(Some("noopener noreferrer"))
        .add_tags([
            "iframe",
            "figure",
            "figcaption",
            "picture",
            "source",
            "video",
            "audio",
        ])
        .add_tag_attributes("iframe", ["src", "width", "height", "allowfullscreen"])
        .add_tag_attributes("img", ["width", "height", "srcset", "loading"])
        .add_tag_attributes("source", ["src", "srcset", "type"])
        .add_tag_attributes("video", ["src", "poster", "controls", "width", "height"])
        .add_tag_attributes("audio", ["src", "controls"])
        .attribute_filter(|element, attribute, value| match (element, attribute) {
            ("iframe", "src") if !iframe_allowed(value) => None,
            _ => Some(Cow::Borrowed(value)),
        });
    b
}

thread_local! {
    /// The base of the document being cleaned on this thread: ammonia's relative-URL hook
    /// has no per-call context, and building a cleaner per entry costs more than cleaning.
    static BASE: RefCell<Option<url::Url>> = const { RefCell::new(None) };
}

/// Resolves a relative URL against [`BASE`]; without a base it is dropped (it would point
/// into Concord's own window).
fn resolve(relative: &str) -> Option<Cow<'_, str>> {
    BASE.with(|base| {
        let base = base.borrow();
        let joined = base.as_ref()?.join(relative).ok()?;
        matches!(joined.scheme(), "http" | "https").then(|| Cow::Owned(joined.to_string()))
    })
}

fn cleaner() -> &'static Builder<'static> {
    static CLEANER: OnceLock<Builder<'static>> = OnceLock::new();
    CLEANER.get_or_init(|| {
        let mut b = builder();
        b.url_relative(UrlRelative::Custom(Box::new(resolve)));
        b
    })
}

/// Sanitizes entry HTML; `base_url` (the entry's or the feed's address) resolves relative links.
pub fn html(input: &str, base_url: Option<&str>) -> String {
    let input = truncate(input, HTML_BYTES_MAX);
    if !input.contains(['<', '&', '>', '"', '\'']) {
        return input.to_owned(); // plain text: nothing to clean, and this is the common case
    }
    let base = base_url.and_then(|b| url::Url::parse(b).ok());
    BASE.with(|b| *b.borrow_mut() = base);
    let cleaned = cleaner().clean(input).to_string();
    BASE.with(|b| *b.borrow_mut() = None);
    remove_unwanted_elements(&cleaned)
}

/// Text with HTML's special characters escaped, for a plain-text summary shown as HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The text of an HTML fragment (tags dropped, entities decoded), for titles.
pub fn to_text(input: &str) -> String {
    let stripped = Builder::empty()
        .clean(truncate(input, HTML_BYTES_MAX))
        .to_string();
    unescape(&stripped)
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&nbsp;", "\u{a0}")
        .replace("&amp;", "&")
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Drops, from ammonia's normalized output, images that are tracking pixels (a dimension of 0
/// or 1) or have no source left, and iframes whose source was refused.
fn remove_unwanted_elements(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(at) = rest.find('<') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = tag_end(rest);
        let tag = &rest[..end];
        if tag.starts_with("<img") && (is_pixel(tag) || !tag.contains(" src=\"")) {
            rest = &rest[end..];
            continue;
        }
        if tag.starts_with("<iframe") && !tag.contains(" src=\"") {
            rest = &rest[end..];
            let close = rest.find("</iframe>").map_or(0, |c| c + "</iframe>".len());
            rest = &rest[close..];
            continue;
        }
        out.push_str(tag);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn tag_end(s: &str) -> usize {
    let mut in_quote = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_quote = !in_quote,
            '>' if !in_quote => return i + 1,
            _ => {}
        }
    }
    s.len()
}

fn is_pixel(tag: &str) -> bool {
    let dim = |name: &str| {
        let key = format!(" {name}=\"");
        tag.find(&key).and_then(|at| {
            let v = &tag[at + key.len()..];
            let v = &v[..v.find('"').unwrap_or(v.len())];
            v.trim().trim_end_matches("px").parse::<u32>().ok()
        })
    };
    matches!(dim("width"), Some(0 | 1)) || matches!(dim("height"), Some(0 | 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_handlers_and_javascript_urls_are_removed() {
        let out = html(
            r#"<p onclick="x()">hi<script>alert(1)</script><a href="javascript:alert(1)">j</a><img src="x.png" onerror="alert(1)"></p>"#,
            Some("https://example.org/post/"),
        );
        assert!(!out.contains("script"), "{out}");
        assert!(
            !out.contains("onclick") && !out.contains("onerror"),
            "{out}"
        );
        assert!(!out.contains("javascript:"), "{out}");
        assert!(
            out.contains(r#"src="https://example.org/post/x.png""#),
            "{out}"
        );
    }

    #[test]
    fn links_get_noopener_and_pixels_go() {
        let out = html(
            r#"<a href="https://e.org">e</a><img src="https://t.example/p.gif" width="1" height="1"><img src="https://e.org/big.png" width="640">"#,
            None,
        );
        assert!(out.contains(r#"rel="noopener noreferrer""#), "{out}");
        assert!(!out.contains("p.gif"), "{out}");
        assert!(out.contains("big.png"), "{out}");
    }

    #[test]
    fn only_video_iframes_survive() {
        let out = html(
            r#"<iframe src="https://evil.example/x">x</iframe><iframe src="https://www.youtube.com/embed/abc"></iframe>"#,
            None,
        );
        assert!(!out.contains("evil"), "{out}");
        assert!(out.contains("youtube.com/embed/abc"), "{out}");
    }

    #[test]
    fn titles_become_text() {
        assert_eq!(to_text("<b>Fish</b> &amp; chips"), "Fish & chips");
    }
}

//! The feed parse wrapper must never panic (feed-rs's own panics are contained) and must
//! produce only sanitized HTML, whatever the bytes and the HTTP charset.
#![no_main]

use concord_core::feeds::parse;
use libfuzzer_sys::fuzz_target;

const CHARSETS: &[Option<&str>] = &[
    None,
    Some("utf-8"),
    Some("utf-16"),
    Some("windows-1252"),
    Some("koi8-r"),
];

fuzz_target!(|data: &[u8]| {
    let (selector, body) = data.split_first().unwrap_or((&0, &[]));
    let charset = CHARSETS[usize::from(*selector) % CHARSETS.len()];
    if let Ok(doc) = parse::parse(body, charset, Some("https://example.org/feed")) {
        for entry in &doc.entries {
            for html in [&entry.summary_html, &entry.content_html]
                .into_iter()
                .flatten()
            {
                assert!(!html.to_ascii_lowercase().contains("<script"), "{html}");
            }
        }
    }
});

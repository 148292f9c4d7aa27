//! The parse wrapper never panics, whatever the bytes: random input, and real fixtures cut,
//! spliced and re-encoded at random (the cargo-fuzz target in `crates/core/fuzz` goes further).

#![allow(clippy::unwrap_used)]

use concord_core::feeds::{opml, parse};
use proptest::prelude::*;

const FIXTURES: &[&[u8]] = &[
    include_bytes!("fixtures/feeds/utf16le-bom.xml"),
    include_bytes!("fixtures/feeds/utf16be-bom.xml"),
    include_bytes!("fixtures/feeds/iso-8859-1.xml"),
    include_bytes!("fixtures/feeds/http-charset-windows-1251.xml"),
    include_bytes!("fixtures/feeds/rss-no-version.xml"),
    include_bytes!("fixtures/feeds/atom03.xml"),
    include_bytes!("fixtures/feeds/jsonfeed-1.1.json"),
    include_bytes!("fixtures/feeds/broken.xml"),
    include_bytes!("fixtures/feeds/no-ids.xml"),
    include_bytes!("fixtures/feeds/xss.xml"),
    include_bytes!("fixtures/feeds/subscriptions.opml"),
];

const CHARSETS: &[Option<&str>] = &[
    None,
    Some("utf-8"),
    Some("utf-16"),
    Some("iso-8859-1"),
    Some("bogus"),
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), cs in 0..CHARSETS.len()) {
        let _ = parse::parse(&bytes, CHARSETS[cs], Some("https://example.org/"));
        let _ = opml::import(&bytes);
    }

    #[test]
    fn mangled_fixtures_never_panic(
        which in 0..FIXTURES.len(),
        cut in any::<prop::sample::Index>(),
        splice in proptest::collection::vec(any::<u8>(), 0..64),
        at in any::<prop::sample::Index>(),
        cs in 0..CHARSETS.len(),
    ) {
        let src = FIXTURES[which];
        let mut bytes = src[..cut.index(src.len() + 1)].to_vec();
        let at = at.index(bytes.len() + 1);
        bytes.splice(at..at, splice);
        let _ = parse::parse(&bytes, CHARSETS[cs], None);
        let _ = opml::import(&bytes);
    }
}

#[test]
fn billion_laughs_is_refused_quickly() {
    let mut doc = String::from("<?xml version=\"1.0\"?>\n<!DOCTYPE rss [\n<!ENTITY lol \"lol\">\n");
    for i in 1..10 {
        let prev = if i == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", i - 1)
        };
        doc.push_str(&format!(
            "<!ENTITY lol{i} \"{}\">\n",
            format!("&{prev};").repeat(10)
        ));
    }
    doc.push_str("]>\n<rss version=\"2.0\"><channel><title>&lol9;</title></channel></rss>");
    let started = std::time::Instant::now();
    assert_eq!(
        parse::parse(doc.as_bytes(), None, None),
        Err(parse::ParseError::EntitiesRefused)
    );
    assert!(started.elapsed().as_millis() < 100);
    let external = "<?xml version=\"1.0\"?><!DOCTYPE rss [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]><rss version=\"2.0\"><channel><title>&xxe;</title></channel></rss>";
    assert_eq!(
        parse::parse(external.as_bytes(), None, None),
        Err(parse::ParseError::EntitiesRefused)
    );
}

#[test]
fn utf16_without_a_bom_is_recognised() {
    let doc = "<rss version=\"2.0\"><channel><title>Ohne BOM: Grüße</title></channel></rss>";
    let be: Vec<u8> = doc.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let le: Vec<u8> = doc.encode_utf16().flat_map(u16::to_le_bytes).collect();
    assert_eq!(
        parse::parse(&be, None, None).unwrap().title,
        "Ohne BOM: Grüße"
    );
    assert_eq!(
        parse::parse(&le, Some("utf-16"), None).unwrap().title,
        "Ohne BOM: Grüße"
    );
}

#[test]
fn not_a_feed_says_so() {
    let err = parse::parse(b"<html><body>Hello</body></html>", None, None).unwrap_err();
    assert!(err.to_string().contains("not a feed"), "{err}");
    assert_eq!(
        parse::parse(b"   ", None, None),
        Err(parse::ParseError::Empty)
    );
}

//! OPML import must never panic, and what it reads must export and import back unchanged.
#![no_main]

use concord_core::feeds::opml;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(subs) = opml::import(data) {
        let again = opml::import(opml::export("fuzz", &subs).as_bytes()).ok();
        let urls = |v: &[opml::Subscription]| v.iter().map(|s| s.url.clone()).collect::<Vec<_>>();
        assert_eq!(again.as_deref().map(urls), Some(urls(&subs)));
    }
});

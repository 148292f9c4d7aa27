//! The change check of a CalDAV calendar or CardDAV address book brings the changed items'
//! data in the same sync-collection REPORT: after another client (curl) edits and deletes
//! items on a real Radicale, the next sync updates the folder without a multiget; Xandikos
//! leaves the data out, and only the changed items are fetched. Concord talks to the server
//! through a recording proxy (`front.rs`), so its requests are seen. Needs the venv with the
//! servers (`make test` makes it).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use concord_core::sync::item::ItemKind;
use concord_e2e::both_servers;
use concord_e2e::front::{FrontServer, HttpResponse, forward};
use concord_e2e::servers::ServerKind;
use concord_e2e::sync_fixture::{Fixture, event, summary_of};

/// A recording proxy in front of the fixture's server, with the pair (and its account)
/// pointed at it instead of the server itself.
fn through_proxy(f: &Fixture) -> FrontServer {
    let upstream = f.server.port();
    through(
        f,
        FrontServer::start(move |request| forward(request, upstream)).unwrap(),
    )
}

fn through(f: &Fixture, proxy: FrontServer) -> FrontServer {
    let conn = f.concord.database().connect().unwrap();
    let direct = f.server.url(&f.collection());
    let proxied = proxy.url(&f.collection());
    let moved = conn
        .execute(
            "UPDATE storages SET location = ?1 WHERE location = ?2",
            [proxied.as_str(), direct.as_str()],
        )
        .unwrap();
    assert_eq!(moved, 1, "no storage at {direct}");
    conn.execute(
        "UPDATE accounts SET url = ?1 WHERE url = ?2",
        [proxy.url("/").as_str(), f.server.base_url().as_str()],
    )
    .unwrap();
    proxy
}

/// The bodies of the REPORTs sent through `proxy` after the first `before` requests.
fn reports_after(proxy: &FrontServer, before: usize) -> Vec<String> {
    proxy
        .requests()
        .iter()
        .skip(before)
        .filter(|r| r.method == "REPORT")
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

/// The REPORTs of one sync: the first is the sync-collection asking for `data_element`.
/// Radicale answers it with the data, so nothing follows. Xandikos 0.4 answers the data
/// property with a 404 propstat (checked by hand with curl), so exactly the `changed` items,
/// and no other, are fetched by one multiget: the path of a server that leaves the data out.
fn assert_reports(
    kind: ServerKind,
    reports: &[String],
    data_element: &str,
    changed: &[&str],
    not_fetched: &[&str],
) {
    let Some((delta, rest)) = reports.split_first() else {
        panic!("{kind}: no REPORT sent");
    };
    assert!(
        delta.contains("sync-collection")
            && delta.contains("sync-token>")
            && delta.contains(data_element),
        "{kind}: the change check did not ask for {data_element}: {delta}"
    );
    match kind {
        ServerKind::Radicale => {
            assert!(
                rest.is_empty(),
                "{kind}: more than the change check: {reports:#?}"
            );
        }
        ServerKind::Xandikos => {
            assert_eq!(rest.len(), 1, "{kind}: {reports:#?}");
            let multiget = &rest[0];
            assert!(multiget.contains("multiget"), "{kind}: {multiget}");
            for name in changed {
                assert!(
                    multiget.contains(name),
                    "{kind}: {name} not fetched: {multiget}"
                );
            }
            for name in not_fetched {
                assert!(
                    !multiget.contains(name),
                    "{kind}: {name} fetched: {multiget}"
                );
            }
        }
    }
}

async fn edited_and_deleted_events_arrive_with_the_change_check(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    let proxy = through_proxy(&f);
    for i in 0..6 {
        f.server_put(
            &format!("e{i}.ics"),
            &event(&format!("e{i}"), &format!("Event {i}"), "Room 1"),
        );
    }
    f.sync().await;
    assert_eq!(f.vdir_items().len(), 6, "{kind}");

    for i in 0..3 {
        let (href, _) = f.server_item(&format!("e{i}")).unwrap();
        f.server_put(
            href.rsplit('/').next().unwrap(),
            &event(&format!("e{i}"), &format!("Event {i} moved"), "Room 2"),
        );
    }
    let (gone, _) = f.server_item("e5").unwrap();
    f.server_delete(&gone);
    let before = proxy.requests().len();
    let report = f.sync().await;

    assert!(report.deferred.is_empty(), "{kind}: {report:?}");
    assert_reports(
        kind,
        &reports_after(&proxy, before),
        "calendar-data",
        &["e0.ics", "e1.ics", "e2.ics"],
        &["e3.ics", "e4.ics", "e5.ics"],
    );
    for i in 0..3 {
        let uid = format!("e{i}");
        let (_, in_folder) = f.vdir_item(&uid).unwrap();
        assert_eq!(summary_of(&in_folder), format!("Event {i} moved"), "{kind}");
        // The bytes travel as the server serves them to any client.
        let (_, on_server) = f.server_item(&uid).unwrap();
        assert_eq!(in_folder, on_server, "{kind}: {uid}");
    }
    assert_eq!(summary_of(&f.vdir_item("e3").unwrap().1), "Event 3");
    assert!(
        f.vdir_item("e5").is_none(),
        "{kind}: e5 still in the folder"
    );
    assert_eq!(f.vdir_items().len(), 5, "{kind}");

    // Nothing changed since: the change check only, and nothing to do.
    let before = proxy.requests().len();
    let again = f.sync().await;
    assert!(again.plan.is_empty(), "{kind}: {again:?}");
    let reports = reports_after(&proxy, before);
    assert_eq!(reports.len(), 1, "{kind}: {reports:#?}");
}
both_servers!(edited_and_deleted_events_arrive_with_the_change_check);

fn contact(uid: &str, name: &str, email: &str) -> String {
    format!(
        "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:{uid}\r\nFN:{name}\r\nN:{name};;;;\r\nEMAIL:{email}\r\nEND:VCARD\r\n"
    )
}

async fn edited_and_deleted_contacts_arrive_with_the_change_check(kind: ServerKind) {
    let f = Fixture::new(kind, ItemKind::Contact);
    let proxy = through_proxy(&f);
    for name in ["ada", "alan", "grace", "edsger"] {
        f.server_put(
            &format!("{name}.vcf"),
            &contact(name, name, &format!("{name}@example.com")),
        );
    }
    f.sync().await;
    assert_eq!(f.vdir_items().len(), 4, "{kind}");

    for name in ["ada", "alan", "grace"] {
        let (href, _) = f.server_item(name).unwrap();
        f.server_put(
            href.rsplit('/').next().unwrap(),
            &contact(name, name, &format!("{name}@new.example")),
        );
    }
    let (gone, _) = f.server_item("edsger").unwrap();
    f.server_delete(&gone);
    let before = proxy.requests().len();
    let report = f.sync().await;

    assert!(report.deferred.is_empty(), "{kind}: {report:?}");
    assert_reports(
        kind,
        &reports_after(&proxy, before),
        "address-data",
        &["ada.vcf", "alan.vcf", "grace.vcf"],
        &["edsger.vcf"],
    );
    for name in ["ada", "alan", "grace"] {
        let (_, in_folder) = f.vdir_item(name).unwrap();
        assert!(
            in_folder.contains(&format!("EMAIL:{name}@new.example")),
            "{kind}: {in_folder}"
        );
        let (_, on_server) = f.server_item(name).unwrap();
        assert_eq!(in_folder, on_server, "{kind}: {name}");
    }
    assert!(
        f.vdir_item("edsger").is_none(),
        "{kind}: still in the folder"
    );
    assert_eq!(f.vdir_items().len(), 3, "{kind}");
}
both_servers!(edited_and_deleted_contacts_arrive_with_the_change_check);

/// A server that refuses the change check with data (HTTP 400 or 501; played by the proxy in
/// front of Radicale) is asked again for etags only, and the changed items come by multiget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusing_the_data_is_asked_for_etags_only() {
    for status in [400, 501] {
        let f = Fixture::calendar(ServerKind::Radicale);
        let upstream = f.server.port();
        let refusing = FrontServer::start(move |request| {
            let body = String::from_utf8_lossy(&request.body);
            if body.contains("sync-collection") && body.contains("calendar-data") {
                HttpResponse::new(status, Vec::new())
            } else {
                forward(request, upstream)
            }
        })
        .unwrap();
        let proxy = through(&f, refusing);
        f.server_put("r1.ics", &event("r1", "One", "A"));
        f.server_put("r2.ics", &event("r2", "Two", "A"));
        f.server_put("r3.ics", &event("r3", "Three", "A"));
        f.sync().await;
        f.server_put("r1.ics", &event("r1", "One again", "A"));
        let (gone, _) = f.server_item("r3").unwrap();
        f.server_delete(&gone);
        let before = proxy.requests().len();
        let report = f.sync().await;

        assert!(report.deferred.is_empty(), "{status}: {report:?}");
        let reports = reports_after(&proxy, before);
        assert_eq!(reports.len(), 3, "{status}: {reports:#?}");
        assert!(
            reports[0].contains("calendar-data"),
            "{status}: {reports:#?}"
        );
        assert!(
            reports[1].contains("sync-collection") && !reports[1].contains("calendar-data"),
            "{status}: {reports:#?}"
        );
        assert!(
            reports[2].contains("multiget") && reports[2].contains("r1.ics"),
            "{status}: {reports:#?}"
        );
        assert!(!reports[2].contains("r2.ics"), "{status}: {reports:#?}");
        assert_eq!(summary_of(&f.vdir_item("r1").unwrap().1), "One again");
        assert_eq!(summary_of(&f.vdir_item("r2").unwrap().1), "Two");
        assert!(
            f.vdir_item("r3").is_none(),
            "{status}: r3 still in the folder"
        );
    }
}

/// A token the server no longer knows (Radicale answers 403, Xandikos 412, both naming
/// DAV:valid-sync-token) goes straight to a full listing: the token is not asked again
/// without the data, and nothing is lost or deleted.
async fn an_unknown_token_lists_everything_at_once(kind: ServerKind) {
    let f = Fixture::calendar(kind);
    let proxy = through_proxy(&f);
    f.server_put("t1.ics", &event("t1", "One", "A"));
    f.server_put("t2.ics", &event("t2", "Two", "A"));
    f.sync().await;
    f.spoil_token();
    f.server_put("t3.ics", &event("t3", "Three", "A"));
    let before = proxy.requests().len();
    let report = f.sync().await;

    assert_eq!(report.counts.create_b, 1, "{kind}: {report:?}");
    assert_eq!((report.counts.delete_a, report.counts.delete_b), (0, 0));
    assert_eq!(f.vdir_items().len(), 3, "{kind}");
    let reports = reports_after(&proxy, before);
    let with_old_token: Vec<_> = reports
        .iter()
        .filter(|r| r.contains(Fixture::UNKNOWN_TOKEN))
        .collect();
    assert_eq!(with_old_token.len(), 1, "{kind}: {reports:#?}");
    assert!(
        with_old_token[0].contains("calendar-data"),
        "{kind}: {reports:#?}"
    );
}
both_servers!(an_unknown_token_lists_everything_at_once);

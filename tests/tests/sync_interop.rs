//! The vdir Concord writes is the one khal, khard and vdirsyncer read and write: khal lists
//! the events Concord synced from a real Radicale, and a vdir vdirsyncer filled from the same
//! server syncs with Concord without a single spurious change. khal and vdirsyncer come from
//! PyPI in the test venv (`make test` makes it).

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use concord_core::Concord;
use concord_core::dav::Credentials;
use concord_core::sync::item::ItemKind;
use concord_core::sync::state::{self, ConflictPolicy, Direction, StorageKind};
use concord_core::sync::{Report, SyncOptions, sync_pair};
use concord_e2e::servers::DavServer;
use tempfile::TempDir;

const PAIR: &str = "cal";

/// A fresh Radicale holding `events`, and a Concord data directory with nothing paired yet.
struct Setup {
    server: DavServer,
    dir: TempDir,
    concord: Concord,
}

impl Setup {
    fn with_events(events: &[(&str, &str, &str)]) -> Self {
        let server = DavServer::radicale().expect("starting Radicale");
        for (uid, summary, start) in events {
            let url = server.url(&format!("{}{uid}.ics", server.calendar_path()));
            let out = Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
                .args([
                    "-u",
                    &format!("{}:{}", server.username(), server.password()),
                ])
                .args(["-H", "Content-Type: text/calendar; charset=utf-8"])
                .args(["--data-binary", &event(uid, summary, start), &url])
                .output()
                .expect("running curl");
            let status = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(status.starts_with('2'), "PUT {url}: {status}");
        }
        let dir = tempfile::tempdir().unwrap();
        let concord = Concord::open(&dir.path().join("data")).unwrap();
        Setup {
            server,
            dir,
            concord,
        }
    }

    /// Pairs the server's calendar with the vdir folder `vdir`.
    fn pair_with(&self, vdir: &Path) {
        fs::create_dir_all(vdir).unwrap();
        let conn = self.concord.database().connect().unwrap();
        let (caldav, vdir_kind) = (StorageKind::Caldav, StorageKind::Vdir);
        let base = self.server.base_url();
        let account =
            state::add_account(&conn, "server", caldav, &base, Some(self.server.username()))
                .unwrap();
        let calendar = self.server.calendar_url();
        let a = state::put_storage(
            &conn,
            Some(account),
            caldav,
            ItemKind::Calendar,
            &calendar,
            None,
        )
        .unwrap();
        let path = vdir.to_str().unwrap();
        let b = state::put_storage(&conn, None, vdir_kind, ItemKind::Calendar, path, None).unwrap();
        state::add_pair(&conn, PAIR, a, b, Direction::TwoWay, ConflictPolicy::Ask).unwrap();
    }

    async fn sync(&self) -> Report {
        let credentials = Credentials::new(self.server.username(), self.server.password());
        sync_pair(&self.concord, PAIR, &credentials, &SyncOptions::default())
            .await
            .unwrap_or_else(|err| panic!("sync failed: {err}\n{}", self.server.stderr()))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn event(uid: &str, summary: &str, start: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Interop test//EN\r\nBEGIN:VEVENT\r\n\
         UID:{uid}\r\nDTSTAMP:20261101T100000Z\r\nDTSTART:{start}\r\nDURATION:PT1H\r\n\
         SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// A tool from the test venv, failing the test with its output if it fails.
fn venv_tool(name: &str, args: &[&str]) -> String {
    let venv = std::env::var_os("CONCORD_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv"));
    let program = venv.join("bin").join(name);
    let out = Command::new(&program)
        .args(args)
        .env("TZ", "UTC")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run `make test` to install it)", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} {args:?} failed:\n{text}");
    text
}

fn no_changes(report: &Report) -> bool {
    let c = &report.counts;
    c.create_a
        + c.create_b
        + c.update_a
        + c.update_b
        + c.delete_a
        + c.delete_b
        + c.merged
        + c.conflicts
        == 0
}

#[tokio::test]
async fn khal_lists_the_events_concord_wrote() {
    let setup = Setup::with_events(&[
        ("standup-1", "Team standup", "20261201T090000Z"),
        ("dentist-1", "Dentist", "20261202T140000Z"),
    ]);
    let vdir = setup.path("calendar");
    setup.pair_with(&vdir);
    let report = setup.sync().await;
    assert_eq!(report.counts.create_b, 2, "{report:?}");

    let config = setup.path("khal.conf");
    let khal_db = setup.path("khal.db");
    fs::write(
        &config,
        format!(
            "[calendars]\n[[work]]\npath = {}\n\n[sqlite]\npath = {}\n\n[locale]\n\
             timeformat = %H:%M\ndateformat = %Y-%m-%d\nlongdateformat = %Y-%m-%d\n\
             datetimeformat = %Y-%m-%d %H:%M\nlongdatetimeformat = %Y-%m-%d %H:%M\n\
             local_timezone = UTC\ndefault_timezone = UTC\n",
            vdir.display(),
            khal_db.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let listing = venv_tool("khal", &["-c", config, "list", "2026-12-01", "2026-12-03"]);
    assert!(listing.contains("09:00-10:00 Team standup"), "{listing}");
    assert!(listing.contains("14:00-15:00 Dentist"), "{listing}");
}

#[tokio::test]
async fn a_vdir_written_by_vdirsyncer_syncs_with_no_spurious_changes() {
    let setup = Setup::with_events(&[
        ("review-1", "Design review", "20261203T100000Z"),
        ("lunch-1", "Lunch with Ana", "20261204T120000Z"),
        ("trip-1", "Train to Lyon", "20261205T070000Z"),
    ]);
    let vdir = setup.path("from-vdirsyncer");
    fs::create_dir_all(&vdir).unwrap();
    let config = setup.path("vdirsyncer.conf");
    fs::write(
        &config,
        format!(
            "[general]\nstatus_path = \"{}\"\n\n[pair cal]\na = \"server\"\nb = \"folder\"\n\
             collections = null\n\n[storage server]\ntype = \"caldav\"\nurl = \"{}\"\n\
             username = \"{}\"\npassword = \"{}\"\n\n[storage folder]\ntype = \"filesystem\"\n\
             path = \"{}\"\nfileext = \".ics\"\n",
            setup.path("vdirsyncer-status").display(),
            setup.server.calendar_url(),
            setup.server.username(),
            setup.server.password(),
            vdir.display()
        ),
    )
    .unwrap();
    let config = config.to_str().unwrap();
    venv_tool("vdirsyncer", &["-c", config, "discover"]);
    venv_tool("vdirsyncer", &["-c", config, "sync"]);
    let files = fs::read_dir(&vdir).unwrap().count();
    assert_eq!(files, 3, "vdirsyncer wrote one file per event");

    setup.pair_with(&vdir);
    let first = setup.sync().await;
    assert!(no_changes(&first), "same items on both sides: {first:?}");
    assert_eq!(first.quarantined, 0, "{first:?}");
    let second = setup.sync().await;
    assert!(no_changes(&second), "{second:?}");
    // Item files only: the collection's `displayname` file (metadata sync) sits beside them.
    let items = fs::read_dir(&vdir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "ics"))
        })
        .count();
    assert_eq!(items, 3, "no item file added or renamed");
    // vdirsyncer still sees nothing to do after Concord looked at the folder.
    let again = venv_tool("vdirsyncer", &["-c", config, "sync"]);
    assert!(!again.contains("Copying"), "{again}");
}

//! The fixture of the calendar and contact sync tests: a fresh Radicale or Xandikos
//! collection paired with an empty vdir folder, curl as the other client, and helpers to read
//! both sides. Shared by `tests/sync_dav.rs` and `tests/sync_conflicts.rs`.

// Test harness: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use concord_core::Concord;
use concord_core::dav::Credentials;
use concord_core::sync::item::ItemKind;
use concord_core::sync::state::{self, ConflictPolicy, Direction, StorageKind};
use concord_core::sync::{Report, SyncOptions, sync_pair};
use tempfile::TempDir;

use crate::servers::{DavServer, ServerKind};

pub const PAIR: &str = "cal";

pub struct Fixture {
    pub server: DavServer,
    _data: TempDir,
    pub concord: Concord,
    pub vdir: PathBuf,
    pub credentials: Credentials,
    pub kind: ItemKind,
}

impl Fixture {
    pub fn calendar(server: ServerKind) -> Self {
        Self::new(server, ItemKind::Calendar)
    }

    pub fn new(server: ServerKind, kind: ItemKind) -> Self {
        let server = DavServer::start(server).expect("starting the server");
        let data = tempfile::tempdir().unwrap();
        let concord = Concord::open(data.path()).unwrap();
        let vdir = data.path().join("vdir");
        let credentials = Credentials::new(server.username(), server.password());
        let conn = concord.database().connect().unwrap();
        let (storage_kind, url) = match kind {
            ItemKind::Calendar => (StorageKind::Caldav, server.calendar_url()),
            ItemKind::Contact => (StorageKind::Carddav, server.address_book_url()),
        };
        let account = state::add_account(
            &conn,
            "server",
            storage_kind,
            &server.base_url(),
            Some(server.username()),
        )
        .unwrap();
        let a = state::put_storage(&conn, Some(account), storage_kind, kind, &url, None).unwrap();
        let b = state::put_storage(
            &conn,
            None,
            StorageKind::Vdir,
            kind,
            vdir.to_str().unwrap(),
            None,
        )
        .unwrap();
        state::add_pair(&conn, PAIR, a, b, Direction::TwoWay, ConflictPolicy::Ask).unwrap();
        fs::create_dir_all(&vdir).unwrap();
        Fixture {
            server,
            _data: data,
            concord,
            vdir,
            credentials,
            kind,
        }
    }

    pub async fn sync_with(&self, options: SyncOptions) -> Report {
        sync_pair(&self.concord, PAIR, &self.credentials, &options)
            .await
            .unwrap_or_else(|err| {
                panic!(
                    "{}: sync failed: {err}\n{}",
                    self.server.kind(),
                    self.server.stderr()
                )
            })
    }

    pub async fn sync(&self) -> Report {
        self.sync_with(SyncOptions::default()).await
    }

    /// A sync the person confirmed past the deletion guards (`--allow-deletes`).
    pub async fn sync_allowing_deletes(&self) -> Report {
        self.sync_with(SyncOptions {
            allow_deletes: true,
            ..SyncOptions::default()
        })
        .await
    }

    /// `count` events put on the server by another client (`e0.ics`, UID `e0`, ...), then
    /// synced to the folder.
    pub async fn synced_server_events(&self, count: usize) {
        for i in 0..count {
            self.server_put(&format!("e{i}.ics"), &event(&format!("e{i}"), "Event", "A"));
        }
        self.sync().await;
    }

    pub fn collection(&self) -> String {
        match self.kind {
            ItemKind::Calendar => self.server.calendar_path().to_owned(),
            ItemKind::Contact => self.server.address_book_path().to_owned(),
        }
    }

    /// curl, as another client would use the server.
    pub fn curl(&self, args: &[&str], path: &str) -> (u16, String) {
        let url = self.server.url(path);
        let out = Command::new("curl")
            .args([
                "-s",
                "-u",
                &format!("{}:{}", self.server.username(), self.server.password()),
            ])
            .args(["-w", "\n%{http_code}"])
            .args(args)
            .arg(&url)
            .output()
            .expect("running curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    pub fn server_put(&self, name: &str, body: &str) {
        let path = format!("{}{name}", self.collection());
        let content_type = match self.kind {
            ItemKind::Calendar => "Content-Type: text/calendar; charset=utf-8",
            ItemKind::Contact => "Content-Type: text/vcard; charset=utf-8",
        };
        let (status, body) = self.curl(
            &["-X", "PUT", "-H", content_type, "--data-binary", body],
            &path,
        );
        assert!((200..300).contains(&status), "PUT {path}: {status} {body}");
    }

    pub fn server_delete(&self, href: &str) {
        let (status, _) = self.curl(&["-X", "DELETE"], href);
        assert!((200..300).contains(&status), "DELETE {href}: {status}");
    }

    /// A sync token the server never issued, in place of the stored one.
    pub const UNKNOWN_TOKEN: &str = "http://invalid.example/token/42";

    /// Replaces the pair's stored side-A sync token with [`Fixture::UNKNOWN_TOKEN`].
    pub fn spoil_token(&self) {
        let conn = self.concord.database().connect().unwrap();
        conn.execute(
            "UPDATE pairs SET a_token = ?1",
            [format!("sync:{}", Self::UNKNOWN_TOKEN)],
        )
        .unwrap();
    }

    /// The server's items: href -> body.
    pub fn server_items(&self) -> Vec<(String, String)> {
        let (status, listing) = self.curl(
            &[
                "-X",
                "PROPFIND",
                "-H",
                "Depth: 1",
                "-H",
                "Content-Type: application/xml",
                "--data",
                "<propfind xmlns=\"DAV:\"><prop><getetag/></prop></propfind>",
            ],
            &self.collection(),
        );
        assert_eq!(status, 207, "{listing}");
        let ext = format!(".{}", self.kind.extension());
        let mut hrefs: Vec<String> = listing
            .split("href>")
            .filter_map(|part| part.split('<').next())
            .map(str::trim)
            .filter(|h| !h.is_empty() && h.ends_with(&ext))
            .map(|h| h.strip_prefix(&self.server.url("")).unwrap_or(h).to_owned())
            .collect();
        hrefs.sort();
        hrefs.dedup();
        hrefs
            .into_iter()
            .map(|href| {
                let (status, body) = self.curl(&[], &href);
                assert_eq!(status, 200, "GET {href}");
                (href, body)
            })
            .collect()
    }

    pub fn server_item(&self, uid: &str) -> Option<(String, String)> {
        self.server_items()
            .into_iter()
            .find(|(_, body)| body.contains(&format!("UID:{uid}")))
    }

    pub fn vdir_items(&self) -> Vec<(PathBuf, String)> {
        folder_items(&self.vdir, self.kind.extension())
    }

    pub fn vdir_item(&self, uid: &str) -> Option<(PathBuf, String)> {
        folder_item(&self.vdir, self.kind.extension(), uid)
    }

    pub fn vdir_write(&self, name: &str, body: &str) {
        write_atomically(&self.vdir.join(name), body);
    }

    pub fn conflicts(&self) -> Vec<(String, String)> {
        let conn = self.concord.database().connect().unwrap();
        let mut stmt = conn
            .prepare("SELECT uid, kind FROM conflicts ORDER BY uid")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }
}

/// The files of a vdir folder with `extension` ("ics", "vcf") and their text, by path; none
/// while the folder does not exist yet.
pub fn folder_items(dir: &Path, extension: &str) -> Vec<(PathBuf, String)> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .filter_map(|p| match fs::read_to_string(&p) {
            Ok(body) => Some((p, body)),
            // Replaced by a sync running now, between listing and reading.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => panic!("reading {}: {err}", p.display()),
        })
        .collect();
    out.sort();
    out
}

/// The item of `uid` in the vdir folder `dir`, if it is there.
pub fn folder_item(dir: &Path, extension: &str, uid: &str) -> Option<(PathBuf, String)> {
    folder_items(dir, extension)
        .into_iter()
        .find(|(_, body)| body.contains(&format!("UID:{uid}")))
}

pub fn write_atomically(path: &Path, body: &str) {
    let temp = path.with_extension("tmp");
    fs::write(&temp, body).unwrap();
    fs::rename(temp, path).unwrap();
}

pub fn event(uid: &str, summary: &str, location: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261101T100000Z\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\nSUMMARY:{summary}\r\nLOCATION:{location}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

pub fn todo(uid: &str, summary: &str, status: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Test//EN\r\nBEGIN:VTODO\r\nUID:{uid}\r\nDTSTAMP:20261101T100000Z\r\nDUE:20261205T170000Z\r\nSUMMARY:{summary}\r\nSTATUS:{status}\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
    )
}

pub fn summary_of(body: &str) -> String {
    body.lines()
        .find_map(|l| l.strip_prefix("SUMMARY:"))
        .unwrap_or("")
        .trim()
        .to_owned()
}

/// Runs an async test body against both servers.
#[macro_export]
macro_rules! both_servers {
    ($body:ident) => {
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn radicale() {
                super::$body(concord_e2e::servers::ServerKind::Radicale).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn xandikos() {
                super::$body(concord_e2e::servers::ServerKind::Xandikos).await;
            }
        }
    };
}

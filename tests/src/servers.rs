//! Real Radicale and Xandikos servers, each started fresh on a free loopback port in its own
//! temporary directory, with a user, a calendar and an address book, and killed on drop.
//!
//! The servers come from the Python venv `make test` creates: `$CONCORD_TEST_VENV`, by default
//! `<workspace>/.tools/venv` (pinned in the Makefile). Nothing here talks to anything but
//! 127.0.0.1.

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use tempfile::TempDir;

/// How long a server may take to start listening (Python start-up on a loaded machine).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the port is tried while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How long one set-up request to a started server may take.
const SETUP_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Starts tried when another process takes the free port between our pick and the server's bind.
const START_ATTEMPTS_MAX: u32 = 3;
/// How much of a dead server's stderr an error shows (its tail).
const STDERR_SHOWN_BYTES_MAX: usize = 4000;

/// The user every fixture server has.
pub const USERNAME: &str = "user";

/// Which real server a fixture runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerKind {
    /// Radicale 3: htpasswd (plain) authentication; the fixture creates the collections with
    /// MKCALENDAR and extended MKCOL.
    Radicale,
    /// Xandikos 0.4: `serve --defaults` creates the collections; no authentication (Xandikos
    /// only offers Basic auth over its own HTTPS), so any credentials are accepted.
    Xandikos,
}

impl ServerKind {
    pub const ALL: [ServerKind; 2] = [ServerKind::Radicale, ServerKind::Xandikos];

    pub fn name(self) -> &'static str {
        match self {
            ServerKind::Radicale => "radicale",
            ServerKind::Xandikos => "xandikos",
        }
    }

    /// The collection layout, fixed by how the fixture starts the server.
    fn layout(self) -> Layout {
        match self {
            ServerKind::Radicale => Layout {
                principal: "/user/",
                calendar_home: "/user/",
                calendar: "/user/calendar/",
                address_book_home: "/user/",
                address_book: "/user/contacts/",
            },
            ServerKind::Xandikos => Layout {
                principal: "/user/",
                calendar_home: "/user/calendars/",
                calendar: "/user/calendars/calendar/",
                address_book_home: "/user/contacts/",
                address_book: "/user/contacts/addressbook/",
            },
        }
    }
}

impl fmt::Display for ServerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, Copy)]
struct Layout {
    principal: &'static str,
    calendar_home: &'static str,
    calendar: &'static str,
    address_book_home: &'static str,
    address_book: &'static str,
}

/// Why a fixture server could not be started. `Debug` prints the readable message, so
/// `DavServer::start(..).expect(..)` in a test shows it as is.
pub struct FixtureError(String);

impl fmt::Display for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FixtureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FixtureError {}

/// A running server. Dropping it kills the process, waits for it, and removes its directory.
#[derive(Debug)]
pub struct DavServer {
    kind: ServerKind,
    child: Child,
    port: u16,
    password: String,
    layout: Layout,
    dir: TempDir,
}

impl DavServer {
    pub fn radicale() -> Result<Self, FixtureError> {
        Self::start(ServerKind::Radicale)
    }

    pub fn xandikos() -> Result<Self, FixtureError> {
        Self::start(ServerKind::Xandikos)
    }

    /// Starts a fresh server of `kind` and waits until its calendar and address book exist.
    pub fn start(kind: ServerKind) -> Result<Self, FixtureError> {
        let program = venv_bin(kind.name())?;
        let mut attempt = 1;
        loop {
            match Self::start_once(kind, &program) {
                Ok(server) => return Ok(server),
                Err(Start::PortTaken(err)) if attempt < START_ATTEMPTS_MAX => {
                    eprintln!("{kind}: port taken, starting again ({err})");
                    attempt += 1;
                }
                Err(Start::PortTaken(err) | Start::Failed(err)) => return Err(err),
            }
        }
    }

    fn start_once(kind: ServerKind, program: &Path) -> Result<Self, Start> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("concord-{kind}-"))
            .tempdir()
            .map_err(|err| failed(format!("{kind}: creating a temporary directory: {err}")))?;
        let port = free_port().map_err(|err| failed(format!("{kind}: finding a port: {err}")))?;
        let password = fresh_password();
        let child = spawn(kind, program, dir.path(), port, &password)?;
        // From here on, dropping `server` kills the child.
        let mut server = DavServer {
            kind,
            child,
            port,
            password,
            layout: kind.layout(),
            dir,
        };
        server.wait_until_listening()?;
        if kind == ServerKind::Radicale {
            server
                .create_radicale_collections()
                .map_err(Start::Failed)?;
        }
        Ok(server)
    }

    /// Stops the server as a crash or an outage looks to its clients: the process is killed
    /// and nothing listens on its port any more. Its storage stays for [`DavServer::start_again`].
    pub fn stop(&mut self) -> Result<(), FixtureError> {
        let kind = self.kind;
        let pid = self.child.id();
        self.child
            .kill()
            .map_err(|err| FixtureError(format!("{kind}: killing pid {pid}: {err}")))?;
        self.child
            .wait()
            .map_err(|err| FixtureError(format!("{kind}: waiting for pid {pid}: {err}")))?;
        Ok(())
    }

    /// Starts a stopped server again on the same port, with the same storage and password;
    /// returns once it listens. (Another process may have taken the port meanwhile: then this
    /// fails, saying so.)
    pub fn start_again(&mut self) -> Result<(), FixtureError> {
        let program = venv_bin(self.kind.name())?;
        let start = |start: Start| match start {
            Start::PortTaken(err) | Start::Failed(err) => err,
        };
        self.child = spawn(
            self.kind,
            &program,
            self.dir.path(),
            self.port,
            &self.password,
        )
        .map_err(start)?;
        self.wait_until_listening().map_err(start)
    }

    /// PUTs `ics` into the calendar as `NAME.ics`, as another client would; fails unless the
    /// server answers 2xx.
    pub fn put_into_calendar(&self, name: &str, ics: &str) -> Result<(), FixtureError> {
        let path = format!("{}{name}.ics", self.layout.calendar);
        let status = self.request_with("PUT", &path, "text/calendar; charset=utf-8", ics)?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(FixtureError(format!(
                "{}: PUT {path} answered {status}; its stderr:\n{}",
                self.kind,
                self.stderr()
            )))
        }
    }

    pub fn kind(&self) -> ServerKind {
        self.kind
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT/`
    pub fn base_url(&self) -> String {
        self.url("/")
    }

    /// The absolute URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn principal_path(&self) -> &'static str {
        self.layout.principal
    }

    pub fn calendar_home_path(&self) -> &'static str {
        self.layout.calendar_home
    }

    pub fn calendar_path(&self) -> &'static str {
        self.layout.calendar
    }

    pub fn address_book_home_path(&self) -> &'static str {
        self.layout.address_book_home
    }

    pub fn address_book_path(&self) -> &'static str {
        self.layout.address_book
    }

    pub fn calendar_home_url(&self) -> String {
        self.url(self.layout.calendar_home)
    }

    pub fn calendar_url(&self) -> String {
        self.url(self.layout.calendar)
    }

    pub fn address_book_url(&self) -> String {
        self.url(self.layout.address_book)
    }

    pub fn username(&self) -> &'static str {
        USERNAME
    }

    /// The user's password: fresh for every server.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Whether the server rejects wrong credentials (Radicale does, Xandikos has no auth).
    pub fn checks_credentials(&self) -> bool {
        self.kind == ServerKind::Radicale
    }

    /// The server's own directory (its storage, config and logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// What the server has written to stderr so far (its log), for a failing test's message.
    pub fn stderr(&self) -> String {
        read_tail(&self.dir.path().join("stderr"))
    }

    fn wait_until_listening(&mut self) -> Result<(), Start> {
        let kind = self.kind;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            // Only this server's own process can have started listening on its port...
            if let Ok(Some(status)) = self.child.try_wait() {
                let stderr = self.stderr();
                let message = format!(
                    "{kind} exited before listening on port {} ({status}); its stderr:\n{stderr}",
                    self.port
                );
                // ...unless another process took the port first.
                return Err(
                    if stderr.to_lowercase().contains("address already in use") {
                        Start::PortTaken(FixtureError(message))
                    } else {
                        failed(message)
                    },
                );
            }
            if TcpStream::connect_timeout(&address, POLL_INTERVAL).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(failed(format!(
                    "{kind} did not listen on port {} within {} s; its stderr:\n{}",
                    self.port,
                    START_TIMEOUT.as_secs(),
                    self.stderr()
                )));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Radicale creates the principal on the first authenticated request; the collections
    /// are made with MKCALENDAR (RFC 4791) and extended MKCOL (RFC 5689).
    fn create_radicale_collections(&self) -> Result<(), FixtureError> {
        let calendar = r#"<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:set><D:prop><D:displayname>Calendar</D:displayname></D:prop></D:set>
</C:mkcalendar>"#;
        let address_book = r#"<?xml version="1.0" encoding="utf-8"?>
<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav">
  <D:set><D:prop>
    <D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype>
    <D:displayname>Contacts</D:displayname>
  </D:prop></D:set>
</D:mkcol>"#;
        for (method, path, body) in [
            ("MKCALENDAR", self.layout.calendar, calendar),
            ("MKCOL", self.layout.address_book, address_book),
        ] {
            let status = self.request(method, path, body)?;
            if status != 201 {
                return Err(FixtureError(format!(
                    "radicale: {method} {path} answered {status}, not 201; its stderr:\n{}",
                    self.stderr()
                )));
            }
        }
        Ok(())
    }

    /// One authenticated HTTP/1.1 request with an XML body; returns the status code.
    fn request(&self, method: &str, path: &str, body: &str) -> Result<u16, FixtureError> {
        self.request_with(method, path, "application/xml; charset=utf-8", body)
    }

    /// One authenticated HTTP/1.1 request with a body of `content_type`; returns the status.
    fn request_with(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> Result<u16, FixtureError> {
        let what = format!("{}: {method} {path}", self.kind);
        let io = |err: std::io::Error| FixtureError(format!("{what}: {err}"));
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port)).map_err(io)?;
        stream
            .set_read_timeout(Some(SETUP_REQUEST_TIMEOUT))
            .map_err(io)?;
        let credentials = BASE64_STANDARD.encode(format!("{USERNAME}:{}", self.password));
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
             Authorization: Basic {credentials}\r\n\
             Content-Type: {content_type}\r\nContent-Length: {length}\r\n\
             Connection: close\r\n\r\n{body}",
            port = self.port,
            length = body.len(),
        );
        stream.write_all(request.as_bytes()).map_err(io)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).map_err(io)?;
        let response = String::from_utf8_lossy(&response);
        // "HTTP/1.1 201 Created"
        response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| FixtureError(format!("{what}: not an HTTP answer: {response:?}")))
    }
}

impl Drop for DavServer {
    fn drop(&mut self) {
        // Kill and reap, so no server outlives its test; the temp dir goes after this.
        if let Err(err) = self.child.kill() {
            eprintln!("{}: killing pid {}: {err}", self.kind, self.child.id());
        }
        if let Err(err) = self.child.wait() {
            eprintln!("{}: waiting for pid {}: {err}", self.kind, self.child.id());
        }
    }
}

enum Start {
    /// The server lost the race for its port to another process; worth another try.
    PortTaken(FixtureError),
    Failed(FixtureError),
}

fn failed(message: String) -> Start {
    Start::Failed(FixtureError(message))
}

/// The venv the servers are installed in.
pub fn venv_dir() -> PathBuf {
    match std::env::var_os("CONCORD_TEST_VENV") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv"),
    }
}

fn venv_bin(name: &str) -> Result<PathBuf, FixtureError> {
    let venv = venv_dir();
    let program = venv.join("bin").join(name);
    if program.is_file() {
        Ok(program)
    } else {
        Err(FixtureError(format!(
            "{name} is not installed at {}: run `make test` (it creates the venv with Radicale \
             and Xandikos), or point CONCORD_TEST_VENV at a venv that has them",
            program.display()
        )))
    }
}

/// A port nothing listens on right now. Another process may take it before the server binds;
/// [`DavServer::start`] tries again when that happens.
fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

fn fresh_password() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    format!("pw-{}-{nanos}", std::process::id())
}

/// The server's log `name` in `dir`, appended to (a server started again keeps its first log).
fn log_file(dir: &Path, name: &str) -> Result<File, Start> {
    File::options()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .map_err(|err| failed(format!("opening its {name} log: {err}")))
}

/// Starts the server process of `kind` on `port`, its storage, config and logs in `dir`.
fn spawn(
    kind: ServerKind,
    program: &Path,
    dir: &Path,
    port: u16,
    password: &str,
) -> Result<Child, Start> {
    let mut command = Command::new(program);
    match kind {
        ServerKind::Radicale => {
            let config = radicale_config(dir, port, password)
                .map_err(|err| failed(format!("radicale: writing its config: {err}")))?;
            command.arg("--config").arg(config);
        }
        ServerKind::Xandikos => {
            command
                .args(["serve", "--defaults", "--no-detect-systemd"])
                .arg("--directory")
                .arg(dir.join("data"))
                .arg("--state-dir")
                .arg(dir.join("state"))
                .args(["--listen-address", "127.0.0.1", "--port"])
                .arg(port.to_string());
        }
    }
    let stdout = log_file(dir, "stdout")?;
    let stderr = log_file(dir, "stderr")?;
    command
        .current_dir(dir)
        .env("HOME", dir)
        .env("XDG_DATA_HOME", dir.join("state"))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|err| failed(format!("{kind}: starting {}: {err}", program.display())))
}

fn radicale_config(dir: &Path, port: u16, password: &str) -> std::io::Result<PathBuf> {
    let users = dir.join("users");
    fs::write(&users, format!("{USERNAME}:{password}\n"))?;
    let config = dir.join("config");
    fs::write(
        &config,
        format!(
            "[server]\nhosts = 127.0.0.1:{port}\n\
             [auth]\ntype = htpasswd\nhtpasswd_filename = {users}\nhtpasswd_encryption = plain\n\
             delay = 0\n\
             [rights]\ntype = owner_only\n\
             [storage]\nfilesystem_folder = {storage}\n\
             [web]\ntype = none\n\
             [logging]\nlevel = warning\n",
            users = users.display(),
            storage = dir.join("collections").display(),
        ),
    )?;
    Ok(config)
}

fn read_tail(path: &Path) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(STDERR_SHOWN_BYTES_MAX);
            String::from_utf8_lossy(bytes.get(start..).unwrap_or_default()).into_owned()
        }
        Err(err) => format!("(could not read {}: {err})", path.display()),
    }
}

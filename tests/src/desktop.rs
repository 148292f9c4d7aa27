//! The real app under test: launched in a desktop session with a fresh data directory, seen the
//! way a person's desktop sees it: its tray on the session bus (StatusNotifierItem + dbusmenu),
//! its window on the X server, its pages through WebDriver (tauri-driver + WebKitWebDriver).
//!
//! Everything here needs the session `tests/desktop-session.sh` provides (Xvfb, a session bus);
//! [`require_session`] fails a test with that hint when it is missing. Every process started
//! here is killed when its guard drops, so a failing test leaves nothing running.

use std::collections::HashMap;
use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio::sync::{Mutex, MutexGuard};
use x11rb::connection::Connection as _;
use x11rb::protocol::xproto::{
    AtomEnum, ClientMessageEvent, ConnectionExt as _, EventMask, MapState, Window,
};
use x11rb::rust_connection::RustConnection;
use zbus::zvariant::{OwnedObjectPath, OwnedValue, Value};

/// How long the app may take to put its tray on the bus or its window on screen. WebKitGTK
/// under Xvfb on a busy 2-core machine takes a few seconds; this is far above that.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a change (a click, a close) may take to show.
pub const CHANGE_TIMEOUT: Duration = Duration::from_secs(15);
const POLL_INTERVAL: Duration = Duration::from_millis(100);

const SESSION_HINT: &str = "the desktop tests need a desktop session: run them inside \
     tests/desktop-session.sh (`make test` does), e.g. \
     tests/desktop-session.sh cargo test -p concord-e2e --test desktop";

/// The app's tray id (`TrayIconBuilder::with_id`), the window's title.
pub const WINDOW_TITLE: &str = "Concord";
/// The first line of the tray menu with an empty configuration.
pub const EMPTY_STATUS_LINE: &str = "Idle: nothing configured yet";

/// Fails the test, with the way to run it, outside the session `tests/desktop-session.sh`
/// makes (it sets `CONCORD_E2E_SESSION=1`). A person's own desktop is not enough: a Concord
/// running there would take the single-instance name, and the tests toggle autostart in HOME.
pub fn require_session() {
    if std::env::var_os("CONCORD_E2E_SESSION").is_none_or(|v| v != "1") {
        panic!("CONCORD_E2E_SESSION is not 1: {SESSION_HINT}");
    }
    for variable in ["DISPLAY", "DBUS_SESSION_BUS_ADDRESS"] {
        if std::env::var_os(variable).is_none_or(|v| v.is_empty()) {
            panic!("{variable} is not set: {SESSION_HINT}");
        }
    }
}

/// The app is single-instance per session bus: tests that launch it take turns.
pub async fn one_app_at_a_time() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::const_new(());
    TURN.lock().await
}

/// The built app: `$CONCORD_APP`, else `target/debug/concord-app` of this workspace.
pub fn app_binary() -> PathBuf {
    let path = std::env::var_os("CONCORD_APP")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug/concord-app"));
    if !path.is_file() {
        panic!(
            "the app is not built at {}: run `npm --prefix ui run build && cargo build -p \
             concord-app` first, or set CONCORD_APP",
            path.display()
        );
    }
    path
}

/// The built command line: `$CONCORD_CLI`, else `target/debug/concord` of this workspace.
pub fn cli_binary() -> PathBuf {
    let path = std::env::var_os("CONCORD_CLI")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("debug/concord"));
    if !path.is_file() {
        panic!(
            "concord is not built at {}: run `cargo build -p concord-cli` first, or set \
             CONCORD_CLI",
            path.display()
        );
    }
    path
}

/// Runs `concord` on `data_dir` as a person types it, with `stdin` and the extra environment
/// `env`; returns its output, whatever its exit.
pub fn run_concord(
    data_dir: &Path,
    args: &[&str],
    stdin: &str,
    env: &[(&str, &str)],
) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new(cli_binary())
        .env("CONCORD_DATA_DIR", data_dir)
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start concord");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.as_bytes())
            .expect("write concord's input");
    }
    child.wait_with_output().expect("wait for concord")
}

/// [`run_concord`] that must succeed: fails the test with concord's error otherwise, and
/// returns what it printed.
pub fn concord_ok(data_dir: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> String {
    let out = run_concord(data_dir, args, stdin, env);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "concord {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Adds the CalDAV account `account` on `server` with `concord account add` (its password goes
/// to the session's keyring) and pairs the server's calendar with the folder `folder` as the
/// pair `pair` with `concord pair add`, as a person types them.
pub fn pair_calendar_with_folder(
    data_dir: &Path,
    server: &crate::servers::DavServer,
    account: &str,
    pair: &str,
    folder: &Path,
) {
    let base_url = server.base_url();
    let add_account = [
        "account",
        "add",
        account,
        "--url",
        &base_url,
        "--username",
        server.username(),
        "--password-stdin",
    ];
    concord_ok(
        data_dir,
        &add_account,
        &format!("{}\n", server.password()),
        &[],
    );
    let a = format!("{account}:{}", server.calendar_url());
    let b = format!("dir:{}", folder.display());
    concord_ok(
        data_dir,
        &["pair", "add", pair, "--a", &a, "--b", &b],
        "",
        &[],
    );
}

/// Polls `check` until it is `Ok`, failing with its last error after `timeout`.
pub async fn until<T>(
    what: &str,
    timeout: Duration,
    check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    match poll(timeout, check).await {
        Ok(value) => value,
        Err(error) => panic!("not {what} after {timeout:?}: {error}"),
    }
}

/// Polls `check` until it is `Ok`; its last error once `timeout` has passed.
async fn poll<T>(
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> Result<T, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(value) => return Ok(value),
            Err(error) if Instant::now() >= deadline => return Err(error),
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}

/// The process id of the app WebDriver launched on `data_dir`: the process running
/// [`app_binary`] with `CONCORD_DATA_DIR` set to it (tauri-driver passes its environment on), so
/// a test can watch that app's tray too.
pub fn app_pid_on(data_dir: &Path) -> Result<u32, String> {
    let binary = app_binary();
    let binary = std::fs::canonicalize(&binary).unwrap_or(binary);
    let wanted = format!("CONCORD_DATA_DIR={}", data_dir.display());
    let processes = std::fs::read_dir("/proc").map_err(|e| format!("cannot list /proc: {e}"))?;
    for entry in processes.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        // Processes of other users, or gone meanwhile, cannot be read: not ours.
        let Ok(exe) = std::fs::read_link(entry.path().join("exe")) else {
            continue;
        };
        if exe != binary {
            continue;
        }
        let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|v| v == wanted.as_bytes()) {
            return Ok(pid);
        }
    }
    Err(format!("no {} running with {wanted} yet", binary.display()))
}

fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

/// A child process in its own process group, the whole group killed (and the child reaped) when
/// dropped, whatever happened in between: tauri-driver's WebKitWebDriver and the app it starts,
/// and the app's WebKit processes, go with it.
#[derive(Debug)]
pub struct Process {
    child: Child,
    name: &'static str,
}

impl Process {
    pub fn spawn(name: &'static str, command: &mut Command) -> Self {
        match command.process_group(0).spawn() {
            Ok(child) => Self { child, name },
            Err(error) => panic!("cannot start {name} ({command:?}): {error}"),
        }
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        match self.child.try_wait() {
            Ok(status) => status,
            Err(error) => panic!("cannot check on {}: {error}", self.name),
        }
    }

    /// Waits up to `timeout` for the process to end.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // The group outlives its leader if the leader exited first; `kill` reaches it anyway.
        let group = format!("-{}", self.child.id());
        let killed = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        if !killed.is_ok_and(|status| status.success()) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A running `concord-app` with its own fresh data directory; its stderr goes to a log file
/// that [`RunningApp::fail`] shows.
pub struct RunningApp {
    pub process: Process,
    data_dir: TempDir,
}

impl RunningApp {
    /// Starts the app on a fresh, empty data directory, with `args` (e.g. `--hidden`).
    pub fn start(args: &[&str]) -> Self {
        require_session();
        let data_dir = match tempfile::Builder::new().prefix("concord-app-").tempdir() {
            Ok(dir) => dir,
            Err(error) => panic!("cannot create a data directory: {error}"),
        };
        let process = launch(data_dir.path(), args, "concord-app");
        Self { process, data_dir }
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// Launches the app a second time on the same data directory (its log goes to `second.log`).
    pub fn launch_again(&self, args: &[&str]) -> Process {
        launch(self.data_dir(), args, "a second concord-app")
    }

    /// What the app (and a second launch) wrote to stderr.
    pub fn log(&self) -> String {
        ["app.log", "second.log"]
            .iter()
            .filter_map(|name| {
                let text = std::fs::read_to_string(self.data_dir().join(name)).ok()?;
                Some(format!("--- {name} ---\n{text}"))
            })
            .collect()
    }

    /// Fails the test with `message` and the app's log.
    pub fn fail(&self, message: impl std::fmt::Display) -> ! {
        panic!("{message}\n{}", self.log())
    }

    /// Fails unless the app is still running.
    pub fn assert_running(&mut self, when: &str) {
        if let Some(status) = self.process.exited() {
            self.fail(format!("the app exited {when} ({status})"));
        }
    }

    /// The app's tray on the session bus, once it is there.
    pub async fn tray(&mut self) -> Tray {
        let pid = self.pid();
        let what = "its StatusNotifierItem is on the session bus";
        self.eventually(what, STARTUP_TIMEOUT, async || Tray::find(pid).await)
            .await
    }

    /// The app's settings window on the X server, once GTK has created it.
    pub async fn window(&mut self) -> AppWindow {
        let pid = self.pid();
        let what = format!("its window titled {WINDOW_TITLE:?} exists");
        self.eventually(&what, STARTUP_TIMEOUT, async || AppWindow::find(pid))
            .await
    }

    /// Polls `check` until it returns `Ok`, or fails the test with its last error and the log.
    pub async fn eventually<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl AsyncFnMut() -> Result<T, String>,
    ) -> T {
        let polled = poll(timeout, async || {
            self.assert_running(&format!("while waiting until {what}"));
            check().await
        })
        .await;
        match polled {
            Ok(value) => value,
            Err(error) => self.fail(format!("not {what} after {timeout:?}: {error}")),
        }
    }
}

fn launch(data_dir: &Path, args: &[&str], name: &'static str) -> Process {
    let log_name = if name == "concord-app" {
        "app.log"
    } else {
        "second.log"
    };
    let log = match File::create(data_dir.join(log_name)) {
        Ok(file) => file,
        Err(error) => panic!(
            "cannot create the app's log in {}: {error}",
            data_dir.display()
        ),
    };
    Process::spawn(
        name,
        Command::new(app_binary())
            .arg("--data-dir")
            .arg(data_dir)
            .args(args)
            .env("CONCORD_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log),
    )
}

/// One line of the tray menu as the desktop sees it (dbusmenu `GetLayout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuEntry {
    pub id: i32,
    pub label: String,
    pub enabled: bool,
    pub visible: bool,
    pub separator: bool,
}

/// The app's StatusNotifierItem and its dbusmenu, found by the app's process id.
pub struct Tray {
    connection: zbus::Connection,
    bus_name: String,
    item_path: String,
    menu_path: OwnedObjectPath,
}

const ITEM_INTERFACE: &str = "org.kde.StatusNotifierItem";
const MENU_INTERFACE: &str = "com.canonical.dbusmenu";
const PROPERTIES_INTERFACE: &str = "org.freedesktop.DBus.Properties";
/// Where libayatana-appindicator exports its items.
const ITEMS_ROOT: &str = "/org/ayatana/NotificationItem";

impl Tray {
    /// Looks once: the bus connections owned by `pid`, then an item under [`ITEMS_ROOT`].
    pub async fn find(pid: u32) -> Result<Self, String> {
        let connection = zbus::Connection::session()
            .await
            .map_err(|e| format!("cannot connect to the session bus: {e}"))?;
        let bus = zbus::fdo::DBusProxy::new(&connection)
            .await
            .map_err(|e| e.to_string())?;
        let names = bus.list_names().await.map_err(|e| e.to_string())?;
        let mut owned_by_app = Vec::new();
        for name in names.into_iter().filter(|n| n.starts_with(':')) {
            let owner = bus.get_connection_unix_process_id(name.as_ref()).await;
            if owner.is_ok_and(|owner| owner == pid) {
                owned_by_app.push(name.to_string());
            }
        }
        if owned_by_app.is_empty() {
            return Err(format!(
                "pid {pid} has no connection to the session bus yet"
            ));
        }
        for bus_name in owned_by_app {
            let Ok(xml) = introspect(&connection, &bus_name, ITEMS_ROOT).await else {
                continue;
            };
            for node in child_nodes(&xml) {
                let item_path = format!("{ITEMS_ROOT}/{node}");
                let menu = get_property(&connection, &bus_name, &item_path, ITEM_INTERFACE, "Menu")
                    .await
                    .and_then(|v| OwnedObjectPath::try_from(v).map_err(|e| e.to_string()));
                if let Ok(menu_path) = menu {
                    return Ok(Self {
                        connection,
                        bus_name,
                        item_path,
                        menu_path,
                    });
                }
            }
        }
        Err(format!(
            "pid {pid} exports no {ITEM_INTERFACE} under {ITEMS_ROOT} yet"
        ))
    }

    /// A string property of the StatusNotifierItem (`Status`, `IconName`, `Id`, ...).
    pub async fn item_property(&self, name: &str) -> Result<String, String> {
        let value = get_property(
            &self.connection,
            &self.bus_name,
            &self.item_path,
            ITEM_INTERFACE,
            name,
        )
        .await?;
        String::try_from(value).map_err(|e| format!("{ITEM_INTERFACE}.{name}: {e}"))
    }

    /// The image the tray shows now: libayatana gets it as a PNG file (`IconName`, a path, or
    /// a name in `IconThemePath`), which the app rewrites on every change.
    pub async fn icon(&self) -> Result<Vec<u8>, String> {
        let name = self.item_property("IconName").await?;
        let path = if Path::new(&name).is_absolute() {
            PathBuf::from(&name)
        } else {
            let theme_path = self.item_property("IconThemePath").await?;
            Path::new(&theme_path).join(format!("{name}.png"))
        };
        std::fs::read(&path).map_err(|e| format!("the tray icon {}: {e}", path.display()))
    }

    /// `Ok` if the tray shows the shipped `icons/tray-STATE.png` (one of
    /// [`TRAY_ICON_STATES`]), pixel for pixel; else which icon it shows.
    pub async fn icon_is(&self, state: &str) -> Result<(), String> {
        let shown = decode_png(&self.icon().await?)?;
        if shown == shipped_tray_icon(state)? {
            return Ok(());
        }
        let other = TRAY_ICON_STATES
            .iter()
            .find(|other| shipped_tray_icon(other).is_ok_and(|icon| icon == shown));
        Err(match other {
            Some(other) => format!("it shows the {other} icon, not the {state} one"),
            None => format!(
                "it shows none of the shipped icons ({}x{}), not the {state} one",
                shown.width, shown.height
            ),
        })
    }

    /// The first line of the menu (the status line), once there is one.
    pub async fn status_line(&self) -> Result<String, String> {
        let labels = self.labels().await?;
        labels
            .into_iter()
            .next()
            .ok_or_else(|| "the menu is empty".to_owned())
    }

    /// The menu's top-level entries, in order.
    pub async fn menu(&self) -> Result<Vec<MenuEntry>, String> {
        type Layout = (i32, HashMap<String, OwnedValue>, Vec<OwnedValue>);
        let reply = self
            .connection
            .call_method(
                Some(self.bus_name.as_str()),
                &self.menu_path,
                Some(MENU_INTERFACE),
                "GetLayout",
                &(0i32, 1i32, Vec::<String>::new()),
            )
            .await
            .map_err(|e| format!("GetLayout: {e}"))?;
        let (_revision, (_root, _props, children)): (u32, Layout) = reply
            .body()
            .deserialize()
            .map_err(|e| format!("GetLayout reply: {e}"))?;
        children.iter().map(|child| menu_entry(child)).collect()
    }

    /// The labels of the visible, non-separator entries, in order.
    pub async fn labels(&self) -> Result<Vec<String>, String> {
        Ok(self
            .menu()
            .await?
            .into_iter()
            .filter(|e| e.visible && !e.separator)
            .map(|e| e.label)
            .collect())
    }

    /// Activates the entry labelled `label`, as a click in the panel does.
    pub async fn click(&self, label: &str) -> Result<(), String> {
        let menu = self.menu().await?;
        let Some(entry) = menu.iter().find(|e| e.label == label) else {
            return Err(format!("no menu entry {label:?} in {menu:?}"));
        };
        self.connection
            .call_method(
                Some(self.bus_name.as_str()),
                &self.menu_path,
                Some(MENU_INTERFACE),
                "Event",
                &(entry.id, "clicked", Value::I32(0), 0u32),
            )
            .await
            .map_err(|e| format!("Event({}, clicked) on {label:?}: {e}", entry.id))?;
        Ok(())
    }
}

/// The states the app has a tray icon for: `icons/tray-STATE.png`.
pub const TRAY_ICON_STATES: [&str; 5] = ["idle", "syncing", "attention", "error", "paused"];

/// An image as RGBA pixels. (The app hands libayatana the shipped PNG decoded; it writes a PNG
/// of its own, so the pixels compare and the bytes do not.)
#[derive(PartialEq, Eq)]
struct Pixels {
    width: u32,
    height: u32,
    rgba: Vec<u8>,
}

/// `icons/tray-STATE.png` of this workspace, decoded.
fn shipped_tray_icon(state: &str) -> Result<Pixels, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../icons/tray-{state}.png"));
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    decode_png(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn decode_png(bytes: &[u8]) -> Result<Pixels, String> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| format!("not a PNG: {e}"))?;
    let size = reader.output_buffer_size().ok_or("the PNG is too large")?;
    let mut rgba = vec![0; size];
    let frame = reader
        .next_frame(&mut rgba)
        .map_err(|e| format!("a broken PNG: {e}"))?;
    if frame.color_type != png::ColorType::Rgba {
        return Err(format!("a PNG in {:?}, not RGBA", frame.color_type));
    }
    rgba.truncate(frame.buffer_size());
    Ok(Pixels {
        width: frame.width,
        height: frame.height,
        rgba,
    })
}

/// How long a D-Bus call may take while searching: some of the app's connections (GTK's,
/// WebKit's) never answer calls they do not serve, and the bus's own timeout is 25 s.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// `call` within [`LOOKUP_TIMEOUT`].
async fn within<T>(what: &str, call: impl Future<Output = zbus::Result<T>>) -> Result<T, String> {
    match tokio::time::timeout(LOOKUP_TIMEOUT, call).await {
        Ok(reply) => reply.map_err(|e| format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: no answer in {LOOKUP_TIMEOUT:?}")),
    }
}

async fn introspect(
    connection: &zbus::Connection,
    bus_name: &str,
    path: &str,
) -> Result<String, String> {
    let interface = Some("org.freedesktop.DBus.Introspectable");
    let call = connection.call_method(Some(bus_name), path, interface, "Introspect", &());
    let reply = within(&format!("Introspect {path} on {bus_name}"), call).await?;
    reply.body().deserialize().map_err(|e| e.to_string())
}

/// The `<node name="...">` children of an introspection document.
fn child_nodes(xml: &str) -> Vec<&str> {
    xml.split("<node name=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect()
}

async fn get_property(
    connection: &zbus::Connection,
    bus_name: &str,
    path: &str,
    interface: &str,
    name: &str,
) -> Result<OwnedValue, String> {
    let body = (interface, name);
    let call = connection.call_method(
        Some(bus_name),
        path,
        Some(PROPERTIES_INTERFACE),
        "Get",
        &body,
    );
    let reply = within(&format!("{interface}.{name} of {bus_name}"), call).await?;
    reply
        .body()
        .deserialize()
        .map_err(|e| format!("{interface}.{name}: {e}"))
}

/// One `(ia{sv}av)` layout node; a variant around it is unwrapped.
fn menu_entry(value: &Value<'_>) -> Result<MenuEntry, String> {
    let fields = match unwrap_variant(value) {
        Value::Structure(node) => node.fields(),
        other => return Err(format!("a menu layout node is not a structure: {other:?}")),
    };
    let [Value::I32(id), Value::Dict(properties), ..] = fields else {
        return Err(format!(
            "a menu layout node is not (ia{{sv}}av): {fields:?}"
        ));
    };
    let mut entry = MenuEntry {
        id: *id,
        label: String::new(),
        enabled: true,
        visible: true,
        separator: false,
    };
    for (key, value) in properties.iter() {
        match (unwrap_variant(key), unwrap_variant(value)) {
            (Value::Str(key), Value::Str(text)) if key.as_str() == "label" => {
                entry.label = text.to_string();
            }
            (Value::Str(key), Value::Str(kind)) if key.as_str() == "type" => {
                entry.separator = kind.as_str() == "separator";
            }
            (Value::Str(key), Value::Bool(on)) if key.as_str() == "enabled" => entry.enabled = *on,
            (Value::Str(key), Value::Bool(on)) if key.as_str() == "visible" => entry.visible = *on,
            _ => {}
        }
    }
    Ok(entry)
}

fn unwrap_variant<'a, 'v>(value: &'a Value<'v>) -> &'a Value<'v> {
    match value {
        Value::Value(inner) => unwrap_variant(inner),
        other => other,
    }
}

/// The app's top-level window on the X server (found by `_NET_WM_PID` and title).
pub struct AppWindow {
    connection: RustConnection,
    window: Window,
}

impl AppWindow {
    /// Looks once among the top-level windows: GTK keeps a hidden leader window for the app
    /// too, so the title tells the settings window apart.
    pub fn find(pid: u32) -> Result<Self, String> {
        let (connection, screen) =
            x11rb::connect(None).map_err(|e| format!("cannot connect to the X server: {e}"))?;
        let root = connection
            .setup()
            .roots
            .get(screen)
            .ok_or("the X server has no such screen")?
            .root;
        let children = connection
            .query_tree(root)
            .map_err(x11_error)?
            .reply()
            .map_err(x11_error)?
            .children;
        let mut found = Self {
            connection,
            window: x11rb::NONE,
        };
        let pid_atom = atom(&found.connection, "_NET_WM_PID")?;
        for window in children {
            found.window = window;
            if found.cardinal(pid_atom)? == Some(pid) && found.title()? == WINDOW_TITLE {
                return Ok(found);
            }
        }
        Err(format!(
            "pid {pid} has no top-level X window titled {WINDOW_TITLE:?}"
        ))
    }

    fn cardinal(&self, property: u32) -> Result<Option<u32>, String> {
        let reply = self
            .connection
            .get_property(false, self.window, property, AtomEnum::CARDINAL, 0, 1)
            .map_err(x11_error)?
            .reply()
            .map_err(x11_error)?;
        Ok(reply.value32().and_then(|mut values| values.next()))
    }

    pub fn title(&self) -> Result<String, String> {
        let utf8 = atom(&self.connection, "UTF8_STRING")?;
        let name = atom(&self.connection, "_NET_WM_NAME")?;
        let reply = self
            .connection
            .get_property(false, self.window, name, utf8, 0, 1024)
            .map_err(x11_error)?
            .reply()
            .map_err(x11_error)?;
        Ok(String::from_utf8_lossy(&reply.value).into_owned())
    }

    /// Whether the window is on screen (mapped, with all its ancestors).
    pub fn is_viewable(&self) -> Result<bool, String> {
        let attributes = self
            .connection
            .get_window_attributes(self.window)
            .map_err(x11_error)?
            .reply()
            .map_err(x11_error)?;
        Ok(attributes.map_state == MapState::VIEWABLE)
    }

    /// `Ok` if the window is on screen (`shown`) or not (`!shown`), else what it is.
    pub fn shown_is(&self, shown: bool) -> Result<(), String> {
        match (self.is_viewable()?, shown) {
            (true, true) | (false, false) => Ok(()),
            (true, false) => Err("it is on screen".to_owned()),
            (false, true) => Err("it is hidden".to_owned()),
        }
    }

    /// Whether the keyboard focus is in this window (or one of its children).
    pub fn has_focus(&self) -> Result<bool, String> {
        let mut focus = self
            .connection
            .get_input_focus()
            .map_err(x11_error)?
            .reply()
            .map_err(x11_error)?
            .focus;
        // Walk up from the focused window: GTK may focus a child of the top-level window.
        for _ in 0..32 {
            if focus == self.window {
                return Ok(true);
            }
            let tree = self
                .connection
                .query_tree(focus)
                .map_err(x11_error)?
                .reply()
                .map_err(x11_error)?;
            if tree.parent == x11rb::NONE || tree.parent == tree.root {
                return Ok(false);
            }
            focus = tree.parent;
        }
        Ok(false)
    }

    /// Asks the window to close, as a window manager's close button does (`WM_DELETE_WINDOW`).
    pub fn request_close(&self) -> Result<(), String> {
        let protocols = atom(&self.connection, "WM_PROTOCOLS")?;
        let delete = atom(&self.connection, "WM_DELETE_WINDOW")?;
        let event = ClientMessageEvent::new(32, self.window, protocols, [delete, 0, 0, 0, 0]);
        self.connection
            .send_event(false, self.window, EventMask::NO_EVENT, event)
            .map_err(x11_error)?;
        self.connection.flush().map_err(x11_error)?;
        Ok(())
    }
}

fn atom(connection: &RustConnection, name: &str) -> Result<u32, String> {
    Ok(connection
        .intern_atom(false, name.as_bytes())
        .map_err(x11_error)?
        .reply()
        .map_err(x11_error)?
        .atom)
}

fn x11_error(error: impl std::fmt::Display) -> String {
    format!("X11: {error}")
}

/// tauri-driver on free loopback ports, in front of WebKitWebDriver, launching the app with
/// `CONCORD_DATA_DIR` set to a fresh directory. Killed (with the app it started) on drop.
pub struct WebDriver {
    pub url: String,
    pub data_dir: TempDir,
    _driver: Process,
}

impl WebDriver {
    pub async fn start() -> Self {
        require_session();
        let driver = tauri_driver();
        let data_dir = match tempfile::Builder::new()
            .prefix("concord-webdriver-")
            .tempdir()
        {
            Ok(dir) => dir,
            Err(error) => panic!("cannot create a data directory: {error}"),
        };
        let (port, native_port) = (free_port(), free_port());
        let mut process = Process::spawn(
            "tauri-driver",
            Command::new(&driver)
                .arg("--port")
                .arg(port.to_string())
                .arg("--native-port")
                .arg(native_port.to_string())
                .env("CONCORD_DATA_DIR", data_dir.path())
                .stdin(Stdio::null()),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        while !status_ready(port).await {
            if let Some(status) = process.exited() {
                panic!(
                    "tauri-driver ({}) exited at start: {status}",
                    driver.display()
                );
            }
            if Instant::now() >= deadline {
                panic!("tauri-driver did not answer {url}/status within {STARTUP_TIMEOUT:?}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        Self {
            url,
            data_dir,
            _driver: process,
        }
    }

    /// The tray of the app a [`WebDriver::session`] launched, found by its process.
    pub async fn tray(&self) -> Tray {
        let data_dir = self.data_dir.path();
        let pid = until("the app is running", STARTUP_TIMEOUT, async || {
            app_pid_on(data_dir)
        })
        .await;
        until(
            "the app's tray is on the bus",
            STARTUP_TIMEOUT,
            async || Tray::find(pid).await,
        )
        .await
    }

    /// A WebDriver session on the app: capabilities exactly `{"tauri:options": {"application"}}`
    /// (anything more, such as `browserName`, fails to match WebKitWebDriver).
    pub async fn session(&self) -> fantoccini::Client {
        let app = app_binary();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "tauri:options".to_owned(),
            serde_json::json!({ "application": app }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match fantoccini::ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
        {
            Ok(client) => client,
            Err(error) => panic!(
                "cannot start a WebDriver session on {}: {error}",
                app.display()
            ),
        }
    }
}

/// The element `css` finds in the window, waiting up to `timeout` for it to appear; fails the
/// test naming what was looked for.
pub async fn element(
    client: &fantoccini::Client,
    css: &str,
    timeout: Duration,
) -> fantoccini::elements::Element {
    match client
        .wait()
        .at_most(timeout)
        .for_element(fantoccini::Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(error) => panic!("no {css} in the settings window after {timeout:?}: {error}"),
    }
}

/// Clicks the element `css` finds once it is there (within `timeout`).
pub async fn click(client: &fantoccini::Client, css: &str, timeout: Duration) {
    let target = element(client, css, timeout).await;
    if let Err(error) = target.click().await {
        panic!("cannot click {css}: {error}");
    }
}

/// Waits up to `timeout` until the element `css` finds has attribute `name` equal to
/// `expected`; fails with what it was instead. (Attributes, like `textContent`, are read
/// whether or not WebKitWebDriver counts the element as displayed.)
pub async fn attribute_becomes(
    client: &fantoccini::Client,
    css: &str,
    name: &str,
    expected: &str,
    timeout: Duration,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let found = client.find(fantoccini::Locator::Css(css)).await;
        let value = match found {
            Ok(element) => element.attr(name).await.map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if value.as_ref().is_ok_and(|v| v.as_deref() == Some(expected)) {
            return;
        }
        if Instant::now() >= deadline {
            panic!("{css} [{name}] is not {expected:?} after {timeout:?}: {value:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// The text of the element `css` finds (its `textContent`, displayed or not), once it contains
/// `expected`, within `timeout`.
pub async fn text_containing(
    client: &fantoccini::Client,
    css: &str,
    expected: &str,
    timeout: Duration,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let found = client.find(fantoccini::Locator::Css(css)).await;
        let text = match found {
            Ok(element) => element
                .prop("textContent")
                .await
                .map(Option::unwrap_or_default)
                .map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Ok(text) = &text
            && text.contains(expected)
        {
            return text.clone();
        }
        if Instant::now() >= deadline {
            panic!("{css} does not say {expected:?} after {timeout:?}: {text:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Types `text` into the input `css` finds once it is there (within `timeout`).
pub async fn type_into(client: &fantoccini::Client, css: &str, text: &str, timeout: Duration) {
    let input = element(client, css, timeout).await;
    if let Err(error) = input.send_keys(text).await {
        panic!("cannot type into {css}: {error}");
    }
}

/// The desktop notifications sent on the session bus from now on: `dbus-monitor` watching
/// `org.freedesktop.Notifications.Notify` (dunst answers them in the test session).
pub struct NotificationWatch {
    _monitor: Process,
    log: PathBuf,
    _dir: TempDir,
}

impl NotificationWatch {
    /// Starts watching; returns once dbus-monitor is listening (it prints its first line).
    pub async fn start() -> Self {
        require_session();
        let dir = match tempfile::Builder::new().prefix("concord-notify-").tempdir() {
            Ok(dir) => dir,
            Err(error) => panic!("cannot create a directory for dbus-monitor: {error}"),
        };
        let log = dir.path().join("notify.log");
        let out =
            File::create(&log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let monitor = Process::spawn(
            "dbus-monitor",
            Command::new("dbus-monitor")
                .arg("--session")
                .arg("interface='org.freedesktop.Notifications',member='Notify'")
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(Stdio::null()),
        );
        let watch = Self {
            _monitor: monitor,
            log,
            _dir: dir,
        };
        let deadline = Instant::now() + CHANGE_TIMEOUT;
        while watch.text().is_empty() {
            if Instant::now() >= deadline {
                panic!("dbus-monitor printed nothing in {CHANGE_TIMEOUT:?}: is a session bus up?");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        watch
    }

    /// What dbus-monitor printed so far.
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// How many `Notify` calls were made so far.
    pub fn count(&self) -> usize {
        self.text().matches("member=Notify").count()
    }

    /// How many `Notify` calls so far mention `text` (in their summary or body).
    pub fn count_mentioning(&self, text: &str) -> usize {
        self.text()
            .split("member=Notify")
            .skip(1)
            .filter(|call| call.contains(text))
            .count()
    }

    /// Waits up to `timeout` until a notification mentions `expected`; returns what was seen.
    pub async fn mentioning(&self, expected: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text();
            if text.contains("member=Notify") && text.contains(expected) {
                return text;
            }
            if Instant::now() >= deadline {
                panic!("no notification mentions {expected:?} after {timeout:?}; seen:\n{text}");
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// `tauri-driver` from PATH, else where `cargo install` puts it.
fn tauri_driver() -> PathBuf {
    let from_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tauri-driver"))
            .find(|candidate| candidate.is_file())
    });
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    from_path
        .or_else(|| {
            cargo_home
                .map(|home| home.join("bin/tauri-driver"))
                .filter(|p| p.is_file())
        })
        .unwrap_or_else(|| {
            panic!("tauri-driver not found: `cargo install tauri-driver@2.1.0 --locked`")
        })
}

fn free_port() -> u16 {
    match TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).and_then(|l| l.local_addr()) {
        Ok(address) => address.port(),
        Err(error) => panic!("cannot find a free loopback port: {error}"),
    }
}

/// Whether tauri-driver answers `GET /status` (HTTP/1.0, so the reply ends with the body).
async fn status_ready(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await else {
        return false;
    };
    let request = b"GET /status HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if stream.write_all(request).await.is_err() {
        return false;
    }
    let mut reply = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply)).await;
    matches!(read, Ok(Ok(_)))
        && (reply.starts_with(b"HTTP/1.1 200") || reply.starts_with(b"HTTP/1.0 200"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_nodes_of_an_introspection() {
        let xml = r#"<node><interface name="x"/><node name="tray_icon_1"/><node name="b"/></node>"#;
        assert_eq!(child_nodes(xml), ["tray_icon_1", "b"]);
    }
}

//! A real HTTP/1.1 server on 127.0.0.1 for the feed tests and the benchmark: serves routes
//! with real ETag / Last-Modified / 304 behaviour, gzip, redirects, any status with headers,
//! slow and truncated responses, and records what each request sent.

#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub enum Route {
    /// A document; with `etag`/`last_modified` set, matching conditional requests get 304.
    Feed {
        body: Vec<u8>,
        content_type: String,
        etag: Option<String>,
        last_modified: Option<String>,
        gzip: bool,
        extra_headers: Vec<(String, String)>,
    },
    Redirect {
        status: u16,
        location: String,
    },
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Waits before answering with the inner route.
    Slow {
        delay: Duration,
        then: Box<Route>,
    },
    /// Promises `claimed` bytes, sends `body`, closes.
    Truncated {
        body: Vec<u8>,
        claimed: usize,
    },
}

impl Route {
    pub fn feed(body: impl Into<Vec<u8>>, content_type: &str) -> Self {
        Route::Feed {
            body: body.into(),
            content_type: content_type.to_owned(),
            etag: None,
            last_modified: None,
            gzip: false,
            extra_headers: Vec::new(),
        }
    }

    pub fn with_etag(mut self, tag: &str) -> Self {
        if let Route::Feed { etag, .. } = &mut self {
            *etag = Some(format!("\"{tag}\""));
        }
        self
    }

    pub fn with_last_modified(mut self, lm: &str) -> Self {
        if let Route::Feed { last_modified, .. } = &mut self {
            *last_modified = Some(lm.to_owned());
        }
        self
    }

    pub fn gzipped(mut self) -> Self {
        if let Route::Feed { gzip, .. } = &mut self {
            *gzip = true;
        }
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Route::Feed { extra_headers, .. } = &mut self {
            extra_headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }
}

/// What one request carried.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HashMap<String, String>,
}

#[derive(Clone, Default)]
pub struct State {
    routes: Arc<Mutex<HashMap<String, Route>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Requests being answered now, and the most at once.
    in_flight: Arc<Mutex<(usize, usize)>>,
}

pub struct TestServer {
    pub addr: SocketAddr,
    /// One listener per loopback address (127.0.0.1, 127.0.0.2, …), all serving the same
    /// routes: several "hosts" for per-host limits.
    pub addrs: Vec<SocketAddr>,
    state: State,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl TestServer {
    /// Starts on a free port of 127.0.0.1, on the current tokio runtime.
    pub async fn start() -> Self {
        Self::start_hosts(1).await
    }

    /// Starts on 127.0.0.1 to 127.0.0.`hosts`, each on a free port.
    pub async fn start_hosts(hosts: u8) -> Self {
        let state = State::default();
        let mut addrs = Vec::new();
        let mut tasks = Vec::new();
        for i in 1..=hosts.max(1) {
            let listener = TcpListener::bind((format!("127.0.0.{i}"), 0))
                .await
                .unwrap();
            addrs.push(listener.local_addr().unwrap());
            let st = state.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        break;
                    };
                    let st = st.clone();
                    tokio::spawn(async move {
                        let _ = serve(stream, st).await;
                    });
                }
            }));
        }
        Self {
            addr: addrs[0],
            addrs,
            state,
            tasks,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The address of `path` on host number `host` (modulo the hosts started).
    pub fn url_on(&self, host: usize, path: &str) -> String {
        format!("http://{}{path}", self.addrs[host % self.addrs.len()])
    }

    /// The most requests answered at the same time so far.
    pub fn max_in_flight(&self) -> usize {
        self.state.in_flight.lock().unwrap().1
    }

    pub fn clear_seen(&self) {
        self.state.seen.lock().unwrap().clear();
    }

    pub fn route(&self, path: &str, route: Route) {
        self.state
            .routes
            .lock()
            .unwrap()
            .insert(path.to_owned(), route);
    }

    /// Requests made to `path` so far.
    pub fn seen(&self, path: &str) -> Vec<Seen> {
        self.state
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }

    pub fn requests(&self) -> usize {
        self.state.seen.lock().unwrap().len()
    }
}

async fn serve(mut stream: TcpStream, state: State) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(4096);
    loop {
        // Read one request head (GET only: no bodies).
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
        let headers: HashMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let close = headers
            .get("connection")
            .is_some_and(|c| c.eq_ignore_ascii_case("close"));
        state.seen.lock().unwrap().push(Seen {
            path: path.clone(),
            headers: headers.clone(),
        });
        let route = state.routes.lock().unwrap().get(&path).cloned();
        {
            let mut f = state.in_flight.lock().unwrap();
            f.0 += 1;
            f.1 = f.1.max(f.0);
        }
        let keep = respond(&mut stream, route, &headers).await;
        state.in_flight.lock().unwrap().0 -= 1;
        let keep = keep?;
        if close || !keep {
            return Ok(());
        }
    }
}

/// Writes one response; false when the connection must close afterwards.
async fn respond(
    stream: &mut TcpStream,
    route: Option<Route>,
    req: &HashMap<String, String>,
) -> std::io::Result<bool> {
    let mut route = route;
    while let Some(Route::Slow { delay, then }) = route {
        tokio::time::sleep(delay).await;
        route = Some(*then);
    }
    match route {
        None => write(stream, 404, &[], b"not found").await,
        Some(Route::Slow { .. }) => unreachable!(),
        Some(Route::Redirect { status, location }) => {
            write(stream, status, &[("Location".into(), location)], b"").await
        }
        Some(Route::Status {
            status,
            headers,
            body,
        }) => write(stream, status, &headers, body.as_bytes()).await,
        Some(Route::Truncated { body, claimed }) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: {claimed}\r\n\r\n"
            );
            stream.write_all(head.as_bytes()).await?;
            stream.write_all(&body).await?;
            stream.flush().await?;
            Ok(false)
        }
        Some(Route::Feed {
            body,
            content_type,
            etag,
            last_modified,
            gzip,
            extra_headers,
        }) => {
            let inm = req.get("if-none-match");
            let ims = req.get("if-modified-since");
            let fresh = match (&etag, inm) {
                (Some(e), Some(i)) => i.split(',').any(|t| t.trim() == e),
                _ => matches!((&last_modified, ims), (Some(l), Some(i)) if l == i),
            };
            let mut headers = extra_headers.clone();
            if let Some(e) = &etag {
                headers.push(("ETag".into(), e.clone()));
            }
            if let Some(l) = &last_modified {
                headers.push(("Last-Modified".into(), l.clone()));
            }
            if fresh {
                return write(stream, 304, &headers, b"").await;
            }
            headers.push(("Content-Type".into(), content_type));
            let accepts_gzip = req
                .get("accept-encoding")
                .is_some_and(|a| a.contains("gzip"));
            if gzip && accepts_gzip {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                enc.write_all(&body)?;
                let zipped = enc.finish()?;
                headers.push(("Content-Encoding".into(), "gzip".into()));
                write(stream, 200, &headers, &zipped).await
            } else {
                write(stream, 200, &headers, &body).await
            }
        }
    }
}

async fn write(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<bool> {
    let reason = match status {
        200 => "OK",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Status",
    };
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if status != 304 {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if status != 304 {
        out.extend_from_slice(body);
    }
    stream.write_all(&out).await?;
    Ok(true)
}

/// A fixture file's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/feeds")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

//! `make bench` (calendar sync): Concord against vdirsyncer, same Radicale, same data, one run.
//! 5,000 events in a Radicale calendar synced to an empty vdir (twice per tool, in turns, into
//! fresh folders); then a sync with nothing changed and one with 1% changed, each in three
//! rounds (each round changes another 1%). Wall time, requests (counted by a loopback proxy in
//! front of the server) and peak memory (getrusage of the child process) for both, plus the
//! floor: one sync-collection REPORT with the current token. Prints a Markdown table. The
//! events are written straight into Radicale's storage, then its caches are built untimed, as
//! an upload through it would have built them (see `warm_server`).
//!
//! One phase can be profiled by hand: `BIN --serve DIR` starts the loaded and warmed server,
//! makes a Concord data directory DIR for it, prints the child's environment and waits; then
//! `BENCH_USER=.. BENCH_PASSWORD=.. BIN --concord-sync DIR` syncs, as often as wanted. Ctrl-C
//! or SIGTERM stops the server with it.
//!
//! Run: `CONCORD_TEST_VENV=.tools/venv cargo bench -p concord-e2e --bench sync`, with
//! vdirsyncer from PyPI in that venv, or named by `VDIRSYNCER=/path/to/bin/vdirsyncer`.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use concord_core::Concord;
use concord_core::dav::Credentials;
use concord_core::sync::item::ItemKind;
use concord_core::sync::state::{self, ConflictPolicy, Direction, StorageKind};
use concord_core::sync::sync_durably;
use concord_e2e::servers::{DavServer, venv_dir};

const EVENTS: usize = 5_000;
const CHANGED: usize = EVENTS / 100;
/// Rounds of the "nothing changed" and "1% changed" syncs; the table shows their mean.
const ROUNDS: usize = 3;
const PAIR: &str = "bench";
/// The pause between building the server's caches and the first timed run (after a `sync`).
/// Building them deletes some 10,000 temporary directories inside the server's storage; on an
/// ext4 file system without a journal the kernel then skips each recently deleted inode when
/// it allocates a new one (`recently_deleted()` in fs/ext4/ialloc.c: 60 s, or 360 s while the
/// inode table block is dirty), so creating 5,000 files costs seconds of kernel time instead
/// of a fraction. `CONCORD_BENCH_SETTLE_S` shortens it for a quick look.
const SETTLE_AFTER_WARM_UP: Duration = Duration::from_secs(370);

type Failure = Box<dyn std::error::Error>;

fn main() -> Result<(), Failure> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--concord-sync") {
        return concord_child(args.get(2).ok_or("no data dir")?);
    }
    if args.get(1).map(String::as_str) == Some("--serve") {
        return serve(Path::new(args.get(2).ok_or("no data dir")?));
    }
    if args.iter().any(|a| a == "--list") {
        return Ok(()); // `cargo bench -- --list`
    }
    let server = DavServer::radicale().map_err(|e| e.to_string())?;
    let proxy = Proxy::start(server.port())?;
    let work = tempfile::tempdir()?;
    load_events(&server)?;
    warm_server(&server)?;
    Command::new("sync").status()?;
    let settle = std::env::var("CONCORD_BENCH_SETTLE_S")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(SETTLE_AFTER_WARM_UP, Duration::from_secs);
    eprintln!(
        "Waiting {} s for the file system to settle after the server's warm-up",
        settle.as_secs()
    );
    std::thread::sleep(settle);

    // Each tool syncs the initial phase twice, into fresh folders, in the order Concord,
    // vdirsyncer, vdirsyncer, Concord: whatever the disk still does after the warm-up (see
    // `SETTLE_AFTER_WARM_UP`) weighs on both alike. The later phases continue the first pair.
    let mut concord_dirs = Vec::new();
    let mut vdirsyncer_configs = Vec::new();
    let vdirsyncer = std::env::var_os("VDIRSYNCER")
        .map_or_else(|| venv_dir().join("bin/vdirsyncer"), PathBuf::from);
    for run in ["1", "2"] {
        let concord_dir = work.path().join(format!("concord-{run}"));
        fs::create_dir_all(&concord_dir)?;
        configure_concord(
            &concord_dir,
            &format!("http://127.0.0.1:{}/", proxy.port),
            &format!("http://127.0.0.1:{}{}", proxy.port, server.calendar_path()),
            server.username(),
        )?;
        concord_dirs.push(concord_dir);
        let config = configure_vdirsyncer(&work.path().join(run), &server, proxy.port)?;
        // vdirsyncer needs its discovery once; not timed.
        run_measured(
            Command::new(&vdirsyncer)
                .args(["-c"])
                .arg(&config)
                .arg("discover"),
        )?;
        vdirsyncer_configs.push(config);
    }
    let sync_concord = |dir: &Path| -> Result<(Measured, usize), Failure> {
        proxy.requests.store(0, Ordering::SeqCst);
        let measured = run_measured(
            Command::new(std::env::current_exe()?)
                .arg("--concord-sync")
                .arg(dir)
                .env("BENCH_USER", server.username())
                .env("BENCH_PASSWORD", server.password()),
        )?;
        Ok((measured, proxy.requests.swap(0, Ordering::SeqCst)))
    };
    let sync_vdirsyncer = |config: &Path| -> Result<(Measured, usize), Failure> {
        proxy.requests.store(0, Ordering::SeqCst);
        let measured = run_measured(
            Command::new(&vdirsyncer)
                .args(["-c"])
                .arg(config)
                .arg("sync"),
        )?;
        Ok((measured, proxy.requests.swap(0, Ordering::SeqCst)))
    };
    let (concord_dir, vdirsyncer_config) = (&concord_dirs[0], &vdirsyncer_configs[0]);

    let mut rows = Vec::new();
    let (c1, concord_requests) = sync_concord(concord_dir)?;
    let (v1, vdirsyncer_requests) = sync_vdirsyncer(vdirsyncer_config)?;
    let (v2, _) = sync_vdirsyncer(&vdirsyncer_configs[1])?;
    let (c2, _) = sync_concord(&concord_dirs[1])?;
    println!(
        "Initial syncs in turn: Concord {:.0} ms, vdirsyncer {:.0} ms, vdirsyncer {:.0} ms, Concord {:.0} ms",
        c1.wall_ms, v1.wall_ms, v2.wall_ms, c2.wall_ms
    );
    rows.push((
        "initial (5,000 events), mean of two",
        Measured::mean(&c1, &c2),
        concord_requests,
        Measured::mean(&v1, &v2),
        vdirsyncer_requests,
    ));
    for phase in ["nothing changed", "1% changed"] {
        let mut rounds = Vec::new();
        for round in 0..ROUNDS {
            if phase == "1% changed" {
                change_events(&server, round)?;
            }
            let concord = sync_concord(concord_dir)?;
            let vdirsyncer = sync_vdirsyncer(vdirsyncer_config)?;
            rounds.push((concord, vdirsyncer));
        }
        println!(
            "{phase}, each round (Concord / vdirsyncer): {}",
            rounds
                .iter()
                .map(|((c, _), (v, _))| format!("{:.0} / {:.0} ms", c.wall_ms, v.wall_ms))
                .collect::<Vec<_>>()
                .join(", ")
        );
        // Requests as the last round made them (the count does not vary between rounds).
        let (concord_requests, vdirsyncer_requests) =
            rounds.last().map_or((0, 0), |((_, c), (_, v))| (*c, *v));
        rows.push((
            phase,
            Measured::mean_of(rounds.iter().map(|((c, _), _)| c)),
            concord_requests,
            Measured::mean_of(rounds.iter().map(|(_, (v, _))| v)),
            vdirsyncer_requests,
        ));
    }
    let floor = floor_ms(concord_dir, &server)?;
    let items = |dir: &Path| fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    println!(
        "Concord vdir: {} files, vdirsyncer vdir: {} files",
        items(&concord_dir.join("vdir")),
        items(&work.path().join("1/vdirsyncer-vdir"))
    );
    println!();
    println!(
        "| run | Concord wall | Concord sync (in process) | Concord requests | Concord peak RSS | vdirsyncer wall | vdirsyncer requests | vdirsyncer peak RSS | time ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (phase, c, cr, v, vr) in &rows {
        println!(
            "| {phase} | {:.0} ms | {} | {cr} | {:.0} MB | {:.0} ms | {vr} | {:.0} MB | {:.2}x |",
            c.wall_ms,
            c.inner_ms
                .map_or("-".to_owned(), |ms| format!("{ms:.0} ms")),
            c.max_rss_kb as f64 / 1024.0,
            v.wall_ms,
            v.max_rss_kb as f64 / 1024.0,
            c.wall_ms / v.wall_ms
        );
    }
    println!();
    println!("Floor (one sync-collection REPORT with the current token, curl): {floor:.1} ms");
    Ok(())
}

/// For profiling one phase by hand: the server of a run, and a Concord data directory for it.
fn serve(concord_dir: &Path) -> Result<(), Failure> {
    let server = DavServer::radicale().map_err(|e| e.to_string())?;
    load_events(&server)?;
    warm_server(&server)?;
    fs::create_dir_all(concord_dir)?;
    configure_concord(
        concord_dir,
        &server.url("/"),
        &server.calendar_url(),
        server.username(),
    )?;
    println!(
        "BENCH_USER={} BENCH_PASSWORD={} (server at {}; interrupt to stop)",
        server.username(),
        server.password(),
        server.calendar_url()
    );
    // Until Ctrl-C or SIGTERM; then `server` drops, which stops Radicale with it.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                stopped = tokio::signal::ctrl_c() => stopped,
                _ = term.recv() => Ok(()),
            }
        })?;
    Ok(())
}

/// The child process: one durable sync of the pair, printing how long the sync itself took.
fn concord_child(data_dir: &str) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let concord = Concord::open(Path::new(data_dir))?;
    let credentials = Credentials::new(
        std::env::var("BENCH_USER").unwrap_or_default(),
        std::env::var("BENCH_PASSWORD").unwrap_or_default(),
    );
    let started = Instant::now();
    let report = runtime.block_on(sync_durably(&concord, PAIR, Arc::new(credentials), false))?;
    // As `concord sync` ends: the runtime's idle threads are not waited for.
    runtime.shutdown_background();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if report.stopped.is_some() {
        return Err(format!("{report:?}").into());
    }
    println!("INNER_MS {ms}");
    Ok(())
}

struct Measured {
    wall_ms: f64,
    max_rss_kb: u64,
    inner_ms: Option<f64>,
}

impl Measured {
    /// Two runs as one: mean times, the higher peak memory.
    fn mean(a: &Measured, b: &Measured) -> Measured {
        Self::mean_of([a, b])
    }

    /// Several runs as one: mean times, the highest peak memory.
    fn mean_of<'a>(runs: impl IntoIterator<Item = &'a Measured>) -> Measured {
        let runs: Vec<&Measured> = runs.into_iter().collect();
        let n = runs.len().max(1) as f64;
        let inner: Option<Vec<f64>> = runs.iter().map(|m| m.inner_ms).collect();
        Measured {
            wall_ms: runs.iter().map(|m| m.wall_ms).sum::<f64>() / n,
            max_rss_kb: runs.iter().map(|m| m.max_rss_kb).max().unwrap_or(0),
            inner_ms: inner.map(|v| v.iter().sum::<f64>() / n),
        }
    }
}

/// Runs a command under a small Python wrapper that reports wall time and the child's peak
/// RSS (getrusage), so both tools are measured the same way.
fn run_measured(command: &mut Command) -> Result<Measured, Failure> {
    let python = venv_dir().join("bin/python");
    let program = command.get_program().to_owned();
    let args: Vec<_> = command.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = command
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
        .collect();
    let wrapper = "import resource, subprocess, sys, time\n\
        t = time.monotonic()\n\
        r = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, input=b'y\\n' * 8)\n\
        ms = (time.monotonic() - t) * 1000\n\
        sys.stdout.write(r.stdout.decode(errors='replace'))\n\
        sys.stderr.write(r.stderr.decode(errors='replace')[-3000:])\n\
        print('WALL_MS', ms)\n\
        print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n\
        sys.exit(r.returncode)\n";
    let out = Command::new(python)
        .arg("-c")
        .arg(wrapper)
        .arg(&program)
        .args(&args)
        .envs(envs)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}\n{stdout}\n{}",
            program.to_string_lossy(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    let value = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<f64>().ok())
    };
    Ok(Measured {
        wall_ms: value("WALL_MS ").unwrap_or(f64::NAN),
        max_rss_kb: value("MAXRSS_KB ").unwrap_or(0.0) as u64,
        inner_ms: value("INNER_MS "),
    })
}

fn event(i: usize, summary: &str) -> String {
    let day = 1 + i % 28;
    let hour = i % 24;
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Concord bench//EN\r\nBEGIN:VEVENT\r\nUID:bench-{i}@example.com\r\nDTSTAMP:20261101T100000Z\r\nDTSTART:202612{day:02}T{hour:02}0000Z\r\nDURATION:PT1H\r\nSUMMARY:{summary}\r\nLOCATION:Room {i}\r\nDESCRIPTION:Benchmark event number {i}\\, with a description of ordinary length.\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// Writes the events straight into Radicale's file storage (it reads them on the next request).
fn load_events(server: &DavServer) -> Result<(), Failure> {
    let dir = server
        .dir()
        .join("collections/collection-root")
        .join(server.calendar_path().trim_matches('/'));
    for i in 0..EVENTS {
        fs::write(
            dir.join(format!("bench-{i}.ics")),
            event(i, &format!("Event {i}")),
        )?;
    }
    Ok(())
}

/// Radicale keeps, per item, a parsed-item cache and a sync history, both written when an
/// item is uploaded through it. The events were written straight to its storage, so both are
/// built here, untimed, as an upload would have: one depth-1 PROPFIND reads every item, one
/// depth-0 PROPFIND of DAV:sync-token builds the history. Otherwise the first tool to touch
/// the collection would pay about 10,000 fsynced file writes inside the server.
fn warm_server(server: &DavServer) -> Result<(), Failure> {
    for (depth, prop) in [("1", "<d:getetag/>"), ("0", "<d:sync-token/>")] {
        let body = format!(
            "<?xml version=\"1.0\"?><d:propfind xmlns:d=\"DAV:\"><d:prop>{prop}</d:prop></d:propfind>"
        );
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-X",
                "PROPFIND",
            ])
            .args([
                "-u",
                &format!("{}:{}", server.username(), server.password()),
            ])
            .args(["-H", &format!("Depth: {depth}")])
            .args(["-H", "Content-Type: application/xml", "--data", &body])
            .arg(server.calendar_url())
            .output()?;
        let code = String::from_utf8_lossy(&out.stdout).into_owned();
        if code != "207" {
            return Err(format!("warming the server (PROPFIND {prop}): {code}").into());
        }
    }
    Ok(())
}

/// Changes 1% of the events through the server (PUT), as another client would.
/// Changes 1% of the events through the server (another 1% in each round).
fn change_events(server: &DavServer, round: usize) -> Result<(), Failure> {
    for i in (round % (EVENTS / CHANGED)..EVENTS).step_by(EVENTS / CHANGED) {
        let path = format!("{}bench-{i}.ics", server.calendar_path());
        let status = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
            .args([
                "-u",
                &format!("{}:{}", server.username(), server.password()),
            ])
            .args(["-H", "Content-Type: text/calendar"])
            .args(["--data-binary", &event(i, &format!("Event {i} (moved)"))])
            .arg(server.url(&path))
            .output()?;
        let code = String::from_utf8_lossy(&status.stdout).into_owned();
        if !code.starts_with('2') {
            return Err(format!("PUT {path}: {code}").into());
        }
    }
    Ok(())
}

fn configure_concord(dir: &Path, base: &str, url: &str, user: &str) -> Result<(), Failure> {
    let concord = Concord::open(dir)?;
    let conn = concord.database().connect()?;
    let account = state::add_account(&conn, "bench", StorageKind::Caldav, base, Some(user))?;
    let a = state::put_storage(
        &conn,
        Some(account),
        StorageKind::Caldav,
        ItemKind::Calendar,
        url,
        None,
    )?;
    let vdir = dir.join("vdir");
    let b = state::put_storage(
        &conn,
        None,
        StorageKind::Vdir,
        ItemKind::Calendar,
        &vdir.display().to_string(),
        None,
    )?;
    state::add_pair(&conn, PAIR, a, b, Direction::TwoWay, ConflictPolicy::Ask)?;
    Ok(())
}

fn configure_vdirsyncer(
    dir: &Path,
    server: &DavServer,
    proxy_port: u16,
) -> Result<PathBuf, Failure> {
    let vdir = dir.join("vdirsyncer-vdir");
    fs::create_dir_all(&vdir)?;
    let config = dir.join("vdirsyncer.conf");
    fs::write(
        &config,
        format!(
            "[general]\nstatus_path = \"{status}\"\n\n\
             [pair bench]\na = \"bench_remote\"\nb = \"bench_local\"\ncollections = null\n\
             conflict_resolution = \"a wins\"\n\n\
             [storage bench_remote]\ntype = \"caldav\"\nurl = \"http://127.0.0.1:{proxy_port}{path}\"\n\
             username = \"{user}\"\npassword = \"{password}\"\n\n\
             [storage bench_local]\ntype = \"filesystem\"\npath = \"{vdir}\"\nfileext = \".ics\"\n",
            status = dir.join("vdirsyncer-status").display(),
            path = server.calendar_path(),
            user = server.username(),
            password = server.password(),
            vdir = vdir.display(),
        ),
    )?;
    Ok(config)
}

/// One sync-collection REPORT with Concord's current token, timed by curl (request only).
fn floor_ms(concord_dir: &Path, server: &DavServer) -> Result<f64, Failure> {
    let concord = Concord::open(concord_dir)?;
    let conn = concord.database().connect()?;
    let token: String = conn.query_row("SELECT a_token FROM pairs", [], |r| r.get(0))?;
    let token = token.strip_prefix("sync:").unwrap_or(&token);
    let body = format!(
        "<?xml version=\"1.0\"?><d:sync-collection xmlns:d=\"DAV:\"><d:sync-token>{token}</d:sync-token>\
         <d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"
    );
    let mut best = f64::MAX;
    for _ in 0..5 {
        let out = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{time_total}",
                "-X",
                "REPORT",
            ])
            .args([
                "-u",
                &format!("{}:{}", server.username(), server.password()),
            ])
            .args(["-H", "Content-Type: application/xml", "--data", &body])
            .arg(server.calendar_url())
            .output()?;
        let s: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(f64::MAX);
        best = best.min(s * 1000.0);
    }
    Ok(best)
}

/// A loopback TCP proxy that counts HTTP/1.1 requests passing through it.
struct Proxy {
    port: u16,
    requests: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: u16) -> Result<Self, Failure> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect((Ipv4Addr::LOCALHOST, upstream)) else {
                    continue;
                };
                let counter = counter.clone();
                let (Ok(client_read), Ok(server_write)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                std::thread::spawn(move || pump(client_read, server_write, Some(counter)));
                std::thread::spawn(move || pump(server, client, None));
            }
        });
        Ok(Self { port, requests })
    }
}

/// Copies bytes one way; on the request direction counts request lines (" HTTP/1.1\r\n").
fn pump(mut from: TcpStream, mut to: TcpStream, counter: Option<Arc<AtomicUsize>>) {
    const MARK: &[u8] = b" HTTP/1.1\r\n";
    let mut buf = vec![0u8; 64 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    let _ = from.set_read_timeout(Some(Duration::from_secs(300)));
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(counter) = &counter {
            let mut window = std::mem::take(&mut tail);
            window.extend_from_slice(&buf[..n]);
            let found = window.windows(MARK.len()).filter(|w| *w == MARK).count();
            counter.fetch_add(found, Ordering::SeqCst);
            let keep = MARK.len() - 1;
            tail = window[window.len().saturating_sub(keep)..].to_vec();
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

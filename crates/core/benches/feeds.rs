//! `make bench` (feeds): Concord's feed refresh side by side with newsboat, in one run, on
//! the same local server and the same 1,000 feeds of 20 to 50 items.
//!
//! Scenarios: a cold refresh (empty database), a refresh where every feed answers 304, and
//! one where 10 % of the feeds changed (a few new items each). Each tool runs as its own
//! process under `/usr/bin/time`, so wall time, CPU time (user + system) and peak RSS are
//! measured the same way for both. The server runs in this process on 16 loopback addresses
//! (127.0.0.1–16), as a real subscription list spans many hosts; both tools fetch 16 at a time.
//!
//!     cargo bench -p concord-core --bench feeds
//!     CONCORD_BENCH_FEEDS=200 cargo bench -p concord-core --bench feeds   (a quick look)

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/feeds_support/mod.rs"]
mod feeds_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use concord_core::Concord;
use concord_core::feeds::{RefreshOptions, refresh_blocking, store};
use feeds_support::{Route, TestServer};

const HOSTS: u8 = 16;
const THREADS: usize = 16;
const CHANGED_EVERY: usize = 10;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("refresh") {
        return child_refresh(Path::new(&args[2]));
    }
    let feeds: usize = std::env::var("CONCORD_BENCH_FEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let server = runtime.block_on(TestServer::start_hosts(HOSTS));
    let paths: Vec<String> = (0..feeds).map(|i| format!("/feeds/{i}.xml")).collect();
    let urls: Vec<String> = paths
        .iter()
        .enumerate()
        .map(|(i, p)| server.url_on(i, p))
        .collect();
    let serve_version = |changed: bool| {
        for (i, path) in paths.iter().enumerate() {
            let version = u32::from(changed && i % CHANGED_EVERY == 0);
            let (body, ct) = feed_document(i, version);
            let route = Route::feed(body, ct)
                .with_etag(&format!("f{i}-v{version}"))
                .with_last_modified(&format!("Mon, 05 Jan 2026 {:02}:00:00 GMT", 10 + version));
            server.route(path, route);
        }
    };
    let items: usize = (0..feeds).map(item_count).sum();
    let bytes: usize = (0..feeds).map(|i| feed_document(i, 0).0.len()).sum();
    println!(
        "Feeds benchmark: {feeds} feeds, {items} items, {:.1} MB of XML, {HOSTS} loopback hosts, {THREADS} fetches at a time\n",
        bytes as f64 / 1e6
    );

    // Concord
    let concord_dir = tempfile::tempdir().unwrap();
    {
        let concord = Concord::open(concord_dir.path()).unwrap();
        let conn = concord.database().connect().unwrap();
        conn.execute_batch("BEGIN").unwrap();
        for url in &urls {
            store::add_feed(&conn, url, None, None, chrono::Utc::now()).unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
    }
    let exe = std::env::current_exe().unwrap();
    let concord_run = |label: &str, expect_changed: usize| {
        let (m, out) = measure(Command::new(&exe).arg("refresh").arg(concord_dir.path()));
        let summary: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
        let (checked, changed) = (
            summary["checked"].as_u64().unwrap_or(0),
            summary["changed"].as_u64().unwrap_or(0),
        );
        let failed = summary["failed"].as_u64().unwrap_or(0);
        println!(
            "concord  {label:8} checked {checked}, changed {changed}, failed {failed}, new entries {}, updated {}",
            summary["new_entries"], summary["updated_entries"]
        );
        assert_eq!(
            (checked as usize, changed as usize, failed),
            (feeds, expect_changed, 0),
            "{out}"
        );
        m
    };
    serve_version(false);
    let c_cold = concord_run("cold", feeds);
    let c_304 = concord_run("all-304", 0);
    serve_version(true);
    let c_10 = concord_run("10%", feeds.div_ceil(CHANGED_EVERY));

    // newsboat, same server and feeds, from the same start
    serve_version(false);
    // CONCORD_BENCH_NEWSBOAT=0 skips newsboat (for a quick look at Concord alone).
    let newsboat =
        which("newsboat").filter(|_| std::env::var("CONCORD_BENCH_NEWSBOAT").as_deref() != Ok("0"));
    let nb = newsboat.as_ref().map(|nb| {
        let dir = tempfile::tempdir().unwrap();
        let url_file = dir.path().join("urls");
        std::fs::write(&url_file, urls.join("\n") + "\n").unwrap();
        let config = dir.path().join("config");
        std::fs::write(
            &config,
            format!("reload-threads {THREADS}\nshow-read-feeds yes\n"),
        )
        .unwrap();
        let cache = dir.path().join("cache.db");
        let run = |label: &str| {
            server.clear_seen();
            let mut cmd = Command::new(nb);
            cmd.arg("-u")
                .arg(&url_file)
                .arg("-c")
                .arg(&cache)
                .arg("-C")
                .arg(&config)
                .args(["-x", "reload"]);
            cmd.env("HOME", dir.path());
            let (m, _) = measure(&mut cmd);
            let conditional = (0..feeds)
                .filter(|i| {
                    server.seen(&paths[*i]).iter().any(|s| {
                        s.headers.contains_key("if-none-match")
                            || s.headers.contains_key("if-modified-since")
                    })
                })
                .count();
            println!(
                "newsboat {label:8} {} requests, {conditional} conditional",
                server.requests()
            );
            m
        };
        let cold = run("cold");
        // newsboat keeps no validators from a cold reload (see the field notes): its second
        // reload downloads everything again; the third is its first all-304 one.
        run("prime");
        let all_304 = run("all-304");
        serve_version(true);
        let ten = run("10%");
        (cold, all_304, ten)
    });

    println!();
    println!(
        "| Scenario | Concord wall | Concord CPU | Concord peak RSS | newsboat wall | newsboat CPU | newsboat peak RSS | wall ratio | target | met |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let rows = [
        (
            "cold",
            c_cold,
            nb.map(|n| n.0),
            "≤ 1.5 s and ≤ 0.1× newsboat",
            1.5,
        ),
        ("all 304", c_304, nb.map(|n| n.1), "≤ 100 ms", 0.1),
        ("10 % changed", c_10, nb.map(|n| n.2), "≤ 200 ms", 0.2),
    ];
    for (label, c, n, target, limit_s) in rows {
        let ratio = n.map(|n| c.wall_s / n.wall_s);
        let mut met = c.wall_s <= limit_s && c.max_rss_kb < 100 * 1024;
        if label == "cold" {
            met &= ratio.is_some_and(|r| r <= 0.1);
        }
        println!(
            "| {label} | {} | {} | {} | {} | {} | {} | {} | {target}, RSS < 100 MB | {} |",
            secs(c.wall_s),
            secs(c.cpu_s),
            mb(c.max_rss_kb),
            n.map_or("n/a".into(), |n| secs(n.wall_s)),
            n.map_or("n/a".into(), |n| secs(n.cpu_s)),
            n.map_or("n/a".into(), |n| mb(n.max_rss_kb)),
            ratio.map_or("n/a".into(), |r| format!("{r:.3}×")),
            if met { "yes" } else { "no" }
        );
    }
    if newsboat.is_none() {
        println!("\nnewsboat is not installed (apt-get install -y newsboat): its columns are n/a.");
    }
    drop(server);
}

/// The child process measured for Concord: one forced refresh of every feed.
fn child_refresh(dir: &Path) {
    let started = std::time::Instant::now();
    let concord = Concord::open(dir).unwrap();
    let opened = started.elapsed();
    let opts = RefreshOptions {
        force: true,
        ..RefreshOptions::default()
    };
    let summary = refresh_blocking(concord.database(), &opts).unwrap();
    if std::env::var_os("CONCORD_BENCH_VERBOSE").is_some() {
        eprintln!(
            "open {opened:?}, refresh {} ms, total {:?}",
            summary.duration_ms,
            started.elapsed()
        );
    }
    println!("{}", serde_json::to_string(&summary).unwrap());
}

#[derive(Debug, Clone, Copy)]
struct Measured {
    wall_s: f64,
    cpu_s: f64,
    max_rss_kb: u64,
}

/// Runs `cmd` under GNU time; returns the figures and the command's standard output.
fn measure(cmd: &mut Command) -> (Measured, String) {
    let report = tempfile::NamedTempFile::new().unwrap();
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = cmd
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect();
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%e %U %S %M", "-o"])
        .arg(report.path())
        .arg(program)
        .args(args);
    for (k, v) in envs {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    timed.stderr(std::process::Stdio::inherit());
    let out = timed
        .output()
        .expect("/usr/bin/time (apt-get install -y time)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(report.path()).unwrap();
    let last = text.lines().last().unwrap_or_default();
    let f: Vec<f64> = last
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    assert_eq!(f.len(), 4, "unexpected time output: {text}");
    let m = Measured {
        wall_s: f[0],
        cpu_s: f[1] + f[2],
        max_rss_kb: f[3] as u64,
    };
    (m, String::from_utf8_lossy(&out.stdout).into_owned())
}

fn secs(s: f64) -> String {
    if s < 1.0 {
        format!("{:.0} ms", s * 1000.0)
    } else {
        format!("{s:.2} s")
    }
}

fn mb(kb: u64) -> String {
    format!("{:.0} MB", kb as f64 / 1024.0)
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

fn item_count(i: usize) -> usize {
    20 + (i * 7) % 31
}

/// Feed `i` at `version`: every version adds three items at the top and drops the oldest.
/// Every fourth feed is Atom, the rest RSS 2.0; descriptions are a few hundred bytes of HTML.
fn feed_document(i: usize, version: u32) -> (String, &'static str) {
    let n = item_count(i);
    let newest = n + 3 * version as usize;
    let gap_h = 1 + i % 48;
    let base = chrono::DateTime::parse_from_rfc3339("2026-01-05T10:00:00Z").unwrap();
    let atom = i % 4 == 3;
    let mut doc = String::with_capacity(n * 900);
    if atom {
        doc.push_str(&format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>Feed {i}</title><id>urn:feed:{i}</id><link href=\"https://site{i}.example/\"/><updated>{}</updated>\n",
            base.to_rfc3339()
        ));
    } else {
        doc.push_str(&format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<rss version=\"2.0\"><channel><title>Feed {i}</title><link>https://site{i}.example/</link><description>Bench feed {i}</description>\n"
        ));
    }
    for k in (newest + 1 - n..=newest).rev() {
        // An item's date is fixed by its number: later versions only add newer items.
        let date = base + chrono::Duration::hours((k * gap_h) as i64);
        let body = format!(
            "<p>Item {k} of feed {i}: a paragraph with <a href=\"https://site{i}.example/posts/{k}\">a link</a>, <em>emphasis</em> and <code>code</code>.</p><p>Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris.</p><img src=\"https://site{i}.example/img/{k}.jpg\" alt=\"\">"
        );
        if atom {
            doc.push_str(&format!(
                "<entry><title>Feed {i} item {k}</title><id>urn:feed:{i}:item:{k}</id><link href=\"https://site{i}.example/posts/{k}\"/><updated>{}</updated><content type=\"html\">{}</content></entry>\n",
                date.to_rfc3339(),
                body.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
            ));
        } else {
            doc.push_str(&format!(
                "<item><title>Feed {i} item {k}</title><link>https://site{i}.example/posts/{k}</link><guid>https://site{i}.example/posts/{k}</guid><pubDate>{}</pubDate><description><![CDATA[{body}]]></description></item>\n",
                date.to_rfc2822()
            ));
        }
    }
    doc.push_str(if atom {
        "</feed>\n"
    } else {
        "</channel></rss>\n"
    });
    (
        doc,
        if atom {
            "application/atom+xml"
        } else {
            "application/rss+xml"
        },
    )
}

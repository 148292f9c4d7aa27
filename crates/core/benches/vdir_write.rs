//! `cargo bench -p concord-core --bench vdir_write`: a sync's writes into a vdir folder that
//! already holds 5,000 events, timed as the sync waits for them: `Vdir::write_many`, then
//! `Vdir::sync_dir`, repeated over rounds and reported as median and spread.
//!
//! Scenarios: batches of 5, 50 and 500 updates (etags from the folder's listing, as a sync
//! has them), 50 deletes, and the initial sync's 5,000 creates in batches of 512. After each round one
//! small file in another folder is written and synced, as the sync's database commit is, and
//! timed apart: disk work a batch leaves behind shows up there.
//!
//!     cargo bench -p concord-core --bench vdir_write
//!     CONCORD_BENCH_ROUNDS=41 CONCORD_BENCH_DIR=/mnt/disk cargo bench ... --bench vdir_write

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use concord_core::sync::item::ItemKind;
use concord_core::sync::storage::vdir::Vdir;
use concord_core::sync::storage::{ItemWrite, Listed};

const EVENTS: usize = 5_000;
const UPDATE_BATCHES: [usize; 3] = [5, 50, 500];
/// Deletes a sync makes one after another, then syncs the folder.
const DELETE_BATCH: usize = 50;
/// The sync's batch of creates when it fills an empty folder.
const CREATE_BATCH: usize = 512;
/// Pause between rounds, so each starts as a sync does: with the disk idle.
const PAUSE: Duration = Duration::from_millis(50);

fn main() {
    let rounds: usize = std::env::var("CONCORD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21);
    let base = std::env::var_os("CONCORD_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let scratch = tempfile::tempdir_in(&base).unwrap();
    let record = scratch.path().join("state.db");
    println!(
        "vdir writes into {} ({EVENTS} events), {rounds} rounds; ms: median (p10..p90, min..max)",
        scratch.path().display()
    );

    let folder = scratch.path().join("calendar");
    let vdir = Vdir::open(&folder, ItemKind::Calendar).unwrap();
    fill(&vdir);
    for batch in UPDATE_BATCHES {
        let mut write = Vec::with_capacity(rounds);
        let mut commit = Vec::with_capacity(rounds);
        for round in 0..rounds {
            let listing = vdir.list().unwrap();
            let picked = picked(&listing.changed, batch, round);
            let raws: Vec<String> = picked
                .iter()
                .map(|listed| event(&listed.href, &format!("Changed in round {round}")))
                .collect();
            let writes: Vec<ItemWrite<'_>> = picked
                .iter()
                .zip(&raws)
                .map(|(listed, raw)| ItemWrite::update_of(listed, raw.as_bytes()))
                .collect();
            std::thread::sleep(PAUSE);
            let start = Instant::now();
            let done = vdir.write_many(&writes).unwrap();
            vdir.sync_dir().unwrap();
            write.push(start.elapsed());
            commit.push(commit_elsewhere(&record));
            assert_eq!(done.len(), batch);
            assert!(done.iter().all(Result::is_ok), "every update went through");
        }
        report(&format!("update {batch:>4}"), &write, &commit);
    }
    let mut delete = Vec::with_capacity(rounds);
    let mut commit = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let listing = vdir.list().unwrap();
        let picked = picked(&listing.changed, DELETE_BATCH, round);
        std::thread::sleep(PAUSE);
        let start = Instant::now();
        for listed in &picked {
            vdir.delete(&listed.href, &listed.etag).unwrap();
        }
        vdir.sync_dir().unwrap();
        delete.push(start.elapsed());
        commit.push(commit_elsewhere(&record));
        let uids: Vec<&str> = picked
            .iter()
            .map(|listed| listed.href.trim_end_matches(".ics"))
            .collect();
        let raws: Vec<String> = uids.iter().map(|uid| event(uid, "Event")).collect();
        let writes: Vec<ItemWrite<'_>> = uids
            .iter()
            .zip(&raws)
            .map(|(uid, raw)| ItemWrite::Create {
                uid,
                raw: raw.as_bytes(),
            })
            .collect();
        let done = vdir.write_many(&writes).unwrap();
        assert!(
            done.iter().all(Result::is_ok),
            "every deleted event is back"
        );
        vdir.sync_dir().unwrap();
    }
    println!(
        "delete {DELETE_BATCH:>4}: delete each+sync_dir    {}   then a commit's fsync {}",
        spread(&delete),
        spread(&commit)
    );
    drop(vdir);
    fs::remove_dir_all(&folder).unwrap();

    let initial_rounds = rounds.div_ceil(7).max(1);
    let mut write = Vec::with_capacity(initial_rounds);
    let mut commit = Vec::with_capacity(initial_rounds);
    for round in 0..initial_rounds {
        let folder = scratch.path().join(format!("initial-{round}"));
        let vdir = Vdir::open(&folder, ItemKind::Calendar).unwrap();
        std::thread::sleep(PAUSE);
        let start = Instant::now();
        fill(&vdir);
        write.push(start.elapsed());
        commit.push(commit_elsewhere(&record));
        fs::remove_dir_all(&folder).unwrap();
    }
    report(&format!("create {EVENTS}"), &write, &commit);
}

/// The initial sync's writes: every event created, a batch at a time, the folder synced
/// after each.
/// `n` items spread evenly over the listing, shifted by one in each round.
fn picked(listed: &[Listed], n: usize, round: usize) -> Vec<&Listed> {
    let step = listed.len() / n;
    (0..n)
        .map(|k| &listed[(k * step + round) % listed.len()])
        .collect()
}

fn fill(vdir: &Vdir) {
    let uids: Vec<String> = (0..EVENTS).map(|i| format!("bench-{i}")).collect();
    let raws: Vec<String> = uids.iter().map(|uid| event(uid, "Event")).collect();
    for (uids, raws) in uids.chunks(CREATE_BATCH).zip(raws.chunks(CREATE_BATCH)) {
        let writes: Vec<ItemWrite<'_>> = uids
            .iter()
            .zip(raws)
            .map(|(uid, raw)| ItemWrite::Create {
                uid,
                raw: raw.as_bytes(),
            })
            .collect();
        let done = vdir.write_many(&writes).unwrap();
        assert!(done.iter().all(Result::is_ok), "every create went through");
        vdir.sync_dir().unwrap();
    }
}

/// Appends to a file in another folder and syncs it, as the sync's database commit does.
fn commit_elsewhere(path: &Path) -> Duration {
    let start = Instant::now();
    let mut file = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    file.write_all(&[0; 4096]).unwrap();
    file.sync_data().unwrap();
    start.elapsed()
}

fn report(name: &str, write: &[Duration], commit: &[Duration]) {
    println!(
        "{name}: write_many+sync_dir {}   then a commit's fsync {}",
        spread(write),
        spread(commit)
    );
}

fn spread(times: &[Duration]) -> String {
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    format!(
        "{:7.2} ({:.2}..{:.2}, {:.2}..{:.2})",
        at(0.5),
        at(0.1),
        at(0.9),
        at(0.0),
        at(1.0)
    )
}

/// An event of about 420 bytes, as a calendar server holds them.
fn event(uid: &str, summary: &str) -> String {
    let n: usize = uid
        .trim_start_matches("bench-")
        .trim_end_matches(".ics")
        .parse()
        .unwrap_or(0);
    let day = 1 + n % 28;
    let hour = n % 24;
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Concord bench//EN\r\nBEGIN:VEVENT\r\nUID:bench-{n}@example.com\r\nDTSTAMP:20261101T100000Z\r\nDTSTART:202612{day:02}T{hour:02}0000Z\r\nDURATION:PT1H\r\nSUMMARY:{summary}\r\nLOCATION:Room {n}\r\nDESCRIPTION:Benchmark event number {n}\\, with a description of ordinary length.\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

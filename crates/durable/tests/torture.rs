//! Runs the kill -9 torture supervisor (src/bin/torture.rs) with at least 200 kills.
//! `TORTURE_KILLS` / `TORTURE_SEED` change it; the seed is printed to replay a failure.

#![allow(clippy::unwrap_used)] // Helpers of integration tests, not only #[test] fns.

use std::process::Command;

#[test]
fn kill_9_at_random_moments_loses_nothing_and_duplicates_nothing() {
    let kills = std::env::var("TORTURE_KILLS").unwrap_or_else(|_| "200".into());
    let out = Command::new(env!("CARGO_BIN_EXE_concord-durable-torture"))
        .args(["--kills", &kills, "--seeds", "1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(out.status.success(), "torture failed: {stdout}\n{stderr}");
    let summary = stdout.lines().find(|l| l.contains(" kills=")).unwrap();
    assert!(summary.contains(&format!("kills={kills} ")), "{summary}");
    assert!(summary.contains("duplicates=0 integrity=ok"), "{summary}");
}

//! `concord conflicts list|show|resolve`: the conflict inbox from the command line. Thin:
//! everything is `concord_core::sync::conflicts`; this file parses and prints (text or `--json`).

use crate::print_json;
use std::sync::Arc;

use clap::{Subcommand, ValueEnum};
use concord_core::Concord;
use concord_core::sync::conflicts::{self, ConflictSummary, Details, Keep, Resolution, Version};
use concord_core::sync::run::SystemKeyring;

#[derive(Debug, Subcommand)]
pub enum ConflictsCommand {
    /// The open conflicts, in readable terms
    List,
    /// One conflict: base, side A and side B, and which properties differ
    Show { id: i64 },
    /// Resolve a conflict; the losing version is kept in history (`concord history`)
    Resolve {
        id: i64,
        /// Which version to keep: a, b, or both (B's version becomes a copy with a new UID)
        #[arg(long, value_enum)]
        keep: KeepArg,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeepArg {
    A,
    B,
    Both,
}

impl From<KeepArg> for Keep {
    fn from(k: KeepArg) -> Self {
        match k {
            KeepArg::A => Keep::A,
            KeepArg::B => Keep::B,
            KeepArg::Both => Keep::Both,
        }
    }
}

pub fn run(concord: &Concord, cmd: ConflictsCommand, json: bool) -> Result<(), String> {
    match cmd {
        ConflictsCommand::List => {
            let open = conflicts::list(concord).map_err(|e| e.to_string())?;
            if json {
                return print_json(&open);
            }
            if open.is_empty() {
                println!("No conflicts.");
            }
            for c in &open {
                print_summary(c);
            }
            Ok(())
        }
        ConflictsCommand::Show { id } => {
            let detail = conflicts::show(concord, id).map_err(|e| e.to_string())?;
            if json {
                return print_json(&detail);
            }
            print_summary(&detail.summary);
            if !detail.differing.is_empty() {
                println!("  A and B differ in: {}", detail.differing.join(", "));
            }
            print_version("base", detail.base.as_ref());
            print_version("A", detail.a.as_ref());
            print_version("B", detail.b.as_ref());
            Ok(())
        }
        ConflictsCommand::Resolve { id, keep } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| format!("starting the async runtime: {e}"))?;
            let resolution = runtime
                .block_on(conflicts::resolve_durably(
                    concord,
                    id,
                    keep.into(),
                    Arc::new(SystemKeyring),
                ))
                .map_err(|e| e.to_string())?;
            if json {
                return print_json(&resolution);
            }
            match resolution {
                Resolution::Resolved { uid, copy_uid, .. } => {
                    println!("Resolved conflict {id} ({uid}); both sides now agree.");
                    if let Some(copy) = copy_uid {
                        println!("B's version is kept as a copy with UID {copy}.");
                    }
                }
                Resolution::Refreshed { closed: true, .. } => {
                    println!(
                        "Conflict {id}: the sides changed meanwhile and now agree; nothing to resolve."
                    );
                }
                Resolution::Refreshed { closed: false, .. } => {
                    return Err(format!(
                        "conflict {id} changed on a side since it was shown; nothing was \
                         overwritten. Look again with `concord conflicts show {id}`."
                    ));
                }
            }
            Ok(())
        }
    }
}

fn describe(d: &Details) -> String {
    let mut parts = Vec::new();
    if let Some(title) = &d.title {
        parts.push(format!("{title:?}"));
    }
    if let Some(when) = &d.when {
        parts.push(when.clone());
    }
    if let Some(location) = &d.location {
        parts.push(format!("at {location}"));
    }
    if !d.emails.is_empty() {
        parts.push(d.emails.join(", "));
    }
    parts.join(", ")
}

fn print_summary(c: &ConflictSummary) {
    let what = describe(&c.details);
    let what = if what.is_empty() {
        c.summary.clone()
    } else {
        what
    };
    let properties = if c.properties.is_empty() {
        String::new()
    } else {
        format!(" [{}]", c.properties.join(", "))
    };
    println!(
        "{:>4}  {}  {}{}  ({}, {})",
        c.id, c.kind, what, properties, c.pair, c.uid
    );
}

fn print_version(label: &str, version: Option<&Version>) {
    match version {
        None => println!("\n--- {label}: none (deleted, or never synced)"),
        Some(v) => {
            println!("\n--- {label}: {}", describe(&v.details));
            for line in v.content.lines() {
                println!("    {line}");
            }
        }
    }
}

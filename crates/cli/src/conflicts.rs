//! `concord conflicts list|show|resolve`: the conflict inbox from the command line. Thin:
//! each parses, calls one of core's operations (`Concord::conflicts`, ...) and prints (text
//! or `--json`).

use crate::{print_json, runtime};
use std::collections::BTreeMap;

use clap::{Subcommand, ValueEnum};
use concord_core::Concord;
use concord_core::sync::Side;
use concord_core::sync::resolve::conflicts::{
    Choice, ConflictSummary, Details, Field, Keep, Preview, Resolution, Version,
};

#[derive(Debug, Subcommand)]
pub enum ConflictsCommand {
    /// The open conflicts, in readable terms
    List,
    /// One conflict: every field side by side with the base, and the full versions
    Show {
        id: i64,
        /// Also print the three versions in full
        #[arg(long)]
        full: bool,
    },
    /// Resolve a conflict; the losing version is kept in history (`concord history`)
    Resolve {
        id: i64,
        /// Which version to keep: a, b, or both (B's version becomes a copy with a new UID)
        #[arg(
            long,
            value_enum,
            conflicts_with = "pick",
            required_unless_present = "pick"
        )]
        keep: Option<KeepArg>,
        /// Choose one field's version, e.g. `--pick SUMMARY=b --pick "VEVENT LOCATION=a"`;
        /// every conflicting field must be chosen, the others merge
        #[arg(long, value_name = "FIELD=a|b", value_parser = parse_pick)]
        pick: Vec<(String, Side)>,
        /// With --pick: print the resulting item without writing anything
        #[arg(long, requires = "pick")]
        preview: bool,
    },
}

/// "VEVENT SUMMARY=b" as the field and the side.
pub(crate) fn parse_pick(text: &str) -> Result<(String, Side), String> {
    let (field, side) = text
        .rsplit_once('=')
        .ok_or_else(|| format!("{text:?} is not FIELD=a|b"))?;
    let side = match side.trim().to_ascii_lowercase().as_str() {
        "a" => Side::A,
        "b" => Side::B,
        other => return Err(format!("{other:?} is not a side: use a or b")),
    };
    if field.trim().is_empty() {
        return Err(format!("{text:?} names no field"));
    }
    Ok((field.trim().to_owned(), side))
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
            let open = concord.conflicts().map_err(|e| e.to_string())?;
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
        ConflictsCommand::Show { id, full } => {
            let detail = concord.conflict(id).map_err(|e| e.to_string())?;
            if json {
                return print_json(&detail);
            }
            print_summary(&detail.summary);
            print_fields(&detail.fields, true, " (or --keep a|b|both)");
            if full {
                print_version("base", detail.base.as_ref());
                print_version("A", detail.a.as_ref());
                print_version("B", detail.b.as_ref());
            }
            Ok(())
        }
        ConflictsCommand::Resolve {
            id,
            keep,
            pick,
            preview,
        } => {
            let picks: BTreeMap<String, Side> = pick.into_iter().collect();
            if preview {
                let preview = concord
                    .conflict_preview(id, &picks)
                    .map_err(|e| e.to_string())?;
                return print_preview(&preview, json);
            }
            let choice = match keep {
                Some(keep) => Choice::Keep(keep.into()),
                None => Choice::Pick(picks),
            };
            let resolution = runtime()?
                .block_on(concord.resolve_conflict(id, choice))
                .map_err(|e| e.to_string())?;
            if json {
                return print_json(&resolution);
            }
            match resolution {
                Resolution::Picked { uid, picked } => {
                    let chosen: Vec<String> = picked
                        .iter()
                        .map(|(field, side)| format!("{field} from {}", side.as_str()))
                        .collect();
                    println!(
                        "Resolved conflict {id} ({uid}) with {}; both sides now agree.",
                        chosen.join(", ")
                    );
                }
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
    if !d.phones.is_empty() {
        parts.push(d.phones.join(", "));
    }
    parts.join(", ")
}

/// What a resolution or a merge would write, and the fields still to choose.
pub(crate) fn print_preview(preview: &Preview, json: bool) -> Result<(), String> {
    if json {
        return print_json(preview);
    }
    if !preview.unchosen.is_empty() {
        println!(
            "Still to choose (A's version shown): {}",
            preview.unchosen.join(", ")
        );
    }
    print!("{}", preview.content.replace("\r\n", "\n"));
    Ok(())
}

/// The fields as a table: label, base (when `with_base`), A, B; a `!` marks a field that
/// needs a choice, a `*` one where A and B differ but merge. `otherwise` ends the hint on
/// how to choose (" (or --keep a|b|both)").
pub(crate) fn print_fields(fields: &[Field], with_base: bool, otherwise: &str) {
    const WIDTH: usize = 28;
    let cell = |v: &Option<String>| -> Vec<String> {
        match v {
            None => vec!["-".to_owned()],
            Some(v) => v
                .lines()
                .map(|l| {
                    if l.chars().count() > WIDTH {
                        let cut: String = l.chars().take(WIDTH - 1).collect();
                        format!("{cut}…")
                    } else {
                        l.to_owned()
                    }
                })
                .collect(),
        }
    };
    let line = |mark: &str, label: &str, cells: &[String]| {
        let mut row = format!("  {mark} {label:<24}");
        for c in cells {
            row.push_str(&format!(" {c:<WIDTH$} "));
        }
        println!("{}", row.trim_end());
    };
    println!();
    let titles: &[&str] = if with_base {
        &["base", "A", "B"]
    } else {
        &["A", "B"]
    };
    line(
        " ",
        "field",
        &titles.iter().map(|t| (*t).to_owned()).collect::<Vec<_>>(),
    );
    for f in fields {
        let mark = if f.conflict {
            "!"
        } else if f.differs {
            "*"
        } else {
            " "
        };
        let mut columns = vec![cell(&f.a), cell(&f.b)];
        if with_base {
            columns.insert(0, cell(&f.base));
        }
        let rows = columns.iter().map(Vec::len).max().unwrap_or(0);
        for i in 0..rows {
            let cells: Vec<String> = columns
                .iter()
                .map(|c| c.get(i).cloned().unwrap_or_default())
                .collect();
            if i == 0 {
                line(mark, &f.label, &cells);
            } else {
                line(" ", "", &cells);
            }
        }
    }
    let needed: Vec<&str> = fields
        .iter()
        .filter(|f| f.conflict)
        .map(|f| f.name.as_str())
        .collect();
    if !needed.is_empty() {
        println!(
            "\n  ! needs a choice: --pick \"{}=a|b\"{otherwise}",
            needed.join("=a|b\" --pick \"")
        );
    }
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

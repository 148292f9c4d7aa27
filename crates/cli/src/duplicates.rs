//! `concord duplicates list|show|merge`: likely duplicate contacts from the command line.
//! Thin: each parses, calls one of core's operations (`Concord::duplicates`, ...) and prints.

use std::collections::BTreeMap;

use clap::Subcommand;
use concord_core::Concord;
use concord_core::sync::Side;
use concord_core::sync::resolve::duplicates::{Contact, Duplicate};

use crate::conflicts::{parse_pick, print_fields, print_preview};
use crate::{print_json, runtime};

#[derive(Debug, Subcommand)]
pub enum DuplicatesCommand {
    /// Contacts that are likely one person (same email, phone or name)
    List,
    /// One likely duplicate: both contacts field by field
    Show { id: String },
    /// Merge B into A: emails, phones and addresses are combined; where the two differ,
    /// choose with --pick. B is deleted; both old versions are kept in history
    Merge {
        id: String,
        /// Choose one field's version, e.g. `--pick FN=b`
        #[arg(long, value_name = "FIELD=a|b", value_parser = parse_pick)]
        pick: Vec<(String, Side)>,
        /// Print the merged contact without writing anything
        #[arg(long)]
        preview: bool,
    },
}

pub fn run(concord: &Concord, cmd: DuplicatesCommand, json: bool) -> Result<(), String> {
    match cmd {
        DuplicatesCommand::List => {
            let found = concord.duplicates().map_err(|e| e.to_string())?;
            if json {
                return print_json(&found);
            }
            if found.is_empty() {
                println!("No likely duplicates.");
            }
            for d in &found {
                print_duplicate(d);
            }
            Ok(())
        }
        DuplicatesCommand::Show { id } => {
            let duplicate = concord.duplicate(&id).map_err(|e| e.to_string())?;
            if json {
                return print_json(&duplicate);
            }
            print_duplicate(&duplicate);
            print_fields(&duplicate.fields, false, "");
            Ok(())
        }
        DuplicatesCommand::Merge { id, pick, preview } => {
            let picks: BTreeMap<String, Side> = pick.into_iter().collect();
            if preview {
                let preview = concord
                    .duplicate_preview(&id, &picks)
                    .map_err(|e| e.to_string())?;
                return print_preview(&preview, json);
            }
            let merged = runtime()?
                .block_on(concord.merge_duplicate(&id, &picks))
                .map_err(|e| e.to_string())?;
            if json {
                return print_json(&merged);
            }
            println!(
                "Merged {} into {}; the old versions are in `concord history {}`.",
                merged.removed_uid, merged.kept_uid, merged.kept_uid
            );
            Ok(())
        }
    }
}

fn contact(c: &Contact) -> String {
    let mut parts = vec![
        c.details
            .title
            .clone()
            .unwrap_or_else(|| "(no name)".into()),
    ];
    parts.extend(c.details.emails.iter().cloned());
    parts.extend(c.details.phones.iter().cloned());
    format!("{} ({}, {})", parts.join(", "), c.pair, c.uid)
}

fn print_duplicate(d: &Duplicate) {
    println!("{}  {}", d.id, d.reasons.join("; "));
    println!("    A: {}", contact(&d.a));
    println!("    B: {}", contact(&d.b));
}

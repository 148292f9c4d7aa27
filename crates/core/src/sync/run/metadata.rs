//! A pair's collection metadata: display name and colour, between a DAV collection
//! (`DAV:displayname`, Apple `calendar-color`, written with PROPPATCH), a vdir (the files
//! `displayname` and `color`, as vdirsyncer and khal use them) and a webcal feed (read only:
//! the calendar's NAME or X-WR-CALNAME and its colour). Three-way against the values
//! both sides agreed on last time (kept on the pair), following the pair's direction; each
//! side's value is kept in `storages.display_name` / `color` (both by `state::metadata`). An
//! unchanged value writes nothing.

use std::fs;
use std::io::Write;
use std::path::Path;

use libdav::PropertyName;
use libdav::dav::{GetProperties, SetProperty};
use libdav::names;

use super::PairSync;
use crate::dav::bounded;
use crate::sync::SyncError;
use crate::sync::item::ItemKind;
use crate::sync::state::metadata;
use crate::sync::state::{ConflictPolicy, Direction, Pair, Side, now_ms};
use crate::sync::storage::{Storage, StorageError, VALUE_CHARS_MAX};

pub use crate::sync::state::metadata::Metadata;

/// A pair's metadata is compared at most this often by scheduled syncs (each look costs a
/// request per DAV side); `force` looks now.
pub const CHECK_INTERVAL_MS: i64 = 60 * 60 * 1000;
/// The vdir files (vdirsyncer's names).
pub const DISPLAY_NAME_FILE: &str = "displayname";
pub const COLOR_FILE: &str = "color";

/// The two fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    DisplayName,
    Color,
}

impl Field {
    fn file(self) -> &'static str {
        match self {
            Field::DisplayName => DISPLAY_NAME_FILE,
            Field::Color => COLOR_FILE,
        }
    }

    fn property(self) -> &'static PropertyName<'static, 'static> {
        match self {
            Field::DisplayName => &names::DISPLAY_NAME,
            Field::Color => &names::CALENDAR_COLOUR,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Field::DisplayName => "display name",
            Field::Color => "colour",
        }
    }
}

// `Metadata` is defined where it is kept (`state::metadata`); which field is which is here.
impl Metadata {
    fn get(&self, field: Field) -> Option<&str> {
        match field {
            Field::DisplayName => self.display_name.as_deref(),
            Field::Color => self.color.as_deref(),
        }
    }

    fn set(&mut self, field: Field, value: Option<String>) {
        match field {
            Field::DisplayName => self.display_name = value,
            Field::Color => self.color = value,
        }
    }
}

fn clean(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().chars().take(VALUE_CHARS_MAX).collect::<String>())
        .filter(|v| !v.is_empty())
}

/// Reads a storage's metadata. `None`: nothing to compare yet (a webcal feed not checked by
/// this process; its name and colour come with its download, never by a request of their own).
pub async fn read(storage: &Storage) -> Result<Option<Metadata>, StorageError> {
    match storage {
        Storage::Vdir(vdir) => {
            let file = |name: &str| -> Result<Option<String>, StorageError> {
                let path = vdir.path().join(name);
                match fs::read(&path) {
                    Ok(bytes) => Ok(clean(Some(String::from_utf8_lossy(&bytes).into_owned()))),
                    Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(StorageError::Io {
                        what: "reading",
                        path: path.display().to_string(),
                        source,
                    }),
                }
            };
            Ok(Some(Metadata {
                display_name: file(DISPLAY_NAME_FILE)?,
                color: file(COLOR_FILE)?,
            }))
        }
        Storage::Dav(dav) => {
            let client = dav.client();
            let properties: Vec<&PropertyName<'_, '_>> = match dav.kind() {
                ItemKind::Calendar => vec![&names::DISPLAY_NAME, &names::CALENDAR_COLOUR],
                ItemKind::Contact => vec![&names::DISPLAY_NAME],
            };
            let found = bounded(
                client,
                "reading the collection's name and colour",
                dav.href(),
                client.request(GetProperties::new(dav.href(), &properties)),
            )
            .await?;
            let mut metadata = Metadata::default();
            for (name, value) in found.values {
                if *name == names::DISPLAY_NAME {
                    metadata.display_name = clean(value);
                } else if *name == names::CALENDAR_COLOUR {
                    metadata.color = clean(value);
                }
            }
            Ok(Some(metadata))
        }
        Storage::Webcal(webcal) => Ok(webcal.about().map(|about| Metadata {
            display_name: clean(about.name),
            color: clean(about.color),
        })),
        // Holds no metadata: nothing to compare.
        Storage::Memory(_) => Ok(None),
    }
}

/// Writes one field (None removes it).
pub async fn write(
    storage: &Storage,
    field: Field,
    value: Option<&str>,
) -> Result<(), StorageError> {
    match storage {
        Storage::Vdir(vdir) => write_file(vdir.path(), field.file(), value),
        Storage::Dav(dav) => {
            let client = dav.client();
            bounded(
                client,
                "changing the collection's name or colour",
                dav.href(),
                client.request(SetProperty::new(dav.href(), field.property(), value)),
            )
            .await?;
            Ok(())
        }
        Storage::Webcal(webcal) => Err(StorageError::ReadOnly(webcal.url().to_owned())),
        Storage::Memory(_) => Ok(()),
    }
}

/// Replaces a vdir metadata file atomically (vdirsyncer writes the bare value).
fn write_file(folder: &Path, name: &str, value: Option<&str>) -> Result<(), StorageError> {
    let path = folder.join(name);
    let io = |what: &'static str, path: &Path| {
        let path = path.display().to_string();
        move |source| StorageError::Io { what, path, source }
    };
    let Some(value) = value else {
        return match fs::remove_file(&path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                Err(io("removing", &path)(err))
            }
            _ => Ok(()),
        };
    };
    fs::create_dir_all(folder).map_err(io("creating the folder", folder))?;
    let temp = folder.join(format!(".{name}.concord-{}.tmp", std::process::id()));
    let mut file = fs::File::create(&temp).map_err(io("writing", &temp))?;
    file.write_all(value.as_bytes())
        .map_err(io("writing", &temp))?;
    file.sync_all().map_err(io("syncing", &temp))?;
    fs::rename(&temp, &path).map_err(io("replacing", &path))
}

/// Which side's value goes where, for one field. `None`: nothing to write.
fn decide(
    base: Option<&str>,
    first_time: bool,
    a: Option<&str>,
    b: Option<&str>,
    direction: Direction,
    policy: ConflictPolicy,
) -> Option<Side> {
    if a == b {
        return None;
    }
    let winner = if first_time {
        // Nothing agreed yet: the side changes flow from, else the one that has a value.
        match direction {
            Direction::AToB => Side::A,
            Direction::BToA => Side::B,
            Direction::TwoWay if a.is_some() => Side::A,
            Direction::TwoWay => Side::B,
        }
    } else {
        match (a != base, b != base) {
            (true, false) => Side::A,
            (false, true) => Side::B,
            (false, false) => return None,
            // Both changed it differently.
            (true, true) => match (direction, policy) {
                (Direction::BToA, _) | (Direction::TwoWay, ConflictPolicy::BWins) => Side::B,
                _ => Side::A,
            },
        }
    };
    // The winner's value is written to the other side only if changes may flow there.
    direction.writes(winner.other()).then_some(winner)
}

/// Compares and carries a pair's display name and colour. Returns one line per change made.
/// Without `force`, a pair looked at less than [`CHECK_INTERVAL_MS`] ago is left alone.
pub async fn sync_metadata(sync: &PairSync, force: bool) -> Result<Vec<String>, SyncError> {
    let pair: &Pair = sync.pair();
    let before = metadata::agreed(&sync.conn(), pair.id)?;
    let now = now_ms();
    if !force
        && before
            .checked_at_ms
            .is_some_and(|at| now.saturating_sub(at) < CHECK_INTERVAL_MS)
    {
        return Ok(Vec::new());
    }
    let (Some(mut a), Some(mut b)) = (
        read(sync.storage(Side::A)).await?,
        read(sync.storage(Side::B)).await?,
    ) else {
        return Ok(Vec::new());
    };
    let fields: &[Field] = match pair.a.item_kind {
        ItemKind::Calendar => &[Field::DisplayName, Field::Color],
        ItemKind::Contact => &[Field::DisplayName],
    };
    let first_time = before.checked_at_ms.is_none();
    let mut agreed_now = before.values.clone();
    let mut changes = Vec::new();
    for &field in fields {
        let winner = decide(
            before.values.get(field),
            first_time,
            a.get(field),
            b.get(field),
            pair.direction,
            pair.conflict_policy,
        );
        match winner {
            Some(from) => {
                let (source, target) = match from {
                    Side::A => (&a, &mut b),
                    Side::B => (&b, &mut a),
                };
                let value = source.get(field).map(str::to_owned);
                write(sync.storage(from.other()), field, value.as_deref()).await?;
                target.set(field, value.clone());
                changes.push(format!(
                    "{} of side {} set to {}",
                    field.label(),
                    from.other().as_str(),
                    value
                        .as_deref()
                        .map_or_else(|| "nothing".to_owned(), |v| format!("{v:?}"))
                ));
                agreed_now.set(field, value);
            }
            None if a.get(field) == b.get(field) => {
                agreed_now.set(field, a.get(field).map(str::to_owned));
            }
            // A one-way pair whose receiving side changed: left as it is.
            None => {}
        }
    }
    let conn = sync.conn();
    metadata::set_agreed(&conn, pair.id, now, &agreed_now)?;
    for (side, values) in [(Side::A, &a), (Side::B, &b)] {
        metadata::set_storage_metadata(&conn, pair.storage(side).id, values)?;
    }
    Ok(changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_changed_side_wins_and_direction_is_respected() {
        let two = Direction::TwoWay;
        let ask = ConflictPolicy::Ask;
        // Unchanged: nothing.
        assert_eq!(
            decide(Some("x"), false, Some("x"), Some("x"), two, ask),
            None
        );
        // One side changed.
        assert_eq!(
            decide(Some("x"), false, Some("y"), Some("x"), two, ask),
            Some(Side::A)
        );
        assert_eq!(
            decide(Some("x"), false, Some("x"), None, two, ask),
            Some(Side::B)
        );
        // One way: a change on the receiving side does not flow back.
        assert_eq!(
            decide(Some("x"), false, Some("x"), Some("y"), Direction::AToB, ask),
            None
        );
        // First time: the side that has a value.
        assert_eq!(decide(None, true, None, Some("y"), two, ask), Some(Side::B));
        // Both changed: the policy decides.
        assert_eq!(
            decide(
                Some("x"),
                false,
                Some("a"),
                Some("b"),
                two,
                ConflictPolicy::BWins
            ),
            Some(Side::B)
        );
    }

    #[test]
    fn vdir_files_hold_the_bare_value() {
        let dir = tempfile::tempdir().unwrap();
        write_file(dir.path(), COLOR_FILE, Some("#112233")).unwrap();
        assert_eq!(
            fs::read_to_string(dir.path().join(COLOR_FILE)).unwrap(),
            "#112233"
        );
        write_file(dir.path(), COLOR_FILE, None).unwrap();
        assert!(!dir.path().join(COLOR_FILE).exists());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "no temp files"
        );
    }
}

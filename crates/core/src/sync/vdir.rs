//! A vdir folder: one `.ics` or `.vcf` file per item, as khal, khard, todoman and vdirsyncer
//! read and write it. The href is the file name; the etag is modification time, size and
//! inode (as vdirsyncer uses mtime), so an edit by any program is noticed. Writes go to a
//! temporary file that is synced and then renamed into place, so a crash never leaves half an
//! item; a create never replaces an existing file. The folder itself is synced by
//! [`Vdir::sync_dir`], once per batch of writes, before the sync records them.

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::item::ItemKind;
use super::storage::{Fetched, Listed, Listing, StorageError, name_for_uid};

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

#[derive(Debug)]
pub struct Vdir {
    path: PathBuf,
    kind: ItemKind,
}

impl Vdir {
    /// The folder at `path` (created if missing) holding items of `kind`.
    pub fn open(path: &Path, kind: ItemKind) -> Result<Self, StorageError> {
        fs::create_dir_all(path).map_err(io("creating the folder", path))?;
        Ok(Self {
            path: path.to_path_buf(),
            kind,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn kind(&self) -> ItemKind {
        self.kind
    }

    /// Every item file, with its etag. Always complete.
    pub fn list(&self) -> Result<Listing, StorageError> {
        let mut changed = Vec::new();
        let entries = fs::read_dir(&self.path).map_err(io("listing", &self.path))?;
        for entry in entries {
            let entry = entry.map_err(io("listing", &self.path))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') || !name.ends_with(&format!(".{}", self.kind.extension())) {
                continue;
            }
            let meta = entry.metadata().map_err(io("reading", &entry.path()))?;
            if meta.is_file() {
                changed.push(Listed {
                    href: name,
                    etag: etag_of(&meta),
                });
            }
        }
        changed.sort_by(|a, b| a.href.cmp(&b.href));
        Ok(Listing {
            complete: true,
            changed,
            ..Listing::default()
        })
    }

    pub fn fetch(&self, hrefs: &[String]) -> Result<Vec<Fetched>, StorageError> {
        let mut out = Vec::with_capacity(hrefs.len());
        for href in hrefs {
            let path = self.file(href)?;
            match fs::read(&path) {
                Ok(raw) => {
                    let meta = fs::metadata(&path).map_err(io("reading", &path))?;
                    out.push(Fetched {
                        href: href.clone(),
                        etag: etag_of(&meta),
                        raw,
                    });
                }
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
                Err(err) => return Err(io("reading", &path)(err)),
            }
        }
        Ok(out)
    }

    pub fn create(&self, uid: &str, raw: &[u8]) -> Result<Listed, StorageError> {
        let name = name_for_uid(uid, self.kind);
        let target = self.file(&name)?;
        let temp = self.write_temp(raw)?;
        // A hard link fails if the name exists: the create is "If-None-Match: *".
        let linked = fs::hard_link(&temp, &target);
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(StorageError::Changed { href: name });
            }
            Err(err) => return Err(io("creating", &target)(err)),
        }
        let meta = fs::metadata(&target).map_err(io("reading", &target))?;
        Ok(Listed {
            href: name,
            etag: etag_of(&meta),
        })
    }

    pub fn update(&self, href: &str, etag: &str, raw: &[u8]) -> Result<String, StorageError> {
        let target = self.file(href)?;
        self.check_etag(&target, href, etag)?;
        let temp = self.write_temp(raw)?;
        fs::rename(&temp, &target).map_err(io("replacing", &target))?;
        let meta = fs::metadata(&target).map_err(io("reading", &target))?;
        Ok(etag_of(&meta))
    }

    pub fn delete(&self, href: &str, etag: &str) -> Result<(), StorageError> {
        let target = self.file(href)?;
        match self.check_etag(&target, href, etag) {
            Err(StorageError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(());
            }
            other => other?,
        }
        fs::remove_file(&target).map_err(io("deleting", &target))
    }

    /// The path of an href, refusing anything that is not a plain file name in this folder.
    fn file(&self, href: &str) -> Result<PathBuf, StorageError> {
        let plain = !href.is_empty() && !href.starts_with('.') && !href.contains(['/', '\\', '\0']);
        if !plain {
            return Err(StorageError::Invalid(format!(
                "{href:?} is not a file name inside {}",
                self.path.display()
            )));
        }
        Ok(self.path.join(href))
    }

    fn check_etag(&self, path: &Path, href: &str, etag: &str) -> Result<(), StorageError> {
        let meta = fs::metadata(path).map_err(io("reading", path))?;
        if etag_of(&meta) == etag {
            Ok(())
        } else {
            Err(StorageError::Changed {
                href: href.to_owned(),
            })
        }
    }

    fn write_temp(&self, raw: &[u8]) -> Result<PathBuf, StorageError> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = self
            .path
            .join(format!(".concord-{}-{n}.tmp", std::process::id()));
        let mut file = fs::File::create(&temp).map_err(io("writing", &temp))?;
        file.write_all(raw).map_err(io("writing", &temp))?;
        file.sync_all().map_err(io("syncing", &temp))?;
        Ok(temp)
    }

    /// Makes renames and removals in the folder durable.
    pub fn sync_dir(&self) -> Result<(), StorageError> {
        fs::File::open(&self.path)
            .and_then(|dir| dir.sync_all())
            .map_err(io("syncing", &self.path))
    }
}

fn etag_of(meta: &fs::Metadata) -> String {
    format!(
        "{}.{:09};{};{}",
        meta.mtime(),
        meta.mtime_nsec(),
        meta.size(),
        meta.ino()
    )
}

fn io<'p>(what: &'static str, path: &'p Path) -> impl Fn(std::io::Error) -> StorageError + 'p {
    move |source| StorageError::Io {
        what,
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_update_delete_are_conditional_and_atomic() {
        let dir = tempfile::tempdir().unwrap();
        let vdir = Vdir::open(dir.path(), ItemKind::Calendar).unwrap();
        let made = vdir.create("u1", b"one").unwrap();
        assert_eq!(made.href, "u1.ics");
        assert!(vdir.create("u1", b"again").unwrap_err().is_changed());
        let etag = vdir.update("u1.ics", &made.etag, b"two").unwrap();
        assert!(
            vdir.update("u1.ics", &made.etag, b"stale")
                .unwrap_err()
                .is_changed()
        );
        assert_eq!(fs::read(dir.path().join("u1.ics")).unwrap(), b"two");
        let listing = vdir.list().unwrap();
        assert_eq!(
            listing.changed.len(),
            1,
            "no temp files remain: {listing:?}"
        );
        vdir.delete("u1.ics", &etag).unwrap();
        vdir.delete("u1.ics", &etag).unwrap();
        assert!(vdir.list().unwrap().changed.is_empty());
    }

    #[test]
    fn hostile_uids_stay_inside_the_folder() {
        let parent = tempfile::tempdir().unwrap();
        let inner = parent.path().join("cal");
        let vdir = Vdir::open(&inner, ItemKind::Calendar).unwrap();
        for uid in ["../escape", "/etc/x", "a/../../b", ".."] {
            let made = vdir.create(uid, b"x").unwrap();
            assert!(inner.join(&made.href).is_file(), "{uid}: {}", made.href);
        }
        assert_eq!(fs::read_dir(parent.path()).unwrap().count(), 1);
        assert!(vdir.fetch(&["../x.ics".to_owned()]).is_err());
    }
}

//! A vdir folder: one `.ics` or `.vcf` file per item, as khal, khard, todoman and vdirsyncer
//! read and write it. The href is the file name; the etag is modification time, size and
//! inode (as vdirsyncer uses mtime), so an edit by any program is noticed. Writes go to a
//! temporary file that is made durable and then linked or renamed into place, so a crash never
//! leaves half an item; a create never replaces an existing file. [`Vdir::write_many`] writes a
//! batch's temporary files, syncs them from several threads at once (the disk's cache flushes
//! are then shared), then moves them into place. The folder itself is synced by
//! [`Vdir::sync_dir`], once per batch of writes, before the sync records them. Temporary files
//! a killed process left behind are removed by a later listing once they are stale. A file an
//! update or delete removes is freed on another thread (see [`release`]).

use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};

use super::{Fetched, ItemWrite, Listed, Listing, StorageError, name_for_uid};
use crate::sync::item::ItemKind;

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Temporary files are named `.concord-PID-N.tmp`: hidden from khal and vdirsyncer.
const TEMP_PREFIX: &str = ".concord-";
const TEMP_SUFFIX: &str = ".tmp";
/// A temporary file this old was left by a process that died mid-batch; listing removes it.
pub const TEMP_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// Up to this many files a batch writes and syncs in the calling thread; more, from several
/// threads (even 2 files took 1.8 ms from two threads, 2.1 ms one after another).
pub const FSYNC_EACH_MAX: usize = 1;
/// Threads writing and syncing a batch's files: concurrent `fsync`s share the disk's cache
/// flushes, where one after another each waits for its own (5,000 events: 8 threads took
/// about 200 ms longer than 64; 128 were no faster).
pub const SYNC_THREADS_MAX: usize = 64;
/// Up to this many files, each gets a thread of its own.
pub const SYNC_THREADS_EACH_MAX: usize = 16;
/// Beyond that, each thread writes at least this many files: starting a thread costs about
/// what writing a file does, and 17 `fsync`s in flight share the flushes as well as 50 do
/// (50 updates: 6.5 ms of writing from 17 threads, 8.2 ms from 50).
pub const FILES_PER_THREAD_MIN: usize = 3;
/// Replaced files waiting to be freed (see [`release`]); past this, moving waits for freeing.
pub const RELEASE_QUEUE_MAX: usize = 128;

/// A batch's files made durable under temporary names, not yet in place (see [`Vdir::stage`]);
/// dropped, it removes the temporary files still there.
pub struct StagedBatch {
    staged: Vec<Result<Staged, StorageError>>,
    cleanup: TempFiles,
}

/// A temporary file written, not yet durable nor in place.
struct Staged {
    temp: PathBuf,
    target: PathBuf,
    href: String,
    etag: String,
}

#[derive(Debug, Clone)]
pub struct Vdir {
    path: PathBuf,
    kind: ItemKind,
}

impl Vdir {
    /// The folder at `path` holding items of `kind`. Nothing is created until the first write:
    /// a folder that is missing (never written, or gone with an unmounted disk) lists empty,
    /// which the emptied-side guard catches when items were synced there; and a dry run
    /// leaves no trace.
    pub fn open(path: &Path, kind: ItemKind) -> Result<Self, StorageError> {
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
        let extension = format!(".{}", self.kind.extension());
        let entries = match fs::read_dir(&self.path) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Listing {
                    complete: true,
                    ..Listing::default()
                });
            }
            entries => entries.map_err(io("listing", &self.path))?,
        };
        for entry in entries {
            let entry = entry.map_err(io("listing", &self.path))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            if name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) {
                remove_if_stale(&entry.path());
                continue;
            }
            if name.starts_with('.') || !name.ends_with(&extension) {
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
        let mut done = self.write_many(&[ItemWrite::Create { uid, raw }])?;
        done.pop()
            .unwrap_or_else(|| Err(StorageError::Invalid("no write was made".to_owned())))
    }

    pub fn update(&self, href: &str, etag: &str, raw: &[u8]) -> Result<String, StorageError> {
        let mut done = self.write_many(&[ItemWrite::Update { href, etag, raw }])?;
        done.pop()
            .unwrap_or_else(|| Err(StorageError::Invalid("no write was made".to_owned())))
            .map(|listed| listed.etag)
    }

    /// Makes a batch of writes, each atomic and durable: every temporary file is written and
    /// synced (see [`in_parallel`]), then each is linked (create) or renamed (update) into
    /// place. The outer error is one that stops the whole batch (nothing was moved into
    /// place); each write has its own result, a lost condition being "changed", and the
    /// results stop after any failure other than that or a refusal. Call [`Vdir::sync_dir`] before recording them.
    pub fn write_many(
        &self,
        writes: &[ItemWrite<'_>],
    ) -> Result<Vec<Result<Listed, StorageError>>, StorageError> {
        let staged = self.stage(writes)?;
        Ok(self.place(writes, staged))
    }

    /// The first half of [`Vdir::write_many`]: each file written to a temporary file and made
    /// durable, nothing in place yet (dropping the result removes them). An error means none
    /// can be placed.
    pub fn stage(&self, writes: &[ItemWrite<'_>]) -> Result<StagedBatch, StorageError> {
        fs::create_dir_all(&self.path).map_err(io("creating the folder", &self.path))?;
        let targets: Vec<(String, Result<PathBuf, StorageError>, &[u8])> = writes
            .iter()
            .map(|write| {
                let (href, raw) = match *write {
                    ItemWrite::Create { uid, raw } => (name_for_uid(uid, self.kind), raw),
                    ItemWrite::Update { href, raw, .. } => (href.to_owned(), raw),
                };
                let target = self.file(&href);
                (href, target, raw)
            })
            .collect();
        let temps = in_parallel(&targets, |(_, target, raw)| match target {
            Ok(_) => self.write_temp(raw).map(Some),
            Err(_) => Ok(None),
        })?;
        let mut cleanup = TempFiles(Vec::with_capacity(writes.len()));
        let mut unsynced = None;
        let mut staged = Vec::with_capacity(writes.len());
        for ((href, target, _), temp) in targets.into_iter().zip(temps) {
            staged.push(target.and_then(|target| {
                let written = temp?
                    .ok_or_else(|| StorageError::Invalid(format!("{href} was not written")))?;
                cleanup.0.push(written.temp.clone());
                if let Err(err) = written.synced {
                    unsynced.get_or_insert(err);
                }
                Ok(Staged {
                    temp: written.temp,
                    target,
                    href,
                    etag: written.etag,
                })
            }));
        }
        // A file that could not be made durable stops the batch before anything is in place.
        if let Some(err) = unsynced {
            return Err(err);
        }
        Ok(StagedBatch { staged, cleanup })
    }

    /// The second half of [`Vdir::write_many`]: the staged files of `writes` (as
    /// [`Vdir::stage`] was given them) moved into place, in order.
    pub fn place(
        &self,
        writes: &[ItemWrite<'_>],
        batch: StagedBatch,
    ) -> Vec<Result<Listed, StorageError>> {
        let StagedBatch { staged, cleanup } = batch;
        let mut done = Vec::with_capacity(writes.len());
        for (write, staged) in writes.iter().zip(staged) {
            let result = staged.and_then(|staged| self.move_into_place(write, staged));
            let stop = result.as_ref().is_err_and(|err| !err.is_item_only());
            done.push(result);
            if stop {
                break;
            }
        }
        drop(cleanup);
        done
    }

    pub fn delete(&self, href: &str, etag: &str) -> Result<(), StorageError> {
        let target = self.file(href)?;
        match self.check_etag(&target, href, etag) {
            Err(StorageError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                Ok(())
            }
            other => {
                let removed = other?;
                fs::remove_file(&target).map_err(io("deleting", &target))?;
                release(removed);
                Ok(())
            }
        }
    }

    /// Links (create) or renames (update) a durable temporary file to its name.
    fn move_into_place(
        &self,
        write: &ItemWrite<'_>,
        staged: Staged,
    ) -> Result<Listed, StorageError> {
        match *write {
            // A hard link fails if the name exists: the create is "If-None-Match: *".
            ItemWrite::Create { .. } => match fs::hard_link(&staged.temp, &staged.target) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(StorageError::Changed { href: staged.href });
                }
                Err(err) => return Err(io("creating", &staged.target)(err)),
            },
            ItemWrite::Update { etag, .. } => {
                let replaced = self.check_etag(&staged.target, &staged.href, etag)?;
                fs::rename(&staged.temp, &staged.target)
                    .map_err(io("replacing", &staged.target))?;
                release(replaced);
            }
        }
        Ok(Listed {
            href: staged.href,
            etag: staged.etag,
        })
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

    /// The file at `path`, held (see [`hold`]), if it is still at `etag`; else "changed".
    fn check_etag(
        &self,
        path: &Path,
        href: &str,
        etag: &str,
    ) -> Result<Option<fs::File>, StorageError> {
        let held = hold(path);
        let meta = match &held {
            Ok(file) => file.metadata(),
            Err(_) => fs::metadata(path),
        }
        .map_err(io("reading", path))?;
        if etag_of(&meta) == etag {
            Ok(held.ok())
        } else {
            Err(StorageError::Changed {
                href: href.to_owned(),
            })
        }
    }

    /// Writes `raw` to a new temporary file in the folder and syncs it; returns it, the etag
    /// the item will have once linked or renamed into place (the same inode), and whether it
    /// is durable.
    fn write_temp(&self, raw: &[u8]) -> Result<TempWrite, StorageError> {
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = self.path.join(format!(
            "{TEMP_PREFIX}{}-{n}{TEMP_SUFFIX}",
            std::process::id()
        ));
        let mut file = fs::File::create_new(&temp).map_err(io("writing", &temp))?;
        file.write_all(raw).map_err(io("writing", &temp))?;
        let meta = file.metadata().map_err(io("reading", &temp))?;
        let synced = file.sync_all().map_err(io("syncing", &temp));
        Ok(TempWrite {
            temp,
            etag: etag_of(&meta),
            synced,
        })
    }

    /// Makes renames and removals in the folder durable.
    pub fn sync_dir(&self) -> Result<(), StorageError> {
        fs::File::open(&self.path)
            .and_then(|dir| dir.sync_all())
            .map_err(io("syncing", &self.path))
    }
}

/// Removes a temporary file older than [`TEMP_STALE_AFTER`]; best effort (a failure leaves a
/// hidden file that no reader of the vdir looks at).
fn remove_if_stale(path: &Path) {
    let stale = fs::symlink_metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
        .and_then(|modified| modified.elapsed().ok())
        .is_some_and(|age| age > TEMP_STALE_AFTER);
    if stale && let Err(err) = fs::remove_file(path) {
        tracing::debug!(path = %path.display(), %err, "a stale temporary file stays");
    }
}

/// Opens `path` without reading it (`O_PATH`: no permission needed, a FIFO does not block), so
/// that the inode stays alive past a rename or removal of its name. Like `fs::metadata`, it
/// follows a symbolic link.
#[cfg(target_os = "linux")]
fn hold(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH)
        .open(path)
}

#[cfg(not(target_os = "linux"))]
fn hold(_path: &Path) -> std::io::Result<fs::File> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// Frees a file whose last name is gone by closing it on a thread of its own. Freeing
/// happens at the last close; without the file held it would happen inside the rename or
/// unlink, with the folder locked, and with online discard (ext4 `-o discard`) that waits for
/// the disk to discard the blocks: about 0.14 ms a file, most of a 50-update batch's moves.
/// Names and new files are not touched: the unlinked inode is only freed later (a crash in
/// between leaves an orphan inode to fsck, as any program's open unlinked file does).
fn release(file: Option<fs::File>) {
    static QUEUE: OnceLock<Option<SyncSender<fs::File>>> = OnceLock::new();
    let Some(file) = file else { return };
    let queue = QUEUE.get_or_init(|| {
        let (sender, files) = sync_channel::<fs::File>(RELEASE_QUEUE_MAX);
        std::thread::Builder::new()
            .name("vdir-release".to_owned())
            .spawn(move || files.into_iter().for_each(drop))
            .ok()
            .map(|_| sender)
    });
    if let Some(queue) = queue
        && let Err(unsent) = queue.send(file)
    {
        drop(unsent.0);
    }
}

/// A temporary file written, and whether syncing it went through.
struct TempWrite {
    temp: PathBuf,
    etag: String,
    synced: Result<(), StorageError>,
}

/// `work` on each of `items`, in order, for work that waits on the disk: one item in this
/// thread, more from up to [`SYNC_THREADS_MAX`] threads (one per item up to
/// [`SYNC_THREADS_EACH_MAX`], beyond that [`FILES_PER_THREAD_MIN`] items or more each).
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    work: impl Fn(&T) -> R + Sync,
) -> Result<Vec<R>, StorageError> {
    if items.len() <= FSYNC_EACH_MAX {
        return Ok(items.iter().map(work).collect());
    }
    let threads = items
        .len()
        .div_ceil(FILES_PER_THREAD_MIN)
        .clamp(items.len().min(SYNC_THREADS_EACH_MAX), SYNC_THREADS_MAX);
    let per_thread = items.len().div_ceil(threads);
    let work = &work;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || chunk.iter().map(work).collect::<Vec<R>>()))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        for worker in workers {
            out.extend(worker.join().map_err(|_| {
                StorageError::Invalid("a thread writing the folder's files panicked".to_owned())
            })?);
        }
        Ok(out)
    })
}

/// Temporary files of a batch, removed when the batch is done (moved ones are gone already).
struct TempFiles(Vec<PathBuf>);

impl Drop for TempFiles {
    fn drop(&mut self) {
        for temp in &self.0 {
            let _ = fs::remove_file(temp);
        }
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
    use std::os::unix::fs::FileTypeExt;

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
    fn a_batch_writes_each_item_once_and_reports_lost_conditions_per_item() {
        let dir = tempfile::tempdir().unwrap();
        let vdir = Vdir::open(dir.path(), ItemKind::Calendar).unwrap();
        let kept = vdir.create("taken", b"someone else's").unwrap();
        let old = vdir.create("old", b"v1").unwrap();
        let other = vdir.create("other", b"v1").unwrap();
        let uids: Vec<String> = (0..SYNC_THREADS_EACH_MAX * 2)
            .map(|i| format!("new-{i}"))
            .collect();
        let mut writes: Vec<ItemWrite<'_>> = uids
            .iter()
            .map(|uid| ItemWrite::Create {
                uid,
                raw: uid.as_bytes(),
            })
            .collect();
        writes.push(ItemWrite::Create {
            uid: "taken",
            raw: b"ours",
        });
        writes.push(ItemWrite::update_of(&old, b"v2"));
        writes.push(ItemWrite::Update {
            href: &other.href,
            etag: "a stale etag",
            raw: b"v2",
        });
        let done = vdir.write_many(&writes).unwrap();
        assert_eq!(done.len(), writes.len());
        let listing = vdir.list().unwrap();
        let listed: std::collections::HashMap<_, _> = listing
            .changed
            .iter()
            .map(|l| (l.href.as_str(), l.etag.as_str()))
            .collect();
        for (uid, result) in uids.iter().zip(&done) {
            let made = result.as_ref().unwrap();
            assert_eq!(
                fs::read(dir.path().join(&made.href)).unwrap(),
                uid.as_bytes()
            );
            assert_eq!(
                listed[made.href.as_str()],
                made.etag,
                "the etag returned is the listed one"
            );
        }
        let n = uids.len();
        assert!(
            done[n].as_ref().unwrap_err().is_changed(),
            "a create never replaces"
        );
        assert_eq!(
            fs::read(dir.path().join(&kept.href)).unwrap(),
            b"someone else's"
        );
        let updated = done[n + 1].as_ref().unwrap();
        assert_eq!(fs::read(dir.path().join(&old.href)).unwrap(), b"v2");
        assert_eq!(listed[old.href.as_str()], updated.etag);
        assert!(
            done[n + 2].as_ref().unwrap_err().is_changed(),
            "a stale update is refused"
        );
        assert_eq!(fs::read(dir.path().join(&other.href)).unwrap(), b"v1");
        assert_eq!(listing.changed.len(), n + 3, "no temporary file remains");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), n + 3);
    }

    #[test]
    fn a_batch_replacing_more_files_than_wait_to_be_freed_writes_them_all() {
        let dir = tempfile::tempdir().unwrap();
        let vdir = Vdir::open(dir.path(), ItemKind::Calendar).unwrap();
        let uids: Vec<String> = (0..RELEASE_QUEUE_MAX + 20)
            .map(|i| format!("u{i}"))
            .collect();
        let creates: Vec<ItemWrite<'_>> = uids
            .iter()
            .map(|uid| ItemWrite::Create { uid, raw: b"v1" })
            .collect();
        let made: Vec<Listed> = vdir
            .write_many(&creates)
            .unwrap()
            .into_iter()
            .map(Result::unwrap)
            .collect();
        let raws: Vec<String> = uids.iter().map(|uid| format!("{uid} v2")).collect();
        let updates: Vec<ItemWrite<'_>> = made
            .iter()
            .zip(&raws)
            .map(|(listed, raw)| ItemWrite::update_of(listed, raw.as_bytes()))
            .collect();
        let done = vdir.write_many(&updates).unwrap();
        vdir.sync_dir().unwrap();
        let listing = vdir.list().unwrap();
        assert_eq!(
            listing.changed.len(),
            uids.len(),
            "no temporary file remains"
        );
        for ((listed, raw), result) in made.iter().zip(&raws).zip(&done) {
            let updated = result.as_ref().unwrap();
            assert_eq!(
                updated.href, listed.href,
                "results come back in input order"
            );
            assert_eq!(
                fs::read(dir.path().join(&listed.href)).unwrap(),
                raw.as_bytes()
            );
            assert!(
                listing.changed.contains(updated),
                "{updated:?} is as listed"
            );
        }
        for listed in &listing.changed {
            vdir.delete(&listed.href, &listed.etag).unwrap();
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn an_update_or_delete_over_a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let vdir = Vdir::open(dir.path(), ItemKind::Calendar).unwrap();
        let made = vdir.create("u1", b"one").unwrap();
        let target = dir.path().join(&made.href);
        fs::remove_file(&target).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(&target)
            .status()
            .unwrap();
        assert!(status.success());
        let refused = vdir.update(&made.href, &made.etag, b"two").unwrap_err();
        assert!(refused.is_changed(), "{refused}");
        assert!(
            vdir.delete(&made.href, &made.etag)
                .unwrap_err()
                .is_changed()
        );
        assert!(fs::symlink_metadata(&target).unwrap().file_type().is_fifo());
    }

    #[test]
    fn temporary_files_left_by_a_dead_process_are_removed_when_stale() {
        let dir = tempfile::tempdir().unwrap();
        let vdir = Vdir::open(dir.path(), ItemKind::Calendar).unwrap();
        let stale = dir.path().join(".concord-1-7.tmp");
        let fresh = dir.path().join(".concord-1-8.tmp");
        fs::write(&stale, b"half").unwrap();
        fs::write(&fresh, b"being written").unwrap();
        let hours_ago = std::time::SystemTime::now() - 2 * TEMP_STALE_AFTER;
        fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(hours_ago)
            .unwrap();
        vdir.create("u1", b"one").unwrap();
        let listing = vdir.list().unwrap();
        assert_eq!(listing.changed.len(), 1, "{listing:?}");
        assert!(!stale.exists(), "a stale temporary file is removed");
        assert!(
            fresh.exists(),
            "another process's write in progress is left alone"
        );
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

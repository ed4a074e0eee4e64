//! Reading `partitions.conf` and replacing it atomically: a temporary file in the same directory,
//! written, flushed to disk and renamed over the original, so that OpenSM (or anyone) reading the file
//! sees either the old or the new text, never a part. Writers of ib-kubernetes (the built-in manager,
//! concurrent plugin processes, a second replica during a leader change) take an exclusive lock on a
//! file of their own next to it first. People editing the file are not locked out; a change of the file
//! between our read and our rename is detected and the rewrite is given up, never written over.
//!
//! Everything here blocks; callers run it on a blocking thread under their time limit.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Larger than any partitions file we plan for (100,000 GUIDs at 26 bytes each are 2.6 MB): a bigger
/// file is refused rather than read into memory.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// How often a lock held by another writer is tried again.
const LOCK_RETRY: Duration = Duration::from_millis(10);

/// Why the partitions file could not be read or rewritten.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// An I/O call on the file failed.
    #[error("{path}: cannot {action}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What was being done to it.
        action: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is larger than this reads.
    #[error("{path}: {size} bytes, larger than the {MAX_FILE_BYTES} bytes this reads")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size in bytes.
        size: u64,
    },
    /// The path is not a regular file.
    #[error("{path}: not a regular file")]
    NotAFile {
        /// The file.
        path: String,
    },
    /// Another writer held the lock for longer than the call may wait.
    #[error("{lock}: another ib-kubernetes writer held the lock for {waited:?}")]
    Locked {
        /// The lock file.
        lock: String,
        /// How long this writer waited for it.
        waited: Duration,
    },
    /// The file changed between reading it and replacing it.
    #[error("{path} was changed by someone else while ib-kubernetes was rewriting it; the rewrite was given up")]
    ChangedMeanwhile {
        /// The file.
        path: String,
    },
}

impl FileError {
    fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> FileError + 'a {
        move |source| FileError::Io { path: path.display().to_string(), action, source }
    }
}

/// What identifies one version of the file: a rename or an in-place write changes at least one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The file's content and the version it was read from.
#[derive(Debug)]
pub struct Snapshot {
    /// The file's content.
    pub bytes: Vec<u8>,
    /// What identifies this version of the file, to notice a change before replacing it.
    pub stamp: Stamp,
    mode: u32,
}

/// The file a path names, symbolic links followed: the rename must replace the file, not the link.
pub fn resolve(path: &Path) -> Result<PathBuf, FileError> {
    std::fs::canonicalize(path).map_err(FileError::io(path, "find the file"))
}

/// Reads the file at `path`, refusing what is not a regular file or too large.
pub fn read(path: &Path) -> Result<Snapshot, FileError> {
    let mut file = File::open(path).map_err(FileError::io(path, "open it for reading"))?;
    let meta = file.metadata().map_err(FileError::io(path, "read its metadata"))?;
    if !meta.is_file() {
        return Err(FileError::NotAFile { path: path.display().to_string() });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(FileError::TooLarge { path: path.display().to_string(), size: meta.len() });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    (&mut file).take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(FileError::io(path, "read it"))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(FileError::TooLarge { path: path.display().to_string(), size: bytes.len() as u64 });
    }
    Ok(Snapshot { bytes, stamp: Stamp::of(&meta), mode: meta.permissions().mode() & 0o7777 })
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.ib-kubernetes.{suffix}"))
}

/// An exclusive lock among ib-kubernetes writers of `path`, released when dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// Takes the lock, waiting for another writer until `deadline`.
pub fn lock(path: &Path, deadline: Instant) -> Result<Lock, FileError> {
    let lock_path = sibling(path, "lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(FileError::io(&lock_path, "open the lock file"))?;
    let started = Instant::now();
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(Lock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => std::thread::sleep(LOCK_RETRY),
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(FileError::Locked { lock: lock_path.display().to_string(), waited: started.elapsed() });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(FileError::io(&lock_path, "lock")(e)),
        }
    }
}

/// Replaces the file with `bytes` if it is still the version `read` saw: a temporary file with the
/// same permissions is written and flushed, then renamed over it, then the directory is flushed so
/// the rename survives a crash. The caller holds the [`Lock`].
pub fn replace(path: &Path, read: &Snapshot, bytes: &[u8]) -> Result<(), FileError> {
    let temporary = sibling(path, &format!("{}.tmp", std::process::id()));
    let result = write_then_rename(path, &temporary, read, bytes);
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

fn write_then_rename(path: &Path, temporary: &Path, read: &Snapshot, bytes: &[u8]) -> Result<(), FileError> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(temporary)
        .map_err(FileError::io(temporary, "create the temporary file"))?;
    file.set_permissions(std::fs::Permissions::from_mode(read.mode))
        .map_err(FileError::io(temporary, "set the permissions of the temporary file"))?;
    file.write_all(bytes).map_err(FileError::io(temporary, "write the temporary file"))?;
    file.sync_all().map_err(FileError::io(temporary, "flush the temporary file to disk"))?;
    drop(file);
    let now = std::fs::metadata(path).map_err(FileError::io(path, "read its metadata"))?;
    if Stamp::of(&now) != read.stamp {
        return Err(FileError::ChangedMeanwhile { path: path.display().to_string() });
    }
    std::fs::rename(temporary, path).map_err(FileError::io(path, "rename the temporary file over it"))?;
    if let Some(dir) = path.parent() {
        File::open(dir).and_then(|d| d.sync_all()).map_err(FileError::io(dir, "flush the directory to disk"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    #[test]
    fn replaces_atomically_keeping_the_mode_and_leaving_no_temporary() {
        let d = dir();
        let path = d.path().join("partitions.conf");
        std::fs::write(&path, b"old\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let snap = read(&path).unwrap();
        let _lock = lock(&path, Instant::now()).unwrap();
        replace(&path, &snap, b"new\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new\n");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o640);
        let names: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
    }

    #[test]
    fn a_change_by_someone_else_since_the_read_is_never_overwritten() {
        let d = dir();
        let path = d.path().join("partitions.conf");
        std::fs::write(&path, b"site v1\n").unwrap();
        let snap = read(&path).unwrap();
        // The site edits the file in place (a different length) after our read.
        std::fs::write(&path, b"site v2, edited\n").unwrap();
        let err = replace(&path, &snap, b"ours\n").unwrap_err();
        assert!(matches!(err, FileError::ChangedMeanwhile { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), b"site v2, edited\n");
    }

    #[test]
    fn the_lock_excludes_a_second_writer_until_released() {
        let d = dir();
        let path = d.path().join("partitions.conf");
        std::fs::write(&path, b"").unwrap();
        let held = lock(&path, Instant::now()).unwrap();
        let err = lock(&path, Instant::now() + Duration::from_millis(50)).unwrap_err();
        assert!(matches!(err, FileError::Locked { .. }), "{err}");
        drop(held);
        lock(&path, Instant::now()).unwrap();
    }

    #[test]
    fn missing_directories_and_huge_files_are_clear_errors() {
        let d = dir();
        let missing = d.path().join("nope/partitions.conf");
        let err = read(&missing).unwrap_err().to_string();
        assert!(err.contains("nope/partitions.conf") && err.contains("open it for reading"), "{err}");
        let err = read(d.path()).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        let big = d.path().join("big");
        File::create(&big).unwrap().set_len(MAX_FILE_BYTES + 1).unwrap();
        assert!(matches!(read(&big), Err(FileError::TooLarge { .. })));
    }

    #[test]
    fn a_symbolic_link_is_resolved_so_the_target_is_replaced() {
        let d = dir();
        let target = d.path().join("real.conf");
        std::fs::write(&target, b"x\n").unwrap();
        let link = d.path().join("partitions.conf");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let resolved = resolve(&link).unwrap();
        let snap = read(&resolved).unwrap();
        replace(&resolved, &snap, b"y\n").unwrap();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read(&link).unwrap(), b"y\n");
    }
}

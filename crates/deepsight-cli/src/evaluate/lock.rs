//! One writer per output folder: an advisory lock (`flock`, through `File::try_lock`) on
//! `<out>/evaluate.lock`, held for the life of the process. The kernel drops it when the process
//! ends in any way, SIGKILL included, so a stale lock never blocks the next run; the file itself
//! stays, empty, and means nothing by itself.

use anyhow::{Context, Result, bail};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;

/// The lock file's name inside an output folder.
pub const LOCK_FILE: &str = "evaluate.lock";

/// Held while alive.
#[derive(Debug)]
pub struct OutLock {
    _file: File,
}

impl OutLock {
    /// Takes the lock of `dir` (which must exist) at once, or refuses naming the folder.
    pub fn acquire(dir: &Path) -> Result<OutLock> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot create the lock file '{}'", path.display()))?;
        match file.try_lock() {
            Ok(()) => Ok(OutLock { _file: file }),
            Err(TryLockError::WouldBlock) => bail!(
                "'{}' is in use by another deepsight evaluate (it holds '{}'): wait for it to finish, or use \
                 another --out",
                dir.display(),
                path.display()
            ),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock '{}'", path.display()))
            }
        }
    }

    /// Whether some process holds the lock of `dir` now (a folder without a lock file: no).
    /// Opens read-only, so that reading a shard on a read-only mount works.
    pub fn is_held(dir: &Path) -> Result<bool> {
        let path = dir.join(LOCK_FILE);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e).with_context(|| format!("cannot open '{}'", path.display())),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(false),
            Err(TryLockError::WouldBlock) => Ok(true),
            Err(TryLockError::Error(e)) => {
                Err(e).with_context(|| format!("cannot lock '{}'", path.display()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("deepsight-lock-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_second_lock_on_the_folder_is_refused_until_the_first_is_dropped() {
        let d = dir("second");
        let first = OutLock::acquire(&d).unwrap();
        assert!(OutLock::is_held(&d).unwrap());
        let err = format!("{:#}", OutLock::acquire(&d).unwrap_err());
        assert!(err.contains(&d.display().to_string()), "{err}");
        assert!(err.contains("in use by another deepsight evaluate"), "{err}");
        assert_eq!(err.lines().count(), 1);
        drop(first);
        assert!(!OutLock::is_held(&d).unwrap());
        // The lock file left behind does not block.
        let _again = OutLock::acquire(&d).unwrap();
        assert!(d.join(LOCK_FILE).exists());
    }

    #[test]
    fn a_folder_without_a_lock_file_is_not_held() {
        let d = dir("none");
        assert!(!OutLock::is_held(&d).unwrap());
    }
}

//! One writer per state file: `run` and `replay` hold an exclusive `flock` on `<state>.lock`
//! for as long as they use the database. The kernel drops the lock with the process, so a
//! `kill -9` leaves nothing to clean up; the file keeps the holder's pid for the message a
//! second process gets.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

use crate::checkpoint::Error;

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct StateLock {
    _file: File,
}

/// The lock file of a state database.
fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl StateLock {
    /// Takes the lock of `database`, or reports who holds it.
    pub fn acquire(database: &Path) -> Result<StateLock, Error> {
        let path = lock_path(database);
        let io_error = |source| Error::Lock {
            path: path.clone(),
            source,
        };
        crate::checkpoint::sqlite::create_parent_dir(&path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(Error::Locked {
                    path: database.to_path_buf(),
                    pid: text.trim().parse().ok(),
                });
            }
            Err(errno) => return Err(io_error(errno.into())),
        }
        file.set_len(0).map_err(io_error)?;
        file.rewind().map_err(io_error)?;
        writeln!(file, "{}", std::process::id()).map_err(io_error)?;
        Ok(StateLock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_pid() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("state.db");
        let held = StateLock::acquire(&database).unwrap();
        match StateLock::acquire(&database) {
            Err(Error::Locked { path, pid }) => {
                assert_eq!(path, database);
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(held);
        StateLock::acquire(&database).expect("free again once dropped");
    }
}

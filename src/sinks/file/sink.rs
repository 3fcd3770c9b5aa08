//! `FileSink`: appends a batch's lines, flushes them to disk, and reports the file's identity
//! and length for the checkpoint to store with the acknowledgement.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustix::fs::{FlockOperation, flock};
use serde::{Deserialize, Serialize};

use crate::event::LifecycleEvent;
use crate::sinks::file::config::FileConfig;
use crate::sinks::file::rotate::{numbered, rotate, sync_directory};
use crate::sinks::{Error, Restored, Sink};

/// What the checkpoint stores with each acknowledgement: which file, and how much of it is
/// committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Committed {
    dev: u64,
    ino: u64,
    len: u64,
}

/// The open file and what this process knows of it.
struct OpenFile {
    file: File,
    dev: u64,
    ino: u64,
    /// Bytes written and acknowledged (or about to be): the end of the last whole line.
    len: u64,
    /// The last batch's bytes, written again if the file turns out truncated by something
    /// else after it was written (logrotate's `copytruncate` may copy before that write).
    last_batch: Vec<u8>,
}

impl OpenFile {
    fn committed(&self) -> Committed {
        Committed {
            dev: self.dev,
            ino: self.ino,
            len: self.len,
        }
    }
}

/// Appends NDJSON lines to a file; see the module docs of `sinks::file`.
pub struct FileSink {
    name: String,
    config: FileConfig,
    open: Arc<Mutex<Option<OpenFile>>>,
}

impl FileSink {
    /// A sink for `config`; the file is opened by `resume` (or the first delivery).
    pub fn new(name: String, config: &FileConfig) -> FileSink {
        FileSink {
            name,
            config: config.clone(),
            open: Arc::new(Mutex::new(None)),
        }
    }

    fn path(&self) -> &Path {
        &self.config.path
    }

    /// Runs `work` on the open file slot on the blocking pool.
    async fn with_file<T, F>(&self, work: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Writer, &mut Option<OpenFile>) -> Result<T, Error> + Send + 'static,
    {
        let slot = Arc::clone(&self.open);
        let writer = Writer {
            sink: self.name.clone(),
            config: self.config.clone(),
        };
        tokio::task::spawn_blocking(move || {
            let mut guard = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            work(&writer, &mut guard)
        })
        .await
        .map_err(|error| Error::Fatal {
            sink: self.name.clone(),
            message: format!("the file write task failed: {error}"),
        })?
    }
}

/// The blocking side: opening, cutting back, rotating, writing.
struct Writer {
    sink: String,
    config: FileConfig,
}

impl Writer {
    fn path(&self) -> &Path {
        &self.config.path
    }

    /// An I/O failure: a full or failing disk may heal; a refused permission or a read-only
    /// file system will not without an operator.
    fn io_error(&self, doing: &str, path: &Path, error: io::Error) -> Error {
        let message = format!("cannot {doing} {}: {error}", path.display());
        match error.kind() {
            io::ErrorKind::PermissionDenied
            | io::ErrorKind::ReadOnlyFilesystem
            | io::ErrorKind::NotFound
            | io::ErrorKind::IsADirectory => Error::Fatal {
                sink: self.sink.clone(),
                message,
            },
            _ => Error::Unavailable {
                sink: self.sink.clone(),
                message,
                retry_after: None,
            },
        }
    }

    /// Opens (creating, mode 0640) and locks the file: one process writes it at a time.
    fn open(&self) -> Result<OpenFile, Error> {
        let path = self.path();
        let created = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path);
        let file = match created {
            // 0640 whatever the umask (the unit's is 0077): a forwarder in the file's group
            // reads it.
            Ok(file) => {
                file.set_permissions(std::fs::Permissions::from_mode(0o640))
                    .map_err(|error| self.io_error("set the mode of", path, error))?;
                file
            }
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(path)
                    .map_err(|error| self.io_error("open", path, error))?
            }
            Err(error) => return Err(self.io_error("create", path, error)),
        };
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(Error::Fatal {
                    sink: self.sink.clone(),
                    message: format!(
                        "{} is being written by another exporter process: a running daemon and a replay cannot share a file sink's file (replay to another sink with --sink)",
                        path.display()
                    ),
                });
            }
            Err(error) => return Err(self.io_error("lock", path, error.into())),
        }
        let metadata = file
            .metadata()
            .map_err(|error| self.io_error("stat", path, error))?;
        Ok(OpenFile {
            file,
            dev: metadata.dev(),
            ino: metadata.ino(),
            len: metadata.len(),
            last_batch: Vec::new(),
        })
    }

    /// Opens the file and cuts it back to what the checkpoint committed.
    fn resume(&self, committed: Option<Committed>) -> Result<OpenFile, Error> {
        let mut open = self.open()?;
        let path = self.path().display().to_string();
        let Some(committed) = committed else {
            return Ok(open);
        };
        if (committed.dev, committed.ino) == (open.dev, open.ino) {
            if open.len > committed.len {
                tracing::warn!(
                    sink = self.sink,
                    path,
                    n_bytes = open.len - committed.len,
                    "Cutting the file back to its last committed length: these lines were written but not committed before the exporter stopped, and will be written again."
                );
                self.cut(&mut open, committed.len)?;
            } else if open.len < committed.len {
                tracing::warn!(
                    sink = self.sink,
                    path,
                    "The file is shorter than committed: something else truncated it (logrotate copytruncate?). Appending."
                );
            }
            return Ok(open);
        }
        // Not the committed file. If the committed one is now `.1`, this process rotated it
        // after that commit, so everything here was written since: cut it all.
        let rotated = std::fs::metadata(numbered(self.path(), 1)).ok();
        if rotated.is_some_and(|m| (m.dev(), m.ino()) == (committed.dev, committed.ino)) {
            if open.len > 0 {
                tracing::warn!(
                    sink = self.sink,
                    path,
                    n_bytes = open.len,
                    "Cutting back lines written after the last commit (the file was rotated at that commit)."
                );
                self.cut(&mut open, 0)?;
            }
        } else {
            tracing::warn!(
                sink = self.sink,
                path,
                "The file is not the one last committed: something else rotated or replaced it. Appending; the last batch before the stop may be written twice."
            );
        }
        Ok(open)
    }

    /// Truncates to `len` and makes that durable.
    fn cut(&self, open: &mut OpenFile, len: u64) -> Result<(), Error> {
        let path = self.path();
        open.file
            .set_len(len)
            .and_then(|()| open.file.sync_all())
            .map_err(|error| self.io_error("truncate", path, error))?;
        open.len = len;
        Ok(())
    }

    /// Whether the file at `path` is still `open`, and how long it is there.
    fn check_in_place(&self, open: &OpenFile) -> Result<InPlace, Error> {
        let path = self.path();
        match std::fs::metadata(path) {
            Ok(m) if (m.dev(), m.ino()) != (open.dev, open.ino) => Ok(InPlace::Replaced),
            Ok(m) if m.len() < open.len => Ok(InPlace::Truncated(m.len())),
            Ok(m) if m.len() > open.len => Ok(InPlace::Longer),
            Ok(_) => Ok(InPlace::Same),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(InPlace::Replaced),
            Err(error) => Err(self.io_error("stat", path, error)),
        }
    }

    /// Writes one batch's bytes and flushes them; see the module docs. A failure leaves the
    /// open file's length at the last whole batch, so the next attempt cuts a partial write.
    fn write(&self, slot: &mut Option<OpenFile>, bytes: Vec<u8>) -> Result<(), Error> {
        let path = self.path().to_path_buf();
        if slot.is_none() {
            *slot = Some(self.open()?);
        }
        let open = slot.as_mut().expect("opened above");
        let mut rewrite = Vec::new();
        match self.check_in_place(open)? {
            InPlace::Same => {}
            InPlace::Longer => {
                let len = open.len;
                self.cut(open, len)?;
            }
            InPlace::Replaced => {
                tracing::warn!(sink = self.sink, path = %path.display(), "The file was moved or deleted by something else (logrotate?); reopening it. Lines written before are in the moved file.");
                *open = self.open()?;
            }
            InPlace::Truncated(len) => {
                tracing::warn!(sink = self.sink, path = %path.display(), "The file was truncated by something else (logrotate copytruncate?); writing the last batch again, since the copy may have been taken before it.");
                open.len = len;
                rewrite = std::mem::take(&mut open.last_batch);
            }
        }
        if self.config.rotate_size.0 > 0 && open.len >= self.config.rotate_size.0 {
            // The last batch was committed before this one was handed over: rotating now
            // never moves uncommitted lines out of reach of the cut-back.
            rotate(&path, self.config.rotate_keep)
                .map_err(|error| self.io_error("rotate", &path, error))?;
            *open = self.open()?;
            sync_directory(&path)
                .map_err(|error| self.io_error("sync the directory of", &path, error))?;
            tracing::info!(sink = self.sink, path = %path.display(), "Rotated the file.");
        }
        if !rewrite.is_empty() {
            self.append(open, &rewrite)?;
        }
        self.append(open, &bytes)?;
        // Written after `append`: a copytruncate during the write is caught next time.
        open.last_batch = bytes;
        Ok(())
    }

    /// Appends at the committed end and flushes (with `fsync`).
    fn append(&self, open: &mut OpenFile, bytes: &[u8]) -> Result<(), Error> {
        let path = self.path();
        open.file
            .write_all_at(bytes, open.len)
            .map_err(|error| self.io_error("write", path, error))?;
        if self.config.fsync {
            open.file
                .sync_data()
                .map_err(|error| self.io_error("flush", path, error))?;
        }
        open.len += bytes.len() as u64;
        Ok(())
    }
}

/// How the file at the path compares with the one open.
enum InPlace {
    Same,
    /// Longer than written: a failed attempt's partial write.
    Longer,
    /// Shorter (this long): truncated by something else.
    Truncated(u64),
    /// Another file, or none, is at the path now.
    Replaced,
}

#[async_trait::async_trait]
impl Sink for FileSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn deliver(&self, batch: &[LifecycleEvent]) -> Result<(), Error> {
        let mut bytes = Vec::with_capacity(batch.len() * 512);
        for event in batch {
            crate::formats::encode_line(self.config.format, event, &mut bytes);
        }
        self.with_file(move |writer, slot| writer.write(slot, bytes))
            .await
    }

    fn resume_state(&self) -> Option<String> {
        let guard = self.open.lock().unwrap_or_else(|p| p.into_inner());
        guard
            .as_ref()
            .and_then(|open| serde_json::to_string(&open.committed()).ok())
    }

    async fn resume(&self, state: Option<&str>) -> Result<Restored, Error> {
        let committed = match state.map(serde_json::from_str::<Committed>) {
            None => None,
            Some(Ok(committed)) => Some(committed),
            Some(Err(error)) => {
                tracing::warn!(sink = self.name, error = %error, "The saved file state is unreadable; appending without cutting back.");
                None
            }
        };
        self.with_file(move |writer, slot| {
            *slot = None;
            *slot = Some(writer.resume(committed)?);
            Ok(())
        })
        .await?;
        Ok(Restored::default())
    }

    async fn healthcheck(&self) -> Result<(), Error> {
        let directory: PathBuf = self
            .path()
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        match std::fs::metadata(&directory) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(Error::Fatal {
                sink: self.name.clone(),
                message: format!("{} is not a directory", directory.display()),
            }),
            Err(error) => Err(Error::Fatal {
                sink: self.name.clone(),
                message: format!(
                    "the directory of {} is missing or unreadable: {error}",
                    self.path().display()
                ),
            }),
        }
    }

    async fn close(&self) -> Result<(), Error> {
        self.with_file(|writer, slot| {
            if let Some(open) = slot.take() {
                open.file
                    .sync_all()
                    .map_err(|error| writer.io_error("flush", writer.path(), error))?;
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ByteSize;
    use crate::sinks::testing::events;

    fn config(path: &Path) -> FileConfig {
        FileConfig {
            name: None,
            path: path.to_path_buf(),
            format: crate::formats::EventFormat::Json,
            fsync: true,
            rotate_size: ByteSize(0),
            rotate_keep: 3,
        }
    }

    fn sink(config: &FileConfig) -> FileSink {
        FileSink::new("file".into(), config)
    }

    /// The ids of the lines of `path`, failing on a torn or unparsable line.
    fn ids_in(path: &Path) -> Vec<String> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        assert!(text.is_empty() || text.ends_with('\n'), "no torn last line");
        text.lines()
            .map(|line| {
                let value: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
                value["id"].as_str().expect("an id").to_string()
            })
            .collect()
    }

    fn ids_of(batch: &[LifecycleEvent]) -> Vec<String> {
        batch.iter().map(|e| e.id.to_string()).collect()
    }

    #[tokio::test]
    async fn a_restart_cuts_back_what_was_written_after_the_last_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let config = config(&path);
        let all = events(30);
        let (first, second) = all.split_at(20);

        let writer = sink(&config);
        writer.resume(None).await.unwrap();
        writer.deliver(first).await.unwrap();
        let committed = writer.resume_state().expect("a state after a write");
        // Written and flushed, then killed before the checkpoint stored the new state.
        writer.deliver(second).await.unwrap();
        assert_eq!(ids_in(&path).len(), 30);
        drop(writer);

        let restarted = sink(&config);
        restarted.resume(Some(&committed)).await.unwrap();
        assert_eq!(
            ids_in(&path),
            ids_of(first),
            "cut back to the committed length"
        );
        restarted.deliver(second).await.unwrap();
        assert_eq!(ids_in(&path), ids_of(&all), "each line once");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o640, "{mode:o}");
    }

    #[tokio::test]
    async fn without_a_saved_state_nothing_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        std::fs::write(&path, "{\"id\":\"written-by-an-older-run\"}\n").unwrap();
        let writer = sink(&config(&path));
        writer.resume(None).await.unwrap();
        writer.deliver(&events(2)).await.unwrap();
        assert_eq!(ids_in(&path).len(), 3);
    }

    #[tokio::test]
    async fn a_partial_write_of_a_failed_attempt_is_cut_before_the_retry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let writer = sink(&config(&path));
        writer.resume(None).await.unwrap();
        let batch = events(4);
        writer.deliver(&batch[..2]).await.unwrap();
        // What a write cut short by a full disk leaves: half a line.
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::io::Write::write_all(&mut file, b"{\"id\":\"torn").unwrap();
        writer.deliver(&batch[2..]).await.unwrap();
        assert_eq!(ids_in(&path), ids_of(&batch));
    }

    #[tokio::test]
    async fn rotation_by_size_keeps_every_line_once_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let mut config = config(&path);
        config.rotate_size = ByteSize(4096);
        config.rotate_keep = 10;
        let writer = sink(&config);
        writer.resume(None).await.unwrap();
        let all = events(60);
        for batch in all.chunks(6) {
            writer.deliver(batch).await.unwrap();
        }
        assert!(numbered(&path, 1).exists(), "rotated at least once");
        let mut seen = Vec::new();
        for n in (1..=10).rev() {
            seen.extend(ids_in(&numbered(&path, n)));
        }
        seen.extend(ids_in(&path));
        assert_eq!(seen, ids_of(&all), "oldest file first, every line once");
        for n in 1..=10 {
            let rotated = numbered(&path, n);
            if rotated.exists() {
                // Rotation happens at a batch boundary once the size is reached.
                let len = std::fs::metadata(&rotated).unwrap().len();
                assert!(len >= 4096, "{}: {len}", rotated.display());
            }
        }
    }

    #[tokio::test]
    async fn lines_written_after_a_rotation_at_the_last_commit_are_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let mut config = config(&path);
        config.rotate_size = ByteSize(4096);
        let writer = sink(&config);
        writer.resume(None).await.unwrap();
        let all = events(40);
        let mut committed = None;
        let mut delivered = 0;
        // Deliver until the next delivery rotates: the state of the batch before is committed.
        for batch in all.chunks(5) {
            writer.deliver(batch).await.unwrap();
            delivered += batch.len();
            if numbered(&path, 1).exists() {
                break;
            }
            committed = writer.resume_state();
        }
        assert!(numbered(&path, 1).exists(), "the test reached a rotation");
        drop(writer);
        let restarted = sink(&config);
        restarted.resume(committed.as_deref()).await.unwrap();
        assert!(
            ids_in(&path).is_empty(),
            "the new file's lines were not committed"
        );
        assert_eq!(ids_in(&numbered(&path, 1)).len(), delivered - 5);
    }

    #[tokio::test]
    async fn a_file_moved_away_by_logrotate_is_reopened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let writer = sink(&config(&path));
        writer.resume(None).await.unwrap();
        let batch = events(6);
        writer.deliver(&batch[..3]).await.unwrap();
        std::fs::rename(&path, numbered(&path, 1)).unwrap();
        writer.deliver(&batch[3..]).await.unwrap();
        assert_eq!(ids_in(&numbered(&path, 1)), ids_of(&batch[..3]));
        assert_eq!(ids_in(&path), ids_of(&batch[3..]));
        // The saved state names the new file: a restart cuts nothing of it.
        let state = writer.resume_state().unwrap();
        drop(writer);
        let restarted = sink(&config(&path));
        restarted.resume(Some(&state)).await.unwrap();
        assert_eq!(ids_in(&path), ids_of(&batch[3..]));
    }

    #[tokio::test]
    async fn after_a_copytruncate_the_last_batch_is_written_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let writer = sink(&config(&path));
        writer.resume(None).await.unwrap();
        let batch = events(6);
        writer.deliver(&batch[..2]).await.unwrap();
        // logrotate copytruncate: the copy is taken before the second batch lands, then the
        // file is truncated. The second batch is in neither.
        std::fs::copy(&path, numbered(&path, 1)).unwrap();
        writer.deliver(&batch[2..4]).await.unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        writer.deliver(&batch[4..]).await.unwrap();
        assert_eq!(ids_in(&numbered(&path, 1)), ids_of(&batch[..2]));
        assert_eq!(
            ids_in(&path),
            ids_of(&batch[2..]),
            "the batch before the truncation is written again: at least once"
        );
    }

    #[tokio::test]
    async fn a_second_writer_of_the_same_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        let first = sink(&config(&path));
        first.resume(None).await.unwrap();
        let second = sink(&config(&path));
        let error = second.resume(None).await.unwrap_err();
        assert!(!error.is_retryable());
        assert!(
            error.to_string().contains("another exporter process"),
            "{error}"
        );
    }
}

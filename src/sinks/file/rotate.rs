//! Rotation by size, named as logrotate names files: `events.ndjson` becomes
//! `events.ndjson.1`, `.1` becomes `.2`, and so on up to `rotate_keep`.

use std::io;
use std::path::{Path, PathBuf};

/// `path` with `.n` appended: `events.ndjson.3`.
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Shifts the rotated files up by one, dropping the oldest, and moves `path` to `.1` (or
/// deletes it when none are kept). The caller opens a new file at `path` afterwards.
pub fn rotate(path: &Path, keep: u32) -> io::Result<()> {
    if keep == 0 {
        return remove_if_present(path);
    }
    remove_if_present(&numbered(path, keep))?;
    for n in (1..keep).rev() {
        rename_if_present(&numbered(path, n), &numbered(path, n + 1))?;
    }
    std::fs::rename(path, numbered(path, 1))?;
    sync_directory(path)
}

/// Makes renames and new files in `path`'s directory durable.
pub fn sync_directory(path: &Path) -> io::Result<()> {
    let directory = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::File::open(directory)?.sync_all()
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn rename_if_present(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_shift_up_and_the_oldest_goes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        for generation in 0..5 {
            std::fs::write(&path, format!("{generation}\n")).unwrap();
            rotate(&path, 3).unwrap();
            assert!(!path.exists());
        }
        let read = |n| std::fs::read_to_string(numbered(&path, n)).unwrap();
        assert_eq!(
            (read(1), read(2), read(3)),
            ("4\n".into(), "3\n".into(), "2\n".into())
        );
        assert!(
            !numbered(&path, 4).exists(),
            "only rotate_keep files are kept"
        );
    }

    #[test]
    fn keeping_none_deletes_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.ndjson");
        std::fs::write(&path, "x\n").unwrap();
        rotate(&path, 0).unwrap();
        assert!(!path.exists() && !numbered(&path, 1).exists());
    }
}

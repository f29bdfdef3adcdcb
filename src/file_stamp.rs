//! Change detection for files read at start-up and watched while serving
//! (the TLS certificate and key, files holding secrets).

use std::path::Path;
use std::time::SystemTime;

/// What a file looked like when last checked: a change of any part means
/// it was written again. The inode and length catch a replacement that
/// kept the old modification time (`cp -p`, `rsync -t`, `install -p`), or
/// one written twice within the clock's resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

/// The stamp of each of `paths`, `None` for a file that cannot be read.
pub fn stamps<P: AsRef<Path>>(paths: &[P]) -> Vec<Option<FileStamp>> {
    paths.iter().map(|p| stamp(p.as_ref())).collect()
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: inode(&m),
    })
}

#[cfg(unix)]
fn inode(m: &std::fs::Metadata) -> u64 {
    std::os::unix::fs::MetadataExt::ino(m)
}

#[cfg(not(unix))]
fn inode(_: &std::fs::Metadata) -> u64 {
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewrite_a_replacement_or_a_removal_changes_the_stamp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("secret");
        std::fs::write(&file, "one\n").expect("write");
        let first = stamps(&[&file]);
        assert_eq!(first, stamps(&[&file]), "unchanged file, same stamp");

        // Same length, modification time set back: replaced by rename.
        let before = std::fs::metadata(&file)
            .and_then(|m| m.modified())
            .expect("mtime");
        let other = dir.path().join("secret.new");
        std::fs::write(&other, "two\n").expect("write");
        std::fs::File::options()
            .write(true)
            .open(&other)
            .and_then(|f| f.set_modified(before))
            .expect("set mtime");
        std::fs::rename(&other, &file).expect("rename");
        assert_ne!(first, stamps(&[&file]), "a replacement keeping the time");

        std::fs::remove_file(&file).expect("remove");
        assert_eq!(stamps(&[&file]), vec![None]);
    }
}

//! `smshook backup`: a consistent, compacted copy of a SQLite database,
//! taken while the server keeps writing to it.
//!
//! `VACUUM INTO` reads one snapshot of the database (a WAL read
//! transaction), so commits go on meanwhile and the copy holds exactly what
//! was committed when it began; it needs no lock the server holds. SQLite
//! does not sync the file it writes, so the copy is synced here, with its
//! directory, before it is reported written.

use std::path::Path;

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags};

/// What a backup wrote.
pub struct Backup {
    pub events: i64,
    pub bytes: u64,
}

/// Copies the database at `path` to `target`, a file that must not exist
/// yet; it is created readable by its owner alone, like the database.
pub fn backup(path: &Path, target: &Path) -> Result<Backup> {
    if !path.exists() {
        bail!("database {} does not exist", path.display());
    }
    super::new_private_file(target).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            anyhow::anyhow!(
                "{} already exists: a backup goes to a new file",
                target.display()
            )
        }
        _ => anyhow::Error::new(e).context(format!("cannot create {}", target.display())),
    })?;
    let written = copy(path, target);
    if written.is_err() {
        let _ = std::fs::remove_file(target);
    }
    written
}

fn copy(path: &Path, target: &Path) -> Result<Backup> {
    // Read-write, though it only reads (`query_only` would refuse VACUUM
    // INTO): a read-only connection could not remove the WAL and
    // shared-memory files it creates when no server runs.
    let source = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)
        .with_context(|| format!("cannot open {}", path.display()))?;
    source.busy_timeout(std::time::Duration::from_secs(5))?;
    let into = target
        .to_str()
        .with_context(|| format!("{} is not a UTF-8 path", target.display()))?;
    source
        .execute("VACUUM INTO ?1", [into])
        .with_context(|| format!("copying {} into {}", path.display(), target.display()))?;
    std::fs::File::open(target)?.sync_all()?;
    super::syncer::sync_dir(target).context("syncing the backup's directory")?;
    let copy = Connection::open_with_flags(target, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    Ok(Backup {
        events: copy.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?,
        bytes: std::fs::metadata(target)?.len(),
    })
}

//! `smshook backup FILE`: a consistent copy of the SQLite database, taken
//! while the server runs (`store::sqlite::backup`). PostgreSQL has pg_dump.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Args;

use super::ConfigArgs;
use super::redact_url;
use crate::store;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The new file to write the copy to (it must not exist).
    file: PathBuf,
    #[command(flatten)]
    config: ConfigArgs,
}

pub fn backup(args: &BackupArgs) -> Result<ExitCode> {
    let config = args.config.load()?;
    if store::is_postgres(&config.database) {
        bail!(
            "{} is PostgreSQL: back it up with pg_dump (smshook's tables are in the schema its search_path names)",
            redact_url(&config.database)
        );
    }
    let database = config.database.trim_start_matches("sqlite://");
    let written = store::sqlite::backup(database.as_ref(), &args.file)?;
    println!(
        "{database} backed up to {}: {} events, {:.1} MB, synced",
        args.file.display(),
        written.events,
        written.bytes as f64 / 1e6
    );
    Ok(ExitCode::SUCCESS)
}

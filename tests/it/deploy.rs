//! The systemd unit in `deploy/`: systemd reads every line of it (an
//! unknown or misspelt key would be ignored with only a warning, leaving
//! the service less confined than it says), and it stays as confined as
//! the README says. Skipped without `systemd-analyze`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The unit, written into `dir` with `ExecStart` pointing at this build
/// (`verify` checks that the program exists).
fn unit_in(dir: &Path) -> PathBuf {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/smshook.service"
    ))
    .expect("unit");
    let unit = unit.replace("/usr/local/bin/smshook", env!("CARGO_BIN_EXE_smshook"));
    let path = dir.join("smshook.service");
    std::fs::write(&path, unit).expect("write unit");
    path
}

/// `systemd-analyze` with `args` then the unit, or `None` (and a notice)
/// where it is not installed.
fn analyze(args: &[&str], test: &str) -> Option<Output> {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = unit_in(dir.path());
    match Command::new("systemd-analyze")
        .args(args)
        .arg(&unit)
        .output()
    {
        Ok(out) => Some(out),
        Err(_) => {
            eprintln!("SKIPPED {test}: needs systemd-analyze");
            None
        }
    }
}

#[test]
fn the_systemd_unit_is_read_without_a_warning() {
    let Some(out) = analyze(&["verify"], "the systemd unit test") else {
        return;
    };
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

/// `systemd-analyze security` rates the unit's exposure from 0 (the most
/// confined) to 10; the README and the unit say 1.5.
#[test]
fn the_systemd_unit_stays_confined() {
    let args = ["security", "--offline=yes", "--threshold=15"];
    let Some(out) = analyze(&args, "the systemd confinement test") else {
        return;
    };
    let said = String::from_utf8_lossy(&out.stdout);
    let rating = said.lines().last().unwrap_or_default();
    assert!(out.status.success(), "exposure above 1.5: {rating}");
}

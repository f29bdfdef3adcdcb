//! The systemd unit in `deploy/`: systemd reads every line of it (an
//! unknown or misspelt key would be ignored with only a warning, leaving
//! the service less confined than it says). Skipped without
//! `systemd-analyze`.

use std::process::Command;

#[test]
fn the_systemd_unit_is_read_without_a_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/smshook.service"
    ))
    .expect("unit");
    // `verify` checks that ExecStart's program exists: point it at this build.
    let unit = unit.replace("/usr/local/bin/smshook", env!("CARGO_BIN_EXE_smshook"));
    let path = dir.path().join("smshook.service");
    std::fs::write(&path, unit).expect("write unit");
    let Ok(out) = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
    else {
        eprintln!("SKIPPED the systemd unit test: needs systemd-analyze");
        return;
    };
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

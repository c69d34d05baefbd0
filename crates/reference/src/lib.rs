//! The upstream reference fixtures (`../shared/reference` beside the checkout: real Helm
//! renders, install manifests, CRD and API schemas), for tests that compare with them.
//!
//! They exist on the project's machines and in CI, not in a user's clone. A test asks for a
//! fixture with [`path`]: where it is missing the test is skipped with a line on stderr saying so,
//! except under CI (`CI` set and not `false`), where a missing fixture fails the test — CI must
//! never pass by skipping. `INFRAFLUX_REFERENCE` points elsewhere.

#![warn(missing_docs)]

use std::io::Write;
use std::path::PathBuf;

/// The reference folder, wherever it is (it may not exist).
pub fn root() -> PathBuf {
    match std::env::var_os("INFRAFLUX_REFERENCE") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference"),
    }
}

/// Whether this is a CI run, where every reference fixture must be present.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The fixture at `rel` (relative to the reference folder), or `None` when it is absent outside
/// CI — the caller then returns early. Panics when it is absent in CI.
pub fn path(rel: &str) -> Option<PathBuf> {
    let p = root().join(rel);
    if p.exists() {
        return Some(p);
    }
    assert!(
        !in_ci(),
        "reference fixture {} is missing in CI: the ../shared checkout must sit beside the repository",
        p.display()
    );
    // Straight to the file descriptor, past the test harness's capture, so a skip is always seen.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: reference fixtures not present ({})",
        p.display()
    );
    None
}

/// The text of the fixture at `rel`, as [`path`] decides.
pub fn read(rel: &str) -> Option<String> {
    let p = path(rel)?;
    Some(std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_folder_is_found_beside_the_checkout() {
        // In CI (where it must exist) this fails if the path logic is wrong; elsewhere it skips.
        if let Some(p) = path("proxmox/apidata-pve-9.1.json") {
            assert!(p.is_file());
        }
    }
}

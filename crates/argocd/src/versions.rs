//! The Argo CD versions this crate knows: where their install manifests are and the sha256 each
//! must have. A manifest is applied only after [`verify`] passes.

use sha2::{Digest, Sha256};

use crate::Error;

/// The version installed when none is given.
pub const DEFAULT_VERSION: &str = "v3.5.1";

/// One pinned release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownVersion {
    /// The release tag, `v` included.
    pub version: &'static str,
    /// `manifests/install.yaml` of the release.
    pub manifest_url: &'static str,
    /// `manifests/ha/install.yaml` of the release.
    pub ha_manifest_url: &'static str,
    /// sha256 of `install.yaml`, lowercase hex.
    pub manifest_sha256: &'static str,
    /// sha256 of `ha/install.yaml`, when it has been pinned.
    pub ha_manifest_sha256: Option<&'static str>,
}

/// Every pinned release, oldest first.
pub const KNOWN_VERSIONS: &[KnownVersion] = &[KnownVersion {
    version: "v3.5.1",
    manifest_url: "https://github.com/argoproj/argo-cd/raw/v3.5.1/manifests/install.yaml",
    ha_manifest_url: "https://github.com/argoproj/argo-cd/raw/v3.5.1/manifests/ha/install.yaml",
    manifest_sha256: "795a3a972224da6a7f9d32c3e946445f062b60fb46028476715affeb688236e3",
    // Not pinned yet: HA installs of this version need `manifest_sha256`.
    ha_manifest_sha256: None,
}];

/// The pinned release `version` (`v3.5.1` or `3.5.1`), if there is one.
pub fn known(version: &str) -> Option<&'static KnownVersion> {
    let v = normalize(version);
    KNOWN_VERSIONS.iter().find(|k| k.version == v)
}

/// `version` with its `v` prefix, validated: a release tag goes into a URL, so only
/// `vMAJOR.MINOR.PATCH` with an optional `-suffix` of letters, digits and dots is accepted.
pub fn normalize_version(version: &str) -> Result<String, Error> {
    let v = normalize(version);
    let (core, suffix) = match v[1..].split_once('-') {
        Some((c, s)) => (c, Some(s)),
        None => (&v[1..], None),
    };
    let core_ok = core.split('.').count() == 3
        && core
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let suffix_ok = suffix
        .is_none_or(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'));
    if core_ok && suffix_ok {
        Ok(v)
    } else {
        Err(Error::option(
            "version",
            format!("{version:?} is not an Argo CD release tag such as \"{DEFAULT_VERSION}\""),
        ))
    }
}

fn normalize(version: &str) -> String {
    let v = version.trim();
    if v.starts_with('v') {
        v.to_owned()
    } else {
        format!("v{v}")
    }
}

/// The release URL of the install manifest of `version` (pinned or not); `ha` picks the
/// high-availability variant.
pub fn manifest_url(version: &str, ha: bool) -> Result<String, Error> {
    let v = normalize_version(version)?;
    let file = if ha {
        "ha/install.yaml"
    } else {
        "install.yaml"
    };
    Ok(format!(
        "https://github.com/argoproj/argo-cd/raw/{v}/manifests/{file}"
    ))
}

/// The sha256 a manifest of `version` must have: `configured` (the user's `manifest_sha256`)
/// when given, else the pinned one; an error when neither exists.
pub fn expected_sha256(version: &str, ha: bool, configured: Option<&str>) -> Result<String, Error> {
    if let Some(c) = configured {
        return parse_sha256(c);
    }
    let v = normalize_version(version)?;
    let pinned = known(&v).and_then(|k| {
        if ha {
            k.ha_manifest_sha256
        } else {
            Some(k.manifest_sha256)
        }
    });
    pinned.map(str::to_owned).ok_or(Error::UnpinnedVersion {
        version: v,
        variant: if ha { " (HA)" } else { "" },
    })
}

/// `value` as a lowercase sha256 hex digest, or an error naming `manifest_sha256`.
pub fn parse_sha256(value: &str) -> Result<String, Error> {
    let v = value.trim().to_ascii_lowercase();
    let v = v.strip_prefix("sha256:").unwrap_or(&v);
    if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(v.to_owned())
    } else {
        Err(Error::option(
            "manifest_sha256",
            format!("{value:?} is not a sha256 digest (64 hexadecimal digits)"),
        ))
    }
}

/// The sha256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Ok when `bytes` hash to `expected_sha256` (hex, any case, optional `sha256:` prefix);
/// [`Error::Sha256Mismatch`] naming both digests otherwise.
pub fn verify(bytes: &[u8], expected_sha256: &str) -> Result<(), Error> {
    let expected = parse_sha256(expected_sha256)?;
    let actual = sha256_hex(bytes);
    if actual == expected {
        Ok(())
    } else {
        Err(Error::Sha256Mismatch { expected, actual })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_urls_follow_the_release_pattern() {
        for k in KNOWN_VERSIONS {
            assert_eq!(manifest_url(k.version, false).unwrap(), k.manifest_url);
            assert_eq!(manifest_url(k.version, true).unwrap(), k.ha_manifest_url);
            assert!(parse_sha256(k.manifest_sha256).is_ok(), "{}", k.version);
        }
        assert!(known(DEFAULT_VERSION).is_some());
    }

    #[test]
    fn versions_are_found_with_or_without_v() {
        assert_eq!(known("3.5.1").map(|k| k.version), Some("v3.5.1"));
        assert_eq!(known("v3.5.1").map(|k| k.version), Some("v3.5.1"));
        assert!(known("v3.5.0").is_none());
    }

    #[test]
    fn versions_that_would_break_the_url_are_refused() {
        assert_eq!(normalize_version("3.6.0-rc1").unwrap(), "v3.6.0-rc1");
        for bad in ["", "v3.5", "v3.5.1/../x", "latest", "v3.5.1-", "v3.a.1"] {
            let e = normalize_version(bad).unwrap_err().to_string();
            assert!(e.starts_with("version: "), "{bad}: {e}");
        }
    }

    #[test]
    fn the_configured_digest_wins_and_unpinned_versions_need_one() {
        let d = "AB".repeat(32);
        assert_eq!(
            expected_sha256("v9.9.9", false, Some(&d)).unwrap(),
            "ab".repeat(32)
        );
        assert_eq!(
            expected_sha256("3.5.1", false, None).unwrap(),
            KNOWN_VERSIONS[0].manifest_sha256
        );
        let e = expected_sha256("v3.5.1", true, None)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("v3.5.1 (HA)") && e.contains("manifest_sha256"),
            "{e}"
        );
        let e = expected_sha256("v9.9.9", false, None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("v9.9.9 has no pinned sha256"), "{e}");
    }

    #[test]
    fn verify_accepts_the_right_digest_in_any_spelling() {
        // sha256("abc"), a published test vector.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), abc);
        verify(b"abc", abc).unwrap();
        verify(b"abc", &format!("sha256:{}", abc.to_uppercase())).unwrap();
    }

    #[test]
    fn a_mismatch_names_both_digests_and_the_way_out() {
        let expected = "0".repeat(64);
        let e = verify(b"abc", &expected).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&expected), "{msg}");
        assert!(msg.contains(&sha256_hex(b"abc")), "{msg}");
        assert!(msg.contains("nothing was applied"), "{msg}");
        assert!(msg.contains("manifest_sha256"), "{msg}");
    }

    #[test]
    fn a_malformed_digest_is_an_option_error() {
        let e = verify(b"abc", "xyz").unwrap_err().to_string();
        assert!(e.starts_with("manifest_sha256: "), "{e}");
    }
}

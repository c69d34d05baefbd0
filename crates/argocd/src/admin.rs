//! The admin password: generated or given, stored by Argo CD as a bcrypt hash in `argocd-secret`.
//! The patch built here holds only the two keys this crate owns, so a server-side apply with our
//! field manager leaves the rest of that Secret (server key, TLS, webhooks) to Argo CD.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::Error;

/// The bcrypt cost Argo CD itself hashes with.
pub const BCRYPT_COST: u32 = 10;

/// Length of a [`generate_password`] password (alphanumeric, about 190 bits).
pub const GENERATED_PASSWORD_LEN: usize = 32;

/// The Secret Argo CD reads the admin password from.
pub const ADMIN_SECRET_NAME: &str = "argocd-secret";
/// Key of the bcrypt hash.
pub const PASSWORD_KEY: &str = "admin.password";
/// Key of the time the password was set (RFC 3339); Argo CD ends sessions older than it.
pub const PASSWORD_MTIME_KEY: &str = "admin.passwordMtime";

/// bcrypt reads at most this many bytes of a password.
const BCRYPT_MAX_BYTES: usize = 72;

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Bytes at or above this are dropped so every character is equally likely (248 = 4 × 62).
const UNBIASED_LIMIT: usize = 256 / ALPHABET.len() * ALPHABET.len();

/// The bcrypt hash (`$2a$`, cost [`BCRYPT_COST`], random salt) of `password`, as Argo CD's own
/// tooling writes it. Empty passwords and passwords over 72 bytes (which bcrypt would silently
/// cut) are refused.
pub fn hash_password(password: &str) -> Result<String, Error> {
    if password.is_empty() {
        return Err(Error::option("admin_password", "must not be empty"));
    }
    if password.len() > BCRYPT_MAX_BYTES {
        return Err(Error::option(
            "admin_password",
            format!(
                "is {} bytes; bcrypt uses only the first {BCRYPT_MAX_BYTES}, so use a shorter one",
                password.len()
            ),
        ));
    }
    let parts = bcrypt::hash_with_result(password, BCRYPT_COST)?;
    Ok(parts.format_for_version(bcrypt::Version::TwoA))
}

/// Whether `password` is the one `hash` was made from; a malformed hash matches nothing.
pub fn password_matches(password: &str, hash: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}

/// A new random password of [`GENERATED_PASSWORD_LEN`] letters and digits from the operating
/// system's CSPRNG.
pub fn generate_password() -> Result<String, Error> {
    let mut out = String::with_capacity(GENERATED_PASSWORD_LEN);
    let mut buf = [0u8; 64];
    while out.len() < GENERATED_PASSWORD_LEN {
        getrandom::fill(&mut buf).map_err(|e| Error::Random(e.to_string()))?;
        for b in buf {
            if usize::from(b) < UNBIASED_LIMIT && out.len() < GENERATED_PASSWORD_LEN {
                out.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

/// `at` the way Argo CD writes `admin.passwordMtime`: RFC 3339 in UTC, whole seconds.
pub fn format_mtime(at: OffsetDateTime) -> String {
    let at = at
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(at);
    // Formatting a valid UTC date-time as RFC 3339 cannot fail for years 0..=9999.
    at.format(&Rfc3339).unwrap_or_default()
}

/// The `argocd-secret` object to apply server-side with our field manager: only `data` keys
/// [`PASSWORD_KEY`] (the bcrypt `hash`) and [`PASSWORD_MTIME_KEY`] (`mtime_rfc3339`), base64.
/// No `type`, labels or other keys, so nothing else of the Secret changes owner.
pub fn admin_secret_patch(
    namespace: &str,
    hash: &str,
    mtime_rfc3339: &str,
) -> Result<Value, Error> {
    if !looks_like_bcrypt(hash) {
        return Err(Error::option(
            "admin_password",
            "the stored hash is not a bcrypt hash ($2a$/$2b$/$2y$, 60 characters); set the \
             password again",
        ));
    }
    OffsetDateTime::parse(mtime_rfc3339, &Rfc3339).map_err(|e| {
        Error::option(
            PASSWORD_MTIME_KEY,
            format!("{mtime_rfc3339:?} is not an RFC 3339 time ({e})"),
        )
    })?;
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": ADMIN_SECRET_NAME, "namespace": namespace},
        "data": {
            PASSWORD_KEY: STANDARD.encode(hash),
            PASSWORD_MTIME_KEY: STANDARD.encode(mtime_rfc3339),
        },
    }))
}

fn looks_like_bcrypt(hash: &str) -> bool {
    hash.len() == 60 && ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_only() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$2a$10$"), "{h}");
        assert_eq!(h.len(), 60);
        assert!(password_matches("correct horse", &h));
        assert!(!password_matches("correct horsf", &h));
        assert!(!password_matches("correct horse", "not a hash"));
        // Salted: the same password hashes differently each time.
        assert_ne!(h, hash_password("correct horse").unwrap());
    }

    #[test]
    fn hashes_verify_under_either_prefix() {
        // Go's bcrypt (Argo CD) writes `$2a$`; the Rust crate defaults to `$2b$`. Same algorithm.
        let a = bcrypt::hash_with_salt("password", 4, [7u8; 16])
            .unwrap()
            .format_for_version(bcrypt::Version::TwoA);
        assert!(password_matches("password", &a));
        assert!(password_matches("password", &a.replacen("$2a$", "$2b$", 1)));
        assert!(!password_matches("Password", &a));
    }

    #[test]
    fn unusable_passwords_are_refused_with_the_option_name() {
        let e = hash_password("").unwrap_err().to_string();
        assert_eq!(e, "admin_password: must not be empty");
        let e = hash_password(&"x".repeat(73)).unwrap_err().to_string();
        assert!(e.starts_with("admin_password: is 73 bytes"), "{e}");
        hash_password(&"x".repeat(72)).unwrap();
    }

    #[test]
    fn generated_passwords_are_long_alphanumeric_and_distinct() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), GENERATED_PASSWORD_LEN);
        assert!(a.len() >= 24);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn mtime_is_utc_whole_seconds() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_767_225_600_123_456_789).unwrap();
        let t = t.to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        assert_eq!(format_mtime(t), "2026-01-01T00:00:00Z");
    }

    #[test]
    fn the_patch_holds_exactly_the_two_keys() {
        let h = hash_password("pw").unwrap();
        let p = admin_secret_patch("gitops", &h, "2026-01-01T00:00:00Z").unwrap();
        assert_eq!(p["metadata"]["name"], "argocd-secret");
        assert_eq!(p["metadata"]["namespace"], "gitops");
        let obj = p.as_object().unwrap();
        let mut top: Vec<_> = obj.keys().map(String::as_str).collect();
        top.sort();
        assert_eq!(top, ["apiVersion", "data", "kind", "metadata"]);
        let data = p["data"].as_object().unwrap();
        assert_eq!(data.len(), 2);
        let decoded = STANDARD
            .decode(data[PASSWORD_KEY].as_str().unwrap())
            .unwrap();
        assert!(password_matches(
            "pw",
            std::str::from_utf8(&decoded).unwrap()
        ));
        let mtime = STANDARD
            .decode(data[PASSWORD_MTIME_KEY].as_str().unwrap())
            .unwrap();
        assert_eq!(mtime, b"2026-01-01T00:00:00Z");
    }

    #[test]
    fn the_patch_refuses_what_argo_cd_could_not_read() {
        let h = hash_password("pw").unwrap();
        let e = admin_secret_patch("argocd", "plain", "2026-01-01T00:00:00Z").unwrap_err();
        assert!(e.to_string().contains("not a bcrypt hash"), "{e}");
        let e = admin_secret_patch("argocd", &h, "yesterday").unwrap_err();
        assert!(e.to_string().starts_with("admin.passwordMtime: "), "{e}");
    }
}

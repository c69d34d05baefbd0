//! Kubernetes name and key rules, checked before anything reaches the API server so the error
//! names the option instead of an object.

/// A DNS-1123 label (namespaces): at most 63 lowercase alphanumerics or `-`, starting and ending
/// alphanumeric. The error is a sentence for [`crate::Error::InvalidOption`].
pub fn dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 63 {
        return Err(format!(
            "{s:?} must be 1 to 63 characters (a DNS-1123 label)"
        ));
    }
    if !label_ok(s) {
        return Err(format!(
            "{s:?} must be lowercase letters, digits and '-', starting and ending with a letter or \
             digit (a DNS-1123 label)"
        ));
    }
    Ok(())
}

/// A DNS-1123 subdomain (most object names): at most 253 characters, dot-separated labels.
pub fn dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 253 || !s.split('.').all(label_ok) {
        return Err(format!(
            "{s:?} must be at most 253 lowercase letters, digits, '-' and '.', each dot-separated \
             part starting and ending with a letter or digit (a DNS-1123 subdomain)"
        ));
    }
    Ok(())
}

/// A ConfigMap or Secret data key: at most 253 of letters, digits, `-`, `_` and `.`.
pub fn config_map_key(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a ConfigMap key: use 1 to 253 letters, digits, '-', '_' and '.'"
        ))
    }
}

fn label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        for ok in ["argocd", "a", "gitops-2", &"a".repeat(63)] {
            dns1123_label(ok).unwrap();
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(dns1123_label(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn subdomains() {
        for ok in ["repo-0123abcd", "a.b-c.d"] {
            dns1123_subdomain(ok).unwrap();
        }
        for bad in ["", "a..b", ".a", "a.", "Repo", "a_b", &"a".repeat(254)] {
            assert!(dns1123_subdomain(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn config_map_keys() {
        for ok in [
            "url",
            "resource.customizations.health.apps_Deployment",
            "a-b_c",
        ] {
            config_map_key(ok).unwrap();
        }
        for bad in ["", "a b", "a/b", "a:b", &"a".repeat(254)] {
            assert!(config_map_key(bad).is_err(), "{bad}");
        }
    }
}

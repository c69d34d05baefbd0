//! PEM encoding with the labels Talos uses, and the small DER surgery that needs.
//!
//! Talos (siderolabs/crypto `x509/constants.go`, `x509/key.go`) writes Ed25519 keys as PKCS#8 under
//! the non-standard label `ED25519 PRIVATE KEY`, ECDSA keys as SEC1 (`EC PRIVATE KEY`) and RSA keys
//! as PKCS#1 (`RSA PRIVATE KEY`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// An X.509 certificate (DER).
pub const CERTIFICATE: &str = "CERTIFICATE";
/// Talos's label for an Ed25519 PKCS#8 key.
pub const ED25519_PRIVATE_KEY: &str = "ED25519 PRIVATE KEY";
/// An ECDSA key in SEC1 form.
pub const EC_PRIVATE_KEY: &str = "EC PRIVATE KEY";
/// An RSA key in PKCS#1 form.
pub const RSA_PRIVATE_KEY: &str = "RSA PRIVATE KEY";

/// Text that is not the PEM block (or the DER inside it) that was expected.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PemError {
    #[error("not a PEM block")]
    NotPem,
    #[error("expected a PEM block labelled {expected:?}, found {found:?}")]
    WrongLabel { expected: String, found: String },
    #[error("the PEM body is not valid base64")]
    BadBase64,
    #[error("malformed DER: {0}")]
    BadDer(&'static str),
}

/// `-----BEGIN label-----`, base64 in 64-column lines, `-----END label-----`, trailing newline.
pub fn encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Decodes the first PEM block: (label, DER).
pub fn decode(text: &str) -> Result<(String, Vec<u8>), PemError> {
    let start = text.find("-----BEGIN ").ok_or(PemError::NotPem)?;
    let after = &text[start + "-----BEGIN ".len()..];
    let label_end = after.find("-----").ok_or(PemError::NotPem)?;
    let label = &after[..label_end];
    let body_and_rest = &after[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body_and_rest.find(&end_marker).ok_or(PemError::NotPem)?;
    let body: String = body_and_rest[..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD.decode(body).map_err(|_| PemError::BadBase64)?;
    Ok((label.to_string(), der))
}

/// Decodes a PEM block and insists on its label.
pub fn decode_labelled(text: &str, expected: &str) -> Result<Vec<u8>, PemError> {
    let (label, der) = decode(text)?;
    if label != expected {
        return Err(PemError::WrongLabel {
            expected: expected.to_string(),
            found: label,
        });
    }
    Ok(der)
}

/// One DER TLV at the start of `input`: (tag, contents, rest).
fn tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), PemError> {
    let (&tag, rest) = input.split_first().ok_or(PemError::BadDer("truncated"))?;
    let (&first, rest) = rest.split_first().ok_or(PemError::BadDer("truncated"))?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err(PemError::BadDer("bad length"));
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err(PemError::BadDer("truncated"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The `privateKey` OCTET STRING of a PKCS#8 `PrivateKeyInfo`: PKCS#1 for RSA, SEC1 for EC.
pub fn pkcs8_inner_key(pkcs8: &[u8]) -> Result<Vec<u8>, PemError> {
    let (tag, seq, _) = tlv(pkcs8)?;
    if tag != 0x30 {
        return Err(PemError::BadDer("PrivateKeyInfo is not a SEQUENCE"));
    }
    let (tag, _version, rest) = tlv(seq)?;
    if tag != 0x02 {
        return Err(PemError::BadDer("missing version"));
    }
    let (tag, _alg, rest) = tlv(rest)?;
    if tag != 0x30 {
        return Err(PemError::BadDer("missing AlgorithmIdentifier"));
    }
    let (tag, key, _) = tlv(rest)?;
    if tag != 0x04 {
        return Err(PemError::BadDer("missing privateKey OCTET STRING"));
    }
    Ok(key.to_vec())
}

/// base64 of the text, as every cert/key in a Talos machine config is written.
pub fn b64(text: &str) -> String {
    STANDARD.encode(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn talos_pem_round_trip_keeps_label_and_bytes() {
        let der: Vec<u8> = (0..=200u8).collect();
        let text = encode(ED25519_PRIVATE_KEY, &der);
        assert!(text.starts_with("-----BEGIN ED25519 PRIVATE KEY-----\n"));
        assert!(text.lines().all(|l| l.len() <= 64));
        assert_eq!(decode_labelled(&text, ED25519_PRIVATE_KEY), Ok(der));
        assert!(matches!(
            decode_labelled(&text, "PRIVATE KEY"),
            Err(PemError::WrongLabel { .. })
        ));
        assert_eq!(decode("nothing"), Err(PemError::NotPem));
    }

    #[test]
    fn talos_pkcs8_inner_rejects_garbage() {
        assert!(pkcs8_inner_key(&[0x30, 0x05, 0x02]).is_err());
        assert!(pkcs8_inner_key(&[]).is_err());
    }
}

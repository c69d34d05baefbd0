//! The one error type of this crate: every variant names what is wrong and what to do about it.

/// Why an Argo CD object could not be built or an input was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The downloaded or given install manifest is not the one pinned.
    #[error(
        "the Argo CD install manifest has sha256 {actual}, but {expected} was expected; nothing was \
         applied. If you trust this manifest, set `manifest_sha256 = \"{actual}\"`; otherwise check \
         `version`, `manifest_url` or the file you gave"
    )]
    Sha256Mismatch {
        /// The pinned (or configured) digest, lowercase hex.
        expected: String,
        /// The digest of the bytes received, lowercase hex.
        actual: String,
    },

    /// No digest is known for the version and none was configured.
    #[error(
        "Argo CD {version}{variant} has no pinned sha256 in this provider; set `manifest_sha256` to \
         the sha256 of the manifest you mean to install"
    )]
    UnpinnedVersion {
        /// The version asked for.
        version: String,
        /// `""` or `" (HA)"`.
        variant: &'static str,
    },

    /// An option (a future resource attribute) holds a value that cannot work.
    #[error("{option}: {message}")]
    InvalidOption {
        /// The option's name, as the resource attribute will spell it.
        option: String,
        /// What is wrong, in a sentence a user can act on.
        message: String,
    },

    /// The install manifest is not YAML or holds something that is not a Kubernetes object.
    #[error("install manifest, document {document}: {message}")]
    Manifest {
        /// 1-based index of the YAML document.
        document: usize,
        /// What is wrong with it.
        message: String,
    },

    /// An object the options change is missing from the install manifest.
    #[error(
        "the install manifest has no {kind} {name:?}, which option {option} changes; is it an Argo CD \
         install manifest?"
    )]
    MissingObject {
        /// The object's kind.
        kind: &'static str,
        /// The object's name.
        name: &'static str,
        /// The option that needs it.
        option: &'static str,
    },

    /// An object fails the schema of its custom resource definition.
    #[error("{object}: {path}: {message}")]
    Schema {
        /// `Kind/name` of the object.
        object: String,
        /// JSON path of the offending field, e.g. `.spec.destination`.
        path: String,
        /// What the schema demands.
        message: String,
    },

    /// bcrypt failed (it only fails on input it cannot take).
    #[error("admin_password: bcrypt failed: {0}")]
    Bcrypt(#[from] bcrypt::BcryptError),

    /// The operating system's random number generator failed.
    #[error(
        "admin_password: the system random number generator failed ({0}); set the password explicitly"
    )]
    Random(String),
}

impl Error {
    /// An [`Error::InvalidOption`] for `option`.
    pub(crate) fn option(option: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidOption {
            option: option.into(),
            message: message.into(),
        }
    }
}

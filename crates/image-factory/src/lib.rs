//! The Talos Image Factory, offline.
//!
//! A *schematic* (system extensions, kernel arguments, META values, an overlay) names a Talos
//! image. The factory's ID for it is the hex SHA-256 of the schematic's canonical YAML — the bytes
//! Go's `gopkg.in/yaml.v3` writes for the factory's struct, field order and omissions included.
//! [`Schematic::id`] computes the same bytes here, so a plan knows the installer image and the
//! disk image URL without a network; the factory learns the schematic later (`POST /schematics`
//! is idempotent) and answers the same ID, which callers should compare.
//!
//! - [`schematic`]: the model, its canonical YAML and ID.
//! - [`yaml`]: how one string is written (plain, single- or double-quoted), as yaml.v3 decides.
//! - [`image`]: the references an ID and a Talos version name (installer, disk image, ISO).

pub mod image;
pub mod schematic;
pub mod yaml;

pub use image::{Arch, Image};
pub use schematic::{MetaValue, Overlay, Schematic};

/// What cannot be made into a schematic.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A value the canonical form cannot hold the way the factory would write it.
    #[error("{field}: {reason}")]
    Invalid {
        /// Where in the schematic, e.g. `extraKernelArgs[2]`.
        field: String,
        /// A sentence saying what to change.
        reason: String,
    },
}

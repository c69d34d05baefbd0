//! A schematic and its canonical YAML, whose SHA-256 is the factory's ID.
//!
//! The factory's struct puts `overlay` (left out when empty) before `customization` (always
//! written, `{}` when empty); inside it `extraKernelArgs`, `meta`, `systemExtensions`,
//! `secureboot`, each left out when empty. yaml.v3 indents by four spaces, sequence items
//! included. Order is kept as given: the factory does not sort, so two orders are two images.

use std::fmt::Write as _;

use sha2::{Digest, Sha256};

use crate::{Error, yaml};

/// An initial value of Talos's META partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaValue {
    /// The META key (0–255), e.g. `0x0a` for the network configuration.
    pub key: u8,
    /// Its value.
    pub value: String,
}

/// A board overlay (single-board computers).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Overlay {
    /// The overlay image, e.g. `siderolabs/sbc-raspberrypi`.
    pub image: String,
    /// The overlay's name, e.g. `rpi_generic`.
    pub name: String,
}

/// What the Image Factory builds an image from. Fields left empty are left out, as the factory
/// leaves them out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schematic {
    /// A board overlay.
    pub overlay: Option<Overlay>,
    /// Extra kernel command-line arguments.
    pub extra_kernel_args: Vec<String>,
    /// Initial META values.
    pub meta: Vec<MetaValue>,
    /// Official system extensions, e.g. `siderolabs/qemu-guest-agent`.
    pub extensions: Vec<String>,
    /// Include the well-known UEFI certificates in Secure Boot auto-enrollment.
    pub secureboot_well_known_certificates: bool,
}

impl Schematic {
    /// The canonical YAML, byte for byte what the factory hashes and `GET /schematics/{id}` shows.
    pub fn to_yaml(&self) -> Result<String, Error> {
        let mut out = String::new();
        if let Some(o) = self.overlay.as_ref().filter(|o| **o != Overlay::default()) {
            out.push_str("overlay:\n");
            let _ = writeln!(out, "    image: {}", text("overlay.image", &o.image)?);
            let _ = writeln!(out, "    name: {}", text("overlay.name", &o.name)?);
        }
        let mut custom = String::new();
        if !self.extra_kernel_args.is_empty() {
            custom.push_str("    extraKernelArgs:\n");
            for (i, arg) in self.extra_kernel_args.iter().enumerate() {
                let v = text(&format!("extraKernelArgs[{i}]"), arg)?;
                let _ = writeln!(custom, "        - {v}");
            }
        }
        if !self.meta.is_empty() {
            custom.push_str("    meta:\n");
            for (i, m) in self.meta.iter().enumerate() {
                let v = text(&format!("meta[{i}].value"), &m.value)?;
                let _ = writeln!(custom, "        - key: {}\n          value: {v}", m.key);
            }
        }
        if !self.extensions.is_empty() {
            custom.push_str("    systemExtensions:\n        officialExtensions:\n");
            for (i, e) in self.extensions.iter().enumerate() {
                let v = text(&format!("systemExtensions.officialExtensions[{i}]"), e)?;
                let _ = writeln!(custom, "            - {v}");
            }
        }
        if self.secureboot_well_known_certificates {
            custom.push_str("    secureboot:\n        includeWellKnownCertificates: true\n");
        }
        if custom.is_empty() {
            out.push_str("customization: {}\n");
        } else {
            out.push_str("customization:\n");
            out.push_str(&custom);
        }
        Ok(out)
    }

    /// The factory's ID: the hex SHA-256 of [`Schematic::to_yaml`].
    pub fn id(&self) -> Result<String, Error> {
        Ok(hex::encode(Sha256::digest(self.to_yaml()?.as_bytes())))
    }
}

fn text(field: &str, s: &str) -> Result<String, Error> {
    yaml::scalar(s).ok_or_else(|| Error::Invalid {
        field: field.to_owned(),
        reason: "a line break cannot be part of it; split it into separate values.".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &Schematic) -> String {
        s.id().unwrap_or_else(|e| panic!("{e}"))
    }

    fn extensions(names: &[&str]) -> Schematic {
        Schematic {
            extensions: names.iter().map(|s| (*s).to_owned()).collect(),
            ..Schematic::default()
        }
    }

    // IDs the factory publishes or answers (its own tests and widely used schematics).
    #[test]
    fn ids_match_the_factory() {
        assert_eq!(
            id(&Schematic::default()),
            "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba"
        );
        let args = Schematic {
            extra_kernel_args: vec!["noapic".into(), "nolapic".into()],
            ..Schematic::default()
        };
        assert_eq!(
            id(&args),
            "9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c"
        );
        let meta = Schematic {
            meta: vec![MetaValue {
                key: 0x0a,
                value: "foo".into(),
            }],
            ..Schematic::default()
        };
        assert_eq!(
            id(&meta),
            "d308a2a5ee2277bed5fbaa104fcbc8d59122abfa737df987a95b4ca763459a7f"
        );
        let secureboot = Schematic {
            secureboot_well_known_certificates: true,
            ..Schematic::default()
        };
        assert_eq!(
            id(&secureboot),
            "fa8e05f142a851d3ee568eb0a8e5841eaf6b0ebc8df9a63df16ac5ed2c04f3e6"
        );
        let overlay = Schematic {
            overlay: Some(Overlay {
                image: "siderolabs/sbc-raspberrypi".into(),
                name: "rpi_generic".into(),
            }),
            ..Schematic::default()
        };
        assert_eq!(
            id(&overlay),
            "ee21ef4a5ef808a9b7484cc0dda0f25075021691c8c09a276591eedb638ea1f9"
        );
        assert_eq!(
            id(&extensions(&["siderolabs/qemu-guest-agent"])),
            "ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515"
        );
        assert_eq!(
            id(&extensions(&[
                "siderolabs/iscsi-tools",
                "siderolabs/qemu-guest-agent",
                "siderolabs/util-linux-tools",
            ])),
            "88d1f7a5c4f1d3aba7df787c448c1d3d008ed29cfb34af53fa0df4336a56040b"
        );
    }

    #[test]
    fn order_is_part_of_the_identity() {
        let a = extensions(&["siderolabs/iscsi-tools", "siderolabs/util-linux-tools"]);
        let b = extensions(&["siderolabs/util-linux-tools", "siderolabs/iscsi-tools"]);
        assert_ne!(id(&a), id(&b));
    }

    #[test]
    fn every_part_is_written_in_the_factorys_order() {
        let s = Schematic {
            overlay: Some(Overlay {
                image: "img".into(),
                name: "".into(),
            }),
            extra_kernel_args: vec!["console=ttyS0".into()],
            meta: vec![MetaValue {
                key: 10,
                value: "{}".into(),
            }],
            extensions: vec!["siderolabs/gvisor".into()],
            secureboot_well_known_certificates: true,
        };
        assert_eq!(
            s.to_yaml().as_deref(),
            Ok(
                "overlay:\n    image: img\n    name: \"\"\ncustomization:\n    extraKernelArgs:\n        - console=ttyS0\n    meta:\n        - key: 10\n          value: '{}'\n    systemExtensions:\n        officialExtensions:\n            - siderolabs/gvisor\n    secureboot:\n        includeWellKnownCertificates: true\n"
            )
        );
    }

    #[test]
    fn a_line_break_is_refused_naming_the_field() {
        let s = Schematic {
            extra_kernel_args: vec!["a".into(), "b\nc".into()],
            ..Schematic::default()
        };
        assert_eq!(
            s.id().map_err(|e| e.to_string()).err().as_deref(),
            Some(
                "extraKernelArgs[1]: a line break cannot be part of it; split it into separate values."
            )
        );
    }
}

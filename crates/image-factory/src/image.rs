//! The references one schematic ID and Talos version name: the installer image Talos installs
//! and upgrades from, and the boot media (disk image, ISO) a hypervisor starts from.

use std::fmt;

/// The factory everyone uses unless they run their own.
pub const DEFAULT_FACTORY: &str = "https://factory.talos.dev";

/// CPU architecture of an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// x86-64.
    Amd64,
    /// 64-bit ARM.
    Arm64,
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        })
    }
}

/// One Talos image: a schematic built for a version, platform and architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    /// The factory's base URL, e.g. [`DEFAULT_FACTORY`]; its host is also the registry.
    pub factory: String,
    /// The schematic ID ([`crate::Schematic::id`]).
    pub schematic_id: String,
    /// The Talos version with its `v`, e.g. `v1.13.9`.
    pub version: String,
    /// The Talos platform, e.g. `nocloud` (Proxmox VE with cloud-init data) or `metal`.
    pub platform: String,
    /// The architecture.
    pub arch: Arch,
    /// A Secure Boot image (signed UKI, `-secureboot` assets and installer).
    pub secureboot: bool,
}

impl Image {
    fn base(&self) -> &str {
        self.factory.trim_end_matches('/')
    }

    fn secureboot_suffix(&self) -> &'static str {
        if self.secureboot { "-secureboot" } else { "" }
    }

    /// The installer image reference, e.g. `factory.talos.dev/installer/<id>:v1.13.9`: the
    /// factory serves it from its own registry under the same host.
    pub fn installer(&self) -> String {
        let host = self
            .base()
            .split_once("://")
            .map_or(self.base(), |(_, rest)| rest);
        format!(
            "{host}/installer{}/{}:{}",
            self.secureboot_suffix(),
            self.schematic_id,
            self.version
        )
    }

    /// The file name of an asset of this image, e.g. `nocloud-amd64.raw.xz`.
    fn asset(&self, extension: &str) -> String {
        format!(
            "{}-{}{}.{extension}",
            self.platform,
            self.arch,
            self.secureboot_suffix()
        )
    }

    fn url(&self, asset: &str) -> String {
        format!(
            "{}/image/{}/{}/{asset}",
            self.base(),
            self.schematic_id,
            self.version
        )
    }

    /// The xz-compressed raw disk image to import as a VM's boot disk.
    pub fn disk_image_url(&self) -> String {
        self.url(&self.asset("raw.xz"))
    }

    /// The ISO to boot an installer from.
    pub fn iso_url(&self) -> String {
        self.url(&self.asset("iso"))
    }

    /// A file name for the decompressed disk image on a Proxmox VE storage: unique per schematic,
    /// version, platform and architecture, so two images never overwrite each other.
    pub fn disk_image_file_name(&self) -> String {
        let short = self.schematic_id.get(..12).unwrap_or(&self.schematic_id);
        format!("talos-{}-{short}-{}", self.version, self.asset("raw"))
    }

    /// A file name for the ISO on a Proxmox VE storage.
    pub fn iso_file_name(&self) -> String {
        let short = self.schematic_id.get(..12).unwrap_or(&self.schematic_id);
        format!("talos-{}-{short}-{}", self.version, self.asset("iso"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(secureboot: bool) -> Image {
        Image {
            factory: format!("{DEFAULT_FACTORY}/"),
            schematic_id: "376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba".into(),
            version: "v1.13.9".into(),
            platform: "nocloud".into(),
            arch: Arch::Amd64,
            secureboot,
        }
    }

    #[test]
    fn references_follow_the_factorys_paths() {
        let i = image(false);
        assert_eq!(
            i.installer(),
            "factory.talos.dev/installer/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba:v1.13.9"
        );
        assert_eq!(
            i.disk_image_url(),
            "https://factory.talos.dev/image/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba/v1.13.9/nocloud-amd64.raw.xz"
        );
        assert_eq!(
            i.iso_url(),
            "https://factory.talos.dev/image/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba/v1.13.9/nocloud-amd64.iso"
        );
        assert_eq!(
            i.disk_image_file_name(),
            "talos-v1.13.9-376567988ad3-nocloud-amd64.raw"
        );
    }

    #[test]
    fn secure_boot_assets_and_installer_are_their_own() {
        let i = image(true);
        assert!(i.installer().contains("/installer-secureboot/"));
        assert!(i.iso_url().ends_with("/nocloud-amd64-secureboot.iso"));
        assert!(
            i.disk_image_url()
                .ends_with("/nocloud-amd64-secureboot.raw.xz")
        );
    }
}

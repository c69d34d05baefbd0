//! `data "infraflux_talos_image"`: a Talos Image Factory schematic computed offline — its ID,
//! the installer image and the boot media URLs — so a plan knows them before any network call.

use async_trait::async_trait;
use infraflux_image_factory::image::DEFAULT_FACTORY;
use infraflux_image_factory::{Arch, Image, MetaValue, Schematic};
use tfplugin::framework::validate::{check, one_of};
use tfplugin::{
    Attribute, AttributePath, Block, Ctx, DataSource, Diagnostic, Diagnostics, Schema,
    StateResponse, Type, Value,
};

pub struct TalosImage;

/// The platforms the factory builds disk images for (Talos `machinery/imager` platforms).
const PLATFORMS: &[&str] = &[
    "nocloud",
    "metal",
    "openstack",
    "vmware",
    "aws",
    "azure",
    "gcp",
    "hcloud",
    "digital-ocean",
    "oracle",
    "exoscale",
    "scaleway",
    "upcloud",
    "vultr",
    "akamai",
    "cloudstack",
    "opennebula",
];

fn strings(v: &Value) -> Vec<String> {
    v.as_elements()
        .unwrap_or_default()
        .iter()
        .filter_map(|e| e.as_str().map(str::to_owned))
        .collect()
}

/// A Talos version as the factory names it: `v1.13.9`, `v1.14.0-rc.1`.
fn talos_version(v: &Value) -> Result<(), String> {
    let Some(s) = v.as_str() else { return Ok(()) };
    let Some(rest) = s.strip_prefix('v') else {
        return Err(format!(
            "{s:?} has no leading `v`; the factory names versions like `v{s}`."
        ));
    };
    let core = rest.split_once('-').map_or(rest, |(c, _)| c);
    let parts: Vec<&str> = core.split('.').collect();
    if parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a Talos version; use `vMAJOR.MINOR.PATCH`, e.g. `v1.13.9`."
        ))
    }
}

/// Each extension is an official one's full name, `owner/name`.
fn extension_names(v: &Value) -> Result<(), String> {
    for (i, name) in strings(v).iter().enumerate() {
        let ok = matches!(name.split_once('/'), Some((owner, n))
            if !owner.is_empty() && !n.is_empty() && !n.contains('/'))
            && !name.contains(char::is_whitespace);
        if !ok {
            return Err(format!(
                "element {i} ({name:?}) is not an extension name; use the full name the factory lists, e.g. `siderolabs/qemu-guest-agent`."
            ));
        }
    }
    Ok(())
}

fn no_line_breaks(v: &Value) -> Result<(), String> {
    match strings(v).iter().position(|a| a.contains(['\n', '\r'])) {
        Some(i) => Err(format!(
            "element {i} holds a line break; give each argument as its own element."
        )),
        None => Ok(()),
    }
}

/// META keys: `10` or `0x0a`, from 0 to 255.
fn meta_key(k: &str) -> Option<u8> {
    match k.strip_prefix("0x").or_else(|| k.strip_prefix("0X")) {
        Some(hex) => u8::from_str_radix(hex, 16).ok(),
        None => k.parse().ok(),
    }
}

fn meta_keys(v: &Value) -> Result<(), String> {
    for k in v.as_map().map(|m| m.keys()).into_iter().flatten() {
        if meta_key(k).is_none() {
            return Err(format!(
                "key {k:?} is not a META key; use a number from 0 to 255 (`10` or `0x0a`)."
            ));
        }
    }
    Ok(())
}

fn factory_url(v: &Value) -> Result<(), String> {
    match v.as_str() {
        Some(s) if !(s.starts_with("https://") || s.starts_with("http://")) => Err(format!(
            "{s:?} is not a URL; use the factory's base URL, e.g. `{DEFAULT_FACTORY}`."
        )),
        _ => Ok(()),
    }
}

/// The schematic the configuration describes.
fn schematic(config: &Value) -> Schematic {
    let mut meta: Vec<MetaValue> = config
        .attr("meta")
        .as_map()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            Some(MetaValue {
                key: meta_key(k)?,
                value: v.as_str()?.to_owned(),
            })
        })
        .collect();
    // A map has no order; the factory's list does, so sort for a stable ID.
    meta.sort_by_key(|m| m.key);
    Schematic {
        overlay: None,
        extra_kernel_args: strings(config.attr("extra_kernel_args")),
        meta,
        extensions: strings(config.attr("extensions")),
        secureboot_well_known_certificates: config.attr("secureboot").as_bool().unwrap_or(false),
    }
}

fn text_or<'a>(config: &'a Value, name: &str, default: &'a str) -> &'a str {
    config.attr(name).as_str().unwrap_or(default)
}

#[async_trait]
impl DataSource for TalosImage {
    fn type_name(&self) -> &'static str {
        "infraflux_talos_image"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .description("A Talos Linux image from the Image Factory, computed offline: the schematic's ID (the SHA-256 of its canonical YAML, as the factory computes it), the installer image for `infraflux_talos_cluster`, and the disk image and ISO URLs for Proxmox VE. Reads nothing over the network.")
                .attr(
                    Attribute::new("talos_version", Type::String)
                        .required()
                        .validate(check("a Talos version with its `v`, e.g. `v1.13.9`", talos_version))
                        .description("The Talos version, with its leading `v` (`v1.13.9`)."),
                )
                .attr(
                    Attribute::new("platform", Type::String)
                        .optional()
                        .validate(one_of(PLATFORMS))
                        .description("The Talos platform the image is built for. Default `nocloud` (Proxmox VE, configured by cloud-init data)."),
                )
                .attr(
                    Attribute::new("arch", Type::String)
                        .optional()
                        .validate(one_of(&["amd64", "arm64"]))
                        .description("The architecture: `amd64` (default) or `arm64`."),
                )
                .attr(
                    Attribute::new("secureboot", Type::Bool)
                        .optional()
                        .description("A Secure Boot image (signed UKI, `-secureboot` assets and installer), with the well-known UEFI certificates included in auto-enrollment. Default `false`."),
                )
                .attr(
                    Attribute::new("extensions", Type::list(Type::String))
                        .optional()
                        .validate(check("official extension names, `owner/name`", extension_names))
                        .description("Official system extensions by full name, e.g. `siderolabs/qemu-guest-agent`, `siderolabs/iscsi-tools` and `siderolabs/util-linux-tools` for Longhorn. Order matters to the ID: the factory keeps the order it is given."),
                )
                .attr(
                    Attribute::new("extra_kernel_args", Type::list(Type::String))
                        .optional()
                        .validate(check("kernel arguments without line breaks", no_line_breaks))
                        .description("Extra kernel command-line arguments, one per element, e.g. `console=ttyS0`."),
                )
                .attr(
                    Attribute::new("meta", Type::map(Type::String))
                        .optional()
                        .validate(check("META keys from 0 to 255", meta_keys))
                        .description("Initial values of Talos's META partition, by key (`10` or `0x0a`); written in key order."),
                )
                .attr(
                    Attribute::new("factory_url", Type::String)
                        .optional()
                        .validate(check("an http(s) URL", factory_url))
                        .description(format!("The Image Factory's base URL. Default `{DEFAULT_FACTORY}`; its host is also the installer image's registry.")),
                )
                .attr(
                    Attribute::new("schematic", Type::String)
                        .computed()
                        .description("The schematic's canonical YAML, as `POST /schematics` takes it and `GET /schematics/{id}` shows it."),
                )
                .attr(Attribute::new("schematic_id", Type::String).computed().description("The schematic's ID."))
                .attr(Attribute::new("installer_image", Type::String).computed().description("The installer image to install and upgrade from, e.g. `factory.talos.dev/installer/<id>:v1.13.9`."))
                .attr(Attribute::new("disk_image_url", Type::String).computed().description("The xz-compressed raw disk image, e.g. `…/image/<id>/v1.13.9/nocloud-amd64.raw.xz`."))
                .attr(Attribute::new("disk_image_file_name", Type::String).computed().description("A file name for the decompressed disk image on a Proxmox VE storage, unique per schematic, version, platform and architecture."))
                .attr(Attribute::new("iso_url", Type::String).computed().description("The ISO image."))
                .attr(Attribute::new("iso_file_name", Type::String).computed().description("A file name for the ISO on a Proxmox VE storage.")),
        )
    }

    async fn validate(&self, config: &Value, diags: &mut Diagnostics) {
        // A repeated extension is almost surely a mistake, and it changes the image's ID.
        let names = strings(config.attr("extensions"));
        for (i, n) in names.iter().enumerate() {
            if let Some(first) = names[..i].iter().position(|m| m == n) {
                diags.error_at(
                    AttributePath::attr("extensions").push_index(i),
                    "Extension listed twice",
                    format!("{n:?} is already element {first}; list each extension once."),
                );
            }
        }
    }

    async fn read(&self, _ctx: &Ctx, config: &Value) -> StateResponse {
        let schematic = schematic(config);
        let (yaml, id) = match schematic.to_yaml().and_then(|y| Ok((y, schematic.id()?))) {
            Ok(v) => v,
            Err(e) => {
                return StateResponse::error(Diagnostic::error(
                    "Cannot compute the Talos image schematic",
                    e.to_string(),
                ));
            }
        };
        let image = Image {
            factory: text_or(config, "factory_url", DEFAULT_FACTORY).to_owned(),
            schematic_id: id.clone(),
            version: text_or(config, "talos_version", "").to_owned(),
            platform: text_or(config, "platform", "nocloud").to_owned(),
            arch: match text_or(config, "arch", "amd64") {
                "arm64" => Arch::Arm64,
                _ => Arch::Amd64,
            },
            secureboot: schematic.secureboot_well_known_certificates,
        };
        let mut state = config.clone();
        for (name, value) in [
            ("schematic", yaml),
            ("schematic_id", id),
            ("installer_image", image.installer()),
            ("disk_image_url", image.disk_image_url()),
            ("disk_image_file_name", image.disk_image_file_name()),
            ("iso_url", image.iso_url()),
            ("iso_file_name", image.iso_file_name()),
        ] {
            state.set_attr(name, Value::from(value));
        }
        StateResponse::ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_need_their_v() {
        assert!(talos_version(&Value::from("v1.13.9")).is_ok());
        assert!(talos_version(&Value::from("v1.14.0-rc.1")).is_ok());
        let e = talos_version(&Value::from("1.13.9")).unwrap_err();
        assert!(e.contains("`v1.13.9`"), "{e}");
        assert!(talos_version(&Value::from("v1.13")).is_err());
    }

    #[test]
    fn meta_keys_are_bytes_in_decimal_or_hex() {
        assert_eq!(meta_key("10"), Some(10));
        assert_eq!(meta_key("0x0a"), Some(10));
        assert_eq!(meta_key("256"), None);
        assert_eq!(meta_key("ten"), None);
    }

    #[test]
    fn extension_names_are_owner_slash_name() {
        let ok = Value::List(vec!["siderolabs/iscsi-tools".into()]);
        assert!(extension_names(&ok).is_ok());
        let bad = Value::List(vec!["siderolabs/iscsi-tools".into(), "iscsi-tools".into()]);
        let e = extension_names(&bad).unwrap_err();
        assert!(e.starts_with("element 1"), "{e}");
    }
}

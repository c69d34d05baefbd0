//! `data "infraflux_proxmox_template"`: one template VM by name, from the shared
//! `/cluster/resources?type=vm` answer (one request for any number of lookups).

use std::sync::Arc;

use async_trait::async_trait;
use infraflux_proxmox::types::VmResource;
use tfplugin::framework::validate::string_length;
use tfplugin::{
    Attribute, AttributePath, Block, Ctx, DataSource, Diagnostic, Schema, StateResponse, Type,
    Value,
};

use crate::provider::Shared;

pub struct ProxmoxTemplate(pub Arc<Shared>);

/// The one template named `name` (on `node`, when given), or the error naming the attribute.
pub fn pick<'a>(
    vms: &'a [VmResource],
    name: &str,
    node: Option<&str>,
) -> Result<&'a VmResource, Diagnostic> {
    let named: Vec<&VmResource> = vms
        .iter()
        .filter(|v| v.template && v.name.as_deref() == Some(name))
        .collect();
    let here: Vec<&VmResource> = named
        .iter()
        .copied()
        .filter(|v| node.is_none_or(|n| v.node == n))
        .collect();
    let list = |vs: &[&VmResource]| {
        vs.iter()
            .map(|v| format!("{} on {}", v.vmid, v.node))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (here.as_slice(), node) {
        ([one], _) => Ok(one),
        ([], Some(n)) if !named.is_empty() => Err(Diagnostic::error(
            "No such template on this node",
            format!(
                "node: no template named {name:?} is on node {n:?}; there is: {}. Set node to one of those nodes, or leave it out.",
                list(&named)
            ),
        )
        .at(AttributePath::attr("node"))),
        ([], _) => Err(Diagnostic::error(
            "No such template",
            format!(
                "name: no template VM is named {name:?}{}. Check the name (a VM that is not a template does not count), or create the template first.",
                node.map(|n| format!(" on node {n:?}")).unwrap_or_default()
            ),
        )
        .at(AttributePath::attr("name"))),
        (many, None) => Err(Diagnostic::error(
            "Several templates match",
            format!(
                "name: {} templates are named {name:?} ({}). Set node to pick one, or give the templates distinct names.",
                many.len(),
                list(many)
            ),
        )
        .at(AttributePath::attr("node"))),
        (many, Some(n)) => Err(Diagnostic::error(
            "Several templates match",
            format!(
                "name: {} templates named {name:?} are on node {n:?} (VM ids {}). Give them distinct names.",
                many.len(),
                many.iter().map(|v| v.vmid.to_string()).collect::<Vec<_>>().join(", ")
            ),
        )
        .at(AttributePath::attr("name"))),
    }
}

#[async_trait]
impl DataSource for ProxmoxTemplate {
    fn type_name(&self) -> &'static str {
        "infraflux_proxmox_template"
    }

    fn schema(&self) -> Schema {
        Schema::new(
            Block::new()
                .description("A template VM found by name, e.g. to clone from it without hard-coding its VM id. Exactly one template must match.")
                .attr(
                    Attribute::string("name")
                        .required()
                        .validate(string_length(1, 63))
                        .description("The template's name."),
                )
                .attr(
                    Attribute::string("node")
                        .optional()
                        .computed()
                        .validate(string_length(1, 64))
                        .description("Only look on this node (needed when templates of the same name live on several nodes). Computed: the template's node."),
                )
                .attr(
                    Attribute::number("vm_id")
                        .computed()
                        .description("The template's VM id (for `clone { source_vm_id }`)."),
                )
                .attr(
                    Attribute::new("tags", Type::set(Type::String))
                        .computed()
                        .description("The template's tags."),
                ),
        )
    }

    async fn read(&self, _ctx: &Ctx, config: &Value) -> StateResponse {
        let client = match self.0.proxmox(self.type_name()) {
            Ok(c) => c,
            Err(d) => return StateResponse::error(d),
        };
        let name = config.attr("name").as_str().unwrap_or_default();
        let node = config.attr("node").as_str();
        let vms = match client.vm_resources().await {
            Ok(v) => v,
            Err(e) => {
                return StateResponse::error(Diagnostic::error(
                    "Cannot list the VMs of the cluster",
                    e.to_string(),
                ));
            }
        };
        match pick(&vms, name, node) {
            Ok(t) => StateResponse::ok(Value::object([
                ("name", Value::from(name)),
                ("node", Value::from(t.node.as_str())),
                (
                    "vm_id",
                    Value::int(i64::try_from(t.vmid).unwrap_or_default()),
                ),
                (
                    "tags",
                    Value::Set(t.tags.iter().map(|s| Value::from(s.as_str())).collect()),
                ),
            ])),
            Err(d) => StateResponse::error(d),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vm(vmid: u64, node: &str, name: &str, template: bool) -> VmResource {
        serde_json::from_value(serde_json::json!({
            "vmid": vmid, "node": node, "type": "qemu", "name": name,
            "template": i64::from(template), "status": "stopped"
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn err(r: Result<&VmResource, Diagnostic>) -> String {
        r.err().map(|d| d.to_string()).unwrap_or_default()
    }

    #[test]
    fn exactly_one_template_matches() {
        let vms = vec![
            vm(9000, "pve1", "talos", true),
            vm(9001, "pve2", "talos", true),
            vm(100, "pve1", "web", false),
            vm(9002, "pve3", "debian", true),
        ];
        assert_eq!(pick(&vms, "debian", None).map(|v| v.vmid).ok(), Some(9002));
        assert_eq!(
            pick(&vms, "talos", Some("pve2")).map(|v| v.vmid).ok(),
            Some(9001)
        );
        let e = err(pick(&vms, "talos", None));
        assert!(
            e.contains("2 templates are named \"talos\"") && e.contains("9001 on pve2"),
            "{e}"
        );
        let e = err(pick(&vms, "web", None));
        assert!(e.contains("no template VM is named \"web\""), "{e}");
        let e = err(pick(&vms, "debian", Some("pve1")));
        assert!(e.contains("there is: 9002 on pve3"), "{e}");
    }
}

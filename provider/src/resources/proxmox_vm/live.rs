//! Plan-time checks against the live cluster: the node, storages and their content types,
//! the image, ISO, pool and bridges a create or a change needs exist. Only what is new
//! (created or changed) is checked, so an existing VM whose storage was since removed still
//! plans and destroys. Reads go through the client's shared read cache: one request per path
//! however many VMs a plan holds.

use infraflux_proxmox::types::{NodeStorage, StorageItem};
use infraflux_proxmox::{Client, Error};
use tfplugin::{AttributePath, Diagnostic, Diagnostics, Value};

use super::convert::DEFAULT_CI_DATASTORE;

const GIB: u64 = 1 << 30;

/// A value to check: known, and new when the VM is created or differs from the prior one.
fn new_str<'a>(config: &'a Value, prior: &Value, path: &[&str]) -> Option<&'a str> {
    let (mut c, mut p) = (config, prior);
    for k in path {
        c = c.attr(k);
        p = p.attr(k);
    }
    c.as_str().filter(|_| !c.equals(p))
}

/// Every check; `prior` is null on create.
pub(super) async fn check(client: &Client, config: &Value, prior: &Value, diags: &mut Diagnostics) {
    let mut cx = Checks {
        client,
        diags,
        node: None,
        storages: None,
    };
    let Some(node) = config.attr("node").as_str() else {
        return; // unknown until apply
    };
    if !cx.node_exists(node, !node_is(prior, node)).await {
        return;
    }
    cx.node = Some(node.to_owned());
    let creating = prior.is_null();
    if let Some(src) = new_str(config, prior, &["clone", "source_node"]) {
        cx.node_exists_at(src, AttributePath::attr("clone").push_attr("source_node"))
            .await;
    }
    if creating {
        cx.clone_source(config).await;
    }
    for (path, store) in [
        (&["clone", "storage"][..], "images"),
        (&["efi_disk", "storage"][..], "images"),
        (&["tpm_state", "storage"][..], "images"),
        (&["initialization", "datastore"][..], "images"),
    ] {
        if let Some(s) = new_str(config, prior, path) {
            let at = path
                .iter()
                .fold(AttributePath::root(), |p, k| p.push_attr(*k));
            cx.storage_with(s, store, at).await;
        }
    }
    if creating
        && !config.attr("initialization").is_null()
        && config.attr("initialization").attr("datastore").is_null()
    {
        cx.storage_with(
            DEFAULT_CI_DATASTORE,
            "images",
            AttributePath::attr("initialization").push_attr("datastore"),
        )
        .await;
    }
    if let Some(disks) = config.attr("disk").as_map() {
        for (slot, d) in disks {
            let at = AttributePath::attr("disk").push_key(slot.as_str());
            let was = entry(prior.attr("disk"), slot);
            if let Some(s) = d.attr("storage").as_str()
                && !d.attr("storage").equals(was.attr("storage"))
            {
                cx.storage_with(s, "images", at.push_attr("storage")).await;
            }
            if creating && let Some(src) = d.attr("import_from").as_str() {
                cx.import_volume(src, d.attr("size_gb").as_i64(), &at).await;
            }
        }
    }
    if let Some(iso) = new_str(config, prior, &["cdrom", "file_id"])
        && iso != "none"
        && iso != "cdrom"
    {
        cx.volume(
            iso,
            "iso",
            AttributePath::attr("cdrom").push_attr("file_id"),
        )
        .await;
    }
    if let Some(pool) = new_str(config, prior, &["pool"]) {
        cx.pool(pool).await;
    }
    if let Some(nets) = config.attr("network").as_map() {
        for (slot, n) in nets {
            let was = entry(prior.attr("network"), slot).attr("bridge");
            if let Some(b) = n.attr("bridge").as_str()
                && (!n.attr("bridge").equals(was) || !node_is(prior, node))
            {
                cx.bridge(
                    b,
                    AttributePath::attr("network")
                        .push_key(slot.as_str())
                        .push_attr("bridge"),
                )
                .await;
            }
        }
    }
}

/// The entry `k` of a map value; null when absent.
fn entry<'a>(v: &'a Value, k: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    v.as_map().and_then(|m| m.get(k)).unwrap_or(&NULL)
}

fn node_is(prior: &Value, node: &str) -> bool {
    prior.attr("node").as_str() == Some(node)
}

struct Checks<'a> {
    client: &'a Client,
    diags: &'a mut Diagnostics,
    node: Option<String>,
    storages: Option<Vec<NodeStorage>>,
}

impl Checks<'_> {
    /// A read that failed (no connection, no right to read it): the check is skipped; the
    /// apply reports the same failure where it matters, once.
    fn unchecked(&mut self, what: &str, at: AttributePath, e: &Error) {
        tracing::info!(%at, error = %e, "cannot check {what} at plan time");
    }

    async fn node_exists(&mut self, node: &str, check: bool) -> bool {
        !check || self.node_exists_at(node, AttributePath::attr("node")).await
    }

    /// `node` is a node of the cluster and online; else an error at `at`.
    async fn node_exists_at(&mut self, node: &str, at: AttributePath) -> bool {
        let nodes = match self.client.nodes_cached().await {
            Ok(n) => n,
            Err(e) => {
                self.unchecked(&format!("node {node:?}"), at, &e);
                return false;
            }
        };
        match nodes.iter().find(|n| n.node == node) {
            Some(n) if n.status == "offline" => {
                self.diags.push(
                    Diagnostic::error(
                        "Node offline",
                        format!(
                            "{at}: node {node:?} is offline. Bring it back, or pick another node."
                        ),
                    )
                    .at(at),
                );
                false
            }
            Some(_) => true,
            None => {
                let mut names: Vec<&str> = nodes.iter().map(|n| n.node.as_str()).collect();
                names.sort_unstable();
                self.diags.push(
                    Diagnostic::error(
                        "Unknown node",
                        format!(
                            "{at}: {node:?} is not a node of this cluster; its nodes are {}.",
                            names.join(", ")
                        ),
                    )
                    .at(at),
                );
                false
            }
        }
    }

    /// The clone's source VM exists.
    async fn clone_source(&mut self, config: &Value) {
        let Some(id) = config
            .attr("clone")
            .attr("source_vm_id")
            .as_i64()
            .and_then(|n| u32::try_from(n).ok())
        else {
            return;
        };
        let at = AttributePath::attr("clone").push_attr("source_vm_id");
        match self.client.find_vm(id).await {
            Ok(Some(_)) => {}
            Ok(None) => self.diags.push(
                Diagnostic::error(
                    "Clone source not found",
                    format!("{at}: no VM or template {id} exists on the cluster. Set the id of an existing template."),
                )
                .at(at),
            ),
            Err(e) => self.unchecked(&format!("VM {id}"), at, &e),
        }
    }

    async fn node_storages(&mut self) -> Result<&[NodeStorage], Error> {
        if self.storages.is_none() {
            let node = self.node.clone().unwrap_or_default();
            self.storages = Some(self.client.node_storages_cached(&node).await?);
        }
        Ok(self.storages.as_deref().unwrap_or_default())
    }

    /// `storage` exists on the node and takes `content`; else an error at `at`.
    async fn storage_with(&mut self, storage: &str, content: &str, at: AttributePath) -> bool {
        let node = self.node.clone().unwrap_or_default();
        let found = match self.node_storages().await {
            Ok(all) => all.iter().find(|s| s.storage == storage).cloned().map(|s| {
                let takes = s.content.split(',').any(|c| c.trim() == content);
                (takes, s.content)
            }),
            Err(e) => {
                self.unchecked(&format!("storage {storage:?}"), at, &e);
                return false;
            }
        };
        let names = |want: &str, all: &[NodeStorage]| {
            let mut v: Vec<&str> = all
                .iter()
                .filter(|s| s.content.split(',').any(|c| c.trim() == want))
                .map(|s| s.storage.as_str())
                .collect();
            v.sort_unstable();
            if v.is_empty() {
                "none".to_owned()
            } else {
                v.join(", ")
            }
        };
        let msg = match found {
            Some((true, _)) => return true,
            Some((false, has)) => format!(
                "{at}: storage {storage:?} on node {node} does not hold `{content}` (it holds {has}). Storages of {node} that do: {}; or add `{content}` to its content in Proxmox VE (Datacenter → Storage).",
                names(content, self.storages.as_deref().unwrap_or_default())
            ),
            None => format!(
                "{at}: node {node} has no storage {storage:?}. Storages of {node} that hold `{content}`: {}.",
                names(content, self.storages.as_deref().unwrap_or_default())
            ),
        };
        self.diags
            .push(Diagnostic::error("Storage not usable", msg).at(at));
        false
    }

    /// The volume `volid` (`storage:path`) of `content` exists; returns it.
    async fn volume(
        &mut self,
        volid: &str,
        content: &str,
        at: AttributePath,
    ) -> Option<StorageItem> {
        let Some((storage, _)) = volid.split_once(':') else {
            if volid.starts_with('/') {
                return None; // an absolute path on the node (root only): not listed
            }
            self.diags.push(
                Diagnostic::error(
                    "Invalid volume",
                    format!("{at}: {volid:?} is not a volume id; write storage:path, e.g. \"local:{content}/name\"."),
                )
                .at(at),
            );
            return None;
        };
        if !self.storage_with(storage, content, at.clone()).await {
            return None;
        }
        let node = self.node.clone().unwrap_or_default();
        let items = match self
            .client
            .storage_content_cached(&node, storage, content)
            .await
        {
            Ok(i) => i,
            Err(e) => {
                self.unchecked(&format!("volume {volid:?}"), at, &e);
                return None;
            }
        };
        if let Some(i) = items.iter().find(|i| i.volid == volid) {
            return Some(i.clone());
        }
        let mut have: Vec<&str> = items.iter().map(|i| i.volid.as_str()).collect();
        have.sort_unstable();
        self.diags.push(
            Diagnostic::error(
                "Volume not found",
                format!(
                    "{at}: {volid:?} does not exist on node {node} ({content} volumes there: {}). Upload it first, or fix the name.",
                    if have.is_empty() { "none".to_owned() } else { have.join(", ") }
                ),
            )
            .at(at),
        );
        None
    }

    /// The image to import exists, and `size_gb` (when set) holds it.
    async fn import_volume(&mut self, volid: &str, size_gb: Option<i64>, disk: &AttributePath) {
        let at = disk.push_attr("import_from");
        let Some(item) = self.volume(volid, "import", at).await else {
            return;
        };
        let Some(gb) = size_gb.and_then(|g| u64::try_from(g).ok()) else {
            return;
        };
        if gb.saturating_mul(GIB) < item.size {
            let need = item.size.div_ceil(GIB);
            let at = disk.push_attr("size_gb");
            self.diags.push(
                Diagnostic::error(
                    "Disk smaller than its image",
                    format!("{at}: {gb} GiB is smaller than the image {volid:?} ({:.2} GiB), and Proxmox VE cannot shrink disks. Set size_gb to {need} or more, or leave it unset to use the image's size.", item.size as f64 / GIB as f64),
                )
                .at(at),
            );
        }
    }

    async fn pool(&mut self, pool: &str) {
        let at = AttributePath::attr("pool");
        match self.client.pools_cached().await {
            Ok(pools) if pools.iter().any(|p| p.poolid == pool) => {}
            Ok(pools) => {
                let mut names: Vec<&str> = pools.iter().map(|p| p.poolid.as_str()).collect();
                names.sort_unstable();
                self.diags.push(
                    Diagnostic::error(
                        "Pool not found",
                        format!(
                            "pool: {pool:?} does not exist (pools: {}). Create it (Datacenter → Permissions → Pools, or `pveum pool add {pool}`), or fix the name.",
                            if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                        ),
                    )
                    .at(at),
                );
            }
            Err(e) => self.unchecked(&format!("pool {pool:?}"), at, &e),
        }
    }

    /// `bridge` is a bridge of the node or an SDN VNet.
    async fn bridge(&mut self, bridge: &str, at: AttributePath) {
        let node = self.node.clone().unwrap_or_default();
        let bridges = match self.client.node_bridges_cached(&node).await {
            Ok(b) => b,
            Err(e) => {
                self.unchecked(&format!("bridge {bridge:?}"), at, &e);
                return;
            }
        };
        if bridges.iter().any(|b| b.iface == bridge) {
            return;
        }
        // Without SDN (or the right to read it) there are no VNets.
        let vnets = self.client.sdn_vnets_cached().await.unwrap_or_default();
        if vnets.iter().any(|v| v == bridge) {
            return;
        }
        let mut names: Vec<&str> = bridges.iter().map(|b| b.iface.as_str()).collect();
        names.extend(vnets.iter().map(String::as_str));
        names.sort_unstable();
        self.diags.push(
            Diagnostic::error(
                "Bridge not found",
                format!(
                    "{at}: node {node} has no bridge or SDN VNet {bridge:?} (it has {}). Fix the name, or create the bridge on {node}.",
                    if names.is_empty() { "none".to_owned() } else { names.join(", ") }
                ),
            )
            .at(at),
        );
    }
}

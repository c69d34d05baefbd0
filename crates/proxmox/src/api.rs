//! Cluster-wide verbs: version, nodes, storage, the shared VM list, and VM id allocation.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use crate::client::{Client, Params, seg};
use crate::error::Error;
use crate::types::{NodeInfo, NodeStorage, StorageItem, Version, VmResource};

/// The default range: `/cluster/nextid` alone is right for it.
const FULL_RANGE: (u32, u32) = (100, 999_999_999);

/// A VM id this process handed out and has not created yet; dropping it frees the id for
/// other callers in this process.
#[derive(Debug)]
pub struct VmIdReservation {
    pub vmid: u32,
    client: Client,
}

impl Drop for VmIdReservation {
    fn drop(&mut self) {
        let mut set = self
            .client
            .inner
            .reserved_ids
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        set.remove(&self.vmid);
    }
}

/// PVE answers nextid as a string (the schema says integer).
fn vmid_of(v: &Value) -> Option<u32> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        _ => None,
    }
}

impl Client {
    /// The API's version (`GET /version`); cheap, any authenticated user may ask.
    pub async fn version(&self) -> Result<Version, Error> {
        self.get("/version", Params::new()).await
    }

    /// The cluster's nodes with their status, CPU and memory.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, Error> {
        self.get("/nodes", Params::new()).await
    }

    /// The storages one node sees, with their space and content types.
    pub async fn node_storages(&self, node: &str) -> Result<Vec<NodeStorage>, Error> {
        self.get(&format!("/nodes/{}/storage", seg(node)), Params::new())
            .await
    }

    /// Put a VM into `pool`, moving it out of the pool it is in (`allow-move`, PVE 8.2+).
    pub async fn set_vm_pool(&self, pool: &str, vmid: u32) -> Result<(), Error> {
        let _: Value = self
            .put(
                &format!("/pools/{}", seg(pool)),
                Params::new().set("vms", vmid).flag("allow-move", true),
            )
            .await?;
        self.invalidate_vm_resources().await;
        Ok(())
    }

    /// Volumes on one storage of one node, optionally of one content type (`images`, `iso`,
    /// `import`, …).
    pub async fn storage_content(
        &self,
        node: &str,
        storage: &str,
        content: Option<&str>,
    ) -> Result<Vec<StorageItem>, Error> {
        self.get(
            &format!("/nodes/{}/storage/{}/content", seg(node), seg(storage)),
            Params::new().opt("content", content),
        )
        .await
    }

    /// Every VM of the cluster, fresh from the API (one request).
    pub async fn vm_resources_uncached(&self) -> Result<Vec<VmResource>, Error> {
        let all: Vec<VmResource> = self
            .get("/cluster/resources", Params::new().set("type", "vm"))
            .await?;
        Ok(all.into_iter().filter(|r| r.kind == "qemu").collect())
    }

    /// Every VM of the cluster, from one answer shared by all callers for a few seconds.
    pub async fn vm_resources(&self) -> Result<Arc<Vec<VmResource>>, Error> {
        self.inner
            .vm_cache
            .get_or_fetch(|| self.vm_resources_uncached())
            .await
    }

    /// Where a VM is, from the shared list. `None` = no such VM in the cluster.
    pub async fn find_vm(&self, vmid: u32) -> Result<Option<VmResource>, Error> {
        Ok(self
            .vm_resources()
            .await?
            .iter()
            .find(|r| r.vmid == u64::from(vmid))
            .cloned())
    }

    /// Make the next reader fetch a fresh list (after create, delete or migrate).
    pub async fn invalidate_vm_resources(&self) {
        self.inner.vm_cache.invalidate().await;
    }

    /// Ask PVE whether `vmid` is free (`Ok(false)` = taken).
    pub async fn vmid_is_free(&self, vmid: u32) -> Result<bool, Error> {
        match self
            .get::<Value>("/cluster/nextid", Params::new().set("vmid", vmid))
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if e.is_vmid_taken() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A free VM id inside `vm_id_range`, reserved in this process until the guard drops.
    /// Another process can still take it: [`Client::with_new_vmid`] handles that race.
    pub async fn reserve_vmid(&self) -> Result<VmIdReservation, Error> {
        let (min, max) = self.inner.vm_id_range;
        let reserved = |id: u32| {
            self.inner
                .reserved_ids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(&id)
        };
        let mut taken: HashSet<u32> = HashSet::new();
        let mut candidate = if (min, max) == FULL_RANGE {
            let v: Value = self.get("/cluster/nextid", Params::new()).await?;
            vmid_of(&v).ok_or_else(|| Error::Protocol {
                action: "GET /cluster/nextid".into(),
                reason: format!("{v} is not a VM id"),
            })?
        } else {
            // One list instead of one nextid probe per used id.
            taken.extend(
                self.vm_resources_uncached()
                    .await?
                    .iter()
                    .filter_map(|r| u32::try_from(r.vmid).ok()),
            );
            min
        };
        let mut confirmed = (min, max) == FULL_RANGE;
        loop {
            if candidate < min || candidate > max {
                return Err(Error::NoFreeVmId { min, max });
            }
            if taken.contains(&candidate) || reserved(candidate) {
                candidate += 1;
                confirmed = false;
                continue;
            }
            if confirmed || self.vmid_is_free(candidate).await? {
                let mut set = self
                    .inner
                    .reserved_ids
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if set.insert(candidate) {
                    return Ok(VmIdReservation {
                        vmid: candidate,
                        client: self.clone(),
                    });
                }
            }
            taken.insert(candidate);
            candidate += 1;
            confirmed = false;
        }
    }

    /// Run `op` with a fresh VM id; when the id turns out to be taken (another process won the
    /// race between nextid and create/clone: "VM N already exists"), try again with a new one.
    pub async fn with_new_vmid<T, F, Fut>(&self, mut op: F) -> Result<T, Error>
    where
        F: FnMut(u32) -> Fut,
        Fut: Future<Output = Result<T, Error>>,
    {
        const ATTEMPTS: usize = 10;
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let r = self.reserve_vmid().await?;
            match op(r.vmid).await {
                Err(e) if e.is_vmid_taken() => {
                    tracing::debug!(vmid = r.vmid, "VM id taken meanwhile; allocating another");
                    last = Some(e);
                }
                other => return other,
            }
        }
        Err(last.unwrap_or(Error::NoFreeVmId {
            min: self.inner.vm_id_range.0,
            max: self.inner.vm_id_range.1,
        }))
    }
}

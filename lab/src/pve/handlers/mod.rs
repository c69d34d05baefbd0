//! API handlers, one module per area. `dispatch` maps a schema route to its handler.

mod access;
mod cluster;
mod migrate;
mod nodes;
mod pools;
mod qemu;
mod qemu_config;
mod qemu_status;
mod tasks;
pub(crate) mod util;

use std::sync::Arc;

use serde_json::Value;

use super::Pve;
use super::auth::Principal;
use super::error::ApiError;
use super::validate::Params;

/// One validated, authenticated API call.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    /// Schema path template, e.g. `/nodes/{node}/qemu/{vmid}/config`.
    pub route: String,
    pub params: Params,
    pub who: Principal,
}

impl Call {
    pub fn str(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }

    pub fn node(&self) -> &str {
        self.str("node").unwrap_or_default()
    }

    pub fn flag(&self, k: &str) -> bool {
        self.str(k) == Some("1")
    }

    pub fn u32(&self, k: &str) -> Option<u32> {
        self.str(k).and_then(|v| v.parse().ok())
    }

    pub fn vmid(&self) -> u32 {
        self.u32("vmid").unwrap_or_default()
    }
}

/// A handler's answer: `data` plus PVE's optional `total`.
#[derive(Debug, Clone)]
pub struct Reply {
    pub data: Value,
    pub total: Option<u64>,
}

impl From<Value> for Reply {
    fn from(data: Value) -> Self {
        Reply { data, total: None }
    }
}

pub type Result<T = Reply> = std::result::Result<T, ApiError>;

/// Route a call to its handler; schema paths the lab does not simulate answer 501.
pub async fn dispatch(pve: &Arc<Pve>, call: Call) -> Result {
    let m = call.method.as_str();
    match (m, call.route.as_str()) {
        ("GET", "/version") => cluster::version(pve, &call),
        ("POST", "/access/ticket") => access::ticket(pve, &call),
        ("GET", "/cluster/nextid") => cluster::nextid(pve, &call),
        ("GET", "/cluster/resources") => cluster::resources(pve, &call),
        ("GET", "/cluster/status") => cluster::status(pve, &call),
        ("GET", "/storage") => cluster::storage_config(pve, &call),
        ("GET", "/nodes/{node}/network") => nodes::network(pve, &call),
        ("GET", "/pools") => pools::list(pve, &call),
        ("POST", "/pools") => pools::create(pve, &call),
        ("GET", "/pools/{poolid}") => pools::get(pve, &call),
        ("PUT", "/pools") | ("PUT", "/pools/{poolid}") => pools::update(pve, &call),
        ("GET", "/nodes") => nodes::list(pve, &call),
        ("GET", "/nodes/{node}/status") => nodes::status(pve, &call),
        ("GET", "/nodes/{node}/time") => nodes::time(pve, &call),
        ("GET", "/nodes/{node}/storage") => nodes::storage_list(pve, &call),
        ("GET", "/nodes/{node}/storage/{storage}/content") => nodes::storage_content(pve, &call),
        ("GET", "/nodes/{node}/qemu") => qemu::list(pve, &call),
        ("POST", "/nodes/{node}/qemu") => qemu::create(pve, &call),
        ("POST", "/nodes/{node}/qemu/{vmid}/clone") => qemu::clone(pve, &call).await,
        ("DELETE", "/nodes/{node}/qemu/{vmid}") => qemu::destroy(pve, &call),
        ("POST", "/nodes/{node}/qemu/{vmid}/migrate") => migrate::migrate(pve, &call),
        ("POST", "/nodes/{node}/qemu/{vmid}/template") => qemu::template(pve, &call),
        ("GET", "/nodes/{node}/qemu/{vmid}/config") => qemu_config::get(pve, &call),
        ("GET", "/nodes/{node}/qemu/{vmid}/pending") => qemu_config::pending(pve, &call),
        ("POST", "/nodes/{node}/qemu/{vmid}/config") => qemu_config::update(pve, &call, true).await,
        ("PUT", "/nodes/{node}/qemu/{vmid}/config") => qemu_config::update(pve, &call, false).await,
        ("PUT", "/nodes/{node}/qemu/{vmid}/resize") => qemu_config::resize(pve, &call),
        ("GET", "/nodes/{node}/qemu/{vmid}/status/current") => qemu_status::current(pve, &call),
        ("POST", "/nodes/{node}/qemu/{vmid}/status/start")
        | ("POST", "/nodes/{node}/qemu/{vmid}/status/stop")
        | ("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown")
        | ("POST", "/nodes/{node}/qemu/{vmid}/status/reboot") => qemu_status::power(pve, &call),
        ("GET", "/nodes/{node}/qemu/{vmid}/agent/network-get-interfaces") => {
            qemu_status::agent_interfaces(pve, &call)
        }
        ("GET", "/nodes/{node}/tasks") => tasks::list(pve, &call),
        ("GET", "/nodes/{node}/tasks/{upid}/status") => tasks::status(pve, &call),
        ("GET", "/nodes/{node}/tasks/{upid}/log") => tasks::log(pve, &call),
        _ => Err(ApiError::NotImplemented {
            method: call.method.clone(),
            path: format!("{} (not simulated by the lab)", call.route),
        }),
    }
}

//! `POST /access/ticket`.

use std::sync::Arc;

use serde_json::json;

use super::{Call, Result};
use crate::pve::Pve;
use crate::pve::error::ApiError;

pub fn ticket(pve: &Arc<Pve>, call: &Call) -> Result {
    let username = call.str("username").unwrap_or_default();
    let password = call.str("password").unwrap_or_default();
    if call.str("otp").is_some() || call.str("tfa-challenge").is_some() {
        return Err(ApiError::AuthFailure("authentication failure".into()));
    }
    let (ticket, csrf, user) = pve.auth.login(username, call.str("realm"), password)?;
    let cluster = pve.state().cluster_name.clone();
    Ok(json!({
        "username": user,
        "ticket": ticket,
        "CSRFPreventionToken": csrf,
        "clustername": cluster,
        "cap": {
            "vms": {"VM.Allocate": 1, "VM.Audit": 1, "VM.Clone": 1, "VM.Config.Disk": 1, "VM.PowerMgmt": 1},
            "storage": {"Datastore.Allocate": 1, "Datastore.Audit": 1},
            "nodes": {"Sys.Audit": 1},
            "access": {"User.Modify": 1},
            "dc": {"Sys.Audit": 1},
            "sdn": {"SDN.Use": 1},
            "mapping": {"Mapping.Use": 1},
        }
    })
    .into())
}

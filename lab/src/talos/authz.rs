//! Talos roles and the per-RPC rules apid/machined enforce (from siderolabs/talos
//! `internal/app/machined/pkg/system/services/machined.go`; unlisted methods need os:admin).

use tonic::{Request, Status};

/// A Talos API role, from the client certificate's Organization.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Operator,
    Reader,
    EtcdBackup,
    /// May act as the roles it names in `talos-role` metadata (apid forwarding a call).
    Impersonator,
}

impl Role {
    pub fn from_org(org: &str) -> Option<Role> {
        match org {
            "os:admin" => Some(Role::Admin),
            "os:operator" => Some(Role::Operator),
            "os:reader" => Some(Role::Reader),
            "os:etcd:backup" => Some(Role::EtcdBackup),
            "os:impersonator" => Some(Role::Impersonator),
            _ => None,
        }
    }

    pub fn org(self) -> &'static str {
        match self {
            Role::Admin => "os:admin",
            Role::Operator => "os:operator",
            Role::Reader => "os:reader",
            Role::EtcdBackup => "os:etcd:backup",
            Role::Impersonator => "os:impersonator",
        }
    }
}

/// The metadata key an `os:impersonator` names the roles it acts as in.
pub const TALOS_ROLE: &str = "talos-role";

/// The roles a call runs with: an impersonator's `talos-role` replaces its own (unknown roles
/// grant nothing); anyone else sending `talos-role` is refused.
pub fn effective_roles<'a>(
    caller: &Caller,
    requested: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<Role>, Status> {
    let requested: Vec<&str> = requested
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    if requested.is_empty() {
        return Ok(caller.roles.clone());
    }
    if !caller.roles.contains(&Role::Impersonator) {
        return Err(Status::permission_denied(
            "not authorized: talos-role metadata needs the os:impersonator role",
        ));
    }
    Ok(requested.into_iter().filter_map(Role::from_org).collect())
}

/// Which API a connection reached: the node serves one of them per boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// TLS without client certs; everyone is a reader.
    Maintenance,
    /// Mutual TLS against the OS CA.
    Running,
}

/// Who is calling, attached to every request of a connection (tonic `ConnectInfo`).
#[derive(Debug, Clone)]
pub struct Caller {
    pub mode: Mode,
    pub roles: Vec<Role>,
    /// Notified to drop the caller's connection (fault injection).
    pub kill: std::sync::Arc<tokio::sync::Notify>,
}

use Role::{Admin, EtcdBackup, Operator, Reader};

/// The roles allowed to call a method (full gRPC path).
pub fn allowed(method: &str) -> &'static [Role] {
    match method {
        "/machine.MachineService/Version"
        | "/machine.MachineService/ServiceList"
        | "/cosi.resource.State/Get"
        | "/cosi.resource.State/List" => &[Admin, Operator, Reader],
        "/machine.MachineService/EtcdMemberList" => &[Admin, Operator, Reader, EtcdBackup],
        "/machine.MachineService/Reboot" => &[Admin, Operator],
        _ => &[Admin],
    }
}

/// The caller of a request with its effective roles (absent only if the server was wired
/// wrongly: treat as nobody).
pub fn caller<T>(req: &Request<T>) -> Result<Caller, Status> {
    let mut caller = req.extensions().get::<Caller>().cloned().unwrap_or(Caller {
        mode: Mode::Running,
        roles: Vec::new(),
        kill: Default::default(),
    });
    let requested = req.metadata().get_all(TALOS_ROLE);
    caller.roles = effective_roles(&caller, requested.iter().filter_map(|v| v.to_str().ok()))?;
    Ok(caller)
}

/// Talos's answer to a caller without a role the method allows.
pub fn denied() -> Status {
    Status::permission_denied("not authorized")
}

/// Check `method` against the caller's roles.
pub fn check(caller: &Caller, method: &str) -> Result<(), Status> {
    if allowed(method).iter().any(|r| caller.roles.contains(r)) {
        Ok(())
    } else {
        Err(denied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let reader = Caller {
            mode: Mode::Running,
            roles: vec![Reader],
            kill: Default::default(),
        };
        assert!(check(&reader, "/machine.MachineService/Version").is_ok());
        assert_eq!(
            check(&reader, "/machine.MachineService/Bootstrap")
                .map_err(|s| s.message().to_string()),
            Err("not authorized".to_string())
        );
        let op = Caller {
            mode: Mode::Running,
            roles: vec![Operator],
            kill: Default::default(),
        };
        assert!(check(&op, "/machine.MachineService/Reboot").is_ok());
        assert!(check(&op, "/machine.MachineService/Reset").is_err());
        assert_eq!(Role::from_org("os:etcd:backup"), Some(EtcdBackup));
        assert_eq!(Role::from_org("system:masters"), None);
    }
}

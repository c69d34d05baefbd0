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
}

impl Role {
    pub fn from_org(org: &str) -> Option<Role> {
        match org {
            "os:admin" => Some(Role::Admin),
            "os:operator" => Some(Role::Operator),
            "os:reader" => Some(Role::Reader),
            "os:etcd:backup" => Some(Role::EtcdBackup),
            _ => None,
        }
    }
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

/// The caller of a request (absent only if the server was wired wrongly: treat as nobody).
pub fn caller<T>(req: &Request<T>) -> Caller {
    req.extensions().get::<Caller>().cloned().unwrap_or(Caller {
        mode: Mode::Running,
        roles: Vec::new(),
        kill: Default::default(),
    })
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

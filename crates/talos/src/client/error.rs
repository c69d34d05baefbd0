//! Typed errors of the Talos API client. Every message names the node and what was being
//! done; none carries a key, certificate body or token.

use std::time::Duration;

use tonic::Code;

/// A Talos API failure.
#[derive(Debug, thiserror::Error)]
pub enum TalosError {
    /// The client configuration (CA, certificate, key) or an endpoint is unusable.
    #[error("talos client configuration: {0}")]
    Config(String),
    /// The node refused a machine configuration (InvalidArgument, or Unknown/Internal while
    /// applying: Talos's "failed to parse config", schema decode errors).
    #[error("node {node}: configuration rejected: {reason}")]
    ConfigRejected { node: String, reason: String },
    /// PermissionDenied: the certificate's role (Organization) does not allow the call, or the
    /// node is in maintenance mode where only readers exist.
    #[error("node {node}: {phase}: not authorized: {why} (Talos: {message})")]
    NotAuthorized {
        node: String,
        phase: &'static str,
        /// What the refusal means for this kind of connection.
        why: &'static str,
        message: String,
    },
    /// No TCP connection or the connection broke (refused, reset, timeout). `waited` is zero
    /// when an established connection broke.
    #[error(
        "node {node}: {phase}: node unreachable at {endpoint}{}: {detail}",
        after(*waited)
    )]
    Unreachable {
        node: String,
        phase: &'static str,
        endpoint: String,
        waited: Duration,
        detail: String,
    },
    /// The TLS handshake failed (wrong CA, a node still in maintenance mode answering an
    /// authenticated client, a client certificate the node rejects).
    #[error("node {node}: {phase}: TLS handshake with {endpoint} failed: {detail}{hint}")]
    Tls {
        node: String,
        phase: &'static str,
        endpoint: String,
        detail: String,
        /// Empty, or " (…)" with the likely cause.
        hint: &'static str,
    },
    /// FailedPrecondition: the node is not ready for this yet (e.g. bootstrap before etcd
    /// waits for it). Retryable.
    #[error("node {node}: {phase}: not ready yet: {message}")]
    NotReady {
        node: String,
        phase: &'static str,
        message: String,
    },
    /// Unimplemented: e.g. a Talos ≤ 1.12 maintenance service.
    #[error("node {node}: {phase}: not available on this node (Talos: {message})")]
    Unimplemented {
        node: String,
        phase: &'static str,
        message: String,
    },
    /// Any other gRPC status.
    #[error("node {node}: {phase}: {code:?}: {message}")]
    Api {
        node: String,
        phase: &'static str,
        code: Code,
        message: String,
    },
    /// The answer could not be understood.
    #[error("node {node}: {phase}: unexpected answer: {detail}")]
    Protocol {
        node: String,
        phase: &'static str,
        detail: String,
    },
    /// `wait_for_stage` ran out of time.
    #[error(
        "node {node}: did not reach stage {want} within {} (last seen: {last})",
        human(*waited)
    )]
    WaitTimeout {
        node: String,
        want: String,
        waited: Duration,
        last: String,
    },
    /// The caller cancelled a wait.
    #[error("node {node}: {phase}: cancelled")]
    Cancelled { node: String, phase: &'static str },
}

/// `60s`, `1.5s`, `30ms`.
fn human(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        if d.subsec_millis() == 0 {
            format!("{}s", d.as_secs())
        } else {
            format!("{:.1}s", d.as_secs_f64())
        }
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// ` after 60s`, or nothing when the failure was not a wait (a connection that broke).
fn after(d: Duration) -> String {
    if d.is_zero() {
        String::new()
    } else {
        format!(" after {}", human(d))
    }
}

impl TalosError {
    /// Worth trying again later: the node is not reachable or not ready yet.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TalosError::Unreachable { .. } | TalosError::NotReady { .. }
        )
    }

    /// The gRPC code the node answered with, when it answered.
    pub fn code(&self) -> Option<Code> {
        match self {
            TalosError::ConfigRejected { .. } => Some(Code::InvalidArgument),
            TalosError::NotAuthorized { .. } => Some(Code::PermissionDenied),
            TalosError::NotReady { .. } => Some(Code::FailedPrecondition),
            TalosError::Unimplemented { .. } => Some(Code::Unimplemented),
            TalosError::Api { code, .. } => Some(*code),
            _ => None,
        }
    }
}

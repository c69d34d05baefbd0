//! The engine's one error type, and how kube-rs errors map onto it.

use std::time::Duration;

/// What went wrong, named so a user can act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig is not usable; the message names the field.
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    /// Nothing answered at the API server's address (refused, reset, no answer in time).
    #[error("the Kubernetes API server at {server} is unreachable: {reason}")]
    Unreachable {
        /// The server URL from the kubeconfig.
        server: String,
        /// What the connection attempt saw (e.g. "connection refused", "no answer within 5s").
        reason: String,
    },
    /// The API server refused the credentials or the verb (401/403).
    #[error("forbidden: cannot {verb} {resource}: {message}")]
    Forbidden {
        /// The verb tried (get, list, patch, delete, …).
        verb: String,
        /// The object or resource it was tried on.
        resource: String,
        /// The API server's message.
        message: String,
    },
    /// The API server rejected an object's content (422, or a typed-patch 500).
    #[error("{object} is invalid: {message}")]
    Invalid {
        /// The object ("Kind namespace/name").
        object: String,
        /// The API server's field message.
        message: String,
    },
    /// Any other error status from the API server.
    #[error("{object}: the API server answered {status}: {message}")]
    Api {
        /// The object or resource the request was about.
        object: String,
        /// The HTTP status code.
        status: u16,
        /// The API server's message.
        message: String,
    },
    /// A wait ran out of time; names what it waited for and what it last saw.
    #[error("timed out waiting for {waited_for}: {last_seen}")]
    Timeout {
        /// The object (or set of objects) waited for.
        waited_for: String,
        /// The last state observed.
        last_seen: String,
    },
    /// TLS, protocol or decoding trouble that retrying will not cure.
    #[error("transport: {0}")]
    Transport(String),
}

impl Error {
    /// Whether retrying the same (idempotent) request may succeed.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Unreachable { .. } => true,
            Error::Api { status, .. } => matches!(status, 429 | 500 | 502 | 503 | 504),
            _ => false,
        }
    }

    /// A request that got no answer within `limit`.
    pub(crate) fn no_answer(server: &str, limit: Duration) -> Error {
        Error::Unreachable {
            server: server.to_string(),
            reason: format!("no answer within {}s", limit.as_secs_f64()),
        }
    }
}

/// The text of the server's 500 for an object the apply machinery cannot type.
const TYPED_PATCH: &str = "failed to create typed patch object";

/// Maps a kube-rs error of a request (`verb` on `object`) to ours.
pub(crate) fn from_kube(e: kube::Error, server: &str, verb: &str, object: &str) -> Error {
    match e {
        kube::Error::Api(status) => from_status(status.code, status.message, verb, object),
        kube::Error::HyperError(e) => transport_or_unreachable(server, &e),
        kube::Error::Service(e) => transport_or_unreachable(server, e.as_ref()),
        kube::Error::SerdeError(e) => {
            Error::Transport(format!("{object}: cannot decode the answer: {e}"))
        }
        other => Error::Transport(format!("{verb} {object}: {other}")),
    }
}

/// Maps an API status code and message.
pub(crate) fn from_status(code: u16, message: String, verb: &str, object: &str) -> Error {
    match code {
        401 | 403 => Error::Forbidden {
            verb: verb.to_string(),
            resource: object.to_string(),
            message,
        },
        422 => Error::Invalid {
            object: object.to_string(),
            message,
        },
        500 if message.starts_with(TYPED_PATCH) => Error::Invalid {
            object: object.to_string(),
            message,
        },
        status => Error::Api {
            object: object.to_string(),
            status,
            message,
        },
    }
}

/// A connection-level failure: a certificate the client cannot trust is not transient;
/// refusals, timeouts and connections dropped mid-request or mid-handshake (an API server
/// restarting: "peer closed connection without sending TLS close_notify") are.
fn transport_or_unreachable(server: &str, e: &(dyn std::error::Error + 'static)) -> Error {
    let chain = error_chain(e);
    let lower = chain.to_ascii_lowercase();
    if [
        "certificate",
        "unknownissuer",
        "badsignature",
        "invalid peer",
        "unknown ca",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        let hint = if lower.contains("unknownissuer") {
            " (is certificate-authority-data this cluster's CA?)"
        } else {
            ""
        };
        Error::Transport(format!("TLS with {server}: {chain}{hint}"))
    } else {
        Error::Unreachable {
            server: server.to_string(),
            reason: chain,
        }
    }
}

/// The messages of an error and its sources, deduplicated, joined with ": ".
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_typed_errors() {
        let e = from_status(403, "nope".into(), "patch", "ConfigMap a/b");
        assert!(
            matches!(&e, Error::Forbidden { verb, resource, .. } if verb == "patch" && resource == "ConfigMap a/b")
        );
        assert!(!e.is_transient());
        assert!(matches!(
            from_status(401, "Unauthorized".into(), "get", "x"),
            Error::Forbidden { .. }
        ));
        let e = from_status(422, "spec.x: Invalid value".into(), "patch", "Widget w");
        assert_eq!(e.to_string(), "Widget w is invalid: spec.x: Invalid value");
        let e = from_status(
            500,
            "failed to create typed patch object (/v1, Kind=ConfigMap): .data: expected map".into(),
            "patch",
            "ConfigMap a/b",
        );
        assert!(matches!(e, Error::Invalid { .. }), "{e:?}");
        assert!(!e.is_transient());
        let e = from_status(500, "etcd leader changed".into(), "patch", "x");
        assert!(matches!(e, Error::Api { status: 500, .. }));
        assert!(e.is_transient());
        let e = from_status(409, "conflict".into(), "patch", "x");
        assert!(!e.is_transient());
        assert!(from_status(503, "".into(), "get", "x").is_transient());
    }

    #[test]
    fn connection_errors_name_the_server() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let e = transport_or_unreachable("https://127.0.0.1:1", &io);
        assert!(e.is_transient());
        assert_eq!(
            e.to_string(),
            "the Kubernetes API server at https://127.0.0.1:1 is unreachable: connection refused"
        );
        let tls = std::io::Error::other("invalid peer certificate: UnknownIssuer");
        let e = transport_or_unreachable("https://h:6443", &tls);
        assert!(
            matches!(e, Error::Transport(_)) && !e.is_transient(),
            "{e:?}"
        );
        // A server that stops while a request is on the wire (a restart) is transient.
        let dropped = std::io::Error::other(
            "client error (SendRequest): connection error: peer closed connection without \
             sending TLS close_notify",
        );
        let e = transport_or_unreachable("https://h:6443", &dropped);
        assert!(e.is_transient(), "{e:?}");
        let e = Error::no_answer("https://h:6443", Duration::from_secs(5));
        assert!(e.is_transient());
        assert!(e.to_string().ends_with("no answer within 5s"), "{e}");
    }

    #[test]
    fn timeout_names_what_it_waited_for() {
        let e = Error::Timeout {
            waited_for: "DaemonSet kube-system/cilium".into(),
            last_seen: "1 of 3 pods available".into(),
        };
        assert_eq!(
            e.to_string(),
            "timed out waiting for DaemonSet kube-system/cilium: 1 of 3 pods available"
        );
    }
}

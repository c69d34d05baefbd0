//! What a user configures for one Proxmox VE cluster: where its API is, who we act as, how its
//! certificate is trusted, and the limits of one client. The provider's `proxmox` block
//! resolves into [`Settings`]; the client knows nothing of where they came from.

/// Proxmox VE credentials.
#[derive(Clone, PartialEq)]
pub enum Auth {
    /// An API token: `user@realm!tokenid` and its secret.
    Token { id: String, secret: String },
    /// A ticket login as `user@realm` with a password; the ticket is renewed as needed.
    Ticket { username: String, password: String },
}

// Hand-written so a stray `{:?}` can never print a secret.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Token { id, .. } => write!(f, "Token({id})"),
            Auth::Ticket { username, .. } => write!(f, "Ticket({username})"),
        }
    }
}

/// How the API's certificate is trusted.
#[derive(Clone, Debug, PartialEq)]
pub enum TlsTrust {
    /// The operating system's CA certificates.
    SystemRoots,
    /// Only the CA certificate(s) in this PEM (a self-signed Proxmox VE).
    CaPem(String),
    /// Exactly the certificate with this SHA-256 fingerprint, whoever signed it.
    Fingerprint([u8; 32]),
    /// Any certificate (the handshake signature is still checked).
    Insecure,
}

/// Everything [`crate::Client::new`] needs to reach one Proxmox VE cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `https://host:port`, without `/api2/json`.
    pub endpoint: String,
    pub auth: Auth,
    pub tls: TlsTrust,
    /// Concurrent clone/create tasks per node (and per storage) through this client.
    pub max_parallel_tasks_per_node: usize,
    /// The inclusive range new VM ids are allocated from.
    pub vm_id_range: (u32, u32),
}

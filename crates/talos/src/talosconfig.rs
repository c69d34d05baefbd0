//! The talosconfig file talosctl reads: one context with endpoints, nodes and the admin
//! client certificate.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;

use crate::secrets::ClientConfiguration;

/// A talosconfig with one context named after the cluster.
pub fn render(
    cluster: &str,
    endpoints: &[String],
    nodes: &[String],
    creds: &ClientConfiguration,
) -> String {
    let doc = json!({
        "context": cluster,
        "contexts": {
            cluster: {
                "endpoints": endpoints,
                "nodes": nodes,
                "ca": STANDARD.encode(&creds.ca),
                "crt": STANDARD.encode(&creds.crt),
                "key": STANDARD.encode(&creds.key),
            }
        }
    });
    serde_norway::to_string(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn has_the_shape_talosctl_reads() {
        let creds = ClientConfiguration {
            ca: "CA".into(),
            crt: "CRT".into(),
            key: "KEY".into(),
        };
        let text = render(
            "lab",
            &["127.10.0.11".into()],
            &["127.10.0.11".into(), "127.10.0.21".into()],
            &creds,
        );
        let v: serde_json::Value = serde_norway::from_str(&text).expect("yaml");
        assert_eq!(v["context"], "lab");
        let ctx = &v["contexts"]["lab"];
        assert_eq!(ctx["endpoints"][0], "127.10.0.11");
        assert_eq!(ctx["nodes"][1], "127.10.0.21");
        assert_eq!(ctx["key"], STANDARD.encode("KEY"));
    }
}

//! The API server's own Service: `default/kubernetes`, a ClusterIP Service at the first IP of
//! the service CIDR whose `https` port 443 leads to the API server's port, made (and made
//! again after a delete) while the API server runs, as kube-apiserver's reconciler does.

use serde_json::json;

use crate::k8s::ApiServer;
use crate::k8s::store::{self, StoreError};

impl ApiServer {
    /// Create `default/kubernetes` when it is missing (and `default` exists, not terminating).
    pub fn ensure_kubernetes_service(&self) {
        let Some(services) = store::kind("services") else {
            return;
        };
        if !matches!(
            self.store.get(services, "default", "kubernetes"),
            Err(StoreError::NotFound { .. })
        ) {
            return;
        }
        let namespaces = store::kind("namespaces").expect("namespaces");
        if self.store.get(namespaces, "", "default").is_err() || self.store.terminating("default") {
            return;
        }
        let ip = self.service_ip.to_string();
        let svc = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"component": "apiserver", "provider": "kubernetes"},
            },
            "spec": {
                "clusterIP": ip,
                "clusterIPs": [ip],
                "internalTrafficPolicy": "Cluster",
                "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack",
                "ports": [{
                    "name": "https",
                    "port": 443,
                    "protocol": "TCP",
                    "targetPort": self.bound.port(),
                }],
                "sessionAffinity": "None",
                "type": "ClusterIP",
            },
            "status": {"loadBalancer": {}},
        });
        // Losing a race with a client creating it is fine: it exists either way.
        let _ = self.store.create(services, "default", svc);
    }
}

//! The namespace controller: a Terminating namespace goes once nothing is left in it.

use std::sync::Arc;

use crate::k8s::store::Store;

/// The namespace controller: once nothing is left in a Terminating namespace (objects with
/// finalizers hold it), the namespace goes.
pub async fn finish(store: Arc<Store>, name: String) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if store.finish_namespace(&name) {
            return;
        }
    }
}

impl Store {
    /// The namespace controller's last step: a Terminating namespace with nothing left in it
    /// goes away. True once it is gone (or was never there).
    pub fn finish_namespace(&self, name: &str) -> bool {
        let mut g = self.lock();
        let key = ("namespaces".to_string(), String::new(), name.to_string());
        let Some(o) = g.objects.get(&key) else {
            return true;
        };
        if o.pointer("/metadata/deletionTimestamp").is_none() {
            return true;
        }
        if g.objects.keys().any(|(_, n, _)| n == name) {
            return false;
        }
        if let Some(o) = g.objects.remove(&key) {
            self.emit_deleted(&mut g, key, o);
        }
        true
    }

    /// A namespace that is being deleted.
    pub fn terminating(&self, ns: &str) -> bool {
        self.lock()
            .objects
            .get(&("namespaces".to_string(), String::new(), ns.to_string()))
            .is_some_and(|o| o.pointer("/metadata/deletionTimestamp").is_some())
    }
}

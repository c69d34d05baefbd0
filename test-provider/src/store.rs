//! The test provider's "remote API": one JSON file per object in a directory.

use std::path::PathBuf;

use serde_json::Value as Json;

pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }
    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }
    pub fn get(&self, id: &str) -> Option<Json> {
        if id.is_empty() || id.contains('/') {
            return None;
        }
        let b = std::fs::read(self.path(id)).ok()?;
        serde_json::from_slice(&b).ok()
    }
    pub fn put(&self, id: &str, obj: &Json) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.path(id), serde_json::to_vec_pretty(obj)?)
    }
    pub fn delete(&self, id: &str) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
    /// A fresh id, unique within the directory.
    pub fn new_id(&self) -> String {
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("t{:x}{:x}", n, std::process::id())
    }
}

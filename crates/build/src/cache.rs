//! The build cache: `<root>/build/cache/<key>` holds the id of the image a step made. A hit
//! counts only while that image is still in the store.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub struct Cache {
    dir: PathBuf,
}

/// A cache key from its parts (each part's length is hashed too, so parts cannot run together).
pub fn key(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

impl Cache {
    pub fn open(root: &Path) -> std::io::Result<Cache> {
        let dir = root.join("build/cache");
        std::fs::create_dir_all(&dir)?;
        Ok(Cache { dir })
    }

    pub fn get(&self, key: &str) -> Option<String> {
        let s = std::fs::read_to_string(self.dir.join(key)).ok()?;
        let id = s.trim();
        (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then(|| id.to_string())
    }

    /// Records `key` → `id` (temp name, rename: a reader never sees half a record).
    pub fn put(&self, key: &str, id: &str) -> std::io::Result<()> {
        let tmp = self.dir.join(format!(".{key}.{}", std::process::id()));
        std::fs::write(&tmp, id)?;
        std::fs::rename(&tmp, self.dir.join(key))
    }
}

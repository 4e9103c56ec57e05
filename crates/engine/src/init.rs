//! `--init`: berth's own init (init/main.rs, built by build.rs), kept as `<root>/bin/berth-init`
//! and bind-mounted read-only into the container, so no host tini or image shell is needed.

use crate::error::{Error, Result};
use crate::sys;
use std::path::{Path, PathBuf};

/// The static berth-init executable.
const INIT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-init"));

/// Where the init appears inside the container.
pub const DESTINATION: &str = "/dev/init";

/// `<root>/bin/berth-init`, written (atomically, 0755) when missing or from another build.
pub fn install(root: &Path) -> Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let bin = root.join("bin");
    let path = bin.join(crate::info::INIT_BINARY);
    let same = std::fs::metadata(&path).is_ok_and(|m| m.len() == INIT.len() as u64)
        && std::fs::read(&path).is_ok_and(|b| b == INIT);
    if same {
        return Ok(path);
    }
    std::fs::create_dir_all(&bin).map_err(|e| Error::io(format!("create {}", bin.display()), e))?;
    // Executable before it gets its name: a concurrent start never sees a half-made file.
    let tmp = bin.join(format!(".berth-init.{}", sys::random_id()));
    let r = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o755)
            .open(&tmp)?;
        f.write_all(INIT)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if r.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    r.map_err(|e| Error::io(format!("write {}", path.display()), e))?;
    Ok(path)
}

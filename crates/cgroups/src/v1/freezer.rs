//! v1 freezer: write the state, then poll until the kernel reports it settled.

use crate::fs;
use crate::{Error, FreezerState, Result};
use std::path::Path;
use std::time::Duration;

pub fn freeze(dir: &Path, state: FreezerState) -> Result<()> {
    let want = match state {
        FreezerState::Frozen => "FROZEN",
        FreezerState::Thawed => "THAWED",
    };
    let file = dir.join("freezer.state");
    // Freezing can stall on tasks in uninterruptible sleep; rewriting the request retries them.
    for i in 0..2000 {
        if i % 50 == 0 {
            fs::write(&file, want)?;
        }
        if fs::read(&file)?.trim() == want {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(Error::FreezeTimeout {
        path: file,
        state: want,
    })
}

pub fn state(dir: &Path) -> Result<FreezerState> {
    let file = dir.join("freezer.state");
    let s = fs::read(&file)?;
    match s.trim() {
        "FROZEN" => Ok(FreezerState::Frozen),
        // FREEZING is not frozen yet: the processes may still run.
        "THAWED" | "FREEZING" => Ok(FreezerState::Thawed),
        _ => Err(fs::parse_err(&file, &s)),
    }
}

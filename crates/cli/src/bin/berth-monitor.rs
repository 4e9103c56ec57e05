//! berth-monitor: the per-container monitor (`__monitor`) and the network helpers (`__dns`,
//! `__netreap`), run by berth from a read-only bind at `<root>/bin/berth-monitor`. A binary of
//! its own that links only berth-engine: berth also links the API server, the registry client
//! and their async stack, whose relocations every exec of it applies, one dirty page per 4 kB
//! of them, kept for the container's whole life. tests/containers.rs checks none of that code
//! is in here.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match berth_engine::monitor::helper_main(&args) {
        Some(code) => ExitCode::from(code as u8),
        None => {
            eprintln!("berth-monitor: berth's container monitor, started by berth; not a command");
            ExitCode::from(2)
        }
    }
}

//! Running the tools a benchmark compares: to success, or an error that names the step and
//! carries its stderr.

use std::borrow::BorrowMut;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `c` (a command or a borrow of one; no stdin) and returns its stdout, trimmed.
pub fn output(mut c: impl BorrowMut<Command>, what: &str) -> anyhow::Result<String> {
    let out = c
        .borrow_mut()
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    ensure_success(&out, what)?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs `c` (no stdin, stdout to /dev/null) to success.
pub fn check(c: impl BorrowMut<Command>, what: &str) -> anyhow::Result<()> {
    timed(c, what).map(drop)
}

/// [`check`], timed (the run only, not the check of its status).
pub fn timed(mut c: impl BorrowMut<Command>, what: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out = c
        .borrow_mut()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let d = start.elapsed();
    ensure_success(&out, what)?;
    Ok(d)
}

fn ensure_success(out: &std::process::Output, what: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}

//! Signal arguments as runc takes them: numbers, KILL, SIGKILL or kill.

use std::str::FromStr;

use anyhow::{bail, Result};
use nix::sys::signal::Signal;

pub fn parse(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if !(1..=libc::SIGRTMAX()).contains(&n) {
            bail!("invalid signal {s:?}");
        }
        return Ok(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    match Signal::from_str(&name) {
        Ok(sig) => Ok(sig as i32),
        Err(_) => bail!("invalid signal {s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("SIGKILL").unwrap(), 9);
        assert_eq!(parse("kill").unwrap(), 9);
        assert_eq!(parse("sigterm").unwrap(), 15);
        assert_eq!(parse("10").unwrap(), 10);
        assert!(parse("NOPE").is_err());
        assert!(parse("0").is_err());
        assert!(parse("-3").is_err());
    }
}

//! v1 devices controller: each rule is one write to devices.allow or devices.deny, in order.

use crate::fs;
use crate::Result;
use oci_spec::runtime::LinuxDeviceCgroup;
use std::path::Path;

/// "c 1:3 rwm"; missing type/numbers mean all ("a", "*").
pub fn rule_string(r: &LinuxDeviceCgroup) -> String {
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map(|n| n.to_string())
            .unwrap_or_else(|| "*".into())
    };
    let typ = r
        .typ()
        .map(|t| t.as_str().to_owned())
        .unwrap_or_else(|| "a".into());
    let access = r
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    format!("{typ} {}:{} {access}", num(r.major()), num(r.minor()))
}

pub fn set(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    for r in rules {
        let file = if r.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        fs::write(&dir.join(file), rule_string(r))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_in_order() {
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rw"},
                {"allow":true,"type":"c","major":136,"access":"rwm"}]"#,
        )
        .unwrap();
        let s: Vec<String> = rules.iter().map(rule_string).collect();
        assert_eq!(s, ["a *:* rwm", "c 1:3 rw", "c 136:* rwm"]);
        let t = tempfile::tempdir().unwrap();
        crate::fs::touch(t.path(), &["devices.deny"]);
        set(t.path(), &rules[..1]).unwrap();
        assert_eq!(
            std::fs::read_to_string(t.path().join("devices.deny")).unwrap(),
            "a *:* rwm"
        );
        assert!(set(t.path(), &rules[1..])
            .unwrap_err()
            .to_string()
            .contains("devices.allow"));
    }
}

//! `-u name[:group]` resolved against the container's own /etc/passwd and /etc/group, opened
//! with RESOLVE_IN_ROOT so a symlink in the image can never point the engine at host files.

use crate::error::{Error, ErrorKind, Result};
use crate::sys;
use std::io::Read;
use std::path::Path;

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resolved {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: Option<String>,
}

fn read_in_root(root: &Path, path: &str) -> Option<String> {
    let f = sys::open_in_root(root, path).ok()?;
    let mut s = String::new();
    f.take(16 << 20).read_to_string(&mut s).ok()?;
    Some(s)
}

struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

fn passwd(text: &str) -> Vec<Passwd> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            Some(Passwd {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f.get(5).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

struct Group {
    name: String,
    gid: u32,
    members: Vec<String>,
}

fn groups(text: &str) -> Vec<Group> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 3 {
                return None;
            }
            Some(Group {
                name: f[0].to_string(),
                gid: f[2].parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|x| !x.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

/// Resolves docker's `--user` inside `rootfs`; "" means root.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<Resolved> {
    let (u, g) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let pw = read_in_root(rootfs, "/etc/passwd")
        .map(|t| passwd(&t))
        .unwrap_or_default();
    let gr = read_in_root(rootfs, "/etc/group")
        .map(|t| groups(&t))
        .unwrap_or_default();
    let entry = if let Ok(uid) = u.parse::<u32>() {
        pw.iter()
            .find(|p| p.uid == uid)
            .map(|p| (p.uid, p.gid, p.name.clone(), Some(p.home.clone())))
            .or(Some((uid, 0, String::new(), None)))
    } else {
        pw.iter()
            .find(|p| p.name == u)
            .map(|p| (p.uid, p.gid, p.name.clone(), Some(p.home.clone())))
    };
    let Some((uid, mut gid, name, home)) = entry else {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("unable to find user {u}: no matching entries in passwd file"),
        ));
    };
    if let Some(g) = g {
        gid = if let Ok(n) = g.parse::<u32>() {
            n
        } else {
            gr.iter()
                .find(|x| x.name == g)
                .map(|x| x.gid)
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidArgument,
                        format!("unable to find group {g}: no matching entries in group file"),
                    )
                })?
        };
    }
    // As moby's getUser: the primary gid first, then (moby/sys/user's GetExecUser) with an
    // implicit group every group of /etc/group that lists the user, in file order; an explicit
    // group adds none.
    let mut additional_gids = vec![gid];
    if !name.is_empty() && g.is_none() {
        for x in gr.iter().filter(|x| x.members.contains(&name)) {
            if !additional_gids.contains(&x.gid) {
                additional_gids.push(x.gid);
            }
        }
    }
    Ok(Resolved {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_passwd_and_group() {
        let p =
            passwd("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n");
        assert_eq!(p[1].uid, 65534);
        let g = groups("wheel:x:10:root,nobody\n");
        assert_eq!(g[0].members, vec!["root", "nobody"]);
    }

    #[test]
    fn supplementary_groups_as_moby() {
        let dir = berth_testkit::Scratch::new("user-groups");
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nbob:x:1000:1000::/home/bob:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:root\nbin:x:1:root,bin\nwheel:x:10:root\nbob:x:1000:\nstaff:x:50:bob\n",
        )
        .unwrap();
        let r = |spec: &str| resolve(dir.path(), spec).unwrap().additional_gids;
        assert_eq!(r(""), [0, 1, 10]);
        assert_eq!(r("bob"), [1000, 50]);
        assert_eq!(r("bob:wheel"), [10]);
        assert_eq!(r("4242"), [0]);
    }
}

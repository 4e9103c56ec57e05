//! Shared test fixtures: a busybox bundle, a runtime rooted in the scratch dir, cleanup guards,
//! and `forked`, which runs runtime calls in a single-threaded child (the runtime refuses to
//! clone containers from the multi-threaded test harness).

#![allow(dead_code)]

use berth_runtime::{CreateOptions, Runtime};
use berth_testkit::{busybox_rootfs, remove_cgroup_everywhere, unique_id, Scratch};
use oci_spec::runtime::Spec;
use std::path::{Path, PathBuf};

pub struct Fixture {
    pub scratch: Scratch,
    pub id: String,
    pub bundle: PathBuf,
    pub root: PathBuf,
}

impl Fixture {
    pub fn new(prefix: &str) -> Fixture {
        let scratch = Scratch::new(prefix);
        let bundle = scratch.join("bundle");
        busybox_rootfs(&bundle.join("rootfs")).unwrap();
        let id = unique_id(prefix);
        let root = scratch.join("state");
        Fixture {
            scratch,
            id,
            bundle,
            root,
        }
    }

    pub fn runtime(&self) -> Runtime {
        Runtime::new(&self.root).without_exe_sealing()
    }

    pub fn opts(&self) -> CreateOptions {
        CreateOptions {
            bundle: self.bundle.clone(),
            ..Default::default()
        }
    }

    /// Docker-like default spec running `args`, without a terminal, in cgroup /<id>.
    pub fn spec(&self, args: &[&str]) -> Spec {
        let mut spec = berth_runtime::default_spec(false);
        let p = spec.process_mut().as_mut().unwrap();
        p.set_terminal(Some(false));
        p.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        let mut root = spec.root().clone().unwrap();
        root.set_readonly(Some(false));
        spec.set_root(Some(root));
        spec.linux_mut()
            .as_mut()
            .unwrap()
            .set_cgroups_path(Some(PathBuf::from(format!("/{}", self.id))));
        spec
    }

    pub fn write(&self, spec: &Spec) {
        std::fs::write(
            self.bundle.join("config.json"),
            serde_json::to_vec(spec).unwrap(),
        )
        .unwrap();
    }

    pub fn out(&self) -> PathBuf {
        self.scratch.join("out.txt")
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(self.out()).unwrap_or_default()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let rt = self.runtime();
        let id = self.id.clone();
        forked(None, move || {
            let _ = rt.delete(&id, true);
            0
        });
        remove_cgroup_everywhere(&self.id);
    }
}

/// Runs `f` in a forked (single-threaded) child, stdout and stderr sent to `out` if given;
/// returns the child's exit code.
pub fn forked(out: Option<&Path>, f: impl FnOnce() -> i32) -> i32 {
    let out_fd = out.map(|p| std::fs::File::create(p).unwrap());
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        if let Some(f) = &out_fd {
            use std::os::fd::AsRawFd;
            unsafe {
                libc::dup2(f.as_raw_fd(), 1);
                libc::dup2(f.as_raw_fd(), 2);
            }
        }
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    }
}

/// `Result<T>` as an exit code for `forked`: 0 ok, 10 + ErrorKind index otherwise (message on stderr).
pub fn code<T>(r: berth_runtime::Result<T>) -> i32 {
    match r {
        Ok(_) => 0,
        Err(e) => {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "error: {e}");
            10 + kind_index(e.kind())
        }
    }
}

pub fn kind_index(k: berth_runtime::ErrorKind) -> i32 {
    use berth_runtime::ErrorKind::*;
    match k {
        NotFound => 0,
        AlreadyExists => 1,
        InvalidArgument => 2,
        Conflict => 3,
        PermissionDenied => 4,
        Unavailable => 5,
        Internal => 6,
    }
}

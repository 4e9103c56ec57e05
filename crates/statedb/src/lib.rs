//! One way to open berth's SQLite state files (containers, volumes, networks, images), which
//! many berth processes open at once.
//!
//! Switching a new database to WAL takes an exclusive lock, and SQLite answers a second
//! process doing the same with SQLITE_BUSY at once rather than through the busy handler (it
//! would be a lock-upgrade deadlock). Twenty `berth run` on a fresh root hit exactly that, so
//! the journal switch and the schema run under an flock on `<db>.lock`. Once a database is in
//! WAL, that step writes nothing and the lock is held for microseconds.

use rusqlite::{ffi, Connection, OpenFlags};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Opens `path` in WAL mode with `busy` as busy timeout, runs `setup` (schema, migrations)
/// while holding the database's setup lock, and returns the connection.
pub fn open(
    path: &Path,
    busy: Duration,
    setup: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> rusqlite::Result<Connection> {
    open_as(path, busy, setup, true)
}

/// As [`open`], but a missing database is an error instead of a new one: for helpers that
/// outlive the command that started them and must not bring back a root someone removed.
pub fn open_existing(
    path: &Path,
    busy: Duration,
    setup: impl FnOnce(&Connection) -> rusqlite::Result<()>,
) -> rusqlite::Result<Connection> {
    open_as(path, busy, setup, false)
}

fn open_as(
    path: &Path,
    busy: Duration,
    setup: impl FnOnce(&Connection) -> rusqlite::Result<()>,
    create: bool,
) -> rusqlite::Result<Connection> {
    let mut flags = OpenFlags::default();
    if !create {
        flags.remove(OpenFlags::SQLITE_OPEN_CREATE);
    }
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(busy)?;
    // Each berth process opens its databases briefly; the checkpoint SQLite runs when the last
    // connection closes costs two fsyncs every time (tens of ms on a busy disk, on the path of
    // every `run`). A short log truncated now and then (`truncate_long_log`) replaces it.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    )?;
    let _guard = SetupLock::take(&lock_path(path), create)?;
    conn.execute_batch("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;")?;
    // After the PRAGMAs: `wal_autocheckpoint` would replace the hook.
    let busy_ms = busy.as_millis().min(i32::MAX as u128) as usize;
    // SAFETY: the hook only reads its data pointer as an integer and is unregistered with the
    // connection.
    unsafe {
        ffi::sqlite3_wal_hook(
            conn.handle(),
            Some(truncate_long_log),
            busy_ms as *mut std::ffi::c_void,
        );
    }
    setup(&conn)?;
    Ok(conn)
}

/// The WAL length (in frames) past which a commit truncates the log.
pub const WAL_PAGES: i32 = 64;

/// Called after each commit with the log's length. When no connection is open, the next one
/// rebuilds the WAL index from every frame in the log, and marks them all uncheckpointed
/// again, so SQLite's passive auto-checkpoint never gets to restart the log: at its default
/// of 1000 frames that rebuild cost 8 ms per `berth run` on a root in use. Truncating keeps
/// the log under `WAL_PAGES` frames. It does not wait for readers (busy timeout 0 meanwhile):
/// if one is active the checkpoint stays passive and the next commit tries again.
unsafe extern "C" fn truncate_long_log(
    busy_ms: *mut std::ffi::c_void,
    db: *mut ffi::sqlite3,
    name: *const std::ffi::c_char,
    frames: std::ffi::c_int,
) -> std::ffi::c_int {
    if frames >= WAL_PAGES {
        ffi::sqlite3_busy_timeout(db, 0);
        ffi::sqlite3_wal_checkpoint_v2(
            db,
            name,
            ffi::SQLITE_CHECKPOINT_TRUNCATE,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
        ffi::sqlite3_busy_timeout(db, busy_ms as std::ffi::c_int);
    }
    ffi::SQLITE_OK
}

fn lock_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// An flock on a side file: never on the database itself, since closing any descriptor of
/// the database would drop the POSIX locks SQLite holds on it in this process.
struct SetupLock {
    _held: File,
}

impl SetupLock {
    fn take(path: &Path, create: bool) -> rusqlite::Result<SetupLock> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)
            .map_err(|e| cant_open(path, &e))?;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is passed.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } == 0 {
                return Ok(SetupLock { _held: f });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(cant_open(path, &e));
            }
        }
    }
}

fn cant_open(path: &Path, e: &std::io::Error) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        ffi::Error::new(ffi::SQLITE_CANTOPEN),
        Some(format!("lock {}: {e}", path.display())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    const CHILD: &str = "BERTH_STATEDB_CHILD_DB";

    fn schema(c: &Connection) -> rusqlite::Result<()> {
        c.execute_batch("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, who TEXT NOT NULL)")
    }

    /// Runs only as a child of `many_processes_create_one_database_at_once`.
    #[test]
    fn child_opens_and_writes() {
        let Some(db) = std::env::var_os(CHILD) else {
            return;
        };
        // Start together: wait (bounded) for the parent's go file.
        let go = Path::new(&db).with_extension("go");
        for _ in 0..2000 {
            if go.exists() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let conn = open(Path::new(&db), Duration::from_secs(30), schema).expect("open");
        for _ in 0..5 {
            conn.execute(
                "INSERT INTO t (who) VALUES (?1)",
                [std::process::id().to_string()],
            )
            .expect("insert");
        }
    }

    /// One short connection per write, as berth's commands make them: the log must stay short
    /// (with SQLite's own auto-checkpoint it reached 1000 frames and was rebuilt on every open).
    #[test]
    fn the_log_stays_short_across_short_connections() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        let wal = dir.path().join("state.db-wal");
        let mut longest = 0u64;
        for i in 0..400 {
            let conn = open(&db, Duration::from_secs(5), schema).unwrap();
            conn.execute("INSERT INTO t (who) VALUES (?1)", [format!("{i:0>500}")])
                .unwrap();
            drop(conn);
            longest = longest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
        }
        let frame = 4096 + 24;
        assert!(
            longest <= 32 + (WAL_PAGES as u64 + 8) * frame,
            "the WAL grew to {longest} bytes ({} frames)",
            (longest.saturating_sub(32)) / frame
        );
        let conn = open(&db, Duration::from_secs(5), schema).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 400);
    }

    #[test]
    fn many_processes_create_one_database_at_once() {
        let exe = std::env::current_exe().unwrap();
        // Without the setup lock, most rounds failed with "database is locked".
        for _round in 0..8 {
            let dir = tempfile::tempdir().unwrap();
            let db = dir.path().join("state.db");
            let kids: Vec<_> = (0..16)
                .map(|_| {
                    Command::new(&exe)
                        .args([
                            "--exact",
                            "tests::child_opens_and_writes",
                            "--test-threads=1",
                            "--quiet",
                        ])
                        .env(CHILD, &db)
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            std::fs::write(db.with_extension("go"), b"").unwrap();
            for k in kids {
                let out = k.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "child failed: {}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            let conn = open(&db, Duration::from_secs(5), schema).unwrap();
            let n: i64 = conn
                .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                .unwrap();
            assert_eq!(n, 16 * 5);
            let mode: String = conn
                .query_row("PRAGMA journal_mode", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
    }

    #[test]
    fn open_existing_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        assert!(open_existing(&db, Duration::from_secs(1), schema).is_err());
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing created"
        );
        drop(open(&db, Duration::from_secs(1), schema).unwrap());
        let conn = open_existing(&db, Duration::from_secs(1), schema).unwrap();
        conn.execute("INSERT INTO t (who) VALUES ('x')", [])
            .unwrap();
    }

    #[test]
    fn a_lock_file_that_cannot_be_opened_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("state.db.lock")).unwrap();
        let err = open(&dir.path().join("state.db"), Duration::from_secs(1), schema).unwrap_err();
        assert!(err.to_string().contains("state.db.lock"), "{err}");
    }
}

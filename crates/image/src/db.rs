//! The metadata database: SQLite in WAL mode so many berth processes share it, with a
//! `user_version` migration list (later issues append their tables as new steps).

use rusqlite::Connection;
use std::path::Path;
use std::time::Duration;

use crate::error::{DbContext, Result};

/// Schema steps; step N brings the database from user_version N to N+1. Append only.
const MIGRATIONS: &[&str] = &[
    // 1: images, their layers, names, and who uses them.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE layers (
        chain_id TEXT PRIMARY KEY,
        diff_id TEXT NOT NULL,
        parent TEXT,
        size INTEGER NOT NULL
     );
     CREATE TABLE images (
        id TEXT PRIMARY KEY,
        manifest_digest TEXT NOT NULL,
        manifest_media_type TEXT NOT NULL,
        created INTEGER NOT NULL,
        size INTEGER NOT NULL,
        added INTEGER NOT NULL,
        last_tag_time TEXT
     );
     CREATE TABLE image_layers (
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        idx INTEGER NOT NULL,
        chain_id TEXT NOT NULL REFERENCES layers(chain_id),
        diff_id TEXT NOT NULL,
        blob_digest TEXT NOT NULL,
        blob_media_type TEXT NOT NULL,
        blob_size INTEGER NOT NULL,
        PRIMARY KEY (image_id, idx)
     );
     CREATE INDEX image_layers_chain ON image_layers(chain_id);
     CREATE TABLE tags (
        repo TEXT NOT NULL,
        tag TEXT NOT NULL,
        image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
        PRIMARY KEY (repo, tag)
     );
     CREATE INDEX tags_image ON tags(image_id);
     CREATE TABLE image_users (
        image_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        PRIMARY KEY (image_id, user_id)
     );
     -- layer blobs whose uncompressed digest has been checked against a diff_id
     CREATE TABLE verified_blobs (blob_digest TEXT PRIMARY KEY, diff_id TEXT NOT NULL);",
    // 2: compressed copies of uncompressed layer blobs, made by a push and kept for the next.
    "CREATE TABLE compressed_blobs (
        diff_id TEXT NOT NULL,
        compression TEXT NOT NULL,
        blob_digest TEXT NOT NULL,
        blob_size INTEGER NOT NULL,
        media_type TEXT NOT NULL,
        PRIMARY KEY (diff_id, compression)
     );",
];

pub fn open(path: &Path) -> Result<Connection> {
    let conn = berth_statedb::open(path, Duration::from_secs(60), |c| {
        c.pragma_update(None, "foreign_keys", "ON")
    })
    .db("open")?;
    migrate(&conn)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> Result<()> {
    let current: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .db("user_version")? as usize;
    if current >= MIGRATIONS.len() {
        return Ok(());
    }
    // IMMEDIATE: two processes creating a fresh store must not both run step 1.
    conn.execute_batch("BEGIN IMMEDIATE")
        .db("begin migration")?;
    let current: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .db("user_version")? as usize;
    for (i, step) in MIGRATIONS.iter().enumerate().skip(current) {
        if let Err(e) = conn.execute_batch(step) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(e).db(&format!("migration {}", i + 1));
        }
    }
    conn.pragma_update(None, "user_version", MIGRATIONS.len() as i64)
        .db("set user_version")?;
    conn.execute_batch("COMMIT").db("commit migration")
}

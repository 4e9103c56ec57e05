//! The containers table, in its own SQLite file (`<root>/containers.db`): WAL so readers never
//! wait for writers, a busy timeout for concurrent berth processes, names UNIQUE so two
//! `create --name x` cannot both win.

use crate::error::{Error, ErrorKind, Result};
use crate::model::Container;
use rusqlite::{params, Connection, OptionalExtension};
use std::path::Path;

/// A connection shared safely by many berth processes (see berth-statedb), with `schema`
/// created on first use.
pub(crate) fn connect(path: &Path, schema: &str) -> Result<Connection> {
    Ok(berth_statedb::open(
        path,
        std::time::Duration::from_secs(30),
        |c| c.execute_batch(schema),
    )?)
}

pub struct Db {
    conn: Connection,
}

impl Db {
    pub fn open(path: &Path) -> Result<Db> {
        let conn = connect(
            path,
            "CREATE TABLE IF NOT EXISTS containers (
                 id TEXT PRIMARY KEY,
                 name TEXT NOT NULL UNIQUE,
                 created TEXT NOT NULL,
                 record TEXT NOT NULL
             );",
        )?;
        Ok(Db { conn })
    }

    pub fn insert(&self, c: &Container) -> Result<()> {
        let rec = serde_json::to_string(c).expect("container serializes");
        match self.conn.execute(
            "INSERT INTO containers (id, name, created, record) VALUES (?1, ?2, ?3, ?4)",
            params![c.id, c.name, c.created, rec],
        ) {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = Error::from(e);
                if err.kind() == ErrorKind::AlreadyExists {
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!("the container name \"/{}\" is already in use", c.name),
                    ));
                }
                Err(err)
            }
        }
    }

    pub fn update(&self, c: &Container) -> Result<()> {
        let rec = serde_json::to_string(c).expect("container serializes");
        self.conn.execute(
            "UPDATE containers SET name = ?2, record = ?3 WHERE id = ?1",
            params![c.id, c.name, rec],
        )?;
        Ok(())
    }

    /// True if the row was there (so concurrent cleanups report the removal once).
    pub fn delete(&self, id: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM containers WHERE id = ?1", params![id])?
            > 0)
    }

    /// By full id, name, or unique id prefix (docker's lookup order).
    pub fn find(&self, key: &str) -> Result<Option<Container>> {
        let key = key.strip_prefix('/').unwrap_or(key);
        let row: Option<String> = self
            .conn
            .query_row("SELECT record FROM containers WHERE id = ?1 OR name = ?1 ORDER BY id = ?1 DESC LIMIT 1", [key], |r| r.get(0))
            .optional()?;
        if let Some(r) = row {
            return Ok(Some(parse(&r)?));
        }
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let mut stmt = self
            .conn
            .prepare("SELECT record FROM containers WHERE id >= ?1 AND id < ?2 LIMIT 2")?;
        let hi = format!("{key}g");
        let rows: Vec<String> = stmt
            .query_map(params![key, hi], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        match rows.len() {
            0 => Ok(None),
            1 => Ok(Some(parse(&rows[0])?)),
            _ => Err(Error::invalid(format!(
                "multiple containers match the id prefix {key}"
            ))),
        }
    }

    /// Every container, newest first.
    pub fn list(&self) -> Result<Vec<Container>> {
        let mut stmt = self
            .conn
            .prepare("SELECT record FROM containers ORDER BY created DESC")?;
        let rows: Vec<String> = stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        rows.iter().map(|r| parse(r)).collect()
    }
}

fn parse(rec: &str) -> Result<Container> {
    serde_json::from_str(rec)
        .map_err(|e| Error::internal(format!("containers database: bad record: {e}")))
}

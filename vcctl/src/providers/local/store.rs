//! The local stack's embedded store (the service's SQLite file) as `db dump` and `db restore`
//! see it: a consistent copy taken while the service writes (`VACUUM INTO` reads one
//! snapshot, WAL and all), and a copy checked before it is swapped in, the replaced store
//! kept beside it as `vehicleconnect.db.previous`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::{Connection, OpenFlags};

use crate::error::Failure;

/// The service's file in its data directory (service/src/store/mod.rs).
pub const FILE: &str = "vehicleconnect.db";
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Writes a consistent copy of the store to `out`; its size.
pub fn dump(data_dir: &Path, out: &mut dyn Write) -> Result<u64> {
    let db = data_dir.join(FILE);
    if !db.is_file() {
        return Err(Failure::invalid(
            format!("the stack has stored nothing yet: `{}` does not exist", db.display()),
            Some("`vcctl up` starts it; its first event makes the store".into()),
        )
        .into());
    }
    let copy = tempfile::Builder::new().prefix(".dump-").tempdir_in(data_dir)?;
    let path = copy.path().join(FILE);
    let conn = Connection::open_with_flags(&db, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.execute("VACUUM INTO ?1", [path.to_str().context("a data directory that is not UTF-8")?])
        .with_context(|| format!("copying `{}`", db.display()))?;
    drop(conn);
    let bytes = std::io::copy(&mut std::fs::File::open(&path)?, out)?;
    out.flush()?;
    Ok(bytes)
}

/// Whether `file` is a store `vcctl db dump` of a local stack made: an SQLite file with the
/// service's events table, whole.
pub fn check(file: &Path) -> Result<()> {
    let not_ours = |why: String| -> anyhow::Error {
        Failure::invalid(
            format!("`{}` is not a dump of a local stack's embedded store: {why}", file.display()),
            Some("make one with `vcctl db dump --stack STACK > FILE` of a local stack".into()),
        )
        .into()
    };
    let mut magic = [0u8; 16];
    let read = std::io::Read::read_exact(&mut std::fs::File::open(file)?, &mut magic);
    if read.is_err() || &magic != MAGIC {
        let pg = magic.starts_with(b"PGDMP");
        return Err(not_ours(if pg {
            "it is a PostgreSQL archive (pg_dump -Fc)".into()
        } else {
            "not an SQLite file".into()
        }));
    }
    let conn =
        Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| not_ours(e.to_string()))?;
    let verdict: String =
        conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(|e| not_ours(format!("unreadable: {e}")))?;
    if verdict != "ok" {
        return Err(not_ours(format!("damaged: {verdict}")));
    }
    conn.query_row("SELECT count(*) FROM api_events", [], |r| r.get::<_, i64>(0))
        .map_err(|e| not_ours(format!("it has no events table: {e}")))?;
    Ok(())
}

/// With the service stopped: `file` becomes the store, and the store it replaces (with its
/// write-ahead log) is kept as `vehicleconnect.db.previous`. Returns where that is.
pub fn swap_in(data_dir: &Path, file: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(data_dir)?;
    let db = data_dir.join(FILE);
    let incoming = data_dir.join(format!("{FILE}.restoring"));
    std::fs::copy(file, &incoming).with_context(|| format!("copying `{}` in", file.display()))?;
    std::fs::File::open(&incoming)?.sync_all()?;
    let previous = data_dir.join(format!("{FILE}.previous"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", previous.display()));
    }
    if db.exists() {
        std::fs::rename(&db, &previous)?;
    }
    // SQLite finds a log by the database's name: it follows the file it belongs to.
    let wal = PathBuf::from(format!("{}-wal", db.display()));
    if wal.exists() {
        std::fs::rename(&wal, format!("{}-wal", previous.display()))?;
    }
    let _ = std::fs::remove_file(format!("{}-shm", db.display()));
    std::fs::rename(&incoming, &db)?;
    Ok(previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, events: i64) {
        let conn = Connection::open(dir.join(FILE)).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        conn.execute_batch("CREATE TABLE api_events (id INTEGER PRIMARY KEY, v TEXT)").unwrap();
        for i in 0..events {
            conn.execute("INSERT INTO api_events (v) VALUES (?1)", [format!("e{i}")]).unwrap();
        }
        // Left open on purpose by the caller's drop order: the rows are in the WAL.
        std::mem::forget(conn);
    }

    #[test]
    fn a_dump_of_a_live_store_restores_whole_and_the_replaced_one_is_kept() {
        let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        store(from.path(), 3);
        let mut dumped = Vec::new();
        let bytes = dump(from.path(), &mut dumped).unwrap();
        assert_eq!(bytes as usize, dumped.len());
        let file = to.path().join("x.dump");
        std::fs::write(&file, &dumped).unwrap();
        check(&file).unwrap();
        store(to.path(), 1);
        let previous = swap_in(to.path(), &file).unwrap();
        let count = |p: &Path| {
            Connection::open(p)
                .unwrap()
                .query_row("SELECT count(*) FROM api_events", [], |r| r.get::<_, i64>(0))
                .unwrap()
        };
        assert_eq!(count(&to.path().join(FILE)), 3, "the dump's rows, WAL included");
        assert_eq!(count(&previous), 1, "the replaced store, with its own log");
    }

    #[test]
    fn anything_else_is_refused_with_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let pg = dir.path().join("pg.dump");
        std::fs::write(&pg, b"PGDMP\x01\x0e\x00").unwrap();
        assert!(check(&pg).unwrap_err().to_string().contains("it is a PostgreSQL archive"));
        let other = dir.path().join("other.db");
        Connection::open(&other).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
        assert!(check(&other).unwrap_err().to_string().contains("it has no events table"));
        let empty = tempfile::tempdir().unwrap();
        assert!(dump(empty.path(), &mut Vec::new()).unwrap_err().to_string().contains("has stored nothing yet"));
    }
}

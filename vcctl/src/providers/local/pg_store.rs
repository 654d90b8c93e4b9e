//! A local stack's PostgreSQL as `db dump` and `db restore` see it (`local.database:
//! postgres`): `pg_dump -Fc` of the service's database while it serves; an archive restored
//! into a new database while it serves, then swapped in with the service stopped around the
//! swap only, the replaced one kept as `vehicleconnect_previous` (as on a host). And the way
//! from the embedded store: a dump of one (`vcctl db dump` of an embedded stack) is moved
//! into an empty PostgreSQL database through the service's own API, in batches of 10 000,
//! each event with an id (`moved-<stack>-<row>` unless it had one), so that a move run twice
//! stores nothing twice.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use rusqlite::{Connection, OpenFlags};

use super::deps::{Cluster, DATABASE, ROLE};
use crate::error::Failure;

/// What a restore is made of.
pub enum Archive {
    /// `pg_dump -Fc`: restored and swapped in.
    Postgres,
    /// A local stack's embedded store: its events moved in through the API.
    Embedded,
}

/// Which kind of dump `file` is; anything else is refused, saying what it is.
pub fn kind(file: &Path) -> Result<Archive> {
    let mut head = [0u8; 5];
    let read = std::io::Read::read_exact(&mut std::fs::File::open(file)?, &mut head);
    if read.is_ok() && &head == b"PGDMP" {
        return Ok(Archive::Postgres);
    }
    super::store::check(file).map_err(|_| {
        Failure::invalid(
            format!("`{}` is neither a pg_dump archive nor a dump of a local stack's embedded store", file.display()),
            Some("`vcctl db dump --stack STACK > FILE` makes either".into()),
        )
    })?;
    Ok(Archive::Embedded)
}

/// A client tool of the cluster's version, logged in as the service's role over TCP (the
/// password in its environment, never its arguments).
fn client(c: &Cluster, tool: &str, password: &str) -> Command {
    let mut cmd = Command::new(c.bindir.join(tool));
    cmd.args(["-h", "127.0.0.1", "-p", &c.port.to_string(), "-U", ROLE]).env("PGPASSWORD", password);
    cmd
}

/// Runs SQL on the maintenance database.
fn admin(c: &Cluster, password: &str, sql: &[&str]) -> Result<()> {
    let mut cmd = client(c, "psql", password);
    cmd.args(["-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres"]);
    for s in sql {
        cmd.args(["-c", s]);
    }
    let out = cmd.output().context("running psql")?;
    if !out.status.success() {
        bail!("psql: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}

/// The number of events in the service's database.
pub fn events(c: &Cluster, password: &str) -> Result<u64> {
    let out = client(c, "psql", password)
        .args(["-qAt", "-d", DATABASE, "-c", "SELECT count(*) FROM api_events"])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!("counting events: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// `pg_dump -Fc` of the service's database to `out`; its size.
pub fn dump(c: &Cluster, password: &str, out: &mut (dyn Write + Send)) -> Result<u64> {
    let mut child = client(c, "pg_dump", password)
        .args(["-Fc", "-d", DATABASE])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running pg_dump")?;
    let bytes = std::io::copy(child.stdout.as_mut().expect("piped"), out)?;
    out.flush()?;
    let done = child.wait_with_output()?;
    if !done.status.success() {
        bail!("pg_dump: {}", String::from_utf8_lossy(&done.stderr).trim());
    }
    Ok(bytes)
}

/// Restores the archive `file` into `vehicleconnect_restore`, while the service serves. A
/// failed restore drops it again: nothing else changed.
pub fn restore_beside(c: &Cluster, password: &str, file: &Path) -> Result<()> {
    admin(
        c,
        password,
        &[
            "DROP DATABASE IF EXISTS vehicleconnect_restore",
            &format!("CREATE DATABASE vehicleconnect_restore OWNER {ROLE}"),
        ],
    )?;
    let out = client(c, "pg_restore", password)
        .args(["--no-owner", "--no-acl", "--exit-on-error", "-d", "vehicleconnect_restore"])
        .arg(file)
        .output()
        .context("running pg_restore")?;
    if !out.status.success() {
        let _ = admin(c, password, &["DROP DATABASE IF EXISTS vehicleconnect_restore"]);
        bail!(
            "the archive did not restore ({}); the stack's database is as it was",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// With the service stopped: the restored database becomes the service's, the one it
/// replaces kept as `vehicleconnect_previous` (the one kept before is dropped).
pub fn swap(c: &Cluster, password: &str) -> Result<()> {
    admin(
        c,
        password,
        &[
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'vehicleconnect' AND pid <> pg_backend_pid()",
            "DROP DATABASE IF EXISTS vehicleconnect_previous",
            "ALTER DATABASE vehicleconnect RENAME TO vehicleconnect_previous",
            "ALTER DATABASE vehicleconnect_restore RENAME TO vehicleconnect",
        ],
    )
}

/// The events of an embedded-store dump, `batch` at a time, as the API takes them (NDJSON
/// lines), oldest first; `cutoff` (Unix µs): older events are left out (the service refuses
/// what is past its retention). Calls `send` with each batch; the number moved and skipped.
pub fn each_batch(
    file: &Path,
    stack: &str,
    cutoff: i64,
    batch: usize,
    mut send: impl FnMut(String, usize) -> Result<()>,
) -> Result<(u64, u64)> {
    let conn = Connection::open_with_flags(file, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let skipped: i64 = conn.query_row("SELECT count(*) FROM api_events WHERE ts < ?1", [cutoff], |r| r.get(0))?;
    let mut stmt = conn.prepare(
        "SELECT id, ts, endpoint, method, status_code, response_time_ms, client_id, event_id FROM api_events \
         WHERE ts >= ?1 ORDER BY ts, id",
    )?;
    let mut rows = stmt.query([cutoff])?;
    let (mut lines, mut n, mut moved) = (String::new(), 0usize, 0u64);
    while let Some(r) = rows.next()? {
        let (id, ts): (i64, i64) = (r.get(0)?, r.get(1)?);
        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ts) * 1000)?;
        let mut event = serde_json::json!({
            "timestamp": at.format(&time::format_description::well_known::Rfc3339)?,
            "endpoint": r.get::<_, String>(2)?,
            "status_code": r.get::<_, i64>(4)?,
            "response_time_ms": r.get::<_, f64>(5)?,
            "client_id": r.get::<_, String>(6)?,
            "event_id": r.get::<_, Option<String>>(7)?.unwrap_or_else(|| format!("moved-{stack}-{id}")),
        });
        if let Some(method) = r.get::<_, Option<String>>(3)? {
            event["method"] = method.into();
        }
        lines.push_str(&event.to_string());
        lines.push('\n');
        n += 1;
        if n == batch {
            send(std::mem::take(&mut lines), n)?;
            (moved, n) = (moved + n as u64, 0);
        }
    }
    if n > 0 {
        send(lines, n)?;
        moved += n as u64;
    }
    Ok((moved, skipped as u64))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_embedded_dump_is_read_in_batches_with_ids_and_the_too_old_left_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("e.db");
        let conn = rusqlite::Connection::open(&file).unwrap();
        conn.execute_batch(
            "CREATE TABLE api_events (id INTEGER PRIMARY KEY, ts INTEGER, received_at INTEGER, endpoint TEXT, method TEXT, \
             status_code INTEGER, response_time_ms REAL, client_id TEXT, event_id TEXT)",
        )
        .unwrap();
        for i in 0..5i64 {
            let eid = if i == 4 { Some("kept-id") } else { None };
            conn.execute(
                "INSERT INTO api_events VALUES (?1, ?2, 0, '/v1/x', NULL, 200, 5.0, 'c', ?3)",
                rusqlite::params![i + 1, 1_765_000_000_000_000i64 + i * 1_000_000, eid],
            )
            .unwrap();
        }
        drop(conn);
        let mut batches = Vec::new();
        let (moved, skipped) = super::each_batch(&file, "lab", 1_765_000_001_000_000, 2, |lines, n| {
            batches.push((lines, n));
            Ok(())
        })
        .unwrap();
        assert_eq!((moved, skipped), (4, 1));
        assert_eq!(batches.iter().map(|b| b.1).collect::<Vec<_>>(), [2, 2]);
        assert!(batches[0].0.contains(r#""event_id":"moved-lab-2""#), "{}", batches[0].0);
        assert!(batches[1].0.contains(r#""event_id":"kept-id""#) && !batches[0].0.contains("method"));
        assert!(batches[0].0.contains(r#""timestamp":"2025-12-06T"#), "{}", batches[0].0);
    }
}

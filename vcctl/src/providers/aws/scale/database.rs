//! Which database a `scale:` stack serves from: the bucket's `database` object names the DB
//! instance and the database in it, and the ones served before that the stack keeps (for a
//! way back, until `restore --delete-old` or `destroy`). Absent, the stack serves from its
//! first instance (`vcctl-<stack>`) and its `vehicleconnect` database. A restore makes a new
//! database, then moves this pointer in one PUT; `up` renders the launch template from it, so
//! the group's instances move to it by the instance refresh (healthy first, one at a time).

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::cloud::aws::{rds, s3};

/// The object's key in the stack's bucket.
pub const KEY: &str = "database";
/// The most databases a stack keeps; beyond, a restore asks for `--delete-old` first.
pub const MOST_KEPT: usize = 10;
/// The most of the object vcctl reads (it writes well under 4 KiB).
const LARGEST: usize = 16 * 1024;

/// A database: the DB instance and the database's name in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbRef {
    pub instance: String,
    pub database: String,
}

impl std::fmt::Display for DbRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.instance, self.database)
    }
}

/// What the group serves from, and what it served from before (most recent last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DbPointer {
    #[serde(flatten)]
    pub serving: DbRef,
    #[serde(default)]
    pub kept: Vec<DbRef>,
}

impl DbPointer {
    /// A stack's pointer before any restore: its first instance and database.
    pub fn first(instance: &str) -> DbPointer {
        DbPointer { serving: DbRef { instance: instance.into(), database: rds::DATABASE.into() }, kept: vec![] }
    }

    /// Serving `to`, the one served until now kept (and `to` no longer among the kept).
    pub fn moved_to(&self, to: DbRef) -> Result<DbPointer> {
        let mut kept: Vec<DbRef> = self.kept.iter().filter(|k| **k != to && **k != self.serving).cloned().collect();
        if to != self.serving {
            kept.push(self.serving.clone());
        }
        if kept.len() > MOST_KEPT {
            bail!(
                "the stack keeps {} databases already: `vcctl restore --delete-old` deletes them (a final snapshot each)",
                kept.len() - 1
            );
        }
        Ok(DbPointer { serving: to, kept })
    }

    /// Checks what was read: names RDS and PostgreSQL accept, which the boot script and the
    /// host's psql take as they are.
    fn checked(self) -> Result<DbPointer> {
        for r in std::iter::once(&self.serving).chain(&self.kept) {
            if !instance_id(&r.instance) || !database_name(&r.database) {
                bail!("{r} is not a DB instance id and a database name");
            }
        }
        if self.kept.len() > MOST_KEPT + 1 {
            bail!("{} kept databases, more than vcctl keeps", self.kept.len());
        }
        Ok(self)
    }
}

/// An RDS identifier: a letter, then letters, digits and single hyphens, at most 63.
pub fn instance_id(id: &str) -> bool {
    id.len() <= 63
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.contains("--")
        && !id.ends_with('-')
}

/// A database name vcctl makes: lower-case letters, digits and `_`, a letter first.
pub fn database_name(name: &str) -> bool {
    name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `<stem>-r<UTC time>` for a restored instance, `vehicleconnect_r<UTC time>` for a restored
/// database: sorted by when they were made, and never a name used before.
pub fn restored_name(stem: &str, sep: char, at: time::OffsetDateTime) -> String {
    let stamp =
        at.format(time::macros::format_description!("[year][month][day]t[hour][minute][second]")).expect("formats");
    format!("{stem}{sep}r{stamp}")
}

/// The pointer in `bucket`, or the stack's first database when there is none.
pub async fn read(client: &aws_sdk_s3::Client, bucket: &str, first: &str) -> Result<DbPointer> {
    let Some(bytes) = s3::get_small(client, bucket, KEY, LARGEST).await? else { return Ok(DbPointer::first(first)) };
    serde_json::from_slice::<DbPointer>(&bytes)
        .map_err(anyhow::Error::from)
        .and_then(DbPointer::checked)
        .with_context(|| format!("s3://{bucket}/{KEY} does not name the database the stack serves from"))
}

/// Moves the pointer: one PUT, so an instance booting meanwhile reads the old or the new.
pub async fn write(client: &aws_sdk_s3::Client, bucket: &str, pointer: &DbPointer) -> Result<()> {
    s3::put(client, bucket, KEY, serde_json::to_vec(pointer)?).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(instance: &str, database: &str) -> DbRef {
        DbRef { instance: instance.into(), database: database.into() }
    }

    #[test]
    fn a_restore_keeps_what_served_and_a_way_back_takes_it_out_of_the_kept() {
        let first = DbPointer::first("vcctl-fra");
        let restored = first.moved_to(db("vcctl-fra-r20261207t100000", "vehicleconnect")).unwrap();
        assert_eq!(restored.kept, [db("vcctl-fra", "vehicleconnect")]);
        let back = restored.moved_to(db("vcctl-fra", "vehicleconnect")).unwrap();
        assert_eq!(back.serving, first.serving);
        assert_eq!(back.kept, [db("vcctl-fra-r20261207t100000", "vehicleconnect")]);
        assert_eq!(back.moved_to(back.serving.clone()).unwrap(), back, "to itself: nothing moves");
        let json = serde_json::to_string(&back).unwrap();
        assert_eq!(
            json,
            r#"{"instance":"vcctl-fra","database":"vehicleconnect","kept":[{"instance":"vcctl-fra-r20261207t100000","database":"vehicleconnect"}]}"#
        );
    }

    #[test]
    fn the_kept_are_bounded_and_what_is_read_is_checked() {
        let mut p = DbPointer::first("vcctl-fra");
        for n in 0..MOST_KEPT {
            p = p.moved_to(db("vcctl-fra", &format!("vehicleconnect_r{n}"))).unwrap();
        }
        let err = p.moved_to(db("vcctl-fra", "vehicleconnect_rx")).unwrap_err().to_string();
        assert!(err.contains("--delete-old"), "{err}");
        let bad = DbPointer { serving: db("vcctl-fra", "x; DROP TABLE api_events"), kept: vec![] };
        assert!(bad.checked().is_err());
        let bad = DbPointer { serving: db("vcctl--fra", "vehicleconnect"), kept: vec![] };
        assert!(bad.checked().is_err());
        let at = time::macros::datetime!(2026-12-07 10:00:00 UTC);
        let name = restored_name("vcctl-fra", '-', at);
        assert!(instance_id(&name), "{name}");
        assert!(database_name(&restored_name("vehicleconnect", '_', at)));
    }
}

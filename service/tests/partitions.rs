//! `api_events` partitioned by day on PostgreSQL: the migration from the unpartitioned table
//! of the releases before, on a store they filled. (Retention dropping a day: kpis.rs.)

mod common;

use common::{Backend, Service, TestStore, client, pg_connect};
use serde_json::{Value, json};

/// Every column of every row, in id order, as one digest.
const CHECKSUM: &str = "SELECT count(*), md5(string_agg(e::text, ',' ORDER BY id)) FROM api_events e";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_table_of_the_releases_before_becomes_a_partition_keeping_every_row() {
    let store = TestStore::new(Backend::Postgres).await;
    let db = pg_connect(store.pg_url.as_deref().unwrap()).await;
    // The schema the releases before partitioning left: their migrations, as they ran them.
    db.batch_execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    )
    .await
    .unwrap();
    for (version, sql) in vehicleconnect::store::POSTGRES_MIGRATIONS.iter().filter(|m| m.0 < 5) {
        db.batch_execute(sql).await.unwrap();
        db.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[version]).await.unwrap();
    }
    // 200 000 events over the last three days, a third of them with an event_id.
    db.batch_execute(
        "INSERT INTO api_events (ts, received_at, endpoint, method, status_code, response_time_ms, client_id, event_id)
         SELECT now() - g * interval '1.296 s', now() - g * interval '1 s', '/e' || g % 7,
                CASE WHEN g % 2 = 0 THEN 'GET' END, (200 + g % 4 * 100)::int2, g % 1000 / 7.0, 'c' || g % 13,
                CASE WHEN g % 3 = 0 THEN 'mig-' || g END
         FROM generate_series(1, 200000) g",
    )
    .await
    .unwrap();
    let before = db.query_one(CHECKSUM, &[]).await.unwrap();
    let (count, sum): (i64, String) = (before.get(0), before.get(1));
    assert_eq!(count, 200_000);
    let first: i64 = db.query_one("SELECT id FROM api_events WHERE event_id = 'mig-3'", &[]).await.unwrap().get(0);

    let mut svc = Service::start(&store, &["--retention", "240h"]).await;
    let after = db.query_one(CHECKSUM, &[]).await.unwrap();
    assert_eq!((after.get::<_, i64>(0), after.get::<_, String>(1)), (count, sum.clone()), "a row changed");
    let kind: i8 = db.query_one("SELECT relkind FROM pg_class WHERE relname = 'api_events'", &[]).await.unwrap().get(0);
    assert_eq!(kind as u8, b'p', "api_events is partitioned");
    let tomorrow = (time::OffsetDateTime::now_utc().date().next_day().unwrap()).to_string().replace('-', "");
    let partitions = store.partitions().await;
    assert!(partitions.contains(&format!("api_events_until_{tomorrow}")), "{partitions:?}");
    assert!(partitions.contains(&format!("api_events_p{tomorrow}")), "{partitions:?}");
    assert_eq!(store.scalar("SELECT count(*) FROM api_event_ids").await, 66_666);
    assert_eq!(store.scalar("SELECT value::int8 FROM schema_compat WHERE key = 'min_release'").await, 2);

    // An event_id stored by the old release is still known; new events go in.
    let mut e = common::event("/e1", 5.0, 200, "c");
    e["event_id"] = json!("mig-3");
    let r: Value = client().post(svc.url("/api/events")).json(&e).send().await.unwrap().json().await.unwrap();
    assert_eq!((r["id"].as_i64(), r["duplicate"].as_bool()), (Some(first), Some(true)), "{r}");
    let batch: Vec<Value> = (0..100).map(|i| common::event(&format!("/n{}", i % 3), 2.0, 201, "n")).collect();
    assert_eq!(client().post(svc.url("/api/events")).json(&batch).send().await.unwrap().status(), 201);
    assert_eq!(store.count("").await, 200_100);

    // Once is enough: a restart leaves the schema and the rows as they are.
    assert_eq!(svc.terminate().await, Some(0));
    let svc = Service::start(&store, &["--retention", "240h"]).await;
    assert_eq!(store.count("").await, 200_100);
    let old = db.query_one(&CHECKSUM.replace("api_events e", "api_events e WHERE id <= 200000"), &[]).await.unwrap();
    assert_eq!((old.get::<_, i64>(0), old.get::<_, String>(1)), (count, sum), "an old row changed");
    assert!(!svc.log().contains("applied PostgreSQL migration"), "{}", svc.log());
}

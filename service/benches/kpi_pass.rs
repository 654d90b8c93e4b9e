//! KPI pass benchmark: one hour of 3.6 million events in the per-minute aggregates, then
//! the engine's pass (every window, overall and per endpoint, with series), against the
//! baseline of computing the same percentiles exactly by sorting the raw latencies.
//!
//! `cargo bench --bench kpi_pass` prints medians of several runs; scripts/bench writes them
//! to docs/performance.md.

use std::time::Instant;

use time::OffsetDateTime;
use vehicleconnect::kpi::{Aggregates, Observation, US_PER_MINUTE, Window, unix_us};

const EVENTS: usize = 3_600_000;
const ENDPOINTS: [&str; 8] = [
    "/vehicles/lock",
    "/vehicles/unlock",
    "/vehicles/status",
    "/vehicles/climate",
    "/vehicles/location",
    "/vehicles/charging",
    "/vehicles/software-update",
    "/vehicles/horn",
];
const RUNS: usize = 15;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let now = OffsetDateTime::now_utc();
    let now_us = unix_us(now);
    let mut seed: u64 = 1;
    let mut next = || {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    // Spread evenly over the last hour; log-normal-ish latencies with a long tail.
    let events: Vec<(i64, usize, f64, u16)> = (0..EVENTS)
        .map(|i| {
            let ts = now_us - (i as i64 * 60 * US_PER_MINUTE / EVENTS as i64);
            let ms = ((next() + next() + next()) * 2.0).exp() * 5.0;
            let status = if next() < 0.02 { 503 } else { 200 };
            (ts, i % ENDPOINTS.len(), ms, status)
        })
        .collect();

    let started = Instant::now();
    let mut aggregates = Aggregates::new(vehicleconnect::kpi_engine::kpi_limits(64 << 20));
    for chunk in events.chunks(1000) {
        aggregates.record(
            now_us,
            chunk.iter().map(|&(ts_us, e, ms, status)| Observation {
                ts_us,
                endpoint: ENDPOINTS[e],
                response_time_ms: ms,
                status_code: status,
            }),
        );
    }
    let record_s = started.elapsed().as_secs_f64();

    let pass_ms: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            for w in Window::ALL {
                std::hint::black_box(aggregates.report(w, now, None));
            }
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let one_hour_ms: Vec<f64> = (0..RUNS)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(aggregates.report(Window::OneHour, now, None));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();

    // Baseline: what a query over the raw rows must do, sort every latency (overall and per endpoint).
    let exact_ms: Vec<f64> = (0..3)
        .map(|_| {
            let t = Instant::now();
            let mut all: Vec<f64> = events.iter().map(|e| e.2).collect();
            all.sort_unstable_by(f64::total_cmp);
            std::hint::black_box(all[(0.95 * (all.len() - 1) as f64) as usize]);
            for i in 0..ENDPOINTS.len() {
                let mut mine: Vec<f64> = events.iter().filter(|e| e.1 == i).map(|e| e.2).collect();
                mine.sort_unstable_by(f64::total_cmp);
                std::hint::black_box(mine[(0.95 * (mine.len() - 1) as f64) as usize]);
            }
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();

    let report = aggregates.report(Window::OneHour, now, None);
    let mut all: Vec<f64> = events.iter().map(|e| e.2).collect();
    all.sort_unstable_by(f64::total_cmp);
    let exact_p95 = all[(0.95 * (all.len() - 1) as f64) as usize];
    let p95 = report.overall.p95_latency_ms.unwrap();

    println!("kpi_pass events={EVENTS} endpoints={} runs={RUNS}", ENDPOINTS.len());
    println!("record_events_per_s {:.0}", EVENTS as f64 / record_s);
    println!("pass_1h_median_ms {:.3}", median(one_hour_ms.clone()));
    println!("pass_all_windows_median_ms {:.3}", median(pass_ms));
    println!("exact_sort_baseline_median_ms {:.1}", median(exact_ms.clone()));
    println!("speedup_vs_exact {:.0}x", median(exact_ms) / median(one_hour_ms));
    println!("sketch_bytes {}", aggregates.heap_bytes());
    println!("p95_sketch_ms {p95:.3} p95_exact_ms {exact_p95:.3} rel_err {:.5}", (p95 - exact_p95).abs() / exact_p95);
}

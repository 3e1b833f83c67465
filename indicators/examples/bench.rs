//! Evaluation cost per incoming observation with the whole library active, and memory.
//!
//! cargo run --release -p indicators --example bench [-- OBSERVATIONS DATASTREAMS]
//!
//! Feeds a deterministic simulated day (observations from DATASTREAMS datastreams in 13
//! districts over the 13 observed properties, plus an event every 10 s moving through its loop)
//! into an engine with the whole `assets/indicators` library, and reports µs per observation
//! (inputs applied incrementally, history boundaries included), the cost of `values_at` for the
//! whole library, and the heap held by the engine (a counting allocator).

use indicators::*;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;
use twin_protocol::{
    ts_from_ms, Category, Event, EventSource, EventState, LonLat, Severity, Transition,
};

struct Counting;
static HEAP: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        HEAP.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        HEAP.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}
#[global_allocator]
static A: Counting = Counting;

const T0: i64 = 1_795_276_800_000; // 2026-11-22 00:00 Asia/Shanghai

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n_obs: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let n_ds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5_000);
    let lib = Library::load_dir(&default_library_dir()).expect("library");
    let n_defs = lib.defs.len();
    let districts: Vec<String> = (0..13).map(|i| format!("d{i}")).collect();
    let props = OBSERVED_PROPERTIES;

    // Inputs are generated up front (not timed, not counted in the engine's heap).
    let day_ms = 86_400_000i64;
    let step = day_ms / n_obs as i64;
    let mut inputs: Vec<Input> = Vec::with_capacity(n_obs + n_obs / 50);
    let mut log = 1i64;
    let mut next_event = T0;
    let mut ev_id = 0i64;
    for k in 0..n_obs {
        let t = T0 + k as i64 * step.max(1);
        let ds = k % n_ds;
        let (p, _) = props[ds % props.len()];
        let v = ((k * 7919) % 1000) as f64 / 10.0;
        inputs.push(Input::Observation(Observation {
            datastream: format!("ds{ds}"),
            sensor_type: "air_quality".into(),
            observed_property: p.into(),
            district: Some((ds % 13) as u32),
            street: None,
            location: None,
            value: if p == "elevator_status" {
                (v > 95.0) as i32 as f64
            } else {
                v
            },
            phenomenon_time: ts_from_ms(t),
        }));
        if t >= next_event {
            next_event += 10_000;
            ev_id += 1;
            let e = Event {
                id: ev_id,
                category: Category::ALL[(ev_id % 10) as usize],
                severity: Severity::Medium,
                source: if ev_id % 3 == 0 {
                    EventSource::Hotline12345
                } else {
                    EventSource::Patrol
                },
                state: EventState::Reported,
                title: String::new(),
                description: String::new(),
                location: LonLat {
                    lon: 123.4,
                    lat: 41.8,
                },
                district: Some((ev_id % 13) as u32),
                district_name: None,
                street: None,
                reported_at: ts_from_ms(t),
                updated_at: ts_from_ms(t),
                due_at: Some(ts_from_ms(t + 600_000)),
                escalation: 0,
                units: vec![],
                external_ref: None,
            };
            inputs.push(Input::Event(e));
            // the event ev_id − 30 (reported 5 min ago) moves one step
            let old = ev_id - 30;
            if old > 0 {
                let (from, to) = match old % 4 {
                    0 => (EventState::Reported, EventState::Dispatched),
                    1 => (EventState::Reported, EventState::Cancelled),
                    _ => (EventState::Reported, EventState::Dispatched),
                };
                inputs.push(Input::Transition(Transition {
                    id: log,
                    event_id: old,
                    from: Some(from),
                    to,
                    kind: "transition".into(),
                    actor: "bench".into(),
                    at: ts_from_ms(t),
                    note: None,
                    reason: None,
                }));
                log += 1;
            }
        }
    }
    let n_other = inputs.len() - n_obs;

    let heap0 = HEAP.load(Ordering::Relaxed);
    let mut engine = Engine::new(
        lib,
        EngineConfig {
            districts,
            history_points: 2 * 24 * 31,
            max_future_ms: 3_600_000,
            street_districts: vec![],
        },
    );
    let start = Instant::now();
    for i in &inputs {
        engine.push(i);
    }
    let secs = start.elapsed().as_secs_f64();
    let heap = HEAP.load(Ordering::Relaxed) - heap0;
    let end = inputs.last().map(|i| i.time()).unwrap_or(T0);

    let t = Instant::now();
    let mut rows = 0;
    let reps = 100;
    for r in 0..reps {
        rows = engine.values_at(end + r * 1000).len();
    }
    let va_ms = t.elapsed().as_secs_f64() * 1000.0 / reps as f64;

    // Observations only (no events), to isolate their cost.
    let lib = Library::load_dir(&default_library_dir()).unwrap();
    let mut e2 = Engine::new(
        lib,
        EngineConfig {
            districts: (0..13).map(|i| format!("d{i}")).collect(),
            history_points: 1488,
            max_future_ms: 3_600_000,
            street_districts: vec![],
        },
    );
    let obs: Vec<&Input> = inputs
        .iter()
        .filter(|i| matches!(i, Input::Observation(_)))
        .collect();
    let t = Instant::now();
    for i in &obs {
        e2.push(i);
    }
    let obs_secs = t.elapsed().as_secs_f64();

    println!("library: {n_defs} indicators, 13 districts, {n_ds} datastreams");
    println!("inputs: {n_obs} observations + {n_other} events/transitions over one simulated day");
    println!(
        "all inputs: {:.3} s → {:.3} µs per input ({:.0} inputs/s)",
        secs,
        secs * 1e6 / inputs.len() as f64,
        inputs.len() as f64 / secs
    );
    println!(
        "observations only: {:.3} s → {:.3} µs per observation ({:.0} observations/s)",
        obs_secs,
        obs_secs * 1e6 / obs.len() as f64,
        obs.len() as f64 / obs_secs
    );
    println!("values_at (whole library, {rows} rows, new second each call): {va_ms:.3} ms");
    println!(
        "engine heap after the day: {:.1} MiB ({} events tracked)",
        heap as f64 / 1048576.0,
        engine.tracked_events()
    );
}

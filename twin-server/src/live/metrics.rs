//! `GET /metrics` (Prometheus text format 0.0.4): requests by route and status, rejected inputs
//! by reason, stream subscribers, resyncs and deltas sent, the change log head.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    pub stream_subscribers: AtomicI64,
    pub stream_resyncs: AtomicU64,
    pub stream_deltas: AtomicU64,
    pub escalations: AtomicU64,
    pub arrivals: AtomicU64,
    pub sim_dispatches: AtomicU64,
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::default);

impl Metrics {
    pub fn reject(&self, reason: &'static str) {
        *self.rejected.lock().unwrap().entry(reason).or_default() += 1;
    }
    pub fn render(&self, head: i64, ring_first: Option<i64>, backend: &str) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        s.push_str("# HELP citytwin_http_requests_total HTTP requests by route and status.\n# TYPE citytwin_http_requests_total counter\n");
        for ((route, method, status), n) in self.requests.lock().unwrap().iter() {
            let _ = writeln!(s, "citytwin_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}", esc(route));
        }
        s.push_str("# HELP citytwin_rejected_inputs_total Requests refused for bad input, by reason.\n# TYPE citytwin_rejected_inputs_total counter\n");
        for (reason, n) in self.rejected.lock().unwrap().iter() {
            let _ = writeln!(s, "citytwin_rejected_inputs_total{{reason=\"{reason}\"}} {n}");
        }
        let _ = write!(
            s,
            "# HELP citytwin_stream_subscribers Open /api/stream subscriptions.\n# TYPE citytwin_stream_subscribers gauge\ncitytwin_stream_subscribers {}\n\
             # HELP citytwin_stream_resyncs_total Subscribers told to resync (fell behind).\n# TYPE citytwin_stream_resyncs_total counter\ncitytwin_stream_resyncs_total {}\n\
             # HELP citytwin_stream_deltas_total Deltas sent to subscribers.\n# TYPE citytwin_stream_deltas_total counter\ncitytwin_stream_deltas_total {}\n\
             # HELP citytwin_event_escalations_total Overdue escalations appended by this process.\n# TYPE citytwin_event_escalations_total counter\ncitytwin_event_escalations_total {}\n\
             # HELP citytwin_unit_arrivals_total Unit arrivals (on scene, back at base) committed by this process.\n# TYPE citytwin_unit_arrivals_total counter\ncitytwin_unit_arrivals_total {}\n\
             # HELP citytwin_sim_dispatches_total Units the simulator's dispatcher assigned in this process.\n# TYPE citytwin_sim_dispatches_total counter\ncitytwin_sim_dispatches_total {}\n\
             # HELP citytwin_changes_seq Highest change-log seq seen by this process.\n# TYPE citytwin_changes_seq gauge\ncitytwin_changes_seq{{backend=\"{backend}\"}} {head}\n\
             # HELP citytwin_changes_ring_first Oldest seq kept in memory for resumes.\n# TYPE citytwin_changes_ring_first gauge\ncitytwin_changes_ring_first {}\n",
            self.stream_subscribers.load(Ordering::Relaxed),
            self.stream_resyncs.load(Ordering::Relaxed),
            self.stream_deltas.load(Ordering::Relaxed),
            self.escalations.load(Ordering::Relaxed),
            self.arrivals.load(Ordering::Relaxed),
            self.sim_dispatches.load(Ordering::Relaxed),
            ring_first.unwrap_or(0),
        );
        s
    }
}

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Counts every request by its route template (not the raw path: bounded label set).
pub async fn count_requests(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()).unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let r = next.run(req).await;
    *METRICS.requests.lock().unwrap().entry((route, method, r.status().as_u16())).or_default() += 1;
    r
}

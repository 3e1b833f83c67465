//! `GET /api/stream`: WebSocket (an `Upgrade: websocket` request) or Server-Sent Events
//! (`Accept: text/event-stream`), one JSON [`ServerMessage`] per frame / `data:` line.
//!
//! Query: `topics=events,units` (default all), `bbox=w,s,e,n`, `since=SEQ` (SSE also honours
//! `Last-Event-ID`). Without `since`: `hello`, a `snapshot` consistent with seq S, then every
//! delta with seq > S. With `since`: `hello`, then every change after it — gap-free, from the
//! in-memory ring or the table — then live. Deltas outside the topics/bbox are skipped (their
//! seqs are still consumed, so a client resumes from the last seq it *saw* and may see seq jumps;
//! it never misses a matching change).
//!
//! Per subscriber: a pump task follows the store's broadcast (catching up from the ring/table on
//! any jump) into a bounded queue (`--stream-queue`); a writer task drains it into the socket. A
//! queue that stays full for [`STALL`] (2 s) or a broadcast lag means the subscriber is too slow: it is sent `resync` (with the
//! last seq written to it) and dropped; nobody else waits for it. `ping` every 15 s.

use super::db::DbResult;
use super::metrics::METRICS;
use super::{LiveError, LiveState};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};
use twin_protocol::{Bbox, Change, EventState, ServerMessage, Topic};

const PING: Duration = Duration::from_secs(15);
const SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a subscriber's full queue is waited on before it counts as too slow.
pub const STALL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub struct Sub {
    pub topics: Vec<Topic>,
    pub bbox: Option<Bbox>,
    pub since: Option<i64>,
}

impl Sub {
    fn wants(&self, c: &Change) -> bool {
        self.topics.contains(&c.topic)
            && match (self.bbox, c.lon, c.lat) {
                (Some(b), Some(lon), Some(lat)) => b.contains(lon, lat),
                _ => true,
            }
    }
}

pub fn parse_sub(q: &HashMap<String, String>, headers: &HeaderMap) -> Result<Sub, LiveError> {
    for k in q.keys() {
        if !matches!(k.as_str(), "topics" | "bbox" | "since") {
            return Err(LiveError::bad("bad_query", format!("GET /api/stream: unknown parameter '{k}' (topics, bbox, since)")));
        }
    }
    let topics = match q.get("topics") {
        None => Topic::ALL.to_vec(),
        Some(t) => t
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| Topic::parse(s.trim()).ok_or_else(|| LiveError::bad("bad_query", format!("GET /api/stream: unknown topic '{s}' (events, sensors, units, indicators)"))))
            .collect::<Result<Vec<_>, _>>()?,
    };
    if topics.is_empty() {
        return Err(LiveError::bad("bad_query", "GET /api/stream: 'topics' names no topic"));
    }
    let bbox = match q.get("bbox") {
        None => None,
        Some(b) => Some(Bbox::parse(b).ok_or_else(|| LiveError::bad("bad_query", format!("GET /api/stream: bbox must be west,south,east,north: '{b}'")))?),
    };
    let since_s = q.get("since").cloned().or_else(|| headers.get("last-event-id").and_then(|v| v.to_str().ok()).map(str::to_string));
    let since = match since_s {
        None => None,
        Some(s) => Some(s.trim().parse::<i64>().ok().filter(|v| *v >= 0).ok_or_else(|| LiveError::bad("bad_query", format!("GET /api/stream: since must be a seq ≥ 0: '{s}'")))?),
    };
    Ok(Sub { topics, bbox, since })
}

/// What a subscriber's queue holds: a message, or a delta (encoded once per change for all
/// subscribers, see [`encode_delta`]).
enum Out {
    Msg(ServerMessage),
    Delta(Arc<Change>),
}

impl From<ServerMessage> for Out {
    fn from(m: ServerMessage) -> Out {
        Out::Msg(m)
    }
}

impl Out {
    fn seq(&self) -> Option<i64> {
        match self {
            Out::Delta(c) => Some(c.seq),
            Out::Msg(ServerMessage::Snapshot { seq, .. }) => Some(*seq),
            _ => None,
        }
    }
    fn kind(&self) -> &'static str {
        match self {
            Out::Delta(_) => "delta",
            Out::Msg(ServerMessage::Hello { .. }) => "hello",
            Out::Msg(ServerMessage::Snapshot { .. }) => "snapshot",
            Out::Msg(ServerMessage::Delta(_)) => "delta",
            Out::Msg(ServerMessage::Resync { .. }) => "resync",
            Out::Msg(ServerMessage::Ping { .. }) => "ping",
            Out::Msg(ServerMessage::IndicatorValues { .. }) => "indicator_values",
            Out::Msg(ServerMessage::Error { .. }) => "error",
        }
    }
    fn text(&self) -> Arc<str> {
        match self {
            Out::Delta(c) => encode_delta(c),
            Out::Msg(m) => serde_json::to_string(m).unwrap_or_default().into(),
        }
    }
}

/// The `delta` JSON of a change, serialised once and shared by every subscriber (a cache of the
/// most recent 8,192 seqs).
fn encode_delta(c: &Change) -> Arc<str> {
    static CACHE: std::sync::LazyLock<Mutex<(HashMap<i64, Arc<str>>, VecDeque<i64>)>> = std::sync::LazyLock::new(Default::default);
    if let Some(t) = CACHE.lock().unwrap().0.get(&c.seq) {
        return t.clone();
    }
    // `Change` serialises as an object: splice the tag in front (same JSON as ServerMessage::Delta).
    let body = serde_json::to_string(c).unwrap_or_else(|_| "{}".into());
    let text: Arc<str> = format!("{{\"type\":\"delta\",{}", &body[1..]).into();
    let mut g = CACHE.lock().unwrap();
    if g.0.insert(c.seq, text.clone()).is_none() {
        g.1.push_back(c.seq);
        while g.1.len() > 8192 {
            if let Some(old) = g.1.pop_front() {
                g.0.remove(&old);
            }
        }
    }
    text
}

/// Shared between a subscriber's pump and writer.
struct Ctl {
    overflow: AtomicBool,
    reason: Mutex<String>,
    last_sent: AtomicI64,
}

struct SubGuard;
impl SubGuard {
    fn new() -> SubGuard {
        METRICS.stream_subscribers.fetch_add(1, Ordering::Relaxed);
        SubGuard
    }
}
impl Drop for SubGuard {
    fn drop(&mut self) {
        METRICS.stream_subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

pub async fn stream_route(
    State(live): State<LiveState>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ident: Option<axum::Extension<crate::auth::Identity>>,
    permit: Option<axum::Extension<Arc<crate::auth::limit::StreamPermit>>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let mut q = q;
    q.remove("access_token"); // the key (checked by auth::guard), not a subscription parameter
    let mut sub = match parse_sub(&q, &headers) {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    // Topics per role: an explicitly requested topic the identity may not read is refused (403);
    // the default (all topics) is narrowed to the readable ones.
    if let Some(axum::Extension(id)) = &ident {
        let denied: Vec<Topic> = sub.topics.iter().copied().filter(|t| !id.allows(crate::auth::topic_perm(*t))).collect();
        if !denied.is_empty() && q.contains_key("topics") {
            let t = denied[0];
            let p = crate::auth::topic_perm(t).as_str();
            return (
                axum::http::StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"error": format!("forbidden: topic '{}' needs permission '{p}', which role '{}' does not have", t.as_str(), id.role_str()), "reason": "forbidden", "permission": p})),
            )
                .into_response();
        }
        sub.topics.retain(|t| !denied.contains(t));
        if sub.topics.is_empty() {
            return (
                axum::http::StatusCode::FORBIDDEN,
                axum::Json(serde_json::json!({"error": format!("forbidden: role '{}' may read no stream topic", id.role_str()), "reason": "forbidden", "permission": "live:read"})),
            )
                .into_response();
        }
    }
    let permit = permit.map(|axum::Extension(p)| p);
    if let Ok(ws) = ws {
        return ws
            .on_upgrade(move |socket| async move {
                let _permit = permit; // one open subscription of this client until the session ends
                ws_session(live, sub, socket).await
            })
            .into_response();
    }
    let accept = headers.get(axum::http::header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("text/event-stream") {
        return sse_session(live, sub, permit).into_response();
    }
    LiveError::bad("bad_request", "GET /api/stream: open it as a WebSocket (Upgrade: websocket) or as Server-Sent Events (Accept: text/event-stream)").into_response()
}

fn start(live: LiveState, sub: Sub) -> (mpsc::Receiver<Out>, Arc<Ctl>) {
    let cap = live.opts.stream_queue.max(1);
    let (tx, rx) = mpsc::channel(cap);
    let ctl = Arc::new(Ctl { overflow: AtomicBool::new(false), reason: Mutex::new(String::new()), last_sent: AtomicI64::new(-1) });
    let c2 = ctl.clone();
    // Subscribe before reading the snapshot, so nothing committed after it is missed.
    let rx_changes = live.db.subscribe();
    tokio::spawn(async move {
        if let Err(e) = pump(live, sub, rx_changes, tx.clone(), &c2).await {
            let _ = tx.try_send(ServerMessage::Error { message: format!("store error: {e}") }.into());
        }
    });
    (rx, ctl)
}

fn overflow(ctl: &Ctl, reason: String) {
    *ctl.reason.lock().unwrap() = reason;
    ctl.overflow.store(true, Ordering::Release);
    METRICS.stream_resyncs.fetch_add(1, Ordering::Relaxed);
}

/// Queues a message. A full queue is waited on for at most [`STALL`] (a burst of changes is not
/// a slow consumer); still full after that, the subscriber is too slow. Returns false when the
/// subscriber is gone or too slow (then `ctl.overflow` is set).
async fn offer(tx: &mpsc::Sender<Out>, ctl: &Ctl, m: impl Into<Out>) -> bool {
    match tx.try_send(m.into()) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(m)) => match tokio::time::timeout(STALL, tx.send(m)).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                overflow(ctl, format!("subscriber queue full ({} messages) for {} ms: too slow", tx.max_capacity(), STALL.as_millis()));
                false
            }
        },
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

async fn pump(live: LiveState, sub: Sub, mut rx: broadcast::Receiver<Arc<Change>>, tx: mpsc::Sender<Out>, ctl: &Ctl) -> DbResult<()> {
    let db = live.db.clone();
    let hello = ServerMessage::Hello { server: "citytwin".into(), topics: sub.topics.clone(), bbox: sub.bbox.map(|b| b.0), since: sub.since, head: db.head() };
    if !offer(&tx, ctl, hello).await {
        return Ok(());
    }
    // Indicator values are derived (no seq): pushed from the engine's own broadcast.
    let mut ind_rx = sub.topics.contains(&Topic::Indicators).then(|| live.indicators.subscribe());
    let mut next = match sub.since {
        Some(s) => {
            if ind_rx.is_some() && !offer(&tx, ctl, live.indicators.full_push()).await {
                return Ok(());
            }
            s + 1
        }
        None => {
            let (topics, bbox) = (sub.topics.clone(), sub.bbox);
            let (seq, events, units) = db
                .read_snapshot(move |c| {
                    let seq = c.query("SELECT v FROM change_seq WHERE id = 1", &[])?.first().map(|r| r.i64(0)).unwrap_or(0);
                    let mut events = Vec::new();
                    if topics.contains(&Topic::Events) {
                        let open: Vec<String> = EventState::ALL.iter().filter(|s| !s.is_terminal()).map(|s| format!("'{}'", s.as_str())).collect();
                        let rows = match bbox {
                            None => c.query(&format!("SELECT {} FROM events WHERE state IN ({}) ORDER BY id", super::events::EVENT_COLS, open.join(",")), &[])?,
                            Some(b) => c.query(
                                &format!("SELECT {} FROM events WHERE state IN ({}) AND lon >= $1 AND lon <= $2 AND lat >= $3 AND lat <= $4 ORDER BY id", super::events::EVENT_COLS, open.join(",")),
                                &[b.0[0].into(), b.0[2].into(), b.0[1].into(), b.0[3].into()],
                            )?,
                        };
                        events = rows.iter().map(super::events::event_from_row).collect::<DbResult<Vec<_>>>()?;
                    }
                    let units = if topics.contains(&Topic::Units) { super::units::load_units(c, bbox)? } else { vec![] };
                    Ok((seq, events, units))
                })
                .await?;
            let indicators = if ind_rx.is_some() { live.indicators.all_values_json() } else { vec![] };
            if !offer(&tx, ctl, ServerMessage::Snapshot { seq, events, units, sensors: vec![], indicators }).await {
                return Ok(());
            }
            seq + 1
        }
    };
    // Catch up on anything older than the live broadcast.
    let mut ping = tokio::time::interval(PING);
    ping.tick().await;
    loop {
        // Fill from the ring/table while behind the head.
        while next <= db.head() {
            let batch = db.changes_after(next - 1, 1000).await?;
            if batch.is_empty() {
                break;
            }
            for c in batch {
                if c.seq < next {
                    continue;
                }
                next = c.seq + 1;
                if sub.wants(&c) && !offer(&tx, ctl, Out::Delta(c.clone())).await {
                    return Ok(());
                }
            }
        }
        tokio::select! {
            r = rx.recv() => match r {
                Ok(c) => {
                    if c.seq < next {
                        continue;
                    }
                    if c.seq > next {
                        continue; // the loop head fills the jump from the ring/table first
                    }
                    next = c.seq + 1;
                    if sub.wants(&c) && !offer(&tx, ctl, Out::Delta(c.clone())).await {
                        return Ok(());
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    overflow(ctl, format!("fell {n} changes behind the live broadcast: too slow"));
                    return Ok(());
                }
                Err(broadcast::error::RecvError::Closed) => return Ok(()),
            },
            m = recv_opt(&mut ind_rx) => {
                let m = match m {
                    Ok(m) => (*m).clone(),
                    Err(broadcast::error::RecvError::Lagged(_)) => live.indicators.full_push(),
                    Err(broadcast::error::RecvError::Closed) => {
                        ind_rx = None;
                        continue;
                    }
                };
                if !offer(&tx, ctl, m).await {
                    return Ok(());
                }
            }
            _ = ping.tick() => {
                if !offer(&tx, ctl, ServerMessage::Ping { head: db.head() }).await {
                    return Ok(());
                }
            }
            _ = tx.closed() => return Ok(()),
        }
    }
}

/// Receives from an optional broadcast (pending forever without one).
async fn recv_opt<T: Clone>(rx: &mut Option<broadcast::Receiver<T>>) -> Result<T, broadcast::error::RecvError> {
    match rx {
        Some(r) => r.recv().await,
        None => std::future::pending().await,
    }
}

fn resync_msg(ctl: &Ctl) -> ServerMessage {
    let last = ctl.last_sent.load(Ordering::Acquire);
    ServerMessage::Resync { reason: ctl.reason.lock().unwrap().clone(), last_sent: (last >= 0).then_some(last) }
}

async fn ws_session(live: LiveState, sub: Sub, mut socket: WebSocket) {
    use futures_util::SinkExt;
    let _g = SubGuard::new();
    let (mut rx, ctl) = start(live, sub);
    'outer: loop {
        tokio::select! {
            m = rx.recv() => {
                let Some(first) = m else { break };
                // Write everything already queued (up to 256 frames), then flush once: one
                // syscall for a burst instead of one per frame.
                let mut batch = vec![first];
                while batch.len() < 256 {
                    match rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                if ctl.overflow.load(Ordering::Acquire) {
                    break;
                }
                let (mut last_seq, mut deltas) = (None, 0u64);
                let write = async {
                    for m in &batch {
                        socket.feed(Message::Text((&*m.text()).into())).await?;
                        if let Some(s) = m.seq() {
                            last_seq = Some(s);
                        }
                        if matches!(m, Out::Delta(_)) {
                            deltas += 1;
                        }
                    }
                    socket.flush().await
                };
                match tokio::time::timeout(SEND_TIMEOUT, write).await {
                    Ok(Ok(())) => {
                        if let Some(s) = last_seq {
                            ctl.last_sent.store(s, Ordering::Release);
                        }
                        METRICS.stream_deltas.fetch_add(deltas, Ordering::Relaxed);
                    }
                    _ => break 'outer, // gone, or stalled for 30 s: drop
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            }
        }
    }
    if ctl.overflow.load(Ordering::Acquire) {
        let text = serde_json::to_string(&resync_msg(&ctl)).unwrap_or_default();
        let _ = tokio::time::timeout(Duration::from_secs(5), socket.send(Message::Text(text.into()))).await;
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(Message::Close(None))).await;
    }
}

fn sse_session(live: LiveState, sub: Sub, permit: Option<Arc<crate::auth::limit::StreamPermit>>) -> impl IntoResponse {
    let (rx, ctl) = start(live, sub);
    let state = (rx, ctl, (SubGuard::new(), permit), false);
    let stream = futures_util::stream::unfold(state, |(mut rx, ctl, g, done)| async move {
        if done {
            return None;
        }
        let m = rx.recv().await;
        let (m, done) = match m {
            Some(_) if ctl.overflow.load(Ordering::Acquire) => (Out::Msg(resync_msg(&ctl)), true),
            Some(m) => (m, false),
            None if ctl.overflow.load(Ordering::Acquire) => (Out::Msg(resync_msg(&ctl)), true),
            None => return None,
        };
        let mut ev = SseEvent::default().event(m.kind()).data(&*m.text());
        if let Some(s) = m.seq() {
            // Written to the socket by axum after this returns; close enough for last_sent (SSE
            // has no per-frame acknowledgement either way).
            ctl.last_sent.store(s, Ordering::Release);
            ev = ev.id(s.to_string());
            if matches!(m, Out::Delta(_)) {
                METRICS.stream_deltas.fetch_add(1, Ordering::Relaxed);
            }
        }
        Some((Ok::<_, std::convert::Infallible>(ev), (rx, ctl, g, done)))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(PING))
}

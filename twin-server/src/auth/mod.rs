//! Access control (issue 8): bearer API keys, roles, one central policy, the audit log and limits.
//!
//! * **Keys** are opaque (`ctk_` + 192 random bits), stored as SHA-256 in the live store
//!   ([`store`]), with a name, a [`Role`], an expiry and a revocation time. `twin-server token
//!   create|list|revoke` and the admin API manage them; `serve --admin-token-file F` registers a
//!   bootstrap admin key (creating F, mode 0600, when missing).
//! * **Policy**: [`POLICY`] maps (method, route pattern) → [`Perm`]; [`guard`] runs on every
//!   request (a layer over the whole router) and looks the request's matched route up. A route
//!   missing from the table is refused (403, deny by default) — adding a route means adding one
//!   line here. HEAD is checked as GET; OPTIONS (CORS preflight, which carries no credentials)
//!   passes. Roles hold permissions ([`Role::perms`]); `serve --anonymous-read` lets requests
//!   without a key act with [`ANONYMOUS_READ`].
//! * **Answers**: 401 + `WWW-Authenticate: Bearer` for a missing, unknown, expired or revoked key;
//!   403 when the role lacks the permission; both as JSON naming the permission needed.
//! * **Audit**: every write (any method but GET/HEAD/OPTIONS) and every 401/403 is appended to
//!   `audit_log` before the answer leaves: who (token name, role), what (method, path, route,
//!   target id, status, SHA-256 and length of the body as read by the handler), when, from where
//!   (peer IP; `X-Forwarded-For` only from `--trusted-proxy` peers).
//! * **Limits**: token buckets per client IP and per key (429 + `Retry-After`), open stream
//!   subscriptions per key/IP (429), a request timeout (503) on everything but the stream.
//! * **Login** ([`users`]): users with argon2id passwords get short-lived session keys from
//!   `POST /api/auth/login` (its own per-address bucket, `--rate-login`) and end them with
//!   `POST /api/auth/logout`.

pub mod limit;
pub mod store;
pub mod users;

use crate::live::db::Db;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Perm {
    /// Anyone, no key needed (liveness, the API description).
    Public,
    /// Any identity (`/api/auth/whoami`).
    Whoami,
    /// The city model: model queries, tiles, styles, fonts, 3D Tiles.
    ModelRead,
    /// Events and units (read).
    LiveRead,
    /// Events, transitions, assignments, unit status (write).
    Dispatch,
    SensorsRead,
    /// SensorThings POSTs and `/api/sensors/observations`.
    SensorsIngest,
    IndicatorsRead,
    IndicatorsPublish,
    /// Planning annotations (no annotations API exists yet; the permission is reserved).
    Annotate,
    /// `/metrics`.
    Metrics,
    /// Opening `/api/stream` (each topic then needs its read permission, [`topic_perm`]).
    Stream,
    /// Keys, audit, policy.
    Admin,
}

impl Perm {
    pub const ALL: [Perm; 13] = [
        Perm::Public,
        Perm::Whoami,
        Perm::ModelRead,
        Perm::LiveRead,
        Perm::Dispatch,
        Perm::SensorsRead,
        Perm::SensorsIngest,
        Perm::IndicatorsRead,
        Perm::IndicatorsPublish,
        Perm::Annotate,
        Perm::Metrics,
        Perm::Stream,
        Perm::Admin,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Perm::Public => "public",
            Perm::Whoami => "whoami",
            Perm::ModelRead => "model:read",
            Perm::LiveRead => "live:read",
            Perm::Dispatch => "dispatch",
            Perm::SensorsRead => "sensors:read",
            Perm::SensorsIngest => "sensors:ingest",
            Perm::IndicatorsRead => "indicators:read",
            Perm::IndicatorsPublish => "indicators:publish",
            Perm::Annotate => "annotations:write",
            Perm::Metrics => "metrics:read",
            Perm::Stream => "stream",
            Perm::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Leader,
    Dispatcher,
    Planner,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [Role::Leader, Role::Dispatcher, Role::Planner, Role::Operator, Role::Admin];
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Leader => "leader",
            Role::Dispatcher => "dispatcher",
            Role::Planner => "planner",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
    pub fn parse(s: &str) -> Result<Role, String> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| format!("unknown role '{s}' (leader, dispatcher, planner, operator, admin)"))
    }
    /// The role's permissions (the roles table of the README).
    pub fn perms(self) -> &'static [Perm] {
        use Perm::*;
        match self {
            Role::Leader => &[Whoami, ModelRead, LiveRead, SensorsRead, IndicatorsRead, Stream],
            Role::Dispatcher => &[Whoami, ModelRead, LiveRead, SensorsRead, IndicatorsRead, Stream, Dispatch],
            Role::Planner => &[Whoami, ModelRead, IndicatorsRead, Annotate, Stream],
            Role::Operator => &[Whoami, SensorsRead, SensorsIngest, Metrics, Stream],
            Role::Admin => &Perm::ALL,
        }
    }
}

/// What a request without a key may do under `serve --anonymous-read` (the leader's reads).
pub const ANONYMOUS_READ: &[Perm] = &[Perm::Whoami, Perm::ModelRead, Perm::LiveRead, Perm::SensorsRead, Perm::IndicatorsRead, Perm::Stream];

/// The read permission a stream topic needs.
pub fn topic_perm(t: twin_protocol::Topic) -> Perm {
    use twin_protocol::Topic;
    match t {
        Topic::Events | Topic::Units => Perm::LiveRead,
        Topic::Sensors => Perm::SensorsRead,
        Topic::Indicators => Perm::IndicatorsRead,
    }
}

/// THE policy: every route of the server, by method and axum route pattern. A route missing
/// here is refused with 403 (and `tests/auth.rs` fails listing it).
pub const POLICY: &[(&str, &str, Perm)] = {
    use Perm::*;
    &[
        ("GET", "/healthz", Public),
        ("GET", "/api/openapi.json", Public),
        ("GET", "/api/auth/whoami", Whoami),
        ("POST", "/api/auth/login", Public),
        // public: it needs no permission, only the session key it ends (400 without one), so an
        // unauthenticated request is never "allowed" to do anything here
        ("POST", "/api/auth/logout", Public),
        // the model (server.rs, tiles_http.rs, styles.rs, threed_http.rs)
        ("GET", "/api/model", ModelRead),
        ("GET", "/api/districts", ModelRead),
        ("GET", "/api/streets", ModelRead),
        ("GET", "/api/buildings", ModelRead),
        ("GET", "/api/buildings/{id}", ModelRead),
        ("GET", "/api/pick", ModelRead),
        ("GET", "/api/nearest", ModelRead),
        ("GET", "/tiles", ModelRead),
        ("GET", "/tiles/{file}", ModelRead),
        ("GET", "/tiles/{name}/{z}/{x}/{y}", ModelRead),
        ("GET", "/styles/{file}", ModelRead),
        ("GET", "/fonts/{stack}/{range}", ModelRead),
        ("GET", "/3dtiles/{name}/{*path}", ModelRead),
        // live operations (live/mod.rs)
        ("GET", "/api/events", LiveRead),
        ("GET", "/api/events/replay", LiveRead),
        ("GET", "/api/events/categories", LiveRead),
        ("GET", "/api/events/{id}", LiveRead),
        ("GET", "/api/events/{id}/log", LiveRead),
        ("GET", "/api/events/{id}/recommend", LiveRead),
        ("GET", "/api/units", LiveRead),
        ("GET", "/api/units/{id}", LiveRead),
        ("GET", "/api/stream", Stream),
        ("POST", "/api/events", Dispatch),
        ("POST", "/api/events/{id}/transitions", Dispatch),
        ("POST", "/api/events/{id}/assign", Dispatch),
        ("POST", "/api/units/{id}/status", Dispatch),
        ("GET", "/metrics", Metrics),
        // sensors (live/sensors)
        ("GET", "/api/sta/v1.1", SensorsRead),
        ("GET", "/api/sta/v1.1/", SensorsRead),
        ("GET", "/api/sta/v1.1/{*path}", SensorsRead),
        ("POST", "/api/sta/v1.1/{*path}", SensorsIngest),
        ("GET", "/api/sensors/latest", SensorsRead),
        ("GET", "/api/sensors/types", SensorsRead),
        ("POST", "/api/sensors/observations", SensorsIngest),
        // indicators (published by admins)
        ("GET", "/api/indicators", IndicatorsRead),
        ("GET", "/api/indicators/values", IndicatorsRead),
        ("GET", "/api/indicators/{id}", IndicatorsRead),
        ("GET", "/api/indicators/{id}/values", IndicatorsRead),
        ("GET", "/api/indicators/{id}/series", IndicatorsRead),
        ("POST", "/api/admin/indicators", IndicatorsPublish),
        ("POST", "/api/admin/indicators/{id}/retire", IndicatorsPublish),
        // access control itself (this module)
        ("GET", "/api/admin/tokens", Admin),
        ("POST", "/api/admin/tokens", Admin),
        ("POST", "/api/admin/tokens/{id}/revoke", Admin),
        ("GET", "/api/admin/audit", Admin),
        ("GET", "/api/admin/policy", Admin),
    ]
};

pub enum Lookup {
    Perm(Perm),
    /// The route is in the policy, but not with this method (the router answers 405).
    OtherMethod,
    /// Not in the policy at all: denied by default.
    Missing,
}

pub fn lookup(method: &Method, route: &str) -> Lookup {
    let m = if method == Method::HEAD { "GET" } else { method.as_str() };
    let mut known = false;
    for (pm, pr, p) in POLICY {
        if *pr == route {
            if *pm == m {
                return Lookup::Perm(*p);
            }
            known = true;
        }
    }
    if known {
        Lookup::OtherMethod
    } else {
        Lookup::Missing
    }
}

/// Who is asking; handed to handlers as a request extension.
#[derive(Debug, Clone)]
pub struct Identity {
    pub token_id: Option<i64>,
    pub name: String,
    /// `None`: anonymous.
    pub role: Option<Role>,
    pub perms: &'static [Perm],
    pub expires_ms: Option<i64>,
}

impl Identity {
    pub fn anonymous(anonymous_read: bool) -> Identity {
        Identity { token_id: None, name: "anonymous".into(), role: None, perms: if anonymous_read { ANONYMOUS_READ } else { &[] }, expires_ms: None }
    }
    pub fn allows(&self, p: Perm) -> bool {
        p == Perm::Public || self.perms.contains(&p)
    }
    pub fn role_str(&self) -> &'static str {
        self.role.map(Role::as_str).unwrap_or("anonymous")
    }
}

#[derive(Debug, Clone)]
pub struct AuthOptions {
    pub admin_token_file: Option<PathBuf>,
    pub anonymous_read: bool,
    pub rate_ip: limit::Rate,
    pub rate_token: limit::Rate,
    /// Open `/api/stream` subscriptions per key (or per IP without a key); 0 = unlimited.
    pub max_streams: usize,
    pub request_timeout: Duration,
    /// Peers whose `X-Forwarded-For` is believed (reverse proxies).
    pub trusted_proxies: Vec<IpAddr>,
    /// Login attempts per client address (token bucket; 429 above).
    pub rate_login: limit::Rate,
    /// Longest lifetime of a session key issued by a login.
    pub session_ttl: Duration,
}

impl Default for AuthOptions {
    fn default() -> Self {
        AuthOptions {
            admin_token_file: None,
            anonymous_read: false,
            rate_ip: limit::Rate { per_s: 200.0, burst: 400.0 },
            rate_token: limit::Rate { per_s: 500.0, burst: 1000.0 },
            max_streams: 16,
            request_timeout: Duration::from_secs(30),
            trusted_proxies: vec![],
            rate_login: limit::Rate { per_s: 0.2, burst: 10.0 },
            session_ttl: Duration::from_secs(8 * 3600),
        }
    }
}

#[derive(Default)]
pub struct AuthMetrics {
    pub unauthenticated: AtomicU64,
    pub forbidden: AtomicU64,
    pub rate_limited_ip: AtomicU64,
    pub rate_limited_token: AtomicU64,
    pub streams_refused: AtomicU64,
    pub timeouts: AtomicU64,
    pub rate_limited_login: AtomicU64,
    pub logins: AtomicU64,
    pub login_failures: AtomicU64,
    pub audit_rows: AtomicU64,
    pub audit_failures: AtomicU64,
}

pub static METRICS: std::sync::LazyLock<AuthMetrics> = std::sync::LazyLock::new(AuthMetrics::default);

pub fn metrics_text() -> String {
    let m = &*METRICS;
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    format!(
        "# HELP citytwin_auth_failures_total Requests refused by access control, by status.\n# TYPE citytwin_auth_failures_total counter\n\
         citytwin_auth_failures_total{{status=\"401\"}} {}\ncitytwin_auth_failures_total{{status=\"403\"}} {}\n\
         # HELP citytwin_rate_limited_total Requests refused with 429, by limit.\n# TYPE citytwin_rate_limited_total counter\n\
         citytwin_rate_limited_total{{scope=\"ip\"}} {}\ncitytwin_rate_limited_total{{scope=\"token\"}} {}\ncitytwin_rate_limited_total{{scope=\"streams\"}} {}\ncitytwin_rate_limited_total{{scope=\"login\"}} {}\n\
         # HELP citytwin_logins_total Logins (session keys issued) and refused logins.\n# TYPE citytwin_logins_total counter\n\
         citytwin_logins_total{{result=\"ok\"}} {}\ncitytwin_logins_total{{result=\"refused\"}} {}\n\
         # HELP citytwin_request_timeouts_total Requests cut off by the request timeout (or PostgreSQL's statement_timeout).\n# TYPE citytwin_request_timeouts_total counter\ncitytwin_request_timeouts_total {}\n\
         # HELP citytwin_abandoned_writes_total Writes dropped unapplied because their request had timed out before the writer reached them.\n# TYPE citytwin_abandoned_writes_total counter\ncitytwin_abandoned_writes_total {}\n\
         # HELP citytwin_audit_rows_total Audit rows appended by this process.\n# TYPE citytwin_audit_rows_total counter\ncitytwin_audit_rows_total {}\n\
         # HELP citytwin_audit_failures_total Audit rows that could not be written.\n# TYPE citytwin_audit_failures_total counter\ncitytwin_audit_failures_total {}\n",
        g(&m.unauthenticated),
        g(&m.forbidden),
        g(&m.rate_limited_ip),
        g(&m.rate_limited_token),
        g(&m.streams_refused),
        g(&m.rate_limited_login),
        g(&m.logins),
        g(&m.login_failures),
        g(&m.timeouts),
        crate::live::db::METRICS_ABANDONED.load(Ordering::Relaxed),
        g(&m.audit_rows),
        g(&m.audit_failures)
    )
}

/// How long a looked-up key is trusted before the store is asked again (a revocation made on
/// another replica or with the CLI takes effect within this; the admin API clears it at once).
const CACHE_TTL: Duration = Duration::from_secs(5);

pub struct Auth {
    pub db: Db,
    pub opts: AuthOptions,
    cache: Mutex<HashMap<String, (Identity, Instant)>>,
    ip_buckets: limit::Buckets,
    token_buckets: limit::Buckets,
    streams: limit::Streams,
    login_buckets: limit::Buckets,
}

/// The client's address as the guard determined it (a request extension for handlers).
#[derive(Debug, Clone)]
pub struct ClientIp(pub String);

/// A handler's note for the audit row of its request (a response extension the guard reads).
#[derive(Debug, Clone)]
pub struct AuditDetail(pub String);

pub type AuthState = Arc<Auth>;

/// Why a key was refused.
enum KeyFail {
    Unknown,
    Expired,
    Revoked,
}

impl Auth {
    /// Migrates the auth tables and registers the bootstrap admin key.
    pub async fn start(db: Db, opts: AuthOptions) -> anyhow::Result<AuthState> {
        use anyhow::Context;
        store::migrate(&db).await.context("live store: auth schema")?;
        if let Some(f) = &opts.admin_token_file {
            let key = bootstrap_key(f)?;
            if store::ensure_key(&db, &key, Role::Admin, "serve --admin-token-file").await.map_err(anyhow::Error::msg)? {
                tracing::info!(file = %f.display(), "bootstrap admin key registered");
            }
        }
        if opts.anonymous_read {
            tracing::warn!("--anonymous-read: requests without a key may read the model, events, units, sensors and indicators");
        }
        Ok(Arc::new(Auth {
            ip_buckets: limit::Buckets::new(opts.rate_ip),
            token_buckets: limit::Buckets::new(opts.rate_token),
            streams: limit::Streams::new(opts.max_streams),
            login_buckets: limit::Buckets::new(opts.rate_login),
            cache: Mutex::new(HashMap::new()),
            db,
            opts,
        }))
    }

    async fn identify(&self, key: &str) -> Result<Result<Identity, KeyFail>, crate::live::db::DbError> {
        if store::check_key_format(key).is_err() {
            return Ok(Err(KeyFail::Unknown));
        }
        let hash = store::key_hash(key);
        let now = crate::live::now_ms();
        if let Some((id, at)) = self.cache.lock().unwrap().get(&hash) {
            if at.elapsed() < CACHE_TTL && id.expires_ms.is_none_or(|e| e > now) {
                return Ok(Ok(id.clone()));
            }
        }
        let Some(row) = store::by_hash(&self.db, hash.clone()).await? else { return Ok(Err(KeyFail::Unknown)) };
        if !store::ct_eq(&row.hash, &hash) {
            return Ok(Err(KeyFail::Unknown));
        }
        if row.revoked_ms.is_some() {
            return Ok(Err(KeyFail::Revoked));
        }
        if row.expires_ms.is_some_and(|e| e <= now) {
            return Ok(Err(KeyFail::Expired));
        }
        let Ok(role) = Role::parse(&row.role) else { return Ok(Err(KeyFail::Unknown)) };
        let id = Identity { token_id: Some(row.id), name: row.name, role: Some(role), perms: role.perms(), expires_ms: row.expires_ms };
        let mut c = self.cache.lock().unwrap();
        if c.len() > 10_000 {
            c.clear();
        }
        c.insert(hash, (id.clone(), Instant::now()));
        Ok(Ok(id))
    }

    fn forget_cached(&self) {
        self.cache.lock().unwrap().clear();
    }

    /// The client's address: the peer, or — when the peer is a trusted proxy — the right-most
    /// `X-Forwarded-For` entry that is not itself a trusted proxy.
    fn client_ip(&self, req: &Request) -> String {
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let Some(peer) = peer else { return "unknown".into() };
        if self.opts.trusted_proxies.contains(&peer) {
            let xff: Vec<IpAddr> = req
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|s| s.trim().parse::<IpAddr>().ok())
                .collect();
            if let Some(ip) = xff.iter().rev().find(|ip| !self.opts.trusted_proxies.contains(ip)) {
                return ip.to_string();
            }
        }
        peer.to_string()
    }

    async fn audit(&self, a: store::AuditRow) {
        match store::append(&self.db, a).await {
            Ok(_) => {
                METRICS.audit_rows.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                METRICS.audit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!("audit log: cannot append: {e}");
            }
        }
    }
}

/// Reads the bootstrap key from `f`, or creates `f` (mode 0600) with a new key.
fn bootstrap_key(f: &std::path::Path) -> anyhow::Result<String> {
    use anyhow::Context;
    match std::fs::read_to_string(f) {
        Ok(s) => {
            let key = s.trim().to_string();
            store::check_key_format(&key).map_err(|e| anyhow::anyhow!("--admin-token-file {}: {e}", f.display()))?;
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = store::new_key().map_err(anyhow::Error::msg)?;
            let mut o = std::fs::OpenOptions::new();
            o.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
            use std::io::Write;
            let mut file = o.open(f).with_context(|| format!("--admin-token-file {}: cannot create", f.display()))?;
            writeln!(file, "{key}").with_context(|| format!("--admin-token-file {}: cannot write", f.display()))?;
            tracing::warn!(file = %f.display(), "created a new bootstrap admin key (mode 0600); keep it secret");
            Ok(key)
        }
        Err(e) => Err(anyhow::anyhow!("--admin-token-file {}: {e}", f.display())),
    }
}

fn error(status: StatusCode, reason: &str, msg: String, perm: Option<Perm>) -> Response {
    let mut body = json!({"error": msg, "reason": reason});
    if let Some(p) = perm {
        body["permission"] = p.as_str().into();
    }
    (status, Json(body)).into_response()
}

fn unauthorized(msg: String, perm: Perm, token_given: bool) -> Response {
    METRICS.unauthenticated.fetch_add(1, Ordering::Relaxed);
    let mut r = error(StatusCode::UNAUTHORIZED, "unauthenticated", msg, Some(perm));
    let v = if token_given { "Bearer realm=\"citytwin\", error=\"invalid_token\"" } else { "Bearer realm=\"citytwin\"" };
    r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
    r
}

fn too_many(wait: Duration, what: &str) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut r = error(StatusCode::TOO_MANY_REQUESTS, "rate_limited", format!("too many requests ({what}); retry in {secs} s"), None);
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

/// The key of a request: `Authorization: Bearer KEY`, or `?access_token=KEY` on the stream only
/// (browsers cannot set headers on a WebSocket or EventSource). `Some(Err)` for a malformed header.
fn bearer(req: &Request, query_allowed: bool) -> Option<Result<String, String>> {
    if let Some(h) = req.headers().get(header::AUTHORIZATION) {
        let Ok(s) = h.to_str() else { return Some(Err("Authorization header is not ASCII".into())) };
        let mut parts = s.splitn(2, ' ');
        let (scheme, value) = (parts.next().unwrap_or(""), parts.next().unwrap_or("").trim());
        if !scheme.eq_ignore_ascii_case("bearer") || value.is_empty() {
            return Some(Err("Authorization must be 'Bearer <key>'".into()));
        }
        return Some(Ok(value.to_string()));
    }
    if query_allowed {
        for pair in req.uri().query().unwrap_or("").split('&') {
            if let Some(v) = pair.strip_prefix("access_token=") {
                return Some(Ok(v.to_string()));
            }
        }
    }
    None
}

/// The value of the route's first `{param}` / `{*rest}` in the path (the target id for audit).
fn route_target(route: &str, path: &str) -> Option<String> {
    let (rs, ps): (Vec<&str>, Vec<&str>) = (route.split('/').collect(), path.split('/').collect());
    for (i, r) in rs.iter().enumerate() {
        if r.starts_with("{*") {
            return Some(ps.get(i..).map(|p| p.join("/")).unwrap_or_default());
        }
        if r.starts_with('{') {
            return ps.get(i).map(|s| s.to_string());
        }
    }
    None
}

/// A request body that hashes what the handler reads (the audit's bounded body digest: the
/// handler's own size limit bounds it).
struct Hashing {
    inner: Body,
    st: Arc<Mutex<(sha2::Sha256, u64)>>,
}

impl http_body::Body for Hashing {
    type Data = Bytes;
    type Error = axum::Error;
    fn poll_frame(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(f))) = &r {
            if let Some(d) = f.data_ref() {
                use sha2::Digest;
                let mut g = self.st.lock().unwrap();
                g.0.update(d);
                g.1 += d.len() as u64;
            }
        }
        r
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The access-control layer over the whole router (see the module doc).
pub async fn guard(State(auth): State<AuthState>, mut req: Request, next: Next) -> Response {
    let method = req.method().clone();
    if method == Method::OPTIONS {
        return next.run(req).await;
    }
    let Some(route) = req.extensions().get::<MatchedPath>().map(|m| m.as_str().to_string()) else {
        return next.run(req).await; // no such route: the router's 404
    };
    let ip = auth.client_ip(&req);
    let path = req.uri().path().to_string();
    let is_write = method != Method::GET && method != Method::HEAD;
    if let Err(wait) = auth.ip_buckets.take(&ip) {
        METRICS.rate_limited_ip.fetch_add(1, Ordering::Relaxed);
        return too_many(wait, "per client address");
    }
    let audit_row = |ident: &Identity, status: StatusCode, detail: String| store::AuditRow {
        actor: ident.name.clone(),
        role: ident.role_str().into(),
        token_id: ident.token_id,
        ip: ip.clone(),
        method: method.to_string(),
        path: path.clone(),
        route: route.clone(),
        target: route_target(&route, &path),
        status: status.as_u16(),
        detail: Some(detail),
        ..Default::default()
    };
    let perm = match lookup(&method, &route) {
        Lookup::Perm(p) => p,
        Lookup::OtherMethod => return next.run(req).await,
        Lookup::Missing => {
            tracing::error!(%method, route, "route has no access policy: refused (add it to auth::POLICY)");
            METRICS.forbidden.fetch_add(1, Ordering::Relaxed);
            let msg = format!("{method} {route} has no access policy (denied by default)");
            auth.audit(audit_row(&Identity::anonymous(false), StatusCode::FORBIDDEN, msg.clone())).await;
            return error(StatusCode::FORBIDDEN, "forbidden", msg, Some(Perm::Admin));
        }
    };
    let ident = match bearer(&req, route == "/api/stream") {
        Some(Err(msg)) => {
            let r = unauthorized(msg.clone(), perm, true);
            auth.audit(audit_row(&Identity::anonymous(false), StatusCode::UNAUTHORIZED, msg)).await;
            return r;
        }
        Some(Ok(key)) => match auth.identify(&key).await {
            Ok(Ok(id)) => id,
            Ok(Err(fail)) => {
                let what = match fail {
                    KeyFail::Unknown => "unknown API key",
                    KeyFail::Expired => "API key expired",
                    KeyFail::Revoked => "API key revoked",
                };
                let msg = format!("{what}: {method} {path} needs permission '{}'", perm.as_str());
                let mut who = Identity::anonymous(false);
                who.name = format!("key:{}", key.chars().take(12).collect::<String>());
                auth.audit(audit_row(&who, StatusCode::UNAUTHORIZED, what.into())).await;
                return unauthorized(msg, perm, true);
            }
            Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, "store_error", format!("cannot check the API key: {e}"), None),
        },
        // Public reads pass untouched; public writes (the login) go on as anonymous: audited.
        None if perm == Perm::Public && !is_write => return next.run(req).await,
        None => {
            let anon = Identity::anonymous(auth.opts.anonymous_read);
            if !anon.allows(perm) {
                let msg = format!("authentication required: {method} {path} needs permission '{}' (send Authorization: Bearer <key>)", perm.as_str());
                auth.audit(audit_row(&anon, StatusCode::UNAUTHORIZED, "no key".into())).await;
                return unauthorized(msg, perm, false);
            }
            anon
        }
    };
    if !ident.allows(perm) {
        METRICS.forbidden.fetch_add(1, Ordering::Relaxed);
        let msg = format!("forbidden: {method} {path} needs permission '{}', which role '{}' does not have", perm.as_str(), ident.role_str());
        auth.audit(audit_row(&ident, StatusCode::FORBIDDEN, format!("needs {}", perm.as_str()))).await;
        return error(StatusCode::FORBIDDEN, "forbidden", msg, Some(perm));
    }
    let key = ident.token_id.map(|i| format!("token:{i}")).unwrap_or_else(|| format!("ip:{ip}"));
    if ident.token_id.is_some() {
        if let Err(wait) = auth.token_buckets.take(&key) {
            METRICS.rate_limited_token.fetch_add(1, Ordering::Relaxed);
            return too_many(wait, "per API key");
        }
    }
    let stream = route == "/api/stream";
    if stream {
        match auth.streams.acquire(&key) {
            Some(p) => {
                req.extensions_mut().insert(Arc::new(p));
            }
            None => {
                METRICS.streams_refused.fetch_add(1, Ordering::Relaxed);
                let mut r = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_streams",
                    format!("at most {} open stream subscriptions per client; close one first", auth.streams.max()),
                    None,
                );
                r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
                return r;
            }
        }
    }
    req.extensions_mut().insert(ident.clone());
    req.extensions_mut().insert(ClientIp(ip.clone()));
    let digest = if is_write {
        let st: Arc<Mutex<(sha2::Sha256, u64)>> = Arc::new(Mutex::new((<sha2::Sha256 as sha2::Digest>::new(), 0)));
        let (parts, body) = req.into_parts();
        req = Request::from_parts(parts, Body::new(Hashing { inner: body, st: st.clone() }));
        Some(st)
    } else {
        None
    };
    let mut timed_out = false;
    let resp = if stream {
        next.run(req).await
    } else {
        match tokio::time::timeout(auth.opts.request_timeout, next.run(req)).await {
            Ok(r) => r,
            Err(_) => {
                timed_out = true;
                METRICS.timeouts.fetch_add(1, Ordering::Relaxed);
                error(StatusCode::SERVICE_UNAVAILABLE, "timeout", format!("{method} {path}: no answer within {} s", auth.opts.request_timeout.as_secs_f64()), None)
            }
        }
    };
    if !is_write {
        return resp;
    }
    // A write: audit it with the target id (from the path, else the `id` of a small JSON answer).
    let status = resp.status();
    let mut row = audit_row(&ident, status, String::new());
    row.detail = resp.extensions().get::<AuditDetail>().map(|d| d.0.clone());
    if let Some(st) = digest {
        let (h, n) = std::mem::replace(&mut *st.lock().unwrap(), (<sha2::Sha256 as sha2::Digest>::new(), 0));
        row.body_sha256 = Some(store::hex(&sha2::Digest::finalize(h)));
        row.body_bytes = Some(n as i64);
    }
    let resp = if row.target.is_none() && status.is_success() && http_body::Body::size_hint(resp.body()).exact().is_some_and(|n| n <= 64 * 1024) {
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
        if let Ok(v) = serde_json::from_slice::<Value>(&bytes) {
            row.target = v.get("id").or_else(|| v.get("@iot.id")).map(|i| i.as_str().map(str::to_string).unwrap_or_else(|| i.to_string()));
        }
        Response::from_parts(parts, Body::from(bytes))
    } else {
        resp
    };
    // The audit row goes through the store's writer, like the write itself: when that is stuck
    // (a lock held elsewhere) the answer must not wait for it — a timed-out request is answered at
    // once, any other after at most the request timeout; the row is still appended once the
    // store frees up (its own task).
    let task = tokio::spawn({
        let auth = auth.clone();
        async move { auth.audit(row).await }
    });
    if !timed_out {
        let _ = tokio::time::timeout(auth.opts.request_timeout, task).await;
    }
    resp
}

// ---------------------------------------------------------------- routes

pub fn routes(auth: AuthState) -> axum::Router {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/api/auth/whoami", get(whoami))
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/admin/tokens", get(tokens_list).post(tokens_create))
        .route("/api/admin/tokens/{id}/revoke", post(tokens_revoke))
        .route("/api/admin/audit", get(audit_route))
        .route("/api/admin/policy", get(policy_route))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(auth)
}

async fn whoami(Extension(id): Extension<Identity>) -> Json<Value> {
    Json(json!({
        "name": id.name, "role": id.role_str(), "token_id": id.token_id, "authenticated": id.token_id.is_some(),
        "permissions": id.perms.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        "expires": id.expires_ms.map(store::ms_rfc3339),
    }))
}

/// `POST /api/auth/login {"user", "password", "expires_in_s"?}` → 200 with a session key (once),
/// its expiry and role; 401 for an unknown user or a wrong password (the same answer); 429 past
/// `--rate-login` attempts from one address.
async fn login(State(auth): State<AuthState>, Extension(ip): Extension<ClientIp>, body: Result<Bytes, axum::extract::rejection::BytesRejection>) -> Response {
    if let Err(wait) = auth.login_buckets.take(&ip.0) {
        METRICS.rate_limited_login.fetch_add(1, Ordering::Relaxed);
        return too_many(wait, "login attempts per client address");
    }
    if let Err(rej) = &body {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("POST /api/auth/login: body larger than 64 KiB ({rej})"), None);
        }
    }
    let req = match body.map_err(|e| format!("POST /api/auth/login: {e}")).and_then(|b| twin_protocol::payload::login_request(&b)) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::BAD_REQUEST, "invalid_field", e, None),
    };
    let user = match users::authenticate(&auth.db, req.user.clone(), req.password).await {
        Ok(u) => u,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, "store_error", format!("cannot check the password: {e}"), None),
    };
    let Some(user) = user else {
        METRICS.login_failures.fetch_add(1, Ordering::Relaxed);
        let mut r = error(StatusCode::UNAUTHORIZED, "bad_credentials", "POST /api/auth/login: wrong user name or password".into(), None);
        r.extensions_mut().insert(AuditDetail(format!("login refused for '{}'", req.user.chars().take(64).collect::<String>())));
        return r;
    };
    let ttl_ms = auth.opts.session_ttl.as_millis() as i64;
    let ttl_ms = req.expires_in_s.map(|s| ((s * 1000.0) as i64).min(ttl_ms)).unwrap_or(ttl_ms);
    let now = crate::live::now_ms();
    match users::create_session(&auth.db, &user, now + ttl_ms).await {
        Ok((row, key)) => {
            METRICS.logins.fetch_add(1, Ordering::Relaxed);
            let mut j = row.json(now);
            j["key"] = key.into();
            j["user"] = user.name.clone().into();
            let mut r = Json(j).into_response();
            r.extensions_mut().insert(AuditDetail(format!("login '{}': session key {}", user.name, row.id)));
            r
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "store_error", format!("cannot issue a session key: {e}"), None),
    }
}

/// `POST /api/auth/logout`: revokes the session key the request is made with (at once on this
/// server, within 5 s on others). An API key is not a session: 400.
async fn logout(State(auth): State<AuthState>, Extension(id): Extension<Identity>) -> Response {
    let Some(tid) = id.token_id else {
        return error(StatusCode::BAD_REQUEST, "not_a_session", "POST /api/auth/logout: no session key sent (log in first)".into(), None);
    };
    match users::end_session(&auth.db, tid).await {
        Ok(true) => {
            auth.forget_cached();
            Json(json!({"id": tid, "name": id.name, "state": "revoked"})).into_response()
        }
        Ok(false) => error(StatusCode::BAD_REQUEST, "not_a_session", format!("POST /api/auth/logout: key '{}' is an API key, not a login session (an admin revokes it)", id.name), None),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "store_error", e.0, None),
    }
}

async fn tokens_list(State(auth): State<AuthState>) -> Response {
    match store::list(&auth.db).await {
        Ok(rows) => {
            let now = crate::live::now_ms();
            Json(json!({"tokens": rows.iter().map(|r| r.json(now)).collect::<Vec<_>>()})).into_response()
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "store_error", e.0, None),
    }
}

/// `POST /api/admin/tokens {"name", "role", "expires_days"?, "expires_in_s"?}` → the key, once.
async fn tokens_create(State(auth): State<AuthState>, Extension(by): Extension<Identity>, body: Result<Bytes, axum::extract::rejection::BytesRejection>) -> Response {
    let bad = |m: String| error(StatusCode::BAD_REQUEST, "invalid_field", m, None);
    if let Err(rej) = &body {
        if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("POST /api/admin/tokens: body larger than 64 KiB ({rej})"), None);
        }
    }
    let req = match body.map_err(|e| format!("POST /api/admin/tokens: {e}")).and_then(|b| twin_protocol::payload::token_request(&b, Role::parse)) {
        Ok(r) => r,
        Err(e) => return bad(e),
    };
    let (name, role, secs) = (req.name.as_str(), req.role, req.expires_in_s);
    let expires = secs.map(|s| crate::live::now_ms() + (s * 1000.0) as i64);
    match store::create(&auth.db, name, role, expires, &format!("api:{}", by.name)).await {
        Ok((row, key)) => {
            let mut j = row.json(crate::live::now_ms());
            j["key"] = key.into();
            (StatusCode::CREATED, Json(j)).into_response()
        }
        Err(e) if e.contains("exists already") => error(StatusCode::CONFLICT, "name_taken", e, None),
        Err(e) => bad(e),
    }
}

async fn tokens_revoke(State(auth): State<AuthState>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else { return error(StatusCode::BAD_REQUEST, "bad_id", format!("token id must be an integer: '{id}'"), None) };
    match store::revoke(&auth.db, Some(id), None).await {
        Ok(Some(row)) => {
            auth.forget_cached();
            Json(row.json(crate::live::now_ms())).into_response()
        }
        Ok(None) => error(StatusCode::NOT_FOUND, "unknown_id", format!("no token {id}"), None),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "store_error", e.0, None),
    }
}

/// `GET /api/admin/audit?from=&to=&actor=&limit=` (times RFC 3339 or ms; limit 1–10000, default 100).
async fn audit_route(State(auth): State<AuthState>, Query(q): Query<HashMap<String, String>>) -> Response {
    for k in q.keys() {
        if !matches!(k.as_str(), "from" | "to" | "actor" | "limit") {
            return error(StatusCode::BAD_REQUEST, "bad_query", format!("GET /api/admin/audit: unknown parameter '{k}' (from, to, actor, limit)"), None);
        }
    }
    let t = |k: &str| q.get(k).map(|v| crate::live::parse_time(k, v)).transpose();
    let (from, to) = match (t("from"), t("to")) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e.into_response(),
    };
    let limit = match q.get("limit") {
        None => 100,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n >= 1 => n.min(10_000),
            _ => return error(StatusCode::BAD_REQUEST, "bad_query", format!("limit must be a positive integer: '{l}'"), None),
        },
    };
    match store::query(&auth.db, from, to, q.get("actor").cloned(), limit).await {
        Ok(rows) => Json(json!({"limit": limit, "rows": rows})).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, "store_error", e.0, None),
    }
}

/// The policy and the roles, for operators and for the access-matrix test.
async fn policy_route(State(auth): State<AuthState>) -> Json<Value> {
    let roles: BTreeMap<&str, Vec<&str>> = Role::ALL.iter().map(|r| (r.as_str(), r.perms().iter().map(|p| p.as_str()).collect())).collect();
    Json(json!({
        "routes": POLICY.iter().map(|(m, r, p)| json!({"method": m, "route": r, "permission": p.as_str()})).collect::<Vec<_>>(),
        "roles": roles,
        "anonymous": if auth.opts.anonymous_read { ANONYMOUS_READ.iter().map(|p| p.as_str()).collect::<Vec<_>>() } else { vec![] },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `.route("…", …)` in the server's sources has a policy entry for each of its
    /// methods (the end-to-end matrix in tests/auth.rs checks the answers).
    #[test]
    fn every_route_in_the_sources_is_in_the_policy() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut missing = vec![];
        let mut n = 0;
        for (route, methods) in source_routes(&dir) {
            for m in methods {
                n += 1;
                if !matches!(lookup(&Method::from_bytes(m.as_bytes()).unwrap(), &route), Lookup::Perm(_)) {
                    missing.push(format!("{m} {route}"));
                }
            }
        }
        assert!(n >= 40, "only {n} routes found in the sources");
        assert!(missing.is_empty(), "routes without an access policy: {missing:?}");
    }

    /// `(pattern, methods)` of every `.route("PATTERN", get(…).post(…))` under `dir`.
    pub fn source_routes(dir: &std::path::Path) -> Vec<(String, Vec<String>)> {
        let mut out = vec![];
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&p).unwrap();
                    let mut rest = text.as_str();
                    while let Some(i) = rest.find(".route(\"") {
                        rest = &rest[i + 8..];
                        let Some(end) = rest.find('"') else { break };
                        let pattern = rest[..end].to_string();
                        // the method router: up to the matching ')'
                        let mut depth = 1;
                        let mut j = end;
                        for (k, c) in rest[end..].char_indices() {
                            match c {
                                '(' => depth += 1,
                                ')' => {
                                    depth -= 1;
                                    if depth == 0 {
                                        j = end + k;
                                        break;
                                    }
                                }
                                _ => {}
                            }
                        }
                        let mr = &rest[end..j];
                        let mut methods = vec![];
                        for (word, m) in [("get(", "GET"), ("post(", "POST"), ("put(", "PUT"), ("delete(", "DELETE"), ("patch(", "PATCH"), ("any(", "GET")] {
                            if mr.contains(word) && !methods.contains(&m.to_string()) {
                                methods.push(m.to_string());
                            }
                        }
                        if pattern.starts_with('/') {
                            out.push((pattern, methods));
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn targets_and_lookups() {
        assert_eq!(route_target("/api/events/{id}/assign", "/api/events/42/assign").as_deref(), Some("42"));
        assert_eq!(route_target("/api/sta/v1.1/{*path}", "/api/sta/v1.1/Things(1)/Datastreams").as_deref(), Some("Things(1)/Datastreams"));
        assert_eq!(route_target("/api/events", "/api/events"), None);
        assert!(matches!(lookup(&Method::HEAD, "/api/model"), Lookup::Perm(Perm::ModelRead)));
        assert!(matches!(lookup(&Method::DELETE, "/api/events"), Lookup::OtherMethod));
        assert!(matches!(lookup(&Method::GET, "/api/nowhere"), Lookup::Missing));
        // every role's permissions are distinct and admin has them all
        for r in Role::ALL {
            let mut p = r.perms().to_vec();
            p.sort();
            p.dedup();
            assert_eq!(p.len(), r.perms().len(), "{r:?}");
        }
        assert_eq!(Role::Admin.perms().len(), Perm::ALL.len());
    }
}

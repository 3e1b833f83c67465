//! What the server serves, and how it is swapped for a rebuilt model without a mixed answer.
//!
//! Everything read from one model build (manifest, model, spatial index, tile archives) is loaded
//! from the build's *canonical* directory — `--model DIR` resolved through its symlink to the
//! immutable `.<name>.builds/<build_id>/` — into one [`Build`]. The state holds the current build
//! in an [`ArcSwap`]; the request middleware takes ONE snapshot (`Arc<Build>`) per request and
//! hands it to the handler as an extension, so a handler never sees two builds, and the response
//! carries that snapshot's `X-Build-Id`. A watcher polls the symlink every 500 ms and SIGHUP forces
//! a reload; a reload that fails keeps the old build serving and logs the error.

use crate::glyphs::Fonts;
use anyhow::{bail, Context, Result};
use arc_swap::ArcSwap;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use scenes::store::LoadedModel;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tiles::pmtiles::Reader;

/// One tile archive ready to serve.
pub struct Tileset {
    pub name: String,
    pub path: PathBuf,
    pub reader: Reader,
}

impl Tileset {
    /// Maps the archive (read-only) and parses its header and directories once.
    pub fn open(name: &str, path: &Path) -> Result<Tileset> {
        let f = std::fs::File::open(path).with_context(|| format!("cannot open tile archive {}", path.display()))?;
        // SAFETY: archives live in immutable build directories; a build is replaced by a new
        // directory and deleted, never rewritten in place, and deleting a mapped file keeps the
        // inode alive on Unix, so the mapping does not change under us.
        let map = unsafe { memmap2::Mmap::map(&f) }.with_context(|| format!("cannot map {}", path.display()))?;
        let reader = Reader::from_bytes(Bytes::from_owner(map)).with_context(|| format!("tile archive {}", path.display()))?;
        Ok(Tileset { name: name.to_string(), path: path.to_path_buf(), reader })
    }
}

/// Everything of one model build.
pub struct Build {
    /// The manifest's `build_id` (`legacy-<built_at_unix>` for a model built before versioning).
    pub id: String,
    /// `id` as a header value (`X-Build-Id`), made once.
    pub id_header: Option<HeaderValue>,
    /// The canonical (symlink-free) build directory everything was read from.
    pub dir: PathBuf,
    pub loaded: LoadedModel,
    /// Tilesets by name: the build's `tiles/*.pmtiles` plus the `--tileset` archives.
    pub tilesets: BTreeMap<String, Arc<Tileset>>,
    /// The model's road graph for dispatch (`scenes::routing`), built once per build; `None`
    /// when the model has no routable roads (recommendation then falls back to straight line).
    pub roads: Option<Arc<scenes::routing::RoadGraph>>,
}

/// Loads a build from `model` (resolved once to its canonical directory).
pub fn load_build(model: &Path, extra: &[Arc<Tileset>]) -> Result<Build> {
    let dir = std::fs::canonicalize(model).with_context(|| format!("model directory {}", model.display()))?;
    let loaded = scenes::store::load(&dir)?;
    let id = match loaded.manifest.get("build_id").and_then(|v| v.as_str()) {
        Some(s) if !s.is_empty() => s.to_string(),
        _ => format!("legacy-{}", loaded.manifest.get("built_at_unix").and_then(|v| v.as_u64()).unwrap_or(0)),
    };
    let mut tilesets = BTreeMap::new();
    let tdir = dir.join("tiles");
    if tdir.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&tdir)
            .with_context(|| format!("cannot list {}", tdir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "pmtiles"))
            .collect();
        files.sort();
        for p in files {
            let name = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            tilesets.insert(name.clone(), Arc::new(Tileset::open(&name, &p)?));
        }
    }
    for t in extra {
        if tilesets.insert(t.name.clone(), t.clone()).is_some() {
            tracing::warn!(tileset = %t.name, file = %t.path.display(), "--tileset overrides the model's tileset of the same name");
        }
    }
    let id_header = HeaderValue::from_str(&id).ok();
    let roads = match scenes::routing::RoadGraph::from_model(&loaded.model) {
        Ok((g, report)) => {
            tracing::info!(build = %id, nodes = report.nodes, edges = report.edges, main_component = report.main_component_fraction, "road graph for dispatch");
            Some(Arc::new(g))
        }
        Err(e) => {
            tracing::warn!(build = %id, "no road graph for dispatch ({e}); recommendations use straight-line distance");
            None
        }
    };
    Ok(Build { id, id_header, dir, loaded, tilesets, roads })
}

/// Shared server state.
pub struct Shared {
    pub current: ArcSwap<Build>,
    pub model_path: PathBuf,
    pub extra: Vec<Arc<Tileset>>,
    /// `--public-url` (no trailing slash); else URLs are built from the request's Host.
    pub public_url: Option<String>,
    pub fonts: Fonts,
    reload_lock: tokio::sync::Mutex<Option<PathBuf>>,
}

pub type AppState = Arc<Shared>;

impl Shared {
    pub fn new(build: Build, model_path: PathBuf, extra: Vec<Arc<Tileset>>, public_url: Option<String>, fonts: Fonts) -> AppState {
        Arc::new(Shared {
            current: ArcSwap::from_pointee(build),
            model_path,
            extra,
            public_url: public_url.map(|u| u.trim_end_matches('/').to_string()),
            fonts,
            reload_lock: tokio::sync::Mutex::new(None),
        })
    }

    /// Reloads the model. Without `force`, only when `--model` now resolves to another directory
    /// than the current build's and than a target that failed to load before. Returns whether a
    /// new build is now served.
    pub async fn reload(self: &Arc<Self>, force: bool) -> bool {
        let mut failed = self.reload_lock.lock().await;
        let target = std::fs::canonicalize(&self.model_path).ok();
        if !force {
            match &target {
                Some(t) if *t != self.current.load().dir && failed.as_ref() != Some(t) => {}
                _ => return false,
            }
        }
        let (path, extra) = (self.model_path.clone(), self.extra.clone());
        let t0 = std::time::Instant::now();
        match tokio::task::spawn_blocking(move || load_build(&path, &extra)).await {
            Ok(Ok(b)) => {
                let old = self.current.load();
                tracing::info!(
                    from = %old.id, to = %b.id, dir = %b.dir.display(),
                    buildings = b.loaded.model.buildings.len(), tilesets = b.tilesets.len(),
                    secs = format!("{:.2}", t0.elapsed().as_secs_f64()),
                    "model reloaded; new requests see the new build"
                );
                drop(old);
                self.current.store(Arc::new(b));
                *failed = None;
                true
            }
            Ok(Err(e)) => {
                tracing::error!(model = %self.model_path.display(), "reload failed, still serving build {}: {e:#}", self.current.load().id);
                *failed = target;
                false
            }
            Err(e) => {
                tracing::error!("reload task failed, still serving the old build: {e}");
                *failed = target;
                false
            }
        }
    }
}

/// Polls `--model` every 500 ms and reloads when its target changed; reloads on SIGHUP.
pub fn spawn_watchers(state: AppState) {
    let s = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            s.reload(false).await;
        }
    });
    tokio::spawn(async move {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
            tracing::warn!("cannot install a SIGHUP handler; reload only by watching --model");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the model");
            state.reload(true).await;
        }
    });
}

pub const EXPOSED: &str = "ETag, X-Build-Id, Content-Encoding, Content-Length";

/// Per request: one snapshot of the current build (an `Extension<Arc<Build>>` for the handler),
/// `X-Build-Id` of that snapshot on the response, CORS headers, and OPTIONS preflights.
pub async fn snapshot_mw(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    if req.method() == Method::OPTIONS {
        let mut r = StatusCode::NO_CONTENT.into_response();
        let h = r.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, POST, OPTIONS"));
        let allow = req
            .headers()
            .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
            .cloned()
            .unwrap_or_else(|| HeaderValue::from_static("*"));
        h.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allow);
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        return r;
    }
    let build = s.current.load_full();
    let id = build.id_header.clone();
    req.extensions_mut().insert(build);
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    if let Some(id) = id {
        h.insert("x-build-id", id);
    }
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSED));
    r
}

/// `--tileset NAME=FILE` → (name, path).
pub fn parse_tileset_arg(s: &str) -> Result<(String, PathBuf)> {
    let Some((n, p)) = s.split_once('=') else { bail!("--tileset {s}: expected NAME=FILE.pmtiles") };
    if n.is_empty() || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        bail!("--tileset {s}: the name must be non-empty and use only A-Z a-z 0-9 - _");
    }
    Ok((n.to_string(), PathBuf::from(p)))
}

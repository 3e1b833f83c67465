//! The loader: a fixed pool of worker threads that fetch tile contents (HTTP(S) through ureq, or
//! local files) and decode them, so neither I/O nor decoding ever runs on the render loop. The
//! render loop submits jobs and polls results through channels; the number of jobs in flight is
//! bounded by the caller (`max_in_flight`).

use crate::decode::{decode, maybe_gunzip, Decoded};
use crate::tileset::ContentKind;
use bevy::math::DMat4;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Job {
    pub node: usize,
    pub url: String,
    pub kind: ContentKind,
    pub world: DMat4,
    pub gltf_up_z: bool,
}

pub enum Payload {
    Content(Decoded),
    /// an external tileset's JSON
    Tileset(Vec<u8>),
}

pub struct Done {
    pub node: usize,
    pub url: String,
    pub result: Result<Payload, String>,
    pub fetch_ms: f64,
    pub decode_ms: f64,
}

pub struct Loader {
    jobs: Sender<Job>,
    done: Mutex<Receiver<Done>>,
}

static TOKEN: std::sync::RwLock<Option<String>> = std::sync::RwLock::new(None);

/// Sets the bearer token sent with every HTTP request of this process (`--token`,
/// `CITYTWIN_TOKEN`, or the session key of a `--user` login, replaced when it is renewed).
pub fn set_token(t: String) {
    *TOKEN.write().unwrap_or_else(|e| e.into_inner()) = Some(t);
}

/// The current bearer token, if one was set (read at each request: a renewed session key is
/// used from the next request on).
pub fn token() -> Option<String> {
    TOKEN.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Reads a URL or a local path (`file://…` or a plain path) completely; gzip bodies are inflated.
/// HTTP requests carry `Authorization: Bearer` when a token is set.
pub fn fetch(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>, String> {
    fetch_with(agent, url, token().as_deref())
}

/// [`fetch`] with an explicit token.
pub fn fetch_with(agent: &ureq::Agent, url: &str, token: Option<&str>) -> Result<Vec<u8>, String> {
    let body = if url.starts_with("http://") || url.starts_with("https://") {
        let mut rq = agent.get(url).header("Accept-Encoding", "gzip");
        if let Some(t) = token {
            rq = rq.header("Authorization", &format!("Bearer {t}"));
        }
        let mut r = rq.call().map_err(|e| format!("GET {url}: {e}"))?;
        let status = r.status().as_u16();
        if status != 200 {
            return Err(format!("GET {url}: HTTP {status}"));
        }
        r.body_mut().with_config().limit(512 << 20).read_to_vec().map_err(|e| format!("GET {url}: reading the body: {e}"))?
    } else {
        let path = url.strip_prefix("file://").unwrap_or(url);
        std::fs::read(path).map_err(|e| format!("{path}: {e}"))?
    };
    maybe_gunzip(body).map_err(|e| format!("{url}: {e}"))
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

impl Loader {
    pub fn new(threads: usize) -> Loader {
        let (jtx, jrx) = channel::<Job>();
        let (dtx, drx) = channel::<Done>();
        let jrx = Arc::new(Mutex::new(jrx));
        for i in 0..threads.max(1) {
            let jrx = jrx.clone();
            let dtx = dtx.clone();
            std::thread::Builder::new()
                .name(format!("tile-loader-{i}"))
                .spawn(move || {
                    let agent = agent();
                    loop {
                        let job = match jrx.lock() {
                            Ok(rx) => match rx.recv() {
                                Ok(j) => j,
                                Err(_) => return,
                            },
                            Err(_) => return,
                        };
                        let t0 = Instant::now();
                        let bytes = fetch(&agent, &job.url);
                        let fetch_ms = t0.elapsed().as_secs_f64() * 1e3;
                        let t1 = Instant::now();
                        let result = bytes.and_then(|b| match job.kind {
                            ContentKind::Tileset => Ok(Payload::Tileset(b)),
                            kind => {
                                // a panic in a decoder must not take the loader down
                                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode(&b, kind, &job.world, job.gltf_up_z)))
                                    .unwrap_or_else(|_| Err("decoder panicked".into()))
                                    .map(Payload::Content)
                                    .map_err(|e| format!("{}: {e}", job.url))
                            }
                        });
                        let decode_ms = t1.elapsed().as_secs_f64() * 1e3;
                        if dtx.send(Done { node: job.node, url: job.url, result, fetch_ms, decode_ms }).is_err() {
                            return;
                        }
                    }
                })
                .expect("spawn loader thread");
        }
        Loader { jobs: jtx, done: Mutex::new(drx) }
    }

    pub fn submit(&self, job: Job) {
        let _ = self.jobs.send(job);
    }

    /// Up to `max` finished jobs, without blocking.
    pub fn poll(&self, max: usize) -> Vec<Done> {
        let mut out = vec![];
        if let Ok(rx) = self.done.lock() {
            while out.len() < max {
                match rx.try_recv() {
                    Ok(d) => out.push(d),
                    Err(_) => break,
                }
            }
        }
        out
    }
}

/// Retry delay after the n-th failure (1-based): 0.5 s, 1 s, 2 s, … capped at 30 s.
pub fn backoff(failures: u32) -> Duration {
    let s = 0.5 * 2f64.powi(failures.saturating_sub(1).min(10) as i32);
    Duration::from_secs_f64(s.min(30.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(20), Duration::from_secs(30));
    }

    #[test]
    fn missing_file_is_an_error_naming_it_and_workers_survive() {
        let l = Loader::new(2);
        for n in 0..3 {
            l.submit(Job { node: n, url: format!("/nonexistent/dir/t{n}.glb"), kind: ContentKind::Glb, world: DMat4::IDENTITY, gltf_up_z: false });
        }
        let t0 = Instant::now();
        let mut got = vec![];
        while got.len() < 3 && t0.elapsed() < Duration::from_secs(10) {
            got.extend(l.poll(10));
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(got.len(), 3);
        for d in got {
            let e = d.result.err().unwrap();
            assert!(e.contains(&format!("t{}.glb", d.node)), "{e}");
        }
    }
}

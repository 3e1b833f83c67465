//! What the viewer's end-to-end tests share: scratch directories, the two binaries, PNG reading
//! (with the `image` crate through bevy_image, not with the viewer's code) and an independent
//! camera model (ECEF, the viewer's 60° vertical field of view) that projects lon/lat/height to
//! pixels the way the tests expect markers, buildings and districts to appear.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A scratch directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let p = std::env::temp_dir().join(format!("viewer-test-{tag}-{}-{:x}", std::process::id(), t & 0xffff_ffff));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn viewer() -> &'static str {
    env!("CARGO_BIN_EXE_viewer")
}

/// The twin-server binary next to the viewer's (the workspace build puts both there).
pub fn twin_server() -> PathBuf {
    let p = Path::new(viewer()).parent().unwrap().join("twin-server");
    assert!(p.exists(), "{} not found: build it first (cargo build -p twin-server)", p.display());
    p
}

/// A `twin-server serve` killed on drop.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts `twin-server serve ARGS… --model MODEL --addr 127.0.0.1:PORT` and waits for /healthz.
pub fn start_server(args: &[&str], model: &Path, port: u16) -> Server {
    let child = Command::new(twin_server())
        .arg("serve")
        .args(args)
        .arg("--model")
        .arg(model)
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn twin-server");
    let s = Server { child, base: format!("http://127.0.0.1:{port}") };
    let t0 = Instant::now();
    while ureq::get(&format!("{}/healthz", s.base)).call().is_err() {
        assert!(t0.elapsed() < Duration::from_secs(120), "server did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    s
}

/// The fixture cities' centre; `at(e, n)`: metres east/north of it → lon/lat (local flat metric,
/// good to a few cm over these distances; the tests project the same lon/lat they post).
pub const C: (f64, f64) = (123.43, 41.80);
pub fn at(e: f64, n: f64) -> (f64, f64) {
    (C.0 + e / (111_320.0 * C.1.to_radians().cos()), C.1 + n / 110_950.0)
}

/// A screenshot as RGB rows.
pub struct Png {
    pub w: usize,
    pub h: usize,
    pub rgb: Vec<u8>,
}

impl Png {
    pub fn read(p: &Path) -> Png {
        use bevy::asset::RenderAssetUsages;
        use bevy::image::{CompressedImageFormats, Image, ImageSampler, ImageType};
        let bytes = std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let img = Image::from_buffer(&bytes, ImageType::Extension("png"), CompressedImageFormats::NONE, true, ImageSampler::Default, RenderAssetUsages::all())
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let (w, h) = (img.width() as usize, img.height() as usize);
        let data = img.data.expect("pixels");
        assert_eq!(data.len(), w * h * 4, "RGBA8 expected");
        let rgb = data.chunks(4).flat_map(|c| [c[0], c[1], c[2]]).collect();
        Png { w, h, rgb }
    }
    pub fn px(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.w + x) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }
    /// The pixel nearest to a projected position.
    pub fn at(&self, x: f64, y: f64) -> [u8; 3] {
        self.px(x.round() as usize, y.round() as usize)
    }
    /// How many of the 3 × 3 pixels around (x, y) are within `tol` of `c`.
    pub fn patch(&self, x: f64, y: f64, c: [u8; 3], tol: i32) -> usize {
        let (x, y) = (x.round() as i64, y.round() as i64);
        (-1..=1)
            .flat_map(|dy| (-1..=1).map(move |dx| (x + dx, y + dy)))
            .filter(|&(a, b)| a >= 0 && b >= 0 && (a as usize) < self.w && (b as usize) < self.h)
            .filter(|&(a, b)| near(self.px(a as usize, b as usize), c, tol))
            .count()
    }
}

pub fn near(a: [u8; 3], b: [u8; 3], tol: i32) -> bool {
    a.iter().zip(b.iter()).all(|(x, y)| (*x as i32 - *y as i32).abs() <= tol)
}

/// `[r, g, b]` of a JSON array (the summary's colours).
pub fn rgb_of(v: &Value) -> [u8; 3] {
    let a = v.as_array().unwrap_or_else(|| panic!("not a colour: {v}"));
    [a[0].as_u64().unwrap() as u8, a[1].as_u64().unwrap() as u8, a[2].as_u64().unwrap() as u8]
}

/// WGS-84 geodetic → ECEF metres.
pub fn ecef(lon: f64, lat: f64, h: f64) -> [f64; 3] {
    let a = 6378137.0;
    let f = 1.0 / 298.257223563;
    let e2 = f * (2.0 - f);
    let (lo, la) = (lon.to_radians(), lat.to_radians());
    let n = a / (1.0 - e2 * la.sin().powi(2)).sqrt();
    [(n + h) * la.cos() * lo.cos(), (n + h) * la.cos() * lo.sin(), (n * (1.0 - e2) + h) * la.sin()]
}
pub fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
pub fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}
pub fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}
pub fn comb(terms: &[(f64, [f64; 3])]) -> [f64; 3] {
    let mut o = [0.0; 3];
    for (k, v) in terms {
        for i in 0..3 {
            o[i] += k * v[i];
        }
    }
    o
}

/// A pinhole camera as the viewer's `--at lon,lat,alt,heading,pitch` sets it (60° vertical field
/// of view; image up is the heading when looking straight down).
pub struct Cam {
    c: [f64; 3],
    f: [f64; 3],
    r: [f64; 3],
    u: [f64; 3],
    w: f64,
    h: f64,
    t: f64,
}

impl Cam {
    pub fn new(lon: f64, lat: f64, alt: f64, heading: f64, pitch: f64, w: f64, h: f64) -> Cam {
        let (lo, la) = (lon.to_radians(), lat.to_radians());
        let e = [-lo.sin(), lo.cos(), 0.0];
        let n = [-la.sin() * lo.cos(), -la.sin() * lo.sin(), la.cos()];
        let up = [la.cos() * lo.cos(), la.cos() * lo.sin(), la.sin()];
        let (hd, p) = (heading.to_radians(), pitch.to_radians());
        let f = comb(&[(p.cos() * hd.sin(), e), (p.cos() * hd.cos(), n), (p.sin(), up)]);
        let r = comb(&[(hd.cos(), e), (-hd.sin(), n)]);
        let u = cross(r, f);
        Cam { c: ecef(lon, lat, alt), f, r, u, w, h, t: 30f64.to_radians().tan() }
    }
    /// Pixel (x right, y down) of a geodetic point, None behind the camera.
    pub fn project_opt(&self, lon: f64, lat: f64, hgt: f64) -> Option<(f64, f64)> {
        let d = sub(ecef(lon, lat, hgt), self.c);
        let z = dot(d, self.f);
        if z <= 1.0 {
            return None;
        }
        let x = dot(d, self.r) / (z * self.t * self.w / self.h);
        let y = dot(d, self.u) / (z * self.t);
        Some(((x + 1.0) / 2.0 * self.w, (1.0 - y) / 2.0 * self.h))
    }
    /// [`Cam::project_opt`] for points the test knows are in front of the camera.
    pub fn project(&self, lon: f64, lat: f64, hgt: f64) -> (f64, f64) {
        self.project_opt(lon, lat, hgt).expect("behind the camera")
    }
}

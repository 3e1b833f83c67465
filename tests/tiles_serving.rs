//! Tile routes, TileJSON, styles and glyphs through the real server.
//!
//! A small PMTiles archive is written with `tiles::pmtiles::Writer` (MVT tiles from
//! `tiles::mvt`, gzipped) and served with `--tileset test=FILE` beside a tiny model; every answer
//! is compared with the archive read back by `tiles::pmtiles::Reader` or checked by hand-computed
//! values; the styles are checked by MapLibre's own `gl-style-validate`.

mod common;
use common::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tiles::mvt::{Geometry, LayerBuilder, Value};
use tiles::pmtiles::{Reader, Writer, WriterOptions};

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b).read_to_end(&mut out).unwrap();
    out
}

/// Tiles 12/3452/1523, 13/6904/3046 and 13/6905/3046 (all around 市府广场), one building each.
fn write_archive(path: &Path) -> Vec<(u8, u32, u32)> {
    let tiles = vec![(12u8, 3452u32, 1523u32), (13, 6904, 3046), (13, 6905, 3046)];
    let mut w = Writer::new(WriterOptions {
        bounds: [123.39, 41.77, 123.48, 41.84],
        center: [123.4315, 41.8057],
        center_zoom: 13,
        ..Default::default()
    });
    for (i, &(z, x, y)) in tiles.iter().enumerate() {
        let mut l = LayerBuilder::new("buildings", 4096);
        let sq = vec![vec![[100, 100], [100, 900 + i as i64], [900, 900], [900, 100]]];
        assert!(l.add_feature(Some(i as u64 + 1), &[("height", Value::Double(30.0 + i as f64)), ("use", Value::String("office".into()))], &Geometry::Polygons(vec![sq])));
        w.add_tile(z, x, y, gzip(&tiles::mvt::encode_tile(&[l]))).unwrap();
    }
    let meta = serde_json::json!({
        "name": "test", "description": "three tiles", "attribution": "test data", "version": "2.0.0",
        "vector_layers": [{"id": "buildings", "description": "b", "minzoom": 12, "maxzoom": 13,
                           "fields": {"height": "Number", "use": "String"}}],
    });
    w.finish(&meta, path).unwrap();
    tiles
}

/// A tiny model (one GeoJSON building) so `serve` has something to load.
fn tiny_model(dir: &Path) -> PathBuf {
    let src = dir.join("one.geojson");
    std::fs::write(
        &src,
        r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"building":"yes","height":12},
"geometry":{"type":"Polygon","coordinates":[[[123.431,41.805],[123.432,41.805],[123.432,41.806],[123.431,41.806],[123.431,41.805]]]}}]}"#,
    )
    .unwrap();
    let out = dir.join("model");
    build(&out, &["--source", src.to_str().unwrap()]);
    out
}

fn serve_with(model: &Path, extra: &[&str]) -> Server {
    let port = free_port();
    let child = Command::new(bin())
        .args(["serve", "--model"])
        .arg(model)
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .args(extra)
        .args(auth_args(extra, true))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn server");
    let s = Server { child, base: format!("http://127.0.0.1:{port}") };
    let t0 = Instant::now();
    while ureq::get(&format!("{}/healthz", s.base)).call().is_err() {
        assert!(t0.elapsed() < Duration::from_secs(60), "server did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    s
}

struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn h(&self, k: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str())
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

fn req(method: &str, url: &str, headers: &[(&str, &str)]) -> Resp {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut r = match method {
        "GET" => {
            let mut b = agent.get(url);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.call().expect("request")
        }
        _ => {
            let mut b = agent.options(url);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.call().expect("request")
        }
    };
    let status = r.status().as_u16();
    let headers = r.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let body = r.body_mut().with_config().limit(64 << 20).read_to_vec().unwrap_or_default();
    Resp { status, headers, body }
}

#[test]
fn tiles_tilejson_and_http_semantics() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let archive = tmp.path().join("test.pmtiles");
    let tiles = write_archive(&archive);
    let reader = Reader::open(&archive).unwrap();
    let spec = format!("test={}", archive.display());
    let s = serve_with(&model, &["--tileset", &spec]);

    // The list and TileJSON.
    let l = req("GET", &format!("{}/tiles", s.base), &[]);
    assert_eq!(l.status, 200);
    let sets = l.json()["tilesets"].as_array().unwrap().clone();
    let t = sets.iter().find(|t| t["name"] == "test").expect("test tileset listed");
    assert_eq!(t["tilejson"], format!("{}/tiles/test.json", s.base));
    assert_eq!((t["minzoom"].as_u64(), t["maxzoom"].as_u64(), t["tiles"].as_u64()), (Some(12), Some(13), Some(3)));
    let tj = req("GET", &format!("{}/tiles/test.json", s.base), &[]);
    assert_eq!(tj.status, 200);
    let tj = tj.json();
    assert_eq!(tj["tilejson"], "3.0.0");
    assert_eq!(tj["tiles"][0], format!("{}/tiles/test/{{z}}/{{x}}/{{y}}.mvt", s.base));
    assert_eq!((tj["minzoom"].as_u64(), tj["maxzoom"].as_u64()), (Some(12), Some(13)));
    assert_eq!(tj["vector_layers"][0]["id"], "buildings");
    assert_eq!(tj["vector_layers"][0]["fields"]["height"], "Number");
    assert_eq!((tj["name"].as_str(), tj["attribution"].as_str(), tj["version"].as_str()), (Some("test"), Some("test data"), Some("2.0.0")));
    let b: Vec<f64> = tj["bounds"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!((b[0] - 123.39).abs() < 1e-6 && (b[3] - 41.84).abs() < 1e-6, "{b:?}");
    assert_eq!(tj["center"][2], 13);
    // --public-url is not given: a different Host gives different absolute URLs.
    let tj2 = req("GET", &format!("{}/tiles/test.json", s.base), &[("Host", "tiles.example.org:8443")]).json();
    assert_eq!(tj2["tiles"][0], "http://tiles.example.org:8443/tiles/test/{z}/{x}/{y}.mvt");

    // Every tile: gzip as stored when accepted, decompressed otherwise; both decode.
    for &(z, x, y) in &tiles {
        let stored = reader.get(z, x, y).unwrap().unwrap();
        let url = format!("{}/tiles/test/{z}/{x}/{y}.mvt", s.base);
        let g = req("GET", &url, &[("Accept-Encoding", "gzip, br")]);
        assert_eq!(g.status, 200);
        assert_eq!(g.body, stored.to_vec(), "{z}/{x}/{y}: body is the stored gzip");
        assert_eq!(g.h("content-encoding"), Some("gzip"));
        assert_eq!(g.h("content-type"), Some("application/vnd.mapbox-vector-tile"));
        assert_eq!(g.h("vary"), Some("Accept-Encoding"));
        assert_eq!(g.h("access-control-allow-origin"), Some("*"));
        assert!(g.h("access-control-expose-headers").unwrap().contains("ETag"));
        assert!(g.h("cache-control").unwrap().contains("must-revalidate"));
        let etag = g.h("etag").expect("etag").to_string();
        assert!(etag.starts_with('"') && !etag.starts_with("W/"), "strong ETag: {etag}");
        let plain = req("GET", &url.replace(".mvt", ".pbf"), &[]);
        assert_eq!(plain.status, 200);
        assert_eq!(plain.h("content-encoding"), None);
        assert_eq!(plain.body, gunzip(&stored));
        assert_ne!(plain.h("etag").unwrap(), etag, "each representation has its own strong ETag");
        let t = tiles::mvt::decode(&plain.body).unwrap();
        assert_eq!(t.layers[0].name, "buildings");
        assert_eq!(t.layers[0].features.len(), 1);
        // Revalidation.
        let nm = req("GET", &url, &[("Accept-Encoding", "gzip"), ("If-None-Match", &etag)]);
        assert_eq!(nm.status, 304);
        assert!(nm.body.is_empty());
        assert_eq!(nm.h("etag"), Some(etag.as_str()));
        let other = req("GET", &url, &[("Accept-Encoding", "gzip"), ("If-None-Match", "\"0000\"")]);
        assert_eq!(other.status, 200);
    }
    // Different tiles, different ETags.
    let e1 = req("GET", &format!("{}/tiles/test/13/6904/3046.mvt", s.base), &[]).h("etag").unwrap().to_string();
    let e2 = req("GET", &format!("{}/tiles/test/13/6905/3046.mvt", s.base), &[]).h("etag").unwrap().to_string();
    assert_ne!(e1, e2);

    // 204 for valid addresses without a tile (inside and outside the zoom range).
    for p in ["13/0/0.mvt", "12/3452/1524.mvt", "5/1/1.mvt", "20/1/1.mvt"] {
        assert_eq!(req("GET", &format!("{}/tiles/test/{p}", s.base), &[]).status, 204, "{p}");
    }
    // 400 naming the bad part.
    for (p, part) in [
        ("31/0/0.mvt", "z"),
        ("abc/0/0.mvt", "z"),
        ("12/4096/0.mvt", "x"),
        ("12/-1/0.mvt", "x"),
        ("12/0/4096.mvt", "y"),
        ("12/0/y.mvt", "y"),
        ("12/0/0.png", "extension"),
        ("12/0/0", "extension"),
    ] {
        let r = req("GET", &format!("{}/tiles/test/{p}", s.base), &[]);
        assert_eq!(r.status, 400, "{p}");
        assert_eq!(r.json()["part"], part, "{p}: {}", String::from_utf8_lossy(&r.body));
    }
    // 404 for an unknown tileset (names the available ones).
    let r = req("GET", &format!("{}/tiles/nope/12/0/0.mvt", s.base), &[]);
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("test"));
    assert_eq!(req("GET", &format!("{}/tiles/nope.json", s.base), &[]).status, 404);
    // CORS preflight.
    let o = req(
        "OPTIONS",
        &format!("{}/tiles/test/12/3452/1523.mvt", s.base),
        &[("Origin", "http://example.org"), ("Access-Control-Request-Method", "GET"), ("Access-Control-Request-Headers", "if-none-match")],
    );
    assert_eq!(o.status, 204);
    assert_eq!(o.h("access-control-allow-origin"), Some("*"));
    assert!(o.h("access-control-allow-methods").unwrap().contains("GET"));
    assert_eq!(o.h("access-control-allow-headers"), Some("if-none-match"));
    // Every answer names its build.
    let id = manifest(&model)["build_id"].as_str().unwrap().to_string();
    assert!(!id.is_empty());
    assert_eq!(req("GET", &format!("{}/api/model", s.base), &[]).h("x-build-id"), Some(id.as_str()));
}

fn style_validate(path: &Path) -> (bool, String) {
    let v = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/js/node_modules/.bin/gl-style-validate");
    assert!(v.exists(), "gl-style-validate missing: run scripts/js-deps.sh");
    let o = Command::new(v).arg(path).output().unwrap();
    (o.status.success(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

#[test]
fn styles_pass_gl_style_validate() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let archive = tmp.path().join("test.pmtiles");
    write_archive(&archive);
    let spec = format!("test={}", archive.display());
    let s = serve_with(&model, &["--tileset", &spec]);
    // The validator itself rejects a broken style (so a pass means something).
    let bad = tmp.path().join("bad.json");
    std::fs::write(&bad, r#"{"version":8,"sources":{},"layers":[{"id":"x","type":"fill-extrusion","source":"nope"}]}"#).unwrap();
    assert!(!style_validate(&bad).0);
    for name in ["command", "planning"] {
        for lang in ["zh", "en"] {
            let r = req("GET", &format!("{}/styles/{name}.json?lang={lang}&tileset=test", s.base), &[]);
            assert_eq!(r.status, 200, "{name} {lang}");
            let v = r.json();
            let f = tmp.path().join(format!("{name}-{lang}.json"));
            std::fs::write(&f, &r.body).unwrap();
            let (ok, out) = style_validate(&f);
            assert!(ok, "{name}?lang={lang} fails gl-style-validate:\n{out}");
            assert_eq!(v["sources"]["citytwin"]["url"], format!("{}/tiles/test.json", s.base));
            // An ingested model's style opens at its tileset's centre.
            assert_eq!((v["center"][0].as_f64(), v["center"][1].as_f64(), v["zoom"].as_f64()), (Some(123.4315), Some(41.8057), Some(13.0)));
            assert_eq!(v["glyphs"], format!("{}/fonts/{{fontstack}}/{{range}}.pbf", s.base));
            let layers = v["layers"].as_array().unwrap();
            let used: std::collections::BTreeSet<&str> = layers.iter().filter_map(|l| l["source-layer"].as_str()).collect();
            for sl in ["districts", "streets", "water", "landuse", "roads", "buildings", "pois", "labels"] {
                assert!(used.contains(sl), "{name}: no layer for source-layer {sl}");
            }
            let labels = layers.iter().find(|l| l["id"] == "labels").unwrap();
            let first = if lang == "en" { "name_en" } else { "name" };
            assert_eq!(labels["layout"]["text-field"][1], serde_json::json!(["get", first]), "{name} {lang}");
            let b = layers.iter().find(|l| l["id"] == "buildings").unwrap();
            assert_eq!(b["type"], if name == "command" { "fill-extrusion" } else { "fill" });
        }
    }
    // Without ?tileset the style uses the model's own tileset (named after the model).
    let d = req("GET", &format!("{}/styles/planning.json", s.base), &[]).json();
    assert_eq!(d["sources"]["citytwin"]["url"], format!("{}/tiles/one.json", s.base));
    assert_eq!(req("GET", &format!("{}/styles/planning.json?tileset=nope", s.base), &[]).status, 404);
    assert_eq!(req("GET", &format!("{}/styles/nope.json", s.base), &[]).status, 404);
    // --public-url sets the base of every absolute URL, whatever the Host.
    let p = serve_with(&model, &["--tileset", &spec, "--public-url", "https://maps.example.org/ct/"]);
    let st = req("GET", &format!("{}/styles/command.json?tileset=test", p.base), &[]).json();
    assert_eq!(st["sources"]["citytwin"]["url"], "https://maps.example.org/ct/tiles/test.json");
    assert_eq!(st["glyphs"], "https://maps.example.org/ct/fonts/{fontstack}/{range}.pbf");
    let tj = req("GET", &format!("{}/tiles/test.json", p.base), &[]).json();
    assert_eq!(tj["tiles"][0], "https://maps.example.org/ct/tiles/test/{z}/{x}/{y}.mvt");
    assert_eq!(req("GET", &format!("{}/styles/command.json?lang=fr", s.base), &[]).status, 400);
}

/// A hand-written reader of the glyphs.proto PBF: (stack name, range, glyphs).
#[derive(Debug, Default, Clone)]
struct G {
    id: u32,
    bitmap: Vec<u8>,
    width: u32,
    height: u32,
    left: i32,
    top: i32,
    advance: u32,
}

fn varint(b: &[u8], p: &mut usize) -> u64 {
    let (mut v, mut s) = (0u64, 0);
    loop {
        let c = b[*p];
        *p += 1;
        v |= ((c & 0x7f) as u64) << s;
        if c < 0x80 {
            return v;
        }
        s += 7;
    }
}

/// Fields of one message: (tag, varint value or bytes).
fn fields(b: &[u8]) -> Vec<(u32, u64, &[u8])> {
    let mut p = 0;
    let mut out = vec![];
    while p < b.len() {
        let k = varint(b, &mut p);
        match k & 7 {
            0 => out.push(((k >> 3) as u32, varint(b, &mut p), &b[0..0])),
            2 => {
                let n = varint(b, &mut p) as usize;
                out.push(((k >> 3) as u32, 0, &b[p..p + n]));
                p += n;
            }
            w => panic!("unexpected wire type {w}"),
        }
    }
    out
}

fn parse_glyphs(b: &[u8]) -> (String, String, Vec<G>) {
    let top = fields(b);
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].0, 1);
    let (mut name, mut range, mut gs) = (String::new(), String::new(), vec![]);
    for (tag, _, bytes) in fields(top[0].2) {
        match tag {
            1 => name = String::from_utf8(bytes.to_vec()).unwrap(),
            2 => range = String::from_utf8(bytes.to_vec()).unwrap(),
            3 => {
                let mut g = G::default();
                let zz = |v: u64| ((v >> 1) as i64 ^ -((v & 1) as i64)) as i32;
                for (t, v, by) in fields(bytes) {
                    match t {
                        1 => g.id = v as u32,
                        2 => g.bitmap = by.to_vec(),
                        3 => g.width = v as u32,
                        4 => g.height = v as u32,
                        5 => g.left = zz(v),
                        6 => g.top = zz(v),
                        7 => g.advance = v as u32,
                        _ => panic!("unknown glyph field {t}"),
                    }
                }
                gs.push(g);
            }
            t => panic!("unknown fontstack field {t}"),
        }
    }
    (name, range, gs)
}

fn px(g: &G, col: i32, row: i32) -> u8 {
    let bw = g.width as i32 + 6;
    g.bitmap[(row * bw + col) as usize]
}

#[test]
fn glyph_ranges_hold_sdf_cjk_glyphs() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny_model(tmp.path());
    let s = serve_with(&model, &["--fonts", "/usr/share/fonts/truetype/dejavu"]);
    let font = "Noto Sans CJK SC Regular";
    let get = |stack: &str, range: &str| req("GET", &format!("{}/fonts/{}/{range}", s.base, stack.replace(' ', "%20")), &[]);

    // 沈 U+6C88 (27784) is in 27648-27903, 阳 U+9633 (38451) in 38400-38655.
    for (cp, range) in [(0x6C88u32, "27648-27903.pbf"), (0x9633, "38400-38655.pbf")] {
        let r = get(font, range);
        assert_eq!(r.status, 200, "{range}");
        assert_eq!(r.h("content-type"), Some("application/x-protobuf"));
        let (name, rg, gs) = parse_glyphs(&r.body);
        assert_eq!(name, font);
        assert_eq!(rg, range.trim_end_matches(".pbf"));
        assert!(gs.len() > 100, "{range}: only {} glyphs", gs.len());
        assert!(gs.iter().all(|g| g.bitmap.len() == ((g.width + 6) * (g.height + 6)) as usize || g.width == 0));
        let g = gs.iter().find(|g| g.id == cp).unwrap_or_else(|| panic!("U+{cp:04X} missing"));
        // A full-width ideograph at 24 px: advance one em, ink about 20 px square, its top a few
        // px below the 28 px ascender line (top = bbox top − ascender is small and negative).
        assert_eq!(g.advance, 24, "{g:?}");
        assert!((16..=24).contains(&g.width) && (16..=24).contains(&g.height), "{}x{}", g.width, g.height);
        assert!((-1..=4).contains(&g.left) && (-10..=0).contains(&g.top), "left {} top {}", g.left, g.top);
        // The bitmap border (3 px outside the ink box) is outside (< 191); some pixels are inside.
        let (bw, bh) = (g.width as i32 + 6, g.height as i32 + 6);
        for (c, rr) in [(0, 0), (bw - 1, 0), (0, bh - 1), (bw - 1, bh - 1), (bw / 2, 0), (0, bh / 2)] {
            assert!(px(g, c, rr) < 191, "border pixel {c},{rr} = {}", px(g, c, rr));
        }
        assert!(g.bitmap.iter().filter(|&&v| v > 191).count() > 40);
    }
    // Known points: the middle of 一 (U+4E00) is ink; the middle of 口 (U+53E3) is its hollow.
    let (_, _, gs) = parse_glyphs(&get(font, "19968-20223.pbf").body);
    let yi = gs.iter().find(|g| g.id == 0x4E00).unwrap();
    let (bw, bh) = (yi.width as i32 + 6, yi.height as i32 + 6);
    assert!(yi.height <= 4 && yi.width >= 18, "一 is a flat stroke: {}x{}", yi.width, yi.height);
    assert!(px(yi, bw / 2, bh / 2) > 191, "centre of 一 = {}", px(yi, bw / 2, bh / 2));
    let (_, _, gs) = parse_glyphs(&get(font, "21248-21503.pbf").body);
    let kou = gs.iter().find(|g| g.id == 0x53E3).unwrap();
    let (bw, bh) = (kou.width as i32 + 6, kou.height as i32 + 6);
    assert!(px(kou, bw / 2, bh / 2) < 191, "centre of 口 = {}", px(kou, bw / 2, bh / 2));
    assert!(px(kou, 4, bh / 2) > 191 || px(kou, 5, bh / 2) > 191, "left stroke of 口");

    // Fallback per glyph: DejaVu first, Noto for what DejaVu lacks.
    let stack = format!("DejaVu Sans Book,{font}");
    let (_, _, latin_mix) = parse_glyphs(&get(&stack, "0-255.pbf").body);
    let (_, _, latin_noto) = parse_glyphs(&get(font, "0-255.pbf").body);
    let a_mix = latin_mix.iter().find(|g| g.id == 'A' as u32).unwrap();
    let a_noto = latin_noto.iter().find(|g| g.id == 'A' as u32).unwrap();
    // DejaVu Sans 'A' advances 1401/2048 em = 16.4 px at 24 px.
    assert_eq!(a_mix.advance, 16);
    assert_ne!(a_noto.bitmap, a_mix.bitmap);
    let (_, _, cjk_mix) = parse_glyphs(&get(&stack, "27648-27903.pbf").body);
    let (_, _, cjk_noto) = parse_glyphs(&get(font, "27648-27903.pbf").body);
    let shen_mix = cjk_mix.iter().find(|g| g.id == 0x6C88).expect("沈 falls back to Noto");
    let shen_noto = cjk_noto.iter().find(|g| g.id == 0x6C88).unwrap();
    assert_eq!(shen_mix.bitmap, shen_noto.bitmap);

    // Errors.
    let r = get("Nope Sans Regular", "0-255.pbf");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].as_str().unwrap().contains("Nope Sans Regular"));
    assert_eq!(get(font, "1-256.pbf").status, 400);
    assert_eq!(get(font, "0-511.pbf").status, 400);
}

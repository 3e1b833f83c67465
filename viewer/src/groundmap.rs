//! The ground map: the server's vector tiles (`/tiles/{name}.json` TileJSON, `/tiles/{name}/{z}/{x}/{y}.mvt`)
//! drawn as flat, unlit meshes on the ellipsoid under the buildings: landuse, water, roads by
//! class (ribbons of a class width), district borders. A background thread fetches and decodes
//! (`tiles::mvt::decode`) and triangulates (earcut); the render loop only uploads meshes.
//!
//! Palette (sRGB, unlit, so the screenshot shows these exact colours) — [`Style::srgb`]:
//! landuse green (park, forest, grass, garden, recreation, cemetery, farmland, meadow) 118,170,92;
//! other landuse 140,134,124; water 64,128,200; motorway/trunk 240,160,50 (18 m wide); primary
//! 250,205,100 (13 m); secondary 245,230,150 (10 m); tertiary/residential/unclassified 226,226,226
//! (7 m); service/path/other 205,205,205 (4 m); rail 80,80,80 (3 m); district border
//! 220,60,150 (20 m). Heights above the model's ground: other landuse −0.2 (under the district
//! choropleth's −0.1, so built-up landuse takes the district colour), green landuse 0.0, water 0.1, roads 0.2,
//! borders 0.3 m (the bare ground is at −0.3 m), so the layers stack without z-fighting.

use crate::geodesy::WorldFrame;
use tiles::mvt::{Geometry, Tile};
use tiles::TileId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Style {
    LanduseGreen,
    Landuse,
    Water,
    RoadMajor,
    RoadPrimary,
    RoadSecondary,
    RoadMinor,
    RoadService,
    Rail,
    Border,
}

impl Style {
    pub const ALL: [Style; 10] = [
        Style::LanduseGreen,
        Style::Landuse,
        Style::Water,
        Style::RoadMajor,
        Style::RoadPrimary,
        Style::RoadSecondary,
        Style::RoadMinor,
        Style::RoadService,
        Style::Rail,
        Style::Border,
    ];
    pub fn srgb(self) -> [u8; 3] {
        match self {
            Style::LanduseGreen => [118, 170, 92],
            Style::Landuse => [140, 134, 124],
            Style::Water => [64, 128, 200],
            Style::RoadMajor => [240, 160, 50],
            Style::RoadPrimary => [250, 205, 100],
            Style::RoadSecondary => [245, 230, 150],
            Style::RoadMinor => [226, 226, 226],
            Style::RoadService => [205, 205, 205],
            Style::Rail => [80, 80, 80],
            Style::Border => [220, 60, 150],
        }
    }
    /// Height above the ground (m).
    pub fn lift(self) -> f64 {
        match self {
            Style::Landuse => -0.2,
            Style::LanduseGreen => 0.0,
            Style::Water => 0.1,
            Style::Border => 0.3,
            _ => 0.2,
        }
    }
    /// Ribbon width of line styles (m).
    pub fn width(self) -> f64 {
        match self {
            Style::RoadMajor => 18.0,
            Style::RoadPrimary => 13.0,
            Style::RoadSecondary => 10.0,
            Style::RoadMinor => 7.0,
            Style::RoadService => 4.0,
            Style::Rail => 3.0,
            Style::Border => 20.0,
            _ => 0.0,
        }
    }
    pub fn road(class: &str) -> Style {
        match class {
            "motorway" | "trunk" | "motorway_link" | "trunk_link" => Style::RoadMajor,
            "primary" | "primary_link" => Style::RoadPrimary,
            "secondary" | "secondary_link" => Style::RoadSecondary,
            "tertiary" | "residential" | "unclassified" | "tertiary_link" | "living_street" => Style::RoadMinor,
            "rail" | "railway" | "subway" | "light_rail" => Style::Rail,
            _ => Style::RoadService,
        }
    }
    pub fn landuse(class: &str) -> Style {
        match class {
            "park" | "forest" | "grass" | "garden" | "recreation" | "recreation_ground" | "cemetery" | "farmland" | "meadow" | "wood" | "green" => {
                Style::LanduseGreen
            }
            _ => Style::Landuse,
        }
    }
}

/// Triangles of one style in world coordinates.
#[derive(Debug, Default, Clone)]
pub struct Part {
    pub positions: Vec<[f32; 3]>,
    pub indices: Vec<u32>,
}

/// Features drawn, per layer (for the summary).
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Counts {
    pub tiles: usize,
    pub landuse: usize,
    pub water: usize,
    pub roads: usize,
    pub districts: usize,
}

/// World position of a tile-local point.
pub(crate) fn to_world(frame: &WorldFrame, id: TileId, extent: u32, p: [i64; 2], h: f64) -> [f64; 3] {
    let n = (1u64 << id.z) as f64;
    let ux = (id.x as f64 + p[0] as f64 / extent as f64) / n;
    let uy = (id.y as f64 + p[1] as f64 / extent as f64) / n;
    let (lon, lat) = tiles::unit_to_lonlat(ux, uy);
    frame.world_of_geodetic(lon, lat, h).to_array()
}

pub(crate) fn add_polygon(part: &mut Part, rings: &[Vec<[f64; 3]>]) {
    if rings.is_empty() || rings[0].len() < 3 {
        return;
    }
    let mut holes = vec![];
    let mut pts: Vec<[f64; 3]> = vec![];
    for (i, r) in rings.iter().enumerate() {
        if i > 0 {
            holes.push(pts.len() as u32);
        }
        pts.extend_from_slice(r);
    }
    let mut tri: Vec<u32> = vec![];
    // world x = east, z = south: triangulate in (x, z)
    earcut::Earcut::<f64>::default().earcut(pts.iter().map(|p| [p[0], p[2]]), &holes, &mut tri);
    let base = part.positions.len() as u32;
    part.positions.extend(pts.iter().map(|p| [p[0] as f32, p[1] as f32, p[2] as f32]));
    // earcut's winding follows the input; make every triangle face up (+y)
    for t in tri.chunks(3) {
        let (a, b, c) = (pts[t[0] as usize], pts[t[1] as usize], pts[t[2] as usize]);
        let ny = (b[2] - a[2]) * (c[0] - a[0]) - (b[0] - a[0]) * (c[2] - a[2]);
        if ny >= 0.0 {
            part.indices.extend_from_slice(&[base + t[0], base + t[1], base + t[2]]);
        } else {
            part.indices.extend_from_slice(&[base + t[0], base + t[2], base + t[1]]);
        }
    }
}

/// A line as a ribbon of quads `w` wide (flat, in the local horizontal), facing up.
fn add_line(part: &mut Part, pts: &[[f64; 3]], w: f64) {
    for s in pts.windows(2) {
        let (a, b) = (s[0], s[1]);
        let (dx, dz) = (b[0] - a[0], b[2] - a[2]);
        let l = (dx * dx + dz * dz).sqrt();
        if l < 1e-6 {
            continue;
        }
        // the left normal in (x, z), half width; joints overlap with a square cap of w/2
        let (nx, nz) = (-dz / l * w / 2.0, dx / l * w / 2.0);
        let (ex, ez) = (dx / l * w / 2.0, dz / l * w / 2.0);
        let q = [
            [a[0] - ex + nx, a[1], a[2] - ez + nz],
            [a[0] - ex - nx, a[1], a[2] - ez - nz],
            [b[0] + ex - nx, b[1], b[2] + ez - nz],
            [b[0] + ex + nx, b[1], b[2] + ez + nz],
        ];
        let base = part.positions.len() as u32;
        part.positions.extend(q.iter().map(|p| [p[0] as f32, p[1] as f32, p[2] as f32]));
        for t in [[0u32, 1, 2], [0, 2, 3]] {
            let (p0, p1, p2) = (q[t[0] as usize], q[t[1] as usize], q[t[2] as usize]);
            let ny = (p1[2] - p0[2]) * (p2[0] - p0[0]) - (p1[0] - p0[0]) * (p2[2] - p0[2]);
            if ny >= 0.0 {
                part.indices.extend_from_slice(&[base + t[0], base + t[1], base + t[2]]);
            } else {
                part.indices.extend_from_slice(&[base + t[0], base + t[2], base + t[1]]);
            }
        }
    }
}

/// The meshes of one decoded tile, by style.
pub fn tile_parts(tile: &Tile, id: TileId, frame: &WorldFrame, ground: f64, out: &mut std::collections::BTreeMap<Style, Part>, counts: &mut Counts) {
    counts.tiles += 1;
    for layer in &tile.layers {
        let ext = layer.extent.max(1);
        for f in &layer.features {
            let class = f.get("class").and_then(|v| v.as_str()).unwrap_or("");
            let style = match layer.name.as_str() {
                "landuse" => Style::landuse(class),
                "water" => Style::Water,
                "roads" => Style::road(class),
                "districts" => Style::Border,
                _ => continue,
            };
            let h = ground + style.lift();
            let part = out.entry(style).or_default();
            match (&f.geometry, style) {
                (Geometry::Polygons(polys), Style::Border) => {
                    // the district's outline (clipped at the tile's buffer: the pieces meet)
                    // edges on or outside the tile's own square are where the tiler clipped
                    // the polygon, not the border: left out
                    let e = ext as i64;
                    let clip = |a: [i64; 2], b: [i64; 2]| {
                        (a[0] <= 0 && b[0] <= 0) || (a[0] >= e && b[0] >= e) || (a[1] <= 0 && b[1] <= 0) || (a[1] >= e && b[1] >= e)
                    };
                    for p in polys {
                        for r in p {
                            for k in 0..r.len() {
                                let (a, b) = (r[k], r[(k + 1) % r.len()]);
                                if !clip(a, b) {
                                    add_line(part, &[to_world(frame, id, ext, a, h), to_world(frame, id, ext, b, h)], style.width());
                                }
                            }
                        }
                    }
                    counts.districts += 1;
                }
                (Geometry::Polygons(polys), _) => {
                    for p in polys {
                        let rings: Vec<Vec<[f64; 3]>> = p.iter().map(|r| r.iter().map(|q| to_world(frame, id, ext, *q, h)).collect()).collect();
                        add_polygon(part, &rings);
                    }
                    if style == Style::Water {
                        counts.water += 1;
                    } else {
                        counts.landuse += 1;
                    }
                }
                (Geometry::Lines(lines), _) => {
                    for l in lines {
                        let pts: Vec<[f64; 3]> = l.iter().map(|q| to_world(frame, id, ext, *q, h)).collect();
                        add_line(part, &pts, style.width().max(2.0));
                    }
                    counts.roads += 1;
                }
                _ => {}
            }
        }
    }
}

/// The tiles at zoom `z` covering a lon/lat box, or None when more than `max`.
pub fn covering(bbox: [f64; 4], z: u8, max: usize) -> Option<Vec<TileId>> {
    let a = TileId::containing(bbox[0], bbox[3], z);
    let b = TileId::containing(bbox[2], bbox[1], z);
    let n = (b.x - a.x + 1) as usize * (b.y - a.y + 1) as usize;
    if n > max {
        return None;
    }
    Some((a.y..=b.y).flat_map(|y| (a.x..=b.x).map(move |x| TileId { z, x, y })).collect())
}

/// A name to show on the map (the `labels` layer: districts, named water, parks, landmarks).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Label {
    pub kind: String,
    pub name: String,
    pub name_en: Option<String>,
    pub lon: f64,
    pub lat: f64,
}

/// The labels of a tile (points of the `labels` layer).
pub fn tile_labels(tile: &Tile, id: TileId) -> Vec<Label> {
    let Some(layer) = tile.layer("labels") else { return vec![] };
    let n = (1u64 << id.z) as f64;
    let mut out = vec![];
    for f in &layer.features {
        let (Geometry::Points(pts), Some(name)) = (&f.geometry, f.get("name").and_then(|v| v.as_str())) else { continue };
        for p in pts {
            let (lon, lat) = tiles::unit_to_lonlat((id.x as f64 + p[0] as f64 / layer.extent.max(1) as f64) / n, (id.y as f64 + p[1] as f64 / layer.extent.max(1) as f64) / n);
            out.push(Label {
                kind: f.get("kind").and_then(|v| v.as_str()).unwrap_or("").to_string(),
                name: name.to_string(),
                name_en: f.get("name_en").and_then(|v| v.as_str()).map(str::to_string),
                lon,
                lat,
            });
        }
    }
    out
}

/// What the loader thread sends back.
pub struct Loaded {
    pub labels: Vec<Label>,
    pub parts: std::collections::BTreeMap<Style, Part>,
    pub counts: Counts,
    pub errors: Vec<String>,
    pub zoom: Option<u8>,
    /// the zoom the districts were read at (city-wide, see [`district_cover`])
    pub district_zoom: Option<u8>,
    /// the `districts` layer's polygons, filled (the choropleth colours them)
    pub districts: std::collections::BTreeMap<String, crate::choropleth::DistrictFill>,
}

/// The most tiles fetched for the city-wide districts.
pub const DISTRICT_TILES: usize = 16;

/// The tiles the districts are read from: the TileJSON `bounds` (the whole model) at the finest
/// zoom in `minzoom..=z` that covers them with at most [`DISTRICT_TILES`] tiles (the
/// `districts` layer is in every zoom from 0), so a city-wide view shows every district, not
/// only those inside the ground map's area; `None` without usable bounds.
pub fn district_cover(tj: &serde_json::Value, z: u8) -> Option<Vec<TileId>> {
    let b: Vec<f64> = tj["bounds"].as_array()?.iter().filter_map(|x| x.as_f64()).collect();
    let b: [f64; 4] = b.try_into().ok()?;
    if !(b.iter().all(|x| x.is_finite()) && b[0] < b[2] && b[1] < b[3]) {
        return None;
    }
    let b = [b[0].max(-180.0), b[1].max(-85.0), b[2].min(180.0), b[3].min(85.0)];
    let minzoom = tj["minzoom"].as_u64().unwrap_or(0) as u8;
    (minzoom.min(z)..=z).rev().find_map(|zz| covering(b, zz, DISTRICT_TILES))
}

/// Fetches the TileJSON and the tiles over `bbox` (the finest zoom ≤ 15 with at most 256 tiles)
/// and the districts of the whole model ([`district_cover`]) on a thread.
pub fn spawn(server: String, name: String, token: Option<String>, bbox: [f64; 4], frame: WorldFrame, ground: f64) -> std::sync::mpsc::Receiver<Loaded> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("ground-map".into())
        .spawn(move || {
            let _ = tx.send(load(&server, &name, &token, bbox, &frame, ground));
        })
        .expect("spawn ground map thread");
    rx
}

fn load(server: &str, name: &str, token: &Option<String>, bbox: [f64; 4], frame: &WorldFrame, ground: f64) -> Loaded {
    let mut out = Loaded { labels: vec![], parts: Default::default(), counts: Counts::default(), errors: vec![], zoom: None, district_zoom: None, districts: Default::default() };
    let agent = crate::fetch::agent();
    let get = |url: &str| crate::fetch::fetch_with(&agent, url, token.as_deref());
    let tj_url = format!("{server}/tiles/{name}.json");
    let tj: serde_json::Value = match get(&tj_url).and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("{tj_url}: {e}"))) {
        Ok(v) => v,
        Err(e) => {
            out.errors.push(format!("ground map unavailable: {e}"));
            return out;
        }
    };
    let Some(template) = tj["tiles"][0].as_str().map(str::to_string) else {
        out.errors.push(format!("{tj_url}: no tiles URL"));
        return out;
    };
    let maxzoom = tj["maxzoom"].as_u64().unwrap_or(14).min(15) as u8;
    let minzoom = tj["minzoom"].as_u64().unwrap_or(0) as u8;
    let mut z = maxzoom;
    let ids = loop {
        if let Some(ids) = covering(bbox, z, 256) {
            break ids;
        }
        if z <= minzoom {
            out.errors.push("ground map: the view needs too many tiles".into());
            return out;
        }
        z -= 1;
    };
    out.zoom = Some(z);
    for id in ids {
        let url = template.replace("{z}", &id.z.to_string()).replace("{x}", &id.x.to_string()).replace("{y}", &id.y.to_string());
        match get(&url) {
            Ok(b) => match tiles::mvt::decode(&b) {
                Ok(t) => {
                    tile_parts(&t, id, frame, ground, &mut out.parts, &mut out.counts);
                    out.labels.extend(tile_labels(&t, id));
                    crate::choropleth::tile_districts(&t, id, frame, ground, &mut out.districts);
                }
                Err(e) => out.errors.push(format!("{url}: {e}")),
            },
            // absent tiles (no features there) are 204/404: nothing to draw
            Err(e) if e.contains("HTTP 404") || e.contains("HTTP 204") => {}
            Err(e) => out.errors.push(e),
        }
    }
    // every district of the model, from low-zoom tiles over the TileJSON bounds (replacing the
    // partial ones of the view's tiles, so each district is one fill of one zoom)
    if let Some(ids) = district_cover(&tj, z) {
        let mut all = std::collections::BTreeMap::new();
        let mut ok = true;
        for id in &ids {
            let url = template.replace("{z}", &id.z.to_string()).replace("{x}", &id.x.to_string()).replace("{y}", &id.y.to_string());
            match get(&url) {
                Ok(b) => match tiles::mvt::decode(&b) {
                    Ok(t) => crate::choropleth::tile_districts(&t, *id, frame, ground, &mut all),
                    Err(e) => {
                        ok = false;
                        out.errors.push(format!("{url}: {e}"));
                    }
                },
                Err(e) if e.contains("HTTP 404") || e.contains("HTTP 204") => {}
                Err(e) => {
                    ok = false;
                    out.errors.push(e);
                }
            }
        }
        // a failed low-zoom tile: keep the view's districts rather than lose some
        if ok && all.len() >= out.districts.len() {
            out.districts = all;
            out.district_zoom = ids.first().map(|i| i.z);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiles::mvt::{encode_tile, LayerBuilder, Value};

    #[test]
    fn a_tile_becomes_upward_triangles_of_each_style() {
        // one tile at z14 over Shenyang: a square park with a square hole, a river polygon, a
        // primary road, a district outline
        let id = TileId::containing(123.43, 41.80, 14);
        let mut lu = LayerBuilder::new("landuse", 4096);
        lu.add_feature(Some(1), &[("class", Value::from("park"))], &Geometry::Polygons(vec![vec![
            vec![[1000, 1000], [3000, 1000], [3000, 3000], [1000, 3000]],
            vec![[1500, 1500], [1500, 2500], [2500, 2500], [2500, 1500]],
        ]]));
        let mut wa = LayerBuilder::new("water", 4096);
        wa.add_feature(Some(2), &[("class", Value::from("river"))], &Geometry::Polygons(vec![vec![vec![[0, 0], [500, 0], [500, 4096], [0, 4096]]]]));
        let mut rd = LayerBuilder::new("roads", 4096);
        rd.add_feature(Some(3), &[("class", Value::from("primary"))], &Geometry::Lines(vec![vec![[0, 2048], [4096, 2048]]]));
        let bytes = encode_tile(&[lu, wa, rd]);
        let tile = tiles::mvt::decode(&bytes).unwrap();
        let frame = WorldFrame::new(123.43, 41.80, 0.0);
        let mut parts = Default::default();
        let mut counts = Counts::default();
        tile_parts(&tile, id, &frame, 0.0, &mut parts, &mut counts);
        assert_eq!((counts.landuse, counts.water, counts.roads), (1, 1, 1));
        let park = &parts[&Style::LanduseGreen];
        // a square ring with a square hole: 8 triangles
        assert_eq!(park.indices.len(), 8 * 3);
        // area of the triangles = outer − hole, in (x, z)
        let area: f64 = park
            .indices
            .chunks(3)
            .map(|t| {
                let (a, b, c) = (park.positions[t[0] as usize], park.positions[t[1] as usize], park.positions[t[2] as usize]);
                let ny = (b[2] - a[2]) as f64 * (c[0] - a[0]) as f64 - (b[0] - a[0]) as f64 * (c[2] - a[2]) as f64;
                assert!(ny > 0.0, "every triangle faces up");
                ny / 2.0
            })
            .sum();
        let tile_m = (id.bounds()[2] - id.bounds()[0]) * 111_320.0 * 41.8f64.to_radians().cos();
        let expect = ((2000.0f64 / 4096.0).powi(2) - (1000.0f64 / 4096.0).powi(2)) * tile_m * tile_m;
        assert!((area / expect - 1.0).abs() < 0.01, "{area} vs {expect}");
        let road = &parts[&Style::RoadPrimary];
        assert_eq!(road.indices.len(), 6);
        // the ribbon is 13 m wide: its z span (the road runs east–west)
        let zs: Vec<f32> = road.positions.iter().map(|p| p[2]).collect();
        let span = zs.iter().cloned().fold(f32::MIN, f32::max) - zs.iter().cloned().fold(f32::MAX, f32::min);
        assert!((span - 13.0).abs() < 0.2, "{span}");
        // heights: water above landuse, roads above water
        assert!(parts[&Style::Water].positions[0][1] > park.positions[0][1] - 0.01);
    }

    #[test]
    fn labels_come_back_at_their_lon_lat() {
        let id = TileId::containing(123.43, 41.80, 14);
        let b = id.bounds();
        let mut lb = LayerBuilder::new("labels", 4096);
        // the tile's centre in tile units
        lb.add_feature(Some(9), &[("kind", Value::from("park")), ("name", Value::from("青年公园"))], &Geometry::Points(vec![[2048, 2048]]));
        lb.add_feature(Some(10), &[("kind", Value::from("district"))], &Geometry::Points(vec![[0, 0]]));
        let tile = tiles::mvt::decode(&encode_tile(&[lb])).unwrap();
        let l = tile_labels(&tile, id);
        assert_eq!(l.len(), 1, "a label without a name is skipped");
        assert_eq!((l[0].kind.as_str(), l[0].name.as_str(), l[0].name_en.as_deref()), ("park", "青年公园", None));
        let (cx, cy) = tiles::unit_to_lonlat((id.x as f64 + 0.5) / 16384.0, (id.y as f64 + 0.5) / 16384.0);
        assert!((l[0].lon - cx).abs() < 1e-12 && (l[0].lat - cy).abs() < 1e-12);
        assert!(l[0].lon > b[0] && l[0].lon < b[2] && l[0].lat > b[1] && l[0].lat < b[3]);
    }

    #[test]
    fn districts_are_read_over_the_whole_tilejson_bounds() {
        // Shenyang's 13 districts (about 122.4…123.8 E, 41.2…43.0 N), ground map at z 15
        let tj = serde_json::json!({"bounds": [122.42, 41.19, 123.81, 43.04], "minzoom": 0, "maxzoom": 15});
        let ids = district_cover(&tj, 15).unwrap();
        let z = ids[0].z;
        assert!(ids.len() <= DISTRICT_TILES && ids.iter().all(|i| i.z == z), "{ids:?}");
        // the finest such zoom: one finer needs more than 16 tiles
        assert!(covering([122.42, 41.19, 123.81, 43.04], z + 1, DISTRICT_TILES).is_none(), "z {z}");
        // every corner of the bounds lies in a chosen tile
        for (lon, lat) in [(122.42, 41.19), (123.81, 41.19), (122.42, 43.04), (123.81, 43.04)] {
            let t = TileId::containing(lon, lat, z);
            assert!(ids.contains(&t), "{lon},{lat} in {t:?}, not in {ids:?}");
        }
        // never finer than the ground map's zoom; no bounds / bad bounds: none
        assert_eq!(district_cover(&serde_json::json!({"bounds": [123.40, 41.78, 123.42, 41.80]}), 9).unwrap()[0].z, 9);
        assert!(district_cover(&serde_json::json!({}), 12).is_none());
        assert!(district_cover(&serde_json::json!({"bounds": [123.5, 41.0, 123.4, 42.0]}), 12).is_none());
    }

    #[test]
    fn covering_counts_tiles_and_refuses_too_many() {
        let v = covering([123.40, 41.78, 123.46, 41.82], 14, 1000).unwrap();
        let a = TileId::containing(123.40, 41.82, 14);
        let b = TileId::containing(123.46, 41.78, 14);
        assert_eq!(v.len() as u32, (b.x - a.x + 1) * (b.y - a.y + 1));
        assert!(covering([123.0, 41.0, 124.0, 42.0], 15, 256).is_none());
    }
}

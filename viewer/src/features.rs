//! What picking needs from a tile, kept at decode time (on the loader threads): CPU-side copies
//! of each primitive's world positions and triangles with the feature id of every triangle
//! (`EXT_mesh_features`, `_FEATURE_ID_n` of the hit vertex), and the tile's
//! `EXT_structural_metadata` property table read generically from its schema (SCALAR numbers,
//! STRING, ENUM by name, BOOLEAN), so a feature id turns into its row: id, name, height, floors,
//! use, district, source, level … for CityTwin tiles, whatever a third-party table holds
//! otherwise. The copies are counted in the tile's memory (LRU budget). Pure, no GPU; the ray
//! casts here are exact (Möller–Trumbore) against the decoded triangles.

use bevy::math::Vec3;
use serde_json::{Map, Value};

/// No feature id (the primitive has none).
pub const NO_FEATURE: u32 = u32::MAX;

/// One primitive's triangles in world coordinates.
#[derive(Debug, Clone, Default)]
pub struct PickMesh {
    pub positions: Vec<[f32; 3]>,
    pub indices: Vec<u32>,
    /// feature id per triangle (`NO_FEATURE` where none)
    pub feature_ids: Vec<u32>,
    /// property table the feature ids index (`EXT_mesh_features` `propertyTable`)
    pub table: Option<usize>,
    pub min: [f32; 3],
    pub max: [f32; 3],
}

/// An `EXT_structural_metadata` property table: its class and columns, kept as the tile's raw
/// column bytes (a few bytes per feature) and decoded per row when a feature is picked.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureTable {
    pub class: String,
    pub count: usize,
    columns: Vec<Column>,
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    Str,
    Bool,
    Enum(Vec<(f64, String)>),
    Scalar { normalized: bool, scale: f64, offset: f64 },
}

#[derive(Debug, Clone, PartialEq)]
struct Column {
    name: String,
    kind: Kind,
    /// component type of the values (ENUM: the enum's value type; STRING: the offsets')
    ct: String,
    values: Vec<u8>,
    offsets: Vec<u8>,
    no_data: Option<f64>,
}

impl FeatureTable {
    /// Row `i` as a JSON object (`noData` values left out); None past the end.
    pub fn row(&self, i: usize) -> Option<Map<String, Value>> {
        if i >= self.count {
            return None;
        }
        let mut m = Map::new();
        for c in &self.columns {
            let v = match &c.kind {
                Kind::Str => {
                    let (a, b) = (le(&c.offsets, &c.ct, i).unwrap_or(0.0) as usize, le(&c.offsets, &c.ct, i + 1).unwrap_or(0.0) as usize);
                    Value::String(String::from_utf8_lossy(c.values.get(a..b).unwrap_or(&[])).into_owned())
                }
                Kind::Bool => Value::Bool(c.values.get(i / 8).is_some_and(|b| b >> (i % 8) & 1 == 1)),
                Kind::Enum(names) => {
                    let x = le(&c.values, &c.ct, i).unwrap_or(f64::NAN);
                    names.iter().find(|n| n.0 == x).map_or(json_num(x), |n| Value::String(n.1.clone()))
                }
                Kind::Scalar { normalized, scale, offset } => {
                    let raw = le(&c.values, &c.ct, i).unwrap_or(f64::NAN);
                    if c.no_data == Some(raw) {
                        continue;
                    }
                    let mut x = raw;
                    if *normalized {
                        x /= match c.ct.as_str() {
                            "UINT8" => 255.0,
                            "INT8" => 127.0,
                            "UINT16" => 65535.0,
                            "INT16" => 32767.0,
                            "UINT32" => 4294967295.0,
                            "INT32" => 2147483647.0,
                            _ => 1.0,
                        };
                    }
                    json_num(x * scale + offset)
                }
            };
            m.insert(c.name.clone(), v);
        }
        Some(m)
    }

    fn bytes(&self) -> usize {
        self.columns.iter().map(|c| c.values.len() + c.offsets.len() + c.name.len() + 96).sum::<usize>() + 64
    }
}

fn json_num(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        serde_json::json!(x as i64)
    } else {
        serde_json::json!(x)
    }
}

/// A tile's pick data.
#[derive(Debug, Clone, Default)]
pub struct TilePick {
    pub meshes: Vec<PickMesh>,
    pub tables: Vec<FeatureTable>,
}

/// The nearest hit of a ray in a tile.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub t: f32,
    pub point: Vec3,
    pub feature: Option<u32>,
    pub table: Option<usize>,
}

impl PickMesh {
    pub fn new(positions: Vec<[f32; 3]>, indices: Vec<u32>, feature_ids: Vec<u32>, table: Option<usize>) -> PickMesh {
        let mut min = [f32::INFINITY; 3];
        let mut max = [f32::NEG_INFINITY; 3];
        for p in &positions {
            for k in 0..3 {
                min[k] = min[k].min(p[k]);
                max[k] = max[k].max(p[k]);
            }
        }
        PickMesh { positions, indices, feature_ids, table, min, max }
    }

    pub fn bytes(&self) -> usize {
        self.positions.len() * 12 + self.indices.len() * 4 + self.feature_ids.len() * 4 + 64
    }
}

impl TilePick {
    /// Approximate heap bytes (counted in the tile's memory).
    pub fn bytes(&self) -> usize {
        self.meshes.iter().map(PickMesh::bytes).sum::<usize>() + self.tables.iter().map(FeatureTable::bytes).sum::<usize>()
    }

    /// The nearest triangle the ray hits (t > `t_min`), if any.
    pub fn raycast(&self, origin: Vec3, dir: Vec3, t_min: f32) -> Option<Hit> {
        let mut best: Option<Hit> = None;
        for m in &self.meshes {
            let limit = best.as_ref().map_or(f32::INFINITY, |b| b.t);
            if !ray_aabb(origin, dir, m.min, m.max, limit) {
                continue;
            }
            for (k, tri) in m.indices.chunks_exact(3).enumerate() {
                let v = |i: u32| Vec3::from_array(m.positions[i as usize]);
                if let Some(t) = ray_triangle(origin, dir, v(tri[0]), v(tri[1]), v(tri[2])) {
                    if t > t_min && best.as_ref().is_none_or(|b| t < b.t) {
                        let f = m.feature_ids.get(k).copied().unwrap_or(NO_FEATURE);
                        best = Some(Hit { t, point: origin + dir * t, feature: (f != NO_FEATURE).then_some(f), table: m.table });
                    }
                }
            }
        }
        best
    }

    /// The property-table row of a hit's feature.
    pub fn row(&self, hit: &Hit) -> Option<Map<String, Value>> {
        self.tables.get(hit.table?)?.row(hit.feature? as usize)
    }
}

/// Möller–Trumbore, both faces: the ray parameter of the hit.
pub fn ray_triangle(o: Vec3, d: Vec3, a: Vec3, b: Vec3, c: Vec3) -> Option<f32> {
    let e1 = b - a;
    let e2 = c - a;
    let p = d.cross(e2);
    let det = e1.dot(p);
    if det.abs() < 1e-12 {
        return None;
    }
    let inv = 1.0 / det;
    let s = o - a;
    let u = s.dot(p) * inv;
    if !(-1e-6..=1.0 + 1e-6).contains(&u) {
        return None;
    }
    let q = s.cross(e1);
    let v = d.dot(q) * inv;
    if v < -1e-6 || u + v > 1.0 + 1e-6 {
        return None;
    }
    let t = e2.dot(q) * inv;
    (t > 0.0).then_some(t)
}

/// Slab test: does the ray meet the box before `limit`?
pub fn ray_aabb(o: Vec3, d: Vec3, min: [f32; 3], max: [f32; 3], limit: f32) -> bool {
    let (mut t0, mut t1) = (0.0f32, limit);
    for k in 0..3 {
        let (ok, dk) = (o[k], d[k]);
        if dk.abs() < 1e-12 {
            if ok < min[k] || ok > max[k] {
                return false;
            }
            continue;
        }
        let (mut a, mut b) = ((min[k] - ok) / dk, (max[k] - ok) / dk);
        if a > b {
            std::mem::swap(&mut a, &mut b);
        }
        t0 = t0.max(a);
        t1 = t1.min(b);
        if t0 > t1 {
            return false;
        }
    }
    true
}

/// Reads every property table of a glTF's `EXT_structural_metadata` (schema embedded; an
/// external `schemaUri` is not fetched: its tables are left out). `view` returns a buffer
/// view's bytes. Errors name the table, the property and what is wrong.
pub fn property_tables<'a>(json: &Value, view: &dyn Fn(usize) -> Result<&'a [u8], String>) -> Result<Vec<FeatureTable>, String> {
    let meta = &json["extensions"]["EXT_structural_metadata"];
    let Some(tables) = meta["propertyTables"].as_array() else { return Ok(vec![]) };
    let schema = &meta["schema"];
    let mut out = Vec::with_capacity(tables.len());
    for (ti, t) in tables.iter().enumerate() {
        let class = t["class"].as_str().unwrap_or("").to_string();
        let count = t["count"].as_u64().unwrap_or(0) as usize;
        let defs = &schema["classes"][&class]["properties"];
        let mut columns = vec![];
        for (name, col) in t["properties"].as_object().into_iter().flatten() {
            let c = column(schema, &defs[name], col, count, view).map_err(|e| format!("property table {ti} ({class}), property '{name}': {e}"))?;
            columns.push(Column { name: name.clone(), ..c });
        }
        out.push(FeatureTable { class, count, columns });
    }
    Ok(out)
}

fn size_of(ct: &str) -> Option<usize> {
    Some(match ct {
        "UINT8" | "INT8" => 1,
        "UINT16" | "INT16" => 2,
        "UINT32" | "INT32" | "FLOAT32" => 4,
        "UINT64" | "INT64" | "FLOAT64" => 8,
        _ => return None,
    })
}

fn le(b: &[u8], ct: &str, i: usize) -> Option<f64> {
    let g = |n: usize| b.get(i * n..i * n + n);
    Some(match ct {
        "UINT8" => *g(1)?.first()? as f64,
        "INT8" => g(1)?[0] as i8 as f64,
        "UINT16" => u16::from_le_bytes(g(2)?.try_into().ok()?) as f64,
        "INT16" => i16::from_le_bytes(g(2)?.try_into().ok()?) as f64,
        "UINT32" => u32::from_le_bytes(g(4)?.try_into().ok()?) as f64,
        "INT32" => i32::from_le_bytes(g(4)?.try_into().ok()?) as f64,
        "UINT64" => u64::from_le_bytes(g(8)?.try_into().ok()?) as f64,
        "INT64" => i64::from_le_bytes(g(8)?.try_into().ok()?) as f64,
        "FLOAT32" => f32::from_le_bytes(g(4)?.try_into().ok()?) as f64,
        "FLOAT64" => f64::from_le_bytes(g(8)?.try_into().ok()?),
        _ => return None,
    })
}

/// One column, checked so that every row of it can be read.
fn column<'a>(schema: &Value, def: &Value, col: &Value, count: usize, view: &dyn Fn(usize) -> Result<&'a [u8], String>) -> Result<Column, String> {
    if def.is_null() {
        return Err("not in the schema's class".into());
    }
    if def["array"].as_bool() == Some(true) {
        return Err("array properties are not read".into());
    }
    let values = view(col["values"].as_u64().ok_or("no values bufferView")? as usize)?;
    let need = |ct: &str, n: usize| -> Result<(), String> {
        let size = size_of(ct).ok_or(format!("unknown componentType '{ct}'"))?;
        if n * size > values.len() {
            return Err(format!("values: {n} × {size} bytes needed, the bufferView has {}", values.len()));
        }
        Ok(())
    };
    let c = |kind: Kind, ct: &str, offsets: Vec<u8>| Column { name: String::new(), kind, ct: ct.to_string(), values: values.to_vec(), offsets, no_data: def["noData"].as_f64() };
    match def["type"].as_str().unwrap_or("") {
        "STRING" => {
            let offs = view(col["stringOffsets"].as_u64().ok_or("STRING without stringOffsets")? as usize)?;
            let ot = col["stringOffsetType"].as_str().unwrap_or("UINT32");
            let size = size_of(ot).ok_or(format!("unknown stringOffsetType '{ot}'"))?;
            if offs.len() < (count + 1) * size {
                return Err(format!("stringOffsets: {} offsets needed, the bufferView holds {}", count + 1, offs.len() / size));
            }
            let last = le(offs, ot, count).unwrap_or(0.0) as usize;
            if last > values.len() {
                return Err(format!("strings run past their values ({last} > {} bytes)", values.len()));
            }
            Ok(c(Kind::Str, ot, offs.to_vec()))
        }
        "BOOLEAN" => {
            if values.len() * 8 < count {
                return Err(format!("values: {count} bits needed, the bufferView has {} bytes", values.len()));
            }
            Ok(c(Kind::Bool, "UINT8", vec![]))
        }
        "ENUM" => {
            let e = &schema["enums"][def["enumType"].as_str().unwrap_or("")];
            let vt = e["valueType"].as_str().unwrap_or("UINT16");
            need(vt, count)?;
            let names: Vec<(f64, String)> = e["values"].as_array().into_iter().flatten().filter_map(|v| Some((v["value"].as_f64()?, v["name"].as_str()?.to_string()))).collect();
            Ok(c(Kind::Enum(names), vt, vec![]))
        }
        "SCALAR" => {
            let ct = def["componentType"].as_str().unwrap_or("");
            need(ct, count)?;
            Ok(c(
                Kind::Scalar { normalized: def["normalized"].as_bool() == Some(true), scale: def["scale"].as_f64().unwrap_or(1.0), offset: def["offset"].as_f64().unwrap_or(0.0) },
                ct,
                vec![],
            ))
        }
        t => Err(format!("type {t} is not read")),
    }
}

/// The level of detail of a CityTwin tile from its content name (docs/MODEL.md: `<key>.glb` L2,
/// `<key>-l3-<n>.glb` L3, `<key>-k<id>.glb` a key building's slot at L3, `<key>-l4-<id>.glb` L4;
/// `trees-<key>.glb` and anything else: none).
pub fn tile_level(url: &str) -> Option<u8> {
    let name = url.split(['?', '#']).next().unwrap_or(url);
    let name = name.rsplit('/').next().unwrap_or(name);
    let stem = name.strip_suffix(".gz").unwrap_or(name);
    let stem = stem.strip_suffix(".glb").or_else(|| stem.strip_suffix(".b3dm"))?;
    if stem.starts_with("trees-") || stem.is_empty() {
        return None;
    }
    let tail_num = |sep: &str| stem.rsplit_once(sep).is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if tail_num("-l4-") {
        Some(4)
    } else if tail_num("-l3-") || tail_num("-k") {
        Some(3)
    } else if stem.contains('-') {
        None
    } else {
        Some(2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ray_hits_the_nearer_of_two_triangles_with_its_feature() {
        // two horizontal squares (y up): feature 7 at y = 10, feature 3 at y = 20
        let sq = |y: f32| vec![[0.0, y, 0.0], [10.0, y, 0.0], [10.0, y, -10.0], [0.0, y, -10.0]];
        let mut pos = sq(10.0);
        pos.extend(sq(20.0));
        let idx = vec![0, 1, 2, 0, 2, 3, 4, 5, 6, 4, 6, 7];
        let tp = TilePick { meshes: vec![PickMesh::new(pos, idx, vec![7, 7, 3, 3], Some(0))], tables: vec![] };
        let h = tp.raycast(Vec3::new(5.0, 100.0, -5.0), Vec3::NEG_Y, 0.0).unwrap();
        assert_eq!(h.feature, Some(3));
        assert!((h.t - 80.0).abs() < 1e-4 && (h.point.y - 20.0).abs() < 1e-4);
        // from between the two: only the lower one is ahead
        let h = tp.raycast(Vec3::new(5.0, 15.0, -5.0), Vec3::NEG_Y, 0.0).unwrap();
        assert_eq!(h.feature, Some(7));
        // beside them: nothing
        assert!(tp.raycast(Vec3::new(15.0, 100.0, -5.0), Vec3::NEG_Y, 0.0).is_none());
        assert!(!ray_aabb(Vec3::new(15.0, 100.0, -5.0), Vec3::NEG_Y, [0.0, 10.0, -10.0], [10.0, 20.0, 0.0], f32::INFINITY));
    }

    #[test]
    fn property_tables_from_the_tiles_writer_read_back_by_schema() {
        use tiles::gltf::{building_schema, write_glb, Column, Document, Material, PositionEncoding, Primitive, PropertyTable};
        let doc = Document {
            generator: "test".into(),
            primitives: vec![Primitive { material: 0, positions: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], feature_ids: vec![1; 3], indices: vec![0, 1, 2], normals: vec![], uvs: vec![] }],
            materials: vec![Material { name: "m".into(), base_color: [1.0; 4], metallic: 0.0, roughness: 1.0, double_sided: false, texture: None }],
            positions: PositionEncoding::Float,
            schema: Some(building_schema(&["residential", "commercial", "unknown"])),
            property_table: Some(PropertyTable {
                class: "building".into(),
                count: 2,
                columns: vec![
                    ("id".into(), Column::U32(vec![41, 42])),
                    ("name".into(), Column::Str(vec!["".into(), "东楼".into()])),
                    ("height".into(), Column::F32(vec![12.5, 30.0])),
                    ("floors".into(), Column::U16(vec![65535, 10])),
                    ("use".into(), Column::U8(vec![0, 1])),
                    ("level".into(), Column::U8(vec![2, 3])),
                ],
            }),
            images: vec![],
            instances: None,
        };
        let glb = write_glb(&doc);
        let g = tiles::gltf::Glb::parse(&glb).unwrap();
        let bin = g.bin.clone();
        let views = g.json["bufferViews"].clone();
        let view = |i: usize| -> Result<&[u8], String> {
            let v = &views[i];
            let o = v["byteOffset"].as_u64().unwrap_or(0) as usize;
            let l = v["byteLength"].as_u64().unwrap() as usize;
            bin.get(o..o + l).ok_or("short".into())
        };
        let t = property_tables(&g.json, &view).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].class, "building");
        let r0 = serde_json::Value::Object(t[0].row(0).unwrap());
        let r1 = serde_json::Value::Object(t[0].row(1).unwrap());
        assert!(t[0].row(2).is_none());
        assert_eq!(r0, serde_json::json!({"id": 41, "name": "", "height": 12.5, "use": "residential", "level": "L2"}), "floors 65535 is noData");
        assert_eq!(r1, serde_json::json!({"id": 42, "name": "东楼", "height": 30, "floors": 10, "use": "commercial", "level": "L3"}));
    }

    #[test]
    fn a_short_column_is_an_error_naming_table_and_property() {
        let json = serde_json::json!({"extensions": {"EXT_structural_metadata": {
            "schema": {"classes": {"building": {"properties": {"id": {"type": "SCALAR", "componentType": "UINT32"}, "name": {"type": "STRING"}}}}},
            "propertyTables": [{"class": "building", "count": 3, "properties": {"id": {"values": 0}}}]}}});
        let buf = [0u8; 8];
        let view = |_: usize| -> Result<&[u8], String> { Ok(&buf[..]) };
        let e = property_tables(&json, &view).unwrap_err();
        assert!(e.contains("property table 0 (building)") && e.contains("'id'") && e.contains("3 × 4 bytes"), "{e}");
        let mut j2 = json.clone();
        j2["extensions"]["EXT_structural_metadata"]["propertyTables"][0]["properties"] = serde_json::json!({"name": {"values": 0, "stringOffsets": 0}});
        let e = property_tables(&j2, &view).unwrap_err();
        assert!(e.contains("'name'") && e.contains("stringOffsets"), "{e}");
        // no metadata: no tables, no error
        assert!(property_tables(&serde_json::json!({}), &view).unwrap().is_empty());
    }

    #[test]
    fn tile_levels_from_content_names() {
        assert_eq!(tile_level("http://s/3dtiles/x/content/r012.glb"), Some(2));
        assert_eq!(tile_level("content/r012-l3-4.glb"), Some(3));
        assert_eq!(tile_level("content/r012-k17.glb"), Some(3));
        assert_eq!(tile_level("content/r012-l4-17.glb?v=1"), Some(4));
        assert_eq!(tile_level("content/trees-r012.glb"), None);
        assert_eq!(tile_level("content/r012.json"), None);
        assert_eq!(tile_level("content/a-b.glb"), None);
    }
}

//! A minimal glTF 2.0 binary (GLB) writer for batched, per-feature meshes, and a reader for tests.
//!
//! What it writes:
//! - one scene, one node, one mesh with one triangle primitive per material;
//! - `POSITION` (FLOAT VEC3, or with [`PositionEncoding::Int16`] SHORT VEC3 under
//!   `KHR_mesh_quantization`, dequantised by the node's translation and scale), with `min`/`max`;
//! - no `NORMAL`: glTF clients then compute flat normals (spec §3.7.2.1), which lets walls and
//!   roofs share vertices (see docs/ARCHITECTURE.md, "3D Tiles", for the size measurement);
//! - `_FEATURE_ID_0` (FLOAT SCALAR, exact below 2²⁴) with `EXT_mesh_features` pointing at
//!   property table 0 of `EXT_structural_metadata` (schema embedded);
//! - indices UNSIGNED_SHORT when a primitive has < 65,536 vertices, else UNSIGNED_INT;
//! - every buffer view starts on an 8-byte boundary (EXT_structural_metadata requires 8 for
//!   property-table views; vertex data needs 4), vertex views have `byteStride` and `target`.

use serde_json::{json, Map, Value};

/// A PBR metallic-roughness material, single-sided.
#[derive(Debug, Clone, PartialEq)]
pub struct Material {
    pub name: String,
    /// Linear RGBA.
    pub base_color: [f32; 4],
    pub metallic: f32,
    pub roughness: f32,
    /// Base colour texture: index into [`Document::images`] (multiplied by `base_color`),
    /// sampled with REPEAT wrapping through `TEXCOORD_0`.
    pub texture: Option<usize>,
    /// Drawn from both sides (surfaces whose orientation the source does not guarantee: L4).
    pub double_sided: bool,
}

/// Triangles of one material: positions in the glTF frame (y up), one feature id per vertex,
/// counter-clockwise front faces.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Primitive {
    pub material: usize,
    pub positions: Vec<[f32; 3]>,
    pub feature_ids: Vec<u32>,
    pub indices: Vec<u32>,
    /// Optional unit normals, one per vertex (empty: none written, clients use flat normals).
    pub normals: Vec<[f32; 3]>,
    /// Optional texture coordinates (`TEXCOORD_0`, FLOAT VEC2), one per vertex; values beyond
    /// [0, 1] repeat the texture.
    pub uvs: Vec<[f32; 2]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PositionEncoding {
    /// 32-bit floats, 12 bytes per vertex.
    Float,
    /// 16-bit signed integers (KHR_mesh_quantization), stride 8 bytes; dequantised by the node's
    /// translation/scale. Resolution = extent / 65,534 per axis (3 cm on a 2 km tile).
    Int16,
}

/// One column of a property table.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    F32(Vec<f32>),
    Str(Vec<String>),
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Column::U8(v) => v.len(),
            Column::U16(v) => v.len(),
            Column::U32(v) => v.len(),
            Column::F32(v) => v.len(),
            Column::Str(v) => v.len(),
        }
    }
}

/// An `EXT_structural_metadata` property table: `class` in the schema, `count` rows, columns by
/// property name (their types must match the schema's class).
#[derive(Debug, Clone, PartialEq)]
pub struct PropertyTable {
    pub class: String,
    pub count: usize,
    pub columns: Vec<(String, Column)>,
}

/// Everything one GLB holds.
#[derive(Debug, Clone)]
pub struct Document {
    pub generator: String,
    pub materials: Vec<Material>,
    pub primitives: Vec<Primitive>,
    pub positions: PositionEncoding,
    /// `EXT_structural_metadata` schema object (see [`building_schema`]).
    pub schema: Option<Value>,
    pub property_table: Option<PropertyTable>,
    /// PNG or JPEG images (by their signature) embedded in the binary chunk; image i is texture i
    /// (REPEAT sampler).
    pub images: Vec<Vec<u8>>,
    /// Draw the mesh once per instance (`EXT_mesh_gpu_instancing` on the node; required).
    pub instances: Option<Instances>,
}

/// Per-instance transforms in the node's frame (glTF y-up): translation, rotation quaternion
/// (x, y, z, w), scale.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Instances {
    pub translations: Vec<[f32; 3]>,
    pub rotations: Vec<[f32; 4]>,
    pub scales: Vec<[f32; 3]>,
    /// Optional per-instance feature ids (`_FEATURE_ID_0` in the instancing attributes, with
    /// `EXT_instance_features` pointing at property table 0); empty: none.
    pub feature_ids: Vec<u32>,
}

/// The `tree` metadata class of instanced tree tiles: `id` (the tree's number in the tileset)
/// and `height` (m).
pub fn tree_schema() -> Value {
    json!({
        "id": "citytwin_tree",
        "name": "CityTwin tree",
        "classes": {"tree": {"properties": {
            "id": {"type": "SCALAR", "componentType": "UINT32", "required": true},
            "height": {"type": "SCALAR", "componentType": "FLOAT32", "required": true}
        }}}
    })
}

/// The `building` metadata class used by CityTwin tiles (docs/MODEL.md, "3D Tiles metadata").
/// `uses` are the BuildingUse enum names in value order.
pub fn building_schema(uses: &[&str]) -> Value {
    let use_values: Vec<Value> = uses
        .iter()
        .enumerate()
        .map(|(i, n)| json!({"name": n, "value": i}))
        .collect();
    json!({
        "id": "citytwin_building",
        "name": "CityTwin building",
        "version": "1",
        "enums": {
            "BuildingUse": {"valueType": "UINT8", "values": use_values},
            "Level": {"valueType": "UINT8", "values": [
                {"name": "L2", "value": 2}, {"name": "L3", "value": 3}, {"name": "L4", "value": 4}]}
        },
        "classes": {
            "building": {
                "name": "Building",
                "properties": {
                    "id": {"type": "SCALAR", "componentType": "UINT32", "required": true,
                           "description": "Dense building id of the model (GET /api/buildings/{id})"},
                    "name": {"type": "STRING", "description": "Display name (zh, else local, else en); empty if none"},
                    "height": {"type": "SCALAR", "componentType": "FLOAT32", "required": true,
                               "description": "Top above the base, metres"},
                    "floors": {"type": "SCALAR", "componentType": "UINT16", "noData": 65535,
                               "description": "Storeys above ground when known"},
                    "use": {"type": "ENUM", "enumType": "BuildingUse", "required": true},
                    "district": {"type": "STRING", "description": "District name; empty if none"},
                    "source": {"type": "STRING", "description": "Source path or builtin:… and the feature id there"},
                    "level": {"type": "ENUM", "enumType": "Level", "required": true,
                              "description": "Level of detail of the geometry in this tile"}
                }
            }
        }
    })
}

struct Bin {
    data: Vec<u8>,
    views: Vec<Value>,
}

impl Bin {
    fn align(&mut self, a: usize) {
        while self.data.len() % a != 0 {
            self.data.push(0);
        }
    }
    /// Appends bytes as a new buffer view; returns its index.
    fn view(&mut self, bytes: &[u8], stride: Option<usize>, target: Option<u32>) -> usize {
        self.align(8);
        let mut v = Map::new();
        v.insert("buffer".into(), json!(0));
        v.insert("byteOffset".into(), json!(self.data.len()));
        v.insert("byteLength".into(), json!(bytes.len()));
        if let Some(s) = stride {
            v.insert("byteStride".into(), json!(s));
        }
        if let Some(t) = target {
            v.insert("target".into(), json!(t));
        }
        self.data.extend_from_slice(bytes);
        self.views.push(Value::Object(v));
        self.views.len() - 1
    }
}

const ARRAY_BUFFER: u32 = 34962;
const ELEMENT_ARRAY_BUFFER: u32 = 34963;
const FLOAT: u32 = 5126;
const SHORT: u32 = 5122;
const UNSIGNED_SHORT: u32 = 5123;
const UNSIGNED_INT: u32 = 5125;

/// Serialises a document as GLB bytes.
pub fn write_glb(doc: &Document) -> Vec<u8> {
    let mut bin = Bin {
        data: Vec::new(),
        views: Vec::new(),
    };
    let mut accessors: Vec<Value> = Vec::new();
    let mut prims_json: Vec<Value> = Vec::new();

    // Quantisation frame over all primitives.
    let (mut lo, mut hi) = ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]);
    for p in &doc.primitives {
        for v in &p.positions {
            for k in 0..3 {
                lo[k] = lo[k].min(v[k]);
                hi[k] = hi[k].max(v[k]);
            }
        }
    }
    let any_vertex = lo[0].is_finite();
    let centre: [f64; 3] = std::array::from_fn(|k| {
        if any_vertex {
            (lo[k] as f64 + hi[k] as f64) / 2.0
        } else {
            0.0
        }
    });
    // scale per axis: metres per integer step; never zero.
    let step: [f64; 3] = std::array::from_fn(|k| {
        if any_vertex {
            ((hi[k] as f64 - lo[k] as f64) / 2.0 / 32767.0).max(1e-7)
        } else {
            1.0
        }
    });

    for p in &doc.primitives {
        assert_eq!(
            p.positions.len(),
            p.feature_ids.len(),
            "one feature id per vertex"
        );
        if p.positions.is_empty() || p.indices.is_empty() {
            continue;
        }
        let n = p.positions.len();
        let mut attrs = Map::new();
        // POSITION
        let pos_acc = match doc.positions {
            PositionEncoding::Float => {
                let mut bytes = Vec::with_capacity(n * 12);
                let (mut mn, mut mx) = ([f32::INFINITY; 3], [f32::NEG_INFINITY; 3]);
                for v in &p.positions {
                    for k in 0..3 {
                        bytes.extend_from_slice(&v[k].to_le_bytes());
                        mn[k] = mn[k].min(v[k]);
                        mx[k] = mx[k].max(v[k]);
                    }
                }
                let bv = bin.view(&bytes, Some(12), Some(ARRAY_BUFFER));
                accessors.push(
                    json!({"bufferView": bv, "componentType": FLOAT, "count": n, "type": "VEC3",
                                      "min": mn, "max": mx}),
                );
                accessors.len() - 1
            }
            PositionEncoding::Int16 => {
                let mut bytes = Vec::with_capacity(n * 8);
                let (mut mn, mut mx) = ([i16::MAX; 3], [i16::MIN; 3]);
                for v in &p.positions {
                    for k in 0..3 {
                        let q = ((v[k] as f64 - centre[k]) / step[k])
                            .round()
                            .clamp(-32767.0, 32767.0) as i16;
                        bytes.extend_from_slice(&q.to_le_bytes());
                        mn[k] = mn[k].min(q);
                        mx[k] = mx[k].max(q);
                    }
                    bytes.extend_from_slice(&[0, 0]);
                }
                let bv = bin.view(&bytes, Some(8), Some(ARRAY_BUFFER));
                accessors.push(
                    json!({"bufferView": bv, "componentType": SHORT, "count": n, "type": "VEC3",
                                      "min": mn, "max": mx}),
                );
                accessors.len() - 1
            }
        };
        attrs.insert("POSITION".into(), json!(pos_acc));
        // NORMAL (optional): FLOAT, or BYTE normalised under quantisation. With the node's
        // non-uniform scale S, clients transform normals by S⁻¹, so S·n is stored.
        if !p.normals.is_empty() {
            assert_eq!(p.normals.len(), n, "one normal per vertex");
            let (bytes, ct, stride, norm) = match doc.positions {
                PositionEncoding::Float => (p.normals.iter().flat_map(|v| v.iter().flat_map(|c| c.to_le_bytes())).collect::<Vec<u8>>(), FLOAT, 12, false),
                PositionEncoding::Int16 => {
                    let mut b = Vec::with_capacity(n * 4);
                    for v in &p.normals {
                        let s: [f64; 3] = std::array::from_fn(|k| v[k] as f64 * step[k]);
                        let l = (s[0] * s[0] + s[1] * s[1] + s[2] * s[2]).sqrt().max(1e-30);
                        for c in s {
                            b.push(((c / l * 127.0).round() as i8) as u8);
                        }
                        b.push(0);
                    }
                    (b, 5120u32, 4, true)
                }
            };
            let bv = bin.view(&bytes, Some(stride), Some(ARRAY_BUFFER));
            accessors.push(json!({"bufferView": bv, "componentType": ct, "normalized": norm, "count": n, "type": "VEC3"}));
            attrs.insert("NORMAL".into(), json!(accessors.len() - 1));
        }
        // TEXCOORD_0 (optional)
        if !p.uvs.is_empty() {
            assert_eq!(p.uvs.len(), n, "one UV per vertex");
            let (mut mn, mut mx) = ([f32::INFINITY; 2], [f32::NEG_INFINITY; 2]);
            let mut bytes = Vec::with_capacity(n * 8);
            for v in &p.uvs {
                for k in 0..2 {
                    bytes.extend_from_slice(&v[k].to_le_bytes());
                    mn[k] = mn[k].min(v[k]);
                    mx[k] = mx[k].max(v[k]);
                }
            }
            let bv = bin.view(&bytes, Some(8), Some(ARRAY_BUFFER));
            accessors.push(json!({"bufferView": bv, "componentType": FLOAT, "count": n, "type": "VEC2", "min": mn, "max": mx}));
            attrs.insert("TEXCOORD_0".into(), json!(accessors.len() - 1));
        }
        // _FEATURE_ID_0
        let mut bytes = Vec::with_capacity(n * 4);
        for &f in &p.feature_ids {
            bytes.extend_from_slice(&(f as f32).to_le_bytes());
        }
        let bv = bin.view(&bytes, Some(4), Some(ARRAY_BUFFER));
        accessors
            .push(json!({"bufferView": bv, "componentType": FLOAT, "count": n, "type": "SCALAR"}));
        attrs.insert("_FEATURE_ID_0".into(), json!(accessors.len() - 1));
        // indices
        let (ct, bytes) = if n < 65536 {
            (
                UNSIGNED_SHORT,
                p.indices
                    .iter()
                    .flat_map(|&i| (i as u16).to_le_bytes())
                    .collect::<Vec<u8>>(),
            )
        } else {
            (
                UNSIGNED_INT,
                p.indices
                    .iter()
                    .flat_map(|&i| i.to_le_bytes())
                    .collect::<Vec<u8>>(),
            )
        };
        let bv = bin.view(&bytes, None, Some(ELEMENT_ARRAY_BUFFER));
        accessors.push(json!({"bufferView": bv, "componentType": ct, "count": p.indices.len(), "type": "SCALAR"}));
        let idx_acc = accessors.len() - 1;
        let mut distinct: Vec<u32> = p.feature_ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        let mut prim =
            json!({"attributes": attrs, "indices": idx_acc, "material": p.material, "mode": 4});
        let instance_features = doc.instances.as_ref().is_some_and(|i| !i.feature_ids.is_empty());
        if doc.property_table.is_some() && !instance_features {
            prim["extensions"] = json!({"EXT_mesh_features": {"featureIds": [
                {"featureCount": distinct.len(), "attribute": 0, "propertyTable": 0}]}});
        }
        prims_json.push(prim);
    }

    // Property table.
    let mut root_ext = Map::new();
    let mut used = vec!["EXT_mesh_features", "EXT_structural_metadata"];
    let mut required: Vec<&str> = vec![];
    if let (Some(schema), Some(table)) = (&doc.schema, &doc.property_table) {
        let mut props = Map::new();
        for (name, col) in &table.columns {
            assert_eq!(col.len(), table.count, "column {name} has a wrong length");
            // A string column whose values are all empty would need a zero-length buffer view
            // (invalid glTF); the optional property is omitted instead (clients read it as absent).
            if let Column::Str(v) = col {
                if v.iter().all(|s| s.is_empty()) {
                    continue;
                }
            }
            let entry = match col {
                Column::U8(v) => json!({"values": bin.view(v, None, None)}),
                Column::U16(v) => {
                    json!({"values": bin.view(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(), None, None)})
                }
                Column::U32(v) => {
                    json!({"values": bin.view(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(), None, None)})
                }
                Column::F32(v) => {
                    json!({"values": bin.view(&v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<_>>(), None, None)})
                }
                Column::Str(v) => {
                    let mut data = Vec::new();
                    let mut offsets = Vec::with_capacity((v.len() + 1) * 4);
                    for s in v {
                        offsets.extend_from_slice(&(data.len() as u32).to_le_bytes());
                        data.extend_from_slice(s.as_bytes());
                    }
                    offsets.extend_from_slice(&(data.len() as u32).to_le_bytes());
                    let values = bin.view(&data, None, None);
                    let offs = bin.view(&offsets, None, None);
                    json!({"values": values, "stringOffsets": offs, "stringOffsetType": "UINT32"})
                }
            };
            props.insert(name.clone(), entry);
        }
        root_ext.insert(
            "EXT_structural_metadata".into(),
            json!({"schema": schema, "propertyTables": [{"class": table.class, "count": table.count, "properties": props}]}),
        );
    } else {
        used.clear();
    }
    let mut node = json!({"mesh": 0});
    if let Some(inst) = &doc.instances {
        let n = inst.translations.len();
        assert!(n > 0 && inst.rotations.len() == n && inst.scales.len() == n, "one rotation and scale per instance");
        let mut attrs = Map::new();
        let f = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let t: Vec<f32> = inst.translations.iter().flatten().copied().collect();
        let r: Vec<f32> = inst.rotations.iter().flatten().copied().collect();
        let sc: Vec<f32> = inst.scales.iter().flatten().copied().collect();
        for (name, data, ty) in [("TRANSLATION", &t, "VEC3"), ("ROTATION", &r, "VEC4"), ("SCALE", &sc, "VEC3")] {
            let bv = bin.view(&f(data), None, None);
            accessors.push(json!({"bufferView": bv, "componentType": FLOAT, "count": n, "type": ty}));
            attrs.insert(name.into(), json!(accessors.len() - 1));
        }
        if !inst.feature_ids.is_empty() {
            assert_eq!(inst.feature_ids.len(), n, "one feature id per instance");
            let ids: Vec<f32> = inst.feature_ids.iter().map(|&f| f as f32).collect();
            let bv = bin.view(&f(&ids), None, None);
            accessors.push(json!({"bufferView": bv, "componentType": FLOAT, "count": n, "type": "SCALAR"}));
            attrs.insert("_FEATURE_ID_0".into(), json!(accessors.len() - 1));
        }
        node["extensions"] = json!({"EXT_mesh_gpu_instancing": {"attributes": attrs}});
        if !inst.feature_ids.is_empty() {
            let mut distinct = inst.feature_ids.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let mut fid = json!({"featureCount": distinct.len(), "attribute": 0});
            if doc.property_table.is_some() {
                fid["propertyTable"] = json!(0);
            }
            node["extensions"]["EXT_instance_features"] = json!({"featureIds": [fid]});
            used.retain(|e| *e != "EXT_mesh_features");
            used.push("EXT_instance_features");
        }
        used.push("EXT_mesh_gpu_instancing");
        required.push("EXT_mesh_gpu_instancing");
    }
    if doc.positions == PositionEncoding::Int16 {
        used.push("KHR_mesh_quantization");
        required.push("KHR_mesh_quantization");
        node["translation"] = json!(centre);
        node["scale"] = json!(step);
    }
    let images: Vec<Value> = doc
        .images
        .iter()
        .map(|img| {
            let mime = if img.starts_with(&[0xFF, 0xD8]) { "image/jpeg" } else { "image/png" };
            json!({"bufferView": bin.view(img, None, None), "mimeType": mime})
        })
        .collect();
    bin.align(4);
    let materials: Vec<Value> = doc
        .materials
        .iter()
        .map(|m| {
            let mut j = json!({"name": m.name, "doubleSided": m.double_sided, "pbrMetallicRoughness": {
                "baseColorFactor": m.base_color, "metallicFactor": m.metallic, "roughnessFactor": m.roughness}});
            if let Some(t) = m.texture {
                assert!(t < doc.images.len(), "material {} uses a missing image", m.name);
                j["pbrMetallicRoughness"]["baseColorTexture"] = json!({"index": t});
            }
            j
        })
        .collect();
    let mut gltf = json!({
        "asset": {"version": "2.0", "generator": doc.generator},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [node],
        "meshes": [{"primitives": prims_json}],
        "materials": materials,
        "accessors": accessors,
        "bufferViews": bin.views,
        "buffers": [{"byteLength": bin.data.len()}],
    });
    if !images.is_empty() {
        // LINEAR / LINEAR_MIPMAP_LINEAR, REPEAT in both directions
        gltf["samplers"] = json!([{"magFilter": 9729, "minFilter": 9987, "wrapS": 10497, "wrapT": 10497}]);
        gltf["textures"] = json!((0..images.len()).map(|i| json!({"sampler": 0, "source": i})).collect::<Vec<_>>());
        gltf["images"] = json!(images);
    }
    if !used.is_empty() {
        gltf["extensionsUsed"] = json!(used);
    }
    if !required.is_empty() {
        gltf["extensionsRequired"] = json!(required);
    }
    if !root_ext.is_empty() {
        gltf["extensions"] = Value::Object(root_ext);
    }
    let mut js = serde_json::to_vec(&gltf).expect("JSON");
    while js.len() % 4 != 0 {
        js.push(b' ');
    }
    let total = 12 + 8 + js.len() + 8 + bin.data.len();
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(b"glTF");
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&(total as u32).to_le_bytes());
    out.extend_from_slice(&(js.len() as u32).to_le_bytes());
    out.extend_from_slice(b"JSON");
    out.extend_from_slice(&js);
    out.extend_from_slice(&(bin.data.len() as u32).to_le_bytes());
    out.extend_from_slice(b"BIN\0");
    out.extend_from_slice(&bin.data);
    out
}

/// A parsed GLB: JSON and binary chunk. Used by tests and tools.
#[derive(Debug, Clone)]
pub struct Glb {
    pub json: Value,
    pub bin: Vec<u8>,
}

impl Glb {
    pub fn parse(bytes: &[u8]) -> Result<Glb, String> {
        let u32_at = |o: usize| -> Result<u32, String> {
            bytes
                .get(o..o + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| format!("truncated at {o}"))
        };
        if bytes.get(0..4) != Some(b"glTF") {
            return Err("not a GLB (magic)".into());
        }
        if u32_at(4)? != 2 {
            return Err("GLB version is not 2".into());
        }
        if u32_at(8)? as usize != bytes.len() {
            return Err("GLB length field does not match".into());
        }
        let jlen = u32_at(12)? as usize;
        if bytes.get(16..20) != Some(b"JSON") {
            return Err("first chunk is not JSON".into());
        }
        let json: Value =
            serde_json::from_slice(bytes.get(20..20 + jlen).ok_or("truncated JSON chunk")?)
                .map_err(|e| e.to_string())?;
        let mut bin = Vec::new();
        let o = 20 + jlen;
        if o < bytes.len() {
            let blen = u32_at(o)? as usize;
            if bytes.get(o + 4..o + 8) != Some(b"BIN\0") {
                return Err("second chunk is not BIN".into());
            }
            bin = bytes
                .get(o + 8..o + 8 + blen)
                .ok_or("truncated BIN chunk")?
                .to_vec();
        }
        Ok(Glb { json, bin })
    }

    fn view_bytes(&self, view: usize) -> (&[u8], usize) {
        let v = &self.json["bufferViews"][view];
        let off = v["byteOffset"].as_u64().unwrap_or(0) as usize;
        let len = v["byteLength"].as_u64().unwrap() as usize;
        (
            &self.bin[off..off + len],
            v["byteStride"].as_u64().unwrap_or(0) as usize,
        )
    }

    /// Reads a SCALAR/VECn accessor as f64 components (FLOAT, SHORT, UNSIGNED_SHORT, UNSIGNED_INT,
    /// UNSIGNED_BYTE; not normalised).
    pub fn accessor(&self, index: usize) -> Vec<Vec<f64>> {
        let a = &self.json["accessors"][index];
        let count = a["count"].as_u64().unwrap() as usize;
        let comps = match a["type"].as_str().unwrap() {
            "SCALAR" => 1,
            "VEC2" => 2,
            "VEC3" => 3,
            "VEC4" => 4,
            t => panic!("accessor type {t}"),
        };
        let ct = a["componentType"].as_u64().unwrap() as u32;
        let size = match ct {
            5120 | 5121 => 1,
            5122 | 5123 => 2,
            _ => 4,
        };
        let (bytes, stride) = self.view_bytes(a["bufferView"].as_u64().unwrap() as usize);
        let stride = if stride == 0 { size * comps } else { stride };
        let off0 = a["byteOffset"].as_u64().unwrap_or(0) as usize;
        (0..count)
            .map(|i| {
                (0..comps)
                    .map(|k| {
                        let o = off0 + i * stride + k * size;
                        let b = &bytes[o..o + size];
                        match ct {
                            5126 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                            5125 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                            5122 => i16::from_le_bytes([b[0], b[1]]) as f64,
                            5123 => u16::from_le_bytes([b[0], b[1]]) as f64,
                            5121 => b[0] as f64,
                            5120 => b[0] as i8 as f64,
                            _ => panic!("componentType {ct}"),
                        }
                    })
                    .collect()
            })
            .collect()
    }

    /// Positions of every primitive of mesh 0 in the glTF frame (node 0's translation and scale
    /// applied, as for KHR_mesh_quantization), with indices and feature ids:
    /// `(positions, indices, feature_ids, material)` per primitive.
    #[allow(clippy::type_complexity)]
    pub fn triangles(&self) -> Vec<(Vec<[f64; 3]>, Vec<u32>, Vec<u32>, usize)> {
        let node = &self.json["nodes"][0];
        let t: [f64; 3] = std::array::from_fn(|k| node["translation"][k].as_f64().unwrap_or(0.0));
        let s: [f64; 3] = std::array::from_fn(|k| node["scale"][k].as_f64().unwrap_or(1.0));
        let mut out = Vec::new();
        for p in self.json["meshes"][0]["primitives"].as_array().unwrap() {
            let pos = self.accessor(p["attributes"]["POSITION"].as_u64().unwrap() as usize);
            let pos: Vec<[f64; 3]> = pos
                .iter()
                .map(|v| std::array::from_fn(|k| t[k] + s[k] * v[k]))
                .collect();
            let idx = self
                .accessor(p["indices"].as_u64().unwrap() as usize)
                .iter()
                .map(|v| v[0] as u32)
                .collect();
            let fid = self
                .accessor(p["attributes"]["_FEATURE_ID_0"].as_u64().unwrap() as usize)
                .iter()
                .map(|v| v[0] as u32)
                .collect();
            out.push((pos, idx, fid, p["material"].as_u64().unwrap_or(0) as usize));
        }
        out
    }

    /// Values of a property-table column: numbers as f64 (enums as their integer value), strings
    /// as `Value::String`.
    pub fn property(&self, name: &str) -> Option<Vec<Value>> {
        let meta = &self.json["extensions"]["EXT_structural_metadata"];
        let table = &meta["propertyTables"][0];
        let count = table["count"].as_u64()? as usize;
        let class = table["class"].as_str()?;
        let def = &meta["schema"]["classes"][class]["properties"][name];
        let col = &table["properties"][name];
        let (bytes, _) = self.view_bytes(col["values"].as_u64()? as usize);
        let ty = def["type"].as_str()?;
        if ty == "STRING" {
            let (offs, _) = self.view_bytes(col["stringOffsets"].as_u64()? as usize);
            let off = |i: usize| {
                u32::from_le_bytes([
                    offs[4 * i],
                    offs[4 * i + 1],
                    offs[4 * i + 2],
                    offs[4 * i + 3],
                ]) as usize
            };
            return Some(
                (0..count)
                    .map(|i| {
                        Value::String(
                            String::from_utf8_lossy(&bytes[off(i)..off(i + 1)]).into_owned(),
                        )
                    })
                    .collect(),
            );
        }
        let ct = if ty == "ENUM" {
            meta["schema"]["enums"][def["enumType"].as_str()?]["valueType"]
                .as_str()
                .unwrap_or("UINT16")
                .to_string()
        } else {
            def["componentType"].as_str()?.to_string()
        };
        Some(
            (0..count)
                .map(|i| {
                    let v = match ct.as_str() {
                        "UINT8" => bytes[i] as f64,
                        "UINT16" => u16::from_le_bytes([bytes[2 * i], bytes[2 * i + 1]]) as f64,
                        "UINT32" => {
                            u32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap()) as f64
                        }
                        "FLOAT32" => {
                            f32::from_le_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap()) as f64
                        }
                        _ => f64::NAN,
                    };
                    json!(v)
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cube_doc(enc: PositionEncoding) -> Document {
        // unit cube, 8 shared vertices, 12 CCW-outward triangles (y up)
        let p: Vec<[f32; 3]> = vec![
            [0., 0., 0.],
            [1., 0., 0.],
            [1., 0., 1.],
            [0., 0., 1.],
            [0., 1., 0.],
            [1., 1., 0.],
            [1., 1., 1.],
            [0., 1., 1.],
        ];
        let idx = vec![
            0, 1, 2, 0, 2, 3, // bottom (y=0), normal -y
            4, 6, 5, 4, 7, 6, // top, +y
            0, 4, 5, 0, 5, 1, // z=0, -z
            3, 2, 6, 3, 6, 7, // z=1, +z
            0, 3, 7, 0, 7, 4, // x=0, -x
            1, 5, 6, 1, 6, 2, // x=1, +x
        ];
        Document {
            generator: "test".into(),
            materials: vec![Material {
                name: "m".into(),
                base_color: [1., 0., 0., 1.],
                metallic: 0.,
                roughness: 1.,
                texture: None,
                double_sided: false,
            }],
            primitives: vec![Primitive {
                material: 0,
                feature_ids: vec![0; 8],
                positions: p,
                indices: idx,
                normals: vec![],
                uvs: vec![],
            }],
            positions: enc,
            images: vec![],
            instances: None,
            schema: Some(building_schema(&["residential", "unknown"])),
            property_table: Some(PropertyTable {
                class: "building".into(),
                count: 1,
                columns: vec![
                    ("id".into(), Column::U32(vec![42])),
                    ("name".into(), Column::Str(vec!["市府大厦".into()])),
                    ("height".into(), Column::F32(vec![1.0])),
                    ("floors".into(), Column::U16(vec![65535])),
                    ("use".into(), Column::U8(vec![1])),
                    ("district".into(), Column::Str(vec!["沈河区".into()])),
                    ("source".into(), Column::Str(vec!["builtin".into()])),
                    ("level".into(), Column::U8(vec![2])),
                ],
            }),
        }
    }

    #[test]
    fn glb_round_trips_structure_alignment_and_metadata() {
        for enc in [PositionEncoding::Float, PositionEncoding::Int16] {
            let bytes = write_glb(&cube_doc(enc));
            assert_eq!(bytes.len() % 4, 0);
            let g = Glb::parse(&bytes).unwrap();
            for v in g.json["bufferViews"].as_array().unwrap() {
                assert_eq!(v["byteOffset"].as_u64().unwrap() % 8, 0);
                if let Some(s) = v["byteStride"].as_u64() {
                    assert_eq!(s % 4, 0);
                }
            }
            let tris = g.triangles();
            assert_eq!(tris.len(), 1);
            let (pos, idx, fid, _) = &tris[0];
            assert_eq!(idx.len(), 36);
            assert!(fid.iter().all(|&f| f == 0));
            // dequantised positions reproduce the cube corners
            for (a, b) in pos.iter().zip(cube_doc(enc).primitives[0].positions.iter()) {
                for k in 0..3 {
                    assert!((a[k] - b[k] as f64).abs() < 1e-4, "{a:?} vs {b:?}");
                }
            }
            // the position accessor's min/max are those of the stored values
            let acc = &g.json["accessors"][0];
            assert_eq!(acc["min"].as_array().unwrap().len(), 3);
            assert_eq!(g.property("id").unwrap(), vec![json!(42.0)]);
            assert_eq!(g.property("name").unwrap(), vec![json!("市府大厦")]);
            assert_eq!(g.property("district").unwrap(), vec![json!("沈河区")]);
            assert_eq!(g.property("use").unwrap(), vec![json!(1.0)]);
            assert_eq!(g.property("level").unwrap(), vec![json!(2.0)]);
            assert_eq!(g.property("floors").unwrap(), vec![json!(65535.0)]);
            let req = g.json["extensionsRequired"]
                .as_array()
                .map(|a| a.len())
                .unwrap_or(0);
            assert_eq!(req, if enc == PositionEncoding::Int16 { 1 } else { 0 });
        }
    }
}

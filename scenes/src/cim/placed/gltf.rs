//! A small, bounds-checked glTF 2.0 / GLB reader: the node hierarchy, POSITION accessors and
//! triangle counts (see the parent module for the supported subset).

use super::LocalModel;
use crate::report::{BuildReport, IngestError};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

const GLB_MAGIC: &[u8; 4] = b"glTF";
const CHUNK_JSON: u32 = 0x4E4F_534A;
const CHUNK_BIN: u32 = 0x004E_4942;
const MAX_DEPTH: usize = 256;

#[derive(Debug, Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Root {
    scene: Option<usize>,
    scenes: Vec<Scene>,
    nodes: Vec<Node>,
    meshes: Vec<Mesh>,
    accessors: Vec<Accessor>,
    buffer_views: Vec<BufferView>,
    buffers: Vec<Buffer>,
    materials: Vec<serde_json::Value>,
    textures: Vec<serde_json::Value>,
    images: Vec<serde_json::Value>,
    extensions_required: Vec<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Scene {
    nodes: Vec<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Node {
    children: Vec<usize>,
    mesh: Option<usize>,
    matrix: Option<Vec<f64>>,
    translation: Option<Vec<f64>>,
    rotation: Option<Vec<f64>>,
    scale: Option<Vec<f64>>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Mesh {
    primitives: Vec<Primitive>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct Primitive {
    attributes: BTreeMap<String, usize>,
    indices: Option<usize>,
    material: Option<usize>,
    mode: Option<u32>,
    extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Accessor {
    buffer_view: Option<usize>,
    #[serde(default)]
    byte_offset: usize,
    component_type: u32,
    #[serde(default)]
    normalized: bool,
    count: usize,
    #[serde(rename = "type")]
    type_: String,
    sparse: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BufferView {
    buffer: usize,
    #[serde(default)]
    byte_offset: usize,
    byte_length: usize,
    byte_stride: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Buffer {
    uri: Option<String>,
    byte_length: usize,
}

type Mat4 = [f64; 16]; // column-major, as glTF

fn mat_mul(a: &Mat4, b: &Mat4) -> Mat4 {
    let mut r = [0.0; 16];
    for c in 0..4 {
        for row in 0..4 {
            r[c * 4 + row] = (0..4).map(|k| a[k * 4 + row] * b[c * 4 + k]).sum();
        }
    }
    r
}

const IDENTITY: Mat4 = [
    1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0,
];

fn node_matrix(
    n: &Node,
    idx: usize,
    err: &dyn Fn(String) -> IngestError,
) -> Result<Mat4, IngestError> {
    let bad = |what: &str| {
        err(format!(
            "node {idx}: `{what}` has the wrong number of components or is not finite"
        ))
    };
    if let Some(m) = &n.matrix {
        if m.len() != 16 || m.iter().any(|x| !x.is_finite()) {
            return Err(bad("matrix"));
        }
        let mut r = [0.0; 16];
        r.copy_from_slice(m);
        return Ok(r);
    }
    let t = match &n.translation {
        Some(t) if t.len() == 3 && t.iter().all(|x| x.is_finite()) => [t[0], t[1], t[2]],
        Some(_) => return Err(bad("translation")),
        None => [0.0; 3],
    };
    let q = match &n.rotation {
        Some(q) if q.len() == 4 && q.iter().all(|x| x.is_finite()) => [q[0], q[1], q[2], q[3]],
        Some(_) => return Err(bad("rotation")),
        None => [0.0, 0.0, 0.0, 1.0],
    };
    let s = match &n.scale {
        Some(s) if s.len() == 3 && s.iter().all(|x| x.is_finite()) => [s[0], s[1], s[2]],
        Some(_) => return Err(bad("scale")),
        None => [1.0; 3],
    };
    let norm = (q.iter().map(|x| x * x).sum::<f64>()).sqrt();
    let [x, y, z, w] = if norm > 0.0 {
        q.map(|c| c / norm)
    } else {
        [0.0, 0.0, 0.0, 1.0]
    };
    // Rotation matrix columns (column-major), then scale columns, then translation.
    let r = [
        [
            1.0 - 2.0 * (y * y + z * z),
            2.0 * (x * y + z * w),
            2.0 * (x * z - y * w),
        ],
        [
            2.0 * (x * y - z * w),
            1.0 - 2.0 * (x * x + z * z),
            2.0 * (y * z + x * w),
        ],
        [
            2.0 * (x * z + y * w),
            2.0 * (y * z - x * w),
            1.0 - 2.0 * (x * x + y * y),
        ],
    ];
    let mut m = [0.0; 16];
    for c in 0..3 {
        for row in 0..3 {
            m[c * 4 + row] = r[c][row] * s[c];
        }
    }
    m[12] = t[0];
    m[13] = t[1];
    m[14] = t[2];
    m[15] = 1.0;
    Ok(m)
}

fn transform(m: &Mat4, p: [f64; 3]) -> [f64; 3] {
    let mut r = [0.0; 3];
    for (row, out) in r.iter_mut().enumerate() {
        *out = m[row] * p[0] + m[4 + row] * p[1] + m[8 + row] * p[2] + m[12 + row];
    }
    r
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

/// Splits a GLB into its JSON text and BIN chunk.
fn split_glb<'a>(
    bytes: &'a [u8],
    err: &dyn Fn(String) -> IngestError,
) -> Result<(&'a [u8], Option<&'a [u8]>), IngestError> {
    if bytes.len() < 12 {
        return Err(err(format!(
            "truncated GLB: {} bytes, shorter than the 12-byte header",
            bytes.len()
        )));
    }
    if &bytes[0..4] != GLB_MAGIC {
        return Err(err(format!(
            "bad GLB magic {:?} (expected \"glTF\")",
            String::from_utf8_lossy(&bytes[0..4])
        )));
    }
    let version = u32_at(bytes, 4).unwrap_or(0);
    if version != 2 {
        return Err(err(format!(
            "unsupported GLB version {version} (only glTF 2.0 is read)"
        )));
    }
    let total = u32_at(bytes, 8).unwrap_or(0) as usize;
    if total > bytes.len() {
        return Err(err(format!(
            "truncated GLB: header declares {total} bytes, the file has {}",
            bytes.len()
        )));
    }
    let bytes = &bytes[..total];
    let mut at = 12;
    let mut json = None;
    let mut bin = None;
    let mut n = 0;
    while at < bytes.len() {
        let (Some(len), Some(ty)) = (u32_at(bytes, at), u32_at(bytes, at + 4)) else {
            return Err(err(format!(
                "truncated GLB: chunk header {n} at byte {at} is cut off"
            )));
        };
        let start = at + 8;
        let end = start
            .checked_add(len as usize)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                err(format!(
                    "truncated GLB: chunk {n} at byte {at} declares {len} bytes, only {} remain",
                    bytes.len().saturating_sub(start)
                ))
            })?;
        let data = &bytes[start..end];
        match ty {
            CHUNK_JSON if n == 0 => json = Some(data),
            CHUNK_BIN if n == 1 => bin = Some(data),
            CHUNK_JSON | CHUNK_BIN => {
                return Err(err(format!(
                    "GLB chunk {n} of type {ty:#x} is out of order"
                )))
            }
            _ => {} // unknown chunks are skipped, as the spec says
        }
        at = end.div_ceil(4) * 4;
        n += 1;
    }
    let json = json.ok_or_else(|| err("GLB has no JSON chunk".into()))?;
    Ok((json, bin))
}

fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' | b'\n' | b'\r' | b' ' => continue,
            _ => return None,
        };
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn component_size(ct: u32) -> Option<usize> {
    match ct {
        5120 | 5121 => Some(1),
        5122 | 5123 => Some(2),
        5125 | 5126 => Some(4),
        _ => None,
    }
}

fn read_component(b: &[u8], ct: u32, normalized: bool) -> f64 {
    // `b` has exactly component_size(ct) bytes (checked by the caller).
    match ct {
        5120 => {
            let v = b[0] as i8 as f64;
            if normalized {
                (v / 127.0).max(-1.0)
            } else {
                v
            }
        }
        5121 => {
            let v = b[0] as f64;
            if normalized {
                v / 255.0
            } else {
                v
            }
        }
        5122 => {
            let v = i16::from_le_bytes([b[0], b[1]]) as f64;
            if normalized {
                (v / 32767.0).max(-1.0)
            } else {
                v
            }
        }
        5123 => {
            let v = u16::from_le_bytes([b[0], b[1]]) as f64;
            if normalized {
                v / 65535.0
            } else {
                v
            }
        }
        5125 => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
        _ => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
    }
}

/// A bounds-checked accessor: (buffer view bytes, first element offset, stride, element size).
type Located<'b> = (&'b [u8], usize, usize, usize);

struct Doc<'a> {
    root: Root,
    buffers: Vec<std::borrow::Cow<'a, [u8]>>,
}

impl Doc<'_> {
    /// Bounds-checks accessor `ai` with `ncomp` components; returns (buffer, first byte, stride,
    /// element size) or None for an accessor without a buffer view (all zeros).
    fn locate(
        &self,
        ai: usize,
        err: &dyn Fn(String) -> IngestError,
    ) -> Result<Option<Located<'_>>, IngestError> {
        let a = self
            .root
            .accessors
            .get(ai)
            .ok_or_else(|| err(format!("accessor {ai} does not exist")))?;
        let ncomp = match a.type_.as_str() {
            "SCALAR" => 1,
            "VEC2" => 2,
            "VEC3" => 3,
            "VEC4" | "MAT2" => 4,
            "MAT3" => 9,
            "MAT4" => 16,
            t => return Err(err(format!("accessor {ai}: unknown type {t:?}"))),
        };
        let cs = component_size(a.component_type).ok_or_else(|| {
            err(format!(
                "accessor {ai}: unknown componentType {}",
                a.component_type
            ))
        })?;
        let elem = cs * ncomp;
        let Some(bvi) = a.buffer_view else {
            return Ok(None);
        };
        let bv = self
            .root
            .buffer_views
            .get(bvi)
            .ok_or_else(|| err(format!("accessor {ai}: bufferView {bvi} does not exist")))?;
        let buf = self.buffers.get(bv.buffer).ok_or_else(|| {
            err(format!(
                "bufferView {bvi}: buffer {} does not exist",
                bv.buffer
            ))
        })?;
        let view_end = bv
            .byte_offset
            .checked_add(bv.byte_length)
            .filter(|&e| e <= buf.len())
            .ok_or_else(|| {
                err(format!(
                    "bufferView {bvi} out of bounds: bytes {}..{}+{} of a {}-byte buffer {}",
                    bv.byte_offset,
                    bv.byte_offset,
                    bv.byte_length,
                    buf.len(),
                    bv.buffer
                ))
            })?;
        let stride = bv.byte_stride.unwrap_or(elem);
        if stride < elem {
            return Err(err(format!("bufferView {bvi}: byteStride {stride} is smaller than the {elem}-byte element of accessor {ai}")));
        }
        if a.count > 0 {
            let need = (a.count - 1)
                .checked_mul(stride)
                .and_then(|x| x.checked_add(a.byte_offset))
                .and_then(|x| x.checked_add(elem));
            match need {
                Some(n) if n <= bv.byte_length => {}
                _ => {
                    return Err(err(format!(
                        "accessor {ai} out of bounds: {} elements of {elem} bytes, stride {stride}, offset {} exceed bufferView {bvi} ({} bytes)",
                        a.count, a.byte_offset, bv.byte_length
                    )))
                }
            }
        }
        Ok(Some((
            &buf[bv.byte_offset..view_end],
            a.byte_offset,
            stride,
            elem,
        )))
    }
}

/// Parses glTF/GLB bytes and loads their buffers (bounds of each buffer checked).
fn parse_doc<'a>(bytes: &'a [u8], dir: Option<&Path>, file: &str) -> Result<Doc<'a>, IngestError> {
    let err = |m: String| IngestError::file(file, m);
    let is_glb = bytes.starts_with(GLB_MAGIC) || file.to_ascii_lowercase().ends_with(".glb");
    let (json, bin) = if is_glb {
        split_glb(bytes, &err)?
    } else {
        (bytes, None)
    };
    let root: Root =
        serde_json::from_slice(json).map_err(|e| err(format!("invalid glTF JSON: {e}")))?;
    for ext in &root.extensions_required {
        if ext == "KHR_draco_mesh_compression" || ext == "EXT_meshopt_compression" {
            return Err(err(format!(
                "requires the unsupported extension {ext} (vertices cannot be read)"
            )));
        }
    }
    let mut buffers = Vec::with_capacity(root.buffers.len());
    for (i, b) in root.buffers.iter().enumerate() {
        let data: std::borrow::Cow<[u8]> = match &b.uri {
            None if i == 0 && bin.is_some() => std::borrow::Cow::Borrowed(bin.unwrap_or_default()),
            None => {
                return Err(err(format!(
                    "buffer {i} has no uri and there is no GLB BIN chunk for it"
                )))
            }
            Some(uri) if uri.starts_with("data:") => {
                let payload = uri
                    .split_once(";base64,")
                    .map(|(_, p)| p)
                    .ok_or_else(|| err(format!("buffer {i}: data URI is not base64")))?;
                std::borrow::Cow::Owned(
                    base64_decode(payload)
                        .ok_or_else(|| err(format!("buffer {i}: bad base64 in data URI")))?,
                )
            }
            Some(uri) => {
                let p = dir
                    .map(|d| d.join(uri))
                    .unwrap_or_else(|| Path::new(uri).to_path_buf());
                std::borrow::Cow::Owned(
                    std::fs::read(&p).map_err(|e| {
                        err(format!("buffer {i}: cannot read {}: {e}", p.display()))
                    })?,
                )
            }
        };
        if data.len() < b.byte_length {
            return Err(err(format!(
                "buffer {i} declares {} bytes, only {} are present (truncated)",
                b.byte_length,
                data.len()
            )));
        }
        buffers.push(data);
    }
    let doc = Doc { root, buffers };
    Ok(doc)
}

/// Reads a glTF/GLB file into a [`LocalModel`] (vertices in local ENU metres).
pub fn read(path: &Path, file: &str, report: &mut BuildReport) -> Result<LocalModel, IngestError> {
    let bytes =
        std::fs::read(path).map_err(|e| IngestError::file(file, format!("cannot read: {e}")))?;
    read_bytes(&bytes, path.parent(), file, report)
}

/// Reads glTF/GLB bytes; `dir` resolves external buffer URIs of `.gltf` files.
pub fn read_bytes(
    bytes: &[u8],
    dir: Option<&Path>,
    file: &str,
    report: &mut BuildReport,
) -> Result<LocalModel, IngestError> {
    let err = |m: String| IngestError::file(file, m);
    let doc = parse_doc(bytes, dir, file)?;
    let root = &doc.root;

    let scene_roots: Vec<usize> = match root.scene.or(if root.scenes.is_empty() {
        None
    } else {
        Some(0)
    }) {
        Some(s) => root
            .scenes
            .get(s)
            .ok_or_else(|| err(format!("default scene {s} does not exist")))?
            .nodes
            .clone(),
        None => {
            let mut is_child = vec![false; root.nodes.len()];
            for n in &root.nodes {
                for &c in &n.children {
                    if let Some(x) = is_child.get_mut(c) {
                        *x = true;
                    }
                }
            }
            report.warn(format!(
                "{file}: glTF has no scene: walking all {} root nodes",
                is_child.iter().filter(|c| !**c).count()
            ));
            (0..root.nodes.len()).filter(|&i| !is_child[i]).collect()
        }
    };

    let mut out = LocalModel::default();
    let mut counters: BTreeMap<&'static str, u64> = BTreeMap::new();
    // Depth-first walk with an explicit stack: (node, parent matrix, depth).
    let mut stack: Vec<(usize, Mat4, usize)> = scene_roots
        .iter()
        .rev()
        .map(|&n| (n, IDENTITY, 0))
        .collect();
    let mut visits = 0usize;
    while let Some((ni, parent, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(err(format!(
                "node hierarchy deeper than {MAX_DEPTH} levels at node {ni} (cyclic?)"
            )));
        }
        visits += 1;
        if visits > 1_000_000 + root.nodes.len() * 64 {
            return Err(err(
                "node hierarchy expands to too many instances (cyclic?)".into(),
            ));
        }
        let node = root
            .nodes
            .get(ni)
            .ok_or_else(|| err(format!("node {ni} does not exist")))?;
        let world = mat_mul(&parent, &node_matrix(node, ni, &err)?);
        if let Some(mi) = node.mesh {
            let mesh = root
                .meshes
                .get(mi)
                .ok_or_else(|| err(format!("node {ni}: mesh {mi} does not exist")))?;
            for (pi, prim) in mesh.primitives.iter().enumerate() {
                let what = format!("mesh {mi} primitive {pi}");
                if prim
                    .extensions
                    .as_ref()
                    .is_some_and(|e| e.contains_key("KHR_draco_mesh_compression"))
                {
                    *counters.entry("unsupported_primitives").or_default() += 1;
                    report.warn(format!(
                        "{file}: {what}: Draco-compressed primitive skipped"
                    ));
                    continue;
                }
                let Some(&pa) = prim.attributes.get("POSITION") else {
                    *counters.entry("unsupported_primitives").or_default() += 1;
                    report.warn(format!("{file}: {what} has no POSITION attribute: skipped"));
                    continue;
                };
                let pacc = root
                    .accessors
                    .get(pa)
                    .ok_or_else(|| err(format!("{what}: accessor {pa} does not exist")))?;
                let count = match prim.indices {
                    Some(ii) => {
                        doc.locate(ii, &err)?;
                        root.accessors.get(ii).map(|a| a.count).unwrap_or(0)
                    }
                    None => pacc.count,
                };
                match prim.mode.unwrap_or(4) {
                    4 => *counters.entry("triangles").or_default() += (count / 3) as u64,
                    5 | 6 => {
                        *counters.entry("strip_fan_triangles").or_default() +=
                            count.saturating_sub(2) as u64
                    }
                    0 => *counters.entry("point_primitives").or_default() += 1,
                    1..=3 => *counters.entry("line_primitives").or_default() += 1,
                    m => return Err(err(format!("{what}: unknown primitive mode {m}"))),
                }
                if pacc.type_ != "VEC3" {
                    return Err(err(format!(
                        "{what}: POSITION accessor {pa} is {}, not VEC3",
                        pacc.type_
                    )));
                }
                let located = doc.locate(pa, &err)?;
                if pacc.sparse.is_some() {
                    *counters.entry("unsupported_primitives").or_default() += 1;
                    report.warn(format!("{file}: {what}: sparse POSITION accessor {pa} is not supported: its vertices are skipped"));
                    continue;
                }
                let Some((view, off, stride, elem)) = located else {
                    // No bufferView and not sparse: all zeros.
                    if pacc.count > 0 {
                        out.points.push(gltf_to_enu(transform(&world, [0.0; 3])));
                    }
                    continue;
                };
                let cs = elem / 3;
                for i in 0..pacc.count {
                    let at = off + i * stride;
                    let Some(e) = view.get(at..at + elem) else {
                        return Err(err(format!("accessor {pa} out of bounds at element {i}")));
                    };
                    let p = [
                        read_component(&e[0..cs], pacc.component_type, pacc.normalized),
                        read_component(&e[cs..2 * cs], pacc.component_type, pacc.normalized),
                        read_component(&e[2 * cs..3 * cs], pacc.component_type, pacc.normalized),
                    ];
                    if p.iter().any(|x| !x.is_finite()) {
                        return Err(err(format!("accessor {pa}: element {i} is not finite")));
                    }
                    out.points.push(gltf_to_enu(transform(&world, p)));
                }
            }
        }
        for &c in node.children.iter().rev() {
            stack.push((c, world, depth + 1));
        }
    }
    out.stats.insert(
        "triangles".into(),
        counters.remove("triangles").unwrap_or(0),
    );
    out.stats.insert("meshes".into(), root.meshes.len() as u64);
    out.stats.insert("nodes".into(), root.nodes.len() as u64);
    out.stats
        .insert("materials".into(), root.materials.len() as u64);
    out.stats
        .insert("textures".into(), root.textures.len() as u64);
    for (k, v) in counters {
        out.stats.insert(k.into(), v);
    }
    Ok(out)
}

/// A material of a placed model, as its file gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshMaterial {
    pub name: String,
    pub base_color: [f32; 4],
    pub metallic: f32,
    pub roughness: f32,
    /// Index into [`MeshModel::images`].
    pub texture: Option<usize>,
}

/// One triangle list of a placed model in its local ENU frame (metres, before placement).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MeshPrim {
    pub material: Option<usize>,
    pub positions: Vec<[f64; 3]>,
    /// `TEXCOORD_0`, only when the material has a texture.
    pub uvs: Vec<[f32; 2]>,
    pub indices: Vec<u32>,
}

/// The triangles, materials and images of a glTF/GLB model, for its L4 tile.
#[derive(Debug, Clone, Default)]
pub struct MeshModel {
    pub materials: Vec<MeshMaterial>,
    /// Encoded images (PNG/JPEG bytes as stored).
    pub images: Vec<Vec<u8>>,
    pub primitives: Vec<MeshPrim>,
}

impl Doc<'_> {
    /// All elements of accessor `ai` as `ncomp` floats each (normalised integers scaled).
    fn floats(&self, ai: usize, ncomp: usize, err: &dyn Fn(String) -> IngestError) -> Result<Vec<f64>, IngestError> {
        let a = self.root.accessors.get(ai).ok_or_else(|| err(format!("accessor {ai} does not exist")))?;
        if a.sparse.is_some() {
            return Err(err(format!("accessor {ai}: sparse accessors are not supported")));
        }
        let mut out = Vec::with_capacity(a.count * ncomp);
        match self.locate(ai, err)? {
            None => out.resize(a.count * ncomp, 0.0),
            Some((view, off, stride, elem)) => {
                if elem % ncomp != 0 {
                    return Err(err(format!("accessor {ai}: {elem}-byte elements are not {ncomp} components")));
                }
                let cs = elem / ncomp;
                for i in 0..a.count {
                    let at = off + i * stride;
                    let e = view.get(at..at + elem).ok_or_else(|| err(format!("accessor {ai} out of bounds at element {i}")))?;
                    for k in 0..ncomp {
                        out.push(read_component(&e[k * cs..(k + 1) * cs], a.component_type, a.normalized));
                    }
                }
            }
        }
        Ok(out)
    }
}

/// Reads the triangles (mode 4 primitives of the default scene, node transforms applied),
/// materials (base colour factor and texture) and images of a glTF/GLB file.
pub fn read_mesh(path: &Path, file: &str) -> Result<MeshModel, IngestError> {
    let bytes = std::fs::read(path).map_err(|e| IngestError::file(file, format!("cannot read: {e}")))?;
    let dir = path.parent();
    let err = |m: String| IngestError::file(file, m);
    let doc = parse_doc(&bytes, dir, file)?;
    let root = &doc.root;
    let mut out = MeshModel::default();
    // images
    let mut image_index: Vec<Option<usize>> = Vec::new();
    for (i, im) in root.images.iter().enumerate() {
        let data: Option<Vec<u8>> = if let Some(bv) = im.get("bufferView").and_then(|v| v.as_u64()) {
            root.buffer_views.get(bv as usize).and_then(|v| doc.buffers.get(v.buffer).and_then(|b| b.get(v.byte_offset..v.byte_offset.checked_add(v.byte_length)?)).map(|s| s.to_vec()))
        } else if let Some(uri) = im.get("uri").and_then(|v| v.as_str()) {
            if uri.starts_with("data:") {
                uri.split_once(";base64,").and_then(|(_, p)| base64_decode(p))
            } else {
                dir.map(|d| d.join(uri)).and_then(|p| std::fs::read(p).ok())
            }
        } else {
            None
        };
        match data.filter(|d| d.starts_with(&[0x89, b'P', b'N', b'G']) || d.starts_with(&[0xFF, 0xD8])) {
            Some(d) => {
                out.images.push(d);
                image_index.push(Some(out.images.len() - 1));
            }
            None => {
                tracing::warn!(file, image = i, "glTF image missing or not PNG/JPEG: its materials are untextured");
                image_index.push(None);
            }
        }
    }
    for m in &root.materials {
        let pbr = m.get("pbrMetallicRoughness");
        let f = |k: &str, d: f64| pbr.and_then(|p| p.get(k)).and_then(|v| v.as_f64()).unwrap_or(d) as f32;
        let mut base_color = [1.0f32; 4];
        if let Some(a) = pbr.and_then(|p| p.get("baseColorFactor")).and_then(|v| v.as_array()) {
            for (k, v) in a.iter().take(4).enumerate() {
                base_color[k] = v.as_f64().unwrap_or(1.0).clamp(0.0, 1.0) as f32;
            }
        }
        let texture = pbr
            .and_then(|p| p.get("baseColorTexture"))
            .filter(|t| t.get("texCoord").and_then(|v| v.as_u64()).unwrap_or(0) == 0)
            .and_then(|t| t.get("index"))
            .and_then(|v| v.as_u64())
            .and_then(|ti| root.textures.get(ti as usize))
            .and_then(|t| t.get("source"))
            .and_then(|v| v.as_u64())
            .and_then(|si| image_index.get(si as usize).copied().flatten());
        out.materials.push(MeshMaterial {
            name: m.get("name").and_then(|v| v.as_str()).unwrap_or("").to_string(),
            base_color,
            metallic: f("metallicFactor", 1.0),
            roughness: f("roughnessFactor", 1.0),
            texture,
        });
    }
    let scene_roots: Vec<usize> = match root.scene.or(if root.scenes.is_empty() { None } else { Some(0) }) {
        Some(s) => root.scenes.get(s).map(|s| s.nodes.clone()).unwrap_or_default(),
        None => {
            let mut is_child = vec![false; root.nodes.len()];
            for n in &root.nodes {
                for &c in &n.children {
                    if let Some(x) = is_child.get_mut(c) {
                        *x = true;
                    }
                }
            }
            (0..root.nodes.len()).filter(|&i| !is_child[i]).collect()
        }
    };
    let mut stack: Vec<(usize, Mat4, usize)> = scene_roots.iter().rev().map(|&n| (n, IDENTITY, 0)).collect();
    let mut visits = 0usize;
    while let Some((ni, parent, depth)) = stack.pop() {
        visits += 1;
        if depth > MAX_DEPTH || visits > 1_000_000 + root.nodes.len() * 64 {
            return Err(err(format!("node hierarchy too deep or cyclic at node {ni}")));
        }
        let node = root.nodes.get(ni).ok_or_else(|| err(format!("node {ni} does not exist")))?;
        let world = mat_mul(&parent, &node_matrix(node, ni, &err)?);
        // a mirroring transform flips the winding
        let det = world[0] * (world[5] * world[10] - world[9] * world[6]) - world[4] * (world[1] * world[10] - world[9] * world[2])
            + world[8] * (world[1] * world[6] - world[5] * world[2]);
        if let Some(mesh) = node.mesh.and_then(|mi| root.meshes.get(mi)) {
            for prim in &mesh.primitives {
                if prim.mode.unwrap_or(4) != 4 || prim.extensions.as_ref().is_some_and(|e| e.contains_key("KHR_draco_mesh_compression")) {
                    continue;
                }
                let Some(&pa) = prim.attributes.get("POSITION") else { continue };
                let pos = doc.floats(pa, 3, &err)?;
                let n = pos.len() / 3;
                let positions: Vec<[f64; 3]> = pos.chunks_exact(3).map(|c| gltf_to_enu(transform(&world, [c[0], c[1], c[2]]))).collect();
                if positions.iter().any(|p| p.iter().any(|x| !x.is_finite())) {
                    return Err(err(format!("mesh {:?}: non-finite position", node.mesh)));
                }
                let material = prim.material.filter(|&m| m < out.materials.len());
                let textured = material.is_some_and(|m| out.materials[m].texture.is_some());
                let uvs: Vec<[f32; 2]> = match (textured, prim.attributes.get("TEXCOORD_0")) {
                    (true, Some(&ta)) => {
                        let t = doc.floats(ta, 2, &err)?;
                        if t.len() / 2 == n { t.chunks_exact(2).map(|c| [c[0] as f32, c[1] as f32]).collect() } else { vec![] }
                    }
                    _ => vec![],
                };
                let mut indices: Vec<u32> = match prim.indices {
                    Some(ii) => doc.floats(ii, 1, &err)?.into_iter().map(|x| x as u32).collect(),
                    None => (0..n as u32).collect(),
                };
                indices.truncate(indices.len() / 3 * 3);
                if indices.iter().any(|&i| i as usize >= n) {
                    return Err(err(format!("mesh {:?}: index out of range ({n} vertices)", node.mesh)));
                }
                if det < 0.0 {
                    for t in indices.chunks_exact_mut(3) {
                        t.swap(1, 2);
                    }
                }
                // a textured material without UVs is drawn untextured (its own colour)
                let material = if textured && uvs.is_empty() { None } else { material };
                out.primitives.push(MeshPrim { material, positions, uvs, indices });
            }
        }
        for &c in node.children.iter().rev() {
            stack.push((c, world, depth + 1));
        }
    }
    Ok(out)
}

/// glTF (x, y, z), Y-up and +Z forward → local ENU (east = x, north = −z, up = y).
fn gltf_to_enu(p: [f64; 3]) -> [f64; 3] {
    [p[0], -p[2], p[1]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trs_matches_matrix() {
        // 90° about +Y: x → −z.
        let h = std::f64::consts::FRAC_1_SQRT_2;
        let n = Node {
            rotation: Some(vec![0.0, h, 0.0, h]),
            translation: Some(vec![1.0, 2.0, 3.0]),
            ..Default::default()
        };
        let m = node_matrix(&n, 0, &|s| IngestError::file("t", s)).expect("valid");
        let p = transform(&m, [1.0, 0.0, 0.0]);
        assert!(
            (p[0] - 1.0).abs() < 1e-12 && (p[1] - 2.0).abs() < 1e-12 && (p[2] - 2.0).abs() < 1e-12,
            "{p:?}"
        );
    }

    #[test]
    fn base64_round() {
        assert_eq!(
            base64_decode("AAECAw==").as_deref(),
            Some(&[0u8, 1, 2, 3][..])
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut r = BuildReport::default();
        for bytes in [
            &b""[..],
            b"glTF",
            b"glTF\x02\0\0\0\x20\0\0\0\xff\xff\xff\xff",
            b"{",
        ] {
            assert!(read_bytes(bytes, None, "x.glb", &mut r).is_err());
        }
        let cyclic = br#"{"nodes":[{"children":[0]}],"scenes":[{"nodes":[0]}]}"#;
        let e = read_bytes(cyclic, None, "x.gltf", &mut r).unwrap_err();
        assert!(e.message.contains("cyclic"), "{e}");
    }
}

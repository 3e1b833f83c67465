//! Tile content bytes → vertex data, without Bevy: gzip, b3dm → GLB, the GLB container, accessors
//! (normalised and KHR_mesh_quantization integers), the node hierarchy with its matrices,
//! EXT_mesh_gpu_instancing instance transforms, and one primitive's positions, normals (from the
//! file or computed flat), texture coordinates and triangle indices. The viewer (`viewer::decode`)
//! turns these into Bevy meshes, materials and images.
//!
//! Everything here reads bytes from the network, so every length, offset and count is checked:
//! bad input is an `Err` naming what is wrong, never a panic, an overflow or an unbounded
//! allocation (fuzzed by tests/fuzz `viewer_glb`).

use glam::{DMat3, DMat4, DQuat, DVec3};
use serde_json::Value;

/// glTF y-up → 3D Tiles z-up: (x, y, z) → (x, −z, y).
pub const Y_UP_TO_Z_UP: DMat4 = DMat4::from_cols_array(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);

/// Extensions a GLB may *require* that this client understands.
pub const SUPPORTED_REQUIRED: &[&str] = &["KHR_mesh_quantization", "EXT_mesh_gpu_instancing", "KHR_materials_unlit", "KHR_texture_transform"];

/// Largest body a gzip-compressed tile may inflate to (a "zip bomb" is refused, not allocated).
pub const MAX_GUNZIP_BYTES: u64 = 1 << 30;

/// Most node visits while walking a GLB's node hierarchy: nodes may be shared (a DAG), so a
/// small file could otherwise ask for 2^64 visits.
pub const MAX_NODE_VISITS: usize = 100_000;

/// Most elements of an accessor without a bufferView (all zeros; nothing bounds them by the file).
pub const MAX_ZERO_ACCESSOR_ELEMENTS: usize = 1 << 24;

/// Undoes gzip when the body is gzip (servers may send `.glb.gz` as is).
pub fn maybe_gunzip(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .take(MAX_GUNZIP_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("bad gzip body: {e}"))?;
        if out.len() as u64 > MAX_GUNZIP_BYTES {
            return Err(format!("gzip body inflates to more than {MAX_GUNZIP_BYTES} bytes"));
        }
        Ok(out)
    } else {
        Ok(bytes)
    }
}

fn u32_at(b: &[u8], o: usize) -> Result<u32, String> {
    b.get(o..o + 4).map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]])).ok_or_else(|| format!("truncated at byte {o}"))
}

/// A b3dm: returns the embedded GLB and the RTC_CENTER translation of its feature table.
pub fn unwrap_b3dm(b: &[u8]) -> Result<(&[u8], DVec3), String> {
    if b.get(0..4) != Some(b"b3dm") {
        return Err("not a b3dm (magic)".into());
    }
    let ftj = u32_at(b, 12)? as usize;
    let ftb = u32_at(b, 16)? as usize;
    let btj = u32_at(b, 20)? as usize;
    let btb = u32_at(b, 24)? as usize;
    let start = 28 + ftj + ftb + btj + btb; // four u32 in a usize: no overflow on 64-bit
    if start > b.len() {
        return Err(format!("b3dm header lengths run past the end ({start} > {} bytes)", b.len()));
    }
    let mut rtc = DVec3::ZERO;
    if ftj > 0 {
        if let Ok(v) = serde_json::from_slice::<Value>(&b[28..28 + ftj]) {
            if let Some(a) = v["RTC_CENTER"].as_array() {
                if a.len() == 3 {
                    rtc = DVec3::new(a[0].as_f64().unwrap_or(0.0), a[1].as_f64().unwrap_or(0.0), a[2].as_f64().unwrap_or(0.0));
                }
            }
        }
    }
    Ok((&b[start..], rtc))
}

/// A parsed GLB: its JSON and its BIN chunk.
pub struct Gltf<'a> {
    pub json: Value,
    pub bin: &'a [u8],
}

pub fn parse_glb(b: &[u8]) -> Result<Gltf<'_>, String> {
    if b.get(0..4) != Some(b"glTF") {
        return Err("not a GLB (magic is not 'glTF')".into());
    }
    let version = u32_at(b, 4)?;
    if version != 2 {
        return Err(format!("GLB version {version}, only 2 is supported"));
    }
    let total = (u32_at(b, 8)? as usize).min(b.len());
    let mut o = 12;
    let mut json = None;
    let mut bin: &[u8] = &[];
    while o + 8 <= total {
        let len = u32_at(b, o)? as usize;
        let ty = u32_at(b, o + 4)?;
        let data = b.get(o + 8..o + 8 + len).ok_or_else(|| format!("GLB chunk at byte {o} runs past the end"))?;
        match ty {
            0x4E4F534A => json = Some(serde_json::from_slice::<Value>(data).map_err(|e| format!("GLB JSON chunk: {e}"))?),
            0x004E4942 => bin = data,
            _ => {}
        }
        o += 8 + len;
    }
    Ok(Gltf { json: json.ok_or("GLB without a JSON chunk")?, bin })
}

fn ncomp(t: &str) -> Option<usize> {
    Some(match t {
        "SCALAR" => 1,
        "VEC2" => 2,
        "VEC3" => 3,
        "VEC4" => 4,
        "MAT2" => 4,
        "MAT3" => 9,
        "MAT4" => 16,
        _ => return None,
    })
}

/// A JSON number as an index or length (absent or not a u64 → `d`; > usize::MAX saturates).
fn usize_of(v: &Value, d: usize) -> usize {
    v.as_u64().map(|x| usize::try_from(x).unwrap_or(usize::MAX)).unwrap_or(d)
}

impl Gltf<'_> {
    /// Refuses a GLB that requires an extension this client does not implement.
    pub fn check_required(&self) -> Result<(), String> {
        if let Some(req) = self.json["extensionsRequired"].as_array() {
            for e in req.iter().filter_map(|e| e.as_str()) {
                if !SUPPORTED_REQUIRED.contains(&e) {
                    return Err(format!("required glTF extension {e} is not supported"));
                }
            }
        }
        Ok(())
    }

    /// A bufferView's bytes and byteStride (0: tightly packed).
    pub fn buffer_view(&self, i: usize) -> Result<(&[u8], usize), String> {
        let bv = &self.json["bufferViews"][i];
        if !bv.is_object() {
            return Err(format!("bufferView {i} missing"));
        }
        if bv["extensions"].get("EXT_meshopt_compression").is_some() {
            return Err("EXT_meshopt_compression (meshopt-compressed buffers) is not supported".into());
        }
        let buf = usize_of(&bv["buffer"], 0);
        let data: &[u8] = if buf == 0 && self.json["buffers"][0].get("uri").is_none() {
            self.bin
        } else {
            return Err(format!("bufferView {i} uses external buffer {buf} (only GLB-embedded buffers are supported)"));
        };
        let off = usize_of(&bv["byteOffset"], 0);
        let len = usize_of(&bv["byteLength"], 0);
        let s = off
            .checked_add(len)
            .and_then(|end| data.get(off..end))
            .ok_or_else(|| format!("bufferView {i} ({off}+{len}) runs past the buffer ({} bytes)", data.len()))?;
        Ok((s, usize_of(&bv["byteStride"], 0)))
    }

    /// An accessor as f64s (normalised integers mapped to [−1, 1] / [0, 1]) and its component count.
    pub fn accessor(&self, i: usize) -> Result<(Vec<f64>, usize), String> {
        let a = &self.json["accessors"][i];
        if !a.is_object() {
            return Err(format!("accessor {i} missing"));
        }
        let n = ncomp(a["type"].as_str().unwrap_or("")).ok_or_else(|| format!("accessor {i}: bad type {}", a["type"]))?;
        let count = usize_of(&a["count"], 0);
        let ct = a["componentType"].as_u64().unwrap_or(0);
        let norm = a["normalized"].as_bool().unwrap_or(false);
        let size = match ct {
            5120 | 5121 => 1,
            5122 | 5123 => 2,
            5125 | 5126 => 4,
            _ => return Err(format!("accessor {i}: componentType {ct} not supported")),
        };
        if a.get("sparse").is_some() {
            return Err(format!("accessor {i}: sparse accessors are not supported"));
        }
        let Some(bvi) = a["bufferView"].as_u64() else {
            let elements = count.checked_mul(n).filter(|&e| e <= MAX_ZERO_ACCESSOR_ELEMENTS);
            let elements = elements.ok_or_else(|| format!("accessor {i}: {count} × {n} components without a bufferView (at most {MAX_ZERO_ACCESSOR_ELEMENTS})"))?;
            return Ok((vec![0.0; elements], n));
        };
        let (data, stride) = self.buffer_view(usize::try_from(bvi).unwrap_or(usize::MAX))?;
        let off = usize_of(&a["byteOffset"], 0);
        let stride = if stride == 0 { size * n } else { stride };
        if count > 0 {
            // off + (count − 1) · stride + size · n ≤ data.len(), without overflow
            let end = (count - 1).checked_mul(stride).and_then(|x| x.checked_add(off)).and_then(|x| x.checked_add(size * n));
            if end.is_none_or(|e| e > data.len()) {
                return Err(format!("accessor {i}: {count} × {n} components run past its bufferView"));
            }
        }
        let mut out = Vec::with_capacity(count * n);
        for k in 0..count {
            let base = off + k * stride;
            for c in 0..n {
                let p = base + c * size;
                let v = match ct {
                    5120 => {
                        let x = data[p] as i8 as f64;
                        if norm { (x / 127.0).max(-1.0) } else { x }
                    }
                    5121 => {
                        let x = data[p] as f64;
                        if norm { x / 255.0 } else { x }
                    }
                    5122 => {
                        let x = i16::from_le_bytes([data[p], data[p + 1]]) as f64;
                        if norm { (x / 32767.0).max(-1.0) } else { x }
                    }
                    5123 => {
                        let x = u16::from_le_bytes([data[p], data[p + 1]]) as f64;
                        if norm { x / 65535.0 } else { x }
                    }
                    5125 => u32::from_le_bytes([data[p], data[p + 1], data[p + 2], data[p + 3]]) as f64,
                    _ => f32::from_le_bytes([data[p], data[p + 1], data[p + 2], data[p + 3]]) as f64,
                };
                out.push(v);
            }
        }
        Ok((out, n))
    }

    /// An accessor that must have `n` components and, when `count` is given, exactly that many
    /// elements (a NORMAL or TEXCOORD accessor has one element per POSITION).
    pub fn accessor_checked(&self, i: usize, what: &str, n: usize, count: Option<usize>) -> Result<Vec<f64>, String> {
        let (v, k) = self.accessor(i)?;
        if k != n {
            return Err(format!("{what} accessor {i} has {k} components per element, needs {n}"));
        }
        if let Some(c) = count {
            if v.len() / n != c {
                return Err(format!("{what} accessor {i} has {} elements, the primitive has {c} vertices", v.len() / n));
            }
        }
        Ok(v)
    }

    /// A node's local matrix (`matrix`, or translation · rotation · scale).
    pub fn node_local(&self, n: &Value) -> DMat4 {
        if let Some(m) = n["matrix"].as_array().filter(|m| m.len() == 16) {
            let mut a = [0.0; 16];
            for (i, x) in m.iter().enumerate() {
                a[i] = x.as_f64().unwrap_or(0.0);
            }
            return DMat4::from_cols_array(&a);
        }
        let v3 = |v: &Value, d: f64| match v.as_array() {
            Some(a) if a.len() == 3 => DVec3::new(a[0].as_f64().unwrap_or(d), a[1].as_f64().unwrap_or(d), a[2].as_f64().unwrap_or(d)),
            _ => DVec3::splat(d),
        };
        let t = v3(&n["translation"], 0.0);
        let s = v3(&n["scale"], 1.0);
        let r = match n["rotation"].as_array() {
            Some(a) if a.len() == 4 => DQuat::from_xyzw(
                a[0].as_f64().unwrap_or(0.0),
                a[1].as_f64().unwrap_or(0.0),
                a[2].as_f64().unwrap_or(0.0),
                a[3].as_f64().unwrap_or(1.0),
            )
            .normalize(),
            _ => DQuat::IDENTITY,
        };
        DMat4::from_scale_rotation_translation(s, r, t)
    }
}

/// A node of the scene that draws a mesh.
pub struct MeshNode {
    /// index into `meshes`
    pub mesh: usize,
    /// world ← the node (`base` times the node matrices down to it)
    pub matrix: DMat4,
    /// EXT_mesh_gpu_instancing: the node-local transform of each instance
    pub instances: Option<Vec<DMat4>>,
}

/// Walks the default scene (or, without one, every root node) and returns the nodes that draw a
/// mesh, in the order the viewer draws them.
pub fn mesh_nodes(g: &Gltf, base: DMat4) -> Result<Vec<MeshNode>, String> {
    let empty = Vec::new();
    let nodes = g.json["nodes"].as_array().unwrap_or(&empty);
    let scene = usize_of(&g.json["scene"], 0);
    let mut roots: Vec<usize> = g.json["scenes"][scene]["nodes"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_u64().map(|u| usize::try_from(u).unwrap_or(usize::MAX))).collect())
        .unwrap_or_default();
    if roots.is_empty() {
        let mut is_child = vec![false; nodes.len()];
        for n in nodes {
            for c in n["children"].as_array().into_iter().flatten() {
                if let Some(c) = c.as_u64() {
                    if (c as usize) < is_child.len() {
                        is_child[c as usize] = true;
                    }
                }
            }
        }
        roots = (0..nodes.len()).filter(|&i| !is_child[i]).collect();
    }
    let mut out = Vec::new();
    let mut visits = 0usize;
    let mut stack: Vec<(usize, DMat4, usize)> = roots.into_iter().map(|r| (r, base, 0)).collect();
    while let Some((ni, parent, depth)) = stack.pop() {
        let n = nodes.get(ni).ok_or_else(|| format!("node {ni} missing"))?;
        if depth > 64 {
            return Err("node hierarchy deeper than 64 (a cycle?)".into());
        }
        visits += 1;
        if visits > MAX_NODE_VISITS {
            return Err(format!("node hierarchy has more than {MAX_NODE_VISITS} node visits (nodes shared by many parents?)"));
        }
        let m = parent * g.node_local(n);
        if let Some(mi) = n["mesh"].as_u64() {
            let inst = &n["extensions"]["EXT_mesh_gpu_instancing"]["attributes"];
            let instances = if inst.is_object() { Some(instance_matrices(g, inst)?) } else { None };
            out.push(MeshNode { mesh: usize::try_from(mi).unwrap_or(usize::MAX), matrix: m, instances });
        }
        for c in n["children"].as_array().into_iter().flatten() {
            if let Some(c) = c.as_u64() {
                stack.push((usize::try_from(c).unwrap_or(usize::MAX), m, depth + 1));
            }
        }
    }
    Ok(out)
}

/// EXT_mesh_gpu_instancing: one transform per instance from TRANSLATION (VEC3), ROTATION (VEC4)
/// and SCALE (VEC3), which must all have the same count.
pub fn instance_matrices(g: &Gltf, attrs: &Value) -> Result<Vec<DMat4>, String> {
    let get = |k: &str, n: usize| -> Result<Option<Vec<f64>>, String> {
        match attrs[k].as_u64() {
            Some(i) => Ok(Some(g.accessor_checked(usize::try_from(i).unwrap_or(usize::MAX), &format!("instance {k}"), n, None)?)),
            None => Ok(None),
        }
    };
    let t = get("TRANSLATION", 3)?;
    let r = get("ROTATION", 4)?;
    let s = get("SCALE", 3)?;
    let counts: Vec<usize> = [(&t, 3), (&r, 4), (&s, 3)].iter().filter_map(|(x, n)| x.as_ref().map(|v| v.len() / n)).collect();
    if counts.windows(2).any(|w| w[0] != w[1]) {
        return Err(format!("EXT_mesh_gpu_instancing attributes have different counts {counts:?}"));
    }
    let count = counts.first().copied().unwrap_or(0);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let tv = t.as_ref().map(|v| DVec3::new(v[i * 3], v[i * 3 + 1], v[i * 3 + 2])).unwrap_or(DVec3::ZERO);
        let rv = r.as_ref().map(|v| DQuat::from_xyzw(v[i * 4], v[i * 4 + 1], v[i * 4 + 2], v[i * 4 + 3]).normalize()).unwrap_or(DQuat::IDENTITY);
        let sv = s.as_ref().map(|v| DVec3::new(v[i * 3], v[i * 3 + 1], v[i * 3 + 2])).unwrap_or(DVec3::ONE);
        out.push(DMat4::from_scale_rotation_translation(sv, rv, tv));
    }
    Ok(out)
}

/// One primitive's vertex data, transformed, as triangles.
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    pub positions: Vec<[f32; 3]>,
    pub normals: Vec<[f32; 3]>,
    pub uvs: Option<Vec<[f32; 2]>>,
    /// triangle list
    pub indices: Vec<u32>,
    /// For each output vertex, the primitive's vertex it came from (flat normals duplicate
    /// vertices per triangle corner): remaps any other per-vertex attribute.
    pub vertex_source: Vec<u32>,
}

impl Geometry {
    /// A per-vertex attribute of the primitive (one value per POSITION) remapped to the output vertices.
    pub fn remap<T: Copy>(&self, per_vertex: &[T]) -> Option<Vec<T>> {
        self.vertex_source.iter().map(|&v| per_vertex.get(v as usize).copied()).collect()
    }
}

/// A primitive's geometry with positions and normals through `xf`; `None` for points and lines
/// (not drawn).
pub fn primitive_geometry(g: &Gltf, p: &Value, xf: &DMat4) -> Result<Option<Geometry>, String> {
    let mode = p["mode"].as_u64().unwrap_or(4);
    if mode != 4 && mode != 5 && mode != 6 {
        return Ok(None);
    }
    if p["extensions"].get("KHR_draco_mesh_compression").is_some() {
        return Err("KHR_draco_mesh_compression is not supported".into());
    }
    let attrs = &p["attributes"];
    let pos_i = attrs["POSITION"].as_u64().ok_or("primitive without POSITION")?;
    let pos_i = usize::try_from(pos_i).unwrap_or(usize::MAX);
    let (pos, pn) = g.accessor(pos_i)?;
    if pn != 3 {
        return Err(format!("POSITION accessor {pos_i} is not VEC3"));
    }
    let nv = pos.len() / 3;
    let mut idx: Vec<u32> = match p["indices"].as_u64() {
        Some(i) => g.accessor(usize::try_from(i).unwrap_or(usize::MAX))?.0.into_iter().map(|x| x as u32).collect(),
        None => (0..nv as u32).collect(),
    };
    if let Some(bad) = idx.iter().find(|&&i| i as usize >= nv) {
        return Err(format!("index {bad} out of range ({nv} vertices)"));
    }
    if mode == 5 {
        idx = (0..idx.len().saturating_sub(2)).flat_map(|k| if k % 2 == 0 { [idx[k], idx[k + 1], idx[k + 2]] } else { [idx[k + 1], idx[k], idx[k + 2]] }).collect();
    } else if mode == 6 {
        idx = (1..idx.len().saturating_sub(1)).flat_map(|k| [idx[0], idx[k], idx[k + 1]]).collect();
    }
    idx.truncate(idx.len() / 3 * 3);
    let nm = DMat3::from_mat4(*xf).inverse().transpose();
    let mut positions: Vec<[f32; 3]> = (0..nv)
        .map(|k| {
            let w = xf.transform_point3(DVec3::new(pos[k * 3], pos[k * 3 + 1], pos[k * 3 + 2]));
            [w.x as f32, w.y as f32, w.z as f32]
        })
        .collect();
    let mut normals: Option<Vec<[f32; 3]>> = match attrs["NORMAL"].as_u64() {
        Some(i) => {
            let nrm = g.accessor_checked(usize::try_from(i).unwrap_or(usize::MAX), "NORMAL", 3, Some(nv))?;
            let mut ok = true;
            let v: Vec<[f32; 3]> = (0..nv)
                .map(|k| {
                    let n = nm * DVec3::new(nrm[k * 3], nrm[k * 3 + 1], nrm[k * 3 + 2]);
                    let l = n.length();
                    if l < 1e-6 || !l.is_finite() {
                        ok = false; // zero normals (seen in real files): compute flat ones instead
                        return [0.0, 1.0, 0.0];
                    }
                    let n = n / l;
                    [n.x as f32, n.y as f32, n.z as f32]
                })
                .collect();
            ok.then_some(v)
        }
        None => None,
    };
    let mut uvs: Option<Vec<[f32; 2]>> = match attrs["TEXCOORD_0"].as_u64() {
        Some(i) => {
            let t = g.accessor_checked(usize::try_from(i).unwrap_or(usize::MAX), "TEXCOORD_0", 2, Some(nv))?;
            Some((0..nv).map(|k| [t[k * 2] as f32, t[k * 2 + 1] as f32]).collect())
        }
        None => None,
    };
    let mut vertex_source: Vec<u32> = (0..nv as u32).collect();
    if normals.is_none() {
        // flat normals: one vertex per triangle corner
        let mut p2 = Vec::with_capacity(idx.len());
        let mut n2 = Vec::with_capacity(idx.len());
        let mut t2 = uvs.as_ref().map(|_| Vec::with_capacity(idx.len()));
        for tri in idx.chunks_exact(3) {
            let a = DVec3::from(positions[tri[0] as usize].map(|x| x as f64));
            let b = DVec3::from(positions[tri[1] as usize].map(|x| x as f64));
            let c = DVec3::from(positions[tri[2] as usize].map(|x| x as f64));
            let n = (b - a).cross(c - a).normalize_or_zero();
            for &v in tri {
                p2.push(positions[v as usize]);
                n2.push([n.x as f32, n.y as f32, n.z as f32]);
                if let (Some(t2), Some(u)) = (t2.as_mut(), uvs.as_ref()) {
                    t2.push(u[v as usize]);
                }
            }
        }
        vertex_source = idx.clone();
        positions = p2;
        normals = Some(n2);
        uvs = t2;
        idx = (0..positions.len() as u32).collect();
    }
    Ok(Some(Geometry { positions, normals: normals.unwrap_or_default(), uvs, indices: idx, vertex_source }))
}

/// Everything the viewer reads from one tile's content, without building GPU objects: the
/// geometry of every drawn primitive and its instance count. The fuzz target's entry point; the
/// viewer's `decode` does the same walk and then builds meshes.
pub fn read_content(bytes: &[u8], world: &DMat4, gltf_up_z: bool) -> Result<Vec<(Geometry, usize)>, String> {
    let (glb, rtc) = if bytes.starts_with(b"b3dm") { unwrap_b3dm(bytes)? } else { (bytes, DVec3::ZERO) };
    let g = parse_glb(glb)?;
    g.check_required()?;
    let base = *world * DMat4::from_translation(rtc) * if gltf_up_z { DMat4::IDENTITY } else { Y_UP_TO_Z_UP };
    let mut out = Vec::new();
    for node in mesh_nodes(&g, base)? {
        let xf = if node.instances.is_some() { DMat4::IDENTITY } else { node.matrix };
        for p in g.json["meshes"][node.mesh]["primitives"].as_array().into_iter().flatten() {
            if let Some(geo) = primitive_geometry(&g, p, &xf)? {
                out.push((geo, node.instances.as_ref().map(|i| i.len()).unwrap_or(1)));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A GLB from a JSON document and a BIN chunk.
    fn glb(doc: &Value, bin: &[u8]) -> Vec<u8> {
        let mut j = serde_json::to_vec(doc).unwrap();
        while j.len() % 4 != 0 {
            j.push(b' ');
        }
        let mut b = bin.to_vec();
        while b.len() % 4 != 0 {
            b.push(0);
        }
        let total = 12 + 8 + j.len() + 8 + b.len();
        let mut out = b"glTF".to_vec();
        out.extend_from_slice(&2u32.to_le_bytes());
        out.extend_from_slice(&(total as u32).to_le_bytes());
        out.extend_from_slice(&(j.len() as u32).to_le_bytes());
        out.extend_from_slice(&0x4E4F534Au32.to_le_bytes());
        out.extend_from_slice(&j);
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(&0x004E4942u32.to_le_bytes());
        out.extend_from_slice(&b);
        out
    }

    /// One triangle (positions float VEC3 at byte 0), with `extra` accessors appended.
    fn triangle(extra_accessors: Vec<Value>, attributes: Value) -> Vec<u8> {
        let pos: Vec<u8> = [0f32, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0].iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut accessors = vec![json!({"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"})];
        accessors.extend(extra_accessors);
        let doc = json!({
            "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
            "meshes": [{"primitives": [{"attributes": attributes}]}],
            "buffers": [{"byteLength": 36}], "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": 36}],
            "accessors": accessors,
        });
        glb(&doc, &pos)
    }

    #[test]
    fn a_triangle_reads_to_its_positions_with_flat_normals() {
        let b = triangle(vec![], json!({"POSITION": 0}));
        let geo = read_content(&b, &DMat4::IDENTITY, true).unwrap();
        assert_eq!(geo.len(), 1);
        let (g, inst) = &geo[0];
        assert_eq!(*inst, 1);
        assert_eq!(g.positions, vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]);
        assert_eq!(g.normals, vec![[0.0, 0.0, 1.0]; 3]);
        assert_eq!(g.indices, vec![0, 1, 2]);
        assert_eq!(g.remap(&["a", "b", "c"]), Some(vec!["a", "b", "c"]));
    }

    #[test]
    fn short_normal_and_texcoord_accessors_are_errors_not_panics() {
        // a NORMAL accessor with one element for three vertices (read past its end before)
        let b = triangle(vec![json!({"bufferView": 0, "componentType": 5126, "count": 1, "type": "VEC3"})], json!({"POSITION": 0, "NORMAL": 1}));
        let e = read_content(&b, &DMat4::IDENTITY, true).unwrap_err();
        assert!(e.contains("NORMAL accessor 1 has 1 elements, the primitive has 3 vertices"), "{e}");
        let b = triangle(vec![json!({"bufferView": 0, "componentType": 5126, "count": 1, "type": "VEC2"})], json!({"POSITION": 0, "TEXCOORD_0": 1}));
        let e = read_content(&b, &DMat4::IDENTITY, true).unwrap_err();
        assert!(e.contains("TEXCOORD_0 accessor 1 has 1 elements"), "{e}");
        // a SCALAR "normal"
        let b = triangle(vec![json!({"bufferView": 0, "componentType": 5126, "count": 9, "type": "SCALAR"})], json!({"POSITION": 0, "NORMAL": 1}));
        assert!(read_content(&b, &DMat4::IDENTITY, true).unwrap_err().contains("needs 3"));
    }

    #[test]
    fn huge_counts_and_offsets_are_refused_without_allocating() {
        // no bufferView: 2^62 zero elements were allocated (or the multiplication overflowed)
        let b = triangle(vec![json!({"componentType": 5126, "count": 4611686018427387904u64, "type": "VEC3"})], json!({"POSITION": 1}));
        assert!(read_content(&b, &DMat4::IDENTITY, true).unwrap_err().contains("without a bufferView"));
        // a count whose (count − 1) · stride overflows usize
        let b = triangle(vec![json!({"bufferView": 0, "componentType": 5126, "count": u64::MAX, "type": "VEC3"})], json!({"POSITION": 1}));
        assert!(read_content(&b, &DMat4::IDENTITY, true).unwrap_err().contains("run past its bufferView"));
        // a bufferView whose offset + length overflows
        let pos = [0u8; 36];
        let doc = json!({"asset": {"version": "2.0"}, "nodes": [{"mesh": 0}], "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
            "bufferViews": [{"buffer": 0, "byteOffset": u64::MAX, "byteLength": 2}],
            "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"}]});
        assert!(read_content(&glb(&doc, &pos), &DMat4::IDENTITY, true).unwrap_err().contains("runs past the buffer"));
    }

    #[test]
    fn shared_nodes_cannot_multiply_into_billions_of_visits() {
        // node k has node k+1 twice as a child: 2^40 paths through 40 nodes, depth ≤ 64
        let nodes: Vec<Value> = (0..40).map(|k| if k < 39 { json!({"children": [k + 1, k + 1]}) } else { json!({}) }).collect();
        let doc = json!({"asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": nodes});
        let e = read_content(&glb(&doc, &[]), &DMat4::IDENTITY, true).unwrap_err();
        assert!(e.contains("more than 100000 node visits"), "{e}");
    }

    #[test]
    fn instance_attributes_must_agree() {
        let pos: Vec<u8> = [0f32; 9].iter().flat_map(|x| x.to_le_bytes()).collect();
        let doc = |rot_count: u64| {
            json!({"asset": {"version": "2.0"}, "nodes": [{"mesh": 0, "extensions": {"EXT_mesh_gpu_instancing": {"attributes": {"TRANSLATION": 1, "ROTATION": 2}}}}],
                "meshes": [{"primitives": [{"attributes": {"POSITION": 0}}]}],
                "bufferViews": [{"buffer": 0, "byteLength": 36}],
                "accessors": [{"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"},
                              {"bufferView": 0, "componentType": 5126, "count": 3, "type": "VEC3"},
                              {"bufferView": 0, "componentType": 5126, "count": rot_count, "type": "VEC4"}]})
        };
        // 3 translations and 1 rotation: rotation 1 and 2 were read past the end before
        let e = read_content(&glb(&doc(1), &pos), &DMat4::IDENTITY, true).unwrap_err();
        assert!(e.contains("different counts [3, 1]"), "{e}");
        // with equal counts, three instances of one mesh
        let pos12: Vec<u8> = [0f32; 12].iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut d = doc(3);
        d["bufferViews"][0]["byteLength"] = json!(48);
        let geo = read_content(&glb(&d, &pos12), &DMat4::IDENTITY, true).unwrap();
        assert_eq!(geo[0].1, 3);
    }

    #[test]
    fn gzip_bodies_are_inflated() {
        use std::io::Write;
        let b = triangle(vec![], json!({"POSITION": 0}));
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&b).unwrap();
        assert_eq!(maybe_gunzip(enc.finish().unwrap()).unwrap(), b);
        assert!(maybe_gunzip(vec![0x1f, 0x8b, 0, 0]).unwrap_err().contains("bad gzip"));
    }
}

#[cfg(test)]
mod seed_tests {
    use super::*;

    /// The fuzz seeds of `viewer_glb` (tests/fuzz/seeds, written by make_seeds.py) are valid
    /// contents, so fuzzing starts from inputs that reach the vertex code, not only the errors.
    #[test]
    fn every_viewer_glb_seed_reads() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fuzz/seeds/viewer_glb");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let bytes = maybe_gunzip(std::fs::read(&p).unwrap()).unwrap();
            let prims = read_content(&bytes, &DMat4::IDENTITY, false).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            let tris: usize = prims.iter().map(|(g, inst)| g.indices.len() / 3 * inst).sum();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            match name.as_str() {
                // one triangle; the strip of 4 vertices is 2 triangles, drawn by 2 instances
                "triangle.glb" | "triangle.b3dm" | "triangle.glb.gz" => assert_eq!(tris, 1, "{name}"),
                "quantized_strip_instanced.glb" => assert_eq!(tris, 4, "{name}"),
                _ => assert!(tris > 0, "{name}: no triangles"),
            }
            n += 1;
        }
        assert!(n >= 4, "only {n} seeds in {}", dir.display());
    }
}

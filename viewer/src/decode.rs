//! Tile content decoding, run on loader threads (never on the render loop): b3dm → GLB, GLB →
//! Bevy meshes with positions baked into the world frame in f64 (KHR_mesh_quantization integer
//! positions through the node matrices, y-up → z-up, the tile transform), normals from the file
//! or computed flat, PNG/JPEG base-colour textures, and EXT_mesh_gpu_instancing instances as
//! per-instance world transforms of one shared mesh.

use bevy::asset::RenderAssetUsages;
use bevy::image::{CompressedImageFormats, Image, ImageAddressMode, ImageFilterMode, ImageSampler, ImageSamplerDescriptor, ImageType};
use bevy::math::{DMat3, DMat4, DQuat, DVec3, Mat4};
use bevy::mesh::{Indices, Mesh, PrimitiveTopology};
use serde_json::Value;

use crate::tileset::ContentKind;

/// glTF y-up → 3D Tiles z-up: (x, y, z) → (x, −z, y).
pub const Y_UP_TO_Z_UP: DMat4 = DMat4::from_cols_array(&[1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]);

/// Extensions a GLB may *require* that this client understands.
const SUPPORTED_REQUIRED: &[&str] = &["KHR_mesh_quantization", "EXT_mesh_gpu_instancing", "KHR_materials_unlit", "KHR_texture_transform"];

#[derive(Debug, Clone, PartialEq)]
pub struct MaterialDesc {
    /// linear RGBA
    pub base_color: [f32; 4],
    pub roughness: f32,
    pub double_sided: bool,
    pub blend: bool,
    pub unlit: bool,
    /// index into `Decoded::textures`
    pub texture: Option<usize>,
}

pub struct DecodedPrimitive {
    pub mesh: Mesh,
    pub material: MaterialDesc,
    /// Empty: the mesh is already in world coordinates. Otherwise one world transform per
    /// instance of the (local) mesh.
    pub instances: Vec<Mat4>,
    pub triangles: usize,
}

pub struct Decoded {
    pub primitives: Vec<DecodedPrimitive>,
    pub textures: Vec<Image>,
    /// triangles drawn (instances counted)
    pub triangles: usize,
    /// approximate GPU bytes (vertex + index buffers and textures) plus the pick data
    pub bytes: usize,
    /// CPU-side triangles, feature ids and property tables for picking ([`crate::features`])
    pub pick: crate::features::TilePick,
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Decoded({} primitives, {} textures, {} triangles)", self.primitives.len(), self.textures.len(), self.triangles)
    }
}

/// Undoes gzip when the body is gzip (servers may send `.glb.gz` as is).
pub fn maybe_gunzip(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    if bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut out).map_err(|e| format!("bad gzip body: {e}"))?;
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
    let start = 28 + ftj + ftb + btj + btb;
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

struct Gltf<'a> {
    json: Value,
    bin: &'a [u8],
}

fn parse_glb(b: &[u8]) -> Result<Gltf<'_>, String> {
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

impl Gltf<'_> {
    fn buffer_view(&self, i: usize) -> Result<(&[u8], usize), String> {
        let bv = &self.json["bufferViews"][i];
        if !bv.is_object() {
            return Err(format!("bufferView {i} missing"));
        }
        if bv["extensions"].get("EXT_meshopt_compression").is_some() {
            return Err("EXT_meshopt_compression (meshopt-compressed buffers) is not supported".into());
        }
        let buf = bv["buffer"].as_u64().unwrap_or(0) as usize;
        let data: &[u8] = if buf == 0 && self.json["buffers"][0].get("uri").is_none() {
            self.bin
        } else {
            return Err(format!("bufferView {i} uses external buffer {buf} (only GLB-embedded buffers are supported)"));
        };
        let off = bv["byteOffset"].as_u64().unwrap_or(0) as usize;
        let len = bv["byteLength"].as_u64().unwrap_or(0) as usize;
        let s = data.get(off..off + len).ok_or_else(|| format!("bufferView {i} ({off}+{len}) runs past the buffer ({} bytes)", data.len()))?;
        Ok((s, bv["byteStride"].as_u64().unwrap_or(0) as usize))
    }

    /// An accessor as f64s (normalised integers mapped to [−1, 1] / [0, 1]) and its component count.
    fn accessor(&self, i: usize) -> Result<(Vec<f64>, usize), String> {
        let a = &self.json["accessors"][i];
        if !a.is_object() {
            return Err(format!("accessor {i} missing"));
        }
        let n = ncomp(a["type"].as_str().unwrap_or("")).ok_or_else(|| format!("accessor {i}: bad type {}", a["type"]))?;
        let count = a["count"].as_u64().unwrap_or(0) as usize;
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
            return Ok((vec![0.0; count * n], n));
        };
        let (data, stride) = self.buffer_view(bvi as usize)?;
        let off = a["byteOffset"].as_u64().unwrap_or(0) as usize;
        let stride = if stride == 0 { size * n } else { stride };
        if count > 0 && off + (count - 1) * stride + size * n > data.len() {
            return Err(format!("accessor {i}: {count} × {n} components run past its bufferView"));
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

    fn node_local(&self, n: &Value) -> DMat4 {
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

/// Decodes a tile's content. `world` maps the tile's frame to the world frame.
pub fn decode(bytes: &[u8], kind: ContentKind, world: &DMat4, gltf_up_z: bool) -> Result<Decoded, String> {
    let (glb, rtc) = match kind {
        ContentKind::B3dm => unwrap_b3dm(bytes)?,
        _ if bytes.starts_with(b"b3dm") => unwrap_b3dm(bytes)?,
        _ => (bytes, DVec3::ZERO),
    };
    let g = parse_glb(glb)?;
    if let Some(req) = g.json["extensionsRequired"].as_array() {
        for e in req.iter().filter_map(|e| e.as_str()) {
            if !SUPPORTED_REQUIRED.contains(&e) {
                return Err(format!("required glTF extension {e} is not supported"));
            }
        }
    }
    let base = *world * DMat4::from_translation(rtc) * if gltf_up_z { DMat4::IDENTITY } else { Y_UP_TO_Z_UP };
    let mut out = Decoded { primitives: vec![], textures: vec![], triangles: 0, bytes: 0, pick: Default::default() };
    out.pick.tables = property_tables(&g);
    out.bytes += out.pick.bytes();
    let mut tex_cache: std::collections::HashMap<usize, Option<usize>> = Default::default();

    let nodes = g.json["nodes"].as_array().cloned().unwrap_or_default();
    let scene = g.json["scene"].as_u64().unwrap_or(0) as usize;
    let mut roots: Vec<usize> = g.json["scenes"][scene]["nodes"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x.as_u64().map(|u| u as usize)).collect())
        .unwrap_or_default();
    if roots.is_empty() {
        let mut is_child = vec![false; nodes.len()];
        for n in &nodes {
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
    let mut stack: Vec<(usize, DMat4, usize)> = roots.into_iter().map(|r| (r, base, 0)).collect();
    while let Some((ni, parent, depth)) = stack.pop() {
        let n = nodes.get(ni).ok_or_else(|| format!("node {ni} missing"))?;
        if depth > 64 {
            return Err("node hierarchy deeper than 64 (a cycle?)".into());
        }
        let m = parent * g.node_local(n);
        if let Some(mi) = n["mesh"].as_u64() {
            let inst = &n["extensions"]["EXT_mesh_gpu_instancing"]["attributes"];
            let instances = if inst.is_object() { Some(instance_matrices(&g, inst)?) } else { None };
            let mesh = &g.json["meshes"][mi as usize];
            for p in mesh["primitives"].as_array().into_iter().flatten() {
                decode_primitive(&g, p, &m, instances.as_deref(), &mut out, &mut tex_cache)?;
            }
        }
        for c in n["children"].as_array().into_iter().flatten() {
            if let Some(c) = c.as_u64() {
                stack.push((c as usize, m, depth + 1));
            }
        }
    }
    Ok(out)
}

/// The GLB's property tables for picking (a bad table is logged and left out, never fatal).
fn property_tables(g: &Gltf) -> Vec<crate::features::FeatureTable> {
    crate::features::property_tables(&g.json, &|i| g.buffer_view(i).map(|v| v.0)).unwrap_or_else(|e| {
        bevy::log::warn!("EXT_structural_metadata not read: {e}");
        vec![]
    })
}

/// Keeps a CPU copy of a primitive's world triangles with the feature id of each
/// (`EXT_mesh_features` feature ids 0: its `_FEATURE_ID_n` attribute of the first vertex).
fn pick_mesh(g: &Gltf, p: &Value, positions: &[[f32; 3]], idx: &[u32], out: &mut Decoded) {
    let fid = &p["extensions"]["EXT_mesh_features"]["featureIds"][0];
    let attr = fid["attribute"].as_u64().and_then(|a| p["attributes"][format!("_FEATURE_ID_{a}")].as_u64());
    let per_vertex = attr.and_then(|a| g.accessor(a as usize).ok()).filter(|(v, n)| *n == 1 && v.len() == positions.len()).map(|(v, _)| v);
    let ids: Vec<u32> = match &per_vertex {
        Some(v) => idx.chunks_exact(3).map(|t| v[t[0] as usize] as u32).collect(),
        None => vec![],
    };
    let table = fid["propertyTable"].as_u64().map(|t| t as usize).filter(|_| per_vertex.is_some());
    let m = crate::features::PickMesh::new(positions.to_vec(), idx.to_vec(), ids, table);
    out.bytes += m.bytes();
    out.pick.meshes.push(m);
}

fn instance_matrices(g: &Gltf, attrs: &Value) -> Result<Vec<DMat4>, String> {
    let get = |k: &str| -> Result<Option<(Vec<f64>, usize)>, String> {
        match attrs[k].as_u64() {
            Some(i) => Ok(Some(g.accessor(i as usize)?)),
            None => Ok(None),
        }
    };
    let t = get("TRANSLATION")?;
    let r = get("ROTATION")?;
    let s = get("SCALE")?;
    let count = [&t, &r, &s].iter().filter_map(|x| x.as_ref().map(|(v, n)| v.len() / n)).max().unwrap_or(0);
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let tv = t.as_ref().map(|(v, _)| DVec3::new(v[i * 3], v[i * 3 + 1], v[i * 3 + 2])).unwrap_or(DVec3::ZERO);
        let rv = r.as_ref().map(|(v, _)| DQuat::from_xyzw(v[i * 4], v[i * 4 + 1], v[i * 4 + 2], v[i * 4 + 3]).normalize()).unwrap_or(DQuat::IDENTITY);
        let sv = s.as_ref().map(|(v, _)| DVec3::new(v[i * 3], v[i * 3 + 1], v[i * 3 + 2])).unwrap_or(DVec3::ONE);
        out.push(DMat4::from_scale_rotation_translation(sv, rv, tv));
    }
    Ok(out)
}

fn texture(g: &Gltf, ti: usize) -> Result<Image, String> {
    let t = &g.json["textures"][ti];
    let src = t["source"].as_u64().ok_or_else(|| format!("texture {ti} has no source"))? as usize;
    let img = &g.json["images"][src];
    let bv = img["bufferView"].as_u64().ok_or_else(|| format!("image {src} is not in a bufferView"))? as usize;
    let (bytes, _) = g.buffer_view(bv)?;
    let mime = img["mimeType"].as_str().unwrap_or("image/png");
    let wrap = |k: &str| match t["sampler"].as_u64().map(|s| g.json["samplers"][s as usize][k].as_u64().unwrap_or(10497)) {
        Some(33071) => ImageAddressMode::ClampToEdge,
        Some(33648) => ImageAddressMode::MirrorRepeat,
        _ => ImageAddressMode::Repeat,
    };
    let sampler = ImageSampler::Descriptor(ImageSamplerDescriptor {
        address_mode_u: wrap("wrapS"),
        address_mode_v: wrap("wrapT"),
        mag_filter: ImageFilterMode::Linear,
        min_filter: ImageFilterMode::Linear,
        mipmap_filter: ImageFilterMode::Linear,
        ..Default::default()
    });
    Image::from_buffer(bytes, ImageType::MimeType(mime), CompressedImageFormats::NONE, true, sampler, RenderAssetUsages::RENDER_WORLD)
        .map_err(|e| format!("image {src} ({mime}): {e}"))
}

fn decode_primitive(
    g: &Gltf,
    p: &Value,
    m: &DMat4,
    instances: Option<&[DMat4]>,
    out: &mut Decoded,
    tex_cache: &mut std::collections::HashMap<usize, Option<usize>>,
) -> Result<(), String> {
    let mode = p["mode"].as_u64().unwrap_or(4);
    if mode != 4 && mode != 5 && mode != 6 {
        return Ok(()); // points and lines are not drawn
    }
    if p["extensions"].get("KHR_draco_mesh_compression").is_some() {
        return Err("KHR_draco_mesh_compression is not supported".into());
    }
    let attrs = &p["attributes"];
    let pos_i = attrs["POSITION"].as_u64().ok_or("primitive without POSITION")? as usize;
    let (pos, pn) = g.accessor(pos_i)?;
    if pn != 3 {
        return Err(format!("POSITION accessor {pos_i} is not VEC3"));
    }
    let nv = pos.len() / 3;
    let mut idx: Vec<u32> = match p["indices"].as_u64() {
        Some(i) => g.accessor(i as usize)?.0.into_iter().map(|x| x as u32).collect(),
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
    // baked (world) or local (instanced)
    let xf = if instances.is_some() { DMat4::IDENTITY } else { *m };
    let nm = DMat3::from_mat4(xf).inverse().transpose();
    let positions: Vec<[f32; 3]> = (0..nv)
        .map(|k| {
            let w = xf.transform_point3(DVec3::new(pos[k * 3], pos[k * 3 + 1], pos[k * 3 + 2]));
            [w.x as f32, w.y as f32, w.z as f32]
        })
        .collect();
    if instances.is_none() {
        pick_mesh(g, p, &positions, &idx, out);
    }
    let mut normals: Option<Vec<[f32; 3]>> = match attrs["NORMAL"].as_u64() {
        Some(i) => {
            let (nrm, _) = g.accessor(i as usize)?;
            let mut ok = true;
            let v: Vec<[f32; 3]> = (0..nv)
                .map(|k| {
                    let n = nm * DVec3::new(nrm[k * 3], nrm[k * 3 + 1], nrm[k * 3 + 2]);
                    let l = n.length();
                    if l < 1e-6 {
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
            let (t, _) = g.accessor(i as usize)?;
            Some((0..nv).map(|k| [t[k * 2] as f32, t[k * 2 + 1] as f32]).collect())
        }
        None => None,
    };
    let mut positions = positions;
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
        positions = p2;
        normals = Some(n2);
        uvs = t2;
        idx = (0..positions.len() as u32).collect();
    }
    // material
    let mat = p["material"].as_u64().map(|i| &g.json["materials"][i as usize]);
    let pbr = mat.map(|m| &m["pbrMetallicRoughness"]);
    let mut base_color = [1.0f32; 4];
    if let Some(a) = pbr.and_then(|p| p["baseColorFactor"].as_array()).filter(|a| a.len() == 4) {
        for (k, x) in a.iter().enumerate() {
            base_color[k] = x.as_f64().unwrap_or(1.0) as f32;
        }
    }
    let roughness = pbr.and_then(|p| p["roughnessFactor"].as_f64()).unwrap_or(1.0) as f32;
    let tex_index = pbr.and_then(|p| p["baseColorTexture"]["index"].as_u64()).map(|t| t as usize);
    let texture = match (tex_index, uvs.is_some()) {
        (Some(ti), true) => *tex_cache.entry(ti).or_insert_with(|| match texture(g, ti) {
            Ok(img) => {
                out.bytes += img.data.as_ref().map(|d| d.len()).unwrap_or(0);
                out.textures.push(img);
                Some(out.textures.len() - 1)
            }
            Err(e) => {
                bevy::log::warn!("texture {ti} not decoded ({e}); drawing its base colour");
                None
            }
        }),
        _ => None,
    };
    let material = MaterialDesc {
        base_color,
        roughness,
        double_sided: mat.and_then(|m| m["doubleSided"].as_bool()).unwrap_or(false),
        blend: mat.and_then(|m| m["alphaMode"].as_str()) == Some("BLEND"),
        unlit: mat.is_some_and(|m| m["extensions"].get("KHR_materials_unlit").is_some()),
        texture,
    };
    let tris = idx.len() / 3;
    let ninst = instances.map(|i| i.len()).unwrap_or(1);
    out.triangles += tris * ninst;
    out.bytes += positions.len() * 24 + uvs.as_ref().map(|u| u.len() * 8).unwrap_or(0) + idx.len() * 4;
    let mut mesh = Mesh::new(PrimitiveTopology::TriangleList, RenderAssetUsages::RENDER_WORLD)
        .with_inserted_attribute(Mesh::ATTRIBUTE_POSITION, positions)
        .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, normals.unwrap_or_default())
        .with_inserted_indices(Indices::U32(idx));
    if let Some(u) = uvs {
        mesh.insert_attribute(Mesh::ATTRIBUTE_UV_0, u);
    }
    let instances = match instances {
        Some(list) => list.iter().map(|t| (*m * *t).as_mat4()).collect(),
        None => vec![],
    };
    out.primitives.push(DecodedPrimitive { mesh, material, instances, triangles: tris });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiles::gltf::{write_glb, Document, Instances, Material, PositionEncoding, Primitive};

    #[test]
    fn y_up_to_z_up_matches_the_spec() {
        let v = Y_UP_TO_Z_UP.transform_point3(DVec3::new(1.0, 2.0, 3.0));
        assert_eq!(v, DVec3::new(1.0, -3.0, 2.0));
    }

    #[test]
    fn rejects_garbage_and_unsupported_extensions_with_a_reason() {
        assert!(decode(b"nope", ContentKind::Glb, &DMat4::IDENTITY, false).unwrap_err().contains("magic"));
        let json = br#"{"asset":{"version":"2.0"},"extensionsRequired":["EXT_meshopt_compression"]}"#;
        let mut glb = Vec::new();
        let pad = (4 - json.len() % 4) % 4;
        let jl = json.len() + pad;
        glb.extend_from_slice(b"glTF");
        glb.extend_from_slice(&2u32.to_le_bytes());
        glb.extend_from_slice(&((12 + 8 + jl) as u32).to_le_bytes());
        glb.extend_from_slice(&(jl as u32).to_le_bytes());
        glb.extend_from_slice(&0x4E4F534Au32.to_le_bytes());
        glb.extend_from_slice(json);
        glb.extend(std::iter::repeat_n(b' ', pad));
        let e = decode(&glb, ContentKind::Glb, &DMat4::IDENTITY, false).unwrap_err();
        assert!(e.contains("EXT_meshopt_compression"), "{e}");
        // a b3dm whose header lengths run past the end
        let mut b3 = b"b3dm".to_vec();
        b3.extend_from_slice(&1u32.to_le_bytes());
        b3.extend_from_slice(&40u32.to_le_bytes());
        b3.extend_from_slice(&1000u32.to_le_bytes());
        b3.extend_from_slice(&[0u8; 12]);
        assert!(unwrap_b3dm(&b3).unwrap_err().contains("past the end"));
    }

    #[test]
    fn quantized_glb_from_the_tiles_writer_decodes_to_world_positions() {
        // one unit cube-ish block written by the project's own GLB writer with int16 positions
        let positions: Vec<[f64; 3]> = vec![[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [10.0, 20.0, 0.0], [0.0, 20.0, -5.0]];
        let doc = Document {
            generator: "test".into(),
            primitives: vec![Primitive {
                material: 0,
                positions: positions.iter().map(|p| p.map(|x| x as f32)).collect(),
                feature_ids: vec![0; 4],
                indices: vec![0, 1, 2, 0, 2, 3],
                normals: vec![],
                uvs: vec![],
            }],
            materials: vec![Material { name: "m".into(), base_color: [0.5, 0.25, 0.125, 1.0], metallic: 0.0, roughness: 0.9, double_sided: false, texture: None }],
            positions: PositionEncoding::Int16,
            schema: None,
            property_table: None,
            images: vec![],
            instances: None,
        };
        let glb = write_glb(&doc);
        let json = parse_glb(&glb).unwrap().json;
        assert_eq!(json["accessors"][json["meshes"][0]["primitives"][0]["attributes"]["POSITION"].as_u64().unwrap() as usize]["componentType"], 5122);
        // tile → world: a translation by (100, 0, 0) after y-up → z-up; world is z-up here
        let world = DMat4::from_translation(DVec3::new(100.0, 0.0, 0.0));
        let d = decode(&glb, ContentKind::Glb, &world, false).unwrap();
        assert_eq!(d.triangles, 2);
        assert_eq!(d.primitives.len(), 1);
        let p = &d.primitives[0];
        assert_eq!(p.material.base_color, [0.5, 0.25, 0.125, 1.0]);
        let pos = match p.mesh.attribute(Mesh::ATTRIBUTE_POSITION).unwrap() {
            bevy::mesh::VertexAttributeValues::Float32x3(v) => v.clone(),
            _ => panic!(),
        };
        // flat normals: 6 corners
        assert_eq!(pos.len(), 6);
        // glTF (10, 20, 0) → z-up (10, 0, 20) → +100 x; int16 quantisation error < 20/32767·… < 1 mm
        let want = [[100.0, 0.0, 0.0], [110.0, 0.0, 0.0], [110.0, 0.0, 20.0], [100.0, 0.0, 0.0], [110.0, 0.0, 20.0], [100.0, 5.0, 20.0]];
        for (a, b) in pos.iter().zip(want.iter()) {
            for k in 0..3 {
                assert!((a[k] as f64 - b[k]).abs() < 2e-3, "{pos:?}");
            }
        }
    }

    #[test]
    fn instances_become_world_transforms_of_one_local_mesh() {
        let doc = Document {
            generator: "test".into(),
            primitives: vec![Primitive {
                material: 0,
                positions: vec![[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
                feature_ids: vec![0; 3],
                indices: vec![0, 1, 2],
                normals: vec![[0.0, 0.0, 1.0]; 3],
                uvs: vec![],
            }],
            materials: vec![Material { name: "tree".into(), base_color: [0.1, 0.5, 0.1, 1.0], metallic: 0.0, roughness: 1.0, double_sided: false, texture: None }],
            positions: PositionEncoding::Float,
            schema: None,
            property_table: None,
            images: vec![],
            instances: Some(Instances {
                translations: vec![[5.0, 0.0, -7.0], [-3.0, 0.0, 2.0]],
                rotations: vec![[0.0, 0.0, 0.0, 1.0]; 2],
                scales: vec![[2.0, 2.0, 2.0]; 2],
                feature_ids: vec![],
            }),
        };
        let glb = write_glb(&doc);
        let d = decode(&glb, ContentKind::Glb, &DMat4::IDENTITY, false).unwrap();
        assert_eq!(d.primitives.len(), 1);
        let p = &d.primitives[0];
        assert_eq!(p.instances.len(), 2);
        assert_eq!(d.triangles, 2, "one triangle drawn twice");
        // instance 0: glTF translation (5, 0, −7) → z-up (5, 7, 0); scale 2
        let t0 = p.instances[0].transform_point3(bevy::math::Vec3::new(1.0, 0.0, 0.0));
        assert!((t0 - bevy::math::Vec3::new(7.0, 7.0, 0.0)).length() < 1e-5, "{t0}");
        let t1 = p.instances[1].transform_point3(bevy::math::Vec3::ZERO);
        assert!((t1 - bevy::math::Vec3::new(-3.0, -2.0, 0.0)).length() < 1e-5, "{t1}");
    }
}

//! Tile content decoding, run on loader threads (never on the render loop): b3dm → GLB, GLB →
//! Bevy meshes with positions baked into the world frame in f64 (KHR_mesh_quantization integer
//! positions through the node matrices, y-up → z-up, the tile transform), normals from the file
//! or computed flat, PNG/JPEG base-colour textures, and EXT_mesh_gpu_instancing instances as
//! per-instance world transforms of one shared mesh.

use bevy::asset::RenderAssetUsages;
use bevy::image::{CompressedImageFormats, Image, ImageAddressMode, ImageFilterMode, ImageSampler, ImageSamplerDescriptor, ImageType};
use bevy::math::{DMat4, DVec3, Mat4};
use bevy::mesh::{Indices, Mesh, PrimitiveTopology};
use serde_json::Value;

use crate::tileset::ContentKind;

// The byte readers (gzip, b3dm, GLB, accessors, node hierarchy, vertex data) live in
// `viewer-core` (no Bevy, fuzzed); this module builds Bevy meshes and images from them.
pub use viewer_core::glb::{maybe_gunzip, parse_glb, unwrap_b3dm, Gltf, Y_UP_TO_Z_UP};
use viewer_core::glb::{mesh_nodes, primitive_geometry, Geometry};

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

/// Decodes a tile's content. `world` maps the tile's frame to the world frame.
pub fn decode(bytes: &[u8], kind: ContentKind, world: &DMat4, gltf_up_z: bool) -> Result<Decoded, String> {
    let (glb, rtc) = match kind {
        ContentKind::B3dm => unwrap_b3dm(bytes)?,
        _ if bytes.starts_with(b"b3dm") => unwrap_b3dm(bytes)?,
        _ => (bytes, DVec3::ZERO),
    };
    let g = parse_glb(glb)?;
    g.check_required()?;
    let base = *world * DMat4::from_translation(rtc) * if gltf_up_z { DMat4::IDENTITY } else { Y_UP_TO_Z_UP };
    let mut out = Decoded { primitives: vec![], textures: vec![], triangles: 0, bytes: 0, pick: Default::default() };
    out.pick.tables = property_tables(&g);
    out.bytes += out.pick.bytes();
    let mut tex_cache: std::collections::HashMap<usize, Option<usize>> = Default::default();
    for node in mesh_nodes(&g, base)? {
        let mesh = &g.json["meshes"][node.mesh];
        for p in mesh["primitives"].as_array().into_iter().flatten() {
            decode_primitive(&g, p, &node.matrix, node.instances.as_deref(), &mut out, &mut tex_cache)?;
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
/// The copy is welded again (one vertex per primitive vertex, through `vertex_source`) even
/// where the drawn mesh was split per triangle corner for flat normals.
fn pick_mesh(g: &Gltf, p: &Value, geo: &Geometry, out: &mut Decoded) {
    let n_src = geo.vertex_source.iter().max().map(|m| *m as usize + 1).unwrap_or(0);
    let mut positions = vec![[0f32; 3]; n_src];
    for (v, &s) in geo.vertex_source.iter().enumerate() {
        positions[s as usize] = geo.positions[v];
    }
    let idx: Vec<u32> = geo.indices.iter().map(|&i| geo.vertex_source[i as usize]).collect();
    let fid = &p["extensions"]["EXT_mesh_features"]["featureIds"][0];
    let attr = fid["attribute"].as_u64().and_then(|a| p["attributes"][format!("_FEATURE_ID_{a}")].as_u64());
    let per_vertex = attr.and_then(|a| g.accessor(a as usize).ok()).filter(|(v, n)| *n == 1 && v.len() >= positions.len()).map(|(v, _)| v);
    let ids: Vec<u32> = match &per_vertex {
        Some(v) => idx.chunks_exact(3).map(|t| v[t[0] as usize] as u32).collect(),
        None => vec![],
    };
    let table = fid["propertyTable"].as_u64().map(|t| t as usize).filter(|_| per_vertex.is_some());
    let m = crate::features::PickMesh::new(positions, idx, ids, table);
    out.bytes += m.bytes();
    out.pick.meshes.push(m);
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
    // baked (world) or local (instanced)
    let xf = if instances.is_some() { DMat4::IDENTITY } else { *m };
    let Some(geo) = primitive_geometry(g, p, &xf)? else {
        return Ok(()); // points and lines are not drawn
    };
    if instances.is_none() {
        pick_mesh(g, p, &geo, out);
    }
    let Geometry { positions, normals, uvs, indices: idx, .. } = geo;
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
        .with_inserted_attribute(Mesh::ATTRIBUTE_NORMAL, normals)
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

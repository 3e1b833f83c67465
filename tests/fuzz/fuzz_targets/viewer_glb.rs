#![no_main]
//! The viewer's tile content reader (viewer-core): gzip, b3dm, GLB, accessors, the node
//! hierarchy, instancing and per-primitive vertex data: everything `viewer::decode` does before
//! it builds Bevy meshes.
use libfuzzer_sys::fuzz_target;
use viewer_core::glam::DMat4;
use viewer_core::glb::{maybe_gunzip, read_content};

fuzz_target!(|data: &[u8]| {
    let Ok(bytes) = maybe_gunzip(data.to_vec()) else { return };
    for up_z in [false, true] {
        if let Ok(prims) = read_content(&bytes, &DMat4::IDENTITY, up_z) {
            for (g, _) in &prims {
                assert_eq!(g.positions.len(), g.normals.len());
                assert!(g.indices.iter().all(|&i| (i as usize) < g.positions.len()));
                assert_eq!(g.indices.len() % 3, 0);
            }
        }
    }
});

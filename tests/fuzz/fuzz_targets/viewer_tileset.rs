#![no_main]
//! The viewer's tileset.json reader (viewer-core `Tree::load`, external-tileset `graft`, URI
//! resolution and the bounding-volume math the culling runs on every node).
use libfuzzer_sys::fuzz_target;
use viewer_core::glam::DVec3;
use viewer_core::tileset::{resolve, Tree};

fuzz_target!(|data: &[u8]| {
    if let Ok(mut tree) = Tree::load(data, "http://h:1/3dtiles/city/tileset.json", "fuzz") {
        for n in &tree.nodes {
            let _ = n.volume.distance(DVec3::new(0.0, 100.0, 0.0));
            if let Some(c) = &n.content {
                let _ = resolve(&c.url, "../x/../../y.glb");
            }
        }
        let last = tree.nodes.len() - 1;
        let _ = tree.graft(last, data, "http://h:1/3dtiles/city/sub/external.json");
    }
});

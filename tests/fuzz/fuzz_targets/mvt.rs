#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(tile) = tiles::mvt::decode(data) {
        // Touch what a client reads: layer lookup and every feature's properties.
        for l in &tile.layers {
            let _ = tile.layer(&l.name);
            for f in &l.features {
                let _ = f.get("name");
            }
        }
    }
});

#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut report = scenes::report::BuildReport::default();
    // No directory: external buffer URIs are refused rather than read from disk.
    let _ = scenes::cim::placed::gltf::read_bytes(data, None, "fuzz.glb", &mut report);
});

#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(p) = scenes::cim::placed::parse_placement(text, "fuzz.placement.json") {
            let v = scenes::cim::placed::place_point(&p.placement, [1.0, 2.0, 3.0]);
            let _ = scenes::cim::placed::extent_of(&[v]);
        }
    }
});

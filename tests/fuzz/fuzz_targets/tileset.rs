#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(ts) = serde_json::from_slice::<tiles::tileset::Tileset>(data) {
        let mut n = 0usize;
        ts.root.walk(0, &mut |_, _| n += 1);
        let _ = serde_json::to_vec(&ts);
    }
});

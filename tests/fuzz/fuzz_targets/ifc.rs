#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut report = scenes::report::BuildReport::default();
    let _ = scenes::cim::placed::ifc::read_bytes(data, "fuzz.ifc", &mut report);
});

#![no_main]
//! One MQTT message (twin_protocol::payload::mqtt_message, what the server's MQTT client runs
//! on every publish): the first byte picks the topic (a datastream id, or when 255 the bytes up
//! to the first newline as the topic itself), the rest is the payload.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&b, rest)) = data.split_first() else { return };
    let (topic, payload) = if b == 255 {
        let n = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
        (String::from_utf8_lossy(&rest[..n]).into_owned(), rest.get(n + 1..).unwrap_or(&[]))
    } else {
        (format!("citytwin/datastreams/{b}/observations"), rest)
    };
    if let Ok(obs) = twin_protocol::payload::mqtt_message(&topic, payload) {
        if b != 255 {
            assert!(obs.iter().all(|o| o.datastream == b as i64));
        }
    }
});

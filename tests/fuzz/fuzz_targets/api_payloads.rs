#![no_main]
//! The live API's request bodies and query values (twin_protocol::payload, twin_protocol::filter,
//! SensorThings entity creation twin_protocol::sta_entity) and the indicator definitions an admin publishes (indicators::load, checked against the
//! bundled set as the server does). The first byte picks the parser; the rest is the input.
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use std::sync::OnceLock;
use twin_protocol::payload as p;

const ROLES: [&str; 5] = ["leader", "dispatcher", "planner", "operator", "admin"];

/// The bundled indicator definitions (what a published one is validated with).
fn bundled() -> &'static Vec<indicators::Definition> {
    static SET: OnceLock<Vec<indicators::Definition>> = OnceLock::new();
    SET.get_or_init(|| {
        let mut errs = vec![];
        let mut defs = vec![];
        for (f, t) in [
            ("city_life.toml", include_str!("../../../assets/indicators/city_life.toml")),
            ("city_plan.toml", include_str!("../../../assets/indicators/city_plan.toml")),
            ("command.toml", include_str!("../../../assets/indicators/command.toml")),
            ("environment.toml", include_str!("../../../assets/indicators/environment.toml")),
        ] {
            defs.extend(indicators::load::parse_file(f, t, &mut errs));
        }
        assert!(errs.is_empty(), "bundled indicator definitions: {errs:?}");
        defs
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let at = "POST /api/x";
    match sel % 13 {
        0 => {
            if let Ok((batch, ev)) = p::new_events(body) {
                assert!(!ev.is_empty() && (batch || ev.len() == 1));
            }
        }
        1 => {
            let _ = p::transition_request(body, at);
        }
        2 => {
            let _ = p::assign_request(body, at);
        }
        3 => {
            if let Ok(r) = p::status_request(body, at) {
                assert!(r.position.is_none_or(|q| q.lon.abs() <= 180.0 && q.lat.abs() <= 90.0));
            }
        }
        4 => {
            let role = |s: &str| ROLES.iter().position(|r| *r == s).ok_or_else(|| format!("unknown role '{s}'"));
            if let Ok(t) = p::token_request(body, role) {
                assert!(t.expires_in_s.is_none_or(|s| s > 0.0 && s <= 3650.0 * 86400.0));
            }
        }
        5 => {
            if let Ok(items) = p::json_body::<Vec<Value>>(body, at) {
                for (i, it) in items.iter().enumerate() {
                    let _ = p::simple_observation(i, it);
                }
            }
        }
        6 => {
            if let Ok(v) = p::json_body::<Value>(body, at) {
                let _ = p::sta_observation(&v, None, at);
                let _ = p::sta_observation(&v, Some(1), at);
            }
        }
        7 => {
            if let Ok(groups) = p::json_body::<Vec<Value>>(body, at) {
                let _ = p::create_observations(&groups, at);
            }
        }
        8 => {
            if let Ok(s) = std::str::from_utf8(body) {
                if let Err(e) = twin_protocol::filter::parse(s) {
                    assert!(e.pos <= s.chars().count(), "{e}");
                }
            }
        }
        9 => {
            if let Ok(s) = std::str::from_utf8(body) {
                let _ = p::query_time("from", s);
                if let Some(b) = twin_protocol::Bbox::parse(s) {
                    assert!(b.0[0] <= b.0[2] && b.0[1] <= b.0[3]);
                }
            }
        }
        11 => {
            if let Ok(r) = p::login_request(body) {
                assert!(r.expires_in_s.is_none_or(|s| s > 0.0));
            }
        }
        12 => {
            // the next byte picks the entity set (bit 7: nested in a Thing)
            if let Some((&k, rest)) = body.split_first() {
                let set = twin_protocol::sta_entity::ENTITY_SETS[k as usize % twin_protocol::sta_entity::ENTITY_SETS.len()];
                if let Ok(v) = serde_json::from_slice::<Value>(rest) {
                    let _ = twin_protocol::sta_entity::entity(set, &v, at, k & 0x80 != 0);
                }
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(body) {
                let mut errs = vec![];
                let new = indicators::load::parse_file("request.toml", text, &mut errs);
                if errs.is_empty() && new.len() == 1 {
                    let mut defs = bundled().clone();
                    match defs.iter().position(|d| d.id == new[0].id) {
                        Some(i) => defs[i] = new[0].clone(),
                        None => defs.push(new[0].clone()),
                    }
                    indicators::load::validate_set(&defs, &mut errs);
                }
            }
        }
    }
});

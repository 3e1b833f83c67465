//! Invalid definitions are rejected with FILE, LINE and FIELD — one fixture per error kind
//! (tests/fixtures/invalid/*.toml; the expected lines are those of the offending keys).

use indicators::*;
use std::path::Path;

fn errors_of(name: &str) -> Vec<DefError> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/invalid")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    match Library::from_sources(&[(name.to_string(), text)]) {
        Ok(_) => panic!("{name} was accepted"),
        Err(e) => {
            eprintln!("{e}");
            e.0
        }
    }
}

/// Asserts an error at exactly (file, line, field) whose message contains `msg`.
fn has(errs: &[DefError], file: &str, line: usize, field: &str, msg: &str) {
    assert!(
        errs.iter().any(|e| e.file == file
            && e.line == line
            && e.field == field
            && e.message.contains(msg)),
        "no error {file}:{line}: {field}: …{msg}… in\n{}",
        errs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn unknown_source() {
    let e = errors_of("unknown_source.toml");
    has(
        &e,
        "unknown_source.toml",
        13,
        "aqi_bad_source: metric.input",
        "unknown source `tweets`",
    );
}

#[test]
fn unknown_fields() {
    let e = errors_of("unknown_field.toml");
    has(
        &e,
        "unknown_field.toml",
        11,
        "aqi_typo: windw",
        "unknown field",
    );
    has(
        &e,
        "unknown_field.toml",
        17,
        "aqi_typo: metric.filter.sensr_type",
        "unknown field",
    );
    assert_eq!(e.len(), 2, "{e:?}");
}

#[test]
fn unknown_reference() {
    let e = errors_of("unknown_reference.toml");
    has(
        &e,
        "unknown_reference.toml",
        11,
        "ratio_of_missing: expr",
        "unknown indicator `closure_rate_9d`",
    );
}

#[test]
fn cycle_is_named() {
    let e = errors_of("cycle.toml");
    has(
        &e,
        "cycle.toml",
        11,
        "cyc_a: expr",
        "cycle among derived indicators: cyc_a → cyc_b → cyc_c → cyc_a",
    );
    assert_eq!(e.len(), 1, "one cycle, reported once: {e:?}");
}

#[test]
fn unit_mismatch_in_expression() {
    let e = errors_of("unit_mismatch.toml");
    has(
        &e,
        "unit_mismatch.toml",
        39,
        "nonsense: expr",
        "unit mismatch: cannot add `share` [%] (%) and `minutes` [min] (min)",
    );
}

#[test]
fn unit_mismatch_of_a_metric() {
    let e = errors_of("metric_unit_mismatch.toml");
    has(
        &e,
        "metric_unit_mismatch.toml",
        6,
        "aqi_minutes: unit",
        "is in `{AQI}`, the indicator declares `min`",
    );
}

#[test]
fn bad_window() {
    let e = errors_of("bad_window.toml");
    has(
        &e,
        "bad_window.toml",
        11,
        "aqi_bad_window: window",
        "`PT1X`",
    );
}

#[test]
fn bands_not_ascending() {
    let e = errors_of("bands_not_ascending.toml");
    has(
        &e,
        "bands_not_ascending.toml",
        23,
        "aqi_bands: bands[1].max",
        "bands not ascending: 50 after 100",
    );
}

#[test]
fn many_errors_reported_at_once() {
    let e = errors_of("many_errors.toml");
    has(&e, "many_errors.toml", 11, "many: window", "`P1Q`");
    has(
        &e,
        "many_errors.toml",
        15,
        "many: metric.filter.category",
        "unknown category `dragons`",
    );
    has(
        &e,
        "many_errors.toml",
        15,
        "many: metric.filter.state",
        "unknown state `sleeping`",
    );
    has(
        &e,
        "many_errors.toml",
        30,
        "many2: metric.aggregate",
        "unknown aggregate `median`",
    );
    assert_eq!(e.len(), 4, "{e:?}");
}

#[test]
fn toml_syntax_error() {
    let e = errors_of("toml_syntax.toml");
    assert!(
        e.iter()
            .any(|x| x.file == "toml_syntax.toml" && x.line == 3 && x.field == "(toml)"),
        "{e:?}"
    );
}

#[test]
fn errors_of_several_files_come_together() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid");
    let e = Library::load_dir(&dir).unwrap_err();
    let files: std::collections::BTreeSet<&str> = e.0.iter().map(|x| x.file.as_str()).collect();
    assert_eq!(files.len(), 10, "{files:?}");
    // Display: one `file:line: field: message` per line.
    assert!(
        e.to_string()
            .contains("bad_window.toml:11: aqi_bad_window: window: "),
        "{e}"
    );
}

#[test]
fn duplicate_ids_across_files() {
    let a = "[[indicator]]\nid = \"x\"\nname_zh = \"x\"\nname_en = \"x\"\ntheme = \"经济\"\nunit = \"%\"\nowner = \"o\"\nkind = \"static\"\nsource = \"《s》\"\nversion = 1\nstate = \"published\"\n[indicator.static]\nvalue = 1\n";
    let e = Library::from_sources(&[("a.toml".into(), a.into()), ("b.toml".into(), a.into())])
        .unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(
        (e.0[0].file.as_str(), e.0[0].line, e.0[0].field.as_str()),
        ("b.toml", 1, "x: id")
    );
    assert!(e.0[0].message.contains("a.toml:1"));
}

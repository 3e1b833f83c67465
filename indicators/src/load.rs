//! Loading and validating definition files. Every error names FILE, LINE and FIELD; all errors
//! of all files are collected, not just the first.

use crate::def::*;
use crate::expr;
use crate::units::{parse_unit, Dim};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::Path;
use toml::de::{DeTable, DeValue};
use twin_protocol::{Category, EventSource, EventState, Severity};

/// One problem in a definition file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DefError {
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// The field (`metric.filter.category`, `expr`, `bands[2].max` …), prefixed with the
    /// indicator id when known: `aqi_city: window`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for DefError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.field, self.message
        )
    }
}

/// All the problems found; `Display` lists one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct DefErrors(pub Vec<DefError>);

impl fmt::Display for DefErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} error(s) in indicator definitions:", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

/// A parsed TOML value with its line.
#[derive(Debug, Clone)]
struct N {
    line: usize,
    v: V,
}

#[derive(Debug, Clone)]
enum V {
    Str(String),
    Num(f64),
    Bool(bool),
    Arr(Vec<N>),
    Tab(Vec<(String, usize, N)>),
    Other,
}

struct Lines(Vec<usize>);
impl Lines {
    fn new(text: &str) -> Lines {
        Lines(
            std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect(),
        )
    }
    fn line(&self, off: usize) -> usize {
        match self.0.binary_search(&off) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
}

fn conv(v: &toml::Spanned<DeValue<'_>>, lines: &Lines) -> N {
    let line = lines.line(v.span().start);
    let v = match v.get_ref() {
        DeValue::String(s) => V::Str(s.to_string()),
        DeValue::Integer(i) => {
            let s = i.as_str().replace('_', "");
            let s = s
                .trim_start_matches("0x")
                .trim_start_matches("0o")
                .trim_start_matches("0b");
            match i64::from_str_radix(s, i.radix()) {
                Ok(x) => V::Num(x as f64),
                Err(_) => V::Other,
            }
        }
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
            Ok(x) => V::Num(x),
            Err(_) => V::Other,
        },
        DeValue::Boolean(b) => V::Bool(*b),
        DeValue::Datetime(_) => V::Other,
        DeValue::Array(a) => V::Arr(a.iter().map(|x| conv(x, lines)).collect()),
        DeValue::Table(t) => V::Tab(conv_table(t, lines)),
    };
    N { line, v }
}

fn conv_table(t: &DeTable<'_>, lines: &Lines) -> Vec<(String, usize, N)> {
    let mut out: Vec<(String, usize, N)> = t
        .iter()
        .map(|(k, v)| {
            (
                k.get_ref().to_string(),
                lines.line(k.span().start),
                conv(v, lines),
            )
        })
        .collect();
    out.sort_by_key(|x| x.1);
    out
}

/// A table's fields: (key, line of the key, value).
type Fields = Vec<(String, usize, N)>;

/// Reads the fields of one table, remembering which were used (the rest are "unknown field").
struct Tab<'a> {
    file: &'a str,
    prefix: String,
    line: usize,
    fields: Vec<(String, usize, N)>,
    used: Vec<bool>,
    errs: &'a mut Vec<DefError>,
}

impl<'a> Tab<'a> {
    fn err(&mut self, line: usize, field: &str, msg: impl Into<String>) {
        let field = if self.prefix.is_empty() {
            field.to_string()
        } else {
            format!("{}{field}", self.prefix)
        };
        self.errs.push(DefError {
            file: self.file.to_string(),
            line,
            field,
            message: msg.into(),
        });
    }
    fn get(&mut self, key: &str) -> Option<N> {
        let i = self.fields.iter().position(|f| f.0 == key)?;
        self.used[i] = true;
        Some(self.fields[i].2.clone())
    }
    fn str_opt(&mut self, key: &str) -> Option<(String, usize)> {
        let n = self.get(key)?;
        match n.v {
            V::Str(s) => Some((s, n.line)),
            _ => {
                self.err(n.line, key, "expected a string");
                None
            }
        }
    }
    fn str_req(&mut self, key: &str) -> Option<(String, usize)> {
        let r = self.str_opt(key);
        if r.is_none() && !self.fields.iter().any(|f| f.0 == key) {
            let l = self.line;
            self.err(l, key, "missing (required)");
        }
        r
    }
    fn num_opt(&mut self, key: &str) -> Option<(f64, usize)> {
        let n = self.get(key)?;
        match n.v {
            V::Num(x) if x.is_finite() => Some((x, n.line)),
            _ => {
                self.err(n.line, key, "expected a finite number");
                None
            }
        }
    }
    fn bool_opt(&mut self, key: &str) -> Option<bool> {
        let n = self.get(key)?;
        match n.v {
            V::Bool(b) => Some(b),
            _ => {
                self.err(n.line, key, "expected true or false");
                None
            }
        }
    }
    /// A string or a list of strings.
    fn strs(&mut self, key: &str) -> Vec<(String, usize)> {
        let Some(n) = self.get(key) else {
            return vec![];
        };
        match n.v {
            V::Str(s) => vec![(s, n.line)],
            V::Arr(a) => {
                let mut out = vec![];
                for x in a {
                    match x.v {
                        V::Str(s) => out.push((s, x.line)),
                        V::Num(v) => out.push((format!("{v}"), x.line)),
                        _ => self.err(x.line, key, "expected strings"),
                    }
                }
                out
            }
            V::Num(v) => vec![(format!("{v}"), n.line)],
            _ => {
                self.err(n.line, key, "expected a string or a list of strings");
                vec![]
            }
        }
    }
    fn sub(&mut self, key: &str) -> Option<(Fields, usize)> {
        let n = self.get(key)?;
        match n.v {
            V::Tab(t) => Some((t, n.line)),
            _ => {
                self.err(n.line, key, "expected a table");
                None
            }
        }
    }
    fn finish(mut self, known: &[&str]) {
        for i in 0..self.fields.len() {
            if !self.used[i] {
                let (k, l) = (self.fields[i].0.clone(), self.fields[i].1);
                self.err(
                    l,
                    &k,
                    format!("unknown field (known: {})", known.join(", ")),
                );
            }
        }
    }
}

fn tab<'a>(
    file: &'a str,
    prefix: String,
    line: usize,
    fields: Vec<(String, usize, N)>,
    errs: &'a mut Vec<DefError>,
) -> Tab<'a> {
    let used = vec![false; fields.len()];
    Tab {
        file,
        prefix,
        line,
        fields,
        used,
        errs,
    }
}

/// `PT15M`, `PT1H`, `P1D`, `P7D`, `P1W`, `PT30S` → milliseconds.
pub fn parse_duration(s: &str) -> Option<i64> {
    let rest = s.strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut ms: i64 = 0;
    let mut any = false;
    let mut eat = |part: &str, units: &[(char, i64)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() {
                num.push(c);
            } else {
                let (_, f) = units.iter().find(|u| u.0 == c)?;
                let n: i64 = num.parse().ok()?;
                ms = ms.checked_add(n.checked_mul(*f)?)?;
                num.clear();
                any = true;
            }
        }
        num.is_empty().then_some(())
    };
    eat(date, &[('W', 7 * 86_400_000), ('D', 86_400_000)])?;
    if let Some(t) = time {
        if t.is_empty() {
            return None;
        }
        eat(t, &[('H', 3_600_000), ('M', 60_000), ('S', 1000)])?;
    }
    (any && ms > 0).then_some(ms)
}

const INDICATOR_FIELDS: [&str; 21] = [
    "id",
    "name_zh",
    "name_en",
    "theme",
    "unit",
    "owner",
    "description",
    "kind",
    "window",
    "grain",
    "spatial",
    "version",
    "state",
    "source",
    "target",
    "bands",
    "metric",
    "static",
    "expr",
    "as_of",
    "note",
];

/// Parses one file's text; definitions that parsed are returned even when others had errors.
pub fn parse_file(file: &str, text: &str, errs: &mut Vec<DefError>) -> Vec<Definition> {
    let lines = Lines::new(text);
    let (doc, perrs) = DeTable::parse_recoverable(text);
    for e in &perrs {
        let line = e.span().map(|s| lines.line(s.start)).unwrap_or(1);
        errs.push(DefError {
            file: file.into(),
            line,
            field: "(toml)".into(),
            message: e.message().trim().to_string(),
        });
    }
    if !perrs.is_empty() {
        return vec![];
    }
    let top = conv_table(doc.get_ref(), &lines);
    let mut out = vec![];
    for (k, l, n) in top {
        if k != "indicator" {
            errs.push(DefError {
                file: file.into(),
                line: l,
                field: k,
                message: "unknown top-level key (expected [[indicator]] tables)".into(),
            });
            continue;
        }
        let V::Arr(items) = n.v else {
            errs.push(DefError {
                file: file.into(),
                line: l,
                field: k,
                message: "expected [[indicator]] (an array of tables)".into(),
            });
            continue;
        };
        for it in items {
            let V::Tab(fields) = it.v else {
                errs.push(DefError {
                    file: file.into(),
                    line: it.line,
                    field: "indicator".into(),
                    message: "expected a table".into(),
                });
                continue;
            };
            let line = fields
                .iter()
                .map(|f| f.1)
                .min()
                .unwrap_or(it.line)
                .saturating_sub(1)
                .max(1);
            if let Some(d) = parse_indicator(file, line, fields, errs) {
                out.push(d);
            }
        }
    }
    out
}

fn parse_indicator(
    file: &str,
    line: usize,
    fields: Vec<(String, usize, N)>,
    errs: &mut Vec<DefError>,
) -> Option<Definition> {
    let n0 = errs.len();
    let id_guess = fields
        .iter()
        .find(|f| f.0 == "id")
        .and_then(|f| match &f.2.v {
            V::Str(s) => Some(s.clone()),
            _ => None,
        });
    let prefix = id_guess
        .as_ref()
        .map(|i| format!("{i}: "))
        .unwrap_or_default();
    let mut t = tab(file, prefix.clone(), line, fields, errs);
    let id = t.str_req("id");
    if let Some((id, l)) = &id {
        if id.is_empty()
            || !id.starts_with(|c: char| c.is_ascii_lowercase())
            || !id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            t.err(*l, "id", format!("`{id}`: ids are [a-z][a-z0-9_]*"));
        }
    }
    let name_zh = t.str_req("name_zh");
    let name_en = t.str_req("name_en");
    let theme = t.str_req("theme");
    if let Some((th, l)) = &theme {
        if !THEMES.iter().any(|x| x.0 == th) {
            let all: Vec<&str> = THEMES.iter().map(|x| x.0).collect();
            t.err(
                *l,
                "theme",
                format!("unknown theme `{th}` (one of {})", all.join(", ")),
            );
        }
    }
    let unit = t.str_req("unit");
    if let Some((u, l)) = &unit {
        if let Err(e) = parse_unit(u) {
            t.err(*l, "unit", e);
        }
    }
    let owner = t.str_req("owner");
    let description = t.str_opt("description").map(|x| x.0);
    let _note = t.str_opt("note");
    let source = t.str_opt("source").map(|x| x.0);
    let version = match t.num_opt("version") {
        Some((v, l)) if v < 1.0 || v.fract() != 0.0 => {
            t.err(l, "version", "a positive integer");
            1
        }
        Some((v, _)) => v as u32,
        None => {
            if !t.fields.iter().any(|f| f.0 == "version") {
                t.err(line, "version", "missing (required)");
            }
            1
        }
    };
    let state = match t.str_req("state") {
        Some((s, l)) => DefState::parse(&s).or_else(|| {
            t.err(
                l,
                "state",
                format!("`{s}`: one of draft, published, retired"),
            );
            None
        }),
        None => None,
    };
    let spatial = match t.str_opt("spatial") {
        None => Spatial::City,
        Some((s, l)) => match s.as_str() {
            "city" => Spatial::City,
            "district" => Spatial::District,
            "street" => Spatial::Street,
            _ => {
                t.err(l, "spatial", format!("`{s}`: one of city, district, street"));
                Spatial::City
            }
        },
    };
    let grain_ms = match t.str_opt("grain") {
        None => 3_600_000,
        Some((s, l)) => {
            match parse_duration(&s) {
                Some(ms) if ms >= 60_000 && 86_400_000 % ms == 0 => ms,
                Some(_) => {
                    t.err(l, "grain", format!("`{s}`: at least PT1M and dividing P1D evenly (PT1M, PT15M, PT1H, P1D …)"));
                    3_600_000
                }
                None => {
                    t.err(
                        l,
                        "grain",
                        format!("`{s}`: not an ISO 8601 duration (PT1H, P1D)"),
                    );
                    3_600_000
                }
            }
        }
    };
    let kind_s = t.str_req("kind");
    let window_raw = t.str_opt("window");
    let window = match &window_raw {
        None => Window::None,
        Some((s, l)) => match s.as_str() {
            "current" => Window::Current,
            "day" => Window::Calendar {
                unit: CalendarUnit::Day,
            },
            "week" => Window::Calendar {
                unit: CalendarUnit::Week,
            },
            "month" => Window::Calendar {
                unit: CalendarUnit::Month,
            },
            _ => match parse_duration(s) {
                Some(ms) if ms >= 60_000 && ms % 60_000 == 0 && ms <= 92 * 86_400_000 => {
                    Window::Rolling { ms }
                }
                Some(_) => {
                    t.err(
                        *l,
                        "window",
                        format!("`{s}`: a rolling window is whole minutes, PT1M … P92D"),
                    );
                    Window::None
                }
                None => {
                    t.err(*l, "window", format!("`{s}`: expected an ISO 8601 duration (PT1H, P1D), day, week, month or current"));
                    Window::None
                }
            },
        },
    };
    let target = t.sub("target").and_then(|(f, l)| {
        let mut s = tab(file, format!("{prefix}target."), l, f, t.errs);
        let v = s.num_opt("value");
        let dir = match s.str_opt("direction") {
            Some((d, _)) if d == "at_least" => Some(Direction::AtLeast),
            Some((d, _)) if d == "at_most" => Some(Direction::AtMost),
            Some((d, dl)) => {
                s.err(dl, "direction", format!("`{d}`: at_least or at_most"));
                None
            }
            None => {
                s.err(l, "direction", "missing (at_least or at_most)");
                None
            }
        };
        if v.is_none() {
            s.err(l, "value", "missing");
        }
        s.finish(&["value", "direction"]);
        Some(Target {
            value: v?.0,
            direction: dir?,
        })
    });
    let mut bands = vec![];
    if let Some(n) = t.get("bands") {
        match n.v {
            V::Arr(items) => {
                let mut prev: Option<f64> = None;
                let count = items.len();
                for (i, it) in items.into_iter().enumerate() {
                    let V::Tab(f) = it.v else {
                        t.err(it.line, &format!("bands[{i}]"), "expected a table");
                        continue;
                    };
                    let mut s = tab(file, format!("{prefix}bands[{i}]."), it.line, f, t.errs);
                    let max = s.num_opt("max");
                    let zh = s.str_req("label_zh").map(|x| x.0).unwrap_or_default();
                    let en = s.str_req("label_en").map(|x| x.0).unwrap_or_default();
                    let color = match s.str_req("color") {
                        Some((c, cl)) => {
                            if !(c.len() == 7
                                && c.starts_with('#')
                                && c[1..].chars().all(|x| x.is_ascii_hexdigit()))
                            {
                                s.err(cl, "color", format!("`{c}`: expected #rrggbb"));
                            }
                            c
                        }
                        None => String::new(),
                    };
                    match (max, prev) {
                        (Some((m, ml)), Some(p)) if m <= p => {
                            s.err(ml, "max", format!("bands not ascending: {m} after {p}"));
                        }
                        (None, _) if i + 1 != count => {
                            s.err(it.line, "max", "only the last band may omit `max`");
                        }
                        _ => {}
                    }
                    if let Some((m, _)) = max {
                        prev = Some(m);
                    }
                    s.finish(&["max", "label_zh", "label_en", "color"]);
                    bands.push(Band {
                        max: max.map(|x| x.0),
                        label_zh: zh,
                        label_en: en,
                        color,
                    });
                }
            }
            _ => t.err(n.line, "bands", "expected [[indicator.bands]] tables"),
        }
    }
    let as_of = t.str_opt("as_of").map(|x| x.0);
    let kind = match kind_s.as_ref().map(|k| k.0.as_str()) {
        Some("static") => {
            let st = t.sub("static");
            let mut value = None;
            let mut by_district = vec![];
            match st {
                None => t.err(
                    line,
                    "static",
                    "missing [indicator.static] (value or by_district)",
                ),
                Some((f, l)) => {
                    let mut s = tab(file, format!("{prefix}static."), l, f, t.errs);
                    value = s.num_opt("value").map(|x| x.0);
                    if let Some((bd, bl)) = s.sub("by_district") {
                        for (k, kl, n) in bd {
                            match n.v {
                                V::Num(x) => by_district.push((k, x)),
                                _ => s.err(kl, &format!("by_district.{k}"), "expected a number"),
                            }
                        }
                        if by_district.is_empty() {
                            s.err(bl, "by_district", "empty table");
                        }
                    }
                    if value.is_none() && by_district.is_empty() && s.errs.len() == n0 {
                        s.err(
                            l,
                            "value",
                            "a static indicator needs `value` or `by_district`",
                        );
                    }
                    s.finish(&["value", "by_district"]);
                }
            }
            if source.is_none() {
                t.err(line, "source", "a static figure needs its source citation");
            }
            if let Some((_, l)) = &window_raw {
                t.err(*l, "window", "static indicators have no window");
            }
            Some(Kind::Static(StaticDef {
                value,
                by_district,
                as_of: as_of.clone(),
            }))
        }
        Some("derived") => match t.str_opt("expr") {
            None => {
                t.err(line, "expr", "missing (a derived indicator needs `expr`)");
                None
            }
            Some((e, l)) => {
                if let Some((_, wl)) = &window_raw {
                    t.err(
                        *wl,
                        "window",
                        "derived indicators take their inputs' windows; remove `window`",
                    );
                }
                match expr::parse(&e) {
                    Ok(ast) => {
                        let inputs = ast.refs();
                        Some(Kind::Derived(DerivedDef {
                            expr: e,
                            ast,
                            inputs,
                            line: l,
                        }))
                    }
                    Err((col, m)) => {
                        t.err(l, "expr", format!("column {col}: {m}"));
                        None
                    }
                }
            }
        },
        Some("metric") => match t.sub("metric") {
            None => {
                t.err(line, "metric", "missing [indicator.metric]");
                None
            }
            Some((f, l)) => {
                let unit_s = unit.as_ref().map(|u| u.0.clone()).unwrap_or_default();
                let ul = unit.as_ref().map(|u| u.1).unwrap_or(line);
                let wl = window_raw.as_ref().map(|w| w.1).unwrap_or(line);
                parse_metric(file, &prefix, l, f, (&unit_s, ul), window, wl, t.errs)
                    .map(|m| Kind::Metric(Box::new(m)))
            }
        },
        Some(k) => {
            let l = kind_s.as_ref().map(|x| x.1).unwrap_or(line);
            t.err(l, "kind", format!("`{k}`: one of static, metric, derived"));
            None
        }
        None => None,
    };
    if kind_s.as_ref().map(|k| k.0.as_str()) == Some("metric")
        && window == Window::None
        && window_raw.is_none()
    {
        t.err(
            line,
            "window",
            "missing: a metric needs a window (PT1H, P1D, day, week, month or current)",
        );
    }
    t.finish(&INDICATOR_FIELDS);
    if errs.len() > n0 {
        return None;
    }
    let s = |x: Option<(String, usize)>| x.map(|x| x.0).unwrap_or_default();
    Some(Definition {
        id: s(id),
        name_zh: s(name_zh),
        name_en: s(name_en),
        theme: s(theme),
        unit: s(unit),
        owner: s(owner),
        description,
        kind: kind?,
        window,
        grain_ms,
        spatial,
        bands,
        target,
        source,
        version,
        state: state?,
        file: file.to_string(),
        line,
    })
}

fn field_unit(input: InputKind, field: &str) -> Option<&'static str> {
    match (input, field) {
        (InputKind::Events, "severity") => Some("1"),
        (InputKind::Events, "escalation") => Some("1"),
        (InputKind::Transitions, "since_reported_min") => Some("min"),
        (InputKind::Transitions, "stage_min") => Some("min"),
        (InputKind::Observations, "value") => Some(""),
        _ => None,
    }
}

#[allow(clippy::too_many_arguments)]
fn parse_metric(
    file: &str,
    prefix: &str,
    line: usize,
    fields: Vec<(String, usize, N)>,
    (unit, unit_line): (&str, usize),
    window: Window,
    window_line: usize,
    errs: &mut Vec<DefError>,
) -> Option<MetricDef> {
    let n0 = errs.len();
    let mut unit_errs: Vec<String> = vec![];
    let mut t = tab(file, format!("{prefix}metric."), line, fields, errs);
    let input = match t.str_req("input") {
        Some((s, l)) => match s.as_str() {
            "events" => Some(InputKind::Events),
            "transitions" => Some(InputKind::Transitions),
            "observations" => Some(InputKind::Observations),
            _ => {
                t.err(
                    l,
                    "input",
                    format!("unknown source `{s}` (events, transitions, observations)"),
                );
                None
            }
        },
        None => None,
    };
    let agg_s = t.str_req("aggregate");
    let p = t.num_opt("p");
    let per = t.str_opt("per");
    let field = t.str_opt("field");
    let agg = agg_s.as_ref().and_then(|(a, l)| {
        Some(match a.as_str() {
            "count" => Aggregate::Count,
            "sum" => Aggregate::Sum,
            "avg" => Aggregate::Avg,
            "min" => Aggregate::Min,
            "max" => Aggregate::Max,
            "ratio" => Aggregate::Ratio,
            "distinct" => Aggregate::Distinct,
            "percentile" => match p {
                Some((p, _)) if p > 0.0 && p <= 100.0 => Aggregate::Percentile { p },
                Some((p, pl)) => {
                    t.err(pl, "p", format!("{p}: a percentile is in (0, 100]"));
                    return None;
                }
                None => {
                    t.err(*l, "p", "missing: percentile needs `p` (e.g. 95)");
                    return None;
                }
            },
            "rate" => match per.as_ref().map(|x| x.0.as_str()) {
                Some("hour") => Aggregate::Rate { per_ms: 3_600_000 },
                Some("day") => Aggregate::Rate { per_ms: 86_400_000 },
                Some(x) => {
                    let pl = per.as_ref().map(|p| p.1).unwrap_or(*l);
                    t.err(pl, "per", format!("`{x}`: hour or day"));
                    return None;
                }
                None => {
                    t.err(*l, "per", "missing: rate needs `per` (hour or day)");
                    return None;
                }
            },
            _ => {
                t.err(*l, "aggregate", format!("unknown aggregate `{a}` (count, sum, avg, min, max, percentile, ratio, rate, distinct)"));
                return None;
            }
        })
    });
    let filter_of = |t: &mut Tab, key: &str| -> Option<Filter> {
        let (f, l) = t.sub(key)?;
        let mut s = tab(file, format!("{}{key}.", t.prefix), l, f, t.errs);
        let mut out = Filter::default();
        for (v, vl) in s.strs("category") {
            match Category::parse(&v) {
                Some(c) => out.category.push(c),
                None => {
                    let all: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
                    s.err(
                        vl,
                        "category",
                        format!("unknown category `{v}` ({})", all.join(", ")),
                    )
                }
            }
        }
        for (key, dst) in [("state", 0), ("from_state", 1)] {
            for (v, vl) in s.strs(key) {
                match EventState::parse(&v) {
                    Some(c) if dst == 0 => out.state.push(c),
                    Some(c) => out.from_state.push(c),
                    None => s.err(vl, key, format!("unknown state `{v}`")),
                }
            }
        }
        for (v, vl) in s.strs("source") {
            match EventSource::parse(&v) {
                Some(c) => out.source.push(c),
                None => s.err(vl, "source", format!("unknown event source `{v}`")),
            }
        }
        for (v, vl) in s.strs("severity") {
            match v
                .parse::<u8>()
                .ok()
                .and_then(|x| Severity::try_from(x).ok())
            {
                Some(c) => out.severity.push(c),
                None => s.err(vl, "severity", format!("`{v}`: 1 … 4")),
            }
        }
        for (v, vl) in s.strs("kind") {
            if ["created", "transition", "escalated", "assigned"].contains(&v.as_str()) {
                out.kind.push(v)
            } else {
                s.err(
                    vl,
                    "kind",
                    format!(
                        "unknown log entry kind `{v}` (created, transition, escalated, assigned)"
                    ),
                )
            }
        }
        for (v, vl) in s.strs("sensor_type") {
            if SENSOR_TYPES.contains(&v.as_str()) {
                out.sensor_type.push(v)
            } else {
                s.err(
                    vl,
                    "sensor_type",
                    format!("unknown sensor type `{v}` ({})", SENSOR_TYPES.join(", ")),
                )
            }
        }
        for (v, vl) in s.strs("observed_property") {
            if OBSERVED_PROPERTIES.iter().any(|p| p.0 == v) {
                out.observed_property.push(v)
            } else {
                let all: Vec<&str> = OBSERVED_PROPERTIES.iter().map(|p| p.0).collect();
                s.err(
                    vl,
                    "observed_property",
                    format!("unknown observed property `{v}` ({})", all.join(", ")),
                )
            }
        }
        for (v, vl) in s.strs("district") {
            match v.parse::<f64>() {
                Ok(x) if x >= 0.0 && x.fract() == 0.0 => out.district.push(x as u32),
                _ => s.err(vl, "district", format!("`{v}`: a district index")),
            }
        }
        out.overdue = s.bool_opt("overdue");
        out.value_min = s.num_opt("value_min").map(|x| x.0);
        out.value_max = s.num_opt("value_max").map(|x| x.0);
        out.prop_mask = out
            .observed_property
            .iter()
            .map(|p| prop_bit(p))
            .fold(0, |a, b| a | b);
        out.sensor_mask = out
            .sensor_type
            .iter()
            .map(|p| sensor_bit(p))
            .fold(0, |a, b| a | b);
        s.finish(&[
            "category",
            "state",
            "from_state",
            "source",
            "severity",
            "kind",
            "sensor_type",
            "observed_property",
            "district",
            "overdue",
            "value_min",
            "value_max",
        ]);
        Some(out)
    };
    let filter = filter_of(&mut t, "filter").unwrap_or_default();
    let numerator = filter_of(&mut t, "numerator");
    let denominator = filter_of(&mut t, "denominator");
    // Cross-field checks.
    if let (Some(input), Some(agg)) = (input, agg) {
        let l = agg_s.as_ref().map(|a| a.1).unwrap_or(line);
        let needs_field = matches!(
            agg,
            Aggregate::Sum
                | Aggregate::Avg
                | Aggregate::Min
                | Aggregate::Max
                | Aggregate::Percentile { .. }
        );
        let all_filters = [Some(&filter), numerator.as_ref(), denominator.as_ref()];
        let check_filter_fields = |t: &mut Tab, f: &Filter| {
            let ev = !f.category.is_empty() || !f.source.is_empty() || !f.severity.is_empty();
            match input {
                InputKind::Observations if ev || !f.state.is_empty() || !f.from_state.is_empty() || !f.kind.is_empty() || f.overdue.is_some() => {
                    t.err(l, "filter", "observations have no category/state/source/severity/kind/overdue")
                }
                InputKind::Events | InputKind::Transitions
                    if !f.sensor_type.is_empty() || !f.observed_property.is_empty() || f.value_min.is_some() || f.value_max.is_some() =>
                {
                    t.err(l, "filter", "events and transitions have no sensor_type/observed_property/value_min/value_max")
                }
                InputKind::Events if !f.from_state.is_empty() || !f.kind.is_empty() => {
                    t.err(l, "filter", "events have no from_state/kind (use input = \"transitions\")")
                }
                _ => {}
            }
            if f.overdue.is_some() && window != Window::Current {
                t.err(l, "filter.overdue", "overdue needs window = \"current\"");
            }
        };
        for f in all_filters.into_iter().flatten() {
            check_filter_fields(&mut t, f);
        }
        match (needs_field, &field) {
            (true, None) => t.err(l, "field", format!("missing: {agg:?} needs a numeric field")),
            (false, Some((_, fl))) => t.err(*fl, "field", "only sum/avg/min/max/percentile take a field"),
            (true, Some((f, fl))) => match field_unit(input, f) {
                None => t.err(*fl, "field", format!("unknown field `{f}` of {input:?} (events: severity, escalation; transitions: since_reported_min, stage_min; observations: value)")),
                Some(fu) => {
                    let fu = if input == InputKind::Observations {
                        // The unit of the observed property (all properties filtered must agree).
                        let props: Vec<&str> = filter.observed_property.iter().map(|s| s.as_str()).collect();
                        let units: Vec<&str> = props.iter().filter_map(|p| OBSERVED_PROPERTIES.iter().find(|x| x.0 == *p).map(|x| x.1)).collect();
                        if units.is_empty() {
                            t.err(l, "filter.observed_property", "an aggregate of observation values needs an observed_property filter (for its unit)");
                            None
                        } else if units.iter().any(|u| *u != units[0]) {
                            t.err(l, "filter.observed_property", format!("observed properties of different units: {}", units.join(", ")));
                            None
                        } else {
                            Some(units[0])
                        }
                    } else {
                        Some(fu)
                    };
                    if let Some(fu) = fu {
                        if let (Ok(a), Ok(b)) = (parse_unit(fu), parse_unit(unit)) {
                            if a != b && fu != unit {
                                unit_errs.push(format!("unit mismatch: the {agg:?} of `{f}` is in `{fu}`, the indicator declares `{unit}`"));
                            }
                        }
                    }
                }
            },
            _ => {}
        }
        if let Ok(u) = parse_unit(unit) {
            match agg {
                Aggregate::Ratio => {
                    if numerator.is_none() || denominator.is_none() {
                        t.err(
                            l,
                            "numerator",
                            "ratio needs [metric.numerator] and [metric.denominator] filters",
                        );
                    }
                    if !(unit == "%" || u.is_one()) {
                        unit_errs.push(format!(
                            "unit mismatch: a ratio is `%` or `1`, not `{unit}`"
                        ));
                    }
                }
                Aggregate::Count | Aggregate::Distinct => {
                    let ok = u.0.len() == 1
                        && u.0.iter().all(|(k, e)| k.starts_with('{') && *e == 1)
                        || u.is_one();
                    if !ok {
                        unit_errs.push(format!("unit mismatch: a count is `1` or an annotation like `{{event}}`, not `{unit}`"));
                    }
                }
                Aggregate::Rate { per_ms } => {
                    let per = if per_ms == 3_600_000 { "h" } else { "d" };
                    if u.0.get(per) != Some(&-1) {
                        unit_errs.push(format!(
                            "unit mismatch: a rate per {} must be `…/{per}`, not `{unit}`",
                            if per == "h" { "hour" } else { "day" }
                        ));
                    }
                }
                _ => {}
            }
        }
        if !matches!(agg, Aggregate::Ratio) && (numerator.is_some() || denominator.is_some()) {
            t.err(l, "numerator", "numerator/denominator only apply to ratio");
        }
        if matches!(agg, Aggregate::Distinct) && input != InputKind::Observations {
            t.err(
                l,
                "aggregate",
                "distinct counts datastreams: observations only",
            );
        }
        if window == Window::Current {
            if input != InputKind::Events || !matches!(agg, Aggregate::Count) {
                t.err(
                    window_line,
                    "window",
                    "`current` is a gauge of events: input = \"events\", aggregate = \"count\"",
                );
            }
        } else if input == InputKind::Events
            && matches!(agg, Aggregate::Min | Aggregate::Max)
            && !filter.state.is_empty()
        {
            t.err(
                l,
                "filter.state",
                "min/max over events cannot filter on their (changing) state",
            );
        }
    }
    t.finish(&[
        "input",
        "aggregate",
        "field",
        "p",
        "per",
        "filter",
        "numerator",
        "denominator",
    ]);
    for m in unit_errs {
        errs.push(DefError {
            file: file.into(),
            line: unit_line,
            field: format!("{prefix}unit"),
            message: m,
        });
    }
    if errs.len() > n0 {
        return None;
    }
    Some(MetricDef {
        input: input?,
        aggregate: agg?,
        field: field.map(|f| f.0),
        filter,
        numerator,
        denominator,
    })
}

/// Cross-definition checks: duplicate ids, unknown references, retired references, cycles,
/// unit mismatches of derived expressions. Returns the topological order (inputs first).
pub fn validate_set(defs: &[Definition], errs: &mut Vec<DefError>) -> Vec<usize> {
    let mut by_id: HashMap<&str, usize> = HashMap::new();
    for (i, d) in defs.iter().enumerate() {
        if let Some(j) = by_id.insert(&d.id, i) {
            let o = &defs[j];
            errs.push(DefError {
                file: d.file.clone(),
                line: d.line,
                field: format!("{}: id", d.id),
                message: format!("duplicate id (also defined at {}:{})", o.file, o.line),
            });
        }
    }
    let units: HashMap<&str, (Dim, String)> = defs
        .iter()
        .filter_map(|d| {
            parse_unit(&d.unit)
                .ok()
                .map(|u| (d.id.as_str(), (u, d.unit.clone())))
        })
        .collect();
    for d in defs {
        let Some(dd) = d.derived() else { continue };
        if !d.is_active() {
            continue;
        }
        let mut ok = true;
        for r in &dd.inputs {
            match by_id.get(r.as_str()) {
                None => {
                    ok = false;
                    errs.push(DefError {
                        file: d.file.clone(),
                        line: dd.line,
                        field: format!("{}: expr", d.id),
                        message: format!("unknown indicator `{r}`"),
                    });
                }
                Some(&j) if !defs[j].is_active() => {
                    ok = false;
                    errs.push(DefError {
                        file: d.file.clone(),
                        line: dd.line,
                        field: format!("{}: expr", d.id),
                        message: format!("`{r}` is retired"),
                    });
                }
                _ => {}
            }
        }
        if ok {
            let unit_of = |r: &str| units.get(r).cloned();
            match dd.ast.unit(&unit_of) {
                Err(m) => errs.push(DefError {
                    file: d.file.clone(),
                    line: dd.line,
                    field: format!("{}: expr", d.id),
                    message: m,
                }),
                Ok(u) => {
                    let u = u.unwrap_or_default();
                    if let Some((declared, _)) = units.get(d.id.as_str()) {
                        if !u.compatible_with(declared) {
                            errs.push(DefError {
                                file: d.file.clone(),
                                line: dd.line,
                                field: format!("{}: unit", d.id),
                                message: format!("unit mismatch: the expression gives `{u}`, the indicator declares `{}`", d.unit),
                            });
                        }
                    }
                }
            }
        }
    }
    // Topological order with cycle detection (DFS, colours).
    let n = defs.len();
    let mut color = vec![0u8; n];
    let mut order = Vec::with_capacity(n);
    let mut reported: BTreeMap<Vec<usize>, ()> = BTreeMap::new();
    fn visit(
        i: usize,
        defs: &[Definition],
        by_id: &HashMap<&str, usize>,
        color: &mut [u8],
        stack: &mut Vec<usize>,
        order: &mut Vec<usize>,
        cycles: &mut Vec<Vec<usize>>,
    ) {
        color[i] = 1;
        stack.push(i);
        if let Some(dd) = defs[i].derived() {
            for r in &dd.inputs {
                let Some(&j) = by_id.get(r.as_str()) else {
                    continue;
                };
                match color[j] {
                    0 => visit(j, defs, by_id, color, stack, order, cycles),
                    1 => {
                        let pos = stack.iter().position(|x| *x == j).unwrap_or(0);
                        cycles.push(stack[pos..].to_vec());
                    }
                    _ => {}
                }
            }
        }
        stack.pop();
        color[i] = 2;
        order.push(i);
    }
    let mut cycles = vec![];
    for i in 0..n {
        if color[i] == 0 {
            visit(
                i,
                defs,
                &by_id,
                &mut color,
                &mut vec![],
                &mut order,
                &mut cycles,
            );
        }
    }
    for c in cycles {
        let mut key = c.clone();
        key.sort();
        if reported.insert(key, ()).is_some() {
            continue;
        }
        let d = &defs[c[0]];
        let line = d.derived().map(|x| x.line).unwrap_or(d.line);
        let mut names: Vec<&str> = c.iter().map(|i| defs[*i].id.as_str()).collect();
        names.push(&defs[c[0]].id);
        errs.push(DefError {
            file: d.file.clone(),
            line,
            field: format!("{}: expr", d.id),
            message: format!("cycle among derived indicators: {}", names.join(" → ")),
        });
    }
    order
}

/// A validated set of definitions.
#[derive(Debug, Clone)]
pub struct Library {
    pub defs: Vec<Definition>,
}

impl Library {
    /// Parses and validates `(file name, text)` pairs; all errors of all files at once.
    pub fn from_sources(sources: &[(String, String)]) -> Result<Library, DefErrors> {
        let mut errs = vec![];
        let mut defs = vec![];
        for (f, t) in sources {
            defs.extend(parse_file(f, t, &mut errs));
        }
        validate_set(&defs, &mut errs);
        if errs.is_empty() {
            Ok(Library { defs })
        } else {
            errs.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
            Err(DefErrors(errs))
        }
    }

    /// Loads every `*.toml` of a directory (sorted by name).
    pub fn load_dir(dir: &Path) -> Result<Library, DefErrors> {
        let mut files: Vec<_> = match std::fs::read_dir(dir) {
            Ok(rd) => rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect(),
            Err(e) => {
                return Err(DefErrors(vec![DefError {
                    file: dir.display().to_string(),
                    line: 0,
                    field: "(dir)".into(),
                    message: e.to_string(),
                }]))
            }
        };
        files.sort();
        let mut sources = vec![];
        let mut errs = vec![];
        for p in files {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            match std::fs::read_to_string(&p) {
                Ok(t) => sources.push((name, t)),
                Err(e) => errs.push(DefError {
                    file: name,
                    line: 0,
                    field: "(file)".into(),
                    message: e.to_string(),
                }),
            }
        }
        if !errs.is_empty() {
            return Err(DefErrors(errs));
        }
        Library::from_sources(&sources)
    }

    pub fn get(&self, id: &str) -> Option<&Definition> {
        self.defs.iter().find(|d| d.id == id)
    }
}

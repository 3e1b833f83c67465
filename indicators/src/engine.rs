//! The incremental evaluation engine.
//!
//! Inputs ([`Input`]: events, their log transitions, observations) are applied once, as they
//! arrive, to per-(indicator, area) window state: time buckets of counts/sums/min/max (and a
//! [`Sketch`] for percentiles) for rolling and calendar windows, counts for `current` gauges, a
//! last-seen index for `distinct`. Values are computed from that state on demand and cached until
//! the state changes or the window moves to another bucket; derived indicators are recomputed
//! only when one of their inputs' values changed (topological order). History: at every grain
//! boundary passed by the engine clock the value of each indicator and area is appended to a
//! bounded series. Backfill feeds history through the same [`Engine::push`] path.

use crate::def::*;
use crate::load::{parse_file, validate_set, DefError, DefErrors, Library};
use crate::sketch::Sketch;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use twin_protocol::{
    Category, Event, EventSource, EventState, LonLat, Severity, Timestamp, Transition,
};

/// Fixed-key hasher for datastream ids (stable within the process: backfill and live agree).
static DS_HASH: std::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher> =
    std::hash::BuildHasherDefault::new();

/// Milliseconds since the Unix epoch.
pub type Ms = i64;
/// Asia/Shanghai is UTC+8 all year (no DST since 1991): calendar windows and grain boundaries
/// are aligned on this offset.
pub const SHANGHAI_OFFSET_MS: Ms = 8 * 3_600_000;
const DAY: Ms = 86_400_000;
/// The longest rolling window allowed (P92D; calendar months are shorter).
const MAX_WINDOW_MS: Ms = 92 * DAY;
const HOUR: Ms = 3_600_000;

/// City-wide, one district or one street (街道/乡镇) (the model's district / street index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    City,
    District(u32),
    Street(u32),
}

/// One observation as the engine consumes it; the server maps the sensors module's
/// Observation + Datastream onto it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    pub datastream: String,
    /// One of [`SENSOR_TYPES`].
    pub sensor_type: String,
    /// One of [`OBSERVED_PROPERTIES`] (its unit is the property's unit).
    pub observed_property: String,
    pub district: Option<u32>,
    /// The model street (街道/乡镇) containing the datastream's location.
    #[serde(default)]
    pub street: Option<u32>,
    #[serde(default)]
    pub location: Option<LonLat>,
    pub value: f64,
    pub phenomenon_time: Timestamp,
}

/// What the engine is fed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Input {
    /// An event as created or updated (its current snapshot).
    Event(Event),
    /// One entry of the event log.
    Transition(Transition),
    Observation(Observation),
}

impl Input {
    /// An event as it was when created (state `reported`, no escalation, `updated_at =
    /// reported_at`): what a backfill feeds before the event's log entries.
    pub fn event_as_created(e: &Event) -> Input {
        let mut e = e.clone();
        e.state = EventState::Reported;
        e.updated_at = e.reported_at;
        e.escalation = 0;
        e.due_at = None;
        Input::Event(e)
    }

    /// The time the input is applied at (drives the engine clock).
    pub fn time(&self) -> Ms {
        match self {
            Input::Event(e) => e
                .updated_at
                .timestamp_millis()
                .max(e.reported_at.timestamp_millis()),
            Input::Transition(t) => t.at.timestamp_millis(),
            Input::Observation(o) => o.phenomenon_time.timestamp_millis(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// District names by model index (resolves `static.by_district`).
    pub districts: Vec<String>,
    /// The parent district of each model street (by street index): a street-grain derived
    /// indicator reads a district-grain input at its street's district.
    pub street_districts: Vec<Option<u32>>,
    /// Points kept per (indicator, area) series.
    pub history_points: usize,
    /// Observations stamped more than this ahead of the wall clock (the last `tick`) are
    /// refused, so one sensor with a bad clock cannot move the engine clock and empty every
    /// window; events and log entries are applied but move the clock at most this far ahead.
    pub max_future_ms: Ms,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            districts: vec![],
            street_districts: vec![],
            history_points: 2 * 24 * 31,
            max_future_ms: HOUR,
        }
    }
}

/// A current value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Value {
    pub id: String,
    pub version: u32,
    pub area: Area,
    pub at: Timestamp,
    pub value: Option<f64>,
    pub unit: String,
    /// The band the value falls in (label_en) and its colour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
    /// Whether the target is met (None without target or value).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub on_target: Option<bool>,
}

/// `series` failures.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SeriesError {
    #[error("unknown indicator `{0}`")]
    Unknown(String),
    #[error("bad range: from must be ≤ to and step > 0")]
    BadRange,
    #[error("too many points ({0}; at most 10000): use a larger step")]
    TooMany(i64),
}

// ---------------------------------------------------------------------------------------------
// window state

#[derive(Debug, Clone)]
struct Cell {
    n: f64,
    sum: f64,
    min: f64,
    max: f64,
    num: f64,
    sk: Option<Box<Sketch>>,
}

impl Default for Cell {
    fn default() -> Self {
        Cell {
            n: 0.0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            num: 0.0,
            sk: None,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Contrib {
    main: bool,
    num: bool,
    den: bool,
    val: Option<f64>,
}

impl Contrib {
    fn none(&self) -> bool {
        !self.main
    }
}

#[derive(Debug, Clone, Copy)]
struct WinSpec {
    res: Ms,
    /// Buckets kept behind the newest (eviction horizon).
    span: i64,
}

fn win_spec(w: Window) -> Option<WinSpec> {
    match w {
        Window::Rolling { ms } => Some(WinSpec {
            res: ms / 240,
            span: 240,
        }),
        Window::Calendar {
            unit: CalendarUnit::Day,
        } => Some(WinSpec {
            res: 5 * 60_000,
            span: 2 * 288,
        }),
        Window::Calendar {
            unit: CalendarUnit::Week,
        } => Some(WinSpec {
            res: HOUR,
            span: 8 * 24,
        }),
        Window::Calendar {
            unit: CalendarUnit::Month,
        } => Some(WinSpec {
            res: HOUR,
            span: 32 * 24,
        }),
        _ => None,
    }
}

/// Start (ms) of the calendar period containing `now`, Asia/Shanghai.
pub fn period_start(unit: CalendarUnit, now: Ms) -> Ms {
    let local = now + SHANGHAI_OFFSET_MS;
    let days = local.div_euclid(DAY);
    match unit {
        CalendarUnit::Day => days * DAY - SHANGHAI_OFFSET_MS,
        CalendarUnit::Week => {
            // 1970-01-01 was a Thursday: Monday-based weekday = (days + 3) mod 7.
            let dow = (days + 3).rem_euclid(7);
            (days - dow) * DAY - SHANGHAI_OFFSET_MS
        }
        CalendarUnit::Month => {
            use chrono::Datelike;
            let d = chrono::DateTime::from_timestamp_millis(local)
                .unwrap_or_default()
                .date_naive();
            let first = d.with_day(1).unwrap_or(d);
            first
                .and_hms_opt(0, 0, 0)
                .map(|x| x.and_utc().timestamp_millis())
                .unwrap_or(0)
                - SHANGHAI_OFFSET_MS
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Buckets {
    v: VecDeque<(i64, Cell)>,
}

impl Buckets {
    fn cell_mut(&mut self, idx: i64) -> &mut Cell {
        let pos = match self.v.back() {
            Some((b, _)) if *b == idx => self.v.len() - 1,
            Some((b, _)) if *b < idx => {
                self.v.push_back((idx, Cell::default()));
                self.v.len() - 1
            }
            None => {
                self.v.push_back((idx, Cell::default()));
                0
            }
            _ => match self.v.binary_search_by_key(&idx, |x| x.0) {
                Ok(i) => i,
                Err(i) => {
                    self.v.insert(i, (idx, Cell::default()));
                    i
                }
            },
        };
        &mut self.v[pos].1
    }
    fn evict_below(&mut self, min_idx: i64) {
        while self.v.front().is_some_and(|x| x.0 < min_idx) {
            self.v.pop_front();
        }
    }
}

#[derive(Debug, Clone)]
enum GroupState {
    Win(Buckets),
    Gauge {
        n: f64,
        due: BTreeMap<Ms, i64>,
    },
    Distinct {
        last: HashMap<u64, i64>,
        by_bucket: BTreeSet<(i64, u64)>,
    },
}

#[derive(Debug, Clone)]
struct Group {
    st: GroupState,
    version: u64,
    /// (time key, state version, value)
    cache: Option<(i64, u64, Option<f64>)>,
}

#[derive(Debug, Clone)]
struct Slot {
    def: Definition,
    groups: HashMap<Area, Group>,
    history: HashMap<Area, VecDeque<(Ms, Option<f64>)>>,
    last_boundary: Option<Ms>,
    evaluations: u64,
    /// Derived: per area, the input values (bits) last used and the result.
    dcache: HashMap<Area, (Vec<Option<u64>>, Option<f64>)>,
    /// Older versions of this definition (newest last).
    versions: Vec<Definition>,
}

impl Slot {
    fn new(def: Definition) -> Slot {
        Slot {
            def,
            groups: HashMap::new(),
            history: HashMap::new(),
            last_boundary: None,
            evaluations: 0,
            dcache: HashMap::new(),
            versions: vec![],
        }
    }
}

/// What the engine remembers of an event.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tracked {
    category: Option<Category>,
    source: Option<EventSource>,
    severity: Option<Severity>,
    district: Option<u32>,
    street: Option<u32>,
    state: EventState,
    reported: Ms,
    entered: Ms,
    due: Option<Ms>,
    escalation: u32,
    last_log: i64,
}

/// A view of one input for filters and fields.
#[derive(Debug, Clone, Copy)]
struct ItemView<'a> {
    t: Ms,
    category: Option<Category>,
    source: Option<EventSource>,
    severity: Option<Severity>,
    state: Option<EventState>,
    from: Option<EventState>,
    kind: Option<&'a str>,
    sensor_bit: u32,
    prop_bit: u32,
    /// Hash of the datastream id (for `distinct`).
    datastream: Option<u64>,
    district: Option<u32>,
    street: Option<u32>,
    escalation: u32,
    since_reported_min: Option<f64>,
    stage_min: Option<f64>,
    value: Option<f64>,
    due: Option<Ms>,
}

impl<'a> ItemView<'a> {
    fn of_event(t: &Tracked) -> ItemView<'static> {
        ItemView {
            t: t.reported,
            category: t.category,
            source: t.source,
            severity: t.severity,
            state: Some(t.state),
            from: None,
            kind: None,
            sensor_bit: 0,
            prop_bit: 0,
            datastream: None,
            district: t.district,
            street: t.street,
            escalation: t.escalation,
            since_reported_min: None,
            stage_min: None,
            value: None,
            due: t.due,
        }
    }
}

fn pass<T: PartialEq>(list: &[T], v: Option<T>) -> bool {
    list.is_empty() || v.is_some_and(|v| list.contains(&v))
}

fn matches(f: &Filter, it: &ItemView) -> bool {
    pass(&f.category, it.category)
        && pass(&f.state, it.state)
        && pass(&f.from_state, it.from)
        && pass(&f.source, it.source)
        && pass(&f.severity, it.severity)
        && (f.kind.is_empty() || it.kind.is_some_and(|k| f.kind.iter().any(|x| x == k)))
        && (f.sensor_mask == 0 || f.sensor_mask & it.sensor_bit != 0)
        && (f.prop_mask == 0 || f.prop_mask & it.prop_bit != 0)
        && pass(&f.district, it.district)
        && f.value_min.is_none_or(|m| it.value.is_some_and(|v| v >= m))
        && f.value_max.is_none_or(|m| it.value.is_some_and(|v| v <= m))
        && match f.overdue {
            Some(true) => it.due.is_some() && !it.state.is_some_and(|s| s.is_terminal()),
            Some(false) => it.due.is_none(),
            None => true,
        }
}

fn field_value(m: &MetricDef, it: &ItemView) -> Option<f64> {
    match m.field.as_deref()? {
        "severity" => it.severity.map(|s| s as u8 as f64),
        "escalation" => Some(it.escalation as f64),
        "since_reported_min" => it.since_reported_min,
        "stage_min" => it.stage_min,
        "value" => it.value,
        _ => None,
    }
}

fn contrib(m: &MetricDef, it: &ItemView) -> Contrib {
    let main = matches(&m.filter, it);
    if !main {
        return Contrib::default();
    }
    let mut c = Contrib {
        main,
        ..Default::default()
    };
    match m.aggregate {
        Aggregate::Ratio => {
            c.num = m.numerator.as_ref().is_some_and(|f| matches(f, it));
            c.den = m.denominator.as_ref().is_some_and(|f| matches(f, it));
            c.main = c.num || c.den;
        }
        Aggregate::Sum
        | Aggregate::Avg
        | Aggregate::Min
        | Aggregate::Max
        | Aggregate::Percentile { .. } => {
            c.val = field_value(m, it);
            c.main = c.val.is_some();
        }
        _ => {}
    }
    c
}

fn apply_cell(cell: &mut Cell, agg: Aggregate, c: &Contrib, sign: f64) {
    match agg {
        Aggregate::Ratio => {
            if c.num {
                cell.num += sign;
            }
            if c.den {
                cell.n += sign;
            }
        }
        Aggregate::Count | Aggregate::Rate { .. } | Aggregate::Distinct => cell.n += sign,
        _ => {
            let Some(v) = c.val else { return };
            cell.n += sign;
            cell.sum += sign * v;
            if sign > 0.0 {
                cell.min = cell.min.min(v);
                cell.max = cell.max.max(v);
            }
            if let Aggregate::Percentile { .. } = agg {
                cell.sk
                    .get_or_insert_with(Default::default)
                    .add(v, sign as i64);
            }
        }
    }
}

/// Whether a definition has values per district (a static table, or spatial = district/street).
fn per_district(d: &Definition) -> bool {
    match &d.kind {
        Kind::Static(s) => !s.by_district.is_empty(),
        _ => d.spatial.per_district(),
    }
}

/// The areas an item counts in: the city, its district (district and street grain) and its
/// street (street grain). A street's value reaches its district only through the items.
fn areas_of(spatial: Spatial, district: Option<u32>, street: Option<u32>) -> impl Iterator<Item = Area> {
    std::iter::once(Area::City)
        .chain(district.filter(|_| spatial.per_district()).map(Area::District))
        .chain(street.filter(|_| spatial == Spatial::Street).map(Area::Street))
}

/// The engine. Not thread-safe by itself: the server wraps it in a mutex (or one task).
#[derive(Debug, Clone)]
pub struct Engine {
    slots: Vec<Slot>,
    order: Vec<usize>,
    by_id: HashMap<String, usize>,
    events: HashMap<i64, Tracked>,
    cfg: EngineConfig,
    clock: Option<Ms>,
    next_boundary: Ms,
    inputs: u64,
    /// Active metric slots by input kind (events, transitions, observations).
    by_input: [Vec<usize>; 3],
    /// When terminal events were last pruned.
    last_prune: Ms,
    /// The wall clock of the last `tick`.
    wall: Option<Ms>,
    refused: u64,
}

impl Engine {
    pub fn new(lib: Library, cfg: EngineConfig) -> Engine {
        let mut e = Engine {
            slots: lib.defs.into_iter().map(Slot::new).collect(),
            order: vec![],
            by_id: HashMap::new(),
            events: HashMap::new(),
            cfg,
            clock: None,
            next_boundary: Ms::MIN,
            inputs: 0,
            by_input: Default::default(),
            last_prune: Ms::MIN,
            wall: None,
            refused: 0,
        };
        e.reindex();
        for s in &e.slots {
            if let Kind::Static(st) = &s.def.kind {
                for (name, _) in &st.by_district {
                    if !e.cfg.districts.iter().any(|d| d == name) {
                        tracing::warn!(indicator = %s.def.id, district = %name, file = %s.def.file, line = s.def.line, "static by_district names a district the model does not have; ignored");
                    }
                }
            }
        }
        e
    }

    fn reindex(&mut self) {
        self.by_id = self
            .slots
            .iter()
            .enumerate()
            .map(|(i, s)| (s.def.id.clone(), i))
            .collect();
        let defs: Vec<Definition> = self.slots.iter().map(|s| s.def.clone()).collect();
        let mut errs = vec![];
        self.order = validate_set(&defs, &mut errs);
        for (k, kind) in [
            InputKind::Events,
            InputKind::Transitions,
            InputKind::Observations,
        ]
        .into_iter()
        .enumerate()
        {
            self.by_input[k] = (0..self.slots.len())
                .filter(|&i| {
                    self.slots[i].def.is_active()
                        && self.slots[i].def.metric().is_some_and(|m| m.input == kind)
                })
                .collect();
        }
    }

    /// All current definitions (retired included).
    pub fn definitions(&self) -> impl Iterator<Item = &Definition> {
        self.slots.iter().map(|s| &s.def)
    }
    pub fn definition(&self, id: &str) -> Option<&Definition> {
        self.by_id.get(id).map(|i| &self.slots[*i].def)
    }
    /// Earlier versions of a definition, oldest first.
    pub fn versions(&self, id: &str) -> Vec<&Definition> {
        self.by_id
            .get(id)
            .map(|i| self.slots[*i].versions.iter().collect())
            .unwrap_or_default()
    }
    /// The engine clock: the latest input time (or tick) seen.
    pub fn clock(&self) -> Option<Ms> {
        self.clock
    }
    /// Inputs applied so far.
    pub fn inputs(&self) -> u64 {
        self.inputs
    }
    /// How many times a value of `id` was actually (re)computed rather than served from cache.
    pub fn evaluations(&self, id: &str) -> u64 {
        self.by_id
            .get(id)
            .map(|i| self.slots[*i].evaluations)
            .unwrap_or(0)
    }
    /// Events tracked (open ones and recently closed).
    pub fn tracked_events(&self) -> usize {
        self.events.len()
    }

    /// Feeds a history in time order through the same path as live inputs; logs progress.
    pub fn backfill<I: IntoIterator<Item = Input>>(&mut self, inputs: I) -> u64 {
        let start = std::time::Instant::now();
        let mut n = 0u64;
        for i in inputs {
            if self.push(&i) {
                n += 1;
            }
            if n.is_multiple_of(200_000) {
                let s = start.elapsed().as_secs_f64();
                tracing::info!(
                    inputs = n,
                    rate_per_s = (n as f64 / s.max(1e-9)) as u64,
                    "indicator backfill"
                );
            }
        }
        let s = start.elapsed().as_secs_f64();
        tracing::info!(
            inputs = n,
            seconds = s,
            rate_per_s = (n as f64 / s.max(1e-9)) as u64,
            "indicator backfill done"
        );
        n
    }

    /// Applies one input; `false` when refused. An observation stamped more than
    /// `max_future_ms` after the wall clock (the last `tick` or [`Engine::set_wall`]) is refused
    /// (counted in [`Engine::refused`]): one sensor with a bad clock must not move the engine
    /// clock. Events and log entries are the store's state and are always applied (a gauge of
    /// open events must count an event whatever its `reported_at`, or its later transitions
    /// would be lost with it); such an input moves the clock at most to the same limit.
    pub fn push(&mut self, input: &Input) -> bool {
        let t = input.time();
        let limit = self.wall.map(|w| w.saturating_add(self.cfg.max_future_ms));
        if let (Input::Observation(_), Some(l)) = (input, limit) {
            if t > l {
                self.refused += 1;
                if self.refused.is_power_of_two() {
                    tracing::warn!(
                        time_ms = t,
                        wall_ms = self.wall,
                        refused = self.refused,
                        "indicator input from the future refused"
                    );
                }
                return false;
            }
        }
        self.advance(limit.map_or(t, |l| t.min(l)));
        self.inputs += 1;
        match input {
            Input::Event(e) => self.on_event(e),
            Input::Transition(tr) => self.on_transition(tr),
            Input::Observation(o) => self.on_observation(o),
        }
        true
    }

    /// Sets the wall clock without moving the engine clock (before a backfill, so inputs
    /// stamped in the future cannot move the clock past it).
    pub fn set_wall(&mut self, now: Ms) {
        if self.wall.is_none_or(|w| now > w) {
            self.wall = Some(now);
        }
    }

    /// Inputs refused as coming from the future.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Moves the clock to `now` (wall clock tick): records the history boundaries passed.
    pub fn tick(&mut self, now: Ms) {
        if self.wall.is_none_or(|w| now > w) {
            self.wall = Some(now);
        }
        self.advance(now);
    }

    fn advance(&mut self, t: Ms) {
        if self.clock.is_none_or(|c| t > c) {
            self.clock = Some(t);
        }
        if self.last_prune == Ms::MIN {
            self.last_prune = t;
        } else if t - self.last_prune > DAY {
            // Terminal events reported before the longest window can no longer move any value.
            self.last_prune = t;
            let keep_after = t - MAX_WINDOW_MS - DAY;
            let before = self.events.len();
            self.events
                .retain(|_, e| !e.state.is_terminal() || e.reported > keep_after);
            if self.events.len() < before {
                tracing::debug!(
                    pruned = before - self.events.len(),
                    kept = self.events.len(),
                    "terminal events pruned"
                );
            }
        }
        if t <= self.next_boundary {
            return;
        }
        let mut next = Ms::MAX;
        for k in 0..self.order.len() {
            let i = self.order[k];
            if !self.slots[i].def.is_active() {
                continue;
            }
            let g = self.slots[i].def.grain_ms;
            let floor = |x: Ms| (x + SHANGHAI_OFFSET_MS).div_euclid(g) * g - SHANGHAI_OFFSET_MS;
            // boundaries b with last < b < t
            let last_b = match self.slots[i].last_boundary {
                Some(b) => b,
                None => {
                    let b = floor(t);
                    self.slots[i].last_boundary = Some(b);
                    next = next.min(b + g);
                    continue;
                }
            };
            let mut b = last_b + g;
            let cap = self.cfg.history_points as i64;
            let pending = (t - 1 - last_b).div_euclid(g);
            if pending > cap {
                b = last_b + (pending - cap + 1) * g;
            }
            while b < t {
                self.record(i, b);
                self.slots[i].last_boundary = Some(b);
                b += g;
            }
            next = next.min(self.slots[i].last_boundary.unwrap_or(b) + g);
        }
        // Nothing to record until the clock passes the earliest pending boundary.
        self.next_boundary = if next == Ms::MAX { Ms::MIN } else { next };
    }

    fn record(&mut self, i: usize, b: Ms) {
        let areas = self.areas(i);
        let cap = self.cfg.history_points;
        for a in areas {
            let v = self.value_of(i, a, b);
            let h = self.slots[i].history.entry(a).or_default();
            h.push_back((b, v));
            while h.len() > cap {
                h.pop_front();
            }
        }
    }

    fn evict_horizon(&self, spec: &WinSpec) -> i64 {
        self.clock
            .map(|c| c.div_euclid(spec.res) - spec.span)
            .unwrap_or(i64::MIN)
    }

    /// Adds (sign = 1) or removes (sign = −1) an item's contribution to metric slot `i`.
    fn apply(&mut self, i: usize, it: &ItemView, sign: f64) {
        let slot = &self.slots[i];
        let Some(m) = slot.def.metric() else { return };
        let c = contrib(m, it);
        if c.none() {
            return;
        }
        let window = slot.def.window;
        let spatial = slot.def.spatial;
        let agg = m.aggregate;
        let overdue = m.filter.overdue == Some(true);
        let spec = win_spec(window);
        let horizon = spec.map(|s| self.evict_horizon(&s));
        let slot = &mut self.slots[i];
        for a in areas_of(spatial, it.district, it.street) {
            match window {
                Window::Current => {
                    let g = slot.groups.entry(a).or_insert_with(|| Group {
                        st: GroupState::Gauge {
                            n: 0.0,
                            due: BTreeMap::new(),
                        },
                        version: 0,
                        cache: None,
                    });
                    if let GroupState::Gauge { n, due } = &mut g.st {
                        if overdue {
                            let d = it.due.unwrap_or(Ms::MAX);
                            let e = due.entry(d).or_insert(0);
                            *e += sign as i64;
                            if *e == 0 {
                                due.remove(&d);
                            }
                        } else {
                            *n += sign;
                        }
                    }
                    g.version += 1;
                }
                _ => {
                    let Some(spec) = spec else { continue };
                    let idx = it.t.div_euclid(spec.res);
                    if idx <= horizon.unwrap_or(i64::MIN) {
                        continue; // already out of every window
                    }
                    if let Aggregate::Distinct = agg {
                        let g = slot.groups.entry(a).or_insert_with(|| Group {
                            st: GroupState::Distinct {
                                last: HashMap::new(),
                                by_bucket: BTreeSet::new(),
                            },
                            version: 0,
                            cache: None,
                        });
                        if let GroupState::Distinct { last, by_bucket } = &mut g.st {
                            let ds = it.datastream.unwrap_or(0);
                            match last.get(&ds) {
                                Some(&old) if old >= idx => {}
                                old => {
                                    if let Some(&old) = old {
                                        by_bucket.remove(&(old, ds));
                                    }
                                    last.insert(ds, idx);
                                    by_bucket.insert((idx, ds));
                                    g.version += 1;
                                }
                            }
                            let h = horizon.unwrap_or(i64::MIN);
                            while let Some((b, s)) = by_bucket.first().copied() {
                                if b > h {
                                    break;
                                }
                                by_bucket.pop_first();
                                last.remove(&s);
                            }
                        }
                        continue;
                    }
                    let g = slot.groups.entry(a).or_insert_with(|| Group {
                        st: GroupState::Win(Buckets::default()),
                        version: 0,
                        cache: None,
                    });
                    if let GroupState::Win(b) = &mut g.st {
                        apply_cell(b.cell_mut(idx), agg, &c, sign);
                        b.evict_below(horizon.unwrap_or(i64::MIN) + 1);
                    }
                    g.version += 1;
                }
            }
        }
    }

    fn metric_slots(&self, kind: InputKind) -> Vec<usize> {
        self.by_input[kind as usize].clone()
    }

    fn on_event(&mut self, e: &Event) {
        let new = |prev: Option<&Tracked>| Tracked {
            category: Some(e.category),
            source: Some(e.source),
            severity: Some(e.severity),
            district: e.district,
            street: e.street,
            state: prev.map(|p| p.state).unwrap_or(e.state),
            reported: e.reported_at.timestamp_millis(),
            entered: prev
                .map(|p| p.entered)
                .unwrap_or(e.updated_at.timestamp_millis()),
            due: e.due_at.map(|d| d.timestamp_millis()),
            escalation: e.escalation,
            last_log: prev.map(|p| p.last_log).unwrap_or(i64::MIN),
        };
        let prev = self.events.get(&e.id).copied();
        let mut t = new(prev.as_ref());
        // The snapshot's state wins when it differs (transitions may not be fed).
        t.state = e.state;
        self.update_event(e.id, prev, t);
    }

    /// Moves an event's contributions from `prev` to `new`.
    fn update_event(&mut self, id: i64, prev: Option<Tracked>, new: Tracked) {
        if prev == Some(new) {
            return;
        }
        self.events.insert(id, new);
        let slots = self.metric_slots(InputKind::Events);
        let nv = ItemView::of_event(&new);
        for i in slots {
            if let Some(p) = &prev {
                let pv = ItemView::of_event(p);
                let m = self.slots[i].def.metric().cloned();
                if let Some(m) = m {
                    // Skip when nothing this metric sees changed.
                    let (a, b) = (contrib(&m, &pv), contrib(&m, &nv));
                    if a.main == b.main
                        && a.num == b.num
                        && a.den == b.den
                        && a.val == b.val
                        && p.district == new.district
                        && p.street == new.street
                        && p.due == new.due
                    {
                        continue;
                    }
                }
                self.apply(i, &pv, -1.0);
            }
            self.apply(i, &nv, 1.0);
        }
    }

    fn on_transition(&mut self, tr: &Transition) {
        let at = tr.at.timestamp_millis();
        let prev = self.events.get(&tr.event_id).copied();
        if let Some(p) = &prev {
            if tr.id <= p.last_log {
                return; // already applied
            }
        }
        let view = ItemView {
            t: at,
            category: prev.and_then(|p| p.category),
            source: prev.and_then(|p| p.source),
            severity: prev.and_then(|p| p.severity),
            state: Some(tr.to),
            from: tr.from,
            kind: Some(tr.kind.as_str()),
            sensor_bit: 0,
            prop_bit: 0,
            datastream: None,
            district: prev.and_then(|p| p.district),
            street: prev.and_then(|p| p.street),
            escalation: prev.map(|p| p.escalation).unwrap_or(0),
            since_reported_min: prev.map(|p| (at - p.reported) as f64 / 60_000.0),
            stage_min: prev.map(|p| (at - p.entered) as f64 / 60_000.0),
            value: None,
            due: None,
        };
        for i in self.metric_slots(InputKind::Transitions) {
            self.apply(i, &view, 1.0);
        }
        if let Some(p) = prev {
            let mut n = p;
            n.last_log = tr.id;
            // An assignment may itself move the event (reported → dispatched); escalations never do.
            if tr.from != Some(tr.to) && tr.kind != "escalated" {
                n.state = tr.to;
                n.entered = at;
            }
            if tr.kind == "escalated" {
                n.escalation += 1;
            }
            self.update_event(tr.event_id, Some(p), n);
        }
    }

    fn on_observation(&mut self, o: &Observation) {
        if !o.value.is_finite() {
            return;
        }
        let view = ItemView {
            t: o.phenomenon_time.timestamp_millis(),
            category: None,
            source: None,
            severity: None,
            state: None,
            from: None,
            kind: None,
            sensor_bit: sensor_bit(&o.sensor_type),
            prop_bit: prop_bit(&o.observed_property),
            datastream: Some(std::hash::BuildHasher::hash_one(&DS_HASH, &o.datastream)),
            district: o.district,
            street: o.street,
            escalation: 0,
            since_reported_min: None,
            stage_min: None,
            value: Some(o.value),
            due: None,
        };
        for k in 0..self.by_input[InputKind::Observations as usize].len() {
            let i = self.by_input[InputKind::Observations as usize][k];
            self.apply(i, &view, 1.0);
        }
    }

    // -----------------------------------------------------------------------------------------
    // values

    fn district_index(&self, name: &str) -> Option<u32> {
        self.cfg
            .districts
            .iter()
            .position(|d| d == name)
            .map(|i| i as u32)
    }

    /// The area of grain `spatial` an area falls in: a street's district for district grain, the
    /// city for city grain; `None` for a street of unknown district at district grain.
    fn coarsen(&self, spatial: Spatial, area: Area) -> Option<Area> {
        match (spatial, area) {
            (Spatial::City, _) => Some(Area::City),
            (Spatial::District, Area::Street(s)) => self.cfg.street_districts.get(s as usize).copied().flatten().map(Area::District),
            (_, a) => Some(a),
        }
    }

    /// Sets the district and street names/parents of a new model (hot swap): static tables are
    /// resolved against the new names; kept state and history are untouched.
    pub fn set_areas(&mut self, districts: Vec<String>, street_districts: Vec<Option<u32>>) {
        self.cfg.districts = districts;
        self.cfg.street_districts = street_districts;
        for s in &mut self.slots {
            s.dcache.clear();
            for g in s.groups.values_mut() {
                g.cache = None;
            }
        }
    }

    /// The areas an indicator has values for.
    fn areas(&self, i: usize) -> Vec<Area> {
        let d = &self.slots[i].def;
        let mut out: BTreeSet<Area> = BTreeSet::from([Area::City]);
        match &d.kind {
            Kind::Static(s) => {
                for (n, _) in &s.by_district {
                    if let Some(x) = self.district_index(n) {
                        out.insert(Area::District(x));
                    }
                }
            }
            Kind::Metric(_) => out.extend(self.slots[i].groups.keys().copied()),
            Kind::Derived(dd) => {
                if d.spatial.per_district() {
                    let streets = d.spatial == Spatial::Street;
                    for r in &dd.inputs {
                        if let Some(&j) = self.by_id.get(r) {
                            out.extend(self.areas(j).into_iter().filter(|a| match a {
                                Area::City => false,
                                Area::District(_) => true,
                                Area::Street(_) => streets,
                            }));
                        }
                    }
                }
            }
        }
        out.into_iter().collect()
    }

    /// Computes (with caching) the value of slot `i` at `area`, time `now`.
    fn value_of(&mut self, i: usize, area: Area, now: Ms) -> Option<f64> {
        let def = &self.slots[i].def;
        if !def.is_active() {
            return None;
        }
        match &def.kind {
            Kind::Static(s) => {
                if area == Area::City {
                    return s.value.or_else(|| {
                        (!s.by_district.is_empty()).then(|| s.by_district.iter().map(|x| x.1).sum())
                    });
                }
                let Area::District(d) = area else { return None };
                let name = self.cfg.districts.get(d as usize)?;
                s.by_district.iter().find(|x| &x.0 == name).map(|x| x.1)
            }
            Kind::Metric(m) => {
                let m = m.clone();
                let window = def.window;
                let area = self.coarsen(def.spatial, area)?;
                let spec = win_spec(window);
                let key = match (window, m.aggregate, m.filter.overdue) {
                    (Window::Current, _, Some(true)) => now,
                    (Window::Current, _, _) => 0,
                    (Window::Calendar { .. }, Aggregate::Rate { .. }, _) => now,
                    _ => spec.map(|s| now.div_euclid(s.res)).unwrap_or(now),
                };
                let slot = &mut self.slots[i];
                let Some(g) = slot.groups.get_mut(&area) else {
                    return match m.aggregate {
                        Aggregate::Count
                        | Aggregate::Sum
                        | Aggregate::Rate { .. }
                        | Aggregate::Distinct => Some(0.0),
                        _ => None,
                    };
                };
                if let Some((k, v, val)) = g.cache {
                    if k == key && v == g.version {
                        return val;
                    }
                }
                slot.evaluations += 1;
                let val = eval_group(&g.st, &m, window, spec, now, &slot.def.unit);
                g.cache = Some((key, g.version, val));
                val
            }
            Kind::Derived(dd) => {
                let dd = dd.clone();
                let area = self.coarsen(def.spatial, area)?;
                let mut inputs: Vec<Option<f64>> = Vec::with_capacity(dd.inputs.len());
                for r in &dd.inputs {
                    let j = self.by_id.get(r).copied();
                    inputs.push(j.and_then(|j| {
                        let jd = &self.slots[j].def;
                        let a = if !per_district(jd) {
                            Area::City
                        } else if matches!(jd.kind, Kind::Static(_)) {
                            self.coarsen(Spatial::District, area).unwrap_or(Area::City)
                        } else {
                            self.coarsen(jd.spatial, area).unwrap_or(Area::City)
                        };
                        let v = self.value_of(j, a, now);
                        // A static city figure serves every district without its own entry.
                        if v.is_none()
                            && a != Area::City
                            && matches!(self.slots[j].def.kind, Kind::Static(_))
                        {
                            self.value_of(j, Area::City, now)
                        } else {
                            v
                        }
                    }));
                }
                let bits: Vec<Option<u64>> = inputs.iter().map(|v| v.map(f64::to_bits)).collect();
                let slot = &mut self.slots[i];
                if let Some((b, v)) = slot.dcache.get(&area) {
                    if *b == bits {
                        return *v;
                    }
                }
                slot.evaluations += 1;
                let mut get = |r: &str| {
                    dd.inputs
                        .iter()
                        .position(|x| x == r)
                        .and_then(|k| inputs[k])
                };
                let v = dd.ast.eval(&mut get);
                slot.dcache.insert(area, (bits, v));
                v
            }
        }
    }

    fn make_value(&mut self, i: usize, area: Area, now: Ms) -> Value {
        let v = self.value_of(i, area, now);
        let d = &self.slots[i].def;
        let band = v.and_then(|v| d.band(v));
        Value {
            id: d.id.clone(),
            version: d.version,
            area,
            at: twin_protocol::ts_from_ms(now),
            value: v,
            unit: d.unit.clone(),
            band: band.map(|b| b.label_en.clone()),
            color: band.map(|b| b.color.clone()),
            on_target: match (&d.target, v) {
                (Some(t), Some(v)) => Some(match t.direction {
                    Direction::AtLeast => v >= t.value,
                    Direction::AtMost => v <= t.value,
                }),
                _ => None,
            },
        }
    }

    /// Current values of every active indicator, city and per district, at `now`.
    pub fn values_at(&mut self, now: Ms) -> Vec<Value> {
        let mut out = vec![];
        for k in 0..self.order.len() {
            let i = self.order[k];
            if !self.slots[i].def.is_active() {
                continue;
            }
            for a in self.areas(i) {
                out.push(self.make_value(i, a, now));
            }
        }
        out
    }

    /// One indicator's value at one area.
    pub fn value(&mut self, id: &str, area: Area, now: Ms) -> Option<Value> {
        let i = *self.by_id.get(id)?;
        self.slots[i]
            .def
            .is_active()
            .then(|| self.make_value(i, area, now))
    }

    /// The kept history resampled: for each t = from, from+step … ≤ to, the value recorded at the
    /// latest grain boundary ≤ t (`None` before the first one or after the series ends).
    pub fn series(
        &self,
        id: &str,
        area: Area,
        from: Ms,
        to: Ms,
        step: Ms,
    ) -> Result<Vec<(Ms, Option<f64>)>, SeriesError> {
        let i = *self
            .by_id
            .get(id)
            .ok_or_else(|| SeriesError::Unknown(id.to_string()))?;
        if step <= 0 || from > to {
            return Err(SeriesError::BadRange);
        }
        let n = (to - from) / step + 1;
        if n > 10_000 {
            return Err(SeriesError::TooMany(n));
        }
        let empty = VecDeque::new();
        let h = self.slots[i].history.get(&area).unwrap_or(&empty);
        let g = self.slots[i].def.grain_ms;
        let mut out = Vec::with_capacity(n as usize);
        let mut t = from;
        while t <= to {
            let pos = h.partition_point(|x| x.0 <= t);
            let v = if pos == 0 {
                None
            } else {
                let (b, v) = h[pos - 1];
                // beyond the last recorded boundary by more than one grain: unknown
                if t - b >= g
                    && pos == h.len()
                    && self.slots[i].last_boundary.is_some_and(|lb| lb < t - g)
                {
                    None
                } else {
                    v
                }
            };
            out.push((t, v));
            t += step;
        }
        Ok(out)
    }

    /// The raw kept history of one indicator and area (boundary time, value).
    pub fn history(&self, id: &str, area: Area) -> Vec<(Ms, Option<f64>)> {
        self.by_id
            .get(id)
            .and_then(|i| self.slots[*i].history.get(&area))
            .map(|h| h.iter().copied().collect())
            .unwrap_or_default()
    }

    // -----------------------------------------------------------------------------------------
    // publish / retire

    /// Publishes a new version of one definition (or a new one) at runtime: `text` holds one
    /// `[[indicator]]`. The version must be higher than the current one; the whole set is
    /// re-validated; the new definition's state is rebuilt by replaying `history` (the stored
    /// inputs up to now, in time order) through a private engine and swapped in. Dependents keep
    /// their history and compute from the new values from now on.
    pub fn publish<I: IntoIterator<Item = Input>>(
        &mut self,
        file: &str,
        text: &str,
        history: I,
    ) -> Result<(), DefErrors> {
        let mut errs = vec![];
        let mut new = parse_file(file, text, &mut errs);
        if errs.is_empty() && new.len() != 1 {
            errs.push(DefError {
                file: file.into(),
                line: 1,
                field: "indicator".into(),
                message: format!("publish takes exactly one [[indicator]], got {}", new.len()),
            });
        }
        if !errs.is_empty() {
            return Err(DefErrors(errs));
        }
        let def = new.remove(0);
        let existing = self.by_id.get(&def.id).copied();
        if let Some(i) = existing {
            let old = &self.slots[i].def;
            if def.version <= old.version {
                return Err(DefErrors(vec![DefError {
                    file: file.into(),
                    line: def.line,
                    field: format!("{}: version", def.id),
                    message: format!(
                        "version {} must be higher than the current version {}",
                        def.version, old.version
                    ),
                }]));
            }
        }
        let mut defs: Vec<Definition> = self.slots.iter().map(|s| s.def.clone()).collect();
        match existing {
            Some(i) => defs[i] = def.clone(),
            None => defs.push(def.clone()),
        }
        validate_set(&defs, &mut errs);
        if !errs.is_empty() {
            return Err(DefErrors(errs));
        }
        // Rebuild the new definition (and the inputs it needs) from history.
        let mut need: Vec<String> = vec![def.id.clone()];
        let mut k = 0;
        while k < need.len() {
            if let Some(d) = defs.iter().find(|d| d.id == need[k]) {
                if let Some(dd) = d.derived() {
                    for r in &dd.inputs {
                        if !need.contains(r) {
                            need.push(r.clone());
                        }
                    }
                }
            }
            k += 1;
        }
        let sub_defs: Vec<Definition> = defs
            .iter()
            .filter(|d| need.contains(&d.id))
            .cloned()
            .collect();
        let mut sub = Engine::new(Library { defs: sub_defs }, self.cfg.clone());
        let clock = self.clock;
        sub.backfill(
            history
                .into_iter()
                .filter(|i| clock.is_none_or(|c| i.time() <= c)),
        );
        if let Some(c) = clock {
            sub.tick(c);
        }
        let si = sub.by_id[&def.id];
        let mut fresh = sub.slots.swap_remove(si);
        match existing {
            Some(i) => {
                let mut old = std::mem::replace(&mut self.slots[i], fresh);
                let mut versions = std::mem::take(&mut old.versions);
                versions.push(old.def);
                self.slots[i].versions = versions;
                self.slots[i].evaluations += old.evaluations;
            }
            None => {
                fresh.versions.clear();
                self.slots.push(fresh);
            }
        }
        for s in &mut self.slots {
            s.dcache.clear();
        }
        self.next_boundary = Ms::MIN;
        self.reindex();
        tracing::info!(id = %def.id, version = def.version, "indicator published");
        Ok(())
    }

    /// Retires a definition (its values and state are dropped); refused while an active derived
    /// indicator uses it.
    pub fn retire(&mut self, id: &str) -> Result<(), DefErrors> {
        let Some(&i) = self.by_id.get(id) else {
            return Err(DefErrors(vec![DefError {
                file: "(engine)".into(),
                line: 0,
                field: id.into(),
                message: "unknown indicator".into(),
            }]));
        };
        let mut defs: Vec<Definition> = self.slots.iter().map(|s| s.def.clone()).collect();
        defs[i].state = DefState::Retired;
        let mut errs = vec![];
        validate_set(&defs, &mut errs);
        if !errs.is_empty() {
            return Err(DefErrors(errs));
        }
        let s = &mut self.slots[i];
        s.versions.push(s.def.clone());
        s.def.state = DefState::Retired;
        s.groups.clear();
        s.dcache.clear();
        self.reindex();
        Ok(())
    }
}

fn eval_group(
    st: &GroupState,
    m: &MetricDef,
    window: Window,
    spec: Option<WinSpec>,
    now: Ms,
    unit: &str,
) -> Option<f64> {
    match st {
        GroupState::Gauge { n, due } => {
            if m.filter.overdue == Some(true) {
                Some(due.range(..=now).map(|x| *x.1).sum::<i64>() as f64)
            } else {
                Some(*n)
            }
        }
        GroupState::Distinct { by_bucket, .. } => {
            let spec = spec?;
            let (lo, hi) = range(window, spec, now);
            Some(by_bucket.range((lo, 0)..).take_while(|x| x.0 <= hi).count() as f64)
        }
        GroupState::Win(b) => {
            let spec = spec?;
            let (lo, hi) = range(window, spec, now);
            let start = b.v.partition_point(|x| x.0 < lo);
            let mut acc = Cell::default();
            let mut sk: Option<Sketch> = None;
            for (idx, c) in b.v.range(start..) {
                if *idx > hi {
                    break;
                }
                acc.n += c.n;
                acc.sum += c.sum;
                acc.num += c.num;
                acc.min = acc.min.min(c.min);
                acc.max = acc.max.max(c.max);
                if let Some(s) = &c.sk {
                    sk.get_or_insert_with(Default::default).merge(s);
                }
            }
            let has = acc.n > 0.5;
            match m.aggregate {
                Aggregate::Count | Aggregate::Distinct => Some(acc.n),
                Aggregate::Sum => Some(acc.sum),
                Aggregate::Avg => has.then(|| acc.sum / acc.n),
                Aggregate::Min => (has && acc.min.is_finite()).then_some(acc.min),
                Aggregate::Max => (has && acc.max.is_finite()).then_some(acc.max),
                Aggregate::Percentile { p } => sk.and_then(|s| s.percentile(p)),
                Aggregate::Ratio => {
                    has.then(|| acc.num / acc.n * if unit == "%" { 100.0 } else { 1.0 })
                }
                Aggregate::Rate { per_ms } => {
                    let len = match window {
                        Window::Rolling { ms } => ms,
                        Window::Calendar { unit } => now - period_start(unit, now),
                        _ => return None,
                    };
                    (len > 0).then(|| acc.n / (len as f64 / per_ms as f64))
                }
            }
        }
    }
}

/// Bucket index range [lo, hi] of the window at `now`.
fn range(window: Window, spec: WinSpec, now: Ms) -> (i64, i64) {
    let hi = now.div_euclid(spec.res);
    let lo = match window {
        Window::Rolling { ms } => hi - ms / spec.res + 1,
        Window::Calendar { unit } => period_start(unit, now).div_euclid(spec.res),
        _ => hi,
    };
    (lo, hi)
}

//! What a build did to its input: per-reason tallies of repaired and dropped features, each with a
//! few examples naming the file and the feature, so nothing vanishes silently.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

/// How many examples are kept per reason.
pub const EXAMPLES_PER_REASON: usize = 5;

/// A fatal input error: the build stops, names the file (and the feature when there is one), and
/// leaves no model behind.
#[derive(Debug, Clone, PartialEq)]
pub struct IngestError {
    pub file: String,
    pub feature: Option<String>,
    pub message: String,
}

impl IngestError {
    pub fn file(file: impl Into<String>, message: impl Into<String>) -> Self {
        IngestError { file: file.into(), feature: None, message: message.into() }
    }
    pub fn feature(file: impl Into<String>, feature: impl Into<String>, message: impl Into<String>) -> Self {
        IngestError { file: file.into(), feature: Some(feature.into()), message: message.into() }
    }
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.feature {
            Some(feat) => write!(f, "{}: feature {}: {}", self.file, feat, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for IngestError {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureRef {
    pub source: String,
    pub feature: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub count: u64,
    pub examples: Vec<FeatureRef>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BuildReport {
    /// reason → features that were fixed and kept.
    pub repaired: BTreeMap<String, Tally>,
    /// reason → features that were not kept.
    pub dropped: BTreeMap<String, Tally>,
    /// Notes that concern a whole source (e.g. "47 building points without footprint").
    pub warnings: Vec<String>,
}

impl BuildReport {
    fn add(map: &mut BTreeMap<String, Tally>, source: &str, feature: &str, reason: &str) {
        let t = map.entry(reason.to_string()).or_default();
        t.count += 1;
        if t.examples.len() < EXAMPLES_PER_REASON {
            t.examples.push(FeatureRef { source: source.to_string(), feature: feature.to_string() });
        }
    }
    pub fn repaired(&mut self, source: &str, feature: &str, reason: &str) {
        Self::add(&mut self.repaired, source, feature, reason);
    }
    pub fn dropped(&mut self, source: &str, feature: &str, reason: &str) {
        tracing::debug!(source, feature, reason, "dropped feature");
        Self::add(&mut self.dropped, source, feature, reason);
    }
    pub fn warn(&mut self, msg: impl Into<String>) {
        let msg = msg.into();
        tracing::warn!("{msg}");
        self.warnings.push(msg);
    }
    pub fn repaired_total(&self) -> u64 {
        self.repaired.values().map(|t| t.count).sum()
    }
    pub fn dropped_total(&self) -> u64 {
        self.dropped.values().map(|t| t.count).sum()
    }
    pub fn merge(&mut self, other: BuildReport) {
        for (k, v) in other.repaired {
            let t = self.repaired.entry(k).or_default();
            t.count += v.count;
            for e in v.examples {
                if t.examples.len() < EXAMPLES_PER_REASON {
                    t.examples.push(e);
                }
            }
        }
        for (k, v) in other.dropped {
            let t = self.dropped.entry(k).or_default();
            t.count += v.count;
            for e in v.examples {
                if t.examples.len() < EXAMPLES_PER_REASON {
                    t.examples.push(e);
                }
            }
        }
        self.warnings.extend(other.warnings);
    }
}

/// Progress of a long step, logged through tracing with count, rate and ETA at most every
/// `interval` (default 2 s), plus a final line.
pub struct Progress {
    what: String,
    total: Option<u64>,
    done: u64,
    start: std::time::Instant,
    last: std::time::Instant,
    interval: std::time::Duration,
}

impl Progress {
    pub fn new(what: impl Into<String>, total: Option<u64>) -> Self {
        let now = std::time::Instant::now();
        Progress {
            what: what.into(),
            total,
            done: 0,
            start: now,
            last: now,
            interval: std::time::Duration::from_secs(2),
        }
    }
    pub fn inc(&mut self, n: u64) {
        self.done += n;
        if self.last.elapsed() >= self.interval {
            self.last = std::time::Instant::now();
            self.log(false);
        }
    }
    pub fn done(&self) -> u64 {
        self.done
    }
    fn log(&self, finished: bool) {
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        let rate = self.done as f64 / secs;
        match (self.total, finished) {
            (_, true) => tracing::info!(
                step = %self.what, count = self.done, secs = format!("{secs:.2}"),
                rate_per_s = format!("{rate:.0}"), "{}: finished {} in {secs:.1} s ({rate:.0}/s)",
                self.what, self.done
            ),
            (Some(total), false) => {
                let eta = if rate > 0.0 { (total.saturating_sub(self.done)) as f64 / rate } else { f64::NAN };
                tracing::info!(
                    step = %self.what, count = self.done, total, rate_per_s = format!("{rate:.0}"),
                    eta_s = format!("{eta:.0}"),
                    "{}: {}/{} ({:.0}%), {rate:.0}/s, ETA {eta:.0} s",
                    self.what, self.done, total, 100.0 * self.done as f64 / total.max(1) as f64
                )
            }
            (None, false) => tracing::info!(
                step = %self.what, count = self.done, rate_per_s = format!("{rate:.0}"),
                "{}: {} so far, {rate:.0}/s", self.what, self.done
            ),
        }
    }
    pub fn finish(self) -> std::time::Duration {
        self.log(true);
        self.start.elapsed()
    }
}

//! Threshold state machine of one datastream: warning/alarm levels, direction, hysteresis band and
//! pending period (see [`Thresholds`]). Pure: the ingest path loads the stored state, steps it per
//! observation in phenomenon-time order and stores it back in the same transaction.

use twin_protocol::sensors::{Direction, Thresholds, LEVEL_ALARM, LEVEL_NORMAL, LEVEL_WARNING};

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ThState {
    pub level: u8,
    /// Since when (phenomenon time, ms) the values have asked for a higher level.
    pub pending_since: Option<i64>,
    /// Phenomenon time of the last observation stepped (older ones do not move the state).
    pub last_ms: Option<i64>,
}

/// An observation's value as the thresholds see it.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    Num(f64),
    Str(&'a str),
}

fn crossed(th: &Thresholds, v: f64, level: f64) -> bool {
    match th.direction {
        Direction::Above => v >= level,
        Direction::Below => v <= level,
    }
}

/// The level the value asks for, given the current level (hysteresis keeps a raised level until
/// the value is beyond it by more than the band).
pub fn wanted(th: &Thresholds, cur: u8, v: Input) -> u8 {
    match v {
        Input::Str(s) => {
            if th.alarm_values.iter().any(|a| a == s) {
                LEVEL_ALARM
            } else if th.warning_values.iter().any(|a| a == s) {
                LEVEL_WARNING
            } else {
                LEVEL_NORMAL
            }
        }
        Input::Num(v) => {
            let h = th.hysteresis.max(0.0);
            let held = |l: f64| match th.direction {
                Direction::Above => v >= l - h,
                Direction::Below => v <= l + h,
            };
            let mut w = LEVEL_NORMAL;
            for (k, l) in [(LEVEL_WARNING, th.warning), (LEVEL_ALARM, th.alarm)] {
                if let Some(l) = l {
                    if crossed(th, v, l) || (k <= cur && held(l)) {
                        w = w.max(k);
                    }
                }
            }
            w
        }
    }
}

/// Steps the state with one observation; returns `(from, to)` when the level changed.
pub fn step(th: &Thresholds, st: &mut ThState, t_ms: i64, v: Input) -> Option<(u8, u8)> {
    if st.last_ms.is_some_and(|l| t_ms < l) {
        return None; // late observation: history, not the present
    }
    st.last_ms = Some(t_ms);
    let w = wanted(th, st.level, v);
    let from = st.level;
    if w > st.level {
        if th.pending_s > 0.0 {
            let since = *st.pending_since.get_or_insert(t_ms);
            if ((t_ms - since) as f64) < th.pending_s * 1000.0 {
                return None;
            }
        }
        st.level = w;
        st.pending_since = None;
    } else {
        st.pending_since = None;
        if w < st.level {
            st.level = w;
        }
    }
    (from != st.level).then_some((from, st.level))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn th(h: f64, p: f64) -> Thresholds {
        Thresholds { warning: Some(50.0), alarm: Some(80.0), hysteresis: h, pending_s: p, ..Default::default() }
    }

    fn episodes(th: &Thresholds, vals: &[f64], dt_ms: i64) -> (usize, Vec<(u8, u8)>) {
        let mut st = ThState::default();
        let mut n = 0;
        let mut tr = vec![];
        for (i, v) in vals.iter().enumerate() {
            if let Some((a, b)) = step(th, &mut st, i as i64 * dt_ms, Input::Num(*v)) {
                if a == 0 {
                    n += 1;
                }
                tr.push((a, b));
            }
        }
        (n, tr)
    }

    #[test]
    fn hysteresis_stops_a_storm() {
        // Noisy signal around 50: without a band every up-crossing is an episode.
        let noisy = [48.0, 51.0, 49.0, 52.0, 47.0, 50.5, 49.5, 46.0, 44.0, 51.0, 49.0];
        assert_eq!(episodes(&th(0.0, 0.0), &noisy, 1000).0, 4); // 51, 52, 50.5, 51
        // Band of 5: leaves only below 45 (44.0), so two episodes: 51.. and 51 again.
        assert_eq!(episodes(&th(5.0, 0.0), &noisy, 1000).0, 2);
    }

    #[test]
    fn pending_period_needs_persistence() {
        // 10 s pending, one sample a second: a 5 s spike raises nothing, a 12 s excursion raises once.
        let mut v = vec![40.0; 5];
        v.extend([60.0; 5]);
        v.extend([40.0; 5]);
        v.extend([60.0; 12]);
        let (n, tr) = episodes(&th(0.0, 10.0), &v, 1000);
        assert_eq!(n, 1);
        assert_eq!(tr, vec![(0, 1)]);
    }

    #[test]
    fn alarm_then_back_down_and_below_direction() {
        let (n, tr) = episodes(&th(2.0, 0.0), &[10.0, 55.0, 85.0, 79.0, 77.0, 49.0, 47.0], 1);
        assert_eq!(n, 1);
        assert_eq!(tr, vec![(0, 1), (1, 2), (2, 1), (1, 0)]);
        let below = Thresholds { direction: Direction::Below, warning: Some(20.0), alarm: Some(10.0), hysteresis: 1.0, ..Default::default() };
        let (n, tr) = episodes(&below, &[30.0, 19.0, 20.5, 21.5, 9.0], 1);
        assert_eq!(n, 2);
        assert_eq!(tr, vec![(0, 1), (1, 0), (0, 2)]);
    }
}

//! `--input-script FILE`: scripted mouse and keyboard input for headless runs. The script's
//! events become real Bevy input messages (`CursorMoved`, `MouseButtonInput`, `KeyboardInput`)
//! written before Bevy's input systems run, so `ButtonInput<MouseButton>` / `ButtonInput<KeyCode>`
//! and the cursor position are what a window would give, and the windowed interaction systems
//! (`interact::windowed_input`: click → pick, `A` assign, digits → levels, `M` measure) run
//! unchanged. The cursor position comes from the last `CursorMoved` ([`CursorPos`]) where there is
//! no window.
//!
//! The script starts once the view is complete and the live state ready (as `--click` does);
//! one line an event, times in seconds from then, non-decreasing, `#` comments:
//!
//! ```text
//! 0.0 move 320,180        # cursor to pixel (x, y)
//! 0.1 press left          # mouse button down (left|right|middle)
//! 0.2 release left
//! 0.3 down M / 0.4 up M   # key down / up (A–Z, 0–9, Escape, Space, Enter, Tab)
//! 0.5 key 2               # key down, then up the next frame
//! 0.6 click 100,200       # move, press left, release left (one frame each)
//! ```
//!
//! At most one button or key transition is delivered a frame (moves go with it), so a press and
//! its release never fall in the same frame. The screenshot waits until the script has run.

use crate::app::{Client, Headless};
use bevy::input::keyboard::{Key, KeyboardInput, NativeKey};
use bevy::input::mouse::MouseButtonInput;
use bevy::input::ButtonState;
use bevy::input::InputSystems;
use bevy::prelude::*;
use bevy::window::CursorMoved;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ev {
    Move(Vec2),
    Button(MouseButton, bool),
    Key(KeyCode, bool),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    pub t: f64,
    pub ev: Ev,
}

const LETTERS: [KeyCode; 26] = [
    KeyCode::KeyA, KeyCode::KeyB, KeyCode::KeyC, KeyCode::KeyD, KeyCode::KeyE, KeyCode::KeyF, KeyCode::KeyG, KeyCode::KeyH, KeyCode::KeyI,
    KeyCode::KeyJ, KeyCode::KeyK, KeyCode::KeyL, KeyCode::KeyM, KeyCode::KeyN, KeyCode::KeyO, KeyCode::KeyP, KeyCode::KeyQ, KeyCode::KeyR,
    KeyCode::KeyS, KeyCode::KeyT, KeyCode::KeyU, KeyCode::KeyV, KeyCode::KeyW, KeyCode::KeyX, KeyCode::KeyY, KeyCode::KeyZ,
];
const DIGITS: [KeyCode; 10] = [
    KeyCode::Digit0, KeyCode::Digit1, KeyCode::Digit2, KeyCode::Digit3, KeyCode::Digit4, KeyCode::Digit5, KeyCode::Digit6, KeyCode::Digit7,
    KeyCode::Digit8, KeyCode::Digit9,
];

/// A key's name: a letter, a digit, `Escape`, `Space`, `Enter`, `Tab` (also `KeyM`, `Digit2`).
pub fn key_code(name: &str) -> Option<KeyCode> {
    let n = name.strip_prefix("Key").filter(|r| r.len() == 1).or_else(|| name.strip_prefix("Digit").filter(|r| r.len() == 1)).unwrap_or(name);
    match n.to_ascii_lowercase().as_str() {
        "escape" | "esc" => return Some(KeyCode::Escape),
        "space" => return Some(KeyCode::Space),
        "enter" | "return" => return Some(KeyCode::Enter),
        "tab" => return Some(KeyCode::Tab),
        _ => {}
    }
    let mut cs = n.chars();
    match (cs.next(), cs.next()) {
        (Some(c), None) if c.is_ascii_alphabetic() => Some(LETTERS[(c.to_ascii_uppercase() as u8 - b'A') as usize]),
        (Some(c), None) if c.is_ascii_digit() => Some(DIGITS[(c as u8 - b'0') as usize]),
        _ => None,
    }
}

/// Parses a script (`path` names it in errors).
pub fn parse(text: &str, path: &str) -> Result<Vec<Step>, String> {
    let mut out: Vec<Step> = vec![];
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = format!("{path}:{}", i + 1);
        let mut w = line.split_whitespace();
        let (t, what, arg) = (w.next().unwrap_or(""), w.next().unwrap_or(""), w.next().unwrap_or(""));
        if w.next().is_some() {
            return Err(format!("{at}: '{line}': expected TIME EVENT ARG"));
        }
        let t: f64 = t.parse().ok().filter(|t: &f64| t.is_finite() && *t >= 0.0).ok_or(format!("{at}: '{t}' is not a time in seconds ≥ 0"))?;
        if let Some(last) = out.last() {
            if t < last.t {
                return Err(format!("{at}: time {t} is before the previous event's {}", last.t));
            }
        }
        let px = || crate::interact::parse_pixel(arg, &at).map(Vec2::from);
        let button = || match arg {
            "left" => Ok(MouseButton::Left),
            "right" => Ok(MouseButton::Right),
            "middle" => Ok(MouseButton::Middle),
            o => Err(format!("{at}: mouse button '{o}': expected left, right or middle")),
        };
        let key = || key_code(arg).ok_or(format!("{at}: unknown key '{arg}' (A–Z, 0–9, Escape, Space, Enter, Tab)"));
        let evs = match what {
            "move" => vec![Ev::Move(px()?)],
            "press" => vec![Ev::Button(button()?, true)],
            "release" => vec![Ev::Button(button()?, false)],
            "down" => vec![Ev::Key(key()?, true)],
            "up" => vec![Ev::Key(key()?, false)],
            "key" => {
                let k = key()?;
                vec![Ev::Key(k, true), Ev::Key(k, false)]
            }
            "click" => vec![Ev::Move(px()?), Ev::Button(MouseButton::Left, true), Ev::Button(MouseButton::Left, false)],
            o => return Err(format!("{at}: unknown event '{o}' (move, press, release, down, up, key, click)")),
        };
        out.extend(evs.into_iter().map(|ev| Step { t, ev }));
    }
    if out.is_empty() {
        return Err(format!("{path}: no events"));
    }
    Ok(out)
}

/// The next batch of steps due at `elapsed` from `next`: every due move, up to and including
/// the first button or key transition. Returns the end index.
pub fn batch_end(steps: &[Step], next: usize, elapsed: f64) -> usize {
    let mut i = next;
    while i < steps.len() && steps[i].t <= elapsed {
        i += 1;
        if !matches!(steps[i - 1].ev, Ev::Move(_)) {
            break;
        }
    }
    i
}

/// The script and how far it has run.
#[derive(Resource)]
pub struct InputScript {
    pub steps: Vec<Step>,
    pub next: usize,
    ready: bool,
    started: Option<Instant>,
}

impl InputScript {
    pub fn new(steps: Vec<Step>) -> InputScript {
        InputScript { steps, next: 0, ready: false, started: None }
    }
    pub fn done(&self) -> bool {
        self.next >= self.steps.len()
    }
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({"events": self.steps.len(), "delivered": self.next, "done": self.done()})
    }
}

/// The cursor position (logical pixels) from the last `CursorMoved`; None after `CursorLeft`.
#[derive(Resource, Default, Debug)]
pub struct CursorPos(pub Option<Vec2>);

pub struct ScriptPlugin;

impl Plugin for ScriptPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<CursorPos>()
            .add_systems(PreUpdate, (inject.before(InputSystems), track_cursor.after(InputSystems)))
            .add_systems(PostUpdate, gate_headless);
    }
}

fn inject(
    script: Option<ResMut<InputScript>>,
    mut moved: MessageWriter<CursorMoved>,
    mut buttons: MessageWriter<MouseButtonInput>,
    mut keys: MessageWriter<KeyboardInput>,
    mut last: Local<Option<Vec2>>,
) {
    let Some(mut s) = script else { return };
    if !s.ready || s.done() {
        return;
    }
    let elapsed = s.started.get_or_insert_with(Instant::now).elapsed().as_secs_f64();
    let end = batch_end(&s.steps, s.next, elapsed);
    let window = Entity::PLACEHOLDER;
    for st in &s.steps[s.next..end] {
        let state = |down: bool| if down { ButtonState::Pressed } else { ButtonState::Released };
        match st.ev {
            Ev::Move(p) => {
                moved.write(CursorMoved { window, position: p, delta: last.map(|l| p - l) });
                *last = Some(p);
            }
            Ev::Button(button, down) => {
                buttons.write(MouseButtonInput { button, state: state(down), window });
            }
            Ev::Key(key_code, down) => {
                keys.write(KeyboardInput { key_code, logical_key: Key::Unidentified(NativeKey::Unidentified), state: state(down), text: None, repeat: false, window });
            }
        }
        info!("input script: {:?} at {:.2} s", st.ev, elapsed);
    }
    s.next = end;
}

fn track_cursor(mut moved: MessageReader<CursorMoved>, mut left: MessageReader<bevy::window::CursorLeft>, mut pos: ResMut<CursorPos>) {
    for m in moved.read() {
        pos.0 = Some(m.position);
    }
    if left.read().count() > 0 {
        pos.0 = None;
    }
}

/// The script starts once the view is complete and the live state ready; the screenshot waits
/// for its end.
fn gate_headless(script: Option<ResMut<InputScript>>, client: Res<Client>, mut hl: ResMut<Headless>) {
    let Some(mut s) = script else { return };
    if !s.ready && client.complete && hl.live_ready {
        s.ready = true;
    }
    if !s.done() {
        hl.live_ready = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_parse_into_timed_events_and_bad_lines_are_named() {
        let s = parse("# a click and keys\n0 click 10,20\n0.5 key m\n0.5 down Digit3 # hold\n1 up 3\n1.2 move 1.5,2.5\n1.2 press right\n", "s.txt").unwrap();
        use Ev::*;
        let evs: Vec<Ev> = s.iter().map(|s| s.ev).collect();
        assert_eq!(
            evs,
            vec![
                Move(Vec2::new(10.0, 20.0)),
                Button(MouseButton::Left, true),
                Button(MouseButton::Left, false),
                Key(KeyCode::KeyM, true),
                Key(KeyCode::KeyM, false),
                Key(KeyCode::Digit3, true),
                Key(KeyCode::Digit3, false),
                Move(Vec2::new(1.5, 2.5)),
                Button(MouseButton::Right, true),
            ]
        );
        assert_eq!(s[4].t, 0.5);
        for (bad, want) in [
            ("0 click 10", "s.txt:1"),
            ("1 key 2\n0.5 key 3", "s.txt:2: time 0.5 is before"),
            ("0 jump 1,2", "unknown event 'jump'"),
            ("0 key F13", "unknown key 'F13'"),
            ("x key 2", "'x' is not a time"),
            ("0 press thumb", "mouse button 'thumb'"),
            ("# nothing", "no events"),
        ] {
            let e = parse(bad, "s.txt").unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
        assert_eq!(key_code("A"), Some(KeyCode::KeyA));
        assert_eq!(key_code("z"), Some(KeyCode::KeyZ));
        assert_eq!(key_code("KeyC"), Some(KeyCode::KeyC));
        assert_eq!(key_code("0"), Some(KeyCode::Digit0));
        assert_eq!(key_code("Esc"), Some(KeyCode::Escape));
        assert_eq!(key_code("AB"), None);
    }

    #[test]
    fn one_transition_a_frame_with_the_moves_before_it() {
        let s = parse("0 click 1,1\n0 key 2\n5 move 3,3", "s").unwrap();
        // frame 1: the move and the press; then the release; then key down; key up
        assert_eq!(batch_end(&s, 0, 0.0), 2);
        assert_eq!(batch_end(&s, 2, 0.0), 3);
        assert_eq!(batch_end(&s, 3, 0.0), 4);
        assert_eq!(batch_end(&s, 4, 0.0), 5);
        // the move at 5 s is not due before then
        assert_eq!(batch_end(&s, 5, 4.9), 5);
        assert_eq!(batch_end(&s, 5, 5.0), 6);
    }
}

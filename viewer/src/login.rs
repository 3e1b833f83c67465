//! Password login for the viewer (`--user NAME --password-file F`, or `CITYTWIN_USER` /
//! `CITYTWIN_PASSWORD_FILE`): `POST /api/auth/login` gives a session key (`ctk_…`, the user's role,
//! an expiry of at most the server's `--session-ttl`), which becomes the bearer token of every
//! request and of the stream ([`crate::fetch::set_token`]). A background thread logs in again
//! when 80 % of the session has passed, so a big screen running for days never falls back to
//! anonymous; a failed renewal keeps the current key and retries with backoff.

use serde_json::{json, Value};
use std::time::Duration;

/// What the login gave (reported in the headless summary; never the key itself).
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub user: String,
    pub role: String,
    /// RFC 3339 expiry of the session key
    pub expires: String,
}

/// Reads the password: the first line of the file (`-`: standard input), without its newline.
pub fn read_password(path: &str) -> Result<String, String> {
    let text = if path == "-" {
        let mut s = String::new();
        std::io::stdin().read_line(&mut s).map_err(|e| format!("password from standard input: {e}"))?;
        s
    } else {
        std::fs::read_to_string(path).map_err(|e| format!("password file {path}: {e}"))?
    };
    let pw = text.lines().next().unwrap_or("").to_string();
    if pw.is_empty() {
        return Err(format!("password file {path}: the first line is empty"));
    }
    Ok(pw)
}

/// One login: the session key and what the server says of it.
pub fn login(server: &str, user: &str, password: &str) -> Result<(String, Session), String> {
    let agent = crate::fetch::agent();
    let url = format!("{}/api/auth/login", server.trim_end_matches('/'));
    let mut r = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .send(json!({"user": user, "password": password}).to_string())
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = r.status().as_u16();
    let body = r.body_mut().read_to_string().unwrap_or_default();
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if status != 200 {
        let why = v["error"].as_str().or(v["message"].as_str()).unwrap_or(body.as_str());
        return Err(format!("login as '{user}' refused: HTTP {status}: {why}"));
    }
    let key = v["key"].as_str().filter(|k| k.starts_with("ctk_")).ok_or_else(|| format!("login as '{user}': no key in the answer"))?;
    let s = Session {
        user: v["user"].as_str().unwrap_or(user).to_string(),
        role: v["role"].as_str().unwrap_or("").to_string(),
        expires: v["expires"].as_str().unwrap_or("").to_string(),
    };
    Ok((key.to_string(), s))
}

/// Seconds until a renewal is due: 80 % of the time left, at least 5 s.
pub fn renew_after(expires: &str, now: chrono::DateTime<chrono::Utc>) -> Duration {
    match chrono::DateTime::parse_from_rfc3339(expires) {
        Ok(t) => {
            let left = (t.with_timezone(&chrono::Utc) - now).num_milliseconds().max(0) as f64 / 1000.0;
            Duration::from_secs_f64((left * 0.8).max(5.0))
        }
        Err(_) => Duration::from_secs(300),
    }
}

/// Logs in, sets the process's bearer token and keeps it renewed. Errors (wrong password, no
/// server) are returned for the caller to report and exit on.
pub fn start(server: &str, user: &str, password_file: &str) -> Result<Session, String> {
    let password = read_password(password_file)?;
    let (key, session) = login(server, user, &password)?;
    crate::fetch::set_token(key);
    let (server, user, first) = (server.to_string(), user.to_string(), session.clone());
    std::thread::Builder::new()
        .name("login-renew".into())
        .spawn(move || {
            let mut wait = renew_after(&first.expires, chrono::Utc::now());
            let mut backoff = Duration::from_secs(2);
            loop {
                std::thread::sleep(wait);
                match login(&server, &user, &password) {
                    Ok((key, s)) => {
                        crate::fetch::set_token(key);
                        bevy::log::info!("session of '{}' renewed until {}", s.user, s.expires);
                        wait = renew_after(&s.expires, chrono::Utc::now());
                        backoff = Duration::from_secs(2);
                    }
                    Err(e) => {
                        bevy::log::warn!("session renewal failed ({e}); keeping the current key, retrying in {} s", backoff.as_secs());
                        wait = backoff;
                        backoff = (backoff * 2).min(Duration::from_secs(60));
                    }
                }
            }
        })
        .map_err(|e| format!("login renewal thread: {e}"))?;
    Ok(session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_at_four_fifths_of_the_time_left() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T08:00:00Z").unwrap().with_timezone(&chrono::Utc);
        assert_eq!(renew_after("2026-11-22T16:00:00Z", now), Duration::from_secs(8 * 3600 * 4 / 5));
        assert_eq!(renew_after("2026-11-22T08:00:03Z", now), Duration::from_secs(5), "never sooner than 5 s");
        assert_eq!(renew_after("2026-11-22T07:00:00Z", now), Duration::from_secs(5), "already expired: renew now-ish");
        assert_eq!(renew_after("garbage", now), Duration::from_secs(300));
    }

    #[test]
    fn the_password_is_the_first_line_and_an_empty_one_is_refused() {
        let dir = std::env::temp_dir().join(format!("viewer-login-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "correct horse battery\nsecond line\n").unwrap();
        assert_eq!(read_password(f.to_str().unwrap()).unwrap(), "correct horse battery");
        std::fs::write(&f, "\n").unwrap();
        assert!(read_password(f.to_str().unwrap()).unwrap_err().contains("empty"));
        assert!(read_password(dir.join("missing").to_str().unwrap()).unwrap_err().contains("missing"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

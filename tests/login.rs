//! Login (issue 8): users with argon2id passwords (`twin-server user create`), `POST
//! /api/auth/login` → a short-lived session key with the user's role, expiry, logout, the
//! per-address attempt limit and the audit rows — on both stores.

#[macro_use]
mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const PASSWORD: &str = "correct horse battery staple";

fn login_req(base: &str, body: Value) -> (u16, Value) {
    let (st, _, v) = request("POST", &format!("{base}/api/auth/login"), None, Some(serde_json::to_vec(&body).unwrap()));
    (st, v)
}

fn login(b: LiveBackend) {
    let tmp = tempfile::tempdir().unwrap();
    let model = live_model(tmp.path());
    let db = LiveDb::new(b);
    let pw = tmp.path().join("pw.txt");
    std::fs::write(&pw, format!("{PASSWORD}\nignored second line\n")).unwrap();
    let pw_s = pw.to_string_lossy().into_owned();
    let o = twin(&["user", "create", "--db", &db.url, "--role", "dispatcher", "--name", "alice", "--password-file", &pw_s]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("created user 1 'alice' (role dispatcher)"), "{}", stderr(&o));
    assert!(!text(&o).contains(PASSWORD), "the password is never printed");
    let o = twin(&["user", "create", "--db", &db.url, "--role", "leader", "--name", "alice", "--password-file", &pw_s]);
    assert!(!o.status.success() && stderr(&o).contains("a user named 'alice' exists already"), "{}", stderr(&o));
    let short = tmp.path().join("short.txt");
    std::fs::write(&short, "2short\n").unwrap();
    let o = twin(&["user", "create", "--db", &db.url, "--role", "leader", "--name", "bob", "--password-file", &short.to_string_lossy()]);
    assert!(!o.status.success() && stderr(&o).contains("at least 10 characters"), "{}", stderr(&o));

    // No --anonymous-read: only keys open anything but /healthz, the document and the login.
    let srv = serve_auth(&model, &["--db", &db.url, "--session-ttl", "3600", "--rate-login", "0.0001:8", "--simulate", "off"], false);
    let base = &srv.base;
    let mut attempts = 0;

    // The right password: a session key with the user's role, expiring within the session TTL.
    let t0 = chrono::Utc::now();
    let (st, s) = login_req(base, json!({"user": "alice", "password": PASSWORD}));
    attempts += 1;
    assert_eq!(st, 200, "{s}");
    let key = s["key"].as_str().unwrap().to_string();
    assert!(key.starts_with("ctk_") && key.len() == 52, "{key}");
    assert_eq!((s["user"].as_str(), s["role"].as_str(), s["created_by"].as_str(), s["state"].as_str()), (Some("alice"), Some("dispatcher"), Some("login"), Some("active")));
    assert!(s["name"].as_str().unwrap().starts_with("alice@"), "{s}");
    let expires = chrono::DateTime::parse_from_rfc3339(s["expires"].as_str().unwrap()).unwrap();
    let ttl = (expires.with_timezone(&chrono::Utc) - t0).num_seconds();
    assert!((3595..=3605).contains(&ttl), "session TTL {ttl} s, --session-ttl 3600");

    // The key acts with the dispatcher role: whoami, a dispatch write, and no admin.
    let (st, _, me) = request("GET", &format!("{base}/api/auth/whoami"), Some(&key), None);
    assert_eq!((st, me["role"].as_str(), me["authenticated"].as_bool()), (200, Some("dispatcher"), Some(true)), "{me}");
    assert_eq!(me["name"], s["name"]);
    let ev = json!({"category": "fire", "source": "manual", "title": "from a session", "location": {"lon": 123.42, "lat": 41.80}, "actor": "alice"});
    let (st, _, e) = request("POST", &format!("{base}/api/events"), Some(&key), Some(serde_json::to_vec(&ev).unwrap()));
    assert_eq!(st, 201, "{e}");
    let (st, _, e) = request("GET", &format!("{base}/api/admin/tokens"), Some(&key), None);
    assert_eq!((st, e["permission"].as_str()), (403, Some("admin")), "{e}");

    // A wrong password and an unknown user get the same 401.
    let (st1, e1) = login_req(base, json!({"user": "alice", "password": "Correct horse battery staple"}));
    let (st2, e2) = login_req(base, json!({"user": "nobody", "password": PASSWORD}));
    attempts += 2;
    assert_eq!((st1, st2), (401, 401));
    assert_eq!(e1, e2, "no user enumeration");
    assert_eq!(e1, json!({"error": "POST /api/auth/login: wrong user name or password", "reason": "bad_credentials"}));
    // A malformed request is 400 naming the field.
    let (st, e) = login_req(base, json!({"user": "alice"}));
    attempts += 1;
    assert_eq!((st, e["error"].as_str()), (400, Some("POST /api/auth/login: 'password' (string) is required")), "{e}");

    // Logout revokes the session key at once; an API key cannot log out.
    let (st, _, out) = request("POST", &format!("{base}/api/auth/logout"), Some(&key), Some(vec![]));
    assert_eq!((st, out["state"].as_str()), (200, Some("revoked")), "{out}");
    let (st, _, e) = request("GET", &format!("{base}/api/auth/whoami"), Some(&key), None);
    assert_eq!(st, 401, "{e}");
    assert!(e["error"].as_str().unwrap().starts_with("API key revoked"), "{e}");
    let (st, _, e) = request("POST", &format!("{base}/api/auth/logout"), Some(TEST_ADMIN_TOKEN), Some(vec![]));
    assert_eq!((st, e["reason"].as_str()), (400, Some("not_a_session")), "{e}");

    // Expiry: a 1-second session works, then (within 10 s) is refused as expired.
    let (st, s1) = login_req(base, json!({"user": "alice", "password": PASSWORD, "expires_in_s": 1}));
    attempts += 1;
    assert_eq!(st, 200, "{s1}");
    let issued = Instant::now();
    let k1 = s1["key"].as_str().unwrap().to_string();
    let (st, _, _) = request("GET", &format!("{base}/api/units"), Some(&k1), None);
    assert_eq!(st, 200, "fresh session key");
    loop {
        let (st, _, e) = request("GET", &format!("{base}/api/units"), Some(&k1), None);
        if st == 401 {
            assert!(e["error"].as_str().unwrap().starts_with("API key expired"), "{e}");
            assert!(issued.elapsed() >= Duration::from_millis(900), "expired after {:?}", issued.elapsed());
            break;
        }
        assert_eq!(st, 200);
        assert!(issued.elapsed() < Duration::from_secs(10), "a 1 s session still works after {:?}", issued.elapsed());
        std::thread::sleep(Duration::from_millis(100));
    }

    // Attempts per address: the burst of 8 (refill 1 per 10,000 s), then 429.
    while attempts < 8 {
        let (st, _) = login_req(base, json!({"user": "alice", "password": "wrong password!"}));
        assert_eq!(st, 401);
        attempts += 1;
    }
    let (st, e) = login_req(base, json!({"user": "alice", "password": PASSWORD}));
    assert_eq!((st, e["reason"].as_str()), (429, Some("rate_limited")), "{e}");

    // Every attempt is audited, with the user name it was for.
    let (st, a) = get_json(&format!("{base}/api/admin/audit?limit=1000"));
    assert_eq!(st, 200, "{a}");
    let rows: Vec<&Value> = a["rows"].as_array().unwrap_or_else(|| panic!("{a}")).iter().filter(|r| r["route"] == "/api/auth/login").collect();
    let count = |status: i64, detail: &str| rows.iter().filter(|r| r["status"] == status && r["detail"].as_str().unwrap_or("").contains(detail)).count();
    assert_eq!(count(200, "login 'alice': session key"), 2, "{rows:?}");
    assert_eq!(count(401, "login refused for 'alice'"), 4, "{rows:?}");
    assert_eq!(count(401, "login refused for 'nobody'"), 1, "{rows:?}");
    assert_eq!(rows.iter().filter(|r| r["status"] == 429).count(), 1, "{rows:?}");
    let m = get_text(&format!("{base}/metrics"));
    assert_eq!(metric(&m, "citytwin_logins_total{result=\"ok\"}"), 2.0);
    assert_eq!(metric(&m, "citytwin_logins_total{result=\"refused\"}"), 5.0);
    assert_eq!(metric(&m, "citytwin_rate_limited_total{scope=\"login\"}"), 1.0);
}

both!(login);

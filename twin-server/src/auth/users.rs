//! Users with passwords and login sessions (issue 8, "Login").
//!
//! * `users` (module `auth`, version 2, both backends): name, role, the password as an argon2id
//!   PHC string (`argon2` crate defaults: m = 19 MiB, t = 2, p = 1, a 128-bit random salt), who
//!   created it, an optional disable time. `twin-server user create` writes it.
//! * A login (`POST /api/auth/login`) checks the password (off the async runtime: ~20–50 ms of
//!   CPU) and issues a **session key**: an ordinary `api_tokens` row (stored as SHA-256, revocable,
//!   audited like any key) named `USER@xxxxxxxx`, `created_by = 'login'`, with the user's role and
//!   an expiry of at most `serve --session-ttl`. `POST /api/auth/logout` revokes the session key it
//!   is sent with. Unknown users cost the same argon2 check as wrong passwords and get the same 401.

use super::{store, Role};
use crate::live::db::{Db, DbError, DbResult, Row};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

pub const MIGRATION: &str = "CREATE TABLE users (id BIGINT PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
     password_hash TEXT NOT NULL, created_ms BIGINT NOT NULL, created_by TEXT NOT NULL, disabled_ms BIGINT);";

/// `created_by` of the keys a login issues.
pub const SESSION_CREATOR: &str = "login";

/// 1–48 characters of [A-Za-z0-9._-] (a session key is named `USER@` + 8 hex digits).
pub fn check_user_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 48 || !name.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c)) {
        return Err(format!("user name '{name}': 1–48 characters of [A-Za-z0-9._-]"));
    }
    Ok(())
}

/// At least 10 characters, at most 1,024 bytes.
pub fn check_password(pw: &str) -> Result<(), String> {
    if pw.chars().count() < 10 {
        return Err("a password needs at least 10 characters".into());
    }
    if pw.len() > 1024 {
        return Err("a password has at most 1,024 bytes".into());
    }
    Ok(())
}

/// The argon2id PHC string of `pw` with a fresh random salt.
pub fn hash_password(pw: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no random numbers from the OS: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| format!("salt: {e}"))?;
    Argon2::default().hash_password(pw.as_bytes(), &salt).map(|h| h.to_string()).map_err(|e| format!("argon2: {e}"))
}

/// True when `pw` matches the PHC string (any argon2 variant and parameters it names).
pub fn verify_password(pw: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
}

/// What an unknown user's password is checked against, so that it costs what a real check does.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| hash_password("not a password of anyone").unwrap_or_default());

#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub password_hash: String,
    pub disabled_ms: Option<i64>,
}

fn user_row(r: &Row) -> UserRow {
    UserRow { id: r.i64(0), name: r.str(1).to_string(), role: r.str(2).to_string(), password_hash: r.str(3).to_string(), disabled_ms: r.opt_i64(4) }
}

pub async fn by_name(db: &Db, name: String) -> DbResult<Option<UserRow>> {
    db.read(move |c| Ok(c.query("SELECT id, name, role, password_hash, disabled_ms FROM users WHERE name = $1", &[name.into()])?.first().map(user_row))).await
}

/// Creates a user (the CLI); the name must be new.
pub async fn create(db: &Db, name: &str, role: Role, password: &str, created_by: &str) -> Result<UserRow, String> {
    check_user_name(name)?;
    check_password(password)?;
    let pw = password.to_string();
    let hash = tokio::task::spawn_blocking(move || hash_password(&pw)).await.map_err(|e| e.to_string())??;
    let (name, role_s, by) = (name.to_string(), role.as_str().to_string(), created_by.to_string());
    db.write(move |tx| -> Result<UserRow, DbError> {
        if tx.query_one("SELECT id FROM users WHERE name = $1", &[name.clone().into()])?.is_some() {
            return Err(DbError(format!("a user named '{name}' exists already")));
        }
        let id = tx.next_id("users")?;
        let now = tx.now_ms();
        tx.exec(
            "INSERT INTO users (id, name, role, password_hash, created_ms, created_by, disabled_ms) VALUES ($1, $2, $3, $4, $5, $6, NULL)",
            &[id.into(), name.clone().into(), role_s.clone().into(), hash.clone().into(), now.into(), by.into()],
        )?;
        Ok(UserRow { id, name, role: role_s, password_hash: hash, disabled_ms: None })
    })
    .await
    .map_err(|e| e.0)
}

/// The user when `password` is theirs and they are not disabled; `None` otherwise (unknown
/// users take as long as wrong passwords).
pub async fn authenticate(db: &Db, name: String, password: String) -> Result<Option<UserRow>, DbError> {
    let row = if check_user_name(&name).is_ok() { by_name(db, name).await? } else { None };
    tokio::task::spawn_blocking(move || match row {
        Some(r) if r.disabled_ms.is_none() => verify_password(&password, &r.password_hash).then_some(r),
        _ => {
            let _ = verify_password(&password, &DUMMY_HASH);
            None
        }
    })
    .await
    .map_err(|e| DbError(format!("password check failed: {e}")))
}

/// Issues a session key for `user` expiring at `expires_ms`.
pub async fn create_session(db: &Db, user: &UserRow, expires_ms: i64) -> Result<(store::TokenRow, String), String> {
    let role = Role::parse(&user.role)?;
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).map_err(|e| format!("no random numbers from the OS: {e}"))?;
    store::create(db, &format!("{}@{}", user.name, store::hex(&b)), role, Some(expires_ms), SESSION_CREATOR).await
}

/// Revokes the session key `token_id`; `Ok(false)` when it is not a session key (an API key is
/// revoked by an admin, not by logging out).
pub async fn end_session(db: &Db, token_id: i64) -> Result<bool, DbError> {
    db.write(move |tx| -> Result<bool, DbError> {
        let Some(r) = tx.query_one("SELECT created_by FROM api_tokens WHERE id = $1", &[token_id.into()])? else { return Ok(false) };
        if r.str(0) != SESSION_CREATOR {
            return Ok(false);
        }
        let now = tx.now_ms();
        tx.exec("UPDATE api_tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL", &[token_id.into(), now.into()])?;
        Ok(true)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hashes_verify_and_differ_by_salt() {
        let a = hash_password("correct horse battery").unwrap();
        let b = hash_password("correct horse battery").unwrap();
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "random salts");
        assert!(verify_password("correct horse battery", &a) && verify_password("correct horse battery", &b));
        assert!(!verify_password("correct horse batterY", &a));
        assert!(!verify_password("x", "not a PHC string"));
        // an independent check: the PHC string of the reference implementation's CLI (Debian `argon2`)
        // (`echo -n password | argon2 somesalt -id -t 2 -m 16 -p 1 -e`)
        assert!(verify_password("password", "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"));
        assert!(check_password("short").is_err() && check_password("long enough!").is_ok());
        assert!(check_user_name("alice.w-1").is_ok() && check_user_name("a@b").is_err() && check_user_name("").is_err());
    }
}

//! API keys and the audit log in the live store (SQLite or PostgreSQL, so replicas share them).
//!
//! * `api_tokens`: one row per key — only the SHA-256 of the key is stored (keys are 192 random
//!   bits, so a plain hash is enough; no salt or KDF needed), with name, role, creation, expiry
//!   and revocation times.
//! * `audit_log`: append-only. Triggers refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on
//!   both backends, so the application (and anyone with only its credentials on SQLite) cannot
//!   rewrite history. On PostgreSQL the full answer is a separate database role for the server
//!   with INSERT/SELECT on `audit_log` only (README, security section): the table owner can still
//!   drop the triggers.

use super::Role;
use crate::live::db::{Backend, Db, DbError, DbResult, Row, Val};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const TABLES: &str = "CREATE TABLE api_tokens (id BIGINT PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
     hash TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL, created_ms BIGINT NOT NULL, created_by TEXT NOT NULL,
     expires_ms BIGINT, revoked_ms BIGINT);
   CREATE TABLE audit_log (id BIGINT PRIMARY KEY, at_ms BIGINT NOT NULL, actor TEXT NOT NULL, role TEXT NOT NULL,
     token_id BIGINT, ip TEXT NOT NULL, method TEXT NOT NULL, path TEXT NOT NULL, route TEXT NOT NULL, target TEXT,
     status INTEGER NOT NULL, body_sha256 TEXT, body_bytes BIGINT, detail TEXT);
   CREATE INDEX audit_log_at ON audit_log (at_ms);
   CREATE INDEX audit_log_actor ON audit_log (actor, at_ms);";

/// SQLite: the shared tables, then triggers raising on UPDATE/DELETE.
const SQLITE_TRIGGERS: &str = "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: UPDATE refused'); END;
   CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: DELETE refused'); END;";

/// PostgreSQL: one trigger function refusing UPDATE, DELETE (per row) and TRUNCATE.
const PG_TRIGGERS: &str = "CREATE FUNCTION audit_log_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP; END $$;
   CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_refuse();
   CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse();";

pub async fn migrate(db: &Db) -> DbResult<()> {
    // Migrations are `&'static` strings: the two backends' scripts are built once.
    // Version 2: users with passwords (login; `auth::users`).
    static SQLITE: std::sync::LazyLock<Vec<&'static str>> =
        std::sync::LazyLock::new(|| vec![Box::leak(format!("{TABLES}\n{SQLITE_TRIGGERS}").into_boxed_str()), super::users::MIGRATION]);
    static PG: std::sync::LazyLock<Vec<&'static str>> =
        std::sync::LazyLock::new(|| vec![Box::leak(format!("{TABLES}\n{PG_TRIGGERS}").into_boxed_str()), super::users::MIGRATION]);
    let m: &'static [&'static str] = match db.backend() {
        Backend::Sqlite => SQLITE.as_slice(),
        Backend::Postgres => PG.as_slice(),
    };
    db.migrate("auth", m).await
}

pub const KEY_PREFIX: &str = "ctk_";

/// A new key: `ctk_` + 48 hex digits (192 random bits from the OS).
pub fn new_key() -> Result<String, String> {
    let mut b = [0u8; 24];
    getrandom::fill(&mut b).map_err(|e| format!("no random numbers from the OS: {e}"))?;
    Ok(format!("{KEY_PREFIX}{}", hex(&b)))
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// SHA-256 of the key, hex.
pub fn key_hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// Equal without an early exit (the stored and computed hashes are compared in constant time).
pub fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A key as read from a header or file: `ctk_` and at least 32 more characters of [A-Za-z0-9_-].
pub fn check_key_format(key: &str) -> Result<(), String> {
    let rest = key.strip_prefix(KEY_PREFIX).ok_or_else(|| format!("an API key starts with '{KEY_PREFIX}'"))?;
    if rest.len() < 32 || rest.len() > 200 || !rest.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-') {
        return Err(format!("an API key is '{KEY_PREFIX}' followed by 32–200 characters of [A-Za-z0-9_-]"));
    }
    Ok(())
}

pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|c| c.is_ascii_alphanumeric() || b"._@-".contains(&c)) {
        return Err(format!("token name '{name}': 1–64 characters of [A-Za-z0-9._@-]"));
    }
    Ok(())
}

#[derive(Debug, Clone)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub role: String,
    pub hash: String,
    pub prefix: String,
    pub created_ms: i64,
    pub created_by: String,
    pub expires_ms: Option<i64>,
    pub revoked_ms: Option<i64>,
}

const TOKEN_COLS: &str = "id, name, role, hash, prefix, created_ms, created_by, expires_ms, revoked_ms";

fn token_row(r: &Row) -> TokenRow {
    TokenRow {
        id: r.i64(0),
        name: r.str(1).to_string(),
        role: r.str(2).to_string(),
        hash: r.str(3).to_string(),
        prefix: r.str(4).to_string(),
        created_ms: r.i64(5),
        created_by: r.str(6).to_string(),
        expires_ms: r.opt_i64(7),
        revoked_ms: r.opt_i64(8),
    }
}

impl TokenRow {
    /// The public description (never the hash).
    pub fn json(&self, now_ms: i64) -> Value {
        let state = if self.revoked_ms.is_some() {
            "revoked"
        } else if self.expires_ms.is_some_and(|e| e <= now_ms) {
            "expired"
        } else {
            "active"
        };
        json!({"id": self.id, "name": self.name, "role": self.role, "prefix": self.prefix, "created": ms_rfc3339(self.created_ms),
               "created_by": self.created_by, "expires": self.expires_ms.map(ms_rfc3339), "revoked": self.revoked_ms.map(ms_rfc3339), "state": state})
    }
}

pub fn ms_rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)).unwrap_or_default()
}

/// Creates a key; returns the row and the key (shown once, never stored).
pub async fn create(db: &Db, name: &str, role: Role, expires_ms: Option<i64>, created_by: &str) -> Result<(TokenRow, String), String> {
    check_name(name)?;
    let key = new_key()?;
    let (name, hash, prefix, by) = (name.to_string(), key_hash(&key), key[..12].to_string(), created_by.to_string());
    let role_s = role.as_str().to_string();
    let row = db
        .write(move |tx| -> Result<TokenRow, DbError> {
            if tx.query_one("SELECT id FROM api_tokens WHERE name = $1", &[name.clone().into()])?.is_some() {
                return Err(DbError(format!("a token named '{name}' exists already (names are unique; revoke it or pick another)")));
            }
            let id = tx.next_id("api_tokens")?;
            let now = tx.now_ms();
            tx.exec(
                "INSERT INTO api_tokens (id, name, role, hash, prefix, created_ms, created_by, expires_ms, revoked_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL)",
                &[id.into(), name.clone().into(), role_s.clone().into(), hash.clone().into(), prefix.clone().into(), now.into(), by.clone().into(), expires_ms.into()],
            )?;
            Ok(TokenRow { id, name, role: role_s, hash, prefix, created_ms: now, created_by: by, expires_ms, revoked_ms: None })
        })
        .await
        .map_err(|e| e.0)?;
    Ok((row, key))
}

/// Registers a given key (the bootstrap admin key of `serve --admin-token-file`) unless known.
pub async fn ensure_key(db: &Db, key: &str, role: Role, created_by: &str) -> Result<bool, String> {
    check_key_format(key)?;
    let hash = key_hash(key);
    let name = format!("bootstrap-{}-{}", role.as_str(), &hash[..8]);
    let (prefix, role_s, by) = (key[..12].to_string(), role.as_str().to_string(), created_by.to_string());
    db.write(move |tx| -> Result<bool, DbError> {
        if tx.query_one("SELECT id FROM api_tokens WHERE hash = $1", &[hash.clone().into()])?.is_some() {
            return Ok(false);
        }
        let id = tx.next_id("api_tokens")?;
        let now = tx.now_ms();
        tx.exec(
            "INSERT INTO api_tokens (id, name, role, hash, prefix, created_ms, created_by, expires_ms, revoked_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, NULL, NULL) ON CONFLICT DO NOTHING",
            &[id.into(), name.into(), role_s.into(), hash.into(), prefix.into(), now.into(), by.into()],
        )?;
        Ok(true)
    })
    .await
    .map_err(|e| e.0)
}

pub async fn by_hash(db: &Db, hash: String) -> DbResult<Option<TokenRow>> {
    db.read(move |c| Ok(c.query(&format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE hash = $1"), &[hash.into()])?.first().map(token_row))).await
}

pub async fn list(db: &Db) -> DbResult<Vec<TokenRow>> {
    db.read(|c| Ok(c.query(&format!("SELECT {TOKEN_COLS} FROM api_tokens ORDER BY id"), &[])?.iter().map(token_row).collect())).await
}

/// Revokes by id or name; `Ok(None)` when there is no such token. Revoking twice keeps the
/// first revocation time.
pub async fn revoke(db: &Db, id: Option<i64>, name: Option<String>) -> DbResult<Option<TokenRow>> {
    db.write(move |tx| -> DbResult<Option<TokenRow>> {
        let row = match (id, &name) {
            (Some(id), _) => tx.query_one(&format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE id = $1"), &[id.into()])?,
            (None, Some(n)) => tx.query_one(&format!("SELECT {TOKEN_COLS} FROM api_tokens WHERE name = $1"), &[n.clone().into()])?,
            (None, None) => None,
        };
        let Some(row) = row.map(|r| token_row(&r)) else { return Ok(None) };
        let now = tx.now_ms();
        tx.exec("UPDATE api_tokens SET revoked_ms = $2 WHERE id = $1 AND revoked_ms IS NULL", &[row.id.into(), now.into()])?;
        Ok(Some(TokenRow { revoked_ms: row.revoked_ms.or(Some(now)), ..row }))
    })
    .await
}

/// One audit record.
#[derive(Debug, Clone, Default)]
pub struct AuditRow {
    pub actor: String,
    pub role: String,
    pub token_id: Option<i64>,
    pub ip: String,
    pub method: String,
    pub path: String,
    pub route: String,
    pub target: Option<String>,
    pub status: u16,
    pub body_sha256: Option<String>,
    pub body_bytes: Option<i64>,
    pub detail: Option<String>,
}

pub async fn append(db: &Db, a: AuditRow) -> DbResult<i64> {
    db.write(move |tx| -> DbResult<i64> {
        let id = tx.next_id("audit_log")?;
        let now = tx.now_ms();
        let path: String = a.path.chars().take(2048).collect();
        tx.exec(
            "INSERT INTO audit_log (id, at_ms, actor, role, token_id, ip, method, path, route, target, status, body_sha256, body_bytes, detail)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            &[
                id.into(),
                now.into(),
                a.actor.into(),
                a.role.into(),
                a.token_id.into(),
                a.ip.into(),
                a.method.into(),
                path.into(),
                a.route.into(),
                a.target.map(|t| t.chars().take(256).collect::<String>()).into(),
                (a.status as i64).into(),
                a.body_sha256.into(),
                a.body_bytes.into(),
                a.detail.map(|t| t.chars().take(512).collect::<String>()).into(),
            ],
        )?;
        Ok(id)
    })
    .await
}

/// Audit rows with `from ≤ at < to`, by `actor` when given, newest first, at most `limit`.
pub async fn query(db: &Db, from: Option<i64>, to: Option<i64>, actor: Option<String>, limit: i64) -> DbResult<Vec<Value>> {
    db.read(move |c| {
        let mut sql = String::from("SELECT id, at_ms, actor, role, token_id, ip, method, path, route, target, status, body_sha256, body_bytes, detail FROM audit_log WHERE 1 = 1");
        let mut p: Vec<Val> = vec![];
        if let Some(f) = from {
            p.push(f.into());
            sql += &format!(" AND at_ms >= ${}", p.len());
        }
        if let Some(t) = to {
            p.push(t.into());
            sql += &format!(" AND at_ms < ${}", p.len());
        }
        if let Some(a) = actor {
            p.push(a.into());
            sql += &format!(" AND actor = ${}", p.len());
        }
        p.push(limit.into());
        sql += &format!(" ORDER BY id DESC LIMIT ${}", p.len());
        Ok(c.query(&sql, &p)?
            .iter()
            .map(|r| {
                json!({"id": r.i64(0), "at": ms_rfc3339(r.i64(1)), "at_ms": r.i64(1), "actor": r.str(2), "role": r.str(3), "token_id": r.opt_i64(4),
                       "ip": r.str(5), "method": r.str(6), "path": r.str(7), "route": r.str(8), "target": r.opt_str(9), "status": r.i64(10),
                       "body_sha256": r.opt_str(11), "body_bytes": r.opt_i64(12), "detail": r.opt_str(13)})
            })
            .collect())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_hashes_and_formats() {
        let (a, b) = (new_key().unwrap(), new_key().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("ctk_") && a.len() == 4 + 48, "{a}");
        check_key_format(&a).unwrap();
        assert!(check_key_format("ctk_short").is_err() && check_key_format("Bearer x").is_err());
        // SHA-256("abc") from FIPS 180-2, appendix B.1.
        assert_eq!(key_hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(ct_eq("abc", "abc") && !ct_eq("abc", "abd") && !ct_eq("abc", "ab"));
        assert!(check_name("ops.alice@cc-1").is_ok() && check_name("").is_err() && check_name("a b").is_err());
    }
}

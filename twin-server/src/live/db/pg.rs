//! PostgreSQL backend: the synchronous `postgres` client (each connection drives its own
//! tokio-postgres connection; used only from the store's threads and blocking tasks, never from
//! async code). LISTEN/NOTIFY wakes the tailer when another replica commits.

use super::{Backend, Conn, DbError, DbResult, Row, Val};
use postgres::types::{to_sql_checked, IsNull, ToSql, Type};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{Client, NoTls};
use std::time::Duration;

/// `statement_timeout` of every connection, ms (`serve --request-timeout`; 0 = none).
pub static STATEMENT_TIMEOUT_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(30_000);

pub struct PgConn {
    c: Client,
    /// Prepared statements by SQL text: one Parse round trip per statement per connection.
    stmts: std::collections::HashMap<String, postgres::Statement>,
}

fn err(e: postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(d) => DbError(format!("postgres: {}: {}{}", d.code().code(), d.message(), d.detail().map(|x| format!(" ({x})")).unwrap_or_default())),
        None => DbError(format!("postgres: {e}")),
    }
}

impl PgConn {
    pub fn connect(dsn: &str) -> DbResult<PgConn> {
        let mut c = Client::connect(dsn, NoTls).map_err(|e| DbError(format!("postgres: cannot connect to {}: {e}", super::mask_password(dsn))))?;
        // No statement runs longer than this (a runaway query cannot hold a connection; issue 8).
        c.batch_execute(&format!("SET statement_timeout = {}", STATEMENT_TIMEOUT_MS.load(std::sync::atomic::Ordering::Relaxed)))
            .map_err(|e| DbError(format!("postgres: SET statement_timeout: {e}")))?;
        Ok(PgConn { c, stmts: std::collections::HashMap::new() })
    }
}

impl ToSql for Val {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Val::Null => Ok(IsNull::Yes),
            Val::I64(v) => match *ty {
                Type::INT8 => v.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::FLOAT8 => (*v as f64).to_sql(ty, out),
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => v.to_string().to_sql(ty, out),
                _ => Err(format!("cannot send an integer as {ty}").into()),
            },
            Val::F64(v) => match *ty {
                Type::FLOAT8 => v.to_sql(ty, out),
                Type::FLOAT4 => (*v as f32).to_sql(ty, out),
                _ => Err(format!("cannot send a float as {ty}").into()),
            },
            Val::Text(s) => s.as_str().to_sql(ty, out),
        }
    }
    fn accepts(_ty: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

fn row_vals(r: &postgres::Row) -> DbResult<Row> {
    let mut vals = Vec::with_capacity(r.len());
    for (i, col) in r.columns().iter().enumerate() {
        let t = col.type_();
        let v = match *t {
            Type::INT8 => r.try_get::<_, Option<i64>>(i).map(|v| v.map(Val::I64)),
            Type::INT4 => r.try_get::<_, Option<i32>>(i).map(|v| v.map(|x| Val::I64(x as i64))),
            Type::INT2 => r.try_get::<_, Option<i16>>(i).map(|v| v.map(|x| Val::I64(x as i64))),
            Type::FLOAT8 => r.try_get::<_, Option<f64>>(i).map(|v| v.map(Val::F64)),
            Type::FLOAT4 => r.try_get::<_, Option<f32>>(i).map(|v| v.map(|x| Val::F64(x as f64))),
            Type::BOOL => r.try_get::<_, Option<bool>>(i).map(|v| v.map(|x| Val::I64(x as i64))),
            Type::NUMERIC => r.try_get::<_, Option<String>>(i).map(|v| v.map(Val::Text)),
            Type::VOID => Ok(None),
            _ => r.try_get::<_, Option<String>>(i).map(|v| v.map(Val::Text)),
        }
        .map_err(|e| DbError(format!("postgres: column {} ({t}): {e}", col.name())))?;
        vals.push(v.unwrap_or(Val::Null));
    }
    Ok(Row(vals))
}

fn params(p: &[Val]) -> Vec<&(dyn ToSql + Sync)> {
    p.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
}

impl PgConn {
    fn stmt(&mut self, sql: &str) -> DbResult<postgres::Statement> {
        if let Some(st) = self.stmts.get(sql) {
            return Ok(st.clone());
        }
        let st = self.c.prepare(sql).map_err(err)?;
        if self.stmts.len() >= 256 {
            self.stmts.clear();
        }
        self.stmts.insert(sql.to_string(), st.clone());
        Ok(st)
    }
    /// A failed statement is re-prepared next time (its plan may be stale after a migration).
    fn forget_on_error<T>(&mut self, sql: &str, r: Result<T, postgres::Error>) -> DbResult<T> {
        if r.is_err() {
            self.stmts.remove(sql);
        }
        r.map_err(err)
    }
}

impl Conn for PgConn {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }
    fn exec(&mut self, sql: &str, p: &[Val]) -> DbResult<u64> {
        let st = self.stmt(sql)?;
        let r = self.c.execute(&st, &params(p));
        self.forget_on_error(sql, r)
    }
    fn query(&mut self, sql: &str, p: &[Val]) -> DbResult<Vec<Row>> {
        let st = self.stmt(sql)?;
        let r = self.c.query(&st, &params(p));
        self.forget_on_error(sql, r)?.iter().map(row_vals).collect()
    }
    fn batch(&mut self, sql: &str) -> DbResult<()> {
        self.c.batch_execute(sql).map_err(err)
    }
}

/// `LISTEN citytwin_changes` on a dedicated connection; calls `wake` on every notification and
/// every 5 s (reconnecting after errors). Returns when `wake` returns false (the store is gone).
pub fn listen_loop(dsn: &str, wake: impl Fn() -> bool) {
    loop {
        let mut client = match Client::connect(dsn, NoTls) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("LISTEN connection: {e}; retrying in 1 s");
                if !wake() {
                    return;
                }
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        if let Err(e) = client.batch_execute("LISTEN citytwin_changes") {
            tracing::warn!("LISTEN: {e}; retrying in 1 s");
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        loop {
            // One notification (or 5 s of silence) per round: wake the tailer either way.
            let r = client.notifications().timeout_iter(Duration::from_secs(5)).next().map(|_| ());
            if !wake() {
                return;
            }
            if let Err(e) = r {
                tracing::warn!("LISTEN: {e}; reconnecting");
                break;
            }
            if client.is_closed() {
                break;
            }
        }
    }
}

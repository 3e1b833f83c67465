//! SQLite backend: the system libsqlite3 (never rusqlite's `bundled`: a second SQLite in the
//! GDAL-linked binary breaks GDAL's GPKG driver), WAL, `synchronous=NORMAL`, busy timeout.

use super::{to_sqlite_placeholders, Backend, Conn, DbError, DbResult, Row, Val};
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use std::path::Path;

pub struct SqliteConn {
    c: rusqlite::Connection,
}

fn err(e: rusqlite::Error) -> DbError {
    DbError(format!("sqlite: {e}"))
}

impl SqliteConn {
    pub fn open(path: &Path) -> DbResult<SqliteConn> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                return Err(DbError(format!("sqlite: directory {} does not exist", dir.display())));
            }
        }
        let c = rusqlite::Connection::open(path).map_err(|e| DbError(format!("sqlite: cannot open {}: {e}", path.display())))?;
        c.busy_timeout(std::time::Duration::from_secs(10)).map_err(err)?;
        // WAL: readers never block the writer; NORMAL: a commit is durable once the WAL write
        // returned, which survives a crash of the process (not of the OS: then the last
        // transactions may roll back, the database stays consistent).
        let mode: String = c.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).map_err(err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(DbError(format!("sqlite: {} cannot use WAL (journal_mode = {mode})", path.display())));
        }
        c.execute_batch("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;").map_err(err)?;
        c.set_prepared_statement_cache_capacity(64);
        Ok(SqliteConn { c })
    }
}

fn to_sql(v: &Val) -> ToSqlOutput<'_> {
    match v {
        Val::Null => ToSqlOutput::Owned(Value::Null),
        Val::I64(i) => ToSqlOutput::Owned(Value::Integer(*i)),
        Val::F64(f) => ToSqlOutput::Owned(Value::Real(*f)),
        Val::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
    }
}

struct P<'a>(&'a Val);
impl rusqlite::ToSql for P<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(to_sql(self.0))
    }
}

impl Conn for SqliteConn {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }
    fn exec(&mut self, sql: &str, params: &[Val]) -> DbResult<u64> {
        let sql = to_sqlite_placeholders(sql);
        let mut st = self.c.prepare_cached(&sql).map_err(err)?;
        let ps: Vec<P> = params.iter().map(P).collect();
        st.execute(rusqlite::params_from_iter(ps.iter())).map(|n| n as u64).map_err(err)
    }
    fn query(&mut self, sql: &str, params: &[Val]) -> DbResult<Vec<Row>> {
        let sql = to_sqlite_placeholders(sql);
        let mut st = self.c.prepare_cached(&sql).map_err(err)?;
        let n = st.column_count();
        let ps: Vec<P> = params.iter().map(P).collect();
        let mut rows = st.query(rusqlite::params_from_iter(ps.iter())).map_err(err)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(err)? {
            let mut vals = Vec::with_capacity(n);
            for i in 0..n {
                vals.push(match r.get_ref(i).map_err(err)? {
                    ValueRef::Null => Val::Null,
                    ValueRef::Integer(v) => Val::I64(v),
                    ValueRef::Real(v) => Val::F64(v),
                    ValueRef::Text(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(b) => Val::Text(String::from_utf8_lossy(b).into_owned()),
                });
            }
            out.push(Row(vals));
        }
        Ok(out)
    }
    fn batch(&mut self, sql: &str) -> DbResult<()> {
        self.c.execute_batch(sql).map_err(err)
    }
}

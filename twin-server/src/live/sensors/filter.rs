//! `$filter` of the SensorThings API (subset) on Observations: parsed by
//! [`twin_protocol::filter`] (no server code; fuzzed), compiled here to SQL with `$n` parameters
//! (never values in the SQL text), the same SQL for SQLite and PostgreSQL.

use crate::live::db::Val;
pub use twin_protocol::filter::*;

/// Compiles to a SQL boolean expression over the `sta_observations` columns; parameters are
/// appended to `params` and referenced as `$n` (n = their 1-based position).
pub fn to_sql(e: &Expr, params: &mut Vec<Val>) -> String {
    match e {
        Expr::And(a, b) => format!("({} AND {})", to_sql(a, params), to_sql(b, params)),
        Expr::Or(a, b) => format!("({} OR {})", to_sql(a, params), to_sql(b, params)),
        Expr::Not(a) => format!("(NOT {})", to_sql(a, params)),
        Expr::Cmp(f, op, lit) => {
            let (col, v) = match (f, lit) {
                (Field::PhenomenonTime, Lit::Time(t)) => ("phenomenon_ms", Val::I64(*t)),
                (Field::ResultTime, Lit::Time(t)) => ("result_time_ms", Val::I64(*t)),
                (Field::Result, Lit::Num(n)) => ("result", Val::F64(*n)),
                (Field::Result, Lit::Str(s)) => ("result_str", Val::Text(s.clone())),
                _ => unreachable!("checked by the parser"),
            };
            params.push(v);
            format!("({col} IS NOT NULL AND {col} {} ${})", op.sql(), params.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sql_uses_parameters_only() {
        let e = parse("result eq 'x'' OR 1=1' or (result ge 2.5 and phenomenonTime lt 2026-01-01T00:00:00Z)").unwrap();
        let mut p = vec![Val::I64(7)];
        let sql = to_sql(&e, &mut p);
        assert_eq!(
            sql,
            "((result_str IS NOT NULL AND result_str = $2) OR ((result IS NOT NULL AND result >= $3) AND (phenomenon_ms IS NOT NULL AND phenomenon_ms < $4)))"
        );
        assert_eq!(p[1], Val::Text("x' OR 1=1".into()));
        assert_eq!(p[2], Val::F64(2.5));
        assert_eq!(p[3], Val::I64(1_767_225_600_000));
    }
}

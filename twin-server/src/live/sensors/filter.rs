//! `$filter` of the SensorThings API (subset) on Observations: comparisons `eq ne gt ge lt le`
//! between `phenomenonTime` / `resultTime` / `result` and a literal (number, `'string'`, or an
//! ISO 8601 date-time, bare or quoted), combined with `and`, `or`, `not` and parentheses.
//! Parsed into an AST, then compiled to SQL with `$n` parameters (never values in the SQL text),
//! the same SQL for SQLite and PostgreSQL.

use crate::live::db::Val;

#[derive(Debug, Clone, PartialEq)]
pub struct FilterError {
    /// 0-based character offset into the `$filter` text.
    pub pos: usize,
    pub message: String,
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at position {}: {}", self.pos, self.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    PhenomenonTime,
    ResultTime,
    Result,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn sql(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "<>",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
    /// `lit op field` ≡ `field flip(op) lit`.
    fn flip(self) -> Op {
        match self {
            Op::Gt => Op::Lt,
            Op::Ge => Op::Le,
            Op::Lt => Op::Gt,
            Op::Le => Op::Ge,
            o => o,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Num(f64),
    Str(String),
    /// An ISO 8601 date-time, ms since the epoch.
    Time(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Cmp(Field, Op, Lit),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    Word(String),
    Num(f64),
    Str(String),
    Time(i64),
}

fn lex(s: &str) -> Result<Vec<(usize, Tok)>, FilterError> {
    let cs: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push((i, Tok::LParen));
            i += 1;
        } else if c == ')' {
            out.push((i, Tok::RParen));
            i += 1;
        } else if c == '\'' {
            let start = i;
            let mut v = String::new();
            i += 1;
            loop {
                match cs.get(i) {
                    None => return Err(FilterError { pos: start, message: "unterminated string literal".into() }),
                    Some('\'') if cs.get(i + 1) == Some(&'\'') => {
                        v.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        v.push(ch);
                        i += 1;
                    }
                }
            }
            out.push((start, Tok::Str(v)));
        } else if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' {
            let start = i;
            while i < cs.len() && (cs[i].is_ascii_alphanumeric() || matches!(cs[i], '-' | '+' | '.' | ':')) {
                i += 1;
            }
            let text: String = cs[start..i].iter().collect();
            if let Some(t) = parse_datetime(&text) {
                out.push((start, Tok::Time(t)));
            } else if let Ok(v) = text.parse::<f64>() {
                if !v.is_finite() {
                    return Err(FilterError { pos: start, message: format!("number '{text}' is not finite") });
                }
                out.push((start, Tok::Num(v)));
            } else {
                return Err(FilterError { pos: start, message: format!("'{text}' is neither a number nor an ISO 8601 date-time") });
            }
        } else if c.is_alphabetic() || c == '_' || c == '@' {
            let start = i;
            while i < cs.len() && (cs[i].is_alphanumeric() || matches!(cs[i], '_' | '@' | '.' | '/')) {
                i += 1;
            }
            out.push((start, Tok::Word(cs[start..i].iter().collect())));
        } else {
            return Err(FilterError { pos: i, message: format!("unexpected character '{c}'") });
        }
    }
    Ok(out)
}

/// RFC 3339 / ISO 8601 date-time with offset, or a bare date (midnight UTC) → ms.
pub fn parse_datetime(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    if s.len() == 10 {
        if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis());
        }
    }
    None
}

struct P {
    toks: Vec<(usize, Tok)>,
    i: usize,
    end: usize,
}

impl P {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.1)
    }
    fn pos(&self) -> usize {
        self.toks.get(self.i).map(|t| t.0).unwrap_or(self.end)
    }
    fn word_is(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }
    fn err<T>(&self, m: impl Into<String>) -> Result<T, FilterError> {
        Err(FilterError { pos: self.pos(), message: m.into() })
    }
    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut l = self.and()?;
        while self.word_is("or") {
            self.i += 1;
            let r = self.and()?;
            l = Expr::Or(Box::new(l), Box::new(r));
        }
        Ok(l)
    }
    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut l = self.unary()?;
        while self.word_is("and") {
            self.i += 1;
            let r = self.unary()?;
            l = Expr::And(Box::new(l), Box::new(r));
        }
        Ok(l)
    }
    fn unary(&mut self) -> Result<Expr, FilterError> {
        if self.word_is("not") {
            self.i += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.peek() == Some(&Tok::LParen) {
            self.i += 1;
            let e = self.or()?;
            if self.peek() != Some(&Tok::RParen) {
                return self.err("expected ')'");
            }
            self.i += 1;
            return Ok(e);
        }
        self.cmp()
    }
    fn operand(&mut self) -> Result<Result<Field, Lit>, FilterError> {
        let t = match self.peek() {
            None => return self.err("expected a property or a literal, found the end of the filter"),
            Some(t) => t.clone(),
        };
        let r = match t {
            Tok::Word(w) => match w.as_str() {
                "phenomenonTime" => Ok(Field::PhenomenonTime),
                "resultTime" => Ok(Field::ResultTime),
                "result" => Ok(Field::Result),
                "true" | "false" | "null" => return self.err(format!("literal '{w}' is not supported")),
                _ => return self.err(format!("unknown property '{w}' (supported: phenomenonTime, resultTime, result)")),
            },
            Tok::Num(v) => Err(Lit::Num(v)),
            Tok::Str(s) => Err(match parse_datetime(&s) {
                Some(t) => Lit::Time(t),
                None => Lit::Str(s),
            }),
            Tok::Time(t) => Err(Lit::Time(t)),
            Tok::LParen | Tok::RParen => return self.err("expected a property or a literal"),
        };
        self.i += 1;
        Ok(r)
    }
    fn cmp(&mut self) -> Result<Expr, FilterError> {
        let start = self.pos();
        let l = self.operand()?;
        let op = match self.peek() {
            Some(Tok::Word(w)) => match w.as_str() {
                "eq" => Op::Eq,
                "ne" => Op::Ne,
                "gt" => Op::Gt,
                "ge" => Op::Ge,
                "lt" => Op::Lt,
                "le" => Op::Le,
                _ => return self.err(format!("expected a comparison operator (eq, ne, gt, ge, lt, le), found '{w}'")),
            },
            None => return self.err("expected a comparison operator (eq, ne, gt, ge, lt, le), found the end of the filter"),
            _ => return self.err("expected a comparison operator (eq, ne, gt, ge, lt, le)"),
        };
        self.i += 1;
        let rpos = self.pos();
        let r = self.operand()?;
        let (f, op, lit) = match (l, r) {
            (Ok(f), Err(lit)) => (f, op, lit),
            (Err(lit), Ok(f)) => (f, op.flip(), lit),
            (Ok(_), Ok(_)) => return Err(FilterError { pos: rpos, message: "comparing two properties is not supported".into() }),
            (Err(_), Err(_)) => return Err(FilterError { pos: start, message: "a comparison needs a property (phenomenonTime, resultTime, result)".into() }),
        };
        match (f, &lit) {
            (Field::PhenomenonTime | Field::ResultTime, Lit::Time(_)) => {}
            (Field::PhenomenonTime | Field::ResultTime, _) => {
                return Err(FilterError { pos: start, message: "a time property compares with an ISO 8601 date-time (e.g. 2026-11-22T08:00:00Z)".into() })
            }
            (Field::Result, Lit::Time(_)) => return Err(FilterError { pos: start, message: "result compares with a number or a 'string'".into() }),
            _ => {}
        }
        Ok(Expr::Cmp(f, op, lit))
    }
}

pub fn parse(s: &str) -> Result<Expr, FilterError> {
    let toks = lex(s)?;
    let end = s.chars().count();
    if toks.is_empty() {
        return Err(FilterError { pos: 0, message: "empty filter".into() });
    }
    let mut p = P { toks, i: 0, end };
    let e = p.or()?;
    if p.i < p.toks.len() {
        return p.err("unexpected token after a complete expression (missing 'and'/'or'?)");
    }
    Ok(e)
}

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
    fn parses_precedence_and_parentheses() {
        let e = parse("result gt 5 or result lt 1 and not (phenomenonTime ge 2026-01-01T00:00:00Z)").unwrap();
        // and binds tighter than or
        match e {
            Expr::Or(a, b) => {
                assert_eq!(*a, Expr::Cmp(Field::Result, Op::Gt, Lit::Num(5.0)));
                match *b {
                    Expr::And(_, n) => assert!(matches!(*n, Expr::Not(_))),
                    other => panic!("{other:?}"),
                }
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn literal_first_flips_the_operator() {
        assert_eq!(parse("10 lt result").unwrap(), Expr::Cmp(Field::Result, Op::Gt, Lit::Num(10.0)));
        let t = parse_datetime("2026-11-22T08:00:00+08:00").unwrap();
        assert_eq!(t, parse_datetime("2026-11-22T00:00:00Z").unwrap());
        assert_eq!(parse("phenomenonTime le '2026-11-22T08:00:00+08:00'").unwrap(), Expr::Cmp(Field::PhenomenonTime, Op::Le, Lit::Time(t)));
    }

    #[test]
    fn errors_name_the_position() {
        let e = parse("result gt 5 and").unwrap_err();
        assert_eq!(e.pos, 15, "{e}");
        let e = parse("result gtx 5").unwrap_err();
        assert_eq!(e.pos, 7, "{e}");
        let e = parse("(result gt 5").unwrap_err();
        assert_eq!(e.pos, 12, "{e}");
        assert!(e.message.contains("')'"));
        let e = parse("foo eq 1").unwrap_err();
        assert_eq!(e.pos, 0);
        let e = parse("phenomenonTime gt 5").unwrap_err();
        assert!(e.message.contains("ISO 8601"), "{e}");
        let e = parse("result eq 'abc").unwrap_err();
        assert_eq!(e.pos, 10);
        let e = parse("result eq 1 result eq 2").unwrap_err();
        assert_eq!(e.pos, 12);
        let e = parse("result eq 1; DROP TABLE x").unwrap_err();
        assert_eq!(e.pos, 11);
    }

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

//! `$filter` of the SensorThings API (subset) on Observations: comparisons `eq ne gt ge lt le`
//! between `phenomenonTime` / `resultTime` / `result` and a literal (number, `'string'`, or an
//! ISO 8601 date-time, bare or quoted), combined with `and`, `or`, `not` and parentheses.
//! Parsed here into an AST (no server code: fuzzed by tests/fuzz `api_payloads`); the server
//! compiles it to SQL with `$n` parameters (never values in the SQL text), the same SQL for
//! SQLite and PostgreSQL.
//!
//! Bounded: at most [`MAX_DEPTH`] nested parentheses / `not`, at most [`MAX_COMPARISONS`]
//! comparisons (a query string of nested parentheses overflowed the stack of the parser, of the
//! SQL compiler and of the drop of the tree, aborting the server).

/// Deepest nesting of parentheses and `not`.
pub const MAX_DEPTH: usize = 64;
/// Most comparisons in one filter.
pub const MAX_COMPARISONS: usize = 256;

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
    /// The SQL comparison operator.
    pub fn sql(self) -> &'static str {
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
    depth: usize,
    comparisons: usize,
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
        let nested = self.word_is("not") || self.peek() == Some(&Tok::LParen);
        if nested {
            if self.depth >= MAX_DEPTH {
                return self.err(format!("nested deeper than {MAX_DEPTH} parentheses / 'not'"));
            }
            self.depth += 1;
        }
        let e = self.unary_inner();
        if nested {
            self.depth -= 1;
        }
        e
    }
    fn unary_inner(&mut self) -> Result<Expr, FilterError> {
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
        self.comparisons += 1;
        if self.comparisons > MAX_COMPARISONS {
            return self.err(format!("more than {MAX_COMPARISONS} comparisons"));
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
    let mut p = P { toks, i: 0, end, depth: 0, comparisons: 0 };
    let e = p.or()?;
    if p.i < p.toks.len() {
        return p.err("unexpected token after a complete expression (missing 'and'/'or'?)");
    }
    Ok(e)
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
    fn deep_nesting_and_huge_filters_are_refused_not_a_stack_overflow() {
        // 100,000 '(' overflowed the parser's stack (the server aborted)
        let e = parse(&"(".repeat(100_000)).unwrap_err();
        assert_eq!(e.pos, MAX_DEPTH, "{e}");
        assert!(e.message.contains("nested deeper than 64"), "{e}");
        let e = parse(&"not ".repeat(100_000)).unwrap_err();
        assert!(e.message.contains("nested deeper than 64"), "{e}");
        // 64 levels are fine
        let ok = format!("{}result gt 1{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        assert_eq!(parse(&ok).unwrap(), Expr::Cmp(Field::Result, Op::Gt, Lit::Num(1.0)));
        // 256 comparisons are fine, 257 are not
        let many = |n: usize| vec!["result eq 1"; n].join(" and ");
        assert!(parse(&many(MAX_COMPARISONS)).is_ok());
        let e = parse(&many(MAX_COMPARISONS + 1)).unwrap_err();
        assert!(e.message.contains("more than 256 comparisons"), "{e}");
        assert_eq!(e.pos, MAX_COMPARISONS * "result eq 1 and ".len());
    }
}

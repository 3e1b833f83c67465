//! Expressions of derived indicators: parsed once into an AST, never evaluated as strings.
//!
//! Grammar (whitespace ignored):
//! ```text
//! expr    := term (("+" | "-") term)*
//! term    := unary (("*" | "/") unary)*
//! unary   := "-" unary | primary
//! primary := NUMBER | IDENT | IDENT "(" expr ("," expr)* ")" | "(" expr ")"
//! ```
//! IDENT is an indicator id (`[a-z0-9_]+`, starting with a letter). Functions: `min(a, b, …)`,
//! `max(a, b, …)`, `abs(a)`, `if_less(a, b, then, else)` (then when a < b). A division by
//! zero or a missing input gives no value (`None`), never NaN or infinity.

use crate::units::Dim;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    Ref(String),
    Neg(Box<Expr>),
    Bin(Op, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Min,
    Max,
    Abs,
    IfLess,
}

/// Parses an expression; `Err((column, message))` with a 1-based column.
pub fn parse(src: &str) -> Result<Expr, (usize, String)> {
    let toks = lex(src)?;
    let mut p = Parser { toks, i: 0 };
    let e = p.expr()?;
    if p.i < p.toks.len() {
        let (col, t) = &p.toks[p.i];
        return Err((*col, format!("unexpected `{}`", t.show())));
    }
    Ok(e)
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Sym(char),
}

impl Tok {
    fn show(&self) -> String {
        match self {
            Tok::Num(n) => n.to_string(),
            Tok::Ident(s) => s.clone(),
            Tok::Sym(c) => c.to_string(),
        }
    }
}

fn lex(src: &str) -> Result<Vec<(usize, Tok)>, (usize, String)> {
    let cs: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < cs.len() {
        let c = cs[i];
        let col = i + 1;
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() || (c == '.' && i + 1 < cs.len() && cs[i + 1].is_ascii_digit())
        {
            let st = i;
            while i < cs.len() && (cs[i].is_ascii_digit() || cs[i] == '.' || cs[i] == '_') {
                i += 1;
            }
            if i < cs.len() && (cs[i] == 'e' || cs[i] == 'E') {
                i += 1;
                if i < cs.len() && (cs[i] == '-' || cs[i] == '+') {
                    i += 1;
                }
                while i < cs.len() && cs[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let s: String = cs[st..i].iter().filter(|c| **c != '_').collect();
            let v: f64 = s.parse().map_err(|_| (col, format!("bad number `{s}`")))?;
            out.push((col, Tok::Num(v)));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let st = i;
            while i < cs.len() && (cs[i].is_ascii_alphanumeric() || cs[i] == '_') {
                i += 1;
            }
            out.push((col, Tok::Ident(cs[st..i].iter().collect())));
        } else if "+-*/(),".contains(c) {
            out.push((col, Tok::Sym(c)));
            i += 1;
        } else {
            return Err((col, format!("unexpected character `{c}`")));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<(usize, Tok)>,
    i: usize,
}

impl Parser {
    fn peek_sym(&self, c: char) -> bool {
        matches!(self.toks.get(self.i), Some((_, Tok::Sym(x))) if *x == c)
    }
    fn col(&self) -> usize {
        self.toks
            .get(self.i)
            .map(|t| t.0)
            .unwrap_or_else(|| self.toks.last().map(|t| t.0 + 1).unwrap_or(1))
    }
    fn expect(&mut self, c: char) -> Result<(), (usize, String)> {
        if self.peek_sym(c) {
            self.i += 1;
            Ok(())
        } else {
            Err((self.col(), format!("expected `{c}`")))
        }
    }
    fn expr(&mut self) -> Result<Expr, (usize, String)> {
        let mut l = self.term()?;
        loop {
            let op = if self.peek_sym('+') {
                Op::Add
            } else if self.peek_sym('-') {
                Op::Sub
            } else {
                return Ok(l);
            };
            self.i += 1;
            let r = self.term()?;
            l = Expr::Bin(op, Box::new(l), Box::new(r));
        }
    }
    fn term(&mut self) -> Result<Expr, (usize, String)> {
        let mut l = self.unary()?;
        loop {
            let op = if self.peek_sym('*') {
                Op::Mul
            } else if self.peek_sym('/') {
                Op::Div
            } else {
                return Ok(l);
            };
            self.i += 1;
            let r = self.unary()?;
            l = Expr::Bin(op, Box::new(l), Box::new(r));
        }
    }
    fn unary(&mut self) -> Result<Expr, (usize, String)> {
        if self.peek_sym('-') {
            self.i += 1;
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        self.primary()
    }
    fn primary(&mut self) -> Result<Expr, (usize, String)> {
        let col = self.col();
        match self.toks.get(self.i).cloned() {
            None => Err((col, "unexpected end of expression".into())),
            Some((_, Tok::Num(v))) => {
                self.i += 1;
                Ok(Expr::Num(v))
            }
            Some((_, Tok::Sym('('))) => {
                self.i += 1;
                let e = self.expr()?;
                self.expect(')')?;
                Ok(e)
            }
            Some((_, Tok::Ident(name))) => {
                self.i += 1;
                if self.peek_sym('(') {
                    self.i += 1;
                    let f = match name.as_str() {
                        "min" => Func::Min,
                        "max" => Func::Max,
                        "abs" => Func::Abs,
                        "if_less" => Func::IfLess,
                        _ => {
                            return Err((
                                col,
                                format!("unknown function `{name}` (min, max, abs, if_less)"),
                            ))
                        }
                    };
                    let mut args = vec![self.expr()?];
                    while self.peek_sym(',') {
                        self.i += 1;
                        args.push(self.expr()?);
                    }
                    self.expect(')')?;
                    let ok = match f {
                        Func::Min | Func::Max => !args.is_empty(),
                        Func::Abs => args.len() == 1,
                        Func::IfLess => args.len() == 4,
                    };
                    if !ok {
                        return Err((
                            col,
                            format!(
                                "`{name}` takes {}",
                                match f {
                                    Func::Abs => "1 argument",
                                    Func::IfLess => "4 arguments (a, b, then, else)",
                                    _ => "1 or more arguments",
                                }
                            ),
                        ));
                    }
                    Ok(Expr::Call(f, args))
                } else {
                    Ok(Expr::Ref(name))
                }
            }
            Some((_, t)) => Err((col, format!("unexpected `{}`", t.show()))),
        }
    }
}

impl Expr {
    /// Indicator ids referenced, in order of first appearance.
    pub fn refs(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.walk_refs(&mut out);
        out
    }
    fn walk_refs(&self, out: &mut Vec<String>) {
        match self {
            Expr::Num(_) => {}
            Expr::Ref(r) => {
                if !out.contains(r) {
                    out.push(r.clone())
                }
            }
            Expr::Neg(e) => e.walk_refs(out),
            Expr::Bin(_, a, b) => {
                a.walk_refs(out);
                b.walk_refs(out);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.walk_refs(out)),
        }
    }

    /// Evaluates with `get(id)` giving each input's value; `None` propagates.
    pub fn eval(&self, get: &mut dyn FnMut(&str) -> Option<f64>) -> Option<f64> {
        let v = match self {
            Expr::Num(v) => *v,
            Expr::Ref(r) => get(r)?,
            Expr::Neg(e) => -e.eval(get)?,
            Expr::Bin(op, a, b) => {
                let (a, b) = (a.eval(get)?, b.eval(get)?);
                match op {
                    Op::Add => a + b,
                    Op::Sub => a - b,
                    Op::Mul => a * b,
                    Op::Div => {
                        if b == 0.0 {
                            return None;
                        }
                        a / b
                    }
                }
            }
            Expr::Call(f, args) => match f {
                Func::Min | Func::Max => {
                    let mut acc: Option<f64> = None;
                    for a in args {
                        let v = a.eval(get)?;
                        acc = Some(match (acc, f) {
                            (None, _) => v,
                            (Some(x), Func::Min) => x.min(v),
                            (Some(x), _) => x.max(v),
                        });
                    }
                    acc?
                }
                Func::Abs => args[0].eval(get)?.abs(),
                Func::IfLess => {
                    if args[0].eval(get)? < args[1].eval(get)? {
                        args[2].eval(get)?
                    } else {
                        args[3].eval(get)?
                    }
                }
            },
        };
        v.is_finite().then_some(v)
    }

    /// The unit of the expression given each reference's unit. `Ok(None)` = a bare number
    /// (adopts the unit of what it is added to). `Err` explains the mismatch.
    pub fn unit(
        &self,
        unit_of: &dyn Fn(&str) -> Option<(Dim, String)>,
    ) -> Result<Option<Dim>, String> {
        match self {
            Expr::Num(_) => Ok(None),
            Expr::Ref(r) => Ok(Some(unit_of(r).map(|u| u.0).unwrap_or_default())),
            Expr::Neg(e) => e.unit(unit_of),
            Expr::Bin(op, a, b) => {
                let (ua, ub) = (a.unit(unit_of)?, b.unit(unit_of)?);
                match op {
                    Op::Add | Op::Sub => same(
                        ua,
                        ub,
                        if *op == Op::Add { "add" } else { "subtract" },
                        a,
                        b,
                        unit_of,
                    ),
                    Op::Mul => Ok(Some(ua.unwrap_or_default().mul(&ub.unwrap_or_default()))),
                    Op::Div => Ok(Some(ua.unwrap_or_default().div(&ub.unwrap_or_default()))),
                }
            }
            Expr::Call(f, args) => {
                let us: Vec<Option<Dim>> = args
                    .iter()
                    .map(|a| a.unit(unit_of))
                    .collect::<Result<_, _>>()?;
                match f {
                    Func::Abs => Ok(us[0].clone()),
                    Func::Min | Func::Max => {
                        let mut acc = us[0].clone();
                        for (i, u) in us.iter().enumerate().skip(1) {
                            acc = same(acc, u.clone(), "compare", &args[0], &args[i], unit_of)?;
                        }
                        Ok(acc)
                    }
                    Func::IfLess => {
                        same(
                            us[0].clone(),
                            us[1].clone(),
                            "compare",
                            &args[0],
                            &args[1],
                            unit_of,
                        )?;
                        same(
                            us[2].clone(),
                            us[3].clone(),
                            "choose between",
                            &args[2],
                            &args[3],
                            unit_of,
                        )
                    }
                }
            }
        }
    }

    fn describe(&self, unit_of: &dyn Fn(&str) -> Option<(Dim, String)>) -> String {
        match self {
            Expr::Ref(r) => match unit_of(r) {
                Some((_, s)) => format!("`{r}` [{s}]"),
                None => format!("`{r}`"),
            },
            _ => "a sub-expression".into(),
        }
    }
}

fn same(
    a: Option<Dim>,
    b: Option<Dim>,
    what: &str,
    ea: &Expr,
    eb: &Expr,
    unit_of: &dyn Fn(&str) -> Option<(Dim, String)>,
) -> Result<Option<Dim>, String> {
    match (a, b) {
        (None, x) | (x, None) => Ok(x),
        (Some(a), Some(b)) if a == b => Ok(Some(a)),
        (Some(a), Some(b)) => Err(format!(
            "unit mismatch: cannot {what} {} ({a}) and {} ({b})",
            ea.describe(unit_of),
            eb.describe(unit_of)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parse_and_eval() {
        let e = parse("(a + 2) * b / 4 - -1").unwrap();
        let v = e.eval(&mut |r| match r {
            "a" => Some(2.0),
            "b" => Some(3.0),
            _ => None,
        });
        // (2 + 2) * 3 / 4 + 1 = 4
        assert_eq!(v, Some(4.0));
        assert_eq!(parse("a / 0").unwrap().eval(&mut |_| Some(1.0)), None);
        assert_eq!(
            parse("if_less(a, 3, 10, 20)")
                .unwrap()
                .eval(&mut |_| Some(1.0)),
            Some(10.0)
        );
        assert_eq!(
            parse("max(a, 7, 2)").unwrap().eval(&mut |_| Some(1.0)),
            Some(7.0)
        );
        assert!(parse("a +").is_err());
        assert_eq!(parse("a $ b").unwrap_err().0, 3);
        assert!(parse("foo(a)").is_err());
        assert_eq!(
            parse("a*b+a").unwrap().refs(),
            vec!["a".to_string(), "b".to_string()]
        );
    }
}

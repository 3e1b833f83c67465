//! UCUM-ish units and the dimension check of derived expressions.
//!
//! A unit string is a product of atoms joined by `.` (multiply) and `/` (divide, binding to
//! the next atom only): `min`, `%`, `{event}`, `{event}/h`, `ug/m3`, `km/h`, `10^8.{record}`.
//! An atom may carry an integer exponent (`m3`, `s-1`). `1` (or an empty string) is
//! dimensionless. Curly-brace annotations (`{event}`, `{AQI}`) are kept as distinct atoms — stricter
//! than UCUM, which treats them as 1 — so adding a count of events to an AQI is refused.
//! `%` is its own atom for `+`/`-` (adding % to minutes is refused) but a dimensionless result
//! may be declared `%` (the expression does the ×100) and vice versa.

use std::collections::BTreeMap;
use std::fmt;

/// A unit as a map atom → exponent (no zero exponents).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dim(pub BTreeMap<String, i32>);

impl Dim {
    pub fn one() -> Dim {
        Dim::default()
    }
    pub fn is_one(&self) -> bool {
        self.0.is_empty()
    }
    pub fn mul(&self, o: &Dim) -> Dim {
        let mut m = self.0.clone();
        for (k, e) in &o.0 {
            *m.entry(k.clone()).or_insert(0) += e;
        }
        m.retain(|_, e| *e != 0);
        Dim(m)
    }
    pub fn inv(&self) -> Dim {
        Dim(self.0.iter().map(|(k, e)| (k.clone(), -e)).collect())
    }
    pub fn div(&self, o: &Dim) -> Dim {
        self.mul(&o.inv())
    }
    /// Dimensionless, ignoring `%`.
    fn without_percent(&self) -> Dim {
        let mut m = self.0.clone();
        m.remove("%");
        Dim(m)
    }
    /// Whether a computed unit may be declared as `declared`: equal, or equal once `%` is
    /// dropped on both sides (a ratio ×100 declared `%`).
    pub fn compatible_with(&self, declared: &Dim) -> bool {
        self == declared || self.without_percent() == declared.without_percent()
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "1");
        }
        let mut first = true;
        for (k, e) in &self.0 {
            if !first {
                write!(f, ".")?;
            }
            first = false;
            if *e == 1 {
                write!(f, "{k}")?;
            } else {
                write!(f, "{k}{e}")?;
            }
        }
        Ok(())
    }
}

/// Parses a unit string; `Err` names what is wrong.
pub fn parse_unit(s: &str) -> Result<Dim, String> {
    let s = s.trim();
    if s.is_empty() || s == "1" {
        return Ok(Dim::one());
    }
    let mut dim = Dim::one();
    let mut sign = 1i32;
    let mut cur = String::new();
    let mut depth = 0;
    let flush = |cur: &mut String, sign: i32, dim: &mut Dim| -> Result<(), String> {
        if cur.is_empty() {
            return Err(format!("unit `{s}`: empty atom"));
        }
        let (atom, exp) = split_exp(cur);
        if atom.is_empty() {
            return Err(format!("unit `{s}`: atom `{cur}` has no name"));
        }
        if atom != "1" {
            *dim = dim.mul(&Dim(BTreeMap::from([(atom, exp * sign)])));
        }
        cur.clear();
        Ok(())
    };
    let mut leading_slash = true;
    for c in s.chars() {
        match c {
            '{' => {
                depth += 1;
                cur.push(c)
            }
            '}' => {
                if depth == 0 {
                    return Err(format!("unit `{s}`: unbalanced `}}`"));
                }
                depth -= 1;
                cur.push(c)
            }
            '.' | '/' if depth == 0 => {
                if !(c == '/' && leading_slash && cur.is_empty()) {
                    flush(&mut cur, sign, &mut dim)?;
                }
                sign = if c == '/' { -1 } else { 1 };
            }
            c if c.is_whitespace() && depth == 0 => {
                return Err(format!("unit `{s}`: spaces are not allowed"))
            }
            c => cur.push(c),
        }
        leading_slash = false;
    }
    if depth != 0 {
        return Err(format!("unit `{s}`: unbalanced `{{`"));
    }
    flush(&mut cur, sign, &mut dim)?;
    Ok(dim)
}

/// `m3` → (`m`, 3), `s-1` → (`s`, -1); annotations and `10^8` keep their digits.
fn split_exp(a: &str) -> (String, i32) {
    if a.starts_with('{') || a.contains('^') || a.chars().all(|c| c.is_ascii_digit()) {
        return (a.to_string(), 1);
    }
    let bytes = a.as_bytes();
    let mut i = bytes.len();
    while i > 0 && bytes[i - 1].is_ascii_digit() {
        i -= 1;
    }
    if i > 0 && bytes[i - 1] == b'-' && i < bytes.len() {
        i -= 1;
    }
    if i == bytes.len() || i == 0 {
        return (a.to_string(), 1);
    }
    match a[i..].parse::<i32>() {
        Ok(e) => (a[..i].to_string(), e),
        Err(_) => (a.to_string(), 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn parses() {
        assert_eq!(parse_unit("ug/m3").unwrap().to_string(), "m-3.ug");
        assert_eq!(parse_unit("{event}/h").unwrap().to_string(), "h-1.{event}");
        assert!(parse_unit("%").unwrap().compatible_with(&Dim::one()));
        assert!(!parse_unit("%")
            .unwrap()
            .compatible_with(&parse_unit("min").unwrap()));
        assert_eq!(parse_unit("10^8.{record}").unwrap().0.len(), 2);
        assert!(parse_unit("{event").is_err());
        assert!(parse_unit("km h").is_err());
    }
}

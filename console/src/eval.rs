//! Evaluates a parsed query over one day's `ip_daily` batch: one boolean per row. A row matches
//! a term when any of the term's columns (or any element of a list column) matches; a column
//! the day lacks matches nothing.
use std::net::IpAddr;

use arrow::array::RecordBatch;
use scanscope_lake::tables::ip_daily::{IpColumns, IpRow};

use crate::{
    col::{Flag, Num, Ports, Text, TextList},
    fields::{self, FieldKind},
    query::{Expr, Term, Value},
};

const IP: IpColumns = IpRow::COL;

/// The rows of `b` that `e` matches.
pub fn matches(e: &Expr, b: &RecordBatch) -> Vec<bool> {
    let n = b.num_rows();
    match e {
        Expr::All => vec![true; n],
        Expr::Term(t) => term(t, b),
        Expr::Not(e) => {
            let mut m = matches(e, b);
            m.iter_mut().for_each(|x| *x = !*x);
            m
        }
        Expr::And(v) => {
            let mut m = vec![true; n];
            for e in v {
                let x = matches(e, b);
                m.iter_mut().zip(x).for_each(|(a, b)| *a &= b);
            }
            m
        }
        Expr::Or(v) => {
            if let Some(m) = numbers_of_one_field(v, b) {
                return m;
            }
            let mut m = vec![false; n];
            for e in v {
                let x = matches(e, b);
                m.iter_mut().zip(x).for_each(|(a, b)| *a |= b);
            }
            m
        }
    }
}

/// The `ip_daily` columns evaluating `e` reads.
pub fn columns(e: &Expr) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut add = |c: &str| {
        if !out.iter().any(|x| x == c) {
            out.push(c.to_string());
        }
    };
    fn walk(e: &Expr, add: &mut dyn FnMut(&str)) {
        match e {
            Expr::All => {}
            Expr::Term(t) => match fields::find(&t.field) {
                Some(f) if f.kind == FieldKind::Class => {
                    Classes::COLUMNS.iter().for_each(|c| add(c))
                }
                Some(f) => f.columns.iter().for_each(|c| add(c)),
                None => add(&t.field),
            },
            Expr::Not(e) => walk(e, add),
            Expr::And(v) | Expr::Or(v) => v.iter().for_each(|e| walk(e, add)),
        }
    }
    walk(e, &mut add);
    out
}

fn or_into(acc: &mut Option<Vec<bool>>, x: Vec<bool>) {
    match acc {
        None => *acc = Some(x),
        Some(a) => a.iter_mut().zip(x).for_each(|(a, b)| *a |= b),
    }
}

/// Rows where a number column (or any element of a list column) is within one of `bounds`
/// (inclusive ranges).
fn number_column(b: &RecordBatch, c: &str, bounds: &[(u64, u64)]) -> Vec<bool> {
    let n = b.num_rows();
    let hit = |x: u64| bounds.iter().any(|(lo, hi)| *lo <= x && x <= *hi);
    match b.column_by_name(c).map(|a| a.data_type()) {
        None => vec![false; n],
        Some(arrow::datatypes::DataType::List(_)) => {
            // Each bound as a u16 range (low, width).
            let ranges: Vec<(u16, u16)> = bounds
                .iter()
                .filter(|(lo, _)| *lo <= u64::from(u16::MAX))
                .map(|(lo, hi)| {
                    (
                        *lo as u16,
                        (*hi).min(u64::from(u16::MAX)) as u16 - *lo as u16,
                    )
                })
                .collect();
            Ports::of(b, c).any_within(n, &ranges)
        }
        Some(_) => {
            let num = Num::of(b, c);
            (0..n).map(|i| num.get(i).is_some_and(hit)).collect()
        }
    }
}

/// `port:23 OR port:2323 OR …` (number terms of one field): one pass over each column.
fn numbers_of_one_field(v: &[Expr], b: &RecordBatch) -> Option<Vec<bool>> {
    let mut field = None;
    let mut bounds = Vec::new();
    for e in v {
        let Expr::Term(Term {
            field: f,
            value: Value::Number(cmp),
        }) = e
        else {
            return None;
        };
        if field.is_some_and(|x| x != f) {
            return None;
        }
        field = Some(f);
        bounds.push(cmp.bounds());
    }
    let (_, columns) = field_columns(field?, &Value::Number(crate::query::Cmp::Eq(0)));
    let mut acc = None;
    for c in columns {
        or_into(&mut acc, number_column(b, c, &bounds));
    }
    Some(acc.unwrap_or_else(|| vec![false; b.num_rows()]))
}

/// The kind and columns of a term's field (a user rule's field: its own column, typed by the
/// parser).
fn field_columns<'a>(field: &'a str, value: &Value) -> (FieldKind, Vec<&'a str>) {
    match fields::find(field) {
        Some(f) => (f.kind, f.columns.to_vec()),
        None => (
            match value {
                Value::Bool(_) => FieldKind::Bool,
                Value::Number(_) => FieldKind::Number { max: u64::MAX },
                _ => FieldKind::Text,
            },
            vec![field],
        ),
    }
}

fn term(t: &Term, b: &RecordBatch) -> Vec<bool> {
    let n = b.num_rows();
    let (kind, columns) = field_columns(&t.field, &t.value);
    if kind == FieldKind::Class {
        let Value::Text(p) = &t.value else {
            return vec![false; n];
        };
        let c = Classes::of(b);
        return (0..n).map(|i| p.matches(c.get(i))).collect();
    }
    let mut acc = None;
    for c in columns {
        let x = match (&t.value, b.column_by_name(c).map(|a| a.data_type().clone())) {
            (_, None) => vec![false; n],
            (Value::Net(net), _) => {
                // An IPv4 network of /8 or longer fixes the address text's first octet: rows
                // without it are passed over unparsed.
                let lead = match net {
                    ipnet::IpNet::V4(v4) if v4.prefix_len() >= 8 => {
                        format!("{}.", v4.network().octets()[0])
                    }
                    _ => String::new(),
                };
                let t = Text::of(b, c);
                t.test(n, |s| {
                    s.starts_with(&lead) && s.parse::<IpAddr>().is_ok_and(|a| net.contains(&a))
                })
            }
            (Value::Text(p), Some(arrow::datatypes::DataType::List(_))) => {
                TextList::of(b, c).test(n, |s| p.matches(s))
            }
            (Value::Text(p), _) => Text::of(b, c).test(n, |s| p.matches(s)),
            (Value::Number(cmp), _) => number_column(b, c, &[cmp.bounds()]),
            (Value::Bool(v), _) => {
                let f = Flag::of(b, c);
                (0..n).map(|i| f.get(i) == Some(*v)).collect()
            }
        };
        or_into(&mut acc, x);
    }
    acc.unwrap_or_else(|| vec![false; n])
}

/// The columns the classification of a row is derived from ([`fields::class_of`]).
#[derive(Debug, Clone, Copy)]
pub struct Classes<'a> {
    org: Text<'a>,
    tags: TextList<'a>,
    logins: Num<'a>,
    mysql: Num<'a>,
}

impl<'a> Classes<'a> {
    /// The columns a class is derived from.
    pub const COLUMNS: [&'static str; 4] =
        [IP.org, IP.tags, IP.login_attempts, IP.mysql_login_attempts];

    pub fn of(b: &'a RecordBatch) -> Self {
        Classes {
            org: Text::of(b, IP.org),
            tags: TextList::of(b, IP.tags),
            logins: Num::of(b, IP.login_attempts),
            mysql: Num::of(b, IP.mysql_login_attempts),
        }
    }

    /// The class of row `i`.
    pub fn get(&self, i: usize) -> &'static str {
        let logins = self.logins.or0(i) + self.mysql.or0(i);
        fields::class_of(self.org.get(i), self.tags.get(i), logins)
    }
}

//! The query language, in the spirit of GreyNoise's GNQL: `field:value` terms side by side are
//! ANDed, `OR` and `AND` combine them (`AND` binds tighter), `-term` or `NOT term` negates,
//! parentheses group, `"…"` quotes a value with spaces, `*` is a wildcard in text values,
//! `>=`, `>`, `<=`, `<` and `a..b` compare numbers, and a bare word searches the payload
//! summaries. The fields are declared once in [`crate::fields::FIELDS`]; docs/api.md lists them
//! (checked by a test).
//!
//! Parsing gives an [`Expr`] whose terms are already checked against the fields (a number for a
//! numeric field, a CIDR for `ip:`, …), or a [`QueryError`] with the column where it failed.
use std::fmt;

use ipnet::IpNet;

use crate::fields::{self, FieldKind};

/// The longest query accepted, in characters.
pub const MAX_QUERY_CHARS: usize = 2_000;
/// The deepest nesting of parentheses and negations accepted.
pub const MAX_DEPTH: usize = 32;

/// A parsed query.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// Every row (the empty query).
    All,
    Term(Term),
    Not(Box<Expr>),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

/// One checked `field:value` term.
#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    /// The field's canonical name (one of [`fields::FIELDS`], `text` for a bare word, or a user
    /// rule's field).
    pub field: String,
    pub value: Value,
}

/// A term's value, of the type its field takes.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Text, lower-cased; `*` matches any run of characters.
    Text(Pattern),
    Number(Cmp),
    Bool(bool),
    Net(IpNet),
}

/// A comparison of a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq(u64),
    Ge(u64),
    Gt(u64),
    Le(u64),
    Lt(u64),
    /// Both ends included.
    Range(u64, u64),
}

impl Cmp {
    /// The values that satisfy the comparison, both ends included (empty when `lo > hi`).
    pub fn bounds(self) -> (u64, u64) {
        match self {
            Cmp::Eq(v) => (v, v),
            Cmp::Ge(v) => (v, u64::MAX),
            Cmp::Gt(v) => v.checked_add(1).map_or((1, 0), |lo| (lo, u64::MAX)),
            Cmp::Le(v) => (0, v),
            Cmp::Lt(v) => v.checked_sub(1).map_or((1, 0), |hi| (0, hi)),
            Cmp::Range(a, b) => (a, b),
        }
    }

    /// Whether `x` satisfies the comparison.
    pub fn test(self, x: u64) -> bool {
        let (lo, hi) = self.bounds();
        lo <= x && x <= hi
    }
}

/// A case-insensitive text pattern: literal pieces between `*` wildcards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    /// The value as written, lower-cased.
    pub text: String,
    pieces: Vec<String>,
    anchored_start: bool,
    anchored_end: bool,
}

impl Pattern {
    /// A pattern from a value; `*` is the only wildcard.
    pub fn new(value: &str) -> Pattern {
        let text = value.to_lowercase();
        let anchored_start = !text.starts_with('*');
        let anchored_end = !text.ends_with('*');
        let pieces = text
            .split('*')
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        Pattern {
            text,
            pieces,
            anchored_start,
            anchored_end,
        }
    }

    /// A pattern matching values that contain `value` (free text).
    pub fn contains(value: &str) -> Pattern {
        Pattern::new(&format!("*{}*", value.trim_matches('*')))
    }

    /// Whether the pattern has no wildcard (an exact, case-insensitive match).
    pub fn is_exact(&self) -> bool {
        self.anchored_start && self.anchored_end && self.pieces.len() <= 1
    }

    /// Whether `s` matches (case-insensitively).
    pub fn matches(&self, s: &str) -> bool {
        if s.is_ascii() {
            if s.bytes().any(|b| b.is_ascii_uppercase()) {
                self.matches_lower(&s.to_ascii_lowercase())
            } else {
                self.matches_lower(s)
            }
        } else {
            self.matches_lower(&s.to_lowercase())
        }
    }

    fn matches_lower(&self, s: &str) -> bool {
        if self.pieces.is_empty() {
            // "" or only wildcards.
            return !(self.anchored_start && self.anchored_end) || s.is_empty();
        }
        let mut rest = s;
        let last = self.pieces.len() - 1;
        for (i, p) in self.pieces.iter().enumerate() {
            if i == 0 && self.anchored_start {
                let Some(r) = rest.strip_prefix(p.as_str()) else {
                    return false;
                };
                rest = r;
                if i == last && self.anchored_end {
                    return rest.is_empty();
                }
                continue;
            }
            if i == last && self.anchored_end {
                return rest.ends_with(p.as_str());
            }
            match rest.find(p.as_str()) {
                Some(at) => rest = &rest[at + p.len()..],
                None => return false,
            }
        }
        true
    }
}

/// Why a query was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column {column}: {kind}")]
pub struct QueryError {
    /// 1-based, in characters.
    pub column: usize,
    pub kind: QueryErrorKind,
}

/// The reasons a query is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryErrorKind {
    #[error("the query is longer than {MAX_QUERY_CHARS} characters")]
    TooLong,
    #[error("parentheses or negations nested deeper than {MAX_DEPTH}")]
    TooDeep,
    #[error("unknown field {0:?} (docs/api.md lists the fields)")]
    UnknownField(String),
    #[error("{0}: a value is expected after ':'")]
    MissingValue(String),
    #[error("a closing '\"' is missing")]
    UnclosedQuote,
    #[error("a closing ')' is missing")]
    UnclosedParen,
    #[error("unexpected ')'")]
    UnexpectedParen,
    #[error("{0} needs a term after it")]
    DanglingOperator(&'static str),
    #[error("{field}: {value:?} is not a number (numbers: 7, >=7, >7, <=7, <7, 1..1024)")]
    NotANumber { field: String, value: String },
    #[error("{field}: {value:?} is not true or false")]
    NotABool { field: String, value: String },
    #[error("{field}: {value:?} is not an address or a CIDR")]
    NotANet { field: String, value: String },
    #[error("{field}: {value} is out of range (at most {max})")]
    OutOfRange {
        field: String,
        value: String,
        max: u64,
    },
    #[error("{field}: comparisons are for numbers; this field takes text")]
    ComparisonOnText { field: String },
    #[error("an empty value")]
    Empty,
}

impl QueryErrorKind {
    fn at(self, column: usize) -> QueryError {
        QueryError { column, kind: self }
    }
}

/// A user rule's field the lake has (name and type), so `name:value` can be checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserFieldType {
    Bool,
    Int,
    String,
}

/// Parses `q`. `user_field` tells the type of a user rule's field by name (None = unknown).
pub fn parse(
    q: &str,
    user_field: &dyn Fn(&str) -> Option<UserFieldType>,
) -> Result<Expr, QueryError> {
    let chars: Vec<char> = q.chars().collect();
    if chars.len() > MAX_QUERY_CHARS {
        return Err(QueryErrorKind::TooLong.at(MAX_QUERY_CHARS + 1));
    }
    let tokens = lex(&chars)?;
    let mut p = Parser {
        tokens,
        at: 0,
        depth: 0,
        user_field,
        end: chars.len() + 1,
    };
    if p.tokens.is_empty() {
        return Ok(Expr::All);
    }
    let e = p.or()?;
    match p.peek() {
        None => Ok(e),
        Some(t) if t.tok == Tok::Close => Err(QueryErrorKind::UnexpectedParen.at(t.column)),
        // `or` stops only at ')' or the end.
        Some(t) => Err(QueryErrorKind::UnexpectedParen.at(t.column)),
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    Minus,
    And,
    Or,
    Not,
    /// A word or `field:value`; `field` is None for a bare word. `quoted` values are never
    /// keywords or comparisons.
    Word {
        field: Option<String>,
        value: String,
        quoted: bool,
        value_column: usize,
    },
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    column: usize,
}

fn lex(chars: &[char]) -> Result<Vec<Token>, QueryError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let column = i + 1;
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => {
                out.push(Token {
                    tok: Tok::Open,
                    column,
                });
                i += 1;
            }
            ')' => {
                out.push(Token {
                    tok: Tok::Close,
                    column,
                });
                i += 1;
            }
            '-' => {
                out.push(Token {
                    tok: Tok::Minus,
                    column,
                });
                i += 1;
            }
            _ => {
                // A word, possibly `field:value`, where the value may be quoted.
                let (first, quoted_first, next) = read_piece(chars, i, true)?;
                i = next;
                if !quoted_first && i < chars.len() && chars[i] == ':' {
                    let field = first;
                    i += 1;
                    let value_column = i + 1;
                    if i >= chars.len() || chars[i].is_whitespace() || chars[i] == ')' {
                        return Err(QueryErrorKind::MissingValue(field).at(column));
                    }
                    let (value, quoted, next) = read_piece(chars, i, false)?;
                    i = next;
                    out.push(Token {
                        tok: Tok::Word {
                            field: Some(field),
                            value,
                            quoted,
                            value_column,
                        },
                        column,
                    });
                    continue;
                }
                let tok = match (quoted_first, first.as_str()) {
                    (false, "AND" | "and") => Tok::And,
                    (false, "OR" | "or") => Tok::Or,
                    (false, "NOT" | "not") => Tok::Not,
                    _ => Tok::Word {
                        field: None,
                        value: first,
                        quoted: quoted_first,
                        value_column: column,
                    },
                };
                out.push(Token { tok, column });
            }
        }
    }
    Ok(out)
}

/// Reads a bare piece (up to whitespace, `(`, `)`, and `:` when `name`: a value keeps its
/// colons, as IPv6 addresses have them) or a quoted one; returns the text, whether it was
/// quoted, and the index after it.
fn read_piece(
    chars: &[char],
    mut i: usize,
    name: bool,
) -> Result<(String, bool, usize), QueryError> {
    if chars[i] == '"' {
        let start = i;
        i += 1;
        let mut s = String::new();
        while i < chars.len() {
            match chars[i] {
                '"' => return Ok((s, true, i + 1)),
                '\\' if i + 1 < chars.len() => {
                    s.push(chars[i + 1]);
                    i += 2;
                }
                c => {
                    s.push(c);
                    i += 1;
                }
            }
        }
        return Err(QueryErrorKind::UnclosedQuote.at(start + 1));
    }
    let mut s = String::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() || c == '(' || c == ')' || (c == ':' && name) {
            break;
        }
        s.push(c);
        i += 1;
    }
    Ok((s, false, i))
}

struct Parser<'a> {
    tokens: Vec<Token>,
    at: usize,
    depth: usize,
    user_field: &'a dyn Fn(&str) -> Option<UserFieldType>,
    end: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn deeper(&mut self, column: usize) -> Result<(), QueryError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(QueryErrorKind::TooDeep.at(column));
        }
        Ok(())
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut parts = vec![self.and()?];
        while let Some(t) = self.peek() {
            if t.tok != Tok::Or {
                break;
            }
            let column = t.column;
            self.at += 1;
            if self.at_end_of_group() {
                return Err(QueryErrorKind::DanglingOperator("OR").at(column));
            }
            parts.push(self.and()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or(Expr::All)
        } else {
            Expr::Or(parts)
        })
    }

    fn at_end_of_group(&self) -> bool {
        matches!(
            self.peek().map(|t| &t.tok),
            None | Some(Tok::Close | Tok::Or | Tok::And)
        )
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut parts = vec![self.unary()?];
        loop {
            match self.peek().map(|t| (t.tok.clone(), t.column)) {
                None | Some((Tok::Close | Tok::Or, _)) => break,
                Some((Tok::And, column)) => {
                    self.at += 1;
                    if self.at_end_of_group() {
                        return Err(QueryErrorKind::DanglingOperator("AND").at(column));
                    }
                }
                Some(_) => {}
            }
            parts.push(self.unary()?);
        }
        Ok(if parts.len() == 1 {
            parts.pop().unwrap_or(Expr::All)
        } else {
            Expr::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        let Some(t) = self.peek().cloned() else {
            return Err(QueryErrorKind::Empty.at(self.end));
        };
        match t.tok {
            Tok::Minus | Tok::Not => {
                let name = if t.tok == Tok::Minus { "-" } else { "NOT" };
                self.at += 1;
                if matches!(
                    self.peek().map(|t| &t.tok),
                    None | Some(Tok::Close | Tok::Or | Tok::And)
                ) {
                    return Err(QueryErrorKind::DanglingOperator(name).at(t.column));
                }
                self.deeper(t.column)?;
                let e = self.unary()?;
                self.depth -= 1;
                Ok(Expr::Not(Box::new(e)))
            }
            Tok::Open => {
                self.at += 1;
                self.deeper(t.column)?;
                if matches!(self.peek().map(|t| &t.tok), Some(Tok::Close)) {
                    return Err(QueryErrorKind::Empty.at(t.column + 1));
                }
                if self.peek().is_none() {
                    return Err(QueryErrorKind::UnclosedParen.at(t.column));
                }
                let e = self.or()?;
                match self.peek() {
                    Some(c) if c.tok == Tok::Close => self.at += 1,
                    _ => return Err(QueryErrorKind::UnclosedParen.at(t.column)),
                }
                self.depth -= 1;
                Ok(e)
            }
            Tok::Close => Err(QueryErrorKind::UnexpectedParen.at(t.column)),
            Tok::And => Err(QueryErrorKind::DanglingOperator("AND").at(t.column)),
            Tok::Or => Err(QueryErrorKind::DanglingOperator("OR").at(t.column)),
            Tok::Word {
                field,
                value,
                quoted,
                value_column,
            } => {
                self.at += 1;
                self.term(field, value, quoted, t.column, value_column)
                    .map(Expr::Term)
            }
        }
    }

    fn term(
        &self,
        field: Option<String>,
        value: String,
        quoted: bool,
        column: usize,
        value_column: usize,
    ) -> Result<Term, QueryError> {
        let Some(name) = field else {
            if value.is_empty() {
                return Err(QueryErrorKind::Empty.at(column));
            }
            return Ok(Term {
                field: fields::FREE_TEXT.to_string(),
                value: Value::Text(Pattern::contains(&value)),
            });
        };
        let lower = name.to_ascii_lowercase();
        let kind = match fields::find(&lower) {
            Some(f) => f.kind,
            None => match (self.user_field)(&name) {
                Some(UserFieldType::Bool) => FieldKind::Bool,
                Some(UserFieldType::Int) => FieldKind::Number {
                    max: i64::MAX as u64,
                },
                Some(UserFieldType::String) => FieldKind::Text,
                None => return Err(QueryErrorKind::UnknownField(name).at(column)),
            },
        };
        let canonical = fields::find(&lower).map_or(name.clone(), |f| f.name.to_string());
        if value.is_empty() {
            return Err(QueryErrorKind::Empty.at(value_column));
        }
        let value = match kind {
            FieldKind::Text | FieldKind::Class => {
                if !quoted && starts_with_comparison(&value) {
                    return Err(
                        QueryErrorKind::ComparisonOnText { field: canonical }.at(value_column)
                    );
                }
                Value::Text(Pattern::new(&value))
            }
            FieldKind::Number { max } => {
                Value::Number(number(&canonical, &value, max, value_column)?)
            }
            FieldKind::Bool => Value::Bool(match value.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => true,
                "false" | "no" | "0" => false,
                _ => {
                    return Err(QueryErrorKind::NotABool {
                        field: canonical,
                        value,
                    }
                    .at(value_column));
                }
            }),
            FieldKind::Net => Value::Net(net(&canonical, &value, value_column)?),
        };
        Ok(Term {
            field: canonical,
            value,
        })
    }
}

fn starts_with_comparison(v: &str) -> bool {
    v.starts_with('>') || v.starts_with('<')
}

fn number(field: &str, v: &str, max: u64, column: usize) -> Result<Cmp, QueryError> {
    let bad = || {
        QueryErrorKind::NotANumber {
            field: field.to_string(),
            value: v.to_string(),
        }
        .at(column)
    };
    let num = |s: &str| -> Result<u64, QueryError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let n: u64 = s.parse().map_err(|_| bad())?;
        if n > max {
            return Err(QueryErrorKind::OutOfRange {
                field: field.to_string(),
                value: s.to_string(),
                max,
            }
            .at(column));
        }
        Ok(n)
    };
    if let Some(r) = v.strip_prefix(">=") {
        return Ok(Cmp::Ge(num(r)?));
    }
    if let Some(r) = v.strip_prefix("<=") {
        return Ok(Cmp::Le(num(r)?));
    }
    if let Some(r) = v.strip_prefix('>') {
        return Ok(Cmp::Gt(num(r)?));
    }
    if let Some(r) = v.strip_prefix('<') {
        return Ok(Cmp::Lt(num(r)?));
    }
    if let Some((a, b)) = v.split_once("..") {
        let (a, b) = (num(a)?, num(b)?);
        return Ok(Cmp::Range(a.min(b), a.max(b)));
    }
    Ok(Cmp::Eq(num(v)?))
}

fn net(field: &str, v: &str, column: usize) -> Result<IpNet, QueryError> {
    if let Ok(n) = v.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    if let Ok(a) = v.parse::<std::net::IpAddr>() {
        return Ok(IpNet::from(a));
    }
    Err(QueryErrorKind::NotANet {
        field: field.to_string(),
        value: v.to_string(),
    }
    .at(column))
}

impl fmt::Display for Expr {
    /// The query in canonical form (what the UI shows as "the plan").
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Expr::All => write!(f, "*"),
            Expr::Term(t) => write!(f, "{}:{}", t.field, t.value),
            Expr::Not(e) => write!(f, "NOT {e}"),
            Expr::And(v) | Expr::Or(v) => {
                let op = if matches!(self, Expr::And(_)) {
                    " AND "
                } else {
                    " OR "
                };
                write!(f, "(")?;
                for (i, e) in v.iter().enumerate() {
                    if i > 0 {
                        write!(f, "{op}")?;
                    }
                    write!(f, "{e}")?;
                }
                write!(f, ")")
            }
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Text(p) => write!(f, "{:?}", p.text),
            Value::Number(c) => match c {
                Cmp::Eq(v) => write!(f, "{v}"),
                Cmp::Ge(v) => write!(f, ">={v}"),
                Cmp::Gt(v) => write!(f, ">{v}"),
                Cmp::Le(v) => write!(f, "<={v}"),
                Cmp::Lt(v) => write!(f, "<{v}"),
                Cmp::Range(a, b) => write!(f, "{a}..{b}"),
            },
            Value::Bool(b) => write!(f, "{b}"),
            Value::Net(n) => write!(f, "{n}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_user(_: &str) -> Option<UserFieldType> {
        None
    }

    fn p(q: &str) -> Result<Expr, QueryError> {
        parse(q, &no_user)
    }

    fn plan(q: &str) -> String {
        p(q).unwrap_or_else(|e| panic!("{q}: {e}")).to_string()
    }

    fn err(q: &str) -> (usize, String) {
        let e = p(q).expect_err(q);
        (e.column, e.kind.to_string())
    }

    #[test]
    fn terms_side_by_side_are_anded() {
        assert_eq!(plan("port:23 tool:mirai"), r#"(port:23 AND tool:"mirai")"#);
        assert_eq!(
            plan("port:23 AND tool:mirai"),
            r#"(port:23 AND tool:"mirai")"#
        );
        assert_eq!(plan(""), "*");
        assert_eq!(plan("   "), "*");
    }

    #[test]
    fn or_binds_looser_than_and_and_parentheses_group() {
        assert_eq!(
            plan("port:22 OR port:23 tool:mirai"),
            r#"(port:22 OR (port:23 AND tool:"mirai"))"#
        );
        assert_eq!(
            plan("(port:22 or port:23) tool:mirai"),
            r#"((port:22 OR port:23) AND tool:"mirai")"#
        );
    }

    #[test]
    fn negation_with_minus_or_not() {
        assert_eq!(plan("-org:censys"), r#"NOT org:"censys""#);
        assert_eq!(
            plan("NOT org:censys port:80"),
            r#"(NOT org:"censys" AND port:80)"#
        );
        assert_eq!(plan("-(port:22 OR port:23)"), "NOT (port:22 OR port:23)");
        assert_eq!(plan("--scanner:true"), "NOT NOT scanner:true");
    }

    #[test]
    fn values_of_each_kind() {
        assert_eq!(plan("breadth:>=7"), "breadth:>=7");
        assert_eq!(plan("breadth:>7"), "breadth:>7");
        assert_eq!(plan("packets:<=100"), "packets:<=100");
        assert_eq!(plan("packets:<100"), "packets:<100");
        assert_eq!(plan("port:1..1024"), "port:1..1024");
        assert_eq!(
            plan("port:1024..1"),
            "port:1..1024",
            "a reversed range is put right"
        );
        assert_eq!(plan("scanner:true tor:no"), "(scanner:true AND tor:false)");
        assert_eq!(plan("ip:198.51.100.7/24"), "ip:198.51.100.0/24");
        assert_eq!(plan("ip:198.51.100.7"), "ip:198.51.100.7/32");
        assert_eq!(plan("ip:2001:db8::1"), "ip:2001:db8::1/128");
        assert_eq!(plan("ip:2001:db8::/32"), "ip:2001:db8::/32");
        assert_eq!(plan(r#"ua:"*zgrab*""#), r#"ua:"*zgrab*""#);
        assert_eq!(
            plan("rdns:*.Shodan.IO"),
            r#"rdns:"*.shodan.io""#,
            "text is lower-cased"
        );
        assert_eq!(plan(r#"url:"*/shell*""#), r#"url:"*/shell*""#);
        assert_eq!(plan(r#"tag:"a \"b\"""#), r#"tag:"a \"b\"""#);
        assert_eq!(
            plan("country:CN asn:4134"),
            r#"(country:"cn" AND asn:4134)"#
        );
        assert_eq!(plan("kind:udp"), r#"kind:"udp""#);
    }

    #[test]
    fn aliases_name_their_field() {
        assert_eq!(plan("PORT:23"), "port:23");
        assert_eq!(plan("useragent:curl"), r#"ua:"curl""#);
        assert_eq!(plan("classification:malicious"), r#"class:"malicious""#);
    }

    #[test]
    fn a_bare_word_is_free_text() {
        assert_eq!(plan("wget"), r#"text:"*wget*""#);
        assert_eq!(
            plan(r#""/bin/busybox MIRAI""#),
            r#"text:"*/bin/busybox mirai*""#
        );
        assert_eq!(
            plan(r#""OR""#),
            r#"text:"*or*""#,
            "a quoted keyword is a word"
        );
    }

    #[test]
    fn user_rule_fields_take_their_type() {
        let user = |n: &str| match n {
            "db_ports" => Some(UserFieldType::Int),
            "is_db" => Some(UserFieldType::Bool),
            "who" => Some(UserFieldType::String),
            _ => None,
        };
        let q = parse("db_ports:>=2 is_db:true who:x*", &user).unwrap();
        assert_eq!(
            q.to_string(),
            r#"(db_ports:>=2 AND is_db:true AND who:"x*")"#
        );
        assert_eq!(
            parse("is_db:maybe", &user).unwrap_err().kind,
            QueryErrorKind::NotABool {
                field: "is_db".into(),
                value: "maybe".into()
            }
        );
    }

    #[test]
    fn every_error_says_where() {
        assert_eq!(
            err("prot:23"),
            (
                1,
                r#"unknown field "prot" (docs/api.md lists the fields)"#.into()
            )
        );
        assert_eq!(
            err("port:23 prot:23"),
            (
                9,
                r#"unknown field "prot" (docs/api.md lists the fields)"#.into()
            )
        );
        assert_eq!(
            err("port: 23"),
            (1, "port: a value is expected after ':'".into())
        );
        assert_eq!(
            err("port:"),
            (1, "port: a value is expected after ':'".into())
        );
        assert_eq!(err(r#"ua:"zgrab"#), (4, "a closing '\"' is missing".into()));
        assert_eq!(err("(port:23"), (1, "a closing ')' is missing".into()));
        assert_eq!(err("port:23)"), (8, "unexpected ')'".into()));
        assert_eq!(err("()"), (2, "an empty value".into()));
        assert_eq!(err("port:23 OR"), (9, "OR needs a term after it".into()));
        assert_eq!(err("port:23 AND"), (9, "AND needs a term after it".into()));
        assert_eq!(err("OR port:23"), (1, "OR needs a term after it".into()));
        assert_eq!(err("port:23 -"), (9, "- needs a term after it".into()));
        assert_eq!(err("NOT"), (1, "NOT needs a term after it".into()));
        assert_eq!(
            err("port:http"),
            (
                6,
                r#"port: "http" is not a number (numbers: 7, >=7, >7, <=7, <7, 1..1024)"#.into()
            )
        );
        assert_eq!(
            err("port:70000"),
            (6, "port: 70000 is out of range (at most 65535)".into())
        );
        assert_eq!(
            err("breadth:>=x"),
            (
                9,
                r#"breadth: ">=x" is not a number (numbers: 7, >=7, >7, <=7, <7, 1..1024)"#.into()
            )
        );
        assert_eq!(
            err("scanner:maybe"),
            (9, r#"scanner: "maybe" is not true or false"#.into())
        );
        assert_eq!(
            err("ip:300.1.1.1"),
            (4, r#"ip: "300.1.1.1" is not an address or a CIDR"#.into())
        );
        assert_eq!(
            err("org:>5"),
            (
                5,
                "org: comparisons are for numbers; this field takes text".into()
            )
        );
        assert_eq!(err(r#"org:"""#), (5, "an empty value".into()));
        let long = "a ".repeat(MAX_QUERY_CHARS);
        assert_eq!(
            err(&long).1,
            format!("the query is longer than {MAX_QUERY_CHARS} characters")
        );
        let deep = format!(
            "{}port:1{}",
            "(".repeat(MAX_DEPTH + 1),
            ")".repeat(MAX_DEPTH + 1)
        );
        assert_eq!(
            err(&deep),
            (
                MAX_DEPTH + 1,
                format!("parentheses or negations nested deeper than {MAX_DEPTH}")
            )
        );
        let nots = format!("{}port:1", "-".repeat(MAX_DEPTH + 1));
        assert_eq!(
            err(&nots).1,
            format!("parentheses or negations nested deeper than {MAX_DEPTH}")
        );
        // Columns count characters, not bytes.
        assert_eq!(err("ü prot:1").0, 3);
    }

    #[test]
    fn patterns_match_case_insensitively_with_wildcards() {
        let m = |p: &str, s: &str| Pattern::new(p).matches(s);
        assert!(m("censys", "Censys"));
        assert!(!m("censys", "censys2"));
        assert!(m("*.shodan.io", "census1.shodan.io"));
        assert!(!m("*.shodan.io", "shodan.io.evil"));
        assert!(m("*zgrab*", "Mozilla/5.0 zgrab/0.x"));
        assert!(m("mozilla*zgrab*", "Mozilla/5.0 zgrab/0.x"));
        assert!(!m("mozilla*zgrab", "Mozilla/5.0 zgrab/0.x"));
        assert!(m("a*b*c", "abc"));
        assert!(!m("a*b*c", "acb"));
        assert!(m("ab*ab", "abab"));
        assert!(!m("ab*ab", "aba"));
        assert!(m("*", "anything"));
        assert!(m("ÄÖ*", "äöx"));
        assert!(Pattern::new("censys").is_exact() && !Pattern::new("c*").is_exact());
    }

    #[test]
    fn every_fields_example_parses() {
        for f in fields::FIELDS {
            p(f.example).unwrap_or_else(|e| panic!("{}: {e}", f.example));
        }
    }

    #[test]
    fn comparisons() {
        assert!(Cmp::Ge(7).test(7) && !Cmp::Gt(7).test(7) && Cmp::Range(1, 3).test(3));
        assert!(!Cmp::Lt(0).test(0) && Cmp::Le(0).test(0) && !Cmp::Range(1, 3).test(4));
    }
}

//! User rules: tags and extra `ip_daily` columns from CEL expressions (Common Expression
//! Language, <https://cel.dev>), evaluated over each finished `ip_daily` row. Operators add them
//! in the rollup configuration without recompiling.
//!
//! Every built-in column of `ip_daily` is a variable, bound from the table's one declaration
//! (`scanscope_lake::tables::ip_daily::IpRow`), so a new column is a new variable: counts are
//! ints, lists are lists (a null list is empty), timestamps are ints of microseconds since the
//! Unix epoch, missing values are null. E.g. `27017 in tcp_ports && port_count >= 3`,
//! `http_url.exists(u, u.contains("/.env"))` or `last_seen - first_seen > 3600000000`.
use std::sync::Arc;

use cel::{Context, ExecutionError, Program, Value};
use scanscope_lake::{
    table::{Cell, ColumnType},
    tables::ip_daily::{IpRow, UserType, UserValue},
};
use serde::Deserialize;

/// A user tag: added to `tags` when `when` is true.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TagRule {
    pub name: String,
    pub when: String,
}

/// A user column of `ip_daily`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: UserType,
    pub expr: String,
}

/// A rule that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("rule {name:?} does not compile: {source}")]
    Compile {
        name: String,
        #[source]
        source: Box<cel::ParseErrors>,
    },
    #[error("rule {name:?} names an unknown variable or function: {reference}")]
    Unknown { name: String, reference: String },
}

impl RuleError {
    /// The rule's name.
    pub fn name(&self) -> &str {
        match self {
            RuleError::Compile { name, .. } | RuleError::Unknown { name, .. } => name,
        }
    }
}

/// Why a rule gave no value for a row.
#[derive(Debug, Clone)]
enum Failure {
    WrongType { got: String, want: &'static str },
    Execution(ExecutionError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::WrongType { got, want } => write!(f, "gave {got}, not {want}"),
            Failure::Execution(e) => write!(f, "{e}"),
        }
    }
}

/// Compiled rules, and per-rule evaluation failures of the current run.
#[derive(Debug)]
pub struct Rules {
    tags: Vec<(String, Program)>,
    fields: Vec<(FieldRule, Program)>,
    /// (rule name, failures, first failure)
    pub failures: Vec<(String, u64, String)>,
}

impl Rules {
    /// Compiles all rules; the first that fails is the error. Every rule is also run once on
    /// an empty row, so an unknown variable stops the run before it reads anything.
    pub fn compile(tags: &[TagRule], fields: &[FieldRule]) -> Result<Rules, RuleError> {
        let comp = |name: &str, src: &str| {
            Program::compile(src).map_err(|e| RuleError::Compile {
                name: name.to_string(),
                source: Box::new(e),
            })
        };
        let mut r = Rules {
            tags: Vec::new(),
            fields: Vec::new(),
            failures: Vec::new(),
        };
        for t in tags {
            r.tags.push((t.name.clone(), comp(&t.name, &t.when)?));
        }
        for f in fields {
            r.fields.push((f.clone(), comp(&f.name, &f.expr)?));
        }
        let probe = IpRow::default();
        for (name, failure) in r.evaluate(&probe).errors {
            if let Failure::Execution(ExecutionError::UndeclaredReference(reference)) = failure {
                return Err(RuleError::Unknown {
                    name,
                    reference: reference.to_string(),
                });
            }
        }
        Ok(r)
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.fields.is_empty()
    }

    /// The user fields (name, type), in column order.
    pub fn fields(&self) -> Vec<(&str, UserType)> {
        self.fields
            .iter()
            .map(|(f, _)| (f.name.as_str(), f.ty))
            .collect()
    }

    /// Applies the rules to `row`: tags appended to `row.tags`, fields to `row.user`.
    pub fn apply(&mut self, row: &mut IpRow) {
        if self.is_empty() {
            return;
        }
        let out = self.evaluate(row);
        for (name, err) in out.errors {
            match self.failures.iter_mut().find(|(n, _, _)| *n == name) {
                Some((_, c, _)) => *c += 1,
                None => self.failures.push((name, 1, err.to_string())),
            }
        }
        row.tags.extend(out.tags);
        row.user = out.fields;
    }

    fn evaluate(&self, row: &IpRow) -> Evaluated {
        let mut ctx = Context::default();
        bind(&mut ctx, row);
        let mut out = Evaluated::default();
        for (name, p) in &self.tags {
            match p.execute(&ctx) {
                Ok(Value::Bool(true)) => out.tags.push(name.clone()),
                Ok(Value::Bool(false)) => {}
                Ok(v) => out.errors.push((
                    name.clone(),
                    Failure::WrongType {
                        got: format!("{v:?}"),
                        want: "a bool",
                    },
                )),
                Err(e) => out.errors.push((name.clone(), Failure::Execution(e))),
            }
        }
        for (f, p) in &self.fields {
            let v = match (f.ty, p.execute(&ctx)) {
                (_, Ok(Value::Null)) => UserValue::Null,
                (UserType::Bool, Ok(Value::Bool(b))) => UserValue::Bool(b),
                (UserType::Int, Ok(Value::Int(i))) => UserValue::Int(i),
                (UserType::Int, Ok(Value::UInt(u))) => {
                    UserValue::Int(i64::try_from(u).unwrap_or(i64::MAX))
                }
                (UserType::String, Ok(Value::String(x))) => UserValue::String(x.to_string()),
                (t, Ok(v)) => {
                    let want = match t {
                        UserType::Bool => "a bool",
                        UserType::Int => "an int",
                        UserType::String => "a string",
                    };
                    out.errors.push((
                        f.name.clone(),
                        Failure::WrongType {
                            got: format!("{v:?}"),
                            want,
                        },
                    ));
                    UserValue::Null
                }
                (_, Err(e)) => {
                    out.errors.push((f.name.clone(), Failure::Execution(e)));
                    UserValue::Null
                }
            };
            out.fields.push(v);
        }
        out
    }
}

#[derive(Debug, Default)]
struct Evaluated {
    tags: Vec<String>,
    fields: Vec<UserValue>,
    errors: Vec<(String, Failure)>,
}

/// A CEL value of one cell: integers of any width are ints (saturating), timestamps ints of
/// microseconds.
fn value(c: Cell<'_>) -> Value {
    match c {
        Cell::Null => Value::Null,
        Cell::Bool(b) => Value::Bool(b),
        Cell::Int(i) | Cell::Timestamp(i) => Value::Int(i),
        Cell::UInt(u) => Value::Int(i64::try_from(u).unwrap_or(i64::MAX)),
        Cell::Float(f) => Value::Float(f),
        Cell::Str(s) => Value::String(Arc::new(s.to_string())),
        Cell::Bytes(b) => Value::Bytes(Arc::new(b.to_vec())),
        Cell::List(v) => Value::List(Arc::new(v.into_iter().map(value).collect())),
    }
}

/// Binds every built-in column of the row as a variable.
fn bind(ctx: &mut Context<'_, '_>, r: &IpRow) {
    for ((name, cell), col) in r.cells().into_iter().zip(IpRow::COLUMNS) {
        let v = match (cell, col.ty) {
            // A null list binds as an empty one, so `http_url.exists(…)` works on every row.
            (Cell::Null, ColumnType::List(_)) => Value::List(Arc::new(Vec::new())),
            (c, _) => value(c),
        };
        ctx.add_variable_from_value(name, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use scanscope_common::Tool;

    fn row() -> IpRow {
        IpRow {
            src_ip: "203.0.113.9".into(),
            first_seen: 1_000_000,
            last_seen: 7_000_000,
            tcp_ports: vec![22, 27017, 3306],
            port_count: 3,
            tools: vec![Tool::Masscan],
            org: Some("censys".into()),
            org_source: Some("cidr"),
            spoof_reasons: vec!["udp80"],
            http_url: Some(vec!["GET /.env".into()]),
            ..IpRow::default()
        }
    }

    #[test]
    fn tags_and_fields() {
        let tags = vec![
            TagRule {
                name: "database-hunter".into(),
                when: "[3306, 5432, 6379, 27017].exists(p, p in tcp_ports)".into(),
            },
            TagRule {
                name: "ssh-only".into(),
                when: "tcp_ports == [22]".into(),
            },
            TagRule {
                name: "dotenv".into(),
                when: "http_url.exists(u, u.contains('/.env'))".into(),
            },
        ];
        let fields = vec![
            FieldRule {
                name: "db_ports".into(),
                ty: UserType::Int,
                expr: "size(tcp_ports.filter(p, p in [3306, 27017]))".into(),
            },
            FieldRule {
                name: "who".into(),
                ty: UserType::String,
                expr: "org == null ? 'unknown' : org + '/' + tools[0]".into(),
            },
            FieldRule {
                name: "bad_type".into(),
                ty: UserType::Bool,
                expr: "port_count".into(),
            },
        ];
        let mut r = Rules::compile(&tags, &fields).unwrap();
        let mut x = row();
        r.apply(&mut x);
        assert_eq!(x.tags, vec!["database-hunter", "dotenv"]);
        assert_eq!(
            x.user,
            vec![
                UserValue::Int(2),
                UserValue::String("censys/masscan".into()),
                UserValue::Null
            ]
        );
        assert_eq!(r.failures.len(), 1);
        assert_eq!(r.failures[0].0, "bad_type");
    }

    #[test]
    fn every_column_is_a_variable() {
        // The columns the hand-written bindings once missed.
        let fields = vec![
            FieldRule {
                name: "active_secs".into(),
                ty: UserType::Int,
                expr: "(last_seen - first_seen) / 1000000".into(),
            },
            FieldRule {
                name: "how".into(),
                ty: UserType::String,
                expr: "org_source + ':' + spoof_reasons[0]".into(),
            },
        ];
        let mut r = Rules::compile(&[], &fields).unwrap();
        let mut x = row();
        r.apply(&mut x);
        assert_eq!(
            x.user,
            vec![UserValue::Int(6), UserValue::String("cidr:udp80".into())]
        );
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        // Every column of the declaration is bound.
        for c in IpRow::COLUMNS {
            let tag = TagRule {
                name: c.name.into(),
                when: format!("{} == {} || true", c.name, c.name),
            };
            Rules::compile(&[tag], &[]).unwrap_or_else(|e| panic!("{}: {e}", c.name));
        }
    }

    #[test]
    fn compile_errors_name_the_rule() {
        let tags = vec![TagRule {
            name: "broken".into(),
            when: "tcp_ports.exists(p, ".into(),
        }];
        let e = Rules::compile(&tags, &[]).unwrap_err();
        assert_eq!(e.name(), "broken");
        assert!(matches!(e, RuleError::Compile { .. }));
        let tags = vec![TagRule {
            name: "typo".into(),
            when: "tcp_portz.size() > 1".into(),
        }];
        let e = Rules::compile(&tags, &[]).unwrap_err();
        assert_eq!(e.name(), "typo", "{e}");
        assert!(matches!(e, RuleError::Unknown { .. }), "{e}");
    }
}

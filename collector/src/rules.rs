//! User rules: tags and extra `ip_daily` columns from CEL expressions (Common Expression
//! Language, <https://cel.dev>), evaluated over each finished `ip_daily` row. Operators add them
//! in the rollup configuration without recompiling. Every built-in column is a variable
//! (`src_ip`, `packets`, `tcp_ports`, `tools`, `org`, `http_url`, …; counts are ints, lists are
//! lists, missing values are null), e.g. `27017 in tcp_ports && port_count >= 3` or
//! `http_url.exists(u, u.contains("/.env"))`.
use std::sync::Arc;

use cel::{Context, Program, Value};

use crate::rollup::{
    config::{FieldRule, FieldType, TagRule},
    finish::IpRow,
};

/// A rule that does not compile.
#[derive(Debug, thiserror::Error)]
#[error("rule {name:?}: {reason}")]
pub struct RuleError {
    pub name: String,
    pub reason: String,
}

/// A user field's value in one row.
#[derive(Debug, Clone, PartialEq)]
pub enum UserValue {
    Bool(bool),
    Int(i64),
    String(String),
    Null,
}

/// Compiled rules, and per-rule evaluation failures of the current run.
#[derive(Debug)]
pub struct Rules {
    tags: Vec<(String, Program)>,
    fields: Vec<(FieldRule, Program)>,
    /// (rule name, failures, first failure)
    pub failures: Vec<(String, u64, String)>,
}

fn list<T>(v: &[T], f: impl Fn(&T) -> Value) -> Value {
    Value::List(Arc::new(v.iter().map(f).collect()))
}

fn s(x: &str) -> Value {
    Value::String(Arc::new(x.to_string()))
}

fn opt<T>(v: &Option<T>, f: impl Fn(&T) -> Value) -> Value {
    v.as_ref().map_or(Value::Null, f)
}

impl Rules {
    /// Compiles all rules; the first that fails is the error.
    pub fn compile(tags: &[TagRule], fields: &[FieldRule]) -> Result<Rules, RuleError> {
        let comp = |name: &str, src: &str| {
            Program::compile(src).map_err(|e| RuleError {
                name: name.to_string(),
                reason: format!("does not compile: {e}"),
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
        // Try every rule once on an empty row so unknown variables show up before a long run.
        let probe = IpRow::default();
        let mut check = r.evaluate_inner(&probe);
        for (name, err) in check.errors.drain(..) {
            if err.contains("Undeclared reference") || err.contains("undeclared") {
                return Err(RuleError { name, reason: err });
            }
        }
        Ok(r)
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty() && self.fields.is_empty()
    }

    /// The user field definitions, in column order.
    pub fn fields(&self) -> impl Iterator<Item = &FieldRule> {
        self.fields.iter().map(|(f, _)| f)
    }

    /// Applies the rules to `row`: tags appended to `row.tags`, fields to `row.user`.
    pub fn apply(&mut self, row: &mut IpRow) {
        if self.is_empty() {
            return;
        }
        let out = self.evaluate_inner(row);
        for (name, err) in out.errors {
            match self.failures.iter_mut().find(|(n, _, _)| *n == name) {
                Some((_, c, _)) => *c += 1,
                None => self.failures.push((name, 1, err)),
            }
        }
        row.tags.extend(out.tags);
        row.user = out.fields;
    }

    fn evaluate_inner(&self, row: &IpRow) -> Evaluated {
        let mut ctx = Context::default();
        bind(&mut ctx, row);
        let mut out = Evaluated::default();
        for (name, p) in &self.tags {
            match p.execute(&ctx) {
                Ok(Value::Bool(true)) => out.tags.push(name.clone()),
                Ok(Value::Bool(false)) => {}
                Ok(v) => out
                    .errors
                    .push((name.clone(), format!("gave {v:?}, not a bool"))),
                Err(e) => out.errors.push((name.clone(), e.to_string())),
            }
        }
        for (f, p) in &self.fields {
            let v = match (f.ty, p.execute(&ctx)) {
                (_, Ok(Value::Null)) => UserValue::Null,
                (FieldType::Bool, Ok(Value::Bool(b))) => UserValue::Bool(b),
                (FieldType::Int, Ok(Value::Int(i))) => UserValue::Int(i),
                (FieldType::Int, Ok(Value::UInt(u))) => UserValue::Int(u as i64),
                (FieldType::String, Ok(Value::String(x))) => UserValue::String(x.to_string()),
                (t, Ok(v)) => {
                    out.errors
                        .push((f.name.clone(), format!("gave {v:?}, not {t:?}")));
                    UserValue::Null
                }
                (_, Err(e)) => {
                    out.errors.push((f.name.clone(), e.to_string()));
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
    errors: Vec<(String, String)>,
}

fn bind(ctx: &mut Context<'_, '_>, r: &IpRow) {
    let int = |x: u64| Value::Int(x as i64);
    let port = |p: &u16| Value::Int(i64::from(*p));
    let text = |x: &String| s(x);
    let st = |x: &&'static str| s(x);
    let vars: Vec<(&str, Value)> = vec![
        ("src_ip", s(&r.src_ip)),
        ("packets", int(r.packets)),
        ("bytes", int(r.bytes)),
        ("sensor_count", int(u64::from(r.sensor_count))),
        ("sensors", list(&r.sensors, |x| s(x))),
        ("scan_breadth", int(u64::from(r.scan_breadth))),
        ("dst_hosts", int(r.dst_hosts)),
        ("ports", list(&r.ports, port)),
        ("tcp_ports", list(&r.tcp_ports, port)),
        ("udp_ports", list(&r.udp_ports, port)),
        ("port_count", int(u64::from(r.port_count))),
        ("probe_pairs", int(r.probe_pairs)),
        ("icmp_ping", int(r.icmp_ping)),
        ("kinds", list(&r.kinds, st)),
        ("scan_type", s(r.scan_type)),
        ("is_scanner", Value::Bool(r.is_scanner)),
        ("tools", list(&r.tools, st)),
        ("os_hint", opt(&r.os_hint, text)),
        ("org", opt(&r.org, text)),
        ("rdns", opt(&r.rdns, text)),
        ("tor_exit", opt(&r.tor_exit, |b| Value::Bool(*b))),
        ("country", opt(&r.country, text)),
        ("asn", opt(&r.asn, |a| Value::Int(i64::from(*a)))),
        ("as_org", opt(&r.as_org, text)),
        ("spoofed_suspect", Value::Bool(r.spoofed_suspect)),
        ("backscatter_packets", int(r.backscatter_packets)),
        ("tags", list(&r.tags, text)),
        ("http_url", list(r.http_url.as_deref().unwrap_or(&[]), text)),
        (
            "http_user_agent",
            list(r.http_user_agent.as_deref().unwrap_or(&[]), text),
        ),
        (
            "rdp_cookie",
            list(r.rdp_cookie.as_deref().unwrap_or(&[]), text),
        ),
        (
            "mysql_login_attempts",
            opt(&r.mysql_login_attempts, |x| int(*x)),
        ),
        (
            "mysql_user",
            list(r.mysql_user.as_deref().unwrap_or(&[]), text),
        ),
        ("payload_samples", int(r.payload_samples)),
    ];
    for (k, v) in vars {
        ctx.add_variable_from_value(k, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> IpRow {
        IpRow {
            src_ip: "203.0.113.9".into(),
            tcp_ports: vec![22, 27017, 3306],
            port_count: 3,
            tools: vec!["masscan"],
            org: Some("censys".into()),
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
                ty: FieldType::Int,
                expr: "size(tcp_ports.filter(p, p in [3306, 27017]))".into(),
            },
            FieldRule {
                name: "who".into(),
                ty: FieldType::String,
                expr: "org == null ? 'unknown' : org + '/' + tools[0]".into(),
            },
            FieldRule {
                name: "bad_type".into(),
                ty: FieldType::Bool,
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
    fn compile_errors_name_the_rule() {
        let tags = vec![TagRule {
            name: "broken".into(),
            when: "tcp_ports.exists(p, ".into(),
        }];
        let e = Rules::compile(&tags, &[]).unwrap_err();
        assert_eq!(e.name, "broken");
        let tags = vec![TagRule {
            name: "typo".into(),
            when: "tcp_portz.size() > 1".into(),
        }];
        let e = Rules::compile(&tags, &[]).unwrap_err();
        assert_eq!(e.name, "typo", "{e}");
    }
}

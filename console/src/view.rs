//! What every API call answers: a [`View`] — the date range it covers, which of its days are
//! provisional, a few summary figures, and named [`Table`]s. The UI renders tables generically
//! (each column's `kind` says how: a link to an IP page, a port page, …) and every table exports
//! as CSV (`?format=csv&table=NAME`).
use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ConsoleError;

/// How a column's values are shown and linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ColumnKind {
    /// A source address: links to its IP page.
    Ip,
    /// A port number: links to its port page (the row's `proto` column, else tcp).
    Port,
    /// An organisation: links to its page.
    Org,
    /// A date (`YYYY-MM-DD`).
    Date,
    /// A time (RFC 3339, UTC).
    Time,
    Number,
    Text,
    /// A list of texts.
    List,
    /// A list of ports, each linking to its page.
    PortList,
    /// A list of tags.
    Tags,
    /// The classification word.
    Class,
    /// Bytes as printable ASCII and hex (`{"ascii": …, "hex": …}`).
    Bytes,
    Bool,
}

/// One column of a table.
#[derive(Debug, Clone, Serialize)]
pub struct Column {
    pub name: &'static str,
    pub kind: ColumnKind,
}

/// A table: columns and rows (each row an object keyed by column name).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Table {
    pub columns: Vec<Column>,
    pub rows: Vec<Map<String, Value>>,
    /// Rows in all when only a page of them is here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

impl Table {
    pub fn new(columns: &[(&'static str, ColumnKind)]) -> Table {
        Table {
            columns: columns
                .iter()
                .map(|(name, kind)| Column { name, kind: *kind })
                .collect(),
            rows: Vec::new(),
            total: None,
        }
    }

    /// Adds a row: values in column order.
    pub fn push(&mut self, values: Vec<Value>) {
        debug_assert_eq!(values.len(), self.columns.len());
        let row = self
            .columns
            .iter()
            .zip(values)
            .map(|(c, v)| (c.name.to_string(), v))
            .collect();
        self.rows.push(row);
    }

    /// The table as CSV (RFC 4180). Text cells that a spreadsheet would run as a formula
    /// (starting with `=`, `+`, `-`, `@`, tab or CR) get a leading `'`: the values come from the
    /// internet.
    pub fn csv(&self) -> String {
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|c| csv_cell(c.name)).collect();
        out.push_str(&header.join(","));
        out.push_str("\r\n");
        for r in &self.rows {
            let cells: Vec<String> = self
                .columns
                .iter()
                .map(|c| match r.get(c.name) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => csv_cell(s),
                    Some(Value::Array(a)) => csv_cell(
                        &a.iter()
                            .map(|v| match v {
                                Value::String(s) => s.clone(),
                                v => v.to_string(),
                            })
                            .collect::<Vec<_>>()
                            .join(";"),
                    ),
                    Some(Value::Object(o)) => {
                        csv_cell(o.get("ascii").and_then(Value::as_str).unwrap_or_default())
                    }
                    Some(v) => v.to_string(),
                })
                .collect();
            out.push_str(&cells.join(","));
            out.push_str("\r\n");
        }
        out
    }
}

fn csv_cell(s: &str) -> String {
    let s = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// The date range of a view (both ends included, UTC days).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Range {
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Range {
    /// The days of the range, oldest first.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> {
        self.from.iter_days().take_while(|d| *d <= self.to)
    }
}

/// One API answer.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub range: Range,
    /// Days of the range whose figures are provisional (the open day, rolled up so far).
    pub provisional: Vec<NaiveDate>,
    /// The query as understood (canonical form), for searches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
    pub summary: Map<String, Value>,
    pub tables: BTreeMap<&'static str, Table>,
}

impl View {
    pub fn new(range: Range) -> View {
        View {
            range,
            provisional: Vec::new(),
            plan: None,
            summary: Map::new(),
            tables: BTreeMap::new(),
        }
    }

    pub fn table(&self, name: &str) -> Result<&Table, ConsoleError> {
        self.tables.get(name).ok_or_else(|| ConsoleError::NoTable {
            view: name.to_string(),
            have: self.tables.keys().copied().collect::<Vec<_>>().join(", "),
        })
    }
}

/// Bytes as a JSON object: printable ASCII (others as `.`) and lower-case hex. Never markup:
/// the UI puts both in text nodes.
pub fn bytes_value(b: &[u8]) -> Value {
    let ascii: String = b
        .iter()
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '.'
            }
        })
        .collect();
    serde_json::json!({ "ascii": ascii, "hex": hex::encode(b), "len": b.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let mut t = Table::new(&[
            ("a", ColumnKind::Text),
            ("n", ColumnKind::Number),
            ("l", ColumnKind::List),
        ]);
        t.push(vec![
            json!("=HYPERLINK(\"x\")"),
            json!(3),
            json!(["a,b", "c"]),
        ]);
        t.push(vec![json!("-1+1"), Value::Null, json!([])]);
        t.push(vec![json!("line\nbreak"), json!(0), json!(["@x"])]);
        assert_eq!(
            t.csv(),
            "a,n,l\r\n\"'=HYPERLINK(\"\"x\"\")\",3,\"a,b;c\"\r\n'-1+1,,\r\n\"line\nbreak\",0,'@x\r\n"
        );
    }

    #[test]
    fn bytes_are_ascii_and_hex() {
        assert_eq!(
            bytes_value(b"GET /\r\n\x1b[31m<"),
            json!({"ascii": "GET /...[31m<", "hex": "474554202f0d0a1b5b33316d3c", "len": 13})
        );
    }
}

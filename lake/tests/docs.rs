//! `docs/lake.md` and `docs/rollup.md` list exactly the columns and types the code writes:
//! every table's markdown table (`| column | type | meaning |`, under a heading naming the
//! table) is compared with the table's one declaration.
use std::{collections::BTreeMap, path::Path};

use scanscope_lake::tables;

/// (table → [(column, doc type)]) from a markdown file. A table belongs to the nearest heading
/// above it whose first word (or first backticked word) is a table name; a row naming several
/// columns (`src_ip, dst_ip`) gives each the row's type; rows in italics (`*user fields*`) are
/// not columns.
fn documented(path: &Path) -> BTreeMap<String, Vec<(String, String)>> {
    let text = std::fs::read_to_string(path).expect("docs file");
    let names: Vec<&str> = tables::ALL.iter().map(|(t, _)| *t).collect();
    let mut out: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        if line.starts_with('#') {
            let word = line
                .trim_start_matches('#')
                .trim()
                .trim_start_matches('`')
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("");
            current = names.contains(&word).then(|| word.to_string());
            continue;
        }
        let Some(table) = &current else { continue };
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || cells[1] == "column" || cells[1].starts_with("---") {
            continue;
        }
        if cells[1].starts_with('*') {
            continue;
        }
        let ty = cells[2].replace("\\<", "<").replace("\\>", ">");
        for name in cells[1].split(',') {
            out.entry(table.clone())
                .or_default()
                .push((name.trim().trim_matches('`').to_string(), ty.clone()));
        }
    }
    out
}

#[test]
fn docs_list_exactly_the_columns_and_types_the_code_writes() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let mut found = documented(&docs.join("lake.md"));
    found.extend(documented(&docs.join("rollup.md")));
    for (table, columns) in tables::ALL {
        let want: Vec<(String, String)> = columns
            .iter()
            .map(|c| (c.name.to_string(), c.doc_type()))
            .collect();
        let got = found
            .remove(table)
            .unwrap_or_else(|| panic!("docs have no column table for {table}"));
        assert_eq!(got, want, "docs for {table} differ from its declaration");
    }
    assert!(found.is_empty(), "docs describe unknown tables: {found:?}");
}

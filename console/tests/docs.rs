//! docs/api.md lists exactly the query language's fields (`console/src/fields.rs`): name,
//! aliases, type, columns and example of each, in order.
use scanscope_console::fields::FIELDS;

fn ticked(cell: &str) -> Vec<String> {
    cell.split(',')
        .map(|s| s.trim().trim_matches('`').to_string())
        .filter(|s| !s.is_empty() && s != "—" && s != "(derived)")
        .collect()
}

/// name, aliases, type, columns, example.
type FieldDoc = (String, Vec<String>, String, Vec<String>, String);

#[test]
fn the_api_docs_list_every_field() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/api.md");
    let text = std::fs::read_to_string(path).expect("docs/api.md");
    let rows: Vec<Vec<String>> = text
        .lines()
        .skip_while(|l| !l.starts_with("| field | aliases |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let inner = l.trim().trim_start_matches('|').trim_end_matches('|');
            inner.split(" | ").map(|c| c.trim().to_string()).collect()
        })
        .collect();
    let documented: Vec<FieldDoc> = rows
        .iter()
        .map(|r| {
            assert_eq!(r.len(), 6, "row {r:?}");
            (
                r[0].trim_matches('`').to_string(),
                ticked(&r[1]),
                r[2].clone(),
                ticked(&r[3]),
                r[5].trim_matches('`').to_string(),
            )
        })
        .collect();
    let declared: Vec<FieldDoc> = FIELDS
        .iter()
        .map(|f| {
            (
                f.name.to_string(),
                f.aliases.iter().map(|a| a.to_string()).collect(),
                f.kind.name().to_string(),
                f.columns.iter().map(|c| c.to_string()).collect(),
                f.example.to_string(),
            )
        })
        .collect();
    assert_eq!(documented, declared);
}

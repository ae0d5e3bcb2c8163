//! `-o table|json|yaml`: tables name the columns a person looks at; JSON and YAML are
//! the API's documents unchanged (a listing prints its items as one array).

use clap::ValueEnum;
use comfy_table::presets::NOTHING;
use comfy_table::{ContentArrangement, Table};
use serde_json::Value;

use crate::CliError;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
}

/// One table column: its header and how to read it from an item.
pub struct Column {
    pub header: &'static str,
    cell: Cell,
}

enum Cell {
    /// The value at a JSON pointer (most columns).
    At(&'static str),
    /// Anything else: joined lists, derived text.
    With(fn(&Value) -> String),
}

impl Column {
    /// A column showing the value at `pointer` ([`at`]).
    pub const fn at(header: &'static str, pointer: &'static str) -> Self {
        Column {
            header,
            cell: Cell::At(pointer),
        }
    }

    /// A column computed from the item.
    pub const fn with(header: &'static str, get: fn(&Value) -> String) -> Self {
        Column {
            header,
            cell: Cell::With(get),
        }
    }

    pub fn cell(&self, item: &Value) -> String {
        match self.cell {
            Cell::At(pointer) => at(item, pointer),
            Cell::With(get) => get(item),
        }
    }
}

/// The value at a JSON pointer as table text ("" when absent or null).
pub fn at(v: &Value, pointer: &str) -> String {
    text(v.pointer(pointer).unwrap_or(&Value::Null))
}

/// A JSON value as table text: strings bare, null empty, structures as compact JSON.
pub fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => if *b { "yes" } else { "no" }.to_owned(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

fn table() -> Table {
    let mut t = Table::new();
    // Plain aligned columns, like kubectl: easy to read and to `grep`/`awk`.
    t.load_preset(NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled);
    t
}

/// Renders `doc` in a machine format; `None` for `table`.
pub fn machine(format: Format, doc: &Value) -> Result<Option<String>, CliError> {
    match format {
        Format::Table => Ok(None),
        Format::Json => serde_json::to_string_pretty(doc)
            .map(Some)
            .map_err(|e| CliError::other(format!("rendering JSON: {e}"))),
        Format::Yaml => serde_norway::to_string(doc)
            .map(Some)
            .map_err(|e| CliError::other(format!("rendering YAML: {e}"))),
    }
}

/// A listing as a table with headers (or as JSON/YAML).
pub fn render_list(format: Format, items: &[Value], columns: &[Column]) -> Result<String, CliError> {
    if let Some(out) = machine(format, &Value::Array(items.to_vec()))? {
        return Ok(out);
    }
    let mut t = table();
    t.set_header(columns.iter().map(|c| c.header));
    for item in items {
        t.add_row(columns.iter().map(|c| c.cell(item)));
    }
    Ok(trim_lines(&t.to_string()))
}

/// One entity: FIELD / VALUE rows of its top-level members (or JSON/YAML).
pub fn render_one(format: Format, doc: &Value) -> Result<String, CliError> {
    if let Some(out) = machine(format, doc)? {
        return Ok(out);
    }
    let mut t = table();
    t.set_header(["FIELD", "VALUE"]);
    if let Value::Object(map) = doc {
        for (k, v) in map {
            t.add_row([k.clone(), text(v)]);
        }
    } else {
        t.add_row(["value".to_owned(), text(doc)]);
    }
    Ok(trim_lines(&t.to_string()))
}

/// comfy-table pads every cell, the last one too; trailing blanks only get in the way.
fn trim_lines(s: &str) -> String {
    s.lines().map(|l| l.trim_end()).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;

    const COLS: &[Column] = &[Column::at("ID", "/id"), Column::at("NAME", "/name")];

    #[test]
    fn each_format_renders_what_it_says() {
        let items = vec![
            json!({"id": "pol_1", "name": "hourly"}),
            json!({"id": "pol_2", "name": null}),
        ];
        let t = render_list(Format::Table, &items, COLS).unwrap();
        let first = t.lines().next().unwrap();
        assert!(first.contains("ID") && first.contains("NAME"), "{t}");
        assert!(t.contains("hourly"), "{t}");
        let j: Value = serde_json::from_str(&render_list(Format::Json, &items, COLS).unwrap()).unwrap();
        assert_eq!(j, Value::Array(items.clone()));
        let y: Value = serde_norway::from_str(&render_list(Format::Yaml, &items, COLS).unwrap()).unwrap();
        assert_eq!(y, Value::Array(items));
    }

    #[test]
    fn one_entity_is_field_value_rows() {
        let t = render_one(Format::Table, &json!({"id": "x", "tags": {"a": "b"}, "on": true})).unwrap();
        assert!(
            t.contains("FIELD") && t.contains(r#"{"a":"b"}"#) && t.contains("yes"),
            "{t}"
        );
    }
}

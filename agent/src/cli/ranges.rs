//! The `--changed-ranges` file: which byte ranges of a volume changed since its last snapshot.

use std::ops::Range;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Deserialize)]
struct JsonRange {
    #[serde(alias = "byte_offset")]
    offset: u64,
    #[serde(alias = "size_bytes")]
    length: u64,
}

/// Lines `OFFSET LENGTH` (decimal bytes, `#` comments), or a JSON array of
/// `{"offset","length"}` / CSI GetMetadataDelta's `{"byte_offset","size_bytes"}`.
pub fn read(path: &Path) -> anyhow::Result<Vec<Range<u64>>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading changed ranges {}", path.display()))?;
    parse(&text).with_context(|| format!("changed ranges {}", path.display()))
}

pub fn parse(text: &str) -> anyhow::Result<Vec<Range<u64>>> {
    let to_range = |offset: u64, length: u64| {
        offset
            .checked_add(length)
            .map(|end| offset..end)
            .context("range beyond 2^64")
    };
    if text.trim_start().starts_with('[') {
        let list: Vec<JsonRange> = serde_json::from_str(text)?;
        return list.into_iter().map(|r| to_range(r.offset, r.length)).collect();
    }
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
            bail!("line {}: expected `OFFSET LENGTH`", n + 1);
        };
        let offset = a.parse().with_context(|| format!("line {}: offset", n + 1))?;
        let length = b.parse().with_context(|| format!("line {}: length", n + 1))?;
        out.push(to_range(offset, length)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_parse_and_garbage_does_not() {
        assert_eq!(parse("# c\n0 4096\n65536 10\n").unwrap(), vec![0..4096, 65536..65546]);
        assert_eq!(
            parse(r#"[{"byte_offset":8,"size_bytes":2},{"offset":1,"length":1}]"#).unwrap(),
            vec![8..10, 1..2]
        );
        assert!(parse("12").is_err());
        assert!(parse("x 1").is_err());
        assert!(parse("18446744073709551615 2").is_err());
    }
}

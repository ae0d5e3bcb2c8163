//! Pagination as the API sees it: an opaque string cursor and a bounded page size.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::ports::item_store::{Cursor, Index};
use crate::{Error, Result};

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 200;

/// Which page to read: `cursor` is the `nextCursor` of the previous page.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageRequest {
    #[serde(default)]
    pub cursor: Option<String>,
    #[serde(default)]
    pub limit: Option<u32>,
}

impl PageRequest {
    pub fn first(limit: u32) -> Self {
        PageRequest {
            cursor: None,
            limit: Some(limit),
        }
    }

    pub fn after(cursor: Option<String>, limit: u32) -> Self {
        PageRequest {
            cursor,
            limit: Some(limit),
        }
    }

    pub(crate) fn size(&self) -> Result<u32> {
        match self.limit {
            None => Ok(DEFAULT_PAGE_SIZE),
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            Some(_) => Err(Error::invalid(
                "limit",
                format!("must be between 1 and {MAX_PAGE_SIZE}"),
            )),
        }
    }
}

/// One page of results.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Listing<T> {
    pub items: Vec<T>,
    /// Present when more may follow; pass it back as `cursor`.
    pub next_cursor: Option<String>,
}

impl<T> Listing<T> {
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Listing<U> {
        Listing {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

pub(crate) fn encode_cursor(cursor: &Cursor) -> Result<String> {
    let json = serde_json::to_vec(cursor).map_err(Error::permanent)?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// Decodes a cursor and checks it belongs to the query it is used with (same table
/// partition or index partition, same key prefix), so a cursor cannot be pointed at
/// another tenant's partition.
pub(crate) fn decode_cursor(text: &str, index: Option<Index>, pk: &str, sk_prefix: &str) -> Result<Cursor> {
    let bad = || Error::invalid("cursor", "not a cursor of this listing");
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let fits = match (index, &cursor.index_key) {
        (None, None) => cursor.pk == pk && cursor.sk.starts_with(sk_prefix),
        (Some(_), Some(key)) => key.pk == pk && key.sk.starts_with(sk_prefix),
        _ => false,
    };
    if fits { Ok(cursor) } else { Err(bad()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_other_partitions() {
        let c = Cursor {
            pk: "ORG#a".into(),
            sk: "POLICY#p".into(),
            index_key: None,
        };
        let text = encode_cursor(&c).unwrap();
        assert!(!text.contains('=') && !text.contains('+') && !text.contains('/'));
        assert_eq!(decode_cursor(&text, None, "ORG#a", "POLICY#").unwrap(), c);
        for (pk, prefix) in [("ORG#b", "POLICY#"), ("ORG#a", "CLUSTER#")] {
            let err = decode_cursor(&text, None, pk, prefix).unwrap_err();
            assert!(
                matches!(err, Error::Invalid { ref field, .. } if field == "cursor"),
                "{err:?}"
            );
        }
        assert!(decode_cursor("%%%", None, "ORG#a", "").is_err());
        assert!(decode_cursor(&text, Some(Index::Gsi2), "ORG#a", "").is_err());
    }

    #[test]
    fn page_sizes_are_bounded() {
        assert_eq!(PageRequest::default().size().unwrap(), DEFAULT_PAGE_SIZE);
        assert!(PageRequest::first(0).size().is_err());
        assert!(PageRequest::first(MAX_PAGE_SIZE + 1).size().is_err());
    }
}

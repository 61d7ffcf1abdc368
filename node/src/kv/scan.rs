//! One page of a kv scan: entries in key order until the count limit or
//! the byte budget, and the key to continue from. **Invariant:** a scan
//! reply (JSON body plus values blob) never exceeds its budget, which is
//! never above `Limits::max_message_bytes`, so it is always deliverable.

use super::{KvError, ScanEntry};
use crate::state::kv::Entry;
use crate::state::StateError;

/// Most entries one scan returns, whatever the limit asked.
pub const MAX_SCAN: usize = 10_000;
/// Bytes of a scan reply body besides its entries and `next` key:
/// `{"Ok":{"Entries":{"entries":[],"next":null}}}` is 45; the rest is
/// slack for the kernel's own accounting of the response.
pub const SCAN_REPLY_RESERVE: usize = 256;

/// One page: entries, their values concatenated, and the first key not
/// returned when more match.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Page {
    pub entries: Vec<ScanEntry>,
    pub values: Vec<u8>,
    pub next: Option<String>,
}

/// The byte budget of a scan: what the asker named, at most what one
/// message may carry; by default all of it.
pub fn budget(asked: Option<u64>, max_message_bytes: usize) -> usize {
    let hard = max_message_bytes.saturating_sub(SCAN_REPLY_RESERVE);
    asked.map_or(hard, |b| usize::try_from(b).unwrap_or(usize::MAX).min(hard))
}

/// Bytes `key` takes as a JSON string (with its quotes and escapes).
fn json_len(key: &str) -> usize {
    serde_json::to_string(key).map_or(usize::MAX, |s| s.len())
}

/// Bytes one entry adds to the reply: its JSON object, a comma, its value.
fn entry_cost(entry: &ScanEntry) -> usize {
    serde_json::to_string(entry)
        .map_or(usize::MAX, |s| s.len())
        .saturating_add(1)
        .saturating_add(entry.len as usize)
}

fn store_err(e: StateError) -> KvError {
    KvError::Store(e.to_string())
}

/// Take entries from `found` while at most `limit` and while the reply,
/// with room for the key of the entry after (the `next` to continue
/// from), stays within `budget`. An entry too large for any page is
/// refused with `EntryTooLarge` when it comes first, so a scan never
/// stalls on it silently.
pub fn page(
    found: impl Iterator<Item = Result<Entry, StateError>>,
    limit: usize,
    budget: usize,
) -> Result<Page, KvError> {
    let limit = limit.min(MAX_SCAN);
    let mut found = found.peekable();
    let mut page = Page::default();
    let mut used = 0usize;
    while let Some(item) = found.next() {
        let (k, v) = item.map_err(store_err)?;
        let key = String::from_utf8_lossy(&k).into_owned();
        if page.entries.len() >= limit {
            page.next = Some(key);
            break;
        }
        let entry = ScanEntry {
            key,
            len: v.len() as u64,
        };
        let after = match found.peek() {
            Some(Ok((next, _))) => json_len(&String::from_utf8_lossy(next)),
            _ => 0,
        };
        let cost = entry_cost(&entry);
        if used.saturating_add(cost).saturating_add(after) > budget {
            if page.entries.is_empty() && cost.saturating_add(after) > budget {
                return Err(KvError::EntryTooLarge {
                    key: entry.key,
                    len: entry.len,
                    budget: budget as u64,
                });
            }
            page.next = Some(entry.key);
            break;
        }
        used += cost;
        page.values.extend_from_slice(&v);
        page.entries.push(entry);
    }
    Ok(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize, value: usize) -> Vec<Result<Entry, StateError>> {
        (0..n)
            .map(|i| Ok((format!("k{i:04}").into_bytes(), vec![b'v'; value])))
            .collect()
    }

    fn reply_len(page: &Page) -> usize {
        let body =
            serde_json::json!({"Ok": {"Entries": {"entries": page.entries, "next": page.next}}});
        serde_json::to_vec(&body).unwrap().len() + page.values.len()
    }

    #[test]
    fn pages_stay_within_budget_and_continue_where_they_stopped() {
        let b = 10_000;
        let page1 = page(entries(100, 1000).into_iter(), 1000, b).unwrap();
        assert_eq!(page1.entries.len(), 9);
        assert!(reply_len(&page1) <= b + SCAN_REPLY_RESERVE);
        assert_eq!(page1.next.as_deref(), Some("k0009"));
        let all = page(entries(5, 10).into_iter(), 1000, b).unwrap();
        assert_eq!((all.entries.len(), all.next), (5, None));
        let counted = page(entries(5, 10).into_iter(), 2, b).unwrap();
        assert_eq!(counted.next.as_deref(), Some("k0002"));
        let huge = page(entries(2, 20_000).into_iter(), 10, b);
        assert!(matches!(
            huge,
            Err(KvError::EntryTooLarge { len: 20_000, .. })
        ));
        assert_eq!(budget(Some(u64::MAX), 1000), 1000 - SCAN_REPLY_RESERVE);
        assert_eq!(budget(None, 100), 0);
    }
}

//! An HTTP request event read by hand, for the shape the node writes
//! (`node/src/http/wire.rs`, `HttpEventRef`): its fields in that order,
//! no whitespace, strings without escapes. Anything else gives `None`,
//! and [`super::request_view`] reads it with serde instead, so this only
//! spares the common case serde's generic walk (in a guest, about 1 µs
//! of a 200-byte event, the headers skipped string by string). It accepts
//! a strict subset of what serde accepts and reads it to the same view
//! (`the_quick_reader_agrees_with_serde`).

use std::borrow::Cow;

use super::{HttpRequestView, Pairs};

/// The request in `body`, if it has exactly the node's shape.
pub(super) fn request_view(body: &[u8]) -> Option<HttpRequestView<'_>> {
    let mut scan = Scan(std::str::from_utf8(body).ok()?);
    scan.literal(r#"{"Http":{"method":"#)?;
    let method = scan.string()?;
    scan.literal(r#","path":"#)?;
    scan.string()?;
    scan.literal(r#","bound_path":"#)?;
    let bound_path = scan.string()?;
    scan.literal(r#","params":"#)?;
    let params = scan.pairs(true)?;
    scan.literal(r#","query":"#)?;
    let query = scan.pairs(true)?;
    scan.literal(r#","headers":"#)?;
    scan.pairs(false)?;
    scan.literal(r#","user":"#)?;
    let user = match scan.literal("null") {
        Some(()) => None,
        None => Some(Cow::Borrowed(scan.string()?)),
    };
    scan.literal("}}")?;
    scan.0.is_empty().then_some(HttpRequestView {
        method: Cow::Borrowed(method),
        bound_path: Cow::Borrowed(bound_path),
        params,
        query,
        user,
    })
}

/// The text not read yet.
struct Scan<'a>(&'a str);

impl<'a> Scan<'a> {
    /// Past `expected`, if the text starts with it.
    fn literal(&mut self, expected: &str) -> Option<()> {
        self.0 = self.0.strip_prefix(expected)?;
        Some(())
    }

    /// A JSON string with nothing escaped, its text borrowed. A backslash
    /// or a control character (which JSON refuses unescaped) gives `None`.
    fn string(&mut self) -> Option<&'a str> {
        let rest = self.0.strip_prefix('"')?;
        let end = rest
            .bytes()
            .position(|b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest.as_bytes()[end] != b'"' {
            return None;
        }
        self.0 = &rest[end + 1..];
        Some(&rest[..end])
    }

    /// A JSON object of strings; its pairs in order if `keep`.
    fn pairs(&mut self, keep: bool) -> Option<Pairs<'a>> {
        self.literal("{")?;
        let mut pairs = Vec::new();
        if self.literal("}").is_some() {
            return Some(Pairs(pairs));
        }
        loop {
            let name = self.string()?;
            self.literal(":")?;
            let value = self.string()?;
            if keep {
                pairs.push((Cow::Borrowed(name), Cow::Borrowed(value)));
            }
            if self.literal(",").is_none() {
                self.literal("}")?;
                return Some(Pairs(pairs));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_view(body: &[u8]) -> Option<HttpRequestView<'_>> {
        match serde_json::from_slice::<super::super::WireView>(body).ok()? {
            super::super::WireView::Http(view) => Some(view),
            _ => None,
        }
    }

    /// What a view says, comparable.
    fn said(view: &HttpRequestView<'_>) -> String {
        format!(
            "{} {} {:?} {:?} {:?}",
            view.method, view.bound_path, view.params.0, view.query.0, view.user
        )
    }

    /// Whatever the quick reader reads, serde reads to the same view; the
    /// node's usual events are read quickly; escapes, other orders,
    /// whitespace and broken text are left to serde.
    #[test]
    fn the_quick_reader_agrees_with_serde() {
        let usual = [
            r#"{"Http":{"method":"GET","path":"/api/notes/bench","bound_path":"/api/notes/:key","params":{"key":"bench"},"query":{},"headers":{"host":"127.0.0.1:8080","cookie":""},"user":"bench.os"}}"#,
            r#"{"Http":{"method":"POST","path":"/x","bound_path":"/x","params":{},"query":{"a":"1","b":"é"},"headers":{},"user":null}}"#,
            r#"{"Http":{"method":"PUT","path":"/a/b/c","bound_path":"/a/*rest","params":{"rest":"b/c","rest":"d"},"query":{"":""},"headers":{"x-a":"1, 2"},"user":null}}"#,
        ];
        for text in usual {
            let quick = request_view(text.as_bytes()).expect("the node's shape is read quickly");
            let slow = serde_view(text.as_bytes()).expect("serde reads it");
            assert_eq!(said(&quick), said(&slow), "{text}");
        }
        let left_to_serde = [
            r#"{"Http":{"method":"GET","path":"/x","bound_path":"/x","params":{"k":"a\"b"},"query":{},"headers":{},"user":null}}"#,
            r#"{"Http":{"method":"GET","path":"/x","bound_path":"/x","params":{},"query":{},"headers":{"h":"a\\b"},"user":null}}"#,
            r#"{"Http":{"path":"/x","method":"GET","bound_path":"/x","params":{},"query":{},"headers":{},"user":null}}"#,
            r#"{"Http":{"method":"GET", "path":"/x","bound_path":"/x","params":{},"query":{},"headers":{},"user":null}}"#,
            r#"{"Http":{"method":"GET","path":"/x","bound_path":"/x","params":{},"query":{},"headers":{},"user":null,"extra":1}}"#,
            "{\"Http\":{\"method\":\"G\u{1}T\",\"path\":\"/x\",\"bound_path\":\"/x\",\"params\":{},\"query\":{},\"headers\":{},\"user\":null}}",
            r#"{"Http":{"method":"GET","path":"/x","bound_path":"/x","params":{},"query":{},"headers":{},"user":null}} "#,
            r#"{"Http":{"method":"GET","path":"/x","bound_path":"/x","params":{"a":1},"query":{},"headers":{},"user":null}}"#,
            r#"{"Http":{"method":"GET","path":"/x","bound_path":"/x","params":{"a":"1",},"query":{},"headers":{},"user":null}}"#,
            r#"{"Http":{"method":"GET","path":"/x","bound_path":"/x","params":{},"query":{},"headers":{},"user":null}"#,
            r#"{"WsClose":{"conn":1}}"#,
        ];
        for text in left_to_serde {
            assert!(request_view(text.as_bytes()).is_none(), "{text}");
        }
        // Cut anywhere, the usual event is never read as something else.
        for text in usual {
            for end in 0..text.len() {
                let Some(cut) = text.get(..end) else { continue };
                assert!(request_view(cut.as_bytes()).is_none(), "{cut}");
            }
        }
        assert!(request_view(b"{\"Http\":{\"method\":\"\xff\"").is_none());
    }
}

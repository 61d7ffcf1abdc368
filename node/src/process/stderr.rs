//! A guest's stderr. Each complete line becomes a `warn` event in the
//! node's log, inside the process's span, and the last lines are kept so
//! that a crash can say what the guest printed before it died (a Rust
//! guest prints its panic message there just before it traps).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Longest line logged; the rest of a longer line is cut.
const MAX_LINE: usize = 4096;
/// Lines kept for the crash report.
const KEPT_LINES: usize = 4;
/// Bytes the guest may write per `check-write`.
const WRITE_PERMIT: usize = 64 * 1024;

#[derive(Clone, Default)]
pub struct GuestStderr {
    inner: Arc<Mutex<Lines>>,
}

#[derive(Default)]
struct Lines {
    partial: Vec<u8>,
    last: VecDeque<String>,
}

impl GuestStderr {
    /// The last lines the guest printed, oldest first, joined by ` | `;
    /// `None` when it printed nothing.
    pub fn last_words(&self) -> Option<String> {
        let mut lines = self.lock();
        if !lines.partial.is_empty() {
            let rest = std::mem::take(&mut lines.partial);
            lines.finish(&rest);
        }
        let words: Vec<&str> = lines.last.iter().map(String::as_str).collect();
        (!words.is_empty()).then(|| words.join(" | "))
    }

    fn push(&self, bytes: &[u8]) {
        let mut lines = self.lock();
        let mut rest = bytes;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let mut line = std::mem::take(&mut lines.partial);
            extend_capped(&mut line, &rest[..end]);
            lines.finish(&line);
            rest = &rest[end + 1..];
        }
        extend_capped(&mut lines.partial, rest);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lines> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Lines {
    fn finish(&mut self, line: &[u8]) {
        let line = String::from_utf8_lossy(line).trim_end().to_string();
        if line.is_empty() {
            return;
        }
        tracing::warn!(target: "guest", "{line}");
        if self.last.len() == KEPT_LINES {
            self.last.pop_front();
        }
        self.last.push_back(line);
    }
}

fn extend_capped(line: &mut Vec<u8>, bytes: &[u8]) {
    let room = MAX_LINE.saturating_sub(line.len());
    line.extend_from_slice(&bytes[..bytes.len().min(room)]);
}

impl IsTerminal for GuestStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStderr {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestStderr {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestStderr {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestStderr {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_across_split_writes() {
        let err = GuestStderr::default();
        assert_eq!(err.last_words(), None);
        err.push(b"one\ntw");
        err.push(b"o\n\nthree\nfour\nfive");
        assert_eq!(
            err.last_words().as_deref(),
            Some("two | three | four | five")
        );
    }

    #[test]
    fn long_lines_are_cut() {
        let err = GuestStderr::default();
        err.push(&vec![b'x'; MAX_LINE * 3]);
        err.push(b"\n");
        assert_eq!(err.last_words().map(|w| w.len()), Some(MAX_LINE));
    }
}

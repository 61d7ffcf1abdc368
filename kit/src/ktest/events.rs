//! Room watches for `expect_event` steps: a node's admin WebSocket
//! (`/admin/watch`, as `kit watch-room` uses) on a thread of its own,
//! joined before the step that should cause the event runs, its frames
//! kept in a bounded channel until the `expect_event` step reads them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use hearth::api::{SECRET_HEADER, WATCH_PATH};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::admin::NodeLocation;

/// Frames kept per watch until its step reads them; a room that publishes
/// more before the step runs loses the newest, and the step says so.
pub const WATCH_CAPACITY: usize = 256;

/// How long a watch may take to be joined (it may cross to the owner's
/// node, which asks the owner).
pub const JOIN_DEADLINE: Duration = Duration::from_secs(30);

/// Largest frame kept, in bytes: a test's events, not bulk data.
const MAX_FRAME_BYTES: usize = 256 * 1024;

/// What a watch heard, in order.
#[derive(Debug, Clone)]
pub enum Heard {
    Joined,
    Refused(Value),
    Event {
        seq: u64,
        payload: Value,
    },
    /// Gap, lagged, ended, or a frame of another kind, as it came.
    Other(Value),
    /// The socket closed or failed.
    Closed(String),
}

/// One open watch; dropping it closes the socket and ends the thread
/// (a node stops at once only when no admin socket is left open).
pub struct Watch {
    frames: Receiver<Heard>,
    dropped: Arc<AtomicU64>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Watch {
    /// Opens a watch of `room` owned by `address` (`node@process`) through
    /// the node at `location`, and waits until it is joined.
    pub fn open(location: &NodeLocation, address: &str, room: &str) -> Result<Self> {
        let (tx, frames) = sync_channel(WATCH_CAPACITY);
        let url = format!("ws://127.0.0.1:{}{WATCH_PATH}", location.port);
        let secret = location.secret.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let dropped = Arc::new(AtomicU64::new(0));
        let dropped_by_thread = dropped.clone();
        let hello = json!({"watch": {"address": address, "room": room, "from": null}});
        std::thread::Builder::new()
            .name(format!("kit-t-watch-{room}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime,
                    Err(e) => {
                        let _ = tx.try_send(Heard::Closed(format!("no runtime: {e}")));
                        return;
                    }
                };
                runtime.block_on(async {
                    tokio::select! {
                        followed = follow(&url, &secret, hello, &tx, &dropped_by_thread) => {
                            if let Err(e) = followed {
                                let _ = tx.try_send(Heard::Closed(format!("{e:#}")));
                            }
                        }
                        _ = stopped => {}
                    }
                });
            })
            .context("starting a watch thread")?;
        let watch = Self {
            frames,
            dropped,
            _stop: stop,
        };
        let started = Instant::now();
        loop {
            let left = JOIN_DEADLINE.saturating_sub(started.elapsed());
            match watch.frames.recv_timeout(left) {
                Ok(Heard::Joined) => return Ok(watch),
                Ok(Heard::Refused(error)) => bail!("the room {room} refused the watch: {error}"),
                Ok(Heard::Closed(why)) => bail!("the watch of {room} closed: {why}"),
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => {
                    bail!("the watch of {room} was not joined within {JOIN_DEADLINE:?}")
                }
                Err(RecvTimeoutError::Disconnected) => bail!("the watch of {room} ended"),
            }
        }
    }

    /// The next frame, waiting until `deadline`.
    pub fn next(&self, deadline: Instant) -> Option<Heard> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.frames.recv_timeout(left).ok()
    }

    /// Frames dropped because the channel was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Reads frames until the socket ends or the watch is dropped.
async fn follow(
    url: &str,
    secret: &str,
    hello: Value,
    tx: &SyncSender<Heard>,
    dropped: &AtomicU64,
) -> Result<()> {
    let mut request = url.into_client_request()?;
    request
        .headers_mut()
        .insert(SECRET_HEADER, secret.parse().context("the admin secret")?);
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    socket.send(Message::text(hello.to_string())).await?;
    while let Some(frame) = socket.next().await {
        let Message::Text(text) = frame? else {
            continue;
        };
        if text.len() > MAX_FRAME_BYTES {
            continue;
        }
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let heard = if value.get("joined").is_some() {
            Heard::Joined
        } else if let Some(refused) = value.get("refused") {
            Heard::Refused(refused.get("error").cloned().unwrap_or(refused.clone()))
        } else if let Some(event) = value.pointer("/room/event/event") {
            Heard::Event {
                seq: event["seq"].as_u64().unwrap_or(0),
                payload: event["payload"].clone(),
            }
        } else if let Some(other) = value.pointer("/room/event") {
            Heard::Other(other.clone())
        } else {
            Heard::Other(value)
        };
        match tx.try_send(heard) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                dropped.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Disconnected(_)) => return Ok(()),
        }
    }
    bail!("the node closed the watch")
}

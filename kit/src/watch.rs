//! `kit watch-room ADDRESS ROOM`: print a live room's events as they come,
//! one JSON line each, through the node's admin WebSocket
//! (`/admin/watch`), for a room on this node or on any other.

use anyhow::{bail, Context, Result};
use futures::{SinkExt, StreamExt};
use hearth::api::{SECRET_HEADER, WATCH_PATH};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::admin::{locate, NodeArgs};

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The room's owner: `node@process:package:publisher`.
    pub address: String,
    /// The room's name.
    pub room: String,
    /// Resume after this sequence number (the last one you saw).
    #[arg(long)]
    pub from: Option<u64>,
    /// Stop after this many events (default: run until Ctrl-C).
    #[arg(long)]
    pub count: Option<u64>,
    #[command(flatten)]
    pub node: NodeArgs,
}

pub fn run(args: &WatchArgs) -> Result<()> {
    let location = locate(&args.node)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("start tokio")?;
    runtime.block_on(async {
        let url = format!("ws://127.0.0.1:{}{WATCH_PATH}", location.port);
        let mut request = url.as_str().into_client_request()?;
        request
            .headers_mut()
            .insert(SECRET_HEADER, location.secret.parse()?);
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .with_context(|| format!("connect to {url}"))?;
        let watch =
            json!({"watch": {"address": args.address, "room": args.room, "from": args.from}});
        socket.send(Message::text(watch.to_string())).await?;
        let mut events = 0;
        while let Some(frame) = socket.next().await {
            let Message::Text(text) = frame? else {
                continue;
            };
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
            if let Some(refused) = value.get("refused") {
                bail!("refused: {refused}");
            }
            if let Some(event) = value.get("room") {
                println!("{}", event["event"]);
                if event["event"].get("event").is_some() {
                    events += 1;
                }
            } else {
                eprintln!("kit: {value}");
            }
            if args.count.is_some_and(|n| events >= n) {
                break;
            }
        }
        Ok(())
    })
}

//! Attachments: stored on the sender's node, fetched by readers from it
//! through their own node's chat (which caches them), as samchat does.

use hearth_sdk::{AppError, State};

use crate::copy::{chat_at, our_node, HOST_TIMEOUT_MS};
use crate::error::{is_unreachable, remote_refusal, ChatError, MAX_ATTACHMENT_BYTES};
use crate::model::{Chat, CACHE_BYTES};
use crate::types::{Attachment, AttachmentData};
use crate::{client, store, util};

/// Most files we share (their bytes are bounded one by one).
const MAX_FILES: usize = 10_000;

pub async fn upload(
    state: &State<Chat>,
    name: String,
    mime: String,
    data: String,
) -> Result<Attachment, ChatError> {
    let name = name.trim().to_string();
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(ChatError::Invalid("a file name has 1 to 255 bytes".into()));
    }
    let mime = mime.trim().to_ascii_lowercase();
    if mime.len() > 100
        || !mime.contains('/')
        || mime.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ChatError::Invalid("a file type is like image/png".into()));
    }
    if data.len() > MAX_ATTACHMENT_BYTES.div_ceil(3) * 4 + 4 {
        return Err(ChatError::TooLarge(data.len() / 4 * 3));
    }
    let bytes = util::b64_decode(&data)?;
    if bytes.len() > MAX_ATTACHMENT_BYTES {
        return Err(ChatError::TooLarge(bytes.len()));
    }
    if state.with(|s| s.files.len()) >= MAX_FILES {
        return Err(ChatError::Limit(format!("at most {MAX_FILES} files")));
    }
    let attachment = Attachment {
        id: util::random_id(),
        node: our_node(),
        name,
        mime,
        size: bytes.len() as u64,
    };
    store::put_file(&store::own_file_key(&attachment.id), bytes).await?;
    state.update(|s| s.files.insert(attachment.id.clone(), attachment.clone()));
    Ok(attachment)
}

/// A file for our page: ours, cached, or fetched from its node.
pub async fn fetch(state: &State<Chat>, node: &str, id: &str) -> Result<AttachmentData, AppError> {
    util::check_node(node)?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ChatError::NotFound(format!("no file {id}")).into());
    }
    if node == our_node() {
        let attachment = state
            .with(|s| s.files.get(id).cloned())
            .ok_or_else(|| ChatError::NotFound(format!("no file {id}")))?;
        let bytes = store::get_file(&store::own_file_key(id))
            .await?
            .ok_or_else(|| ChatError::NotFound(format!("no file {id}")))?;
        return Ok(AttachmentData {
            attachment,
            data: util::b64_encode(&bytes),
        });
    }
    let key = store::cached_file_key(node, id);
    if let Some(bytes) = store::get_file(&key).await? {
        if let Ok(data) = hearth_sdk::json::from_bytes::<AttachmentData>(&bytes) {
            return Ok(data);
        }
    }
    let target = chat_at(node)?;
    let data = client::file_within(&target, id.to_string(), HOST_TIMEOUT_MS)
        .await
        .map_err(|e| {
            if is_unreachable(&e) {
                ChatError::SenderOffline(node.to_string()).into()
            } else {
                remote_refusal(e)
            }
        })?;
    if data.attachment.node != node
        || data.attachment.id != id
        || data.data.len() > MAX_ATTACHMENT_BYTES / 3 * 4 + 8
    {
        return Err(AppError::new(
            "bad-reply",
            format!("{node} sent another file"),
        ));
    }
    let encoded =
        hearth_sdk::json::to_bytes(&data).map_err(|e| ChatError::Storage(e.to_string()))?;
    let size = encoded.len() as u64;
    store::put_file(&key, encoded).await?;
    let evicted = state.update(|s| {
        s.cache.push_back((node.to_string(), id.to_string(), size));
        let mut total: u64 = s.cache.iter().map(|c| c.2).sum();
        let mut gone = Vec::new();
        while total > CACHE_BYTES && s.cache.len() > 1 {
            if let Some((n, i, sz)) = s.cache.pop_front() {
                total -= sz;
                gone.push(store::cached_file_key(&n, &i));
            }
        }
        gone
    });
    for key in evicted {
        let _ = store::delete_file(&key).await;
    }
    Ok(data)
}

/// A file we store, for `caller`, who must share a room with us where it
/// was sent.
pub async fn serve(
    state: &State<Chat>,
    caller: &str,
    id: &str,
) -> Result<AttachmentData, AppError> {
    let attachment = state.with(|s| {
        let attachment = s.files.get(id).cloned()?;
        let shared = s.file_rooms.get(id).is_some_and(|rooms| {
            rooms.iter().any(|address| {
                s.rooms
                    .get(address)
                    .is_some_and(|r| r.members.iter().any(|m| m.node == caller))
            })
        });
        shared.then_some(attachment)
    });
    let attachment =
        attachment.ok_or_else(|| ChatError::NotFound(format!("no file {id} for {caller}")))?;
    let bytes = store::get_file(&store::own_file_key(id))
        .await?
        .ok_or_else(|| ChatError::NotFound(format!("no file {id}")))?;
    Ok(AttachmentData {
        attachment,
        data: util::b64_encode(&bytes),
    })
}

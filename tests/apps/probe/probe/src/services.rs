//! Commands that use the node services through the SDK clients: `kv`,
//! `vfs`, `timers`, and `state_burst` (back-to-back durable writes).
//! Each answers `{"ok": ...}` or the `err` shape.

use hearth_sdk::json::{json, Value};
use hearth_sdk::timer::sleep_ms;
use hearth_sdk::{Kv, Vfs};
use serde::Deserialize;

use crate::{err_value, reply};

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum KvCmd {
    Set {
        db: String,
        key: String,
        value: String,
        package: Option<String>,
    },
    Get {
        db: String,
        key: String,
        package: Option<String>,
    },
    Delete {
        db: String,
        key: String,
    },
    Scan {
        db: String,
        prefix: String,
        limit: usize,
    },
    /// One raw page: answers key count, first and last key, value bytes
    /// and `next`.
    ScanPage {
        db: String,
        prefix: String,
        start: Option<String>,
        limit: usize,
        max_bytes: Option<u64>,
    },
    /// `count` keys `<prefix><n>` with values of `size` bytes, one set each.
    Fill {
        db: String,
        prefix: String,
        count: u64,
        size: usize,
    },
    /// Set every pair and delete every key in `deletes`, atomically.
    Batch {
        db: String,
        sets: Vec<(String, String)>,
        #[serde(default)]
        deletes: Vec<String>,
    },
    Grant {
        db: String,
        to: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum VfsCmd {
    Write {
        path: String,
        text: String,
        drive: Option<String>,
    },
    Append {
        path: String,
        text: String,
    },
    Read {
        path: String,
        offset: u64,
        length: u64,
        drive: Option<String>,
    },
    List {
        path: String,
    },
    Metadata {
        path: String,
    },
    Rename {
        from: String,
        to: String,
    },
    Remove {
        path: String,
    },
    CreateDir {
        path: String,
    },
    Grant {
        to: String,
    },
}

fn text(bytes: Option<Vec<u8>>) -> Value {
    bytes.map_or(Value::Null, |b| {
        Value::String(String::from_utf8_lossy(&b).into_owned())
    })
}

/// `{"ok": V}` or `{"err": {"kind": "service", "detail": ...}}`.
fn outcome<E: std::fmt::Debug>(result: Result<Value, E>) -> Value {
    match result {
        Ok(value) => json!({ "ok": value }),
        Err(error) => err_value("service", &format!("{error:?}"), None),
    }
}

pub(crate) fn kv(asker: u64, cmd: KvCmd) {
    hearth_sdk::spawn_task(async move {
        let result = async {
            Ok::<_, hearth_sdk::KvError>(match cmd {
                KvCmd::Set {
                    db,
                    key,
                    value,
                    package,
                } => {
                    open(&db, package.as_deref())
                        .await?
                        .set(&key, value.into_bytes())
                        .await?;
                    Value::Null
                }
                KvCmd::Get { db, key, package } => {
                    text(open(&db, package.as_deref()).await?.get(&key).await?)
                }
                KvCmd::Delete { db, key } => json!(Kv::open(&db).await?.delete(&key).await?),
                KvCmd::Scan { db, prefix, limit } => {
                    let entries = Kv::open(&db).await?.scan(&prefix, limit).await?;
                    let pairs: Vec<Value> = entries
                        .into_iter()
                        .map(|(k, v)| json!([k, String::from_utf8_lossy(&v)]))
                        .collect();
                    Value::Array(pairs)
                }
                KvCmd::ScanPage {
                    db,
                    prefix,
                    start,
                    limit,
                    max_bytes,
                } => {
                    let page = Kv::open(&db)
                        .await?
                        .scan_page(&prefix, start.as_deref(), limit, max_bytes)
                        .await?;
                    let bytes: usize = page.entries.iter().map(|(_, v)| v.len()).sum();
                    json!({
                        "count": page.entries.len(),
                        "first": page.entries.first().map(|(k, _)| k.clone()),
                        "last": page.entries.last().map(|(k, _)| k.clone()),
                        "bytes": bytes,
                        "next": page.next,
                    })
                }
                KvCmd::Fill {
                    db,
                    prefix,
                    count,
                    size,
                } => {
                    let kv = Kv::open(&db).await?;
                    for n in 0..count {
                        kv.set(&format!("{prefix}{n:06}"), vec![b'x'; size]).await?;
                    }
                    json!(count)
                }
                KvCmd::Batch { db, sets, deletes } => {
                    let kv = Kv::open(&db).await?;
                    let mut batch = kv.batch();
                    for (k, v) in &sets {
                        batch = batch.set(k, v.as_bytes());
                    }
                    for k in &deletes {
                        batch = batch.delete(k);
                    }
                    batch.commit().await?;
                    Value::Null
                }
                KvCmd::Grant { db, to } => {
                    Kv::open(&db).await?.grant(&to).await?;
                    Value::Null
                }
            })
        }
        .await;
        reply(asker, &outcome(result));
    });
}

async fn open(db: &str, package: Option<&str>) -> Result<Kv, hearth_sdk::KvError> {
    match package {
        Some(package) => Kv::open_of(package, db).await,
        None => Kv::open(db).await,
    }
}

pub(crate) fn vfs(asker: u64, cmd: VfsCmd) {
    hearth_sdk::spawn_task(async move {
        let result = async {
            let own = Vfs::own()?;
            let drive = |d: Option<String>| match d {
                Some(d) => Vfs::of(&d),
                None => Ok(own.clone()),
            };
            Ok::<_, hearth_sdk::VfsError>(match cmd {
                VfsCmd::Write {
                    path,
                    text,
                    drive: d,
                } => {
                    drive(d)?.write(&path, text.into_bytes()).await?;
                    Value::Null
                }
                VfsCmd::Append { path, text } => {
                    own.append(&path, text.into_bytes()).await?;
                    Value::Null
                }
                VfsCmd::Read {
                    path,
                    offset,
                    length,
                    drive: d,
                } => {
                    let chunk = drive(d)?.read(&path, offset, length).await?;
                    json!({"text": String::from_utf8_lossy(&chunk.bytes), "eof": chunk.eof})
                }
                VfsCmd::List { path } => {
                    let names: Vec<String> =
                        own.list(&path).await?.into_iter().map(|e| e.name).collect();
                    json!(names)
                }
                VfsCmd::Metadata { path } => {
                    let m = own.metadata(&path).await?;
                    json!({"is_dir": m.is_dir, "len": m.len})
                }
                VfsCmd::Rename { from, to } => {
                    own.rename(&from, &to).await?;
                    Value::Null
                }
                VfsCmd::Remove { path } => {
                    own.remove(&path).await?;
                    Value::Null
                }
                VfsCmd::CreateDir { path } => {
                    own.create_dir(&path).await?;
                    Value::Null
                }
                VfsCmd::Grant { to } => {
                    own.grant(&to).await?;
                    Value::Null
                }
            })
        }
        .await;
        reply(asker, &outcome(result));
    });
}

/// Sets one timer per delay at once; answers with the delays in the order
/// they fired and the elapsed milliseconds the probe saw for each.
pub(crate) fn timers(asker: u64, delays: Vec<u64>) {
    let started = std::time::Instant::now();
    let fired = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
    let total = delays.len();
    for ms in delays {
        let fired = fired.clone();
        hearth_sdk::spawn_task(async move {
            let result = sleep_ms(ms).await;
            let elapsed = started.elapsed().as_millis() as u64;
            let mut list = fired.borrow_mut();
            list.push(match result {
                Ok(()) => json!([ms, elapsed]),
                Err(error) => json!([ms, format!("{error}")]),
            });
            if list.len() == total {
                reply(asker, &json!({"ok": *list}));
            }
        });
    }
    if total == 0 {
        reply(asker, &json!({"ok": []}));
    }
}

/// `count` durable state writes back to back (each awaits its flush).
pub(crate) fn state_burst(count: u64) -> Value {
    for i in 0..count {
        if let Err(error) = hearth_sdk::set_state(&json!({"boots": 0, "value": i})) {
            return err_value("state", &error.to_string(), None);
        }
    }
    json!({"ok": count})
}

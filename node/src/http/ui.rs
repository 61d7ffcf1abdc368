//! App UIs: files of a package's `pkg/ui/` served under `/<process-id>/`,
//! and `/our.js`.
//!
//! HTML is sent with `Cache-Control: no-cache` (always revalidated, so a
//! new app version shows at once); other files may be cached for an hour.
//! Every file carries an `ETag` and `If-None-Match` gives 304. A package
//! whose `pkg/ui.json` holds `{"spa": true}` gets `index.html` for unknown
//! paths without a file extension (client-side routing).

use std::path::{Component, Path, PathBuf};

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::types::ProcessId;

const HTML_CACHE: &str = "no-cache";
const ASSET_CACHE: &str = "public, max-age=3600";

/// `pkg/ui.json`.
#[derive(Debug, Default, Deserialize)]
struct UiOptions {
    #[serde(default)]
    spa: bool,
    /// Serve the package's UI and non-public bindings from its own origin
    /// (`<package>.<publisher>.localhost:<port>`), with its own session.
    #[serde(default)]
    isolated: bool,
}

async fn options(packages_dir: &Path, package_id: &str) -> UiOptions {
    let path = packages_dir.join(package_id).join("pkg").join("ui.json");
    tokio::fs::read(path)
        .await
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Whether `package_id` asks for its own origin (`"isolated": true` in
/// `pkg/ui.json`).
pub async fn is_isolated(packages_dir: &Path, package_id: &str) -> bool {
    options(packages_dir, package_id).await.isolated
}

pub fn ui_dir(packages_dir: &Path, process: &ProcessId) -> PathBuf {
    packages_dir
        .join(process.package_id())
        .join("pkg")
        .join("ui")
}

/// The content type of a file, by extension.
pub fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// `rest` (the path below the prefix) as a relative file path, or `None`
/// if it tries to leave the UI directory.
fn relative(rest: &str) -> Option<PathBuf> {
    let rest = rest.trim_start_matches('/');
    let rest = if rest.is_empty() || rest.ends_with('/') {
        format!("{rest}index.html")
    } else {
        rest.to_string()
    };
    let p = PathBuf::from(&rest);
    (!rest.contains('\\') && p.components().all(|c| matches!(c, Component::Normal(_)))).then_some(p)
}

/// Serve `rest` from the UI of `process`'s package.
pub async fn serve(
    packages_dir: &Path,
    process: &ProcessId,
    rest: &str,
    headers: &HeaderMap,
) -> Response {
    let dir = ui_dir(packages_dir, process);
    let Some(rel) = relative(rest) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let mut file = dir.join(&rel);
    if !tokio::fs::metadata(&file).await.is_ok_and(|m| m.is_file()) {
        let options = options(packages_dir, &process.package_id()).await;
        if !(options.spa && rel.extension().is_none()) {
            return (StatusCode::NOT_FOUND, "not found").into_response();
        }
        file = dir.join("index.html");
    }
    let Ok(meta) = tokio::fs::metadata(&file).await else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    let etag = format!("\"{:x}-{:x}\"", meta.len(), modified);
    let kind = content_type(&file);
    let cache = if kind.starts_with("text/html") {
        HTML_CACHE
    } else {
        ASSET_CACHE
    };
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match tokio::fs::read(&file).await {
            Ok(bytes) => Response::new(Body::from(bytes)),
            Err(_) => return (StatusCode::NOT_FOUND, "not found").into_response(),
        }
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    response
}

/// `window.our = { node, process }`; `process` is `null` outside an app.
pub fn our_js(node: &str, process: Option<&ProcessId>) -> Response {
    let our = serde_json::json!({ "node": node, "process": process.map(|p| p.to_string()) });
    let body = format!("window.our = {our};\n");
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_stay_inside() {
        assert_eq!(relative("/"), Some(PathBuf::from("index.html")));
        assert_eq!(relative("/a/"), Some(PathBuf::from("a/index.html")));
        assert_eq!(relative("/app.js"), Some(PathBuf::from("app.js")));
        assert_eq!(relative("/../x"), None);
        assert_eq!(relative("/a/../../x"), None);
        assert_eq!(content_type(Path::new("a.css")), "text/css; charset=utf-8");
    }
}

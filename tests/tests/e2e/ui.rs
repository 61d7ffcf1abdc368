//! The node's own pages in real headless Chromium (Debian's `chromium`),
//! driven by `tests/ui/home.mjs` with playwright-core: the login page
//! (labelled field, wrong password said), the home page (app tiles with
//! icons or letter avatars, the chat's description in full, a hostile
//! app's long name and description kept inside its tile, system services
//! collapsed, desktop and phone width; tiles of even height, a tooltip
//! only where a tile's text is cut, decided in the page as it is laid out;
//! the System table stacked at phone width), the chat opening from its tile and
//! going live, logout. The screenshots go to `target/ui-shots/home-*.png`.
//! The chat between two nodes is `chat_browser.rs`.
//!
//! Fails (never skips) when Chromium or the npm packages are missing:
//! `.ci/setup` installs both.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::http::{web_node, webprobe_package_named, PASSWORD};
use crate::common::*;

const CHROMIUM: &str = "/usr/bin/chromium";

/// A package whose `metadata.json` says far more than a tile can show: a
/// name and a description of thousands of characters, one word of them
/// hundreds long, and markup.
fn long_winded_package() -> Vec<hearth::api::PackageFile> {
    let word = "Unbreakable".repeat(40);
    let metadata = json!({
        "name": format!("{word} app"),
        "description": format!("<b>Says a lot.</b> {word} {}", "and then some more ".repeat(300)),
        "properties": {"package_name": "longwinded", "publisher": "test", "current_version": "0.1.0"},
    });
    let mut files = webprobe_package_named("longwinded");
    for f in &mut files {
        if f.path == "metadata.json" {
            f.bytes = metadata.to_string().into_bytes();
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_and_login_in_headless_chromium() {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: run .ci/setup (apt-get install chromium)"
    );
    let ui_dir = workspace_root().join("tests/ui");
    assert!(
        ui_dir.join("node_modules/playwright-core").is_dir(),
        "tests/ui/node_modules is missing: run .ci/setup (npm ci in tests/ui)"
    );
    let n = web_node(
        "ui.os",
        IpAddr::from([127, 0, 0, 1]),
        Duration::from_secs(3600),
    )
    .await;
    n.install(long_winded_package()).await;
    let base = format!("http://127.0.0.1:{}", n.node.http_addr().port());
    let shots = workspace_root().join("target/ui-shots");
    std::fs::create_dir_all(&shots).expect("target/ui-shots");
    let output = tokio::task::block_in_place(|| {
        Command::new("node")
            .current_dir(&ui_dir)
            .args([
                "home.mjs",
                &base,
                "ui.os",
                PASSWORD,
                &shots.to_string_lossy(),
            ])
            .env("CHROMIUM", CHROMIUM)
            .output()
            .expect("run node (Node.js) for the browser script")
    });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let expected = [
        "unauthenticated home redirects to login",
        "unauthenticated API request refused",
        "login field is labelled",
        "wrong password shown",
        "login returns home",
        "chat tile with its icon links to the app",
        "app without UI gets a letter avatar",
        "chat description shows in full on a desktop",
        "a hostile description stays inside its tile on a desktop",
        "the tiles share the desktop row",
        "the tiles of a row are even, one long text making none taller",
        "a tooltip only where a tile's text is cut on a desktop",
        "a tooltip where the clamp cuts at a narrower width",
        "the tooltip goes when the text fits again",
        "version sits centred beside the badges",
        "no peers says so",
        "chat description shows in full on a phone",
        "a hostile description stays inside its tile on a phone",
        "system services under a collapsed section",
        "home page fits a phone",
        "the System table reads at phone width, nothing sideways",
        "the tiles are even at phone width",
        "a tooltip only where a tile's text is cut on a phone",
        "chat opens from its tile and goes live",
        "chat fits a phone",
        "logout ends the session",
    ];
    browser_report(&stdout, output.status.success(), &expected, &stderr);
    n.stop().await;
}

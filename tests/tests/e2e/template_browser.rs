//! The `ui` template of `kit new` in real headless Chromium: a project
//! made outside the checkout, built by `kit b` (the real `kit` binary),
//! installed by `kit s` on a real `hearth` child with a password, and its
//! page driven by `tests/ui/template.mjs` (playwright-core): login, the
//! page's `our.js`, its live room, signing through the HTTP API, a second
//! page hearing the first live, a refusal shown, markup kept as text, a
//! phone width. The screenshots go to `target/ui-shots/`.
//!
//! Fails (never skips) when Chromium or the npm packages are missing:
//! `.ci/setup` installs both.

use std::path::Path;
use std::process::Command;

use crate::common::*;
use crate::kit_dev::text;
use crate::kit_templates::kit;

const CHROMIUM: &str = "/usr/bin/chromium";
const PASSWORD: &str = "template demo";
const NODE: &str = "book.os";
const PACKAGE: &str = "my-book";

/// Every check the script must have run.
const EXPECTED: &[&str] = &[
    "the page asks for a login first",
    "the login leads back to the page",
    "our.js tells the page its node and process",
    "the page watches its room live",
    "an empty book says so",
    "a signed entry is shown",
    "the message box is cleared after signing",
    "a second page loads the entries kept",
    "an entry signed on one page shows live on another",
    "the newest entry comes first",
    "markup in an entry is shown as text",
    "each entry shown once",
    "a blank name is refused with the app's message",
    "the process kept two entries",
    "the page fits a phone",
    "no script errors",
];

#[test]
fn ui_template_page_works_in_headless_chromium() {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: run .ci/setup (apt-get install chromium)"
    );
    let ui_dir = workspace_root().join("tests/ui");
    assert!(
        ui_dir.join("node_modules/playwright-core").is_dir(),
        "tests/ui/node_modules is missing: run .ci/setup (npm ci in tests/ui)"
    );
    let user_home = TempDir::new("tpl-page-user");
    let outside = TempDir::new("tpl-page");
    let node_home = TempDir::new("tpl-page-node");

    let run = |what: &str, dir: &Path, args: &[&str]| {
        let out = kit(user_home.path())
            .current_dir(dir)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(out.status.success(), "{what}: {}", text(&out));
    };
    run(
        "kit new",
        outside.path(),
        &["new", PACKAGE, "--template", "ui"],
    );
    let project = outside.path().join(PACKAGE);
    run("kit b", &project, &["b"]);

    let password = node_home.path().join("password");
    std::fs::write(&password, format!("{PASSWORD}\n")).expect("password file");
    let node = HearthProcess::start(
        &node_home.path().join("home"),
        user_home.path(),
        NODE,
        &[
            "--password-file",
            &password.to_string_lossy(),
            "--no-mdns",
            "--p2p-bind",
            "127.0.0.1",
        ],
    );
    let home = node_home.path().join("home").to_string_lossy().to_string();
    run("kit s", &project, &["s", ".", "--home", &home]);

    let shots = workspace_root().join("target/ui-shots");
    std::fs::create_dir_all(&shots).expect("target/ui-shots");
    let base = format!("http://127.0.0.1:{}", node.port);
    let process = format!("{PACKAGE}:{PACKAGE}:sys");
    let output = Command::new("node")
        .current_dir(&ui_dir)
        .args(["template.mjs", &base, PASSWORD, NODE, &process])
        .arg(&shots)
        .env("CHROMIUM", CHROMIUM)
        .output()
        .expect("run node (Node.js) for the browser script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let log = std::fs::read_to_string(node_home.path().join("home/hearth.log")).unwrap_or_default();
    browser_report(
        &stdout,
        output.status.success(),
        EXPECTED,
        &format!("{stderr}\n--- node\n{log}"),
    );
    drop(node);
}

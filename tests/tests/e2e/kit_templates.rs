//! `kit new --template echo|app|ui` through the real `kit` and `hearth`
//! binaries, from a directory outside the checkout: each template's
//! printed next steps run as printed (a `kit f` node, `kit bs`, `kit i`,
//! `kit t`), all succeeding; and the chat app's own `kit t` suite.
//!
//! Builds share the workspace's target dir and one SDK unpacked under the
//! system temp dir (outside the checkout, stable across runs), so a
//! template build after the first compiles only the new crate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::kit_dev::{assert_no_checkout_path, kit_command, next_steps, text, StepShell};

/// `kit` as the template tests run it: the shared SDK dir on top of
/// `kit_dev`'s environment.
pub(crate) fn kit(user_home: &Path) -> Command {
    let mut command = kit_command(user_home);
    command.env("HEARTH_SDK_DIR", shared_sdk_dir());
    command
}

/// One SDK for every template test, outside the checkout.
fn shared_sdk_dir() -> PathBuf {
    std::env::temp_dir().join("hearth-e2e-kit-sdk")
}

/// `kit new NAME --template TEMPLATE` in a fresh directory outside the
/// checkout, then every printed next step, in order, by a shell; the
/// `kit i` step answers `answer` and the `kit t` step passes. Returns the
/// project dir (inside `outside`).
fn new_and_next_steps(
    template: &str,
    name: &str,
    answer: &str,
    user_home: &Path,
    outside: &Path,
) -> PathBuf {
    let checkout = workspace_root();
    assert!(!outside.starts_with(&checkout));
    let out = kit(user_home)
        .current_dir(outside)
        .args(["new", name, "--template", template])
        .output()
        .expect("kit new");
    assert!(out.status.success(), "{}", text(&out));
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        printed.contains(&format!("from template {template}")),
        "{printed}"
    );

    let project = outside.join(name);
    assert_no_checkout_path(&[&project, &shared_sdk_dir()]);

    let steps = next_steps(&printed);
    assert!(
        steps.first().is_some_and(|s| s.starts_with("cd ")),
        "{printed}"
    );
    assert!(
        steps.iter().any(|s| s == "kit t"),
        "kit t among the steps: {printed}"
    );
    let shell = StepShell {
        cwd: outside.join(&steps[0][3..]),
        user_home: user_home.to_path_buf(),
        port: free_port().to_string(),
        sdk_dir: Some(shared_sdk_dir()),
    };
    let label = format!("{template}: ");
    let (node, ran) = shell.run(&steps[1..], Duration::from_secs(60), &label);
    for (step, out) in &ran {
        if step.starts_with("kit i ") {
            let got: Value =
                serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(out)));
            let want: Value = serde_json::from_str(answer).expect("answer JSON");
            assert_eq!(got, want, "{template}: `{step}`");
        }
        if step == "kit t" {
            let said = text(out);
            assert!(said.contains(" passed, 0 failed"), "{said}");
        }
    }
    assert!(
        ran.iter().any(|(s, _)| s.starts_with("kit i ")),
        "ran: {ran:?}\n{printed}"
    );
    drop(node);
    project
}

#[test]
fn kit_new_lists_the_templates() {
    let user_home = TempDir::new("tpl-list");
    let out = kit(user_home.path())
        .args(["new", "--list"])
        .output()
        .expect("kit new --list");
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    let names: Vec<&str> = said
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["echo", "app", "ui"], "{said}");
    assert!(
        said.lines().all(|l| l.split_whitespace().count() > 3),
        "a description on each line: {said}"
    );

    let out = kit(user_home.path())
        .args(["new", "x", "--template", "nope"])
        .output()
        .expect("kit new");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("no template `nope`; there are: echo, app, ui"),
        "{}",
        text(&out)
    );
}

#[test]
fn template_echo_next_steps_pass_outside_the_checkout() {
    let user_home = TempDir::new("tpl-echo-user");
    let outside = TempDir::new("tpl-echo");
    new_and_next_steps(
        "echo",
        "my-echo",
        r#"{"ok":"world"}"#,
        user_home.path(),
        outside.path(),
    );
}

/// The app template: its tests.toml restarts a node and finds the count
/// kept; a broken copy of the test fails at the step that broke.
#[test]
fn template_app_next_steps_pass_outside_the_checkout() {
    let user_home = TempDir::new("tpl-app-user");
    let outside = TempDir::new("tpl-app");
    let project = new_and_next_steps(
        "app",
        "my-tally",
        r#"{"ok":2}"#,
        user_home.path(),
        outside.path(),
    );
    let tests = std::fs::read_to_string(project.join("tests.toml")).expect("tests.toml");
    assert!(tests.contains("restart = \"bob.os\""), "{tests}");
    assert!(tests.contains("expect_error = \"empty-name\""), "{tests}");
    let broken = tests.replace("expect_error = \"empty-name\"", "expect = { ok = 1 }");
    std::fs::write(project.join("tests.toml"), broken).expect("write tests.toml");
    let out = kit(user_home.path())
        .current_dir(&project)
        .args(["t", "--no-build"])
        .output()
        .expect("kit t");
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("got:      error empty-name:"), "{said}");
}

#[test]
fn template_ui_next_steps_pass_outside_the_checkout() {
    let user_home = TempDir::new("tpl-ui-user");
    let outside = TempDir::new("tpl-ui");
    let project = new_and_next_steps(
        "ui",
        "my-book",
        r#"{"ok":{"id":1,"name":"Ada","text":"hello"}}"#,
        user_home.path(),
        outside.path(),
    );
    for page in ["index.html", "app.js", "style.css"] {
        let file = project.join("pkg/ui").join(page);
        let body = std::fs::read_to_string(&file).expect("page file");
        assert!(!body.contains("guestbook"), "{}", file.display());
    }
    let app = std::fs::read_to_string(project.join("pkg/ui/app.js")).expect("app.js");
    assert!(app.contains("hearth.watch("), "the page watches its room");
}

/// The chat app's own `kit t` suite (`apps/chat/tests.toml`), on the chat
/// component the harness built into the target dir, run from a copy of
/// the package under the temp dir: nothing is written into the checkout.
#[test]
fn chat_kit_t_suite_passes() {
    let user_home = TempDir::new("chat-suite-user");
    let package = TempDir::new("chat-suite");
    for f in built_package("apps/chat", "chat.wasm") {
        let path = package.path().join(&f.path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("package dir");
        std::fs::write(path, f.bytes).expect("package file");
    }
    std::fs::copy(
        workspace_root().join("apps/chat/tests.toml"),
        package.path().join("tests.toml"),
    )
    .expect("copy the chat's tests.toml");
    let out = kit(user_home.path())
        .current_dir(package.path())
        .args(["t", "--no-build"])
        .output()
        .expect("kit t");
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("expect an event of room view"), "{said}");
    assert!(said.contains(" passed, 0 failed"), "{said}");
    assert!(!said.contains("FAIL"), "{said}");
}

/// `kit api`: the chat's description read from a built package directory
/// and from the package installed on a running node, the same methods in
/// both; an id the node does not run is a clear error.
#[test]
fn kit_api_describes_built_and_installed_packages() {
    let user_home = TempDir::new("api-user");
    let node_home = TempDir::new("api-node");
    let package = TempDir::new("api-chat");
    for f in built_package("apps/chat", "chat.wasm") {
        let path = package.path().join(&f.path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("package dir");
        std::fs::write(path, f.bytes).expect("package file");
    }
    let built = kit(user_home.path())
        .arg("api")
        .arg(package.path())
        .output()
        .expect("kit api DIR");
    assert!(built.status.success(), "{}", text(&built));
    let said = String::from_utf8_lossy(&built.stdout).to_string();
    assert!(said.starts_with("chat:chat:sys  #[app] Chat"), "{said}");
    assert!(
        said.contains("async send(room: String, text: String, reply_to: Option<u64>"),
        "{said}"
    );
    assert!(
        said.contains("http POST /api/send (authenticated)"),
        "{said}"
    );

    let node = HearthProcess::start(node_home.path(), user_home.path(), "api.os", &[]);
    let port = node.port.to_string();
    // By home: the node's run file under $HOME/.hearth/run may come later.
    let home = node_home.path().to_string_lossy().to_string();
    let out = kit(user_home.path())
        .arg("s")
        .arg(package.path())
        .args(["--home", &home])
        .output()
        .expect("kit s");
    assert!(out.status.success(), "{}", text(&out));
    let installed = kit(user_home.path())
        .args(["api", "chat:sys", "--home", &home])
        .output()
        .expect("kit api chat:sys");
    assert!(installed.status.success(), "{}", text(&installed));
    assert_eq!(
        String::from_utf8_lossy(&installed.stdout),
        said,
        "the installed package describes as the built one"
    );
    let json = kit(user_home.path())
        .args(["api", "chat:chat:sys", "--json", "--home", &home])
        .output()
        .expect("kit api --json");
    let list: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(list[0]["process"], "chat:chat:sys");
    assert!(list[0]["api"]["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .any(|m| m["name"] == "create_room"));
    assert!(list[0]["api"].get("rust_client").is_none());

    let missing = kit(user_home.path())
        .args(["api", "nope:sys", "--home", &home])
        .output()
        .expect("kit api nope:sys");
    assert_eq!(missing.status.code(), Some(1), "{}", text(&missing));
    assert!(
        text(&missing).contains(&format!("the node on port {port} runs no package nope:sys")),
        "{}",
        text(&missing)
    );
    drop(node);
}

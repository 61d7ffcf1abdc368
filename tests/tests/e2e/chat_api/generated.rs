//! The chat's committed generated files match the component the tests
//! build: `api/chat.json` is the description embedded in `chat.wasm`, and
//! the page's `pkg/ui/chat.js` is `api/chat.js` unchanged. A method added
//! or changed without `kit b` (and the copy into `pkg/ui/`) fails here.

use serde_json::Value;

use crate::common::*;

const START: &[u8] = b"HEARTH-API-V1\0";
const END: &[u8] = b"\0HEARTH-API-END";

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn committed_api_files_match_the_built_component() {
    let wasm = std::fs::read(guests().join("chat.wasm")).expect("chat.wasm built");
    let start = find(&wasm, START).expect("chat.wasm carries its API description") + START.len();
    let len = find(&wasm[start..], END).expect("the description is closed");
    let mut built: Value = serde_json::from_slice(&wasm[start..start + len]).expect("JSON");
    built
        .as_object_mut()
        .expect("an object")
        .remove("rust_client");

    let app = workspace_root().join("apps/chat");
    let committed: Value = serde_json::from_str(
        &std::fs::read_to_string(app.join("api/chat.json")).expect("api/chat.json"),
    )
    .expect("api/chat.json is JSON");
    assert!(
        built == committed,
        "apps/chat/api/chat.json is stale: run `kit b apps/chat` and commit api/"
    );

    let generated = std::fs::read_to_string(app.join("api/chat.js")).expect("api/chat.js");
    let page = std::fs::read_to_string(app.join("pkg/ui/chat.js")).expect("pkg/ui/chat.js");
    assert!(
        generated == page,
        "apps/chat/pkg/ui/chat.js differs from api/chat.js: copy it after `kit b`"
    );
    let methods = committed["methods"].as_array().expect("methods");
    let http = methods.iter().filter(|m| m["http"].is_object()).count();
    assert!(http >= 20, "the chat has its HTTP methods ({http})");
    for m in methods.iter().filter(|m| m["http"].is_object()) {
        let name = m["name"].as_str().expect("a name");
        assert!(
            page.contains(&format!("export function {name}(args)")),
            "the page's client has {name}"
        );
    }
}

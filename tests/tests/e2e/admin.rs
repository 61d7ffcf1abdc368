//! The admin API over real HTTP: loopback only, secret required, no web
//! pages.

use hearth::api::{InjectRequest, MESSAGE_PATH, SECRET_FILE, SECRET_HEADER, STATUS_PATH};
use serde_json::json;

use crate::common::*;

fn post(url: &str, headers: &[(&str, &str)], body: &InjectRequest) -> (u16, serde_json::Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.post(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut resp = req.send_json(body).expect("http call");
    let status = resp.status().as_u16();
    let json = resp
        .body_mut()
        .read_json()
        .unwrap_or(serde_json::Value::Null);
    (status, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_requires_the_secret_and_refuses_web_pages() {
    let n = TestNode::start("admin").await;
    n.install(echo_package()).await;
    let secret = std::fs::read_to_string(n.node.home().join(SECRET_FILE)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(n.node.home().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "secret must be owner-only");
    }
    let url = format!(
        "http://127.0.0.1:{}{MESSAGE_PATH}",
        n.node.http_addr().port()
    );
    let body = InjectRequest {
        target: "echo:echo:sys".into(),
        body: json!({"ping": 1}),
        timeout_ms: Some(5000),
        non_block: false,
    };
    let (status, err) = tokio::task::block_in_place(|| post(&url, &[], &body));
    assert_eq!(status, 401);
    assert_eq!(err["kind"], "unauthorized");
    let (status, _) =
        tokio::task::block_in_place(|| post(&url, &[(SECRET_HEADER, "wrong")], &body));
    assert_eq!(status, 401);
    let with_origin = [
        (SECRET_HEADER, secret.as_str()),
        ("origin", "http://evil.example"),
    ];
    let (status, err) = tokio::task::block_in_place(|| post(&url, &with_origin, &body));
    assert_eq!(status, 403, "{err}");
    let rebinding = [(SECRET_HEADER, secret.as_str()), ("host", "evil.example")];
    let (status, _) = tokio::task::block_in_place(|| post(&url, &rebinding, &body));
    assert_eq!(status, 403);
    let (status, reply) =
        tokio::task::block_in_place(|| post(&url, &[(SECRET_HEADER, secret.as_str())], &body));
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["body"], json!({"ping": 1}));
    // Typed errors come back with a status and a kind.
    let missing = InjectRequest {
        target: "nobody:echo:sys".into(),
        ..body
    };
    let (status, err) =
        tokio::task::block_in_place(|| post(&url, &[(SECRET_HEADER, secret.as_str())], &missing));
    assert_eq!(status, 404);
    assert_eq!(err["kind"], "unknown-process");
    let status_url = format!(
        "http://127.0.0.1:{}{STATUS_PATH}",
        n.node.http_addr().port()
    );
    let code = tokio::task::block_in_place(|| {
        ureq::get(&status_url)
            .call()
            .map(|r| r.status().as_u16())
            .unwrap_or_else(|e| match e {
                ureq::Error::StatusCode(c) => c,
                other => panic!("{other}"),
            })
    });
    assert_eq!(code, 401);
    n.stop().await;
}

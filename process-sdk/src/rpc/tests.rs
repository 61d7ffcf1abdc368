use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::client::{call_body, decode_reply};
use super::runtime::{envelope, parse_args};
use super::*;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
enum Shape {
    Dot,
    Circle { r: f64 },
}

#[test]
fn envelopes_round_trip_through_the_client() {
    let ok = envelope(Ok(br#"{"a":{"Circle":{"r":1.5}}}"#.to_vec()));
    let got: BTreeMap<String, Shape> = decode_reply(&ok).unwrap();
    assert_eq!(got["a"], Shape::Circle { r: 1.5 });

    let err = envelope(Err(AppError::forbidden("no")));
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&err).unwrap(),
        json!({"error": {"code": "forbidden", "message": "no"}})
    );
    let back = decode_reply::<u32>(&err).unwrap_err();
    assert_eq!(back.code(), "forbidden");
    assert_eq!(decode_reply::<u32>(b"[1]").unwrap_err().code(), "bad-reply");
}

#[test]
fn call_bodies_name_the_method() {
    #[derive(Serialize)]
    struct Args {
        key: String,
    }
    let body = call_body("get", &Args { key: "k".into() }).unwrap();
    assert_eq!(body, br#"{"get":{"key":"k"}}"#);
}

#[test]
fn wrong_arguments_say_what_was_expected() {
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Args {
        key: String,
    }
    let err = parse_args::<Args>(json!({"kee": 1}), "get", "{\"key\": String}").unwrap_err();
    assert_eq!(err.code, codes::BAD_REQUEST);
    assert!(
        err.message.contains("missing field `key`"),
        "{}",
        err.message
    );
    assert!(
        err.message.contains("{\"get\": {\"key\": String}}"),
        "{}",
        err.message
    );
    assert!(parse_args::<BTreeMap<String, u8>>(json!(null), "m", "{}")
        .unwrap()
        .is_empty());
}

#[test]
fn state_handles_share_one_value() {
    let state = State::new(1u32, None);
    let other = state.clone();
    other.update(|n| *n += 1);
    assert_eq!(state.with(|n| *n), 2);
    // Never persisted: nothing is written.
    assert!(state.persist(Persist::Never, |_| None).is_ok());
}

#[test]
fn ctx_keeps_what_guards_attach() {
    let mut ctx = Ctx::new(
        7,
        "a.os@p:q:r".parse::<crate::Address>().unwrap(),
        Via::Local,
    );
    ctx.attach(String::from("alice"));
    ctx.attach(String::from("bob"));
    assert_eq!(ctx.get::<String>().map(String::as_str), Some("bob"));
    assert!(ctx.get::<u8>().is_none());
}

#[test]
fn http_status_follows_the_code() {
    assert_eq!(AppError::bad_request("x").http_status(), 400);
    assert_eq!(AppError::new("empty-note", "x").http_status(), 422);
    assert_eq!(AppError::new(codes::UNKNOWN_METHOD, "x").http_status(), 404);
}

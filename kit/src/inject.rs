//! `kit i PROCESS_ID 'JSON'`: send one request to a process through the
//! node's admin API and print its response body as JSON.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hearth::api::{ApiError, InjectRequest, InjectResponse, MESSAGE_PATH};

use crate::admin::{AdminClient, NodeArgs, NodeError};

/// How long `kit i` waits for the response when `--timeout` is not given.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Extra time the HTTP call gets on top of the message timeout, so that the
/// node's typed `timeout` error arrives before kit gives up on the socket.
const HTTP_GRACE: Duration = Duration::from_secs(5);

/// Exit codes, for scripts.
const EXIT_CODES: &str = "\
Exit codes:
  0  the process answered (for an #[app]: {\"ok\": ...}); the answer is on stdout
  2  a typed error: the node's (unknown-process, timeout, capability-missing, ...)
     or the app's own {\"error\": {\"code\": ...}}, which is still printed on stdout;
     the kind is on stderr
  1  a problem on this side: bad arguments or JSON, no node running, connection refused";

#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_CODES)]
pub struct InjectArgs {
    /// Target process, `process:package:publisher`
    pub process_id: String,
    /// Request body as JSON, e.g. '{"Echo": "hi"}'
    pub json: String,
    /// Send to this node (`NODE@PROCESS_ID`) instead of the local one
    #[arg(short, long)]
    pub node: Option<String>,
    /// Seconds to wait for the response (decimals allowed)
    #[arg(short, long, value_name = "SECS", value_parser = parse_timeout)]
    pub timeout: Option<Duration>,
    /// Do not wait for a response; print the request id
    #[arg(long)]
    pub non_block: bool,
    #[command(flatten)]
    pub node_args: NodeArgs,
}

pub fn run(args: InjectArgs) -> Result<()> {
    let request = build_request(&args)?;
    let timeout = args.timeout.unwrap_or(DEFAULT_TIMEOUT);
    let client = AdminClient::connect(&args.node_args, timeout + HTTP_GRACE)?;
    let body = serde_json::to_vec(&request)?;
    let answer = client.post(MESSAGE_PATH, "application/json", &body)?;
    let response: InjectResponse = serde_json::from_slice(&answer)
        .context("the node's answer is not an InjectResponse (is kit older than the node?)")?;
    let output = if request.non_block {
        serde_json::json!({ "id": response.id })
    } else {
        response.body.unwrap_or(serde_json::Value::Null)
    };
    print_json(&output)?;
    match app_error(&output) {
        Some(error) => Err(NodeError { error }.into()),
        None => Ok(()),
    }
}

/// An app's typed error answer, `{"error": {"code": .., "message": ..}}`
/// (or `{"error": anything}`), as the error kit exits with.
pub fn app_error(body: &serde_json::Value) -> Option<ApiError> {
    let object = body.as_object()?;
    let error = object.get("error").filter(|_| object.len() == 1)?;
    let text = |key: &str| error.get(key).and_then(|v| v.as_str()).map(str::to_string);
    Some(ApiError {
        kind: text("code").unwrap_or_else(|| "app-error".into()),
        message: text("message").unwrap_or_else(|| error.to_string()),
    })
}

/// Validates the arguments and builds the admin request, before any I/O.
fn build_request(args: &InjectArgs) -> Result<InjectRequest> {
    let body: serde_json::Value = serde_json::from_str(&args.json)
        .with_context(|| format!("the message body is not valid JSON: {}", args.json))?;
    let timeout = args.timeout.unwrap_or(DEFAULT_TIMEOUT);
    Ok(InjectRequest {
        target: target(&args.process_id, args.node.as_deref())?,
        body,
        timeout_ms: Some(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
        non_block: args.non_block,
    })
}

/// `PROCESS_ID` or `NODE@PROCESS_ID`, after a shape check that catches the
/// usual slips (a missing part, a node given twice).
fn target(process_id: &str, node: Option<&str>) -> Result<String> {
    if process_id.contains('@') {
        bail!("`{process_id}`: give the node with --node, not in the process id");
    }
    let parts: Vec<&str> = process_id.split(':').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        bail!("`{process_id}` is not a process id; expected process:package:publisher");
    }
    match node {
        Some("") => bail!("--node is empty"),
        Some(node) => Ok(format!("{node}@{process_id}")),
        None => Ok(process_id.to_string()),
    }
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let secs: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    match Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "`{text}`: the timeout must be a positive number of seconds"
        )),
    }
}

/// Pretty JSON for a person, one line for a pipe.
fn print_json(value: &serde_json::Value) -> Result<()> {
    let stdout = std::io::stdout();
    let text = if stdout.is_terminal() {
        serde_json::to_string_pretty(value)?
    } else {
        serde_json::to_string(value)?
    };
    let mut out = stdout.lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(process_id: &str, json: &str) -> InjectArgs {
        InjectArgs {
            process_id: process_id.into(),
            json: json.into(),
            node: None,
            timeout: None,
            non_block: false,
            node_args: NodeArgs {
                port: None,
                home: None,
            },
        }
    }

    #[test]
    fn target_with_and_without_node() {
        assert_eq!(
            target("echo:echo:template.os", None).unwrap(),
            "echo:echo:template.os"
        );
        assert_eq!(
            target("echo:echo:template.os", Some("bob.os")).unwrap(),
            "bob.os@echo:echo:template.os"
        );
    }

    #[test]
    fn malformed_targets_are_rejected() {
        assert!(target("echo", None).is_err());
        assert!(target("echo::pub", None).is_err());
        assert!(target("a:b:c:d", None).is_err());
        assert!(target("bob.os@echo:echo:t.os", None).is_err());
        assert!(target("echo:echo:t.os", Some("")).is_err());
    }

    #[test]
    fn invalid_json_fails_before_sending() {
        let err = build_request(&args("a:b:c", "{not json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid JSON"), "{err}");
    }

    #[test]
    fn request_carries_timeout_and_body() {
        let mut a = args("a:b:c", r#"{"Echo": [1, 2]}"#);
        a.timeout = Some(parse_timeout("1.5").unwrap());
        a.non_block = true;
        let request = build_request(&a).unwrap();
        assert_eq!(request.timeout_ms, Some(1500));
        assert!(request.non_block);
        assert_eq!(request.body, serde_json::json!({"Echo": [1, 2]}));
        assert_eq!(
            build_request(&args("a:b:c", "1")).unwrap().timeout_ms,
            Some(15_000)
        );
    }

    #[test]
    fn app_errors_are_told_apart_from_answers() {
        let error = app_error(&serde_json::json!({
            "error": {"code": "bad-request", "message": "no such method"}
        }))
        .unwrap();
        assert_eq!(
            (error.kind.as_str(), error.message.as_str()),
            ("bad-request", "no such method")
        );
        assert_eq!(
            app_error(&serde_json::json!({"error": "x"})).unwrap().kind,
            "app-error"
        );
        assert!(app_error(&serde_json::json!({"ok": 1})).is_none());
        assert!(app_error(&serde_json::json!({"error": 1, "other": 2})).is_none());
        assert!(app_error(&serde_json::json!("error")).is_none());
    }

    #[test]
    fn timeouts_must_be_positive_numbers() {
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("soon").is_err());
        assert!(parse_timeout("NaN").is_err());
        assert_eq!(parse_timeout("2").unwrap(), Duration::from_secs(2));
    }
}

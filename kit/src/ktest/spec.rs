//! `tests.toml`: the tests `kit t` runs, read and checked before any node
//! boots. Each `[[test]]` names its nodes and lists its `[[test.step]]`s;
//! a step is one table with exactly one action key:
//!
//! ```toml
//! [[test]]
//! name = "echo across two nodes"
//! nodes = ["alice.os", "bob.os"]
//!
//! [[test.step]]
//! install = "."                       # a package dir, on every node (or `on`)
//!
//! [[test.step]]
//! inject = "echo:echo:sys"            # send from `on` (default: the first node)
//! on = "alice.os"
//! to = "bob.os"                       # the target's node (default: `on`)
//! body = { echo = { message = "hi" } }
//! expect = { ok = "hi" }              # the answer contains this
//!
//! [[test.step]]
//! inject = "echo:echo:sys"
//! body = { echo = "not an object" }
//! expect_error = "bad-request"        # a typed error of this kind
//!
//! [[test.step]]
//! kill = "bob.os"                     # SIGKILL; `restart = "bob.os"` boots it again
//!
//! [[test.step]]                       # a room event: watched from `on` before
//! expect_event = { owner = "chat:chat:sys", room = "view", match = { kind = "message" } }
//! to = "bob.os"                       # the owner's node (default: `on`)
//! timeout = 10                        # seconds to wait for it (default 10)
//! ```
//!
//! An `expect_event` watch is joined before the step in front of it runs
//! (the one that should cause the event; a run of `expect_event` steps is
//! joined together before that step), so the event cannot slip by.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use serde_json::Value;

/// Largest `tests.toml` read: a test file, not a data set.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Most nodes one test may boot (each is a real `hearth` process).
pub const MAX_NODES: usize = 8;

/// A whole test when its `timeout` is not given.
pub const DEFAULT_TEST_TIMEOUT: Duration = Duration::from_secs(120);

/// How long an `expect_event` waits when its `timeout` is not given.
pub const DEFAULT_EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// An inject's answer wait when its `timeout` is not given.
pub const DEFAULT_INJECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(rename = "test", default)]
    tests: Vec<TestSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestSpec {
    name: String,
    nodes: Vec<String>,
    /// Seconds for the whole test.
    timeout: Option<f64>,
    #[serde(rename = "step", default)]
    steps: Vec<StepSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepSpec {
    install: Option<String>,
    inject: Option<String>,
    kill: Option<String>,
    restart: Option<String>,
    on: Option<OneOrMany>,
    to: Option<String>,
    body: Option<toml::Value>,
    expect: Option<toml::Value>,
    expect_error: Option<String>,
    timeout: Option<f64>,
    /// Seconds to keep trying an inject until its expectation holds.
    retry_for: Option<f64>,
    expect_event: Option<EventSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventSpec {
    /// The room's owner, `process:package:publisher` (its node is `to`).
    owner: String,
    room: String,
    #[serde(rename = "match")]
    pattern: Option<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// One checked test.
#[derive(Debug, Clone)]
pub struct Test {
    pub name: String,
    pub nodes: Vec<String>,
    pub timeout: Duration,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone)]
pub enum Step {
    Install { dir: String, on: Vec<String> },
    Inject(Inject),
    Kill(String),
    Restart(String),
    ExpectEvent(ExpectEvent),
}

/// Waits for an event of a room that contains `pattern`.
#[derive(Debug, Clone)]
pub struct ExpectEvent {
    /// `process:package:publisher` of the room's owner.
    pub owner: String,
    pub room: String,
    /// The node that watches.
    pub on: String,
    /// The owner's node (default: `on`).
    pub to: Option<String>,
    /// What the event's payload must contain (see [`contains`]); any event
    /// when absent.
    pub pattern: Option<Value>,
    pub timeout: Duration,
}

impl ExpectEvent {
    /// `node@process:package:publisher` of the room's owner.
    pub fn address(&self) -> String {
        format!("{}@{}", self.to.as_deref().unwrap_or(&self.on), self.owner)
    }
}

#[derive(Debug, Clone)]
pub struct Inject {
    pub process: String,
    pub on: String,
    pub to: Option<String>,
    pub body: Value,
    pub expect: Expect,
    pub timeout: Duration,
    pub retry_for: Duration,
}

#[derive(Debug, Clone)]
pub enum Expect {
    /// Any answer that is not an error.
    Answer,
    /// An answer containing this (see [`contains`]).
    Json(Value),
    /// A typed error of this kind (the node's, or an app's `code`).
    Error(String),
}

impl Step {
    /// One line saying what the step does, for the report.
    pub fn describe(&self) -> String {
        match self {
            Step::Install { dir, on } => format!("install {dir} on {}", on.join(", ")),
            Step::Inject(i) => {
                let target = match &i.to {
                    Some(node) => format!("{node}@{}", i.process),
                    None => i.process.clone(),
                };
                format!("inject {} from {} to {target}", i.body, i.on)
            }
            Step::Kill(node) => format!("kill {node}"),
            Step::Restart(node) => format!("restart {node}"),
            Step::ExpectEvent(e) => {
                let pattern = e.pattern.as_ref().map(|p| format!(" containing {p}"));
                format!(
                    "expect an event of room {} at {}{} (watched from {})",
                    e.room,
                    e.address(),
                    pattern.unwrap_or_default(),
                    e.on
                )
            }
        }
    }
}

/// Parses and checks a `tests.toml`.
pub fn parse(text: &str) -> Result<Vec<Test>> {
    let file: FileSpec = toml::from_str(text).context("tests.toml is not valid")?;
    if file.tests.is_empty() {
        bail!("tests.toml has no [[test]]");
    }
    file.tests.into_iter().map(check_test).collect()
}

fn check_test(spec: TestSpec) -> Result<Test> {
    let name = spec.name.clone();
    let context = || format!("test `{name}`");
    if spec.nodes.is_empty() || spec.nodes.len() > MAX_NODES {
        bail!("{}: name 1 to {MAX_NODES} nodes", context());
    }
    for (i, node) in spec.nodes.iter().enumerate() {
        if spec.nodes[..i].contains(node) {
            bail!("{}: node {node} is named twice", context());
        }
    }
    let timeout = seconds(spec.timeout, DEFAULT_TEST_TIMEOUT).with_context(context)?;
    let steps = spec
        .steps
        .into_iter()
        .enumerate()
        .map(|(i, step)| {
            check_step(step, &spec.nodes).with_context(|| format!("{}, step {}", context(), i + 1))
        })
        .collect::<Result<Vec<_>>>()?;
    if steps.is_empty() {
        bail!("{}: no [[test.step]]", context());
    }
    Ok(Test {
        name: spec.name,
        nodes: spec.nodes,
        timeout,
        steps,
    })
}

fn check_step(spec: StepSpec, nodes: &[String]) -> Result<Step> {
    let actions = [
        spec.install.is_some(),
        spec.inject.is_some(),
        spec.kill.is_some(),
        spec.restart.is_some(),
        spec.expect_event.is_some(),
    ];
    if actions.iter().filter(|&&a| a).count() != 1 {
        bail!("a step has exactly one of install, inject, kill, restart, expect_event");
    }
    let known = |node: &str| -> Result<String> {
        if nodes.iter().any(|n| n == node) {
            Ok(node.to_string())
        } else {
            bail!(
                "node {node} is not in this test's nodes ({})",
                nodes.join(", ")
            )
        }
    };
    let on: Vec<String> = match &spec.on {
        None => Vec::new(),
        Some(OneOrMany::One(node)) => vec![known(node)?],
        Some(OneOrMany::Many(list)) => list.iter().map(|n| known(n)).collect::<Result<_>>()?,
    };
    if let Some(event) = spec.expect_event {
        if spec.body.is_some()
            || spec.expect.is_some()
            || spec.expect_error.is_some()
            || spec.retry_for.is_some()
        {
            bail!("an expect_event step takes on, to and timeout only");
        }
        if event.owner.split(':').count() != 3 || event.owner.contains('@') {
            bail!(
                "expect_event owner `{}`: give process:package:publisher (the node goes in `to`)",
                event.owner
            );
        }
        let on = match on.as_slice() {
            [] => nodes[0].clone(),
            [one] => one.clone(),
            _ => bail!("an event is watched from one node"),
        };
        let pattern = event
            .pattern
            .map(|p| serde_json::to_value(p).context("match to JSON"))
            .transpose()?;
        return Ok(Step::ExpectEvent(ExpectEvent {
            owner: event.owner,
            room: event.room,
            on,
            to: spec.to.as_deref().map(known).transpose()?,
            pattern,
            timeout: seconds(spec.timeout, DEFAULT_EVENT_TIMEOUT)?,
        }));
    }
    let only_inject = spec.to.is_some()
        || spec.body.is_some()
        || spec.expect.is_some()
        || spec.expect_error.is_some()
        || spec.timeout.is_some()
        || spec.retry_for.is_some();
    if spec.inject.is_none() && only_inject {
        bail!("to, body, expect, expect_error, timeout and retry_for belong to an inject step");
    }
    if let Some(dir) = spec.install {
        let on = if on.is_empty() { nodes.to_vec() } else { on };
        return Ok(Step::Install { dir, on });
    }
    if let Some(node) = spec.kill.as_deref().or(spec.restart.as_deref()) {
        if !on.is_empty() {
            bail!("kill and restart name their node; `on` does not apply");
        }
        let node = known(node)?;
        return Ok(match spec.kill {
            Some(_) => Step::Kill(node),
            None => Step::Restart(node),
        });
    }
    let process = spec.inject.unwrap_or_default();
    if process.split(':').count() != 3 || process.contains('@') {
        bail!("inject `{process}`: give process:package:publisher (the node goes in `to`)");
    }
    let on = match on.as_slice() {
        [] => nodes[0].clone(),
        [one] => one.clone(),
        _ => bail!("an inject is sent from one node"),
    };
    let to = spec.to.as_deref().map(known).transpose()?;
    let json = |value: toml::Value| serde_json::to_value(value).context("body to JSON");
    let body = spec.body.map(json).transpose()?.unwrap_or(Value::Null);
    let expect = match (spec.expect, spec.expect_error) {
        (Some(_), Some(_)) => bail!("expect and expect_error together can never both hold"),
        (Some(value), None) => Expect::Json(json(value)?),
        (None, Some(kind)) => Expect::Error(kind),
        (None, None) => Expect::Answer,
    };
    Ok(Step::Inject(Inject {
        process,
        on,
        to,
        body,
        expect,
        timeout: seconds(spec.timeout, DEFAULT_INJECT_TIMEOUT)?,
        retry_for: seconds(spec.retry_for, Duration::ZERO)?,
    }))
}

fn seconds(value: Option<f64>, default: Duration) -> Result<Duration> {
    match value {
        None => Ok(default),
        Some(secs) => Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| *d <= Duration::from_secs(3600))
            .with_context(|| format!("{secs} is not a number of seconds from 0 to 3600")),
    }
}

/// Whether `got` holds everything in `expected`: objects by their expected
/// keys (others may be there too), arrays item by item with the same
/// length, anything else equal.
pub fn contains(got: &Value, expected: &Value) -> bool {
    match (got, expected) {
        (Value::Object(got), Value::Object(expected)) => expected
            .iter()
            .all(|(key, want)| got.get(key).is_some_and(|have| contains(have, want))),
        (Value::Array(got), Value::Array(expected)) => {
            got.len() == expected.len() && got.iter().zip(expected).all(|(g, e)| contains(g, e))
        }
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => got == expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TWO_NODES: &str = r#"
        [[test]]
        name = "two"
        nodes = ["alice.os", "bob.os"]
        [[test.step]]
        install = "."
        [[test.step]]
        inject = "echo:echo:sys"
        on = "alice.os"
        to = "bob.os"
        body = { echo = { message = "hi" } }
        expect = { ok = "hi" }
        [[test.step]]
        kill = "bob.os"
        [[test.step]]
        inject = "echo:echo:sys"
        to = "bob.os"
        expect_error = "offline"
        retry_for = 5
    "#;

    #[test]
    fn parses_a_two_node_test() {
        let tests = parse(TWO_NODES).unwrap();
        assert_eq!(tests.len(), 1);
        let steps = &tests[0].steps;
        assert!(matches!(&steps[0], Step::Install { on, .. } if on.len() == 2));
        let Step::Inject(inject) = &steps[1] else {
            panic!("{steps:?}")
        };
        assert_eq!(inject.body, json!({"echo": {"message": "hi"}}));
        assert_eq!(inject.to.as_deref(), Some("bob.os"));
        assert!(matches!(&steps[2], Step::Kill(n) if n == "bob.os"));
        let Step::Inject(inject) = &steps[3] else {
            panic!()
        };
        assert_eq!(inject.on, "alice.os");
        assert!(matches!(&inject.expect, Expect::Error(k) if k == "offline"));
        assert_eq!(inject.retry_for, Duration::from_secs(5));
    }

    #[test]
    fn mistakes_are_named() {
        let err = |text: &str| format!("{:#}", parse(text).unwrap_err());
        let head = "[[test]]\nname = \"t\"\nnodes = [\"a.os\"]\n[[test.step]]\n";
        assert!(err(&format!("{head}kill = \"b.os\"")).contains("not in this test's nodes"));
        assert!(err(&format!("{head}kill = \"a.os\"\ninstall = \".\"")).contains("exactly one"));
        assert!(err(&format!("{head}inject = \"x\"")).contains("process:package:publisher"));
        assert!(err(&format!("{head}install = \".\"\nexpect = 1")).contains("inject step"));
        assert!(err(&format!("{head}instal = \".\"")).contains("unknown field"));
        assert!(err("").contains("no [[test]]"));
    }

    #[test]
    fn containment() {
        let got = json!({"ok": {"a": 1, "b": [1, 2]}, "extra": true});
        assert!(contains(&got, &json!({"ok": {"a": 1}})));
        assert!(contains(&got, &json!({"ok": {"b": [1, 2]}})));
        assert!(contains(&json!(1.0), &json!(1)));
        assert!(!contains(&got, &json!({"ok": {"b": [1]}})));
        assert!(!contains(&got, &json!({"error": {}})));
        assert!(!contains(&json!("1"), &json!(1)));
    }

    #[test]
    fn parses_an_expect_event() {
        let text = r#"
            [[test]]
            name = "e"
            nodes = ["a.os", "b.os"]
            [[test.step]]
            expect_event = { owner = "g:g:sys", room = "entries", match = { action = "signed" } }
            on = "b.os"
            to = "a.os"
            timeout = 3
        "#;
        let tests = parse(text).unwrap();
        let Step::ExpectEvent(event) = &tests[0].steps[0] else {
            panic!("{:?}", tests[0].steps)
        };
        assert_eq!(event.address(), "a.os@g:g:sys");
        assert_eq!(event.on, "b.os");
        assert_eq!(event.pattern, Some(json!({"action": "signed"})));
        assert_eq!(event.timeout, Duration::from_secs(3));
        let bad = text.replace("timeout = 3", "body = 1");
        assert!(format!("{:#}", parse(&bad).unwrap_err()).contains("on, to and timeout only"));
        let bad = text.replace("g:g:sys", "a.os@g:g:sys");
        assert!(format!("{:#}", parse(&bad).unwrap_err()).contains("process:package:publisher"));
    }
}

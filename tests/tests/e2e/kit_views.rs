//! Views of a running node through the real `kit` and `hearth` binaries:
//! `kit ps` (state, restarts, mailbox, memory, messages handled, flags),
//! `kit top` (refreshing, busiest first), `kit m` (the messages to and
//! from a process, metadata only), the trace route's guard, and `kit logs`
//! for one process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;

/// Generous: CI runs every test at once on two cores.
const DEADLINE: Duration = Duration::from_secs(60);

fn kit(user_home: &Path) -> Command {
    let mut command = Command::new(binaries().join("kit"));
    command
        .env("HOME", user_home)
        .env_remove("HEARTH_PORT")
        .env_remove("HEARTH_HOME");
    command
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes `files` under a fresh directory and installs it with `kit s`.
fn install(user_home: &Path, port: &str, name: &str, files: Vec<hearth::api::PackageFile>) {
    let dir = TempDir::new(&format!("views-{name}"));
    for f in files {
        let path = dir.path().join(&f.path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("package dir");
        std::fs::write(path, f.bytes).expect("package file");
    }
    let out = kit(user_home)
        .arg("s")
        .arg(dir.path())
        .args(["--port", port])
        .output()
        .expect("kit s");
    assert!(out.status.success(), "{}", text(&out));
}

/// `kit i TARGET BODY`; returns the output (the caller judges the status).
fn inject(user_home: &Path, port: &str, target: &str, body: &str) -> Output {
    kit(user_home)
        .args(["i", target, body, "--port", port])
        .output()
        .expect("kit i")
}

/// One row of `kit ps`, split into its columns.
fn ps_row(said: &str, id: &str) -> Option<Vec<String>> {
    said.lines()
        .find(|l| l.starts_with(&format!("{id} ")))
        .map(|l| l.split_whitespace().map(str::to_string).collect())
}

fn kit_ps(user_home: &Path, port: &str) -> String {
    let out = kit(user_home)
        .args(["ps", "--port", port])
        .output()
        .expect("kit ps");
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Waits until `check` finds what it wants in `kit ps`'s output.
fn ps_until(user_home: &Path, port: &str, what: &str, check: impl Fn(&str) -> bool) -> String {
    let t = Instant::now();
    loop {
        let said = kit_ps(user_home, port);
        if check(&said) {
            return said;
        }
        assert!(t.elapsed() < DEADLINE, "never {what}:\n{said}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `2.0M` and the like back to a lower bound in bytes.
fn at_least_bytes(short: &str) -> u64 {
    let (digits, unit) = short.split_at(short.len() - 1);
    let scale = match unit {
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return short.parse().expect("bytes"),
    };
    (digits.parse::<f64>().expect("figure") * scale as f64) as u64
}

/// `kit ps` on a node with echo, chat and the probe: counters of
/// messages handled, guest memory, restarts after a crash, a process that
/// crashed for good; then `kit top --iterations 2` orders by activity.
#[test]
fn kit_ps_and_top_show_counters_restarts_and_activity() {
    let user_home = TempDir::new("views-user");
    let node_home = TempDir::new("views-node");
    let node = HearthProcess::start(node_home.path(), user_home.path(), "views.os", &[]);
    let port = node.port.to_string();
    let user = user_home.path();
    install(user, &port, "echo", echo_package());
    install(user, &port, "chat", built_package("apps/chat", "chat.wasm"));
    install(user, &port, "probe", probe_package(standard_manifest()));

    for i in 0..3 {
        let out = inject(user, &port, "echo:echo:sys", &format!(r#"{{"n": {i}}}"#));
        assert!(out.status.success(), "{}", text(&out));
    }
    let out = inject(user, &port, "chat:chat:sys", r#"{"me": {}}"#);
    assert!(out.status.success(), "{}", text(&out));
    let out = inject(user, &port, "alpha:probe:test", r#"{"alloc_mb": 8}"#);
    assert!(out.status.success(), "{}", text(&out));
    // phoenix restarts after a trap; mortal (on_exit None) stays down.
    for crashy in ["phoenix:probe:test", "mortal:probe:test"] {
        let out = inject(user, &port, crashy, r#"{"trap": null}"#);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("process-exited"),
            "{}",
            text(&out)
        );
    }

    let said = ps_until(user, &port, "phoenix restarted and running", |said| {
        ps_row(said, "phoenix:probe:test").is_some_and(|r| r[1] == "running" && r[2] == "1")
    });
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["PROCESS", "STATE", "RESTARTS", "QUEUED", "BYTES", "MEMORY", "HANDLED", "FLAGS"],
        "{said}"
    );
    let echo = ps_row(&said, "echo:echo:sys").expect("echo listed");
    assert_eq!(echo[1], "running", "{said}");
    assert_eq!(echo[2], "0", "no restarts: {said}");
    assert!(echo[6].parse::<u64>().expect("handled") >= 3, "{said}");
    assert!(
        at_least_bytes(&echo[5]) >= 64 * 1024,
        "echo's linear memory: {said}"
    );
    assert_eq!(echo[7], "public,networked", "{said}");
    let chat = ps_row(&said, "chat:chat:sys").expect("chat listed");
    assert_eq!(chat[1], "running", "{said}");
    assert!(chat[6].parse::<u64>().expect("handled") >= 1, "{said}");
    assert_eq!(chat[7], "networked", "{said}");
    let alpha = ps_row(&said, "alpha:probe:test").expect("alpha listed");
    assert!(
        at_least_bytes(&alpha[5]) >= 8 << 20,
        "8 MiB allocated by the guest show in its memory: {said}"
    );
    let mortal = ps_row(&said, "mortal:probe:test").expect("a crashed process stays listed");
    assert_eq!(mortal[1], "crashed", "{said}");
    // Native services: no guest, so no memory or handled count.
    let kv = ps_row(&said, "kv:distro:sys").expect("kv listed");
    assert_eq!((kv[5].as_str(), kv[6].as_str()), ("-", "-"), "{said}");

    // `kit top`: echo is kept busy while two frames are taken.
    let busy = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let pinger = {
        let (busy, user, port) = (busy.clone(), user.to_path_buf(), port.clone());
        std::thread::spawn(move || {
            while busy.load(std::sync::atomic::Ordering::Relaxed) {
                let out = inject(&user, &port, "echo:echo:sys", r#"{"ping": 1}"#);
                assert!(out.status.success(), "{}", text(&out));
            }
        })
    };
    let t = Instant::now();
    let frames = loop {
        let out = kit(user)
            .args([
                "top",
                "--iterations",
                "2",
                "--interval",
                "1.5",
                "--port",
                &port,
            ])
            .output()
            .expect("kit top");
        assert!(out.status.success(), "{}", text(&out));
        let said = String::from_utf8_lossy(&out.stdout).to_string();
        let frames: Vec<String> = said.split("\n\n").map(str::to_string).collect();
        assert_eq!(
            frames.len(),
            2,
            "two frames, no escapes off a terminal: {said}"
        );
        assert!(!said.contains('\x1b'), "{said}");
        let second = &frames[1];
        let echo_active = second
            .lines()
            .find(|l| l.contains("echo:echo:sys"))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|a| a.parse::<u64>().ok())
            .unwrap_or(0);
        if echo_active > 0 || t.elapsed() > DEADLINE {
            break frames;
        }
    };
    busy.store(false, std::sync::atomic::Ordering::Relaxed);
    pinger.join().expect("pinger");
    for frame in &frames {
        let mut lines = frame.lines();
        assert!(lines
            .next()
            .expect("title")
            .starts_with("kit top: views.os"));
        assert!(lines
            .next()
            .expect("header")
            .trim_start()
            .starts_with("ACTIVE"));
        let active: Vec<u64> = lines
            .map(|l| {
                l.split_whitespace()
                    .next()
                    .expect("active")
                    .parse()
                    .expect("number")
            })
            .collect();
        assert!(active.len() > 5, "{frame}");
        assert!(
            active.windows(2).all(|w| w[0] >= w[1]),
            "busiest first: {frame}"
        );
    }
    let second = &frames[1];
    let echo_line = second
        .lines()
        .find(|l| l.contains("echo:echo:sys"))
        .expect("echo in the frame");
    let echo_active: u64 = echo_line
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        echo_active > 0,
        "echo handled pings between frames: {second}"
    );
    drop(node);
}

/// Output lines of a child, collected by a thread as they come.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl Lines {
    fn follow(&self, from: impl Read + Send + 'static) {
        let lines = self.0.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(from).lines().map_while(Result::ok) {
                lines.lock().expect("lines").push(line);
            }
        });
    }

    fn all(&self) -> Vec<String> {
        self.0.lock().expect("lines").clone()
    }
}

/// A child killed (and reaped) on drop.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `kit m echo:echo:sys --count 2` sees `kit i`'s request and echo's
/// response, with their sizes and kinds, and then exits.
#[test]
fn kit_m_follows_a_request_and_its_response() {
    let user_home = TempDir::new("m-user");
    let node_home = TempDir::new("m-node");
    let node = HearthProcess::start(node_home.path(), user_home.path(), "m.os", &[]);
    let port = node.port.to_string();
    let user = user_home.path();
    install(user, &port, "echo", echo_package());
    let mut child = kit(user)
        .args(["m", "echo:echo:sys", "--count", "2", "--port", &port])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kit m");
    let lines = Lines::default();
    lines.follow(child.stdout.take().expect("stdout"));
    let errors = Lines::default();
    errors.follow(child.stderr.take().expect("stderr"));
    let mut child = Reaped(child);
    // The header comes once the node registered the watch.
    let t = Instant::now();
    while lines.all().is_empty() {
        assert!(t.elapsed() < DEADLINE, "no header: {:?}", errors.all());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        lines.all()[0].starts_with("TIME (UTC)"),
        "{:?}",
        lines.all()
    );
    // Compact JSON: `{"hello":"world"}` is 17 bytes; echo answers it as it came.
    let out = inject(user, &port, "echo:echo:sys", r#"{"hello": "world"}"#);
    assert!(out.status.success(), "{}", text(&out));
    let status = loop {
        if let Some(status) = child.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            t.elapsed() < DEADLINE,
            "kit m did not stop after 2 lines: {:?}",
            lines.all()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(200));
    let said = lines.all();
    assert!(status.success(), "{said:?} {:?}", errors.all());
    assert_eq!(said.len(), 3, "a header and two messages: {said:?}");
    let request: Vec<&str> = said[1].split_whitespace().collect();
    assert_eq!(
        request[1..],
        [
            "request",
            "17",
            "m.os@rpc:distro:sys",
            "->",
            "m.os@echo:echo:sys"
        ],
        "{said:?}"
    );
    let response: Vec<&str> = said[2].split_whitespace().collect();
    assert_eq!(response[1], "response", "{said:?}");
    assert_eq!(
        response[3..],
        ["m.os@echo:echo:sys", "->", "m.os@rpc:distro:sys"]
    );
    assert!(response[2].parse::<u64>().expect("size") >= 17, "{said:?}");
    assert!(
        !said.iter().any(|l| l.contains("world")),
        "bodies never shown: {said:?}"
    );
    drop(node);
}

/// A raw HTTP/1.1 GET; returns the status and what came of the body
/// within a short read.
fn raw_get(ip: IpAddr, port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = TcpStream::connect((ip, port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut request = format!("GET {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => break,
        }
    }
    let head = String::from_utf8_lossy(&head).to_string();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; 4096];
    let n = stream.read(&mut body).unwrap_or(0);
    (status, String::from_utf8_lossy(&body[..n]).to_string())
}

/// This machine's address on its first non-loopback interface.
fn outward_ip() -> IpAddr {
    let socket = UdpSocket::bind("0.0.0.0:0").expect("udp socket");
    // No packet is sent: connect only picks the route and source address.
    socket
        .connect("192.0.2.1:9")
        .or_else(|_| socket.connect("10.255.255.255:9"))
        .expect("a route off loopback");
    socket.local_addr().expect("local addr").ip()
}

/// The trace route is an admin route: a web page (an `Origin`), a caller
/// without the secret, a foreign `Host` and a client on another address
/// are refused; a fifth watcher is told the node is busy.
#[test]
fn trace_route_refuses_pages_strangers_and_a_fifth_watcher() {
    let user_home = TempDir::new("trace-user");
    let node_home = TempDir::new("trace-node");
    let node = HearthProcess::start(
        node_home.path(),
        user_home.path(),
        "trace.os",
        &["--bind", "0.0.0.0"],
    );
    let secret = std::fs::read_to_string(node_home.path().join(hearth::api::SECRET_FILE))
        .expect("secret")
        .trim()
        .to_string();
    let port = node.port;
    let local = IpAddr::from([127, 0, 0, 1]);
    let host = format!("127.0.0.1:{port}");
    let path = hearth::api::TRACE_PATH;
    let (status, body) = raw_get(
        local,
        port,
        path,
        &[
            ("Host", &host),
            (hearth::api::SECRET_HEADER, &secret),
            ("Origin", "http://evil.example"),
        ],
    );
    assert_eq!(status, 403, "a web page: {body}");
    let (status, body) = raw_get(local, port, path, &[("Host", &host)]);
    assert_eq!(status, 401, "no secret: {body}");
    let (status, body) = raw_get(
        local,
        port,
        path,
        &[
            ("Host", "evil.example"),
            (hearth::api::SECRET_HEADER, &secret),
        ],
    );
    assert_eq!(status, 403, "a rebinding Host: {body}");
    let outward = outward_ip();
    if !outward.is_loopback() && !outward.is_unspecified() {
        let (status, body) = raw_get(
            outward,
            port,
            path,
            &[
                ("Host", &format!("{outward}:{port}")),
                (hearth::api::SECRET_HEADER, &secret),
            ],
        );
        assert_eq!(status, 403, "a client at {outward}: {body}");
    }
    // Four watchers are served (each open stream holds one)...
    let watchers: Vec<TcpStream> = (0..hearth::kernel::trace::MAX_WATCHERS)
        .map(|_| {
            let mut s = TcpStream::connect((local, port)).expect("connect");
            write!(
                s,
                "GET {path} HTTP/1.1\r\nHost: {host}\r\n{}: {secret}\r\n\r\n",
                hearth::api::SECRET_HEADER
            )
            .expect("send");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            let mut first = [0u8; 12];
            s.read_exact(&mut first).expect("answer head");
            assert_eq!(&first, b"HTTP/1.1 200", "a watcher is served");
            s
        })
        .collect();
    // ...and a fifth is refused while they stay.
    let (status, body) = raw_get(
        local,
        port,
        path,
        &[("Host", &host), (hearth::api::SECRET_HEADER, &secret)],
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("busy"), "{body}");
    // Gone watchers free their slots (noticed at the next write, within
    // the heartbeat).
    drop(watchers);
    let t = Instant::now();
    loop {
        let mut s = TcpStream::connect((local, port)).expect("connect");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\n{}: {secret}\r\n\r\n",
            hearth::api::SECRET_HEADER
        )
        .expect("send");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut first = [0u8; 12];
        s.read_exact(&mut first).expect("answer head");
        if &first == b"HTTP/1.1 200" {
            break;
        }
        assert!(t.elapsed() < DEADLINE, "slots never freed");
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(node);
}

/// `kit logs PROCESS` (from the log `kit f` keeps) prints only that
/// process's lines, on a node with echo and chat.
#[test]
fn kit_logs_shows_one_process_only() {
    let user_home = TempDir::new("vlogs-user");
    let home = TempDir::new("vlogs-home");
    let user = user_home.path();
    let fake = kit(user)
        .args(["f", "--port", "0", "--home"])
        .arg(home.path())
        .args(["--", "--no-mdns"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("kit f");
    let _fake = Reaped(fake);
    let port_file = home.path().join(hearth::api::PORT_FILE);
    let t = Instant::now();
    let port = loop {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .filter(|p| !p.trim().is_empty())
        {
            break port.trim().to_string();
        }
        assert!(t.elapsed() < DEADLINE, "kit f did not boot a node");
        std::thread::sleep(Duration::from_millis(50));
    };
    install(user, &port, "echo", echo_package());
    install(user, &port, "chat", built_package("apps/chat", "chat.wasm"));
    let out = inject(user, &port, "echo:echo:sys", r#"{"views": 1}"#);
    assert!(out.status.success(), "{}", text(&out));
    let out = inject(user, &port, "chat:chat:sys", r#"{"me": {}}"#);
    assert!(out.status.success(), "{}", text(&out));
    let logs = |process: Option<&str>| -> String {
        let mut command = kit(user);
        command.arg("logs");
        command.args(process);
        let out = command
            .args(["-n", "1000", "--port", &port])
            .output()
            .expect("kit logs");
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let t = Instant::now();
    while !(logs(None).contains("process{id=echo:echo:sys}")
        && logs(None).contains("process{id=chat:chat:sys}"))
    {
        assert!(t.elapsed() < DEADLINE, "{}", logs(None));
        std::thread::sleep(Duration::from_millis(200));
    }
    let echo = logs(Some("echo:echo:sys"));
    assert!(!echo.trim().is_empty(), "{}", logs(None));
    for line in echo.lines() {
        assert!(line.contains("echo:echo:sys"), "{line}\n{echo}");
        assert!(!line.contains("process{id=chat:chat:sys}"), "{line}");
    }
    let chat = logs(Some("chat:chat:sys"));
    assert!(
        chat.lines().all(|l| !l.contains("process{id=echo")),
        "{chat}"
    );
}

//! A small HTTP/1.1 load generator for `kit bench http`: keep-alive
//! connections, each sending one request at a time (bounded concurrency =
//! the number of connections), timing every request. Written here so the
//! bench depends on no external tool.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// What one load run measured.
pub struct Load {
    pub requests_per_sec: f64,
    /// Sorted request latencies in µs.
    pub latencies_us: Vec<f64>,
    /// CPU time of this whole process (server, client and anything else
    /// it runs) over the run, per request, in µs.
    pub cpu_us_per_request: f64,
}

/// CPU time (user + system) this process used so far, in µs.
pub fn process_cpu_us() -> f64 {
    // SAFETY: `getrusage` fills the zeroed struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    us(usage.ru_utime) + us(usage.ru_stime)
}

/// `connections` keep-alive connections sending `GET path`, each request
/// carrying `headers` (a session cookie), for `duration`.
pub async fn run_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    connections: usize,
    duration: Duration,
) -> Result<Load> {
    let mut head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let request = head.into_bytes();
    let started = Instant::now();
    let cpu_before = process_cpu_us();
    let deadline = started + duration;
    let mut tasks = JoinSet::new();
    for _ in 0..connections {
        let request = request.clone();
        tasks.spawn(async move { connection(addr, &request, deadline).await });
    }
    let mut latencies_us = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies_us.extend(done.context("load task")??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_us = process_cpu_us() - cpu_before;
    latencies_us.sort_by(f64::total_cmp);
    Ok(Load {
        requests_per_sec: latencies_us.len() as f64 / elapsed,
        cpu_us_per_request: cpu_us / latencies_us.len().max(1) as f64,
        latencies_us,
    })
}

async fn connection(addr: SocketAddr, request: &[u8], deadline: Instant) -> Result<Vec<f64>> {
    let mut stream = TcpStream::connect(addr).await.context("connect")?;
    stream.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(4096);
    let mut samples = Vec::new();
    while Instant::now() < deadline {
        let t = Instant::now();
        stream.write_all(request).await?;
        let (status, _, _) = read_response(&mut stream, &mut buf).await?;
        if status != 200 {
            bail!("status {status} from {addr}");
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(samples)
}

/// Read one response (Content-Length framed) from `stream`; returns its
/// status, head and body. Bytes past it stay in `buf`.
pub async fn read_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Result<(u16, String, Vec<u8>)> {
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed mid-response");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end])
        .context("response head")?
        .to_string();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow!("bad status line"))?;
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed mid-body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf[head_end..head_end + length].to_vec();
    buf.drain(..head_end + length);
    Ok((status, head, body))
}

/// One request on a fresh connection; returns status, head and body.
pub async fn once(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(u16, String, Vec<u8>)> {
    let mut stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    stream.write_all(body).await?;
    read_response(&mut stream, &mut Vec::new()).await
}

//! Talking to a running node: finding it (port, home, admin secret) and the
//! small blocking HTTP client for the admin API in [`hearth::api`].
//!
//! Discovery, without the user typing anything:
//! 1. `--home DIR` (or `HEARTH_HOME`) names the node's home directly; its
//!    port is `--port` if given, else the port the node wrote to
//!    `<home>/`[`PORT_FILE`].
//! 2. Otherwise the node on `--port` (default [`DEFAULT_PORT`]) is found
//!    through `$HOME/`[`RUN_DIR`]`/<port>`, which holds the path of its home.
//!
//! The secret is `<home>/`[`SECRET_FILE`], sent as [`SECRET_HEADER`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hearth::api::{ApiError, PORT_FILE, RUN_DIR, SECRET_FILE, SECRET_HEADER};

/// The port a node (and `kit f`) uses when none is given.
pub const DEFAULT_PORT: u16 = 8080;

/// Default deadline for one admin HTTP call. Installs move whole packages
/// over loopback and start processes; 60 s leaves room for a slow compile of
/// a large component on the node without hanging forever on a stuck node.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(60);

/// Where to find the node: shared by every subcommand that talks to one.
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// HTTP port of the node [default: 8080, or the port in --home]
    #[arg(short, long, env = "HEARTH_PORT")]
    pub port: Option<u16>,
    /// Home directory of the node (instead of looking it up by port)
    #[arg(long, env = "HEARTH_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,
}

/// A node located on this machine, with what is needed to call it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeLocation {
    pub port: u16,
    pub home: PathBuf,
    pub secret: String,
}

/// The node answered with a typed admin error ([`ApiError`]). `main` maps
/// this to its own exit code, so scripts can tell "the node said no" from
/// "kit could not even ask".
#[derive(Debug)]
pub struct NodeError {
    pub error: ApiError,
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ApiError { kind, message } = &self.error;
        // Some messages already start with their kind; say it once.
        let message = message
            .strip_prefix(kind.as_str())
            .and_then(|rest| rest.strip_prefix(": "))
            .unwrap_or(message);
        write!(f, "{kind}: {message}")
    }
}

impl std::error::Error for NodeError {}

/// Finds the node described by `args`, reading `$HOME` from the environment.
pub fn locate(args: &NodeArgs) -> Result<NodeLocation> {
    let user_home = std::env::var_os("HOME").map(PathBuf::from);
    discover(args.port, args.home.as_deref(), user_home.as_deref())
}

/// Discovery as a pure function of its inputs (and the files they point at).
pub fn discover(
    port: Option<u16>,
    home: Option<&Path>,
    user_home: Option<&Path>,
) -> Result<NodeLocation> {
    let (port, home) = match home {
        Some(home) => {
            let port = match port {
                Some(port) => port,
                None => read_port_file(home)?,
            };
            (port, home.to_path_buf())
        }
        None => {
            let port = port.unwrap_or(DEFAULT_PORT);
            (port, home_from_run_file(port, user_home)?)
        }
    };
    let secret = read_secret(&home)?;
    Ok(NodeLocation { port, home, secret })
}

/// The run file a node on `port` leaves under `user_home`.
pub fn run_file(user_home: &Path, port: u16) -> PathBuf {
    user_home.join(RUN_DIR).join(port.to_string())
}

fn home_from_run_file(port: u16, user_home: Option<&Path>) -> Result<PathBuf> {
    let Some(user_home) = user_home else {
        bail!("$HOME is not set, so the node on port {port} cannot be looked up; pass --home DIR");
    };
    let path = run_file(user_home, port);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no node is running on port {port} (no {}); start one with `kit f --port {port}`, \
             or pass --port/--home for another node",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let home = PathBuf::from(text.trim());
    if home.as_os_str().is_empty() || !home.is_absolute() {
        bail!("{} does not hold an absolute home path", path.display());
    }
    Ok(home)
}

fn read_port_file(home: &Path) -> Result<u16> {
    let path = home.join(PORT_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no port given and cannot read {} (is the node in {} running?); pass --port",
            path.display(),
            home.display()
        )
    })?;
    text.trim()
        .parse()
        .with_context(|| format!("{} does not hold a port number", path.display()))
}

fn read_secret(home: &Path) -> Result<String> {
    let path = home.join(SECRET_FILE);
    let secret = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read the admin secret {} (is {} the home of a running node?)",
            path.display(),
            home.display()
        )
    })?;
    let secret = secret.trim().to_string();
    if secret.is_empty() {
        bail!("the admin secret {} is empty", path.display());
    }
    Ok(secret)
}

/// Blocking admin client for one node.
pub struct AdminClient {
    agent: ureq::Agent,
    location: NodeLocation,
}

impl AdminClient {
    /// Locates the node and builds a client whose calls give up after
    /// `timeout`.
    pub fn connect(args: &NodeArgs, timeout: Duration) -> Result<Self> {
        let location = locate(args)?;
        let config = ureq::Agent::config_builder()
            // Non-2xx answers carry an `ApiError` body we want to read.
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build();
        Ok(Self {
            agent: ureq::Agent::new_with_config(config),
            location,
        })
    }

    pub fn location(&self) -> &NodeLocation {
        &self.location
    }

    /// POSTs `body` to `path`; returns the body of a 2xx answer.
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Result<Vec<u8>> {
        let url = self.url(path);
        let result = self
            .agent
            .post(&url)
            .header(SECRET_HEADER, &self.location.secret)
            .header("content-type", content_type)
            .send(body);
        self.answer(result, &url)
    }

    /// GETs `path`; returns the body of a 2xx answer.
    pub fn get(&self, path: &str) -> Result<Vec<u8>> {
        let url = self.url(path);
        let result = self
            .agent
            .get(&url)
            .header(SECRET_HEADER, &self.location.secret)
            .call();
        self.answer(result, &url)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.location.port)
    }

    fn answer(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        url: &str,
    ) -> Result<Vec<u8>> {
        let url = url.to_string();
        let mut response = match result {
            Ok(response) => response,
            Err(e) => return Err(self.transport_error(e, &url)),
        };
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .with_context(|| format!("reading the answer of {url}"))?;
        if (200..300).contains(&status) {
            return Ok(bytes);
        }
        match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(error) => Err(NodeError { error }.into()),
            Err(_) => bail!(
                "{url} answered HTTP {status}: {}",
                String::from_utf8_lossy(&bytes).trim()
            ),
        }
    }

    fn transport_error(&self, e: ureq::Error, url: &str) -> anyhow::Error {
        let port = self.location.port;
        match e {
            ureq::Error::ConnectionFailed => self.refused(),
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                self.refused()
            }
            ureq::Error::Timeout(_) => {
                anyhow::anyhow!("the node on port {port} did not answer in time ({url})")
            }
            e => anyhow::Error::new(e).context(format!("calling {url}")),
        }
    }

    fn refused(&self) -> anyhow::Error {
        anyhow::anyhow!(
            "no node answers on port {} (connection refused): the node with home {} is not \
             running; start it (e.g. `kit f`) or pick another --port",
            self.location.port,
            self.location.home.display()
        )
    }
}

/// Largest admin answer read (16 MiB): answers are small JSON documents;
/// anything bigger is a wrong server on that port.
const MAX_RESPONSE_BYTES: u64 = 16 * 1024 * 1024;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A fresh empty directory under the system temp dir, removed on drop.
    pub(crate) struct TempDir(pub PathBuf);

    impl TempDir {
        pub(crate) fn new(tag: &str) -> Self {
            use std::sync::atomic::{AtomicU32, Ordering};
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir =
                std::env::temp_dir().join(format!("kit-test-{tag}-{}-{n}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn node_home(root: &Path, secret: &str, port: Option<u16>) -> PathBuf {
        let home = root.join("node-home");
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(home.join(SECRET_FILE), secret).unwrap();
        if let Some(port) = port {
            std::fs::write(home.join(PORT_FILE), format!("{port}\n")).unwrap();
        }
        home
    }

    #[test]
    fn finds_secret_through_run_file() {
        let tmp = TempDir::new("run-file");
        let home = node_home(&tmp.0, "s3cret\n", None);
        let user_home = tmp.0.join("user");
        std::fs::create_dir_all(user_home.join(RUN_DIR)).unwrap();
        std::fs::write(run_file(&user_home, 8081), format!("{}\n", home.display())).unwrap();

        let found = discover(Some(8081), None, Some(&user_home)).unwrap();
        assert_eq!(
            found,
            NodeLocation {
                port: 8081,
                home,
                secret: "s3cret".into()
            }
        );
    }

    #[test]
    fn default_port_is_used_without_flags() {
        let tmp = TempDir::new("default-port");
        let home = node_home(&tmp.0, "x", None);
        let user_home = tmp.0.join("user");
        std::fs::create_dir_all(user_home.join(RUN_DIR)).unwrap();
        std::fs::write(
            run_file(&user_home, DEFAULT_PORT),
            home.display().to_string(),
        )
        .unwrap();
        assert_eq!(
            discover(None, None, Some(&user_home)).unwrap().port,
            DEFAULT_PORT
        );
    }

    #[test]
    fn home_flag_reads_port_file_unless_port_given() {
        let tmp = TempDir::new("home-flag");
        let home = node_home(&tmp.0, "abc", Some(9123));
        assert_eq!(discover(None, Some(&home), None).unwrap().port, 9123);
        assert_eq!(discover(Some(7000), Some(&home), None).unwrap().port, 7000);
    }

    #[test]
    fn missing_node_is_a_clear_error() {
        let tmp = TempDir::new("missing");
        let err = discover(Some(8099), None, Some(&tmp.0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no node is running on port 8099"), "{err}");
        assert!(err.contains("kit f --port 8099"), "{err}");
    }

    #[test]
    fn missing_secret_is_a_clear_error() {
        let tmp = TempDir::new("no-secret");
        let err = format!("{:#}", discover(Some(1), Some(&tmp.0), None).unwrap_err());
        assert!(err.contains(SECRET_FILE), "{err}");
    }

    #[test]
    fn node_errors_name_their_kind_once() {
        let error = |message: &str| NodeError {
            error: ApiError {
                kind: "timeout".into(),
                message: message.into(),
            },
        };
        assert_eq!(
            error("no answer in 1s").to_string(),
            "timeout: no answer in 1s"
        );
        assert_eq!(
            error("timeout: no answer").to_string(),
            "timeout: no answer"
        );
    }

    #[test]
    fn relative_home_in_run_file_is_rejected() {
        let tmp = TempDir::new("relative");
        std::fs::create_dir_all(tmp.0.join(RUN_DIR)).unwrap();
        std::fs::write(run_file(&tmp.0, 5000), "relative/home").unwrap();
        let err = discover(Some(5000), None, Some(&tmp.0))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absolute"), "{err}");
    }
}

//! The node password and browser sessions.
//!
//! The password is kept only as an Argon2id PHC string in
//! `<home>/`[`PASSWORD_FILE`] (mode 0600). It is set by
//! `HttpConfig::password` (the `--password-file` flag) or, on a node that
//! has none, by the first loopback visitor of `/login`. A login issues a
//! random 256-bit session token in a cookie (HttpOnly, SameSite=Strict,
//! Secure when `secure_cookies`). Sessions last until they expire or the
//! user logs out, across node restarts: `<home>/`[`SESSIONS_FILE`] (0600)
//! keeps each token's SHA-256 and expiry, never the token. Setting a new
//! password ends every session. Neither the password nor tokens are ever
//! logged.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::{header, HeaderMap};

/// File in the node's home holding the password hash.
pub const PASSWORD_FILE: &str = "password.hash";
/// File in the node's home holding live sessions (token hashes, expiry).
pub const SESSIONS_FILE: &str = "sessions.json";
/// Most live sessions; past it the oldest is forgotten (bounds memory
/// against a client that logs in in a loop).
const MAX_SESSIONS: usize = 4096;
/// Shortest password accepted when one is set.
pub const MIN_PASSWORD_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("password file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the password must have at least {MIN_PASSWORD_LEN} characters")]
    TooShort,
    #[error("cannot hash the password: {0}")]
    Hash(String),
}

pub struct Auth {
    hash_path: PathBuf,
    hash: RwLock<Option<String>>,
    sessions_path: PathBuf,
    /// SHA-256 of the token -> expiry, in ms since the Unix epoch.
    sessions: Mutex<HashMap<TokenHash, u64>>,
    ttl: Duration,
    pub cookie_name: String,
    secure: bool,
}

impl Auth {
    /// Load the stored hash, or store `password`'s when given.
    pub fn open(
        home: &Path,
        node: &str,
        password: Option<&str>,
        ttl: Duration,
        secure: bool,
    ) -> Result<Self, AuthError> {
        let hash_path = home.join(PASSWORD_FILE);
        let sessions_path = home.join(SESSIONS_FILE);
        let now = now_ms();
        let sessions = std::fs::read(&sessions_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<HashMap<String, u64>>(&bytes).ok())
            .unwrap_or_default()
            .into_iter()
            .filter(|(_, expiry)| *expiry > now)
            .filter_map(|(hash, expiry)| Some((TokenHash::from_hex(&hash)?, expiry)))
            .collect();
        let auth = Self {
            hash: RwLock::new(
                std::fs::read_to_string(&hash_path)
                    .ok()
                    .map(|s| s.trim().to_string()),
            ),
            hash_path,
            sessions_path,
            sessions: Mutex::new(sessions),
            ttl,
            cookie_name: format!("hearth-{node}"),
            secure,
        };
        // The same password on every boot (`--password-file`) keeps the
        // sessions; a different one replaces the hash and ends them.
        if let Some(password) = password.filter(|p| !auth.verify(p)) {
            auth.set_password(password)?;
        }
        Ok(auth)
    }

    pub fn has_password(&self) -> bool {
        self.hash
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    pub fn set_password(&self, password: &str) -> Result<(), AuthError> {
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(AuthError::TooShort);
        }
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt).map_err(|e| AuthError::Hash(e.to_string()))?;
        let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
        let hash = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| AuthError::Hash(e.to_string()))?
            .to_string();
        crate::util::write_private(&self.hash_path, hash.as_bytes()).map_err(|source| {
            AuthError::Io {
                path: self.hash_path.clone(),
                source,
            }
        })?;
        *self.hash.write().unwrap_or_else(|e| e.into_inner()) = Some(hash);
        let mut sessions = self.lock_sessions();
        sessions.clear();
        self.save(&sessions);
        Ok(())
    }

    /// Whether `password` is the node's. CPU-heavy (Argon2): call it off
    /// the async workers.
    pub fn verify(&self, password: &str) -> bool {
        let Some(stored) = self.hash.read().unwrap_or_else(|e| e.into_inner()).clone() else {
            return false;
        };
        PasswordHash::new(&stored)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    }

    /// A new session; returns the `Set-Cookie` value.
    pub fn start_session(&self) -> Result<String, AuthError> {
        let token = crate::util::random_token().map_err(|e| AuthError::Hash(e.to_string()))?;
        let now = now_ms();
        let mut sessions = self.lock_sessions();
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, expiry| *expiry > now);
        }
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions.iter().min_by_key(|(_, e)| **e).map(|(t, _)| *t);
            if let Some(oldest) = oldest {
                sessions.remove(&oldest);
            }
        }
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        sessions.insert(token_hash(&token), now.saturating_add(ttl_ms));
        self.save(&sessions);
        Ok(self.cookie(&token, self.ttl.as_secs()))
    }

    fn lock_sessions(&self) -> std::sync::MutexGuard<'_, HashMap<TokenHash, u64>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Write the sessions out (called with the lock held, so writes do not
    /// interleave). A failure costs only the sessions' life past a restart.
    fn save(&self, sessions: &HashMap<TokenHash, u64>) {
        let by_hex: HashMap<String, u64> = sessions
            .iter()
            .map(|(hash, expiry)| (crate::util::hex(&hash.0), *expiry))
            .collect();
        let written = serde_json::to_vec(&by_hex)
            .map_err(std::io::Error::other)
            .and_then(|bytes| crate::util::write_private(&self.sessions_path, &bytes));
        if let Err(e) = written {
            tracing::warn!(path = %self.sessions_path.display(), "cannot save sessions: {e}");
        }
    }

    /// A `Set-Cookie` of our cookie name (host-only: no `Domain`).
    pub fn cookie(&self, value: &str, max_age: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}",
            self.cookie_name
        )
    }

    /// The value of our cookie in the request, if any.
    pub fn token<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.cookie_name)
            .map(|(_, value)| value)
    }

    /// Whether the request carries a live session cookie.
    pub fn is_logged_in(&self, headers: &HeaderMap) -> bool {
        self.live_session(headers).is_some()
    }

    /// The hash naming the request's live session, if it has one.
    pub fn live_session(&self, headers: &HeaderMap) -> Option<TokenHash> {
        let hash = token_hash(self.token(headers)?);
        self.is_live(&hash).then_some(hash)
    }

    /// Whether the session of this token hash is live.
    pub fn is_live(&self, hash: &TokenHash) -> bool {
        let mut sessions = self.lock_sessions();
        match sessions.get(hash) {
            Some(expiry) if *expiry > now_ms() => true,
            Some(_) => {
                sessions.remove(hash);
                false
            }
            None => false,
        }
    }

    /// End the request's session; returns the `Set-Cookie` that clears it.
    pub fn end_session(&self, headers: &HeaderMap) -> String {
        if let Some(token) = self.token(headers) {
            let mut sessions = self.lock_sessions();
            if sessions.remove(&token_hash(token)).is_some() {
                self.save(&sessions);
            }
        }
        self.cookie("", 0)
    }

    /// The `Cookie` header without our session cookie, for forwarding to
    /// processes (which must never see the token).
    pub fn strip_cookie(&self, value: &str) -> String {
        let mut out = String::with_capacity(value.len());
        // Writing to a `String` cannot fail.
        let _ = self.write_stripped_cookie(value, &mut out);
        out
    }

    /// [`Auth::strip_cookie`] written to `out` piece by piece, so the
    /// HTTP proxy encodes it into a request's event without a copy.
    pub fn write_stripped_cookie(
        &self,
        value: &str,
        out: &mut impl std::fmt::Write,
    ) -> std::fmt::Result {
        let kept = value.split(';').map(str::trim).filter(|pair| {
            pair.split_once('=')
                .is_none_or(|(n, _)| n != self.cookie_name)
        });
        for (i, pair) in kept.enumerate() {
            if i > 0 {
                out.write_str("; ")?;
            }
            out.write_str(pair)?;
        }
        Ok(())
    }
}

/// The SHA-256 of a session token or one-time code: what the node keeps
/// instead of the token. A lookup by it needs no constant-time compare: a
/// client choosing tokens cannot choose their hashes' prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    /// Parse the hex form kept in [`SESSIONS_FILE`].
    fn from_hex(text: &str) -> Option<Self> {
        let bytes = text.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let nibble = |c: u8| (c as char).to_digit(16).and_then(|d| u8::try_from(d).ok());
        let mut hash = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            hash[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
        }
        Some(Self(hash))
    }
}

/// A token's hash, as raw bytes (no hex text per request).
pub fn token_hash(token: &str) -> TokenHash {
    use sha2::Digest;
    TokenHash(sha2::Sha256::digest(token.as_bytes()).into())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_sessions_and_expiry() {
        let dir = std::env::temp_dir().join(format!("hearth-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let open = |password, ttl| Auth::open(&dir, "a.os", Some(password), ttl, true).unwrap();
        // Long enough for two Argon2 checks on a loaded machine.
        let ttl = Duration::from_millis(1500);
        let auth = open("correct horse", ttl);
        assert!(auth.verify("correct horse"));
        assert!(!auth.verify("wrong horse!"));
        assert!(!std::fs::read_to_string(dir.join(PASSWORD_FILE))
            .unwrap()
            .contains("horse"));
        let cookie = auth.start_session().unwrap();
        assert!(
            cookie.contains("HttpOnly")
                && cookie.contains("SameSite=Strict")
                && cookie.ends_with("Secure")
        );
        let pair = cookie.split(';').next().unwrap().to_string();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, format!("x=1; {pair}").parse().unwrap());
        assert!(auth.is_logged_in(&headers));
        assert_eq!(auth.strip_cookie(&format!("x=1; {pair}")), "x=1");
        // A restart with the same password keeps the session; the file
        // holds no token.
        let stored = std::fs::read_to_string(dir.join(SESSIONS_FILE)).unwrap();
        assert!(!stored.contains(pair.split('=').nth(1).unwrap()));
        let again = open("correct horse", ttl);
        assert!(again.is_logged_in(&headers));
        std::thread::sleep(ttl + Duration::from_millis(100));
        assert!(!again.is_logged_in(&headers));
        // A new password ends every session.
        let pair = auth
            .start_session()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        headers.insert(header::COOKIE, pair.parse().unwrap());
        let changed = open("new password", Duration::from_secs(9));
        assert!(!changed.is_logged_in(&headers));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! Per-package origins, for packages whose `pkg/ui.json` holds
//! `"isolated": true`.
//!
//! Such a package is served from `http://<package>.<publisher>.localhost:<port>`
//! (browsers resolve `*.localhost` to loopback), which serves nothing else:
//! [`wrong_site`] refuses any other path there. Its UI and non-public
//! bindings are refused on the node's main origin, so a page of another
//! app cannot call them with the user's session, and its own page cannot
//! call anything else with one: its session cookie is host-only and valid
//! for that package only.
//!
//! The session is handed over from the main origin: a logged-in visit of
//! `/<process>/` there is redirected to [`ENTER_PATH`] on the package's
//! origin with a one-time code ([`CODE_TTL`]); redeeming it sets the
//! package's cookie. A package session lives as long as the main session
//! it came from (logout ends both) and is kept in memory only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::{token_hash, Auth, AuthError, TokenHash};
use super::common::{encode_next, escape, is_local_path, login_redirect};
use super::origin::{package_host, Refused, Site, LOCALHOST};
use super::{Http, HttpState};
use crate::types::ProcessId;

/// Where a package's origin redeems a code.
pub const ENTER_PATH: &str = "/_hearth/enter";
/// How long a code may wait: one redirect hop, long enough for a slow
/// browser, short enough that a code left in a history or log is dead.
pub const CODE_TTL: Duration = Duration::from_secs(30);
/// Codes not yet redeemed (a logged-in client looping on redirects cannot
/// grow the table; past it the oldest go).
const MAX_CODES: usize = 1024;
/// Live package sessions; past it the oldest go.
const MAX_SESSIONS: usize = 4096;

struct Grant {
    package: String,
    /// Token hash of the main session it came from.
    parent: TokenHash,
    at: Instant,
}

/// One-time codes and package sessions, keyed by the SHA-256 of the code
/// or token (neither is kept).
#[derive(Default)]
pub struct Handoff {
    codes: Mutex<HashMap<TokenHash, Grant>>,
    sessions: Mutex<HashMap<TokenHash, Grant>>,
}

fn insert_bounded(map: &mut HashMap<TokenHash, Grant>, max: usize, key: TokenHash, grant: Grant) {
    if map.len() >= max {
        let oldest = map.iter().min_by_key(|(_, g)| g.at).map(|(k, _)| *k);
        if let Some(oldest) = oldest {
            map.remove(&oldest);
        }
    }
    map.insert(key, grant);
}

impl Handoff {
    fn lock(
        map: &Mutex<HashMap<TokenHash, Grant>>,
    ) -> std::sync::MutexGuard<'_, HashMap<TokenHash, Grant>> {
        map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A code for `package`, on behalf of the main session `parent`.
    pub fn mint(&self, package: &str, parent: TokenHash) -> Result<String, AuthError> {
        let code = crate::util::random_token().map_err(|e| AuthError::Hash(e.to_string()))?;
        let mut codes = Self::lock(&self.codes);
        codes.retain(|_, g| g.at.elapsed() < CODE_TTL);
        let grant = Grant {
            package: package.to_string(),
            parent,
            at: Instant::now(),
        };
        insert_bounded(&mut codes, MAX_CODES, token_hash(&code), grant);
        Ok(code)
    }

    /// Trade a code for a package session token (once, within
    /// [`CODE_TTL`], on the package's own origin, while its main session
    /// lives).
    pub fn redeem(&self, auth: &Auth, code: &str, package: &str) -> Option<String> {
        let grant = Self::lock(&self.codes).remove(&token_hash(code))?;
        if grant.package != package
            || grant.at.elapsed() >= CODE_TTL
            || !auth.is_live(&grant.parent)
        {
            return None;
        }
        let token = crate::util::random_token().ok()?;
        let grant = Grant {
            at: Instant::now(),
            ..grant
        };
        insert_bounded(
            &mut Self::lock(&self.sessions),
            MAX_SESSIONS,
            token_hash(&token),
            grant,
        );
        Some(token)
    }

    /// Whether the request holds a session of `package` whose main session
    /// still lives.
    pub fn is_logged_in(&self, auth: &Auth, headers: &HeaderMap, package: &str) -> bool {
        let Some(token) = auth.token(headers) else {
            return false;
        };
        let hash = token_hash(token);
        let mut sessions = Self::lock(&self.sessions);
        let Some(grant) = sessions.get(&hash) else {
            return false;
        };
        if !auth.is_live(&grant.parent) {
            sessions.remove(&hash);
            return false;
        }
        grant.package == package
    }
}

/// On a package's origin, only that package's paths and [`ENTER_PATH`]:
/// the refusal for any other request there (run on every request, by the
/// server's front service, with the `Host`'s site it read once).
pub fn wrong_site(site: &Result<Site, Refused>, path: &str) -> Option<Response> {
    let Ok(Site::Package(package)) = site else {
        return None;
    };
    let own = path == ENTER_PATH
        || path
            .trim_start_matches('/')
            .split('/')
            .next()
            .and_then(|first| first.parse::<ProcessId>().ok())
            .is_some_and(|p| p.package_id() == *package);
    (!own).then(|| Refused::WrongOrigin.into_response())
}

/// From the main origin, a logged-in visit of an isolated package's UI:
/// on to the package's origin with a fresh code.
pub fn hand_over(
    state: &HttpState,
    process: &ProcessId,
    headers: &HeaderMap,
    path_and_query: &str,
) -> Response {
    let package = process.package_id();
    let (Some(parent), Some(host)) = (state.web.auth.live_session(headers), package_host(&package))
    else {
        return login_redirect(path_and_query);
    };
    match state.web.handoff.mint(&package, parent) {
        Ok(code) => Redirect::to(&format!(
            "http://{host}:{port}{ENTER_PATH}?code={code}&next={next}",
            port = state.port,
            next = encode_next(path_and_query),
        ))
        .into_response(),
        Err(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not hand the session over",
        )
            .into_response(),
    }
}

/// On a package's origin without its session: back to the main origin
/// (`localhost`), which logs in if needed and hands a session over.
pub fn back_to_main(state: &HttpState, path_and_query: &str) -> Response {
    Redirect::to(&format!(
        "http://{LOCALHOST}:{}{path_and_query}",
        state.port
    ))
    .into_response()
}

#[derive(Deserialize)]
pub struct EnterQuery {
    code: String,
    next: Option<String>,
}

/// [`ENTER_PATH`]: redeem the code, set the package's cookie, then go on
/// to `next` with a same-origin navigation (a redirect would still count
/// as the cross-site navigation it came from, and a `SameSite=Strict`
/// cookie would not be sent with it).
pub async fn enter(
    State(state): State<Http>,
    headers: HeaderMap,
    Query(q): Query<EnterQuery>,
) -> Response {
    let Ok(Site::Package(package)) = state.policy().site(&headers) else {
        return Refused::WrongOrigin.into_response();
    };
    let Some(token) = state.web.handoff.redeem(&state.web.auth, &q.code, &package) else {
        return (
            StatusCode::FORBIDDEN,
            "this code is unknown, used or expired: open the app from the node's home page",
        )
            .into_response();
    };
    let next = q
        .next
        .filter(|n| is_local_path(n))
        .unwrap_or_else(|| "/".into());
    let cookie = state
        .web
        .auth
        .cookie(&token, state.web.config.session_ttl.as_secs());
    let next = escape(&next);
    let page = format!(
        "<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=\"0;url={next}\"><a href=\"{next}\">continue</a>"
    );
    ([(header::SET_COOKIE, cookie)], Html(page)).into_response()
}

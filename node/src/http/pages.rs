//! The node's own pages: home, login and logout, `/our.js`, `/hearth.js`,
//! `/metrics`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::Form;
use serde::Deserialize;

mod home;

use super::common::{escape, is_local_path, login_redirect};
use super::throttle::Refusal;
use super::{ui, Http, HttpState};
use crate::metrics::Gauges;

/// Pause after a wrong password, on top of Argon2's own cost, to slow
/// guessing.
const WRONG_PASSWORD_DELAY: Duration = Duration::from_millis(300);

/// A page of the node in its own style (`pages/style.css`, inlined).
fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width, initial-scale=1\">\
         <meta name=color-scheme content=\"light dark\">\
         <title>{title}</title><style>{style}</style></head><body>{body}</body></html>",
        style = home::STYLE,
    )
}

pub async fn home(State(state): State<Http>, headers: HeaderMap) -> Response {
    if !state.web.auth.is_logged_in(&headers) {
        return login_redirect("/");
    }
    let services = state.services.clone();
    let processes = services.kernel.processes();
    let peers = state.net().map(|net| net.peers()).unwrap_or_default();
    let reachability = state.net().map(|net| net.reachability());
    // Package directories and disk use are read off the async workers.
    let gathered = tokio::task::spawn_blocking(move || {
        let packages = &services.packages_dir;
        let home_dir = packages.parent().unwrap_or(packages);
        let apps = home::app_tiles(packages, &processes);
        let disk = services
            .state
            .disk_usage(packages, &home_dir.join(crate::vfs::VFS_DIR));
        (processes, apps, disk)
    })
    .await;
    let (processes, apps, disk) = match gathered {
        Ok((processes, apps, disk)) => (processes, apps, Some(disk)),
        Err(_) => (state.services.kernel.processes(), Vec::new(), None),
    };
    let data = home::HomeData {
        node: state.services.kernel.our().to_string(),
        version: env!("CARGO_PKG_VERSION"),
        processes,
        apps,
        peers,
        reachability,
        disk,
        ws_open: state.web.hub.open_count(),
    };
    Html(home::render(&data)).into_response()
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Where to go after login: an absolute path on this origin, else `/`.
fn safe_next(next: Option<&str>) -> &str {
    next.filter(|n| is_local_path(n)).unwrap_or("/")
}

fn login_form(state: &HttpState, next: &str, error: &str) -> String {
    let setup = !state.web.auth.has_password();
    let (title, hint, button, autocomplete) = if setup {
        (
            "Set the node password",
            "This node has no password yet. Choose one of 8 characters or more; only a browser on this machine may set it.",
            "Set password and continue",
            "new-password",
        )
    } else {
        (
            "Log in",
            "Enter this node's password to open your apps.",
            "Log in",
            "current-password",
        )
    };
    let error = if error.is_empty() {
        String::new()
    } else {
        format!(
            "<p class=alert role=alert id=login-error>{}</p>",
            escape(error)
        )
    };
    let node = escape(state.services.kernel.our());
    let described = if error.is_empty() {
        "login-hint"
    } else {
        "login-hint login-error"
    };
    page(
        &format!("{title} · {node}"),
        &format!(
            "<main class=center><div class=\"card login\">\
             <div class=brand>{logo}Hearth</div>\
             <h1>{title}</h1><p class=hint id=login-hint>Node <strong>{node}</strong>. {hint}</p>{error}\
             <form method=post action=/login><input type=hidden name=next value=\"{next}\">\
             <label for=password>Password</label>\
             <input type=password id=password name=password autocomplete={autocomplete} autofocus required \
             aria-describedby=\"{described}\">\
             <button type=submit class=primary>{button}</button></form></div></main>",
            logo = home::LOGO,
            next = escape(next),
        ),
    )
}

pub async fn login_page(State(state): State<Http>, Query(q): Query<NextQuery>) -> Html<String> {
    Html(login_form(&state, safe_next(q.next.as_deref()), ""))
}

#[derive(Deserialize)]
pub struct LoginForm {
    password: String,
    next: Option<String>,
}

pub async fn login(
    State(state): State<Http>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let policy = state.policy();
    if let Err(refused) = policy.same_origin(&headers) {
        return refused.into_response();
    }
    let client = policy.client(peer, &headers);
    let next = safe_next(form.next.as_deref()).to_string();
    let auth = state.web.auth.clone();
    let refuse = |status, msg: &str| (status, Html(login_form(&state, &next, msg))).into_response();
    if !auth.has_password() {
        if !client.local {
            return refuse(
                StatusCode::FORBIDDEN,
                "The password can only be set from this machine.",
            );
        }
        let password = form.password;
        let set = tokio::task::spawn_blocking(move || auth.set_password(&password)).await;
        match set {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return refuse(StatusCode::BAD_REQUEST, &e.to_string()),
            Err(_) => {
                return refuse(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "could not set the password",
                )
            }
        }
    } else {
        let attempt = match state.web.login.admit(client.ip).await {
            Ok(attempt) => attempt,
            Err(Refusal::LockedOut(wait)) => {
                let secs = wait.as_secs().max(1);
                let msg = format!("Too many wrong passwords. Try again in {secs} s.");
                let mut refused = refuse(StatusCode::TOO_MANY_REQUESTS, &msg);
                refused
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
                return refused;
            }
            Err(Refusal::Busy) => {
                return refuse(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many logins at once. Try again.",
                )
            }
        };
        let password = form.password;
        let check = auth.clone();
        let ok = tokio::task::spawn_blocking(move || check.verify(&password))
            .await
            .unwrap_or(false);
        if !ok {
            attempt.failed();
            tokio::time::sleep(WRONG_PASSWORD_DELAY).await;
            return refuse(StatusCode::UNAUTHORIZED, "Wrong password.");
        }
        attempt.succeeded();
    }
    match state.web.auth.start_session() {
        Ok(cookie) => ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response(),
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not start a session",
        ),
    }
}

pub async fn logout(State(state): State<Http>, headers: HeaderMap) -> Response {
    if let Err(refused) = state.policy().same_origin(&headers) {
        return refused.into_response();
    }
    let cookie = state.web.auth.end_session(&headers);
    ([(header::SET_COOKIE, cookie)], Redirect::to("/login")).into_response()
}

/// `/our.js`: `process` is taken from the page that loads it (the
/// `Referer`'s first path segment) when that names a running process.
pub async fn our_js(State(state): State<Http>, headers: HeaderMap) -> Response {
    let kernel = &state.services.kernel;
    let process = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.parse::<axum::http::Uri>().ok())
        .and_then(|uri| {
            uri.path()
                .trim_start_matches('/')
                .split('/')
                .next()
                .map(str::to_string)
        })
        .and_then(|first| first.parse().ok())
        .filter(|p| kernel.is_running(p));
    ui::our_js(kernel.our(), process.as_ref())
}

/// The browser side of `/hearth/ws` (`http/hearth.js`, documented at its
/// top): no secret in it, so served without a login.
const HEARTH_JS: &str = include_str!("hearth.js");

/// `/hearth.js`: watch live rooms from a page.
pub async fn hearth_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        HEARTH_JS,
    )
        .into_response()
}

/// `/metrics`: local clients, or a logged-in browser; asked by its `Host`,
/// not from a page of another origin.
pub async fn metrics(
    State(state): State<Http>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let policy = state.policy();
    if let Err(refused) = policy.same_origin(&headers) {
        return refused.into_response();
    }
    if !policy.client(peer, &headers).local && !state.web.auth.is_logged_in(&headers) {
        return (StatusCode::UNAUTHORIZED, "log in or ask from this machine").into_response();
    }
    let gauges = Gauges {
        processes: state.services.kernel.processes().len(),
        peers: state.net().map_or(0, |net| net.peers().len()),
        ws_open: state.web.hub.open_count(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.services.kernel.metrics.render(&gauges),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_a_path_on_this_origin() {
        for ok in ["/", "/chat:chat:sys/", "/a?b=c&d=/e", "/x#y"] {
            assert_eq!(safe_next(Some(ok)), ok);
        }
        for bad in [
            "//evil.com",
            "/\t/evil.com",
            "/\\evil.com",
            "\\/evil.com",
            "/ /evil.com",
            "/\n/evil.com",
            "https://evil.com",
            "evil.com",
            "/caf\u{e9}",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}

//! Who is asking, and from which page.
//!
//! - The client address: the TCP peer, with IPv4-mapped IPv6 addresses
//!   (`::ffff:a.b.c.d`, what IPv4 clients look like on a `::` socket)
//!   turned back into IPv4. A request carrying `Forwarded`,
//!   `X-Forwarded-For` or `X-Real-IP` is never local unless its peer is a
//!   trusted proxy (`HttpConfig::trusted_proxies`); then the client is the
//!   address the proxy appended.
//! - The `Host` allow-list, against DNS rebinding: an IP literal, `localhost`
//!   or `<package>.<publisher>.localhost` with the node's own port, or one
//!   of the operator's origins (`HttpConfig::origins`).
//! - The `Origin` check, against cross-site requests: a browser's request
//!   must come from a page of the same origin it asks (`Origin` equal to
//!   the `Host`, or without `Origin` a `Sec-Fetch-Site` of `same-origin`
//!   or `none`). Clients that are not browsers send neither and pass.
//!
//! Refusals are [`Refused`], a 403 with a JSON body.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};

use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};

/// The suffix of every name that resolves to loopback (RFC 6761; browsers
/// resolve `*.localhost` themselves).
pub const LOCALHOST: &str = "localhost";

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
const SEC_FETCH_SITE: HeaderName = HeaderName::from_static("sec-fetch-site");

/// Why a request was refused before it reached its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// The `Host` is not one this node serves (DNS rebinding).
    #[error("the Host header names no origin of this node")]
    BadHost,
    /// A page of another origin sent it (cross-site request).
    #[error("cross-origin request refused")]
    CrossOrigin,
    /// The path answers clients on this machine only.
    #[error("this path answers local clients only")]
    NotLocal,
    /// The path belongs to an app served from its own origin.
    #[error("this app is served from its own origin")]
    WrongOrigin,
}

impl Refused {
    pub fn code(self) -> &'static str {
        match self {
            Refused::BadHost => "bad-host",
            Refused::CrossOrigin => "cross-origin",
            Refused::NotLocal => "not-local",
            Refused::WrongOrigin => "wrong-origin",
        }
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.code(), "message": self.to_string() });
        (
            StatusCode::FORBIDDEN,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

/// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) as the IPv4 address it is.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The client of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    pub ip: IpAddr,
    /// On this machine, and not behind a proxy we do not trust.
    pub local: bool,
}

/// Whether the request names a forwarded client.
fn forwarded(headers: &HeaderMap) -> bool {
    [header::FORWARDED, X_FORWARDED_FOR, X_REAL_IP]
        .iter()
        .any(|h| headers.contains_key(h))
}

/// The address a proxy appended last: the last `X-Forwarded-For` entry,
/// else the last `for=` of `Forwarded`, else `X-Real-IP`.
fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    let last = |name: &HeaderName, split: fn(&str) -> Option<&str>| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .last()
            .and_then(split)
            .and_then(parse_ip)
    };
    last(&X_FORWARDED_FOR, |s| Some(s.trim()))
        .or_else(|| {
            last(&header::FORWARDED, |element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(k, _)| k.eq_ignore_ascii_case("for"))
                    .map(|(_, v)| v.trim().trim_matches('"'))
            })
        })
        .or_else(|| last(&X_REAL_IP, |s| Some(s.trim())))
}

/// An address as a proxy writes it: `1.2.3.4`, `1.2.3.4:5`, `[::1]`,
/// `[::1]:5`, `::1`.
fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(normalize(ip));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Some(normalize(addr.ip()));
    }
    let inner = s.strip_prefix('[')?.split(']').next()?;
    inner.parse().ok().map(normalize)
}

/// Where a `Host` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Site {
    /// The node's own pages (an IP literal, `localhost`, an operator origin).
    Main,
    /// `<package>.<publisher>.localhost`: one package's own origin.
    Package(String),
}

/// The request-side policy: the node's port, trusted proxies and origins.
pub struct Policy<'a> {
    pub port: u16,
    pub trusted_proxies: &'a [IpAddr],
    /// Lower-case `host[:port]` of each operator origin.
    pub origins: &'a [String],
}

impl Policy<'_> {
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> Client {
        let ip = normalize(peer.ip());
        if !self.trusted_proxies.contains(&ip) {
            return Client {
                ip,
                local: ip.is_loopback() && !forwarded(headers),
            };
        }
        if !forwarded(headers) {
            // The proxy's own request.
            return Client {
                ip,
                local: ip.is_loopback(),
            };
        }
        match forwarded_for(headers) {
            Some(client) => Client {
                ip: client,
                local: client.is_loopback(),
            },
            None => Client { ip, local: false },
        }
    }

    /// Which site the request's `Host` names, if it is one of ours.
    pub fn site(&self, headers: &HeaderMap) -> Result<Site, Refused> {
        let host = request_host(headers).ok_or(Refused::BadHost)?;
        if self.origins.iter().any(|o| *o == host) {
            return Ok(Site::Main);
        }
        let (name, port) = split_host(&host).ok_or(Refused::BadHost)?;
        if port != Some(self.port) && !(port.is_none() && self.port == 80) {
            return Err(Refused::BadHost);
        }
        if name == LOCALHOST || parse_ip(name).is_some() {
            return Ok(Site::Main);
        }
        package_of_host(name)
            .map(Site::Package)
            .ok_or(Refused::BadHost)
    }

    /// The `Host` is ours and the request does not come from a page of
    /// another origin.
    pub fn same_origin(&self, headers: &HeaderMap) -> Result<Site, Refused> {
        same_origin_of(self.site(headers), headers)
    }
}

/// [`Policy::same_origin`] for a request whose `site` is known already
/// (the proxy reads it once per request).
pub fn same_origin_of(site: Result<Site, Refused>, headers: &HeaderMap) -> Result<Site, Refused> {
    let site = site?;
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().map_err(|_| Refused::CrossOrigin)?;
        let authority = origin_authority(origin).ok_or(Refused::CrossOrigin)?;
        return match request_host(headers) {
            Some(host) if host == authority => Ok(site),
            _ => Err(Refused::CrossOrigin),
        };
    }
    match headers.get(SEC_FETCH_SITE).map(|v| v.as_bytes()) {
        None | Some(b"same-origin" | b"none") => Ok(site),
        Some(_) => Err(Refused::CrossOrigin),
    }
}

/// The `Host` header, lower-case (borrowed when it already is, as
/// clients send it: checked on every request, several times).
fn request_host(headers: &HeaderMap) -> Option<Cow<'_, str>> {
    let host = headers.get(header::HOST)?.to_str().ok()?.trim();
    if host.is_empty() {
        return None;
    }
    Some(if host.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(host.to_ascii_lowercase())
    } else {
        Cow::Borrowed(host)
    })
}

/// `host[:port]` as (host, port); an IPv6 literal keeps its brackets off.
fn split_host(host: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = host.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?.parse().ok()?),
        };
        return Some((inner, port));
    }
    match host.rsplit_once(':') {
        Some((name, port)) => Some((name, Some(port.parse().ok()?))),
        None => Some((host, None)),
    }
}

/// `scheme://host[:port]` as the lower-case `host[:port]`, for http(s).
pub fn origin_authority(origin: &str) -> Option<String> {
    let origin = origin.trim().to_ascii_lowercase();
    let (scheme, rest) = origin.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() || rest.contains(['/', '@', '?']) {
        return None;
    }
    let default = if scheme == "http" { ":80" } else { ":443" };
    Some(rest.strip_suffix(default).unwrap_or(rest).to_string())
}

/// The host name of a package's own origin: `<package>.<publisher>.localhost`
/// (package names have no dots, so the first label is the package).
pub fn package_host(package_id: &str) -> Option<String> {
    let (package, publisher) = package_id.split_once(':')?;
    (crate::types::valid_name(package, false) && crate::types::valid_name(publisher, true))
        .then(|| format!("{package}.{publisher}.{LOCALHOST}"))
}

/// The package (`package:publisher`) whose origin `name` is.
fn package_of_host(name: &str) -> Option<String> {
    let rest = name.strip_suffix(LOCALHOST)?.strip_suffix('.')?;
    let (package, publisher) = rest.split_once('.')?;
    let id = format!("{package}:{publisher}");
    (package_host(&id)? == name).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    const POLICY: Policy<'static> = Policy {
        port: 8080,
        trusted_proxies: &[],
        origins: &[],
    };

    #[test]
    fn mapped_ipv4_is_ipv4() {
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert!(
            !mapped.is_loopback(),
            "std does not see through the mapping"
        );
        assert_eq!(normalize(mapped), IpAddr::from([127, 0, 0, 1]));
        let peer = SocketAddr::new(mapped, 5000);
        assert!(POLICY.client(peer, &HeaderMap::new()).local);
        let remote: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let c = POLICY.client(SocketAddr::new(remote, 1), &HeaderMap::new());
        assert_eq!((c.ip, c.local), (IpAddr::from([10, 1, 2, 3]), false));
    }

    #[test]
    fn forwarded_requests_are_local_only_through_a_trusted_proxy() {
        let loopback = SocketAddr::from(([127, 0, 0, 1], 9));
        for h in [
            ("x-forwarded-for", "127.0.0.1"),
            ("forwarded", "for=127.0.0.1"),
            ("x-real-ip", "127.0.0.1"),
        ] {
            assert!(!POLICY.client(loopback, &headers(&[h])).local, "{h:?}");
        }
        let proxies = [IpAddr::from([127, 0, 0, 1])];
        let trusting = Policy {
            trusted_proxies: &proxies,
            ..POLICY
        };
        let c = trusting.client(
            loopback,
            &headers(&[("x-forwarded-for", "127.0.0.1, 203.0.113.7")]),
        );
        assert_eq!((c.ip, c.local), (IpAddr::from([203, 0, 113, 7]), false));
        let c = trusting.client(
            loopback,
            &headers(&[("forwarded", "for=\"[::1]:4711\";proto=http")]),
        );
        assert_eq!(c.ip, "::1".parse::<IpAddr>().unwrap());
        assert!(c.local);
        assert!(
            !trusting
                .client(loopback, &headers(&[("x-forwarded-for", "garbage")]))
                .local
        );
    }

    #[test]
    fn hosts_and_origins() {
        let site = |host: &str| POLICY.site(&headers(&[("host", host)]));
        assert_eq!(site("127.0.0.1:8080"), Ok(Site::Main));
        assert_eq!(site("LOCALHOST:8080"), Ok(Site::Main));
        assert_eq!(site("[::1]:8080"), Ok(Site::Main));
        assert_eq!(site("192.0.2.5:8080"), Ok(Site::Main));
        assert_eq!(
            site("chat.demo.os.localhost:8080"),
            Ok(Site::Package("chat:demo.os".into()))
        );
        for bad in [
            "evil.example:8080",
            "127.0.0.1.evil.example:8080",
            "localhost:9999",
            "localhost",
            "a.localhost:8080",
            "",
        ] {
            assert_eq!(site(bad), Err(Refused::BadHost), "{bad}");
        }
        let check = |pairs: &[(&str, &str)]| POLICY.same_origin(&headers(pairs));
        let host = ("host", "127.0.0.1:8080");
        assert!(check(&[host]).is_ok(), "no browser markers");
        assert!(check(&[host, ("origin", "http://127.0.0.1:8080")]).is_ok());
        assert!(check(&[host, ("sec-fetch-site", "same-origin")]).is_ok());
        for cross in [
            ("origin", "http://evil.example"),
            ("origin", "null"),
            ("origin", "http://localhost:8080"),
            ("origin", "http://127.0.0.1:8080@evil"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-site", "same-site"),
        ] {
            assert_eq!(
                check(&[host, cross]),
                Err(Refused::CrossOrigin),
                "{cross:?}"
            );
        }
        let origins = ["hearth.example.com".to_string()];
        let public = Policy {
            origins: &origins,
            ..POLICY
        };
        let h = headers(&[
            ("host", "hearth.example.com"),
            ("origin", "https://hearth.example.com"),
        ]);
        assert_eq!(public.same_origin(&h), Ok(Site::Main));
    }

    #[test]
    fn package_hosts_round_trip() {
        assert_eq!(
            package_host("webprobe:test").as_deref(),
            Some("webprobe.test.localhost")
        );
        assert_eq!(
            package_of_host("webprobe.test.localhost").as_deref(),
            Some("webprobe:test")
        );
        assert_eq!(package_host("a.b:c"), None);
    }
}

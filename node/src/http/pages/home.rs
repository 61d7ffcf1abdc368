//! The home page's content: the node's identity and status, its installed
//! apps as tiles (from each package's `metadata.json`), peers with their
//! round-trip times, disk use, and the system services under a collapsed
//! section. Plain HTML, the inlined `style.css` and one small inlined
//! script (`tooltips.js`: a tooltip where a tile's text is cut); nothing
//! fetched from elsewhere.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::api::{DiskUsage, PeerInfo, Reachability};
use crate::http::common::escape;
use crate::kernel::caps::ProcessCaps;
use crate::types::ProcessId;

/// The sheet of the node's pages, inlined into each.
pub const STYLE: &str = include_str!("style.css");

/// The home page's script, inlined: tooltips where a tile's text is cut.
const TOOLTIPS: &str = include_str!("tooltips.js");

/// The flame of the brand, inline.
pub const LOGO: &str = "<svg viewBox=\"0 0 32 32\" aria-hidden=\"true\"><rect width=\"32\" height=\"32\" rx=\"9\" fill=\"#c2410c\"/>\
<path d=\"M16 5c1 4.5 6.5 7 6.5 13a6.5 6.5 0 0 1-13 0c0-3.2 1.8-5 3.2-6.6.3 2 1.2 3.2 2.6 3.6-.6-3.6-.2-6.8.7-10z\" fill=\"#fff7ed\"/>\
<path d=\"M16 17.5c1.8 1.6 3 3 3 4.7a3 3 0 0 1-6 0c0-1.7 1.2-3.1 3-4.7z\" fill=\"#fb923c\"/></svg>";

/// Largest `metadata.json` read for a tile (uploads are capped well below).
const MAX_METADATA_BYTES: u64 = 64 * 1024;

/// Most characters of an app's name a tile carries; past it the name ends
/// in `…` (metadata may carry any length). The tile shows one line of it.
const MAX_NAME_CHARS: usize = 60;

/// Most characters of an app's description a tile carries: a few lines'
/// worth more than the tile shows, so the clamp in `style.css` ends it.
const MAX_DESCRIPTION_CHARS: usize = 400;

/// Backgrounds of letter avatars: each keeps white text above 4.5:1.
const AVATAR_COLOURS: [&str; 10] = [
    "#c2410c", "#b91c1c", "#7c3aed", "#1d4ed8", "#0f766e", "#15803d", "#a21caf", "#be123c",
    "#4338ca", "#0369a1",
];

/// What a tile reads from `metadata.json`: `image` (as in the reference
/// system's metadata) names an icon file inside the package's `pkg/ui/`.
#[derive(Debug, Default, Deserialize)]
struct TileMetadata {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    image: Option<String>,
}

/// One installed package, as its tile shows it.
#[derive(Debug)]
pub struct AppTile {
    pub package_id: String,
    pub name: String,
    pub description: String,
    /// The running process whose path serves the package's UI.
    pub ui: Option<ProcessId>,
    /// An icon file below `pkg/ui/`, as a path relative to it.
    pub icon: Option<String>,
    pub running: usize,
}

/// Everything the home page shows, gathered before rendering.
pub struct HomeData {
    pub node: String,
    pub version: &'static str,
    pub processes: Vec<(ProcessId, ProcessCaps)>,
    pub apps: Vec<AppTile>,
    pub peers: Vec<PeerInfo>,
    /// Whether other nodes can dial us; `None` without networking.
    pub reachability: Option<Reachability>,
    pub disk: Option<DiskUsage>,
    pub ws_open: usize,
}

/// A letter and a colour for `name`, the same every time.
pub fn letter_avatar(name: &str) -> (char, &'static str) {
    let letter = name
        .chars()
        .find(|c| c.is_alphanumeric())
        .map_or('?', |c| c.to_uppercase().next().unwrap_or(c));
    let hash = name.bytes().fold(2166136261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16777619)
    });
    (letter, AVATAR_COLOURS[hash as usize % AVATAR_COLOURS.len()])
}

/// A path below `pkg/ui/` that may be put into a URL as it is: plain
/// segments of `[A-Za-z0-9._-]`, no `..`, not hidden.
fn plain_ui_path(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 128
        && p.split('/').all(|seg| {
            !seg.is_empty()
                && !seg.starts_with('.')
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

/// The installed packages under `packages_dir` and which running
/// processes belong to them. Blocking (reads the package directories).
pub fn app_tiles(packages_dir: &Path, processes: &[(ProcessId, ProcessCaps)]) -> Vec<AppTile> {
    let mut by_package: BTreeMap<String, Vec<&ProcessId>> = BTreeMap::new();
    for (id, _) in processes {
        by_package.entry(id.package_id()).or_default().push(id);
    }
    let mut dirs: Vec<String> = std::fs::read_dir(packages_dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.') && name.contains(':'))
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|package_id| {
            let dir = packages_dir.join(&package_id);
            let meta = read_metadata(&dir.join("metadata.json"));
            let ui_dir = dir.join("pkg").join("ui");
            let has_ui = ui_dir.join("index.html").is_file();
            let procs = by_package.get(&package_id).cloned().unwrap_or_default();
            let package_name = package_id.split(':').next().unwrap_or("").to_string();
            // The process named like the package serves its UI; else the first.
            let ui = has_ui
                .then(|| {
                    procs
                        .iter()
                        .find(|p| *p.process == *package_name)
                        .or(procs.first())
                        .map(|p| (*p).clone())
                })
                .flatten();
            let icon = meta
                .image
                .as_deref()
                .map(|i| i.trim_start_matches("ui/").to_string())
                .into_iter()
                .chain(["icon.svg".to_string(), "icon.png".to_string()])
                .find(|i| plain_ui_path(i) && ui_dir.join(i).is_file());
            let name = if meta.name.is_empty() {
                package_name
            } else {
                meta.name
            };
            AppTile {
                package_id,
                name,
                description: meta.description,
                ui,
                icon,
                running: procs.len(),
            }
        })
        .collect()
}

fn read_metadata(path: &Path) -> TileMetadata {
    use std::io::Read;
    let mut bytes = Vec::new();
    let read =
        std::fs::File::open(path).and_then(|f| f.take(MAX_METADATA_BYTES).read_to_end(&mut bytes));
    match read {
        Ok(_) => serde_json::from_slice(&bytes).unwrap_or_default(),
        Err(_) => TileMetadata::default(),
    }
}

/// `text` whole if it has at most `max` characters, else its first ones
/// (whitespace trimmed) and `…`; and whether it was cut.
fn clip(text: &str, max: usize) -> (String, bool) {
    let text = text.trim();
    match text.char_indices().nth(max) {
        None => (text.to_string(), false),
        Some((end, _)) => (format!("{}…", text[..end].trim_end()), true),
    }
}

/// ` data-cut` on a text the server cut: the page's script gives it a
/// tooltip whatever its lines show (see `TOOLTIPS`).
fn cut_mark(cut: bool) -> &'static str {
    if cut {
        " data-cut"
    } else {
        ""
    }
}

/// `1.2 MB`, `340 KB`, `12 B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

fn tile_html(app: &AppTile) -> String {
    let (name, name_cut) = clip(&app.name, MAX_NAME_CHARS);
    let name = escape(&name);
    let name_cut = cut_mark(name_cut);
    let icon = match (&app.icon, &app.ui) {
        (Some(icon), Some(ui)) => format!(
            "<span class=icon><img src=\"/{}/{}\" alt=\"\"></span>",
            escape(&ui.to_string()),
            escape(icon)
        ),
        _ => {
            let (letter, colour) = letter_avatar(&app.name);
            format!(
                "<span class=icon style=\"background:{colour}\" aria-hidden=true>{}</span>",
                escape(&letter.to_string())
            )
        }
    };
    let (description, desc_cut) = clip(&app.description, MAX_DESCRIPTION_CHARS);
    // Every tile keeps its description's lines, so a row's tiles match.
    let desc = if description.is_empty() {
        "<span class=\"desc none\">No description.</span>".to_string()
    } else {
        format!(
            "<span class=desc{}>{}</span>",
            cut_mark(desc_cut),
            escape(&description)
        )
    };
    let status = match (app.running, &app.ui) {
        (0, _) => "Stopped".to_string(),
        (_, Some(_)) => "<span class=open>Open →</span>".to_string(),
        (n, None) => format!(
            "Running · {n} process{} · no UI",
            if n == 1 { "" } else { "es" }
        ),
    };
    let body = format!(
        "{icon}<span class=text><span class=name{name_cut}>{name}</span>{desc}<span class=meta>{status}</span></span>"
    );
    match &app.ui {
        Some(ui) if app.running > 0 => format!(
            "<li><a class=tile href=\"/{}/\" aria-label=\"Open {name}\">{body}</a></li>",
            escape(&ui.to_string())
        ),
        _ => format!(
            "<li><div class=\"tile{}\">{body}</div></li>",
            if app.running == 0 { " stopped" } else { "" }
        ),
    }
}

/// `12D3Koo…SoUBae9`: enough of a peer id to tell peers apart.
fn short_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 16 {
        return id.to_string();
    }
    let head: String = chars[..7].iter().collect();
    let tail: String = chars[chars.len() - 7..].iter().collect();
    format!("{head}…{tail}")
}

fn peers_html(peers: &[PeerInfo], networking: bool) -> String {
    if !networking {
        return "<p class=empty>Peer-to-peer is off on this node, so it has no peers.</p>".into();
    }
    if peers.is_empty() {
        return "<p class=empty>No peers connected yet. Nodes on the same network find each other; \
                others join with <code>--bootstrap</code>.</p>"
            .into();
    }
    let mut rows: Vec<(String, String, String, bool)> = peers
        .iter()
        .map(|p| {
            let name = p
                .name
                .clone()
                .unwrap_or_else(|| format!("unnamed peer {}", short_id(&p.peer_id)));
            let rtt = p
                .rtt_ms
                .map_or_else(|| "measuring…".to_string(), |ms| format!("{ms:.2} ms"));
            let relayed = p.connection.as_deref() == Some("relayed");
            let link = match (p.connection.as_deref(), p.transport.as_deref()) {
                (Some(c), Some(t)) => format!("{c} · {}", t.to_uppercase()),
                (Some(c), None) => c.to_string(),
                (None, Some(t)) => t.to_uppercase(),
                (None, None) => String::new(),
            };
            (name, link, rtt, relayed)
        })
        .collect();
    rows.sort();
    let items: String = rows
        .iter()
        .map(|(name, link, rtt, relayed)| {
            let title = if *relayed {
                "through a relay: no direct path yet"
            } else {
                "a direct connection"
            };
            format!(
                "<li><span class=\"dot{}\" aria-hidden=true></span><span class=pname>{}</span>\
                 <span class=link title=\"{title}\">{}</span>\
                 <span class=rtt title=\"round-trip time\">{}</span></li>",
                if *relayed { " relayed" } else { "" },
                escape(name),
                escape(link),
                escape(rtt)
            )
        })
        .collect();
    format!("<ul class=peers aria-label=\"Connected peers\">{items}</ul>")
}

/// A pill saying whether other nodes can reach us, and a line of detail
/// (confirmed addresses, or the relays that carry us).
fn reach_html(reach: Option<&Reachability>) -> (String, String) {
    let Some(r) = reach else {
        return (
            "<span class=\"pill muted\">Peer-to-peer off</span>".into(),
            String::new(),
        );
    };
    let reserved: Vec<&str> = r
        .relays
        .iter()
        .filter(|relay| relay.state == "reserved")
        .map(|relay| relay.addr.as_str())
        .collect();
    let (class, label, detail) = match r.status.as_str() {
        "public" => (
            "",
            "Reachable",
            match r.confirmed.first() {
                Some(a) => format!("Peers reach this node at <code>{}</code>", escape(a)),
                None => "Peers can dial this node directly".into(),
            },
        ),
        "private" if !reserved.is_empty() => (
            " warn",
            "Behind a NAT",
            format!(
                "Reached through {} relay{}; peers switch to direct where the NAT allows",
                reserved.len(),
                if reserved.len() == 1 { "" } else { "s" }
            ),
        ),
        "private" => (
            " warn",
            "Behind a NAT",
            "No relay reserved: only peers this node dials can reach it. Add <code>--relay-via</code>"
                .into(),
        ),
        _ => (
            " muted",
            "Reachability unknown",
            "Checking with peers whether this node can be dialled".into(),
        ),
    };
    let serving = if r.serving_relay {
        " · serving as a relay"
    } else {
        ""
    };
    (
        format!("<span class=\"pill{class}\" title=\"reachability\">{label}</span>"),
        format!("<p class=reach>{detail}{serving}</p>"),
    )
}

fn system_html(data: &HomeData) -> (usize, String) {
    let apps: Vec<&str> = data.apps.iter().map(|a| a.package_id.as_str()).collect();
    let rows: Vec<String> = data
        .processes
        .iter()
        .map(|(id, caps)| {
            let kind = if apps.contains(&id.package_id().as_str()) {
                "app"
            } else {
                "service"
            };
            let flags = [
                (caps.public, "public"),
                (caps.networking, "network"),
                (caps.system, "system"),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| format!("<span class=tag>{f}</span> "))
            .collect::<String>();
            format!(
                "<tr><td data-label=Process><code>{}</code></td><td data-label=Kind>{kind}</td>\
                 <td data-label=Capabilities>{flags}</td></tr>",
                escape(&id.to_string())
            )
        })
        .collect();
    let services = data
        .processes
        .iter()
        .filter(|(id, _)| !apps.contains(&id.package_id().as_str()))
        .count();
    (
        services,
        format!(
            "<table><thead><tr><th scope=col>Process</th><th scope=col>Kind</th>\
             <th scope=col>Capabilities</th></tr></thead><tbody>{}</tbody></table>",
            rows.join("")
        ),
    )
}

/// The whole home page.
pub fn render(data: &HomeData) -> String {
    let node = escape(&data.node);
    let (letter, colour) = letter_avatar(&data.node);
    let tiles: String = data.apps.iter().map(tile_html).collect();
    let tiles = if tiles.is_empty() {
        "<p class=\"card empty\">No apps installed. Build and start one with <code>kit bs</code>.</p>"
            .to_string()
    } else {
        format!("<ul class=tiles>{tiles}</ul>")
    };
    let disk = data.disk.as_ref().map_or("–".to_string(), |d| {
        human_bytes(
            d.store_bytes
                + d.packages
                    .iter()
                    .map(|p| p.package_bytes + p.vfs_bytes)
                    .sum::<u64>(),
        )
    });
    let (services, system) = system_html(data);
    let (reach_pill, reach_line) = reach_html(data.reachability.as_ref());
    let body = format!(
        "<a class=skip href=#main>Skip to content</a>\
         <header class=top><a class=brand href=/>{LOGO}Hearth</a><span class=spacer></span>\
         <span class=who>Signed in to {node}</span>\
         <form method=post action=/logout><button type=submit>Log out</button></form></header>\
         <main id=main>\
         <section class=hero aria-label=\"This node\"><div class=id>\
         <span class=avatar style=\"background:{colour}\" aria-hidden=true>{letter}</span>\
         <div><h1>{node}</h1><p class=badges><span class=pill>Online</span>{reach_pill}\
         <span class=version>Hearth {version}</span></p>{reach_line}</div></div>\
         <dl class=stats><div><dt>Apps</dt><dd>{napps}</dd></div><div><dt>Peers</dt><dd>{npeers}</dd></div>\
         <div><dt>Disk use</dt><dd>{disk}</dd></div><div><dt>Live pages</dt><dd>{ws}</dd></div></dl></section>\
         <section aria-labelledby=apps-h><h2 id=apps-h>Apps</h2>{tiles}</section>\
         <section aria-labelledby=peers-h><h2 id=peers-h>Peers</h2><div class=card>{peers}</div></section>\
         <details class=system><summary>System · {services} services, {nproc} processes</summary>\
         <div class=card>{system}</div></details></main>\
         <footer>Hearth node {node} · peer-to-peer apps that you run</footer>\
         <script>{TOOLTIPS}</script>",
        letter = escape(&letter.to_string()),
        version = data.version,
        napps = data.apps.len(),
        npeers = data.peers.len(),
        ws = data.ws_open,
        peers = peers_html(&data.peers, data.reachability.is_some()),
        nproc = data.processes.len(),
    );
    super::page(&format!("{node} · Hearth"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icon_paths_stay_plain() {
        for ok in ["icon.svg", "img/app-icon_2.png"] {
            assert!(plain_ui_path(ok), "{ok}");
        }
        for bad in [
            "",
            "../x.svg",
            "/icon.svg",
            ".hidden",
            "a//b",
            "a b.svg",
            "x\".svg",
            "a/../b",
        ] {
            assert!(!plain_ui_path(bad), "{bad}");
        }
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(12), "12 B");
        assert_eq!(human_bytes(1_234_567), "1.2 MB");
        assert_eq!(human_bytes(340_000), "340 KB");
    }

    #[test]
    fn reachability_reads_as_what_a_peer_can_do() {
        let relay = |state: &str| crate::api::RelayInfo {
            addr: "/ip4/203.0.113.7/tcp/4001/p2p/x".into(),
            state: state.into(),
        };
        let mut r = Reachability {
            status: "private".into(),
            relays: vec![relay("reserved"), relay("standby")],
            ..Default::default()
        };
        let (pill, line) = reach_html(Some(&r));
        assert!(
            pill.contains("Behind a NAT") && pill.contains("warn"),
            "{pill}"
        );
        assert!(line.contains("through 1 relay;"), "{line}");
        r.relays.clear();
        assert!(reach_html(Some(&r)).1.contains("--relay-via"));
        r.status = "public".into();
        r.confirmed = vec!["/ip4/203.0.113.9/tcp/4001<script>".into()];
        let (pill, line) = reach_html(Some(&r));
        assert!(pill.contains("Reachable"), "{pill}");
        assert!(
            line.contains("&lt;script&gt;") && !line.contains("<script>"),
            "{line}"
        );
        assert!(reach_html(None).0.contains("off"));
    }

    #[test]
    fn tiles_bound_what_metadata_says() {
        let tile = |name: &str, description: &str| {
            tile_html(&AppTile {
                package_id: "x:test".into(),
                name: name.into(),
                description: description.into(),
                ui: None,
                icon: None,
                running: 1,
            })
        };
        // Text within the limits is whole, unmarked: the page's script
        // decides from its layout whether the clamp cut it.
        let short = tile("Chat", "Rooms & more");
        assert!(
            short.contains("<span class=name>Chat</span><span class=desc>Rooms &amp; more</span>"),
            "{short}"
        );
        let word = "é".repeat(5_000);
        let long = tile(&word, &format!("<b>{word}"));
        let shown = "é".repeat(MAX_DESCRIPTION_CHARS - 3);
        assert!(
            long.contains(&format!(
                "<span class=desc data-cut>&lt;b&gt;{shown}…</span>"
            )),
            "{long}"
        );
        let name = "é".repeat(MAX_NAME_CHARS);
        assert!(long.contains(&format!("<span class=name data-cut>{name}…</span>")));
        assert!(
            !short.contains("title=") && !long.contains("title="),
            "{long}"
        );
        assert!(long.len() < 2 * MAX_DESCRIPTION_CHARS + 2 * MAX_NAME_CHARS + 400);
        // No description still keeps its lines, so tiles in a row match.
        assert!(tile("Probe", " ").contains("<span class=\"desc none\">No description.</span>"));
        assert_eq!(clip("  two words  ", 4), ("two…".to_string(), true));
        assert_eq!(clip("fits", 4), ("fits".to_string(), false));
    }

    /// A node named `n.os` running `processes`, nothing else.
    fn node_with(processes: Vec<(ProcessId, ProcessCaps)>) -> HomeData {
        HomeData {
            node: "n.os".into(),
            version: "0",
            processes,
            apps: Vec::new(),
            peers: Vec::new(),
            reachability: None,
            disk: None,
            ws_open: 0,
        }
    }

    #[test]
    fn system_cells_name_their_column() {
        let public = ProcessCaps {
            public: true,
            ..Default::default()
        };
        let (_, table) = system_html(&node_with(vec![(
            ProcessId::new("kv", "distro", "sys"),
            public,
        )]));
        // At phone width each row stacks, every value under its label.
        assert!(
            table.contains(
                "<td data-label=Process><code>kv:distro:sys</code></td><td data-label=Kind>service</td>\
                 <td data-label=Capabilities><span class=tag>public</span> </td>"
            ),
            "{table}"
        );
    }

    #[test]
    fn the_page_carries_its_tooltip_script() {
        let page = render(&node_with(Vec::new()));
        assert!(
            page.contains("<script>") && page.contains("data-cut"),
            "{page}"
        );
        assert!(page.ends_with("</script></body></html>"), "{page}");
    }

    #[test]
    fn avatars_are_stable() {
        assert_eq!(letter_avatar("chat"), letter_avatar("chat"));
        assert_eq!(letter_avatar("alice.os").0, 'A');
        assert_eq!(letter_avatar("").0, '?');
    }
}

//! One integration binary for the whole workspace. Each module boots real
//! nodes in this process (port 0, throw-away homes) with real components,
//! except `kit_cli`, which drives the real `hearth` and `kit` binaries.

mod common;

mod admin;
mod app_macro;
mod chat_api;
mod chat_browser;
mod compat;
mod durability;
mod hostile_input;
mod hostile_peer;
mod http;
mod isolation;
mod kit_cli;
mod kit_dev;
mod kit_templates;
mod kit_views;
mod long_call;
mod messaging;
mod nat;
mod net_accept;
mod net_lane;
mod net_move;
mod p2p;
mod python;
mod relay_hostile;
mod rooms;
mod rooms_browser;
mod rooms_hostile;
mod services;
mod template_browser;
mod ui;
mod web_hostile;

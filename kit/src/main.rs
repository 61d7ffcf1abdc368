//! `kit`: the Hearth developer tool. This file only parses the command line
//! and dispatches; each subcommand lives in its own module. To add one: a
//! variant in [`Command`] and an arm in [`run`].

mod admin;
mod api;
mod bench;
mod build;
mod dev_watch;
mod fake;
mod inject;
mod ktest;
mod logs;
mod monitor;
mod new;
mod peers;
mod ps;
mod python;
mod remove;
mod sdk;
mod standalone;
mod start;
mod templates;
mod top;
mod watch;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "kit", version, about = "Build, run and poke Hearth apps")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new package from a template (echo, app, ui; --list)
    New(new::NewArgs),
    /// Build a package's processes for wasm32-wasip2 into pkg/
    B(build::BuildArgs),
    /// Install and start a built package on a running node
    S(start::StartArgs),
    /// Build, then start
    Bs(start::StartArgs),
    /// Stop a package and remove it from a running node (its data stays)
    R(remove::RemoveArgs),
    /// Send a JSON request to a process and print the response
    I(inject::InjectArgs),
    /// Run a development node in the foreground
    F(fake::FakeArgs),
    /// Measure performance next to baselines and print a table
    Bench(bench::BenchArgs),
    /// Rebuild and reinstall on every save, keeping the processes' state
    Watch(dev_watch::WatchArgs),
    /// Run the package's tests (tests.toml) across throw-away nodes
    T(ktest::TestArgs),
    /// Print a node's log (kept by `kit f`), for one process or all
    Logs(logs::LogsArgs),
    /// List a node's processes: state, restarts, mailbox, memory, messages, flags
    Ps(ps::PsArgs),
    /// `kit ps`, refreshing, busiest first (q quits)
    Top(top::TopArgs),
    /// Follow the messages to and from a process (metadata only)
    M(monitor::MonitorArgs),
    /// List the peers a node is connected to
    Peers(peers::PeersArgs),
    /// Print a live room's events as they come, from this node or another
    WatchRoom(watch::WatchArgs),
    /// Print the API of a built package (a directory) or an installed one (its id)
    Api(api::ApiArgs),
}

fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::New(args) => new::run(&args),
        Command::B(args) => build::run(&args),
        Command::S(args) => start::run(&args),
        Command::Bs(args) => start::build_and_start(&args),
        Command::R(args) => remove::run(&args),
        Command::I(args) => inject::run(args),
        Command::F(args) => fake::run(args),
        Command::Bench(args) => bench::run(&args),
        Command::T(args) => ktest::run(&args),
        Command::Watch(args) => dev_watch::run(&args),
        Command::Ps(args) => ps::run(&args),
        Command::Top(args) => top::run(&args),
        Command::M(args) => monitor::run(&args),
        Command::Logs(args) => logs::run(&args),
        Command::Peers(args) => peers::run(&args),
        Command::WatchRoom(args) => watch::run(&args),
        Command::Api(args) => api::run(&args),
    }
}

/// Exit code when the node answered with a typed error (`ApiError`).
const EXIT_NODE_ERROR: u8 = 2;
/// Exit code for every failure on this side: bad arguments, no node,
/// connection refused, build failures.
const EXIT_LOCAL_ERROR: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => match e.downcast_ref::<admin::NodeError>() {
            Some(node_error) => {
                eprintln!("{node_error}");
                ExitCode::from(EXIT_NODE_ERROR)
            }
            None => {
                eprintln!("error: {e:#}");
                ExitCode::from(EXIT_LOCAL_ERROR)
            }
        },
    }
}

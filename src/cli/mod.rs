//! The command line: argument parsing and dispatch, one file per command.
//!
//! Commands only parse arguments, call the engine and render its results; diagnostics are
//! rendered with miette here at the edge and nowhere else.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod apply;
pub mod common;
pub mod diagnostics;
pub mod enc;
pub mod fmt;
pub mod history;
pub mod hostdb;
pub mod hosts;
pub mod images;
pub mod people;
pub mod plan;
pub mod serve;
pub mod show;
pub mod ssh;
pub mod store;
pub mod sync;
pub mod table;
pub mod tags;
pub mod template;
pub mod validate;
pub mod view;

/// Declarative plan/apply for a private container cloud.
#[derive(Debug, Parser)]
#[command(name = "kloud", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a config directory and report every problem in it
    Validate(validate::Args),
    /// Rewrite config files in the canonical layout
    Fmt(fmt::Args),
    /// Show what apply would change
    Plan(plan::Args),
    /// Show a saved plan
    Show(show::Args),
    /// Create, change and delete containers so that they match the config
    Apply(apply::Args),
    /// Plan and apply the deletion of every host the config manages
    Destroy(apply::DestroyArgs),
    /// Compare what every machine really runs with HostDB
    Refresh(apply::RefreshArgs),
    /// Adopt a container that no host record explains
    Import(apply::ImportArgs),
    /// Release the HostDB apply lock held by a crashed run
    ForceUnlock(apply::ForceUnlockArgs),
    /// List hosts recorded in HostDB
    Hosts(hosts::HostsArgs),
    /// List and manage tags in HostDB
    Tags(tags::TagsArgs),
    /// Show the recorded history of a host or tag
    History(history::HistoryArgs),
    /// Serve HostDB over HTTP and manage its tokens
    Hostdb(hostdb::Args),
    /// Serve the config's HostDB, sign-in and the HostDB v1 API (https with --tls-*)
    Serve(serve::Args),
    /// Print the puppet External Node Classifier YAML for a host
    Enc(enc::Args),
    /// Converge one integration from HostDB, once or continuously
    Sync(sync::Args),
    /// List, rebuild and prune the LXC images built on a computer
    Images(images::Args),
    /// Log in to a host (or run a command there) by ssh, as its login user
    Ssh(ssh::Args),
    /// Sign in to a `kloud serve` (self-service) and keep the session
    Login(people::LoginArgs),
    /// End the session kept by `kloud login`
    Logout,
    /// The offers you may take hosts of, with how many you hold
    Offers(people::ListArgs),
    /// Ask for a host of an offer
    Request(people::RequestArgs),
    /// Your hosts
    Mine(people::ListArgs),
    /// Give one of your hosts back (its container is destroyed)
    Release(people::HostArgs),
    /// Destroy one of your hosts and create it again under the same name
    Recreate(people::HostArgs),
}

/// Parse the command line, run the command and turn its outcome into an exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Like any Unix filter: `kloud hosts | head` ends quietly when the reader goes away. Not
    // the servers: there SIGPIPE stays ignored, or a client closing its connection while an
    // answer is written would kill the process (found by `scripts/bench-serve.py`).
    let server = matches!(
        &cli.command,
        Command::Serve(_)
            | Command::Hostdb(hostdb::Args {
                command: hostdb::HostdbCommand::Serve(_),
                ..
            })
    );
    if !server {
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let outcome = match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Fmt(a) => fmt::run(a),
        Command::Plan(a) => plan::run(a),
        Command::Show(a) => show::run(a),
        Command::Apply(a) => apply::run(a),
        Command::Destroy(a) => apply::run_destroy(a),
        Command::Refresh(a) => apply::run_refresh(a),
        Command::Import(a) => apply::run_import(a),
        Command::ForceUnlock(a) => apply::run_force_unlock(a),
        Command::Hosts(a) => hosts::run_hosts(a),
        Command::Tags(a) => tags::run_tags(a),
        Command::History(a) => history::run_history(a),
        Command::Hostdb(a) => hostdb::run(a),
        Command::Serve(a) => serve::run(a),
        Command::Enc(a) => enc::run(a),
        Command::Sync(a) => sync::run(a),
        Command::Images(a) => images::run(a),
        Command::Ssh(a) => ssh::run(a),
        Command::Login(a) => people::run_login(a),
        Command::Logout => people::run_logout(),
        Command::Offers(a) => people::run_offers(a),
        Command::Request(a) => people::run_request(a),
        Command::Mine(a) => people::run_mine(a),
        Command::Release(a) => people::run_release(a),
        Command::Recreate(a) => people::run_recreate(a),
    };
    match outcome {
        Ok(code) => code,
        Err(report) => diagnostics::Reported::exit_code(&report).unwrap_or_else(|| {
            eprintln!("{report:?}");
            ExitCode::from(1)
        }),
    }
}

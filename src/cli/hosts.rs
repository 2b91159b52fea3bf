//! `kloud hosts` (work in progress).
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct HostsArgs {}

pub fn run_hosts(_args: HostsArgs) -> miette::Result<ExitCode> {
    super::not_yet("run_hosts")
}

#[derive(Debug, clap::Args)]
pub struct TagsArgs {}

pub fn run_tags(_args: TagsArgs) -> miette::Result<ExitCode> {
    super::not_yet("run_tags")
}

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {}

pub fn run_history(_args: HistoryArgs) -> miette::Result<ExitCode> {
    super::not_yet("run_history")
}

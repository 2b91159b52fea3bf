//! `kloud apply` (work in progress).
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args) -> miette::Result<ExitCode> {
    super::not_yet("run")
}

#[derive(Debug, clap::Args)]
pub struct DestroyArgs {}

pub fn run_destroy(_args: DestroyArgs) -> miette::Result<ExitCode> {
    super::not_yet("run_destroy")
}

#[derive(Debug, clap::Args)]
pub struct RefreshArgs {}

pub fn run_refresh(_args: RefreshArgs) -> miette::Result<ExitCode> {
    super::not_yet("run_refresh")
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {}

pub fn run_import(_args: ImportArgs) -> miette::Result<ExitCode> {
    super::not_yet("run_import")
}

#[derive(Debug, clap::Args)]
pub struct ForceUnlockArgs {}

pub fn run_force_unlock(_args: ForceUnlockArgs) -> miette::Result<ExitCode> {
    super::not_yet("run_force_unlock")
}

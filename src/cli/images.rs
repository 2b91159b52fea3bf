//! `kloud images`: the LXC images built on a computer (list, rebuild, prune).
//!
//! `debian-12` is built by debootstrap once per computer into the image cache
//! (`KLOUD_IMAGE_CACHE`, default `/var/lib/kloud/images`) and each container is an overlay of
//! one generation of it. `list` shows every generation with its identity (when built, from
//! which archive, how long it took, how many packages and the digest of their list) and the
//! containers using it; `rebuild IMAGE` builds a new generation that new containers copy
//! (existing ones keep theirs); `prune` removes generations neither current nor used.

use std::process::ExitCode;

use kloud_provider_api::compute::{Connect, MachineRef};
use kloud_provider_lxc::LxcDriver;
use miette::miette;

use super::common::print_json;
use super::table::print_table;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<ImagesCommand>,
    /// The computer whose images to manage: `local` or `ssh://user@host[:port]`
    #[arg(long, default_value = "local", global = true)]
    pub connect: String,
    /// Print JSON
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum ImagesCommand {
    /// List every generation of every image in the cache (the default)
    List,
    /// Build a new generation of an image; new containers copy it, existing ones keep theirs
    Rebuild {
        /// An image name the LXC driver builds with debootstrap (`debian-12`)
        image: String,
    },
    /// Remove generations that are neither current nor used by a container
    Prune,
}

fn driver_and_machine(connect: &str) -> miette::Result<(LxcDriver, MachineRef)> {
    let driver =
        LxcDriver::from_env().map_err(|e| miette!(code = "kloud::images::config", "{e}"))?;
    let connect: Connect = connect
        .parse()
        .map_err(|e| miette!(code = "kloud::images::connect", "{e}"))?;
    let name = match &connect {
        Connect::Local => "local".to_string(),
        Connect::Ssh { host, .. } => host.clone(),
    };
    Ok((driver, MachineRef::new(name, connect)))
}

fn driver_error(e: kloud_provider_api::compute::DriverError) -> miette::Report {
    miette!(code = "kloud::images::driver", "{e}")
}

pub fn run(args: Args) -> miette::Result<ExitCode> {
    let (driver, m) = driver_and_machine(&args.connect)?;
    match args.command.unwrap_or(ImagesCommand::List) {
        ImagesCommand::List => list(&driver, &m, args.json),
        ImagesCommand::Rebuild { image } => rebuild(&driver, &m, &image, args.json),
        ImagesCommand::Prune => prune(&driver, &m, args.json),
    }
}

fn list(driver: &LxcDriver, m: &MachineRef, json: bool) -> miette::Result<ExitCode> {
    let gens = driver.list_images(m).map_err(driver_error)?;
    if json {
        print_json(&gens)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = gens
        .iter()
        .map(|g| {
            let id = g.identity.as_ref();
            vec![
                g.name.clone(),
                if !g.ready {
                    "partial".into()
                } else if g.current {
                    "current".into()
                } else {
                    "old".into()
                },
                id.map_or("-".into(), |i| i.built_at.clone()),
                id.map_or("-".into(), |i| format!("{}s", i.build_seconds)),
                id.map_or("-".into(), |i| i.packages.to_string()),
                id.map_or("-".into(), |i| i.packages_sha256.chars().take(12).collect()),
                g.users.len().to_string(),
            ]
        })
        .collect();
    print_table(
        &[
            "GENERATION",
            "STATE",
            "BUILT",
            "BUILD",
            "PACKAGES",
            "DIGEST",
            "CONTAINERS",
        ],
        &rows,
    );
    eprintln!(
        "{} generation(s) in {} on {}",
        gens.len(),
        driver.image_cache(),
        m.connect
    );
    Ok(ExitCode::SUCCESS)
}

fn rebuild(
    driver: &LxcDriver,
    m: &MachineRef,
    image: &str,
    json: bool,
) -> miette::Result<ExitCode> {
    let spec = driver.config().images.get(image).ok_or_else(|| {
        miette!(
            code = "kloud::images::unknown",
            help = format!("images: {}", driver.config().images.names().join(", ")),
            "unknown image `{image}`"
        )
    })?;
    if !spec.boots() {
        return Err(miette!(
            code = "kloud::images::not_built",
            help = "only debootstrap images (`debian-12`) are built in the image cache; template images are built per LXC root",
            "`{image}` is not built by debootstrap"
        ));
    }
    eprintln!(
        "building {image} on {} (this takes a few minutes)...",
        m.connect
    );
    let generation = driver
        .ensure_image(m, image, spec, true)
        .map_err(driver_error)?;
    let built = driver
        .list_images(m)
        .map_err(driver_error)?
        .into_iter()
        .find(|g| g.name == generation);
    if json {
        print_json(&built)?;
    } else {
        let id = built.as_ref().and_then(|g| g.identity.as_ref());
        println!(
            "{generation}: built{}",
            id.map_or(String::new(), |i| format!(
                " in {}s, {} packages, digest {}",
                i.build_seconds,
                i.packages,
                i.packages_sha256.chars().take(12).collect::<String>()
            ))
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn prune(driver: &LxcDriver, m: &MachineRef, json: bool) -> miette::Result<ExitCode> {
    let kloud_provider_lxc::debian::Pruned { removed, kept } =
        driver.prune_images(m).map_err(driver_error)?;
    if json {
        print_json(&serde_json::json!({
            "removed": removed,
            "kept": kept.iter().map(|(g, why)| serde_json::json!({"generation": g, "why": why})).collect::<Vec<_>>(),
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    for g in &removed {
        println!("removed {g}");
    }
    for (g, why) in &kept {
        println!("kept {g}: {why}");
    }
    eprintln!("{} removed, {} kept", removed.len(), kept.len());
    Ok(ExitCode::SUCCESS)
}

//! `attendansee`: the one binary. Parses the command line, resolves the configuration, sets up
//! logging and hands over to the subcommand.

mod attend;
mod bench;
mod cli;
mod config;
mod db;
mod detect;
mod embed;
mod faces;
mod logging;
mod models;
mod serve;
mod users;
mod worker;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::{Common, FileConfig, ServeConfig};

/// The exit status when the database cannot be opened (unreachable, login refused), so that a
/// supervisor can tell it from a bad configuration (1).
const EXIT_DATABASE_UNAVAILABLE: u8 = 3;

/// The exit status when other storage (the blob store, a database lost after opening) cannot be
/// reached: `EX_UNAVAILABLE` of sysexits.h — worth retrying later, unlike a configuration error (1).
pub const EXIT_STORAGE_UNAVAILABLE: u8 = 69;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            let cannot_open = error.chain().any(|cause| {
                matches!(
                    cause.downcast_ref::<attendansee_store::StoreError>(),
                    Some(attendansee_store::StoreError::Open { .. })
                )
            });
            if cannot_open {
                ExitCode::from(EXIT_DATABASE_UNAVAILABLE)
            } else if storage_unavailable(&error) {
                ExitCode::from(EXIT_STORAGE_UNAVAILABLE)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn storage_unavailable(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<serve::BlobStoreUnreachable>()
            .is_some_and(serve::BlobStoreUnreachable::is_outage)
            || cause
                .downcast_ref::<attendansee_store::StoreError>()
                .is_some_and(attendansee_store::StoreError::is_unavailable)
    })
}

fn run(cli: Cli) -> Result<()> {
    let file = FileConfig::discover(cli.global.config.as_deref())?;
    let common = Common::resolve(&cli.global, &file);
    logging::init(&common)?;
    // The face commands are synchronous; only the server and the store need an async runtime.
    match cli.command {
        Command::Embed(args) => embed::run(&common, &args),
        Command::Detect(args) => detect::run(&common, &args),
        Command::Models(command) => models::run(&common, command),
        Command::Attend(args) => attend::run(&common, &args),
        Command::Bench(args) => bench::run(&common, &args),
        Command::Worker(args) => worker::run(&common, &args),
        Command::Serve(args) => {
            let config = ServeConfig::resolve(&args, &file)?;
            block_on(serve::run(&common, &config))
        }
        Command::Users(command) => block_on(users::run(&common, command)),
        Command::Db(command) => block_on(db::run(&common, command)),
    }
}

fn block_on(task: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(task)
}

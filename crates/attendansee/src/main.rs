//! `attendansee`: the one binary. Parses the command line, resolves the configuration, sets up
//! logging and hands over to the subcommand.

mod cli;
mod config;
mod logging;
mod serve;
mod users;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command};
use crate::config::{Common, FileConfig, ServeConfig};

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let file = FileConfig::discover(cli.global.config.as_deref())?;
    let common = Common::resolve(&cli.global, &file);
    logging::init(&common)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(&common, &ServeConfig::resolve(&args, &file)?).await,
            Command::Users(command) => users::run(&common, command).await,
        }
    })
}

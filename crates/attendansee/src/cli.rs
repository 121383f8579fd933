//! The command line: subcommands and flags. Every flag also reads an `ATTENDANSEE_…` variable;
//! see [`crate::config`] for how flags, environment, config file and defaults combine.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::LogFormat;

#[derive(Debug, Parser)]
#[command(
    name = "attendansee",
    version,
    about = "Face-recognition attendance: photograph a class, get who was there.",
    after_help = "Configuration is layered: defaults < config file < ATTENDANSEE_* environment < flags.\n\
                  The config file is --config, else ./attendansee.toml if it exists; its keys are the\n\
                  long flag names with '_' for '-' (bind, data_dir, log_format, log_level, token_ttl_days)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Default, Args)]
pub struct GlobalArgs {
    /// TOML config file [default: ./attendansee.toml if present]
    #[arg(long, global = true, env = "ATTENDANSEE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the database and stored photos [default: ./data]
    #[arg(long, global = true, env = "ATTENDANSEE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Log line format [default: text]
    #[arg(long, global = true, env = "ATTENDANSEE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `debug,sqlx=warn` [default: info]
    #[arg(
        long,
        global = true,
        env = "ATTENDANSEE_LOG_LEVEL",
        value_name = "FILTER"
    )]
    pub log_level: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API server.
    Serve(ServeArgs),
    /// Administer user accounts from the shell.
    #[command(subcommand)]
    Users(UsersCommand),
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port [default: 127.0.0.1:8000]
    #[arg(long, env = "ATTENDANSEE_BIND", value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
    /// Lifetime of tokens issued by login, in days [default: 14]
    #[arg(long, env = "ATTENDANSEE_TOKEN_TTL_DAYS", value_name = "DAYS")]
    pub token_ttl_days: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user; the password is read from the first line of standard input.
    Create {
        #[arg(long)]
        username: String,
        /// Make the user an admin (default: instructor).
        #[arg(long)]
        admin: bool,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Issue an API token for a user and print it.
    Token {
        #[arg(long)]
        username: String,
        /// What the token is for.
        #[arg(long, default_value = "cli")]
        label: String,
        /// Lifetime in days.
        #[arg(long, default_value_t = 30)]
        days: u32,
    },
    /// List users.
    List,
}

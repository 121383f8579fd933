//! Structured logs on stderr, as text or JSON lines. Request spans carry the request id, so every
//! line logged while handling a request names it.

use std::io::IsTerminal;

use anyhow::{Context, Result};
use tracing_subscriber::EnvFilter;

use crate::config::{Common, LogFormat};

pub fn init(common: &Common) -> Result<()> {
    let filter = EnvFilter::try_new(&common.log_level)
        .with_context(|| format!("invalid log filter '{}'", common.log_level))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let result = match common.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

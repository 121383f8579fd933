//! `attendansee db copy`: moves a SQLite installation (the one the configuration names) into an
//! empty PostgreSQL database and, with `--blobs-to`, its blobs into another blob store. The copy
//! itself, its checks and its verification are the store's (`attendansee_store::copy`).

use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use attendansee_store::copy::{CopyProgress, RowCopy, copy_blobs};
use attendansee_store::{BlobStore, DataDirLock, DatabaseLocation, Store};

use crate::cli::DbCommand;
use crate::config::Common;

pub async fn run(common: &Common, command: DbCommand) -> Result<()> {
    match command {
        DbCommand::Copy { to, blobs_to } => copy(common, &to, blobs_to.as_deref()).await,
    }
}

async fn copy(common: &Common, to: &str, blobs_to: Option<&str>) -> Result<()> {
    let started = Instant::now();
    let DatabaseLocation::Sqlite(path) = common.database()? else {
        bail!("db copy moves a SQLite installation; the configured database is already PostgreSQL");
    };
    let target_location = DatabaseLocation::resolve(Some(to), &common.data_dir)?;
    if !target_location.is_shared() {
        bail!("db copy --to takes a postgres:// URL, not {target_location}");
    }
    if !path.is_file() {
        bail!(
            "there is no SQLite database at {}: nothing to copy",
            path.display()
        );
    }
    // A running server could write while the copy reads: its lock makes the copy refuse.
    let _lock = DataDirLock::acquire(&common.data_dir)
        .context("stop the server before copying its installation")?;
    let source = Store::open(&path).await?;
    let source_blobs = common.blob_store()?;
    let target_blobs = match blobs_to {
        Some(url) => {
            let blobs = BlobStore::from_url(url)?;
            blobs
                .check()
                .await
                .map_err(|reason| anyhow::anyhow!("cannot reach the blob store {url}: {reason}"))?;
            Some(blobs)
        }
        None => None,
    };
    let target = Store::connect(&target_location).await?;
    let rows = RowCopy::prepare(&source, &target).await?;
    println!(
        "copying {} ({} tables) to {target_location}",
        path.display(),
        rows.tables().len()
    );
    let mut progress = |step: CopyProgress| {
        match step {
            CopyProgress::Table { table, rows } => println!("  {table}: {rows} rows"),
            CopyProgress::Blobs { done, total } => println!("  blobs: {done} of {total}"),
        }
        let _ = std::io::stdout().flush();
    };
    // Blobs first: a row is never on the target before the blob it names.
    let blobs = match &target_blobs {
        Some(target_blobs) => {
            println!(
                "copying blobs from {} to {}",
                source_blobs.location(),
                target_blobs.location()
            );
            Some(copy_blobs(&source_blobs, target_blobs, &mut progress).await?)
        }
        None => None,
    };
    let tables = rows.run(&mut progress).await?;
    target.close().await;
    source.close().await;
    let total: u64 = tables.iter().map(|t| t.rows).sum();
    let elapsed = started.elapsed().as_secs_f64();
    match blobs {
        Some(blobs) => println!(
            "copied {total} rows in {} tables, {blobs} blobs in {elapsed:.1} s; counts and checksums verified",
            tables.len()
        ),
        None => {
            println!(
                "copied {total} rows in {} tables in {elapsed:.1} s; counts and checksums verified",
                tables.len()
            );
            println!(
                "blobs were not copied: they stay in {}; run the new installation with that blob \
                 store (the same --data-dir, or --blob-url), or copy again with --blobs-to",
                source_blobs.location()
            );
        }
    }
    Ok(())
}

//! `attendansee models list | fetch | verify`: the catalog and the files in the model directory.

use std::io::IsTerminal;

use anyhow::{Result, bail};

use std::path::Path;

use attendansee_faces::catalog::Source;
use attendansee_faces::models::FileStatus;
use attendansee_faces::{FaceError, ModelKind, ModelSpec, Recognizer, Runtime};

use crate::cli::ModelsCommand;
use crate::config::Common;

pub fn run(common: &Common, command: ModelsCommand) -> Result<()> {
    let models = common.models();
    match command {
        ModelsCommand::List => {
            println!("model directory: {}", models.dir.display());
            println!(
                "{:<20} {:<10} {:<36} {:<11} {:<46} notes",
                "name", "kind", "file", "installed", "obtained by"
            );
            for spec in &models.catalog {
                let status = match models.status(spec)? {
                    FileStatus::Missing => "no",
                    FileStatus::Unverified => "unverified",
                    FileStatus::Verified => "yes",
                    FileStatus::Corrupt { .. } => "CORRUPT",
                };
                let kind = format!("{:?}", spec.kind).to_lowercase();
                println!(
                    "{:<20} {:<10} {:<36} {:<11} {:<46} {}",
                    spec.name,
                    kind,
                    spec.file,
                    status,
                    spec.source().to_string(),
                    spec.notes
                );
            }
            // The commands themselves are too long for the table.
            for spec in &models.catalog {
                if let Source::Export { command } = spec.source() {
                    println!("{}: {command}", spec.name);
                }
            }
            Ok(())
        }
        ModelsCommand::Fetch { names, mirror } => {
            let mut failed = 0;
            for name in &names {
                let spec = models.spec(name)?;
                if models.status(spec)? == FileStatus::Verified {
                    eprintln!("{name}: already installed and verified");
                    continue;
                }
                let terminal = std::io::stderr().is_terminal();
                let mut progress = |done: u64, total: Option<u64>| {
                    if terminal {
                        let mb = |b: u64| b as f64 / 1e6;
                        match total {
                            Some(t) if t > 0 => eprint!(
                                "\r\x1b[2K{name}: {:.1}/{:.1} MB ({}%)",
                                mb(done),
                                mb(t),
                                done * 100 / t
                            ),
                            _ => eprint!("\r\x1b[2K{name}: {:.1} MB", mb(done)),
                        }
                    }
                };
                let result = models.install(spec, mirror.as_deref(), &mut progress, &|file| {
                    check_loads(common, spec, file)
                });
                if terminal {
                    eprintln!();
                }
                match result {
                    Ok(path) => eprintln!("{name}: installed {}", path.display()),
                    Err(e) => {
                        eprintln!("{name}: {e}");
                        failed += 1;
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} of {} models could not be installed", names.len());
            }
            Ok(())
        }
        ModelsCommand::Verify => {
            let mut bad = 0;
            for spec in &models.catalog {
                match models.status(spec)? {
                    FileStatus::Missing => {}
                    FileStatus::Unverified => {
                        println!("{}: present, no checksum to verify against", spec.name)
                    }
                    FileStatus::Verified => println!("{}: ok", spec.name),
                    FileStatus::Corrupt { actual } => {
                        bad += 1;
                        println!(
                            "{}: CORRUPT (sha256 {actual}, expected {})",
                            spec.name,
                            spec.sha256.as_deref().unwrap_or("?")
                        );
                    }
                }
            }
            if bad > 0 {
                bail!("{bad} model files do not match their checksums");
            }
            Ok(())
        }
    }
}

/// A recognizer is loaded once before it is installed, so that a file whose output dimension
/// differs from its catalog entry is refused (`DimensionMismatch`). Without ONNX Runtime the
/// check is skipped with a warning: the checksum has already been verified.
fn check_loads(common: &Common, spec: &ModelSpec, file: &Path) -> Result<(), FaceError> {
    if spec.kind != ModelKind::Recognizer {
        return Ok(());
    }
    match Runtime::load(&Runtime::locate(common.ort_lib.as_deref())) {
        Ok(runtime) => Recognizer::load(&runtime, spec, file).map(drop),
        Err(e) => {
            eprintln!("{}: output dimension not checked: {e}", spec.name);
            Ok(())
        }
    }
}

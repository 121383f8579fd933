//! `attendansee attend`: attendance for a folder of photos without a server. Enrolls one
//! person per sub-folder of `--enroll`, finds every face of the `--photos`, assigns them with the
//! same rules as the server (per photo, optimally, above the model's calibrated threshold and
//! with a margin over the runner-up), groups the faces nobody matched, and reports who was there.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use attendansee_faces::pipeline::Pipeline;
use attendansee_recognition::{BruteForceIndex, OneFace, assign_photo, dbscan, the_one_face};
use attendansee_services::Matching;
use attendansee_services::attendance::csv_row;

use crate::cli::AttendArgs;
use crate::config::Common;
use crate::faces::{Progress, image_paths, load_pipeline, model_matching};

/// A person as enrolled from their folder.
struct Person {
    name: String,
    references: usize,
}

/// Where a person was seen.
#[derive(Default)]
struct Sightings {
    photos: Vec<String>,
    best: f32,
}

pub fn run(common: &Common, args: &AttendArgs) -> Result<()> {
    let mut pipeline = load_pipeline(common, &args.detector, Some(&args.model))?;
    let spec = common.models().spec(&args.model)?.clone();
    let calibrated = model_matching(&spec);
    // The server's rules, with the command line's overrides (as a course's would be).
    let matching = Matching {
        threshold: args.threshold.unwrap_or(calibrated.threshold),
        margin: args.margin.unwrap_or(calibrated.margin),
        ..calibrated
    };
    let thresholds = matching.thresholds();

    let (people, gallery) = enroll(&mut pipeline, &args.enroll)?;
    eprintln!(
        "enrolled {} people from {}; matching with {} at similarity ≥ {:.2} and margin ≥ {:.2}",
        people.len(),
        args.enroll.display(),
        args.model,
        thresholds.similarity,
        thresholds.margin
    );

    let photos = image_paths(std::slice::from_ref(&args.photos))
        .with_context(|| format!("cannot list {}", args.photos.display()))?;
    if photos.is_empty() {
        bail!("no photos (JPEG, PNG or WebP) in {}", args.photos.display());
    }
    let mut seen: BTreeMap<i64, Sightings> = BTreeMap::new();
    let mut unknown: Option<BruteForceIndex> = None;
    let mut unknown_where: Vec<String> = Vec::new();
    let mut failed = 0;
    let progress = Progress::new(photos.len());
    for (i, path) in photos.iter().enumerate() {
        progress.step(i + 1, path);
        let name = file_name(path);
        let faces = match faces_of(&mut pipeline, path) {
            Ok(faces) => faces,
            Err(e) => {
                eprintln!("{name}: skipped: {e:#}");
                failed += 1;
                continue;
            }
        };
        let crops: Vec<(i64, &[f32])> = faces
            .iter()
            .enumerate()
            .map(|(k, v)| (k as i64, v.as_slice()))
            .collect();
        for decision in assign_photo(&crops, &gallery, thresholds) {
            let vector = &faces[decision.crop as usize];
            match (decision.student, decision.best) {
                (Some(student), Some(best)) => {
                    let s = seen.entry(student).or_default();
                    s.photos.push(name.clone());
                    s.best = s.best.max(best.similarity);
                }
                _ => {
                    let unknown = unknown.get_or_insert_with(|| BruteForceIndex::new(vector.len()));
                    unknown.push(unknown_where.len() as i64, 0, vector)?;
                    unknown_where.push(name.clone());
                }
            }
        }
    }
    progress.finish();

    let unknown = unknown.unwrap_or_else(|| BruteForceIndex::new(0));
    let groups = dbscan(&unknown, matching.cluster_params());
    let group_count = groups.iter().flatten().max().map_or(0, |k| k + 1);

    let mut table = String::new();
    let mut csv = String::from("name,status,photos,best_similarity\n");
    for (id, person) in people.iter().enumerate() {
        let (status, photos, best) = match seen.get(&(id as i64)) {
            Some(s) => ("present", s.photos.join(" "), format!("{:.3}", s.best)),
            // A face nobody matched may be this person: say so rather than "absent".
            None if !unknown_where.is_empty() => ("unknown", String::new(), String::new()),
            None => ("absent", String::new(), String::new()),
        };
        table.push_str(&format!(
            "{:<8} {:<30} {} reference photo(s){}\n",
            status,
            person.name,
            person.references,
            if photos.is_empty() {
                String::new()
            } else {
                format!("; seen in {photos} (best {best})")
            }
        ));
        csv_row(&mut csv, &[&person.name, status, &photos, &best]);
    }
    let mut out = std::io::stdout().lock();
    write!(out, "{table}")?;
    writeln!(
        out,
        "{} face(s) matched nobody ({} group(s) of the same unknown person); {} photo(s) skipped",
        unknown_where.len(),
        group_count,
        failed
    )?;
    if let Some(file) = &args.csv {
        std::fs::write(file, csv).with_context(|| format!("cannot write {}", file.display()))?;
        writeln!(out, "wrote {}", file.display())?;
    }
    Ok(())
}

/// One person per sub-folder (its name is the person's); each photo's one face is a reference,
/// labelled with the person's index. Photos with no face or with several faces of similar size
/// are skipped with a warning.
fn enroll(pipeline: &mut Pipeline, dir: &Path) -> Result<(Vec<Person>, BruteForceIndex)> {
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the enrollment folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    folders.sort();
    if folders.is_empty() {
        bail!(
            "{} has no sub-folders: put each person's photos in a folder named after them",
            dir.display()
        );
    }
    // The index takes its dimension from the first face (a user-added model may not declare it).
    let mut index: Option<BruteForceIndex> = None;
    let mut people = Vec::new();
    for folder in folders {
        let name = file_name(&folder);
        let mut references = 0;
        for path in image_paths(std::slice::from_ref(&folder))? {
            match reference_face(pipeline, &path) {
                Ok(vector) => {
                    let index = index.get_or_insert_with(|| BruteForceIndex::new(vector.len()));
                    index.push(index.ids().len() as i64, people.len() as i64, &vector)?;
                    references += 1;
                }
                Err(e) => eprintln!("{name}/{}: not enrolled: {e:#}", file_name(&path)),
            }
        }
        if references == 0 {
            eprintln!("{name}: no usable photo; listed, but cannot be recognised");
        }
        people.push(Person { name, references });
    }
    Ok((people, index.unwrap_or_else(|| BruteForceIndex::new(0))))
}

/// The embedding of the one face of an enrollment photo.
fn reference_face(pipeline: &mut Pipeline, path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path)?;
    let mut photo = pipeline.detect(&bytes, None)?;
    let faces = &photo.faces;
    let sizes: Vec<f32> = faces.iter().map(|f| f.bbox.w.min(f.bbox.h)).collect();
    let face = match the_one_face(&sizes) {
        OneFace::Found(i) => faces[i],
        OneFace::NoFace => bail!("no face found"),
        OneFace::Ambiguous {
            faces,
            largest,
            second,
        } => bail!("{faces} faces of similar size ({largest:.0} and {second:.0} px)"),
    };
    pipeline
        .embed(&mut photo, &bytes, &[face])?
        .pop()
        .map(|f| f.embedding.vector)
        .context("the face could not be aligned")
}

/// Every face of a class photo, embedded.
fn faces_of(pipeline: &mut Pipeline, path: &Path) -> Result<Vec<Vec<f32>>> {
    Ok(pipeline
        .embed_all(&std::fs::read(path)?)?
        .into_iter()
        .map(|f| f.embedding.vector)
        .collect())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

//! `attendansee worker`: one isolated inference process. Loads its models once, says hello, then
//! answers framed requests on stdin/stdout until stdin closes (as it does when the server dies,
//! however it dies). Logs go to stderr as `[WORKER <pid>] …`, which the supervisor forwards.

use std::io::{BufReader, BufWriter, Cursor, Write};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::Result;
use image::RgbImage;

use attendansee_faces::image_io::{DEFAULT_MAX_PIXELS, decode_rgb};
use attendansee_faces::imageops::face_sharpness;
use attendansee_faces::pipeline::{Photo, PhotoOptions, align_faces, detect_photo};
use attendansee_faces::preview::preview_jpeg;
use attendansee_faces::reduced::{Decoded, decode_reduced};
use attendansee_faces::{Detector, Face, FaceError, Recognizer, Runtime};
use attendansee_pool::protocol::{
    DetectedFace, FrameError, Hello, Job, JobError, LoadedModel, Output, PROTOCOL_VERSION, Request,
    Response, Timings, UnavailableModel, read_frame, write_frame,
};
use attendansee_vocabulary::ErrorKind;

use crate::cli::WorkerArgs;
use crate::config::Common;

/// A log line on stderr. Never panics: when the server is gone, stderr is a broken pipe and the
/// worker must still reach its exit.
macro_rules! log {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), "[WORKER {}] {}", std::process::id(), format_args!($($arg)*));
    }};
}

/// The models this worker holds.
struct Models {
    detectors: Vec<Detector>,
    recognizers: Vec<Recognizer>,
    unavailable: Vec<UnavailableModel>,
}

pub fn run(common: &Common, args: &WorkerArgs) -> Result<()> {
    // The supervisor stops workers itself (end of stdin, then SIGKILL). A SIGINT or SIGTERM sent
    // to the whole service must not kill a job midway; the worker follows when the server exits.
    // SAFETY: setting signal dispositions to SIG_IGN before any other thread exists.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
    }
    let started = Instant::now();
    let mut models = load(common, args);
    let hello = Hello {
        protocol_version: PROTOCOL_VERSION,
        pid: std::process::id(),
        models: models
            .detectors
            .iter()
            .map(|d| LoadedModel {
                name: d.spec().name.clone(),
                kind: "detector".into(),
                dimension: None,
            })
            .chain(models.recognizers.iter().map(|r| LoadedModel {
                name: r.spec().name.clone(),
                kind: "recognizer".into(),
                dimension: Some(r.dimension() as u32),
            }))
            .collect(),
        unavailable: models.unavailable.clone(),
    };
    let names: Vec<&str> = hello.models.iter().map(|m| m.name.as_str()).collect();
    log!(
        "ready in {} ms with {names:?}",
        started.elapsed().as_millis()
    );
    let mut out = BufWriter::new(std::io::stdout().lock());
    write_frame(&mut out, &hello)?;

    // stdin is read on its own thread, so that the end of input stops the process even while a
    // job is running (or hanging).
    let (requests, incoming) = mpsc::sync_channel::<Request>(1);
    std::thread::spawn(move || {
        let mut input = BufReader::new(std::io::stdin().lock());
        loop {
            match read_frame::<Request>(&mut input) {
                Ok(request) => {
                    if requests.send(request).is_err() {
                        break;
                    }
                }
                Err(FrameError::Closed) => {
                    log!("stdin closed; exiting");
                    std::process::exit(0);
                }
                Err(e) => {
                    log!("unreadable request ({e}); exiting");
                    std::process::exit(2);
                }
            }
        }
    });
    let mut served = 0u64;
    for request in incoming {
        served += 1;
        fault::maybe_inject(served, &request.job, &mut out);
        let response = handle(&mut models, request);
        write_frame(&mut out, &response)?;
    }
    Ok(())
}

fn load(common: &Common, args: &WorkerArgs) -> Models {
    let mut models = Models {
        detectors: Vec::new(),
        recognizers: Vec::new(),
        unavailable: Vec::new(),
    };
    let names: Vec<(&String, bool)> = args
        .detectors
        .iter()
        .map(|n| (n, true))
        .chain(args.recognizers.iter().map(|n| (n, false)))
        .collect();
    let unavailable = |name: &str, e: &FaceError| UnavailableModel {
        name: name.to_owned(),
        kind: e.kind(),
        message: e.to_string(),
    };
    let runtime = match Runtime::load(&Runtime::locate(common.ort_lib.as_deref())) {
        Ok(runtime) => runtime,
        Err(e) => {
            log!("{e}");
            models.unavailable = names.iter().map(|(n, _)| unavailable(n, &e)).collect();
            return models;
        }
    };
    let dir = common.models();
    for (name, is_detector) in names {
        let loaded = dir.spec(name).and_then(|spec| {
            let path = dir.path(spec);
            if is_detector {
                Detector::load(&runtime, spec, &path).map(|d| models.detectors.push(d))
            } else {
                Recognizer::load(&runtime, spec, &path).map(|r| models.recognizers.push(r))
            }
        });
        if let Err(e) = loaded {
            log!("model {name} unavailable: {e}");
            models.unavailable.push(unavailable(name, &e));
        }
    }
    models
}

fn handle(models: &mut Models, request: Request) -> Response {
    let mut timings = Timings::default();
    let asked = JobLine::of(models, &request.job);
    let result = match request.job {
        Job::Ping => Ok(Output::Pong),
        Job::Validate { image } => decode(&image, &mut timings).map(|i| Output::ImageInfo {
            width: i.full_width,
            height: i.full_height,
        }),
        Job::Detect {
            image,
            detector,
            score_threshold,
        } => detect(models, &image, &detector, score_threshold, &mut timings).map(|photo| {
            Output::Faces {
                width: photo.width,
                height: photo.height,
                faces: photo.faces.iter().map(described).collect(),
                preview: None,
            }
        }),
        Job::EmbedCrops { crops, model } => embed_crops(models, &crops, &model, &mut timings),
        Job::DetectAndEmbed {
            image,
            detector,
            model,
            return_crops,
            preview_side,
        } => detect_and_embed(
            models,
            &image,
            &detector,
            &model,
            return_crops,
            &mut timings,
        )
        .map(|(output, photo)| with_preview(output, photo.image(), preview_side)),
    };
    match &result {
        Ok(Output::Pong) => {}
        Ok(output) => log!("{}", asked.finished(output, &timings)),
        Err(e) => log!("request {} failed: {}: {}", request.id, e.kind, e.message),
    }
    Response {
        id: request.id,
        result,
        timings,
    }
}

/// The job's log line, the modern form of the old service's "Embedding generated successfully:
/// 128 dimensions": what was asked (kind, models, dimension), then what came of it and where the
/// time went.
struct JobLine {
    kind: &'static str,
    models: String,
}

impl JobLine {
    fn of(models: &Models, job: &Job) -> JobLine {
        let dimension = |name: &str| {
            let loaded = models.recognizers.iter().find(|r| r.spec().name == name);
            loaded.map_or_else(|| "?".into(), |r| r.dimension().to_string())
        };
        let models = match job {
            Job::Ping | Job::Validate { .. } => String::new(),
            Job::Detect { detector, .. } => format!(" detector={detector}"),
            Job::EmbedCrops { model, .. } => format!(" model={model} dim={}", dimension(model)),
            Job::DetectAndEmbed {
                detector, model, ..
            } => format!(
                " model={model} dim={} detector={detector}",
                dimension(model)
            ),
        };
        JobLine {
            kind: job.kind(),
            models,
        }
    }

    fn finished(&self, output: &Output, t: &Timings) -> String {
        let counts = match output {
            Output::Pong => String::new(),
            Output::ImageInfo { width, height } => format!(" image={width}x{height}"),
            Output::Faces {
                width,
                height,
                faces,
                preview,
            } => format!(
                " image={width}x{height} faces={}{}",
                faces.len(),
                preview
                    .as_ref()
                    .map_or(String::new(), |p| format!(" preview={}KB", p.len() / 1024))
            ),
            Output::Embeddings { embeddings } => format!(" crops={}", embeddings.len()),
        };
        format!(
            "{}{}{counts} decode={:.1}ms detect={:.1}ms align={:.1}ms embed={:.1}ms",
            self.kind, self.models, t.decode_ms, t.detect_ms, t.align_ms, t.embed_ms
        )
    }
}

fn job_error(e: FaceError) -> JobError {
    JobError {
        kind: e.kind(),
        message: e.to_string(),
    }
}

fn ms(since: Instant) -> f32 {
    since.elapsed().as_secs_f32() * 1000.0
}

/// Decodes the whole file to validate it, as detection will decode it (a large JPEG at a reduced
/// DCT scale, by the same decoder: it still reads every coefficient, so a corrupt one fails as at
/// full scale, in about half the time).
fn decode(bytes: &[u8], timings: &mut Timings) -> Result<Decoded, JobError> {
    let t = Instant::now();
    // 640: the built-in detectors' input.
    let side = 640 * attendansee_faces::pipeline::DECODE_OVERSAMPLING;
    let image = decode_reduced(bytes, DEFAULT_MAX_PIXELS, side).map_err(|e| job_error(e.into()));
    timings.decode_ms += ms(t);
    image
}

/// The model named `name` among `list`, or why it is not here.
fn find<'a, T>(
    list: &'a mut [T],
    name: &str,
    unavailable: &[UnavailableModel],
    spec_name: impl Fn(&T) -> &str,
) -> Result<&'a mut T, JobError> {
    if let Some(model) = list.iter_mut().find(|m| spec_name(m) == name) {
        return Ok(model);
    }
    Err(match unavailable.iter().find(|u| u.name == name) {
        Some(u) => JobError {
            kind: u.kind,
            message: u.message.clone(),
        },
        None => JobError {
            kind: ErrorKind::ModelNotAvailable,
            message: format!(
                "model '{name}' is not loaded in the workers (see `serve --detector/--recognizer`)"
            ),
        },
    })
}

fn detect(
    models: &mut Models,
    bytes: &[u8],
    detector: &str,
    threshold: Option<f32>,
    timings: &mut Timings,
) -> Result<Photo, JobError> {
    let detector = find(&mut models.detectors, detector, &models.unavailable, |d| {
        d.spec().name.as_str()
    })?;
    let options = PhotoOptions::for_detector(detector.spec());
    let photo = detect_photo(detector, bytes, DEFAULT_MAX_PIXELS, threshold, &options)
        .map_err(job_error)?;
    timings.decode_ms += photo.decode_ms;
    timings.detect_ms += photo.detect_ms;
    Ok(photo)
}

fn described(face: &Face) -> DetectedFace {
    let b = face.bbox;
    DetectedFace {
        bbox: [b.x, b.y, b.w, b.h],
        score: face.score,
        landmarks: face.landmarks,
        embedding: None,
        crop_jpeg: None,
        blur: None,
    }
}

fn embed_crops(
    models: &mut Models,
    crops: &[Vec<u8>],
    model: &str,
    timings: &mut Timings,
) -> Result<Output, JobError> {
    let recognizer = find(&mut models.recognizers, model, &models.unavailable, |r| {
        r.spec().name.as_str()
    })?;
    let [w, h] = recognizer.spec().input_size;
    let t = Instant::now();
    let images = crops
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let image = decode_rgb(bytes, DEFAULT_MAX_PIXELS).map_err(|e| {
                let e = job_error(e.into());
                JobError {
                    message: format!("crop {i}: {}", e.message),
                    ..e
                }
            })?;
            Ok(if image.dimensions() == (w, h) {
                image
            } else {
                attendansee_faces::imageops::resize_bilinear(&image, w, h)
            })
        })
        .collect::<Result<Vec<_>, JobError>>()?;
    timings.decode_ms += ms(t);
    let t = Instant::now();
    let refs: Vec<&RgbImage> = images.iter().collect();
    let embeddings = recognizer.embed(&refs).map_err(job_error)?;
    timings.embed_ms += ms(t);
    Ok(Output::Embeddings {
        embeddings: embeddings.into_iter().map(|e| e.vector).collect(),
    })
}

fn detect_and_embed(
    models: &mut Models,
    bytes: &[u8],
    detector: &str,
    model: &str,
    return_crops: bool,
    timings: &mut Timings,
) -> Result<(Output, Photo), JobError> {
    // The recognizer is looked up first, so that a missing model is reported before any work.
    find(&mut models.recognizers, model, &models.unavailable, |r| {
        r.spec().name.as_str()
    })?;
    let mut photo = detect(models, bytes, detector, None, timings)?;
    let recognizer = find(&mut models.recognizers, model, &models.unavailable, |r| {
        r.spec().name.as_str()
    })?;
    let (t, decoded_before) = (Instant::now(), photo.decode_ms);
    let faces = photo.faces.clone();
    let aligned = align_faces(
        &mut photo,
        bytes,
        DEFAULT_MAX_PIXELS,
        &faces,
        recognizer.spec(),
    )
    .map_err(job_error)?;
    // A finer decode for small faces counts as decoding.
    let redecode = photo.decode_ms - decoded_before;
    timings.decode_ms += redecode;
    timings.align_ms += ms(t) - redecode;
    let t = Instant::now();
    let crops: Vec<&RgbImage> = aligned.iter().map(|(_, c)| c).collect();
    let embeddings = recognizer.embed(&crops).map_err(job_error)?;
    timings.embed_ms += ms(t);
    let faces = aligned
        .iter()
        .zip(embeddings)
        .map(|((face, crop), embedding)| DetectedFace {
            embedding: Some(embedding.vector),
            crop_jpeg: return_crops.then(|| jpeg(crop)).flatten(),
            blur: Some(face_sharpness(crop)),
            ..described(face)
        })
        .collect();
    let output = Output::Faces {
        width: photo.width,
        height: photo.height,
        faces,
        preview: None,
    };
    Ok((output, photo))
}

/// Adds the preview of the photo already decoded for detection (no second decode) when asked.
fn with_preview(output: Output, image: &RgbImage, side: Option<u32>) -> Output {
    match (output, side) {
        (
            Output::Faces {
                width,
                height,
                faces,
                ..
            },
            Some(side),
        ) => Output::Faces {
            width,
            height,
            faces,
            preview: preview_jpeg(image, side)
                .map_err(|e| log!("cannot encode a preview: {e}"))
                .ok(),
        },
        (output, _) => output,
    }
}

fn jpeg(image: &RgbImage) -> Option<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92);
    match image.write_with_encoder(encoder) {
        Ok(()) => Some(out.into_inner()),
        Err(e) => {
            log!("cannot encode a face crop as JPEG: {e}");
            None
        }
    }
}

/// Test-only faults, compiled in only with the `fault-injection` feature (never in a release
/// build). A job whose image bytes contain `ATTENDANSEE-FAULT:<kind>` (or, for detection jobs
/// only, `ATTENDANSEE-FAULT-ON-DETECT:<kind>`), or the Nth job of every
/// worker when `ATTENDANSEE_FAULT=<kind>@<N>`, makes this worker abort, segfault, hang, exit 1,
/// write a garbage frame, or allocate memory without bound. `ATTENDANSEE_FAULT_DELAY_MS=<ms>`
/// makes every job that much slower.
#[cfg(feature = "fault-injection")]
mod fault {
    use super::*;

    /// In any job carrying the image.
    const MARKER: &[u8] = b"ATTENDANSEE-FAULT:";
    /// Only in detection jobs, so that the image passes upload validation first.
    const DETECT_MARKER: &[u8] = b"ATTENDANSEE-FAULT-ON-DETECT:";

    /// The fault kind written after `marker` in `image`, if the marker is there.
    fn marked(image: &[u8], marker: &[u8]) -> Option<String> {
        let at = image.windows(marker.len()).position(|w| w == marker)?;
        let rest = &image[at + marker.len()..];
        let end = rest
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    }

    pub fn maybe_inject(served: u64, job: &Job, out: &mut impl Write) {
        // Every job slowed down, so that a test can see jobs overlap on several workers.
        if let Some(ms) = std::env::var("ATTENDANSEE_FAULT_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        let from_env = std::env::var("ATTENDANSEE_FAULT").ok().and_then(|v| {
            let (kind, n) = v.split_once('@')?;
            (n.parse::<u64>().ok()? == served).then(|| kind.to_owned())
        });
        let from_image = match job {
            Job::Validate { image } => marked(image, MARKER),
            Job::Detect { image, .. } | Job::DetectAndEmbed { image, .. } => {
                marked(image, MARKER).or_else(|| marked(image, DETECT_MARKER))
            }
            _ => None,
        };
        if let Some(kind) = from_env.or(from_image) {
            log!("injecting fault '{kind}' (test build)");
            match kind.as_str() {
                "abort" => std::process::abort(),
                // SAFETY: deliberately dying of SIGSEGV in a test build to exercise crash handling.
                // Rust's runtime handles SIGSEGV (stack-overflow detection) and would swallow a
                // raised one, so the default disposition is restored first.
                "segfault" => unsafe {
                    libc::signal(libc::SIGSEGV, libc::SIG_DFL);
                    libc::raise(libc::SIGSEGV);
                },
                "hang" => loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                },
                // _exit: no exit handlers racing ONNX Runtime's threads, so the status is exactly 1.
                "exit1" => unsafe { libc::_exit(1) },
                "garbage" => {
                    let _ = out.write_all(&[0, 0, 0, 5, 0xde, 0xad, 0xbe, 0xef, 0xff]);
                    let _ = out.flush();
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(3600));
                    }
                }
                "oom" => {
                    let mut hoard: Vec<Vec<u8>> = Vec::new();
                    loop {
                        hoard.push(vec![1u8; 32 << 20]);
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                }
                other => log!("unknown fault '{other}' ignored"),
            }
        }
    }
}

#[cfg(not(feature = "fault-injection"))]
mod fault {
    use super::*;

    /// Release builds have no fault injection: this does nothing.
    #[inline(always)]
    pub fn maybe_inject(_served: u64, _job: &Job, _out: &mut impl Write) {}
}

//! The worker protocol: the only types that cross the process boundary. Frames on the worker's
//! stdin and stdout are a 4-byte big-endian length followed by that many bytes of a postcard-
//! encoded message. The worker speaks first, with [`Hello`]; the supervisor refuses a worker
//! whose [`PROTOCOL_VERSION`] differs.

use std::io::{Read, Write};

use attendansee_vocabulary::ErrorKind;
use serde::{Deserialize, Serialize};

/// Bump on any change to the types below.
pub const PROTOCOL_VERSION: u32 = 4;

/// Largest frame either side accepts (a 64-megapixel photo is well below this).
pub const MAX_FRAME_BYTES: usize = 256 * 1024 * 1024;

/// The worker's first frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hello {
    pub protocol_version: u32,
    pub pid: u32,
    /// Models loaded and ready, by catalog name.
    pub models: Vec<LoadedModel>,
    /// Models that were asked for but could not be loaded, with why.
    pub unavailable: Vec<UnavailableModel>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LoadedModel {
    pub name: String,
    /// `detector` or `recognizer`.
    pub kind: String,
    /// Embedding length, for recognizers.
    pub dimension: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UnavailableModel {
    pub name: String,
    #[serde(with = "by_name")]
    pub kind: ErrorKind,
    pub message: String,
}

/// What the supervisor asks of a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Request {
    pub id: u64,
    pub job: Job,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Job {
    /// Answers `Pong`; proves the worker is alive and responsive.
    Ping,
    /// Decodes the image (all checks included) and reports its size.
    Validate { image: Vec<u8> },
    /// Faces in the image.
    Detect {
        image: Vec<u8>,
        detector: String,
        score_threshold: Option<f32>,
    },
    /// Embeddings of already aligned crops (image files at the model's input size).
    EmbedCrops { crops: Vec<Vec<u8>>, model: String },
    /// Faces in the image, each aligned, embedded and (if asked) returned as a JPEG crop; with
    /// `preview_side`, also the photo as a JPEG whose long side is at most that many pixels.
    DetectAndEmbed {
        image: Vec<u8>,
        detector: String,
        model: String,
        return_crops: bool,
        preview_side: Option<u32>,
    },
}

impl Job {
    /// Short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Job::Ping => "ping",
            Job::Validate { .. } => "validate",
            Job::Detect { .. } => "detect",
            Job::EmbedCrops { .. } => "embed_crops",
            Job::DetectAndEmbed { .. } => "detect_and_embed",
        }
    }
}

/// A worker's answer to one [`Request`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Response {
    pub id: u64,
    pub result: Result<Output, JobError>,
    pub timings: Timings,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Output {
    Pong,
    ImageInfo {
        width: u32,
        height: u32,
    },
    Faces {
        width: u32,
        height: u32,
        faces: Vec<DetectedFace>,
        /// The preview `DetectAndEmbed` was asked for (a JPEG), if it could be made.
        preview: Option<Vec<u8>>,
    },
    Embeddings {
        embeddings: Vec<Vec<f32>>,
    },
}

/// A face; `embedding` and `crop_jpeg` are filled by `DetectAndEmbed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectedFace {
    /// x, y, width, height in image pixels.
    pub bbox: [f32; 4],
    pub score: f32,
    pub landmarks: [[f32; 2]; 5],
    pub embedding: Option<Vec<f32>>,
    pub crop_jpeg: Option<Vec<u8>>,
    /// Sharpness of the aligned crop (variance of its Laplacian; low = blurred).
    pub blur: Option<f32>,
}

/// A job that failed inside a healthy worker (a bad image, no face, a missing model…).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobError {
    /// E.g. `UnsupportedImage`, `NoFaceDetected`.
    #[serde(with = "by_name")]
    pub kind: ErrorKind,
    pub message: String,
}

/// An [`ErrorKind`] crosses the pipe as its name. Postcard would otherwise send the variant's
/// index, whose meaning shifts with any variant added to the shared vocabulary — a change made
/// in another crate, which would not think of bumping [`PROTOCOL_VERSION`].
mod by_name {
    use attendansee_vocabulary::ErrorKind;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(kind: &ErrorKind, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(kind.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ErrorKind, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(D::Error::custom)
    }
}

/// Milliseconds spent per stage inside the worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Timings {
    pub decode_ms: f32,
    pub detect_ms: f32,
    pub align_ms: f32,
    pub embed_ms: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("end of stream")]
    Closed,
    #[error("frame of {0} bytes exceeds the limit")]
    TooLarge(usize),
    #[error("malformed frame: {0}")]
    Malformed(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, FrameError> {
    let malformed = |e: postcard::Error| FrameError::Malformed(e.to_string());
    // Measured first, so that the frame is allocated once at its size and written in place: a
    // job carries a whole photo, and growing a copy of it doubled the memory it took.
    let len = postcard::serialize_with_flavor::<T, postcard::ser_flavors::Size, usize>(
        message,
        postcard::ser_flavors::Size::default(),
    )
    .map_err(malformed)?;
    if len > MAX_FRAME_BYTES {
        return Err(FrameError::TooLarge(len));
    }
    let mut frame = Vec::with_capacity(len + 4);
    frame.extend_from_slice(&(len as u32).to_be_bytes());
    postcard::to_extend(message, frame).map_err(malformed)
}

pub fn decode<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, FrameError> {
    postcard::from_bytes(body).map_err(|e| FrameError::Malformed(e.to_string()))
}

/// The body length a frame header announces, refused above [`MAX_FRAME_BYTES`] before anything
/// is allocated.
fn body_len(header: [u8; 4]) -> Result<usize, FrameError> {
    let len = u32::from_be_bytes(header) as usize;
    if len > MAX_FRAME_BYTES {
        Err(FrameError::TooLarge(len))
    } else {
        Ok(len)
    }
}

/// Blocking write of one frame (the worker side).
pub fn write_frame<T: Serialize>(out: &mut impl Write, message: &T) -> Result<(), FrameError> {
    out.write_all(&encode(message)?)?;
    out.flush()?;
    Ok(())
}

/// Blocking read of one frame (the worker side); `Closed` at a clean end of stream.
pub fn read_frame<T: for<'de> Deserialize<'de>>(input: &mut impl Read) -> Result<T, FrameError> {
    let mut len = [0u8; 4];
    match input.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let mut body = vec![0u8; body_len(len)?];
    input.read_exact(&mut body)?;
    decode(&body)
}

/// Async read of one frame (the supervisor side).
pub async fn read_frame_async<T: for<'de> Deserialize<'de>>(
    input: &mut (impl tokio::io::AsyncRead + Unpin),
) -> Result<T, FrameError> {
    use tokio::io::AsyncReadExt;
    let mut len = [0u8; 4];
    match input.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let mut body = vec![0u8; body_len(len)?];
    input.read_exact(&mut body).await?;
    decode(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_garbage_is_an_error_not_a_panic() {
        let request = Request {
            id: 7,
            job: Job::DetectAndEmbed {
                image: vec![1, 2, 3],
                detector: "yunet".into(),
                model: "m".into(),
                return_crops: true,
                preview_side: Some(1600),
            },
        };
        let frame = encode(&request).unwrap();
        assert_eq!(
            read_frame::<Request>(&mut frame.as_slice()).unwrap(),
            request
        );
        assert!(matches!(
            read_frame::<Request>(&mut [].as_slice()),
            Err(FrameError::Closed)
        ));
        let garbage = [0u8, 0, 0, 3, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame::<Request>(&mut garbage.as_slice()),
            Err(FrameError::Malformed(_))
        ));
        let huge = [0xffu8, 0xff, 0xff, 0xff];
        assert!(matches!(
            read_frame::<Request>(&mut huge.as_slice()),
            Err(FrameError::TooLarge(_))
        ));
        let truncated = &frame[..frame.len() - 1];
        assert!(read_frame::<Request>(&mut &truncated[..]).is_err());
    }

    #[tokio::test]
    async fn async_reader_reads_what_the_blocking_writer_wrote() {
        let response = Response {
            id: 1,
            result: Err(JobError {
                kind: ErrorKind::NoFaceDetected,
                message: "no face".into(),
            }),
            timings: Timings {
                decode_ms: 1.5,
                ..Default::default()
            },
        };
        let mut buffer = Vec::new();
        write_frame(&mut buffer, &response).unwrap();
        let back: Response = read_frame_async(&mut buffer.as_slice()).await.unwrap();
        assert_eq!(back, response);
    }

    #[test]
    fn every_error_kind_survives_a_job_error_frame_and_a_hello() {
        for &kind in ErrorKind::ALL {
            let response = Response {
                id: 3,
                result: Err(JobError {
                    kind,
                    message: kind.to_string(),
                }),
                timings: Timings::default(),
            };
            let frame = encode(&response).unwrap();
            let back = read_frame::<Response>(&mut frame.as_slice()).unwrap();
            assert_eq!(back.result.map_err(|e| e.kind), Err(kind));

            let hello = Hello {
                protocol_version: PROTOCOL_VERSION,
                pid: 1,
                models: Vec::new(),
                unavailable: vec![UnavailableModel {
                    name: "m".into(),
                    kind,
                    message: String::new(),
                }],
            };
            let frame = encode(&hello).unwrap();
            assert_eq!(read_frame::<Hello>(&mut frame.as_slice()).unwrap(), hello);
        }
    }

    #[test]
    fn an_error_kind_crosses_the_pipe_as_its_name_and_an_unknown_name_is_refused() {
        let error = JobError {
            kind: ErrorKind::PayloadTooLarge,
            message: String::new(),
        };
        let frame = encode(&error).unwrap();
        assert!(
            frame.windows(15).any(|w| w == b"PayloadTooLarge"),
            "{frame:?}"
        );

        // The same layout as JobError, as a worker speaking another vocabulary would send it.
        #[derive(Serialize)]
        struct Foreign<'a> {
            kind: &'a str,
            message: &'a str,
        }
        let foreign = |kind| encode(&Foreign { kind, message: "m" }).unwrap();
        assert_eq!(
            read_frame::<JobError>(&mut foreign("WorkerTimeout").as_slice()).unwrap(),
            JobError {
                kind: ErrorKind::WorkerTimeout,
                message: "m".into()
            }
        );
        assert!(matches!(
            read_frame::<JobError>(&mut foreign("Nonsense").as_slice()),
            Err(FrameError::Malformed(_))
        ));
    }
}

//! HEIC samples for tests, made at run time with Debian's `heif-enc` (libheif-examples): the
//! encoder, the EXIF orientation and HEIF `irot` rewrites, shared by the face engine's HEIC tests
//! and the binary's (which include this file by path).

#![allow(dead_code)]

use std::io::{Cursor, Write};
use std::path::Path;
use std::process::Command;

use image::{DynamicImage, ImageFormat, RgbImage};

/// Whether `heif-enc` runs here; otherwise the test is skipped, saying so — or fails under
/// `ATTENDANSEE_REQUIRE_HEIF=1` (CI, where `.ci/run` installs it).
pub fn heif_enc_available(test: &str) -> bool {
    if Command::new("heif-enc").arg("--help").output().is_ok() {
        return true;
    }
    assert!(
        std::env::var_os("ATTENDANSEE_REQUIRE_HEIF").is_none(),
        "{test}: heif-enc (Debian's libheif-examples) is missing but ATTENDANSEE_REQUIRE_HEIF is set"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: heif-enc is not installed (apt-get install libheif-examples)"
    );
    false
}

/// `jpeg` encoded as HEIC by heif-enc (which copies the JPEG's EXIF block as it is).
pub fn heif_enc(jpeg: &[u8], dir: &Path, name: &str) -> Vec<u8> {
    let input = dir.join(format!("{name}.jpg"));
    let output = dir.join(format!("{name}.heic"));
    std::fs::write(&input, jpeg).unwrap();
    let run = Command::new("heif-enc")
        .args(["-q", "60", "-o"])
        .arg(&output)
        .arg(&input)
        .output()
        .unwrap();
    assert!(run.status.success(), "heif-enc: {run:?}");
    std::fs::read(output).unwrap()
}

pub fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image.clone())
        .write_to(&mut out, ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

/// Inserts an APP1 EXIF segment with one Orientation tag right after the JPEG SOI marker.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = b"MM\0\x2a\0\0\0\x08".to_vec();
    tiff.extend_from_slice(&1u16.to_be_bytes());
    tiff.extend_from_slice(&0x0112u16.to_be_bytes());
    tiff.extend_from_slice(&3u16.to_be_bytes());
    tiff.extend_from_slice(&1u32.to_be_bytes());
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// Gives the file an `irot` property (counter-clockwise quarter turns) by rewriting the 16-byte
/// `pixi` property heif-enc writes for the primary image in place: same size, same index, so no
/// other box moves. libheif reads the angle from the first byte and skips the rest.
pub fn with_irot(heic: &[u8], quarter_turns_ccw: u8) -> Vec<u8> {
    let mut out = heic.to_vec();
    let at = out
        .windows(4)
        .position(|w| w == b"pixi")
        .expect("heif-enc wrote no pixi property to rewrite");
    assert_eq!(&out[at - 4..at], &16u32.to_be_bytes(), "pixi box size");
    out[at..at + 4].copy_from_slice(b"irot");
    out[at + 4] = quarter_turns_ccw;
    out
}

//! HEIC photos through libheif: made at run time with Debian's `heif-enc` (libheif-examples) from
//! a classroom photo of ../shared, decoded upright whether their rotation is an EXIF tag, a HEIF
//! `irot` property, or both (as iPhones write them), and refused cleanly when cut short.

mod common;

use std::io::{Cursor, Write};
use std::path::Path;
use std::process::Command;

use attendansee_faces::heif::is_heif;
use attendansee_faces::image_io::{DEFAULT_MAX_PIXELS, ImageError, decode_rgb};
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
fn heif_enc(jpeg: &[u8], dir: &Path, name: &str) -> Vec<u8> {
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

fn jpeg(image: &RgbImage) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    DynamicImage::ImageRgb8(image.clone())
        .write_to(&mut out, ImageFormat::Jpeg)
        .unwrap();
    out.into_inner()
}

/// Inserts an APP1 EXIF segment with one Orientation tag right after the JPEG SOI marker.
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
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
fn with_irot(heic: &[u8], quarter_turns_ccw: u8) -> Vec<u8> {
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

/// Mean absolute difference per channel of two images of the same size.
fn mean_difference(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.as_raw().len() as f64
}

#[test]
fn heic_photos_decode_upright_whatever_carries_their_rotation() {
    let test = "heic_photos_decode_upright_whatever_carries_their_rotation";
    let Some(shared) = common::shared(test) else {
        return;
    };
    if !heif_enc_available(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let photo = std::fs::read(shared.join("faces/classroom_photos/photo1.jpeg")).unwrap();
    let full = decode_rgb(&photo, DEFAULT_MAX_PIXELS).unwrap();
    // A quarter of the size keeps x265 quick; the orientation logic does not depend on it.
    let upright =
        attendansee_faces::imageops::resize_bilinear(&full, full.width() / 4, full.height() / 4);
    assert!(upright.width() > upright.height(), "a landscape photo");
    let stored_ccw = image::imageops::rotate270(&upright);
    let stored_cw = image::imageops::rotate90(&upright);

    let plain = heif_enc(&jpeg(&upright), dir.path(), "plain");
    let exif = heif_enc(
        &with_exif_orientation(&jpeg(&stored_ccw), 6),
        dir.path(),
        "exif",
    );
    assert!(
        exif.windows(4).any(|w| w == b"Exif") && !exif.windows(4).any(|w| w == b"irot"),
        "heif-enc copies the EXIF tag and adds no irot"
    );
    let irot = with_irot(&heif_enc(&jpeg(&stored_cw), dir.path(), "cw"), 1);
    // An iPhone's: stored sideways, with irot and the same turn as EXIF orientation 6.
    let both = with_irot(&exif, 3);

    for (name, heic) in [
        ("plain", &plain),
        ("exif", &exif),
        ("irot", &irot),
        ("both", &both),
    ] {
        assert!(is_heif(heic), "{name}");
        let decoded =
            decode_rgb(heic, DEFAULT_MAX_PIXELS).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(decoded.dimensions(), upright.dimensions(), "{name}");
        let difference = mean_difference(&decoded, &upright);
        assert!(
            difference < 8.0,
            "{name}: mean difference {difference:.1} from the upright photo"
        );
    }
    // The test can tell: the same pixels turned upside down are far from upright.
    let flipped = image::imageops::rotate180(&upright);
    assert!(mean_difference(&flipped, &upright) > 20.0);
}

#[test]
fn a_cut_or_oversized_heic_is_refused_not_decoded() {
    let test = "a_cut_or_oversized_heic_is_refused_not_decoded";
    if !heif_enc_available(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let image = RgbImage::from_fn(320, 240, |x, y| image::Rgb([x as u8, y as u8, 90]));
    let heic = heif_enc(&jpeg(&image), dir.path(), "small");
    assert_eq!(
        decode_rgb(&heic, DEFAULT_MAX_PIXELS).unwrap().dimensions(),
        (320, 240)
    );
    for cut in [heic.len() / 2, heic.len() - 100, 400, 40] {
        match decode_rgb(&heic[..cut], DEFAULT_MAX_PIXELS) {
            Err(ImageError::Corrupt(message)) => assert!(message.contains("HEIF"), "{message}"),
            other => panic!("cut at {cut}: expected a refusal, got {other:?}"),
        }
    }
    assert_eq!(
        decode_rgb(&heic, 10_000),
        Err(ImageError::TooManyPixels {
            width: 320,
            height: 240,
            limit: 10_000
        })
    );
}

//! HEIC photos through libheif: made at run time with Debian's `heif-enc` (libheif-examples) from
//! a classroom photo of ../shared, decoded upright whether their rotation is an EXIF tag, a HEIF
//! `irot` property, or both (as iPhones write them), and refused cleanly when cut short.

mod common;
#[path = "common/heif_samples.rs"]
mod heif_samples;

use attendansee_faces::heif::is_heif;
use attendansee_faces::image_io::{DEFAULT_MAX_PIXELS, ImageError, decode_rgb};
use heif_samples::{heif_enc, heif_enc_available, jpeg, with_exif_orientation, with_irot};
use image::RgbImage;

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

//! Decoding a large JPEG at a reduced DCT scale (1/2, 1/4 or 1/8): the inverse DCT then yields
//! the smaller image directly, skipping most of the work and memory of the full-size pixels. The
//! entropy decoding still reads every coefficient, so the saving is the IDCT, the colour
//! conversion and the buffers (24 MP at 1/4: about 50 ms instead of 85, 4.6 MB instead of 73).
//!
//! PNG and WebP have no such scaling (their pixels come out of a filter or a predictor, not a
//! transform): they, and JPEGs that need their full resolution, go through
//! [`image_io::decode_rgb`](crate::image_io::decode_rgb) unchanged. The hostile-image checks of
//! `image_io` (truncation, pixel limit, aspect ratio, missing data) are made here too, before any
//! pixel is allocated, with the same errors.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageFormat, RgbImage};

use crate::image_io::{
    ImageError, MIN_JPEG_PIXELS_PER_BYTE, check_size, decode_rgb, jpeg_is_complete,
};

/// The reductions a JPEG decoder can make in its IDCT, coarsest first.
pub const DIVISORS: [u32; 4] = [8, 4, 2, 1];

/// A decoded photo, possibly at a reduced scale.
#[derive(Clone, Debug)]
pub struct Decoded {
    pub image: RgbImage,
    /// The upright size of the photo at full scale (what faces' coordinates refer to).
    pub full_width: u32,
    pub full_height: u32,
    /// 1 (full scale), 2, 4 or 8.
    pub divisor: u32,
}

impl Decoded {
    /// Pixels of `image` per pixel of the full-scale photo.
    pub fn scale(&self) -> f32 {
        self.image.width() as f32 / self.full_width.max(1) as f32
    }

    /// A full-scale decode.
    pub fn full(image: RgbImage) -> Self {
        Self {
            full_width: image.width(),
            full_height: image.height(),
            divisor: 1,
            image,
        }
    }
}

/// The largest divisor that still leaves the longer side at least `min_long_side` pixels (1 when
/// even that is too few).
pub fn divisor_for(long_side: u32, min_long_side: u32) -> u32 {
    DIVISORS
        .into_iter()
        .find(|d| long_side.div_ceil(*d) >= min_long_side)
        .unwrap_or(1)
}

/// The size of a JPEG's frame, without decoding it; `None` for anything else (or a JPEG whose
/// header cannot be read: [`decode_reduced`] then reports why).
pub fn jpeg_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if image::guess_format(bytes).ok()? != ImageFormat::Jpeg {
        return None;
    }
    let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    Some((u32::from(info.width), u32::from(info.height)))
}

/// Decodes `bytes` with its longer side reduced by the largest DCT scale that keeps at least
/// `min_long_side` pixels, upright as the camera meant it. Only JPEGs are reduced; everything else
/// (and a JPEG in a pixel format the scaling decoder does not produce as RGB) is decoded at full
/// scale by `decode_rgb`.
pub fn decode_reduced(
    bytes: &[u8],
    max_pixels: u64,
    min_long_side: u32,
) -> Result<Decoded, ImageError> {
    let Some((width, height)) = jpeg_size(bytes) else {
        return decode_rgb(bytes, max_pixels).map(Decoded::full);
    };
    let divisor = divisor_for(width.max(height), min_long_side);
    if divisor == 1 {
        return decode_rgb(bytes, max_pixels).map(Decoded::full);
    }
    check_jpeg(bytes, width, height, max_pixels)?;
    // The scaling decoder is a second JPEG implementation behind untrusted input: whatever it
    // does with a hostile file must end as an error, never as a dead worker.
    let decoded = std::panic::catch_unwind(|| {
        let mut decoder = jpeg_decoder::Decoder::new(Cursor::new(bytes));
        decoder.scale(
            clamp_u16(width.div_ceil(divisor)),
            clamp_u16(height.div_ceil(divisor)),
        )?;
        let pixels = decoder.decode()?;
        let info = decoder.info();
        let orientation = decoder
            .exif_data()
            .and_then(Orientation::from_exif_chunk)
            .unwrap_or(Orientation::NoTransforms);
        Ok::<_, jpeg_decoder::Error>((pixels, info, orientation))
    })
    .map_err(|_| ImageError::Corrupt("the JPEG decoder failed on this file".into()))?;
    let (pixels, info, orientation) = decoded.map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let Some(info) = info else {
        return Err(ImageError::Corrupt("the JPEG has no frame".into()));
    };
    let (w, h) = (u32::from(info.width), u32::from(info.height));
    let rgb = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => RgbImage::from_raw(w, h, pixels),
        jpeg_decoder::PixelFormat::L8 => {
            RgbImage::from_raw(w, h, pixels.iter().flat_map(|&v| [v, v, v]).collect())
        }
        // CMYK and 16-bit JPEGs are rare in photos: the general decoder handles them.
        _ => None,
    };
    let Some(rgb) = rgb else {
        return decode_rgb(bytes, max_pixels).map(Decoded::full);
    };
    let mut image = DynamicImage::ImageRgb8(rgb);
    image.apply_orientation(orientation);
    // Told by the orientation, not guessed from the sizes: a photo whose reduced size rounds to
    // a square would otherwise keep unswapped full-scale dimensions.
    let quarter_turn = matches!(
        orientation,
        Orientation::Rotate90
            | Orientation::Rotate270
            | Orientation::Rotate90FlipH
            | Orientation::Rotate270FlipH
    );
    let (full_width, full_height) = if quarter_turn {
        (height, width)
    } else {
        (width, height)
    };
    Ok(Decoded {
        image: image.into_rgb8(),
        full_width,
        full_height,
        divisor,
    })
}

fn clamp_u16(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

/// `decode_rgb`'s checks of a JPEG's declared size against its bytes, in the same order and with
/// the same errors, made before any pixel exists.
fn check_jpeg(bytes: &[u8], width: u32, height: u32, max_pixels: u64) -> Result<(), ImageError> {
    if !jpeg_is_complete(bytes) {
        return Err(ImageError::Corrupt(
            "truncated JPEG: the data ends before the end-of-image marker".into(),
        ));
    }
    check_size(width, height, max_pixels)?;
    let pixels = u64::from(width) * u64::from(height);
    if (bytes.len() as u64) < pixels / MIN_JPEG_PIXELS_PER_BYTE {
        return Err(ImageError::Corrupt(format!(
            "the JPEG declares {width}×{height} pixels but holds only {} bytes: its data is missing",
            bytes.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image_io::DEFAULT_MAX_PIXELS;
    use crate::image_io::tests::insert_exif_orientation;

    fn jpeg_of(image: &RgbImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    /// A smooth 400×240 picture: left half red, right half blue, a vertical gradient in green.
    fn picture() -> RgbImage {
        RgbImage::from_fn(400, 240, |x, y| {
            let g = (y * 255 / 239) as u8;
            if x < 200 {
                image::Rgb([230, g, 20])
            } else {
                image::Rgb([20, g, 230])
            }
        })
    }

    #[test]
    fn divisors_keep_at_least_the_wanted_long_side() {
        assert_eq!(divisor_for(5712, 1280), 4); // 1428
        assert_eq!(divisor_for(5712, 640), 8); // 714
        assert_eq!(divisor_for(4032, 1280), 2); // 2016: 1/4 would be 1008
        assert_eq!(divisor_for(1732, 1280), 1);
        assert_eq!(divisor_for(600, 640), 1);
        assert_eq!(divisor_for(5712, 0), 8);
    }

    #[test]
    fn a_reduced_jpeg_matches_the_full_one_shrunk() {
        let jpeg = jpeg_of(&picture());
        let full = decode_rgb(&jpeg, DEFAULT_MAX_PIXELS).unwrap();
        for (min_side, divisor) in [(100, 4), (200, 2), (50, 8)] {
            let reduced = decode_reduced(&jpeg, DEFAULT_MAX_PIXELS, min_side).unwrap();
            assert_eq!(reduced.divisor, divisor);
            assert_eq!((reduced.full_width, reduced.full_height), (400, 240));
            assert_eq!(
                reduced.image.dimensions(),
                (400 / divisor, 240 / divisor),
                "1/{divisor}"
            );
            assert!((reduced.scale() - 1.0 / divisor as f32).abs() < 1e-6);
            // Each reduced pixel is about the mean of its block in the full image.
            let d = divisor;
            for (x, y) in [(10 / d * d, 8 / d * d), (300 / d * d, 200 / d * d)] {
                let p = reduced.image.get_pixel(x / d, y / d).0;
                let q = full.get_pixel(x + d / 2, y + d / 2).0;
                for c in 0..3 {
                    assert!(
                        p[c].abs_diff(q[c]) < 24,
                        "1/{d} at ({x},{y}): {p:?} vs {q:?}"
                    );
                }
            }
        }
        // Enough pixels already: the full decoder's result, unchanged.
        let same = decode_reduced(&jpeg, DEFAULT_MAX_PIXELS, 400).unwrap();
        assert_eq!((same.divisor, same.image), (1, full));
    }

    #[test]
    fn png_is_decoded_at_full_scale() {
        let mut png = Cursor::new(Vec::new());
        picture().write_to(&mut png, ImageFormat::Png).unwrap();
        let decoded = decode_reduced(png.get_ref(), DEFAULT_MAX_PIXELS, 10).unwrap();
        assert_eq!((decoded.divisor, decoded.image), (1, picture()));
    }

    #[test]
    fn exif_orientation_is_applied_at_reduced_scale() {
        // Red on the left; orientation 6 (rotate 90° clockwise) puts red on top.
        let jpeg = jpeg_of(&picture());
        let rotated = insert_exif_orientation(&jpeg, 6);
        let decoded = decode_reduced(&rotated, DEFAULT_MAX_PIXELS, 100).unwrap();
        assert_eq!(decoded.divisor, 4);
        assert_eq!((decoded.full_width, decoded.full_height), (240, 400));
        assert_eq!(decoded.image.dimensions(), (60, 100));
        assert!(decoded.image.get_pixel(30, 10).0[0] > 180, "top is red");
        assert!(decoded.image.get_pixel(30, 90).0[2] > 180, "bottom is blue");
        let full = decode_rgb(&rotated, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(full.dimensions(), (240, 400));
    }

    #[test]
    fn hostile_jpegs_get_the_same_errors_as_from_the_full_decoder() {
        let jpeg = jpeg_of(&picture());
        let mut huge = jpeg.clone();
        let sof = huge.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        huge[sof + 5..sof + 7].copy_from_slice(&8000u16.to_be_bytes());
        huge[sof + 7..sof + 9].copy_from_slice(&8000u16.to_be_bytes());
        let mut strip = jpeg.clone();
        strip[sof + 5..sof + 7].copy_from_slice(&10u16.to_be_bytes());
        strip[sof + 7..sof + 9].copy_from_slice(&4000u16.to_be_bytes());
        let cases: [(&[u8], u64); 5] = [
            (&jpeg[..jpeg.len() / 2], DEFAULT_MAX_PIXELS),
            (&jpeg[..jpeg.len() - 10], DEFAULT_MAX_PIXELS),
            (&huge, DEFAULT_MAX_PIXELS),
            (&strip, DEFAULT_MAX_PIXELS),
            (&jpeg, 1000),
        ];
        for (bytes, limit) in cases {
            let expected = decode_rgb(bytes, limit).unwrap_err();
            let actual = decode_reduced(bytes, limit, 10).unwrap_err();
            assert_eq!(actual, expected);
        }
        assert_eq!(
            decode_reduced(&[], DEFAULT_MAX_PIXELS, 10).unwrap_err(),
            ImageError::Empty
        );
        // Garbage after a JPEG signature is an error, never a panic.
        let mut garbage = jpeg[..200].to_vec();
        garbage.extend(std::iter::repeat_n(0x5Au8, 4000));
        garbage.extend_from_slice(&[0xFF, 0xD9]);
        assert!(decode_reduced(&garbage, DEFAULT_MAX_PIXELS, 10).is_err());
    }
}

//! Decoding untrusted image bytes: JPEG, PNG (8/16-bit, grey, alpha), WebP and HEIC/HEIF (through
//! libheif, in [`crate::heif`]) to 8-bit RGB, with EXIF orientation applied and a pixel-count limit checked before any pixel is allocated.
//! Every failure is an [`ImageError`]; nothing here panics on bad input.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

/// 64 megapixels: any real class photo fits; a decompression bomb does not.
pub const DEFAULT_MAX_PIXELS: u64 = 64_000_000;

/// The longer side may be at most this many times the shorter: a phone's panorama is about 8:1;
/// a 64000000 × 1 strip is no photo, and every per-photo buffer sized from its long side is huge.
pub const MAX_ASPECT_RATIO: u32 = 20;

/// A JPEG needs at least a few bits per 8 × 8 block even when it shows one flat colour: fewer
/// bytes than one per this many declared pixels means its data is missing (a 2 KB file that
/// declares 8000 × 8000 would otherwise decode into 192 MB of grey).
pub(crate) const MIN_JPEG_PIXELS_PER_BYTE: u64 = 1024;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ImageError {
    #[error("the file is empty")]
    Empty,
    #[error("not a supported image format (JPEG, PNG, WebP or HEIC)")]
    UnknownFormat,
    #[error("{format} images are not supported (JPEG, PNG, WebP or HEIC only)")]
    UnsupportedFormat { format: String },
    #[error(
        "HEIC/HEIF photos cannot be decoded on this machine ({0}); install libheif \
         (Debian: apt-get install libheif1, and from Debian 13 / Ubuntu 24.04 on also \
         libheif-plugin-libde265) or send a JPEG"
    )]
    NoHeifDecoder(String),
    #[error("image of {width}×{height} pixels exceeds the limit of {limit} pixels")]
    TooManyPixels { width: u32, height: u32, limit: u64 },
    #[error("image has no pixels ({width}×{height})")]
    ZeroSize { width: u32, height: u32 },
    #[error(
        "image of {width}×{height} pixels is too long and thin (more than {MAX_ASPECT_RATIO}:1); \
         crop it to the part with the faces"
    )]
    AbsurdAspectRatio { width: u32, height: u32 },
    #[error("cannot decode the image: {0}")]
    Corrupt(String),
}

/// Decodes `bytes` into an RGB image, upright as the camera meant it.
pub fn decode_rgb(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    if crate::heif::is_heif(bytes) {
        return crate::heif::decode_rgb(bytes, max_pixels);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let format = reader.format();
    match format {
        Some(ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP) => {}
        Some(other) => {
            return Err(ImageError::UnsupportedFormat {
                format: format!("{other:?}"),
            });
        }
        None => return Err(ImageError::UnknownFormat),
    }
    // The JPEG decoder fills a cut-off scan with grey instead of failing: check the end is there.
    if reader.format() == Some(ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(ImageError::Corrupt(
            "truncated JPEG: the data ends before the end-of-image marker".into(),
        ));
    }
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, max_pixels)?;
    let pixels = u64::from(width) * u64::from(height);
    if format == Some(ImageFormat::Jpeg) && (bytes.len() as u64) < pixels / MIN_JPEG_PIXELS_PER_BYTE
    {
        return Err(ImageError::Corrupt(format!(
            "the JPEG declares {width}×{height} pixels but holds only {} bytes: its data is missing",
            bytes.len()
        )));
    }
    // A broken EXIF block is not worth refusing a photo for: it is then taken as upright.
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image =
        DynamicImage::from_decoder(decoder).map_err(|e| ImageError::Corrupt(e.to_string()))?;
    image.apply_orientation(orientation);
    Ok(into_rgb8(image))
}

/// The checks every decoder makes on the declared size before allocating pixels: not empty,
/// within `max_pixels`, not absurdly long and thin.
pub(crate) fn check_size(width: u32, height: u32, max_pixels: u64) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSize { width, height });
    }
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(ImageError::TooManyPixels {
            width,
            height,
            limit: max_pixels,
        });
    }
    if width.max(height) / width.min(height) > MAX_ASPECT_RATIO {
        return Err(ImageError::AbsurdAspectRatio { width, height });
    }
    Ok(())
}

/// `image.into_rgb8()`, with the common 8-bit layouts expanded byte by byte: the generic
/// conversion took 41 ms for a 6.5-megapixel greyscale photo, longer than decoding it.
fn into_rgb8(image: DynamicImage) -> RgbImage {
    let (width, height) = (image.width(), image.height());
    let expand = |channels: usize, raw: &[u8]| -> Option<RgbImage> {
        let mut rgb = vec![0u8; raw.len() / channels * 3];
        for (to, from) in rgb.chunks_exact_mut(3).zip(raw.chunks_exact(channels)) {
            match channels {
                1 | 2 => to.fill(from[0]),
                _ => to.copy_from_slice(&from[..3]),
            }
        }
        RgbImage::from_raw(width, height, rgb)
    };
    let fast = match &image {
        DynamicImage::ImageRgb8(_) => None,
        DynamicImage::ImageLuma8(i) => expand(1, i.as_raw()),
        DynamicImage::ImageLumaA8(i) => expand(2, i.as_raw()),
        DynamicImage::ImageRgba8(i) => expand(4, i.as_raw()),
        _ => None,
    };
    fast.unwrap_or_else(|| image.into_rgb8())
}

/// Whether a JPEG has an end-of-image marker after its first scan. Segments before the scan are
/// skipped by their lengths, so the end marker of an embedded EXIF thumbnail does not count.
pub(crate) fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let mut i = 2; // after SOI
    while i + 4 <= bytes.len() {
        if bytes[i] != 0xFF {
            return false;
        }
        match bytes[i + 1] {
            0xFF => i += 1, // fill byte
            0xDA => return bytes[i..].windows(2).any(|w| w == [0xFF, 0xD9]),
            0x01 | 0xD0..=0xD7 => i += 2,
            _ => i += 2 + usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]])),
        }
    }
    false
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, LumaA, Rgba};

    fn encode(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    fn gradient() -> RgbImage {
        RgbImage::from_fn(40, 30, |x, y| {
            image::Rgb([(x * 6) as u8, (y * 8) as u8, 128])
        })
    }

    #[test]
    fn png_variants_decode_to_rgb8() {
        let grey = DynamicImage::ImageLuma8(ImageBuffer::from_pixel(4, 3, Luma([200u8])));
        let grey_alpha =
            DynamicImage::ImageLumaA8(ImageBuffer::from_pixel(4, 3, LumaA([10u8, 100])));
        let rgba16 = DynamicImage::ImageRgba16(ImageBuffer::from_pixel(
            4,
            3,
            Rgba([65535u16, 0, 32896, 65535]),
        ));
        for image in [grey, grey_alpha, rgba16] {
            let rgb = decode_rgb(&encode(image, ImageFormat::Png), DEFAULT_MAX_PIXELS).unwrap();
            assert_eq!(rgb.dimensions(), (4, 3));
        }
        let rgb = decode_rgb(
            &encode(
                DynamicImage::ImageRgba16(ImageBuffer::from_pixel(
                    1,
                    1,
                    Rgba([65535u16, 0, 32896, 65535]),
                )),
                ImageFormat::Png,
            ),
            10,
        )
        .unwrap();
        assert_eq!(rgb.get_pixel(0, 0).0, [255, 0, 128]);
    }

    #[test]
    fn jpeg_and_webp_decode() {
        for format in [ImageFormat::Jpeg, ImageFormat::WebP] {
            let rgb = decode_rgb(
                &encode(DynamicImage::ImageRgb8(gradient()), format),
                DEFAULT_MAX_PIXELS,
            )
            .unwrap();
            assert_eq!(rgb.dimensions(), (40, 30), "{format:?}");
        }
    }

    #[test]
    fn the_fast_8_bit_conversions_agree_with_the_generic_one() {
        let rgba = image::RgbaImage::from_fn(7, 5, |x, y| {
            image::Rgba([
                (x * 30) as u8,
                (y * 40) as u8,
                (x * y) as u8,
                (x + y * 7) as u8,
            ])
        });
        for image in [
            DynamicImage::ImageRgba8(rgba.clone()),
            DynamicImage::ImageRgba8(rgba.clone()).into_luma8().into(),
            DynamicImage::ImageRgba8(rgba.clone())
                .into_luma_alpha8()
                .into(),
            DynamicImage::ImageRgba8(rgba).into_rgb8().into(),
        ] {
            assert_eq!(into_rgb8(image.clone()), image.into_rgb8());
        }
    }

    #[test]
    fn bad_input_classes_are_typed_errors() {
        let png = encode(DynamicImage::ImageRgb8(gradient()), ImageFormat::Png);
        let jpeg = encode(DynamicImage::ImageRgb8(gradient()), ImageFormat::Jpeg);
        assert_eq!(decode_rgb(&[], DEFAULT_MAX_PIXELS), Err(ImageError::Empty));
        assert_eq!(
            decode_rgb(b"hello, I am a text file", DEFAULT_MAX_PIXELS),
            Err(ImageError::UnknownFormat)
        );
        let gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec();
        assert!(matches!(
            decode_rgb(&gif, DEFAULT_MAX_PIXELS),
            Err(ImageError::UnsupportedFormat { .. })
        ));
        let near_end = jpeg.len() - 10;
        let cuts = [
            &png[..png.len() / 2],
            &jpeg[..jpeg.len() / 3],
            &jpeg[..jpeg.len() / 2],
            &jpeg[..near_end],
            &png[..20],
        ];
        for truncated in cuts {
            assert!(
                matches!(
                    decode_rgb(truncated, DEFAULT_MAX_PIXELS),
                    Err(ImageError::Corrupt(_))
                ),
                "{}",
                truncated.len()
            );
        }
        assert_eq!(
            decode_rgb(&png, 1000),
            Err(ImageError::TooManyPixels {
                width: 40,
                height: 30,
                limit: 1000
            })
        );
    }

    #[test]
    fn a_panorama_strip_inside_the_pixel_limit_is_refused_before_decoding() {
        // A real 64000000×1 PNG (~60 KB), and headers claiming other strips.
        let strip = encode(
            DynamicImage::ImageLuma8(image::GrayImage::new(64_000_000, 1)),
            ImageFormat::Png,
        );
        assert!(
            strip.len() < 1_000_000,
            "a small file: {} bytes",
            strip.len()
        );
        assert_eq!(
            decode_rgb(&strip, DEFAULT_MAX_PIXELS),
            Err(ImageError::AbsurdAspectRatio {
                width: 64_000_000,
                height: 1
            })
        );
        for (width, height) in [(1, 64_000_000), (20_000, 900)] {
            assert_eq!(
                decode_rgb(&png_claiming(width, height), DEFAULT_MAX_PIXELS),
                Err(ImageError::AbsurdAspectRatio { width, height })
            );
        }
        // A phone panorama (8:1) is still a photo.
        let panorama = image::GrayImage::new(4000, 500);
        let png = encode(DynamicImage::ImageLuma8(panorama), ImageFormat::Png);
        assert!(decode_rgb(&png, DEFAULT_MAX_PIXELS).is_ok());
    }

    /// A valid PNG header claiming `width`×`height` pixels, with one pixel of data behind it.
    fn png_claiming(width: u32, height: u32) -> Vec<u8> {
        let mut png = encode(
            DynamicImage::ImageRgb8(RgbImage::new(1, 1)),
            ImageFormat::Png,
        );
        png[16..20].copy_from_slice(&width.to_be_bytes());
        png[20..24].copy_from_slice(&height.to_be_bytes());
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        png
    }

    #[test]
    fn a_jpeg_far_too_short_for_its_declared_size_is_refused() {
        // A real JPEG whose frame header is made to claim 8000×8000: 2 KB of data cannot hold
        // 64 megapixels, and the decoder would fill them with grey.
        let mut jpeg = encode(DynamicImage::ImageRgb8(gradient()), ImageFormat::Jpeg);
        let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
        jpeg[sof + 5..sof + 7].copy_from_slice(&8000u16.to_be_bytes());
        jpeg[sof + 7..sof + 9].copy_from_slice(&8000u16.to_be_bytes());
        assert!(jpeg.len() < 4000);
        match decode_rgb(&jpeg, DEFAULT_MAX_PIXELS) {
            Err(ImageError::Corrupt(message)) => {
                assert!(message.contains("8000×8000"), "{message}")
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_huge_declared_size_is_refused_before_decoding() {
        // A valid PNG header claiming 100000×100000 pixels with no data behind it.
        let png = png_claiming(100_000, 100_000);
        assert!(matches!(
            decode_rgb(&png, DEFAULT_MAX_PIXELS),
            Err(ImageError::TooManyPixels { .. })
        ));
    }

    #[test]
    fn a_jpeg_with_trailing_data_after_its_end_is_still_accepted() {
        let mut jpeg = encode(DynamicImage::ImageRgb8(gradient()), ImageFormat::Jpeg);
        jpeg.extend_from_slice(b"camera maker trailer");
        assert!(decode_rgb(&jpeg, DEFAULT_MAX_PIXELS).is_ok());
        assert!(decode_rgb(&insert_exif_orientation(&jpeg, 1), DEFAULT_MAX_PIXELS).is_ok());
    }

    #[test]
    fn exif_orientation_is_applied() {
        // A 2×1 JPEG (red, blue) with EXIF orientation 6 (rotate 90° clockwise) → 1×2, red on top.
        let image = RgbImage::from_fn(16, 8, |x, _| {
            if x < 8 {
                image::Rgb([255, 0, 0])
            } else {
                image::Rgb([0, 0, 255])
            }
        });
        let jpeg = encode(DynamicImage::ImageRgb8(image), ImageFormat::Jpeg);
        let with_exif = insert_exif_orientation(&jpeg, 6);
        let rgb = decode_rgb(&with_exif, DEFAULT_MAX_PIXELS).unwrap();
        assert_eq!(rgb.dimensions(), (8, 16));
        assert!(
            rgb.get_pixel(4, 2).0[0] > 200,
            "top should be red: {:?}",
            rgb.get_pixel(4, 2)
        );
        assert!(
            rgb.get_pixel(4, 13).0[2] > 200,
            "bottom should be blue: {:?}",
            rgb.get_pixel(4, 13)
        );
    }

    /// Inserts an APP1 EXIF segment with one Orientation tag right after the JPEG SOI marker
    /// (also used by the reduced decoder's tests).
    pub(crate) fn insert_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = Vec::new();
        tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // big-endian TIFF header, IFD at 8
        tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
        tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_be_bytes()); // count
        tiff.extend_from_slice(&orientation.to_be_bytes());
        tiff.extend_from_slice(&[0, 0]);
        tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }
}

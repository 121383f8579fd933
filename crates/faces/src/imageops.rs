//! Pixel operations the models need, written to match OpenCV where parity matters: bilinear
//! resize (as `cv2.resize` with `INTER_LINEAR`), letterboxing, affine warp (as `cv2.warpAffine`,
//! bilinear, constant black border), and packing images into NCHW float tensors.

use image::RgbImage;

use crate::geometry::Affine;

/// Channel order a model expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    Rgb,
    Bgr,
}

/// `(pixel − mean) / std` per channel, in the model's channel order, on 0–255 values; then,
/// with `per_image_standardization`, the whole image (all channels together) is shifted and scaled
/// to mean 0 and standard deviation 1, as DeepFace's `normalization="Facenet"` and FaceNet's
/// `prewhiten` do.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// `(x − m) / max(s, 1/√N)` over the N values of one image (m, s: their mean and population
    /// standard deviation). The floor keeps a constant image finite (DeepFace divides by s alone
    /// and returns NaN there); for any other face crop the floor is far below s and changes nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub per_image_standardization: bool,
}

impl Normalization {
    /// Per-channel `(pixel − mean) / std` only.
    pub const fn channels(mean: [f32; 3], std: [f32; 3]) -> Self {
        Self {
            mean,
            std,
            per_image_standardization: false,
        }
    }
}

/// Standardises one image's values in place (see `Normalization::per_image_standardization`).
/// Sums in f64 so that the result does not depend on the order of 76 800 additions.
fn standardize(values: &mut [f32]) {
    if values.is_empty() {
        return;
    }
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let variance = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let scale = variance.sqrt().max(1.0 / n.sqrt());
    for v in values {
        *v = ((f64::from(*v) - mean) / scale) as f32;
    }
}

/// Bilinear resize with OpenCV's pixel-centre convention (`INTER_LINEAR`, no antialiasing).
pub fn resize_bilinear(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (sw, sh) = src.dimensions();
    if width == 0 || height == 0 || sw == 0 || sh == 0 {
        return RgbImage::new(width, height);
    }
    let axis = |dst: u32, src_len: u32| -> Vec<(u32, u32, f32)> {
        let scale = src_len as f32 / dst as f32;
        (0..dst)
            .map(|d| {
                let s = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
                let i0 = (s.floor() as u32).min(src_len - 1);
                let i1 = (i0 + 1).min(src_len - 1);
                (
                    i0,
                    i1,
                    if i0 == src_len - 1 {
                        0.0
                    } else {
                        s - i0 as f32
                    },
                )
            })
            .collect()
    };
    let xs = axis(width, sw);
    let ys = axis(height, sh);
    // Rows and pixels are read as slices, not through `get_pixel`: this runs on every photo, and
    // the bounds checks and per-pixel closure were most of its cost. The arithmetic is unchanged.
    let row_len = sw as usize * 3;
    let raw = src.as_raw();
    let mut out = RgbImage::new(width, height);
    for (dst_row, &(y0, y1, fy)) in out.chunks_exact_mut(width as usize * 3).zip(&ys) {
        let top_row = &raw[y0 as usize * row_len..][..row_len];
        let bottom_row = &raw[y1 as usize * row_len..][..row_len];
        for (dst, &(x0, x1, fx)) in dst_row.chunks_exact_mut(3).zip(&xs) {
            let (a, b) = (x0 as usize * 3, x1 as usize * 3);
            let (p00, p01) = (&top_row[a..a + 3], &top_row[b..b + 3]);
            let (p10, p11) = (&bottom_row[a..a + 3], &bottom_row[b..b + 3]);
            for c in 0..3 {
                let top = f32::from(p00[c]) * (1.0 - fx) + f32::from(p01[c]) * fx;
                let bottom = f32::from(p10[c]) * (1.0 - fx) + f32::from(p11[c]) * fx;
                dst[c] = to_byte(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    out
}

/// Shrinks `src` to fit inside `width`×`height` keeping its aspect ratio (never enlarging it:
/// detectors miss faces blown up to fill their input), places it top-left on black, and returns
/// the canvas with the scale used (`canvas = original × scale`).
pub fn letterbox(src: &RgbImage, width: u32, height: u32) -> (RgbImage, f32) {
    let (sw, sh) = src.dimensions();
    let scale = (width as f32 / sw.max(1) as f32)
        .min(height as f32 / sh.max(1) as f32)
        .min(1.0);
    let (nw, nh) = (
        ((sw as f32 * scale) as u32).clamp(1, width),
        ((sh as f32 * scale) as u32).clamp(1, height),
    );
    let resized = if (nw, nh) == (sw, sh) {
        src.clone()
    } else {
        resize_bilinear(src, nw, nh)
    };
    let mut canvas = RgbImage::new(width, height);
    paste(&mut canvas, &resized, 0, 0);
    // The exact scale per axis differs by rounding; the vertical one is what InsightFace uses.
    (canvas, nh as f32 / sh.max(1) as f32)
}

/// The nearest byte to a channel value (halves round up), saturating. Not `f32::round`: that is
/// a library call on baseline x86-64, and it was most of the cost of the resize and warp loops.
fn to_byte(v: f32) -> u8 {
    (v.clamp(0.0, 255.0) + 0.5) as u8
}

/// `src` on a black canvas with `border` pixels added on every side.
pub fn pad(src: &RgbImage, border: u32) -> RgbImage {
    let mut canvas = RgbImage::new(src.width() + 2 * border, src.height() + 2 * border);
    paste(&mut canvas, src, border, border);
    canvas
}

/// Copies `src` onto `canvas` with its top-left corner at (`x`, `y`), row by row; the caller
/// makes sure it fits. (`image::imageops::replace` goes pixel by pixel, several milliseconds for
/// a detector input.)
fn paste(canvas: &mut RgbImage, src: &RgbImage, x: u32, y: u32) {
    let (canvas_row, src_row) = (canvas.width() as usize * 3, src.width() as usize * 3);
    let offset = x as usize * 3;
    let rows = canvas
        .chunks_exact_mut(canvas_row)
        .skip(y as usize)
        .zip(src.chunks_exact(src_row));
    for (to, from) in rows {
        to[offset..offset + src_row].copy_from_slice(from);
    }
}

/// `dst(x, y) = src(M⁻¹(x, y))`, bilinear, black outside `src` — `cv2.warpAffine` defaults.
/// A singular `m` gives a black image.
pub fn warp_affine(src: &RgbImage, m: &Affine, width: u32, height: u32) -> RgbImage {
    let Some(inv) = m.inverse() else {
        return RgbImage::new(width, height);
    };
    let (sw, sh) = (src.width() as i64, src.height() as i64);
    let raw = src.as_raw();
    // Index of a source pixel's first channel, or `None` outside the image (black).
    let at = |x: i64, y: i64| -> Option<usize> {
        (x >= 0 && y >= 0 && x < sw && y < sh).then(|| (y * sw + x) as usize * 3)
    };
    let sample = |i: Option<usize>, c: usize| -> f32 { i.map_or(0.0, |i| f32::from(raw[i + c])) };
    let mut out = RgbImage::new(width, height);
    for (x, y, px) in out.enumerate_pixels_mut() {
        let [sx, sy] = inv.apply([x as f32, y as f32]);
        if !(sx.is_finite() && sy.is_finite())
            || sx < -1.0
            || sy < -1.0
            || sx > sw as f32
            || sy > sh as f32
        {
            continue; // stays black
        }
        let (x0, y0) = (sx.floor() as i64, sy.floor() as i64);
        let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
        // The four neighbours are looked up once per pixel rather than once per channel.
        let (p00, p01, p10, p11) = (
            at(x0, y0),
            at(x0 + 1, y0),
            at(x0, y0 + 1),
            at(x0 + 1, y0 + 1),
        );
        for c in 0..3 {
            let top = sample(p00, c) * (1.0 - fx) + sample(p01, c) * fx;
            let bottom = sample(p10, c) * (1.0 - fx) + sample(p11, c) * fx;
            px[c] = to_byte(top * (1.0 - fy) + bottom * fy);
        }
    }
    out
}

/// Sharpness of an image: the variance of its grey-level Laplacian (3×3, 4-neighbour). Low
/// values mean blur; 0 for images smaller than 3×3.
pub fn laplacian_variance(image: &RgbImage) -> f32 {
    let (w, h) = image.dimensions();
    if w < 3 || h < 3 {
        return 0.0;
    }
    // Each pixel's grey level is computed once, not five times.
    let grey: Vec<f64> = image
        .pixels()
        .map(|p| 0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2]))
        .collect();
    let (w, h) = (w as usize, h as usize);
    let (mut sum, mut sum_sq, mut n) = (0.0f64, 0.0f64, 0.0f64);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let i = y * w + x;
            let l = grey[i - 1] + grey[i + 1] + grey[i - w] + grey[i + w] - 4.0 * grey[i];
            sum += l;
            sum_sq += l * l;
            n += 1.0;
        }
    }
    let mean = sum / n;
    (sum_sq / n - mean * mean).max(0.0) as f32
}

/// Sharpness of an aligned face crop: [`laplacian_variance`] of its middle (a quarter in from
/// each side, from 30% to 90% of the height: eyes, nose and mouth of the ArcFace template). The
/// corners hold background, and the black border where a face met the photo's edge, whose
/// sharp lines would make a blurred face look sharp.
pub fn face_sharpness(crop: &RgbImage) -> f32 {
    let (w, h) = crop.dimensions();
    let (x0, y0) = (w / 4, h * 3 / 10);
    let (x1, y1) = (w - w / 4, h * 9 / 10);
    let middle = image::imageops::crop_imm(crop, x0, y0, x1 - x0, y1 - y0).to_image();
    laplacian_variance(&middle)
}

/// Packs equally-sized images into one NCHW tensor, in `order`, normalised.
pub fn to_nchw(images: &[&RgbImage], order: ColorOrder, norm: &Normalization) -> Vec<f32> {
    let Some(first) = images.first() else {
        return Vec::new();
    };
    let plane = (first.width() * first.height()) as usize;
    let mut out = vec![0.0f32; images.len() * 3 * plane];
    // One plane at a time, so that each output is written in order: this packs a 640×640 detector
    // input per photo, and the pixel-major version was as slow as the detector's model.
    for (n, image) in images.iter().enumerate() {
        for (c, target) in out[n * 3 * plane..][..3 * plane]
            .chunks_exact_mut(plane)
            .enumerate()
        {
            let source = match order {
                ColorOrder::Rgb => c,
                ColorOrder::Bgr => 2 - c,
            };
            let (mean, std) = (norm.mean[c], norm.std[c]);
            for (value, px) in target.iter_mut().zip(image.as_raw().chunks_exact(3)) {
                *value = (f32::from(px[source]) - mean) / std;
            }
        }
        if norm.per_image_standardization {
            standardize(&mut out[n * 3 * plane..][..3 * plane]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    #[test]
    fn resize_keeps_flat_images_flat_and_matches_opencv_on_a_ramp() {
        let flat = RgbImage::from_pixel(7, 5, Rgb([10, 20, 30]));
        assert!(
            resize_bilinear(&flat, 3, 11)
                .pixels()
                .all(|p| p.0 == [10, 20, 30])
        );
        // cv2.resize(np.array([[0, 100, 200, 250]], np.uint8), (2, 1)) == [[50, 225]]
        let ramp = RgbImage::from_fn(4, 1, |x, _| Rgb([[0, 100, 200, 250][x as usize]; 3]));
        let half = resize_bilinear(&ramp, 2, 1);
        assert_eq!(
            (half.get_pixel(0, 0)[0], half.get_pixel(1, 0)[0]),
            (50, 225)
        );
    }

    #[test]
    fn letterbox_never_enlarges() {
        let src = RgbImage::from_pixel(20, 10, Rgb([255, 255, 255]));
        let (canvas, scale) = letterbox(&src, 64, 64);
        assert_eq!(scale, 1.0);
        assert_eq!(canvas.get_pixel(19, 9).0, [255, 255, 255]);
        assert_eq!(canvas.get_pixel(20, 9).0, [0, 0, 0]);
    }

    #[test]
    fn letterbox_fits_and_pads_and_reports_the_scale() {
        let src = RgbImage::from_pixel(200, 100, Rgb([255, 255, 255]));
        let (canvas, scale) = letterbox(&src, 64, 64);
        assert_eq!(canvas.dimensions(), (64, 64));
        assert!((scale - 0.32).abs() < 1e-6);
        assert_eq!(canvas.get_pixel(10, 10).0, [255, 255, 255]);
        assert_eq!(canvas.get_pixel(10, 40).0, [0, 0, 0]);
    }

    #[test]
    fn warp_with_a_translation_moves_pixels_and_fills_black() {
        let src = RgbImage::from_fn(8, 8, |x, y| Rgb([(x * 10) as u8, (y * 10) as u8, 0]));
        let shift = Affine([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]]);
        let out = warp_affine(&src, &shift, 8, 8);
        assert_eq!(out.get_pixel(5, 4).0, src.get_pixel(3, 3).0);
        assert_eq!(out.get_pixel(0, 0).0, [0, 0, 0]);
        let singular = Affine([[0.0; 3]; 2]);
        assert!(
            warp_affine(&src, &singular, 4, 4)
                .pixels()
                .all(|p| p.0 == [0, 0, 0])
        );
    }

    #[test]
    fn face_sharpness_ignores_the_corners_and_the_black_border() {
        // A flat face in the middle of a crop whose corners are black and white stripes.
        let crop = RgbImage::from_fn(112, 112, |x, y| {
            let middle = (28..84).contains(&x) && (33..100).contains(&y);
            if middle || y % 2 == 0 {
                Rgb([120, 110, 100])
            } else {
                Rgb([0, 0, 0])
            }
        });
        assert!(laplacian_variance(&crop) > 1000.0);
        assert_eq!(face_sharpness(&crop), 0.0);
        assert_eq!(face_sharpness(&RgbImage::new(2, 2)), 0.0, "tiny: no panic");
        assert_eq!(face_sharpness(&RgbImage::new(0, 0)), 0.0);
    }

    #[test]
    fn laplacian_variance_is_zero_for_flat_images_and_grows_with_detail() {
        assert_eq!(
            laplacian_variance(&RgbImage::from_pixel(10, 10, Rgb([90, 90, 90]))),
            0.0
        );
        assert_eq!(laplacian_variance(&RgbImage::new(2, 2)), 0.0);
        let stripes = RgbImage::from_fn(10, 10, |x, _| {
            if x % 2 == 0 {
                Rgb([0; 3])
            } else {
                Rgb([255; 3])
            }
        });
        let soft = RgbImage::from_fn(10, 10, |x, _| Rgb([(x * 10) as u8; 3]));
        assert!(laplacian_variance(&stripes) > laplacian_variance(&soft));
    }

    #[test]
    fn padding_surrounds_the_image_with_black() {
        let src = RgbImage::from_pixel(3, 2, Rgb([9, 9, 9]));
        let out = pad(&src, 2);
        assert_eq!(out.dimensions(), (7, 6));
        assert_eq!(out.get_pixel(2, 2).0, [9, 9, 9]);
        assert_eq!(out.get_pixel(1, 2).0, [0, 0, 0]);
        assert_eq!(out.get_pixel(4, 3).0, [9, 9, 9]);
    }

    /// The straightforward per-pixel versions these functions were first written as; the
    /// slice-based ones must give exactly the same bytes and floats.
    mod reference {
        use super::*;

        pub fn resize(src: &RgbImage, width: u32, height: u32) -> RgbImage {
            let (sw, sh) = src.dimensions();
            let axis = |dst: u32, src_len: u32| -> Vec<(u32, u32, f32)> {
                let scale = src_len as f32 / dst as f32;
                (0..dst)
                    .map(|d| {
                        let s = ((d as f32 + 0.5) * scale - 0.5).max(0.0);
                        let i0 = (s.floor() as u32).min(src_len - 1);
                        let i1 = (i0 + 1).min(src_len - 1);
                        let f = if i0 == src_len - 1 {
                            0.0
                        } else {
                            s - i0 as f32
                        };
                        (i0, i1, f)
                    })
                    .collect()
            };
            let (xs, ys) = (axis(width, sw), axis(height, sh));
            RgbImage::from_fn(width, height, |x, y| {
                let (x0, x1, fx) = xs[x as usize];
                let (y0, y1, fy) = ys[y as usize];
                let p = |x, y| src.get_pixel(x, y);
                let (p00, p01, p10, p11) = (p(x0, y0), p(x1, y0), p(x0, y1), p(x1, y1));
                Rgb(std::array::from_fn(|c| {
                    let top = f32::from(p00[c]) * (1.0 - fx) + f32::from(p01[c]) * fx;
                    let bottom = f32::from(p10[c]) * (1.0 - fx) + f32::from(p11[c]) * fx;
                    (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
                }))
            })
        }

        pub fn warp(src: &RgbImage, m: &Affine, width: u32, height: u32) -> RgbImage {
            let inv = m.inverse().unwrap();
            let (sw, sh) = (src.width() as i64, src.height() as i64);
            let sample = |x: i64, y: i64, c: usize| -> f32 {
                if x < 0 || y < 0 || x >= sw || y >= sh {
                    0.0
                } else {
                    f32::from(src.get_pixel(x as u32, y as u32)[c])
                }
            };
            RgbImage::from_fn(width, height, |x, y| {
                let [sx, sy] = inv.apply([x as f32, y as f32]);
                if !(sx.is_finite() && sy.is_finite())
                    || sx < -1.0
                    || sy < -1.0
                    || sx > sw as f32
                    || sy > sh as f32
                {
                    return Rgb([0, 0, 0]);
                }
                let (x0, y0) = (sx.floor() as i64, sy.floor() as i64);
                let (fx, fy) = (sx - x0 as f32, sy - y0 as f32);
                Rgb(std::array::from_fn(|c| {
                    let top = sample(x0, y0, c) * (1.0 - fx) + sample(x0 + 1, y0, c) * fx;
                    let bottom =
                        sample(x0, y0 + 1, c) * (1.0 - fx) + sample(x0 + 1, y0 + 1, c) * fx;
                    (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
                }))
            })
        }

        pub fn laplacian(image: &RgbImage) -> f32 {
            let (w, h) = image.dimensions();
            let grey = |x: u32, y: u32| {
                let p = image.get_pixel(x, y);
                0.299 * f64::from(p[0]) + 0.587 * f64::from(p[1]) + 0.114 * f64::from(p[2])
            };
            let (mut sum, mut sum_sq, mut n) = (0.0f64, 0.0f64, 0.0f64);
            for y in 1..h - 1 {
                for x in 1..w - 1 {
                    let l = grey(x - 1, y) + grey(x + 1, y) + grey(x, y - 1) + grey(x, y + 1)
                        - 4.0 * grey(x, y);
                    sum += l;
                    sum_sq += l * l;
                    n += 1.0;
                }
            }
            let mean = sum / n;
            (sum_sq / n - mean * mean).max(0.0) as f32
        }

        pub fn nchw(images: &[&RgbImage], order: ColorOrder, norm: &Normalization) -> Vec<f32> {
            let plane = (images[0].width() * images[0].height()) as usize;
            let mut out = vec![0.0f32; images.len() * 3 * plane];
            for (n, image) in images.iter().enumerate() {
                for (i, px) in image.pixels().enumerate().take(plane) {
                    for c in 0..3 {
                        let source = match order {
                            ColorOrder::Rgb => c,
                            ColorOrder::Bgr => 2 - c,
                        };
                        out[n * 3 * plane + c * plane + i] =
                            (f32::from(px[source]) - norm.mean[c]) / norm.std[c];
                    }
                }
                if norm.per_image_standardization {
                    // Textbook form: E[x²] − E[x]² from the pixels in pixel-major order.
                    let values = &mut out[n * 3 * plane..(n + 1) * 3 * plane];
                    let count = values.len() as f64;
                    let (sum, sum_sq) = values.iter().fold((0.0f64, 0.0f64), |(s, q), &v| {
                        (s + f64::from(v), q + f64::from(v) * f64::from(v))
                    });
                    let mean = sum / count;
                    let std = (sum_sq / count - mean * mean).max(0.0).sqrt();
                    let scale = std.max(1.0 / count.sqrt());
                    for v in values.iter_mut() {
                        *v = ((f64::from(*v) - mean) / scale) as f32;
                    }
                }
            }
            out
        }
    }

    /// A deterministic noisy image (an LCG), so every interpolation weight matters.
    fn noise(width: u32, height: u32, seed: u32) -> RgbImage {
        let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        RgbImage::from_fn(width, height, |_, _| {
            Rgb(std::array::from_fn(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            }))
        })
    }

    #[test]
    fn the_fast_pixel_operations_match_the_reference_ones_exactly() {
        for (seed, (w, h)) in [(1, 1), (2, 3), (37, 23), (640, 427), (150, 150)]
            .into_iter()
            .enumerate()
        {
            let src = noise(w, h, seed as u32);
            for (dw, dh) in [(1, 1), (5, 9), (w * 2, h), (w.div_ceil(3), h.div_ceil(2))] {
                assert_eq!(
                    resize_bilinear(&src, dw, dh),
                    reference::resize(&src, dw, dh)
                );
            }
            // Rotations, scales and shifts, including ones that reach past every border.
            for (angle, scale, shift) in [(0.0f32, 1.0, 0.0), (0.3, 0.7, -20.0), (-2.0, 3.1, 40.5)]
            {
                let (sin, cos) = (angle.sin() * scale, angle.cos() * scale);
                let m = Affine([[cos, -sin, shift], [sin, cos, -shift / 2.0]]);
                assert_eq!(
                    warp_affine(&src, &m, 112, 112),
                    reference::warp(&src, &m, 112, 112)
                );
            }
            if w >= 3 && h >= 3 {
                assert_eq!(laplacian_variance(&src), reference::laplacian(&src));
            }
            let other = noise(w, h, 99);
            for per_image_standardization in [false, true] {
                let norm = Normalization {
                    mean: [123.7, 116.3, 103.5],
                    std: [58.4, 57.1, 57.4],
                    per_image_standardization,
                };
                for order in [ColorOrder::Rgb, ColorOrder::Bgr] {
                    let (ours, theirs) = (
                        to_nchw(&[&src, &other], order, &norm),
                        reference::nchw(&[&src, &other], order, &norm),
                    );
                    if per_image_standardization {
                        // Two summation orders in f64 agree to far below one f32 step.
                        assert_eq!(ours.len(), theirs.len());
                        for (a, b) in ours.iter().zip(&theirs) {
                            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
                        }
                    } else {
                        assert_eq!(ours, theirs);
                    }
                }
            }
        }
    }

    #[test]
    fn nchw_packing_orders_channels_and_normalises() {
        let a = RgbImage::from_pixel(2, 1, Rgb([255, 0, 51]));
        let norm = Normalization::channels([0.0; 3], [255.0; 3]);
        assert_eq!(
            to_nchw(&[&a], ColorOrder::Rgb, &norm),
            [1.0, 1.0, 0.0, 0.0, 0.2, 0.2]
        );
        assert_eq!(
            to_nchw(&[&a, &a], ColorOrder::Bgr, &norm)[..6],
            [0.2, 0.2, 0.0, 0.0, 1.0, 1.0]
        );
        assert!(to_nchw(&[], ColorOrder::Rgb, &norm).is_empty());
    }

    #[test]
    fn per_image_standardization_matches_deepface_facenet_and_keeps_flat_images_finite() {
        // Values 0 and 255 in equal numbers: mean 127.5, population std 127.5, so ±1 — and the same
        // on DeepFace's [0, 1] scale (std 255), since standardisation ignores a common scale.
        let image = RgbImage::from_fn(2, 1, |x, _| Rgb([if x == 0 { 0 } else { 255 }; 3]));
        for std in [1.0, 255.0] {
            let norm = Normalization {
                per_image_standardization: true,
                ..Normalization::channels([0.0; 3], [std; 3])
            };
            let packed = to_nchw(&[&image, &image], ColorOrder::Bgr, &norm);
            assert_eq!(packed, [-1.0, 1.0, -1.0, 1.0, -1.0, 1.0].repeat(2));
        }
        // A flat image has std 0: the 1/√N floor gives zeros where DeepFace would give NaN.
        let flat = RgbImage::from_pixel(4, 4, Rgb([90, 90, 90]));
        let norm = Normalization {
            per_image_standardization: true,
            ..Normalization::channels([0.0; 3], [1.0; 3])
        };
        assert!(
            to_nchw(&[&flat], ColorOrder::Rgb, &norm)
                .iter()
                .all(|&v| v == 0.0)
        );
        // In TOML the flag is optional and off by default; an unknown key is refused.
        let parsed: Normalization =
            serde_json::from_str(r#"{"mean": [0, 0, 0], "std": [1, 1, 1]}"#).unwrap();
        assert!(!parsed.per_image_standardization);
        assert!(
            serde_json::from_str::<Normalization>(
                r#"{"mean": [0, 0, 0], "std": [1, 1, 1], "per_image": true}"#
            )
            .is_err()
        );
    }
}

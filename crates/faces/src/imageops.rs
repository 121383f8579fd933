//! Pixel operations the models need, written to match OpenCV where parity matters: bilinear
//! resize (as `cv2.resize` with `INTER_LINEAR`), letterboxing, affine warp (as `cv2.warpAffine`,
//! bilinear, constant black border), and packing images into NCHW float tensors.

use image::{Rgb, RgbImage};

use crate::geometry::Affine;

/// Channel order a model expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    Rgb,
    Bgr,
}

/// `(pixel − mean) / std` per channel, in the model's channel order, on 0–255 values.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
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
    RgbImage::from_fn(width, height, |x, y| {
        let (x0, x1, fx) = xs[x as usize];
        let (y0, y1, fy) = ys[y as usize];
        let (p00, p01, p10, p11) = (
            src.get_pixel(x0, y0),
            src.get_pixel(x1, y0),
            src.get_pixel(x0, y1),
            src.get_pixel(x1, y1),
        );
        Rgb(std::array::from_fn(|c| {
            let top = f32::from(p00[c]) * (1.0 - fx) + f32::from(p01[c]) * fx;
            let bottom = f32::from(p10[c]) * (1.0 - fx) + f32::from(p11[c]) * fx;
            (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
        }))
    })
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
    image::imageops::replace(&mut canvas, &resized, 0, 0);
    // The exact scale per axis differs by rounding; the vertical one is what InsightFace uses.
    (canvas, nh as f32 / sh.max(1) as f32)
}

/// `src` on a black canvas with `border` pixels added on every side.
pub fn pad(src: &RgbImage, border: u32) -> RgbImage {
    let mut canvas = RgbImage::new(src.width() + 2 * border, src.height() + 2 * border);
    image::imageops::replace(&mut canvas, src, i64::from(border), i64::from(border));
    canvas
}

/// `dst(x, y) = src(M⁻¹(x, y))`, bilinear, black outside `src` — `cv2.warpAffine` defaults.
/// A singular `m` gives a black image.
pub fn warp_affine(src: &RgbImage, m: &Affine, width: u32, height: u32) -> RgbImage {
    let Some(inv) = m.inverse() else {
        return RgbImage::new(width, height);
    };
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
            let bottom = sample(x0, y0 + 1, c) * (1.0 - fx) + sample(x0 + 1, y0 + 1, c) * fx;
            (top * (1.0 - fy) + bottom * fy).round().clamp(0.0, 255.0) as u8
        }))
    })
}

/// Sharpness of an image: the variance of its grey-level Laplacian (3×3, 4-neighbour). Low
/// values mean blur; 0 for images smaller than 3×3.
pub fn laplacian_variance(image: &RgbImage) -> f32 {
    let (w, h) = image.dimensions();
    if w < 3 || h < 3 {
        return 0.0;
    }
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

/// Packs equally-sized images into one NCHW tensor, in `order`, normalised.
pub fn to_nchw(images: &[&RgbImage], order: ColorOrder, norm: &Normalization) -> Vec<f32> {
    let Some(first) = images.first() else {
        return Vec::new();
    };
    let plane = (first.width() * first.height()) as usize;
    let mut out = vec![0.0f32; images.len() * 3 * plane];
    for (n, image) in images.iter().enumerate() {
        let base = n * 3 * plane;
        for (i, px) in image.pixels().enumerate().take(plane) {
            for c in 0..3 {
                let source = match order {
                    ColorOrder::Rgb => c,
                    ColorOrder::Bgr => 2 - c,
                };
                out[base + c * plane + i] = (f32::from(px[source]) - norm.mean[c]) / norm.std[c];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn nchw_packing_orders_channels_and_normalises() {
        let a = RgbImage::from_pixel(2, 1, Rgb([255, 0, 51]));
        let norm = Normalization {
            mean: [0.0; 3],
            std: [255.0; 3],
        };
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
}

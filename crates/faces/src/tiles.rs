//! Detection in overlapping tiles, as pure geometry: where the tiles go, and how their faces are
//! merged into one list in image coordinates (no face counted twice, none cut in half).
//!
//! A face cut by a tile's inner edge is seen whole by the neighbouring tile as long as the
//! overlap is wider than the face; so a face touching an inner edge is dropped, and the rest are
//! merged with the single-pass faces by non-maximum suppression that also treats a box lying
//! mostly inside another as the same face.

use crate::geometry::{BBox, Face};

/// A tile: its top-left corner and size in the tiled image's pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tile {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

/// Starts of windows of `window` pixels over `len`, every one a multiple of `align`, neighbours
/// overlapping by at least `overlap`, spread as evenly as that allows; the last reaches the end
/// (it may be narrower than `window`).
fn starts(len: u32, window: u32, overlap: u32, align: u32) -> Vec<u32> {
    if len <= window {
        return vec![0];
    }
    // An alignment coarser than the window (a detector with a tiny input) would step past the
    // end of the image: align to the window at most.
    let align = align.clamp(1, window.max(1));
    let longest = ((window.saturating_sub(overlap)) / align * align).max(align);
    let gaps = (len - window).div_ceil(longest);
    let step = ((len - window).div_ceil(gaps)).div_ceil(align) * align;
    let step = step.min(longest);
    let mut starts: Vec<u32> = (0..=gaps).map(|i| i * step).collect();
    while starts.last().is_some_and(|&s| s + window < len) {
        starts.push(starts[starts.len() - 1] + step);
    }
    starts
}

/// Tiles of at most `tile`×`tile` pixels covering a `width`×`height` image, neighbours
/// overlapping by at least `overlap` pixels (row by row, top-left first). Every tile starts at a
/// multiple of `align` (a detector's largest stride): a convolutional detector's anchors then
/// fall where they would in one pass over the whole image, and so do its scores — shifted by a
/// few pixels, a face's score moved by as much as 0.13 (0.67 against 0.80 on crowd/group.jpg).
pub fn layout(width: u32, height: u32, tile: u32, overlap: u32, align: u32) -> Vec<Tile> {
    let tile = tile.max(1);
    let overlap = overlap.min(tile - 1);
    let xs = starts(width, tile, overlap, align);
    let ys = starts(height, tile, overlap, align);
    ys.iter()
        .flat_map(|&y| {
            xs.iter().map(move |&x| Tile {
                x,
                y,
                w: tile.min(width - x),
                h: tile.min(height - y),
            })
        })
        .collect()
}

/// Whether `face` (in tile coordinates) comes within `margin` pixels of an edge of `tile` that
/// is not an edge of the `width`×`height` image: then it may be cut, and the neighbour has it.
pub fn touches_inner_edge(face: &Face, tile: &Tile, width: u32, height: u32, margin: f32) -> bool {
    let b = face.bbox;
    (tile.x > 0 && b.x < margin)
        || (tile.y > 0 && b.y < margin)
        || (tile.x + tile.w < width && b.x + b.w > tile.w as f32 - margin)
        || (tile.y + tile.h < height && b.y + b.h > tile.h as f32 - margin)
}

/// Intersection over the smaller box's area: near 1 when one box lies inside the other (a cut
/// face's box inside the whole face's), which IoU does not see.
fn overlap_of_smaller(a: &BBox, b: &BBox) -> f32 {
    let x1 = a.x.max(b.x);
    let y1 = a.y.max(b.y);
    let x2 = (a.x + a.w).min(b.x + b.w);
    let y2 = (a.y + a.h).min(b.y + b.h);
    let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
    let smaller = a.area().min(b.area());
    if smaller > 0.0 { inter / smaller } else { 0.0 }
}

/// How much of the smaller box must lie inside the larger for the two to be one face.
pub const SAME_FACE_CONTAINMENT: f32 = 0.99;

/// One list of faces from several, best first: a face overlapping a better one by more than
/// `iou` (or lying mostly inside it, or containing it) is dropped.
pub fn merge(lists: impl IntoIterator<Item = Vec<Face>>, iou: f32) -> Vec<Face> {
    let mut faces: Vec<Face> = lists
        .into_iter()
        .flatten()
        .filter(Face::is_finite)
        .collect();
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Face> = Vec::with_capacity(faces.len());
    for face in faces {
        let duplicate = kept.iter().any(|k| {
            k.bbox.iou(&face.bbox) > iou
                || overlap_of_smaller(&k.bbox, &face.bbox) > SAME_FACE_CONTAINMENT
        });
        if !duplicate {
            kept.push(face);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, y: f32, size: f32, score: f32) -> Face {
        Face {
            bbox: BBox {
                x,
                y,
                w: size,
                h: size,
            },
            score,
            landmarks: [[x + size / 2.0, y + size / 2.0]; 5],
        }
    }

    #[test]
    fn a_detector_input_smaller_than_the_alignment_still_gives_tiles_inside_the_image() {
        for (width, height, tile, align) in [(100, 70, 16, 32), (33, 33, 1, 32), (1000, 10, 31, 32)]
        {
            let tiles = layout(width, height, tile, tile / 4, align);
            assert!(!tiles.is_empty());
            for t in &tiles {
                assert!(t.x < width && t.y < height && t.w > 0 && t.h > 0, "{t:?}");
                assert!(t.x + t.w <= width && t.y + t.h <= height, "{t:?}");
            }
            assert!(tiles.iter().any(|t| t.x + t.w == width));
            assert!(tiles.iter().any(|t| t.y + t.h == height));
        }
    }

    #[test]
    fn tiles_cover_the_image_with_the_overlap_asked_for() {
        for (width, height, tile, overlap, align) in [
            (1280, 960, 640, 160, 32),
            (1732, 1080, 640, 160, 32),
            (641, 640, 640, 100, 32),
            (5000, 700, 640, 200, 32),
            (3000, 2171, 512, 128, 1),
            (3000, 2171, 512, 128, 7),
        ] {
            let tiles = layout(width, height, tile, overlap, align);
            // Every pixel is in some tile; every tile is inside the image.
            for t in &tiles {
                assert!(t.x + t.w <= width && t.y + t.h <= height, "{t:?}");
                assert!(t.x % align == 0 && t.y % align == 0, "{t:?}");
                assert!(t.w <= tile && t.h <= tile);
            }
            for (px, py) in [(0, 0), (width - 1, height - 1), (width / 2, height / 3)] {
                assert!(
                    tiles
                        .iter()
                        .any(|t| (t.x..t.x + t.w).contains(&px) && (t.y..t.y + t.h).contains(&py)),
                    "({px},{py}) uncovered in {width}×{height}"
                );
            }
            // Horizontal neighbours overlap by at least `overlap`.
            let row: Vec<&Tile> = tiles.iter().filter(|t| t.y == 0).collect();
            for pair in row.windows(2) {
                assert!(pair[0].x + pair[0].w >= pair[1].x + overlap, "{pair:?}");
            }
        }
        assert_eq!(
            layout(1280, 960, 640, 160, 32),
            [(0, 0), (320, 0), (640, 0), (0, 320), (320, 320), (640, 320)]
                .map(|(x, y)| Tile {
                    x,
                    y,
                    w: 640,
                    h: 640
                })
                .to_vec()
        );
        // Aligned to 32: starts 0, 384, 768, 1120 (1732 − 640 = 1092 is not a multiple of 32;
        // the last tile is cut by the image's edge instead).
        let xs: Vec<u32> = layout(1732, 600, 640, 160, 32)
            .iter()
            .map(|t| t.x)
            .collect();
        assert_eq!(xs, [0, 384, 768, 1152]);
        // An image no larger than a tile is one tile, of the image's size.
        assert_eq!(
            layout(600, 400, 640, 160, 32),
            [Tile {
                x: 0,
                y: 0,
                w: 600,
                h: 400
            }]
        );
    }

    #[test]
    fn a_face_on_an_inner_edge_is_left_to_the_neighbour() {
        let tile = Tile {
            x: 320,
            y: 0,
            w: 640,
            h: 640,
        };
        // Image 1280×640: the tile's left and right edges are inner, top and bottom are not.
        assert!(touches_inner_edge(
            &face(0.0, 100.0, 30.0, 0.9),
            &tile,
            1280,
            640,
            2.0
        ));
        assert!(touches_inner_edge(
            &face(615.0, 100.0, 30.0, 0.9),
            &tile,
            1280,
            640,
            2.0
        ));
        assert!(!touches_inner_edge(
            &face(5.0, 0.0, 30.0, 0.9),
            &tile,
            1280,
            640,
            2.0
        ));
        assert!(!touches_inner_edge(
            &face(100.0, 615.0, 25.0, 0.9),
            &tile,
            1280,
            640,
            2.0
        ));
        // The last tile's right edge is the image's.
        let last = Tile {
            x: 640,
            y: 0,
            w: 640,
            h: 640,
        };
        assert!(!touches_inner_edge(
            &face(615.0, 100.0, 25.0, 0.9),
            &last,
            1280,
            640,
            2.0
        ));
    }

    #[test]
    fn merging_keeps_each_face_once() {
        let whole = face(100.0, 100.0, 40.0, 0.9);
        let same_from_another_tile = face(101.0, 99.0, 41.0, 0.85);
        let cut_half = Face {
            bbox: BBox {
                x: 100.0,
                y: 100.0,
                w: 10.0,
                h: 40.0,
            },
            score: 0.7,
            ..whole
        };
        let neighbour = face(145.0, 100.0, 40.0, 0.8);
        let merged = merge(
            [
                vec![whole, neighbour],
                vec![same_from_another_tile, cut_half],
            ],
            0.3,
        );
        // The same face seen by two tiles is kept once; the cut half lies inside it (IoU 0.25
        // only) and goes; the neighbour (touching, not overlapping) is kept.
        assert_eq!(merged, vec![whole, neighbour]);
        assert_eq!(merge([vec![whole], vec![neighbour]], 0.3).len(), 2);
        assert!(merge([Vec::new(), Vec::new()], 0.3).is_empty());
        let nan = face(f32::NAN, 0.0, 10.0, 0.9);
        assert_eq!(merge([vec![nan, whole]], 0.3), vec![whole]);
    }
}

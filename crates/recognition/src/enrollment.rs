//! Which face an enrollment photo is about: the largest, provided no other comes close in size
//! (then we cannot tell which person is the student, and the photo is refused).

/// A second face at least this fraction of the largest one's size (box side) makes a photo
/// ambiguous.
pub const SIMILAR_FACE_SIZE: f32 = 0.7;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum OneFace {
    /// The index of the face to use.
    Found(usize),
    NoFace,
    /// Several faces of similar size: how many, and the sizes of the two largest.
    Ambiguous {
        faces: usize,
        largest: f32,
        second: f32,
    },
}

/// Picks the face of an enrollment photo from the faces' sizes (smaller side of each box).
pub fn the_one_face(sizes: &[f32]) -> OneFace {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by(|&a, &b| sizes[b].total_cmp(&sizes[a]));
    match order.as_slice() {
        [] => OneFace::NoFace,
        [first, second, ..] if sizes[*second] >= SIMILAR_FACE_SIZE * sizes[*first] => {
            OneFace::Ambiguous {
                faces: sizes.len(),
                largest: sizes[*first],
                second: sizes[*second],
            }
        }
        [first, ..] => OneFace::Found(*first),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_face_wins_unless_another_is_of_similar_size() {
        assert_eq!(the_one_face(&[]), OneFace::NoFace);
        assert_eq!(the_one_face(&[40.0]), OneFace::Found(0));
        assert_eq!(the_one_face(&[20.0, 100.0, 60.0]), OneFace::Found(1));
        assert_eq!(
            the_one_face(&[100.0, 20.0, 70.0]),
            OneFace::Ambiguous {
                faces: 3,
                largest: 100.0,
                second: 70.0
            }
        );
    }
}

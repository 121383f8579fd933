//! The names of blobs, decided here and nowhere else. A key is a `/`-separated path below the
//! blob store's root; the rows keep the keys they wrote, so changing a layout here affects only
//! blobs stored afterwards.
//!
//! | blob                                   | key                                          |
//! |----------------------------------------|----------------------------------------------|
//! | a session photo, as uploaded           | `images/{session_id}/{sha256}`               |
//! | the aligned face `index` of that photo | `crops/{image_id}/{run}-{index}.jpg`         |
//! | that photo's preview (≤ 1600 px JPEG)  | `previews/{image_id}-{run}.jpg`              |
//! | a student's reference photo            | `references/{student_id}/{sha256}`           |
//! | the aligned face of that photo         | `references/{student_id}/{sha256}.face.jpg`  |
//!
//! `sha256` is the hex SHA-256 of the photo's bytes: the same photo uploaded twice to one
//! session (or for one student) is one blob. `index` is the face's position in the detector's
//! answer for the photo. `run` is random per processing of the photo: two nodes that process the
//! same photo (one took the job over from the other) never write the same blob, so the one whose
//! results are not recorded can delete its own without touching the other's. (Before, the keys
//! were `crops/{image_id}/{index}.jpg` and `previews/{image_id}.jpg`; rows keep those.)

/// A session photo as uploaded.
pub fn session_photo(session_id: i64, sha256: &str) -> String {
    format!("images/{session_id}/{sha256}")
}

/// The aligned image of face `index` found in session photo `image_id` by processing `run`.
pub fn session_face(image_id: i64, run: &str, index: usize) -> String {
    format!("crops/{image_id}/{run}-{index}.jpg")
}

/// The preview of session photo `image_id`, made when processing `run` processed it.
pub fn session_preview(image_id: i64, run: &str) -> String {
    format!("previews/{image_id}-{run}.jpg")
}

/// A new `run`: random, so that no two processings of one photo share a blob.
pub fn new_run() -> String {
    crate::credentials::random_id(8)
}

/// A student's reference (enrollment) photo as uploaded.
pub fn reference_photo(student_id: i64, sha256: &str) -> String {
    format!("references/{student_id}/{sha256}")
}

/// The aligned image of the face taken from a student's reference photo.
pub fn reference_face(student_id: i64, sha256: &str) -> String {
    format!("references/{student_id}/{sha256}.face.jpg")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blobs stored by earlier versions keep their keys in the rows; these are those layouts
    /// (and the runs of session photos' faces and previews, which are new).
    #[test]
    fn the_layouts_are_the_ones_already_stored() {
        assert_eq!(session_photo(7, "ab12"), "images/7/ab12");
        assert_eq!(session_face(42, "9f0e", 3), "crops/42/9f0e-3.jpg");
        assert_eq!(session_preview(42, "9f0e"), "previews/42-9f0e.jpg");
        assert_eq!(reference_photo(5, "cd34"), "references/5/cd34");
        assert_eq!(reference_face(5, "cd34"), "references/5/cd34.face.jpg");
    }

    #[test]
    fn two_runs_never_share_a_key() {
        let (a, b) = (new_run(), new_run());
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert_ne!(session_face(1, &a, 0), session_face(1, &b, 0));
    }
}

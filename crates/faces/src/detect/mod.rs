//! Detector output decoding: raw tensors in, faces in input-tensor coordinates out. Pure
//! functions; a tensor of the wrong size is an error, never a panic or an out-of-bounds read.

pub mod scrfd;
pub mod yunet;

/// The feature-map strides both detectors use.
pub const STRIDES: [usize; 3] = [8, 16, 32];

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("detector output {name} has {actual} values, expected {expected}")]
pub struct DecodeError {
    pub name: String,
    pub actual: usize,
    pub expected: usize,
}

pub(crate) fn check_len(
    name: impl Into<String>,
    data: &[f32],
    expected: usize,
) -> Result<(), DecodeError> {
    if data.len() == expected {
        Ok(())
    } else {
        Err(DecodeError {
            name: name.into(),
            actual: data.len(),
            expected,
        })
    }
}

//! HEIC/HEIF photos (what iPhones save by default), decoded through libheif.
//!
//! libheif is loaded when the first HEIC photo arrives (`libheif.so.1`, Debian's `libheif1`), not
//! linked: the project builds without its headers, and a machine without it refuses HEIC photos
//! with an [`ImageError::NoHeifDecoder`] that says what to install, while every other format
//! still works. The same limits as for other formats apply before any pixel is decoded.
//!
//! Orientation: HEIF carries its own (`irot`/`imir` properties), which libheif applies while
//! decoding. iPhones also write the same rotation as an EXIF tag, so EXIF orientation is applied
//! only to files without `irot`/`imir` (as encoders that copy a JPEG's EXIF write them) — never
//! both, which would turn an iPhone photo sideways.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::sync::OnceLock;

use image::metadata::Orientation;
use image::{DynamicImage, RgbImage};

use crate::image_io::{ImageError, check_size};

/// Brands (in the `ftyp` box) of HEIF files whose images libheif decodes with HEVC. AVIF
/// (`avif`, `avis`) shares the container but is not accepted here.
const HEIF_BRANDS: [&[u8; 4]; 8] = [
    b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1",
];

/// Whether `bytes` start with an ISO-BMFF `ftyp` box naming a HEIF brand (and not AVIF as the
/// major brand).
pub fn is_heif(bytes: &[u8]) -> bool {
    let Some(ftyp) = ftyp_box(bytes) else {
        return false;
    };
    let major = &ftyp[8..12];
    if major == b"avif" || major == b"avis" {
        return false;
    }
    let compatible = ftyp[16..].chunks_exact(4);
    std::iter::once(major)
        .chain(compatible)
        .any(|brand| HEIF_BRANDS.iter().any(|b| b.as_slice() == brand))
}

/// The leading `ftyp` box (header included), if `bytes` start with a well-formed one.
fn ftyp_box(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < 16 || &bytes[4..8] != b"ftyp" {
        return None;
    }
    let size = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    (16..=bytes.len().min(4096))
        .contains(&size)
        .then(|| &bytes[..size])
}

/// The boxes directly inside `data`, as (type, payload) pairs; stops at the first malformed one.
fn boxes(data: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.len() < 8 {
            return None;
        }
        let size = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = [rest[4], rest[5], rest[6], rest[7]];
        // Sizes 0 ("to the end") and 1 (64-bit) only occur for media data, never around
        // properties: treated as the end of what is read here.
        if size < 8 || size > rest.len() {
            return None;
        }
        let payload = &rest[8..size];
        rest = &rest[size..];
        Some((kind, payload))
    })
}

/// Whether the file's item properties include a rotation or mirroring (`irot`, `imir`): then
/// libheif turns the image upright itself. Reads `meta` → `iprp` → `ipco` only.
fn has_container_transform(bytes: &[u8]) -> bool {
    fn child<'a>(data: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
        boxes(data)
            .find(|(k, _)| k == kind)
            .map(|(_, payload)| payload)
    }
    // `meta` is a full box: 4 bytes of version and flags before its children.
    let Some(properties) = child(bytes, b"meta")
        .and_then(|meta| meta.get(4..))
        .and_then(|meta| child(meta, b"iprp"))
        .and_then(|iprp| child(iprp, b"ipco"))
    else {
        return false;
    };
    boxes(properties).any(|(kind, _)| &kind == b"irot" || &kind == b"imir")
}

/// The orientation in a HEIF `Exif` block: a 4-byte offset to the TIFF header, then (usually)
/// `Exif\0\0` and the TIFF data.
fn exif_orientation(block: &[u8]) -> Option<Orientation> {
    let offset = u32::from_be_bytes(block.get(..4)?.try_into().ok()?) as usize;
    let mut tiff = block.get(4usize.checked_add(offset)?..)?;
    if let Some(rest) = tiff.strip_prefix(b"Exif\0\0") {
        tiff = rest;
    }
    Orientation::from_exif_chunk(tiff)
}

/// Decodes a HEIF file's primary image into RGB, upright.
pub(crate) fn decode_rgb(bytes: &[u8], max_pixels: u64) -> Result<RgbImage, ImageError> {
    let heif = Libheif::get()?;
    let context = Context::new(heif)?;
    // libheif's own limit on each side, so that even an image it assembles from tiles cannot
    // grow past what `check_size` allows.
    let max_side = (max_pixels as f64 * f64::from(crate::image_io::MAX_ASPECT_RATIO)).sqrt();
    // SAFETY: the context is valid; the limit is a plain int.
    unsafe { (heif.set_maximum_image_size_limit)(context.0, max_side.min(1e9) as c_int) };
    // SAFETY: `bytes` outlives `context`, which is freed at the end of this function.
    heif.check(unsafe {
        (heif.read_from_memory_without_copy)(
            context.0,
            bytes.as_ptr().cast(),
            bytes.len(),
            std::ptr::null(),
        )
    })?;
    let mut handle = Handle(std::ptr::null_mut(), heif);
    // SAFETY: the context holds a parsed file; the handle is released by `Handle`'s drop.
    heif.check(unsafe { (heif.get_primary_image_handle)(context.0, &mut handle.0) })?;
    if handle.0.is_null() {
        return Err(ImageError::Corrupt(
            "the HEIF file has no primary image".into(),
        ));
    }
    // SAFETY: a valid handle. The size is after libheif's rotation, as the decoded image.
    let (width, height) = unsafe {
        (
            (heif.handle_get_width)(handle.0),
            (heif.handle_get_height)(handle.0),
        )
    };
    let (width, height) = (
        u32::try_from(width).unwrap_or(0),
        u32::try_from(height).unwrap_or(0),
    );
    check_size(width, height, max_pixels)?;
    let orientation = if has_container_transform(bytes) {
        None
    } else {
        handle.exif().as_deref().and_then(exif_orientation)
    };
    let mut image = Image(std::ptr::null_mut(), heif);
    // SAFETY: a valid handle; default decoding options (NULL) apply irot/imir; the image is
    // released by `Image`'s drop.
    heif.check(unsafe {
        (heif.decode_image)(
            handle.0,
            &mut image.0,
            HEIF_COLORSPACE_RGB,
            HEIF_CHROMA_INTERLEAVED_RGB,
            std::ptr::null(),
        )
    })?;
    let rgb = image.to_rgb(width, height)?;
    Ok(match orientation {
        Some(orientation) if orientation != Orientation::NoTransforms => {
            let mut image = DynamicImage::ImageRgb8(rgb);
            image.apply_orientation(orientation);
            image.into_rgb8()
        }
        _ => rgb,
    })
}

const HEIF_COLORSPACE_RGB: c_int = 1;
const HEIF_CHROMA_INTERLEAVED_RGB: c_int = 10;
const HEIF_CHANNEL_INTERLEAVED: c_int = 10;
/// Exif blocks larger than this are not read (real ones are a few tens of kilobytes).
const MAX_EXIF_BYTES: usize = 1 << 20;

/// libheif's `struct heif_error`, returned by value.
#[repr(C)]
struct HeifError {
    code: c_int,
    subcode: c_int,
    message: *const c_char,
}

type Ptr = *mut c_void;

/// The libheif functions used here, resolved once from the loaded library.
struct Libheif {
    context_alloc: unsafe extern "C" fn() -> Ptr,
    context_free: unsafe extern "C" fn(Ptr),
    set_maximum_image_size_limit: unsafe extern "C" fn(Ptr, c_int),
    read_from_memory_without_copy:
        unsafe extern "C" fn(Ptr, *const c_void, usize, *const c_void) -> HeifError,
    get_primary_image_handle: unsafe extern "C" fn(Ptr, *mut Ptr) -> HeifError,
    handle_release: unsafe extern "C" fn(Ptr),
    handle_get_width: unsafe extern "C" fn(Ptr) -> c_int,
    handle_get_height: unsafe extern "C" fn(Ptr) -> c_int,
    metadata_block_ids: unsafe extern "C" fn(Ptr, *const c_char, *mut u32, c_int) -> c_int,
    metadata_size: unsafe extern "C" fn(Ptr, u32) -> usize,
    get_metadata: unsafe extern "C" fn(Ptr, u32, *mut c_void) -> HeifError,
    decode_image: unsafe extern "C" fn(Ptr, *mut Ptr, c_int, c_int, *const c_void) -> HeifError,
    image_get_width: unsafe extern "C" fn(Ptr, c_int) -> c_int,
    image_get_height: unsafe extern "C" fn(Ptr, c_int) -> c_int,
    image_get_plane_readonly: unsafe extern "C" fn(Ptr, c_int, *mut c_int) -> *const u8,
    image_release: unsafe extern "C" fn(Ptr),
    /// Kept loaded for the life of the process: the pointers above point into it.
    _library: libloading::Library,
}

// SAFETY: libheif's functions may be called from any thread on distinct contexts; the struct
// holds only function pointers and the library handle.
unsafe impl Send for Libheif {}
unsafe impl Sync for Libheif {}

impl Libheif {
    /// The library, loaded on first use; the same error every time when it cannot be.
    fn get() -> Result<&'static Libheif, ImageError> {
        static LIBHEIF: OnceLock<Result<Libheif, String>> = OnceLock::new();
        LIBHEIF
            .get_or_init(Libheif::load)
            .as_ref()
            .map_err(|e| ImageError::NoHeifDecoder(e.clone()))
    }

    fn load() -> Result<Libheif, String> {
        // SAFETY: loading Debian's libheif, whose initialisers only register its codecs.
        let library = unsafe { libloading::Library::new("libheif.so.1") }
            .map_err(|e| format!("cannot load libheif.so.1: {e}"))?;
        macro_rules! sym {
            ($name:literal) => {
                // SAFETY: the symbol's C signature is the one declared for the field it fills
                // (libheif's heif.h, stable since 1.10).
                *unsafe { library.get(concat!($name, "\0").as_bytes()) }
                    .map_err(|e| format!("libheif.so.1 lacks {}: {e}", $name))?
            };
        }
        let init: unsafe extern "C" fn(*const c_void) -> HeifError = sym!("heif_init");
        // SAFETY: heif_init with default parameters (NULL), once per process.
        let error = unsafe { init(std::ptr::null()) };
        if error.code != 0 {
            return Err(format!("heif_init failed: {}", message(&error)));
        }
        Ok(Libheif {
            context_alloc: sym!("heif_context_alloc"),
            context_free: sym!("heif_context_free"),
            set_maximum_image_size_limit: sym!("heif_context_set_maximum_image_size_limit"),
            read_from_memory_without_copy: sym!("heif_context_read_from_memory_without_copy"),
            get_primary_image_handle: sym!("heif_context_get_primary_image_handle"),
            handle_release: sym!("heif_image_handle_release"),
            handle_get_width: sym!("heif_image_handle_get_width"),
            handle_get_height: sym!("heif_image_handle_get_height"),
            metadata_block_ids: sym!("heif_image_handle_get_list_of_metadata_block_IDs"),
            metadata_size: sym!("heif_image_handle_get_metadata_size"),
            get_metadata: sym!("heif_image_handle_get_metadata"),
            decode_image: sym!("heif_decode_image"),
            image_get_width: sym!("heif_image_get_width"),
            image_get_height: sym!("heif_image_get_height"),
            image_get_plane_readonly: sym!("heif_image_get_plane_readonly"),
            image_release: sym!("heif_image_release"),
            _library: library,
        })
    }

    /// A libheif error as a refusal of the file.
    fn check(&self, error: HeifError) -> Result<(), ImageError> {
        match refusal(&error) {
            None => Ok(()),
            Some(refused) => Err(refused),
        }
    }
}

/// libheif's `heif_error_Unsupported_feature` with `heif_suberror_Unsupported_codec`: it has no
/// decoder for the file's codec.
const UNSUPPORTED_FEATURE: c_int = 4;
const UNSUPPORTED_CODEC: c_int = 3000;

/// What a libheif error means for the file: nothing (success), a machine without an HEVC decoder
/// (libheif 1.17 and later ship it as a plugin package of its own), or a file we cannot decode.
fn refusal(error: &HeifError) -> Option<ImageError> {
    match (error.code, error.subcode) {
        (0, _) => None,
        (UNSUPPORTED_FEATURE, UNSUPPORTED_CODEC) => Some(ImageError::NoHeifDecoder(format!(
            "libheif has no decoder for the photo's codec: {}",
            message(error)
        ))),
        _ => Some(ImageError::Corrupt(format!(
            "cannot decode the HEIF image: {}",
            message(error)
        ))),
    }
}

/// The text of a libheif error (copied: it may live in the context).
fn message(error: &HeifError) -> String {
    if error.message.is_null() {
        return format!("error {}.{}", error.code, error.subcode);
    }
    // SAFETY: libheif's messages are NUL-terminated strings that live at least as long as the
    // context that produced them, which is still alive here.
    unsafe { CStr::from_ptr(error.message) }
        .to_string_lossy()
        .into_owned()
}

struct Context(Ptr, &'static Libheif);

impl Context {
    fn new(heif: &'static Libheif) -> Result<Context, ImageError> {
        // SAFETY: plain allocation; freed by drop.
        let context = unsafe { (heif.context_alloc)() };
        if context.is_null() {
            return Err(ImageError::Corrupt(
                "libheif could not allocate a context".into(),
            ));
        }
        Ok(Context(context, heif))
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: allocated by heif_context_alloc, freed once.
        unsafe { (self.1.context_free)(self.0) }
    }
}

struct Handle(Ptr, &'static Libheif);

impl Handle {
    /// The first Exif block of the image, if it has a readable one.
    fn exif(&self) -> Option<Vec<u8>> {
        let heif = self.1;
        let mut id = 0u32;
        let filter = c"Exif";
        // SAFETY: a valid handle; room for one id.
        let found = unsafe { (heif.metadata_block_ids)(self.0, filter.as_ptr(), &mut id, 1) };
        if found < 1 {
            return None;
        }
        // SAFETY: a valid handle and an id it listed.
        let size = unsafe { (heif.metadata_size)(self.0, id) };
        if size == 0 || size > MAX_EXIF_BYTES {
            return None;
        }
        let mut data = vec![0u8; size];
        // SAFETY: `data` holds the `size` bytes libheif reported for this block.
        let error = unsafe { (heif.get_metadata)(self.0, id, data.as_mut_ptr().cast()) };
        (error.code == 0).then_some(data)
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: obtained from libheif, released once.
            unsafe { (self.1.handle_release)(self.0) }
        }
    }
}

struct Image(Ptr, &'static Libheif);

impl Image {
    /// The decoded interleaved RGB plane, copied row by row (libheif pads rows to its stride).
    fn to_rgb(&self, width: u32, height: u32) -> Result<RgbImage, ImageError> {
        let heif = self.1;
        if self.0.is_null() {
            return Err(ImageError::Corrupt("libheif decoded no image".into()));
        }
        // SAFETY: a decoded image; the interleaved channel exists for RGB chroma.
        let (w, h) = unsafe {
            (
                (heif.image_get_width)(self.0, HEIF_CHANNEL_INTERLEAVED),
                (heif.image_get_height)(self.0, HEIF_CHANNEL_INTERLEAVED),
            )
        };
        if (i64::from(w), i64::from(h)) != (i64::from(width), i64::from(height)) {
            return Err(ImageError::Corrupt(format!(
                "the HEIF image decoded to {w}×{h} pixels, not the {width}×{height} it declares"
            )));
        }
        let mut stride: c_int = 0;
        // SAFETY: as above; libheif writes the row stride.
        let plane = unsafe {
            (heif.image_get_plane_readonly)(self.0, HEIF_CHANNEL_INTERLEAVED, &mut stride)
        };
        let row = width as usize * 3;
        let stride = usize::try_from(stride).unwrap_or(0);
        if plane.is_null() || stride < row {
            return Err(ImageError::Corrupt("libheif returned no RGB plane".into()));
        }
        let mut rgb = Vec::with_capacity(row * height as usize);
        for y in 0..height as usize {
            // SAFETY: the plane holds `height` rows of `stride` bytes, each starting with
            // `width` RGB pixels; it lives as long as `self`.
            let line = unsafe { std::slice::from_raw_parts(plane.add(y * stride), row) };
            rgb.extend_from_slice(line);
        }
        RgbImage::from_raw(width, height, rgb)
            .ok_or_else(|| ImageError::Corrupt("the HEIF image's pixels do not fit".into()))
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: obtained from heif_decode_image, released once.
            unsafe { (self.1.image_release)(self.0) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(code: c_int, subcode: c_int) -> HeifError {
        HeifError {
            code,
            subcode,
            message: std::ptr::null(),
        }
    }

    #[test]
    fn a_missing_hevc_plugin_says_what_to_install_and_other_errors_refuse_the_file() {
        assert!(refusal(&error(0, 0)).is_none());
        let missing = refusal(&error(UNSUPPORTED_FEATURE, UNSUPPORTED_CODEC)).unwrap();
        assert!(
            matches!(missing, ImageError::NoHeifDecoder(_)),
            "{missing:?}"
        );
        assert!(
            missing.to_string().contains("libheif-plugin-libde265"),
            "{missing}"
        );
        let cut = refusal(&error(2, 100)).unwrap();
        assert!(matches!(cut, ImageError::Corrupt(_)), "{cut:?}");
    }

    fn sized(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut out = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(payload);
        out
    }

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let mut payload = major.to_vec();
        payload.extend_from_slice(&[0, 0, 0, 0]);
        for brand in compatible {
            payload.extend_from_slice(*brand);
        }
        sized(b"ftyp", &payload)
    }

    #[test]
    fn heif_brands_are_recognised_and_avif_and_others_are_not() {
        assert!(is_heif(&ftyp(b"heic", &[b"mif1", b"heic"])));
        assert!(is_heif(&ftyp(b"mif1", &[b"heic"])));
        assert!(is_heif(&ftyp(b"heix", &[])));
        assert!(!is_heif(&ftyp(b"avif", &[b"mif1", b"miaf"])));
        assert!(!is_heif(&ftyp(b"isom", &[b"mp41"])), "an MP4 video");
        assert!(!is_heif(b"\xff\xd8\xff\xe0 a JPEG"));
        assert!(!is_heif(&[]));
        let mut lying = ftyp(b"heic", &[]);
        lying[3] = 200; // a size past the end of the file
        assert!(!is_heif(&lying));
    }

    /// A HEIF-like file whose `ipco` holds the given property boxes.
    fn with_properties(properties: &[Vec<u8>]) -> Vec<u8> {
        let ipco = sized(b"ipco", &properties.concat());
        let iprp = sized(b"iprp", &ipco);
        let mut meta = vec![0, 0, 0, 0];
        meta.extend_from_slice(&sized(b"hdlr", &[0; 24]));
        meta.extend_from_slice(&iprp);
        let mut file = ftyp(b"heic", &[b"mif1"]);
        file.extend_from_slice(&sized(b"meta", &meta));
        file.extend_from_slice(&sized(b"mdat", &[1, 2, 3]));
        file
    }

    #[test]
    fn rotations_and_mirrors_in_the_container_are_found() {
        let ispe = sized(b"ispe", &[0; 12]);
        assert!(!has_container_transform(&with_properties(
            std::slice::from_ref(&ispe)
        )));
        assert!(has_container_transform(&with_properties(&[
            ispe.clone(),
            sized(b"irot", &[1])
        ])));
        assert!(has_container_transform(&with_properties(&[
            sized(b"imir", &[0]),
            ispe
        ])));
        // Garbage and truncations are "no transform", never a panic.
        let file = with_properties(&[sized(b"irot", &[1])]);
        for cut in 0..file.len() {
            let _ = has_container_transform(&file[..cut]);
        }
        assert!(!has_container_transform(b"not a heif file at all"));
    }

    #[test]
    fn exif_orientation_is_read_with_or_without_the_exif_prefix() {
        let tiff: &[u8] = b"MM\0\x2a\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0\0\0\0\0";
        let mut bare = 0u32.to_be_bytes().to_vec();
        bare.extend_from_slice(tiff);
        assert_eq!(exif_orientation(&bare), Some(Orientation::Rotate90));
        let mut prefixed = 6u32.to_be_bytes().to_vec();
        prefixed.extend_from_slice(b"Exif\0\0");
        prefixed.extend_from_slice(tiff);
        assert_eq!(exif_orientation(&prefixed), Some(Orientation::Rotate90));
        assert_eq!(exif_orientation(&u32::MAX.to_be_bytes()), None);
        assert_eq!(exif_orientation(&[0, 0]), None);
    }
}

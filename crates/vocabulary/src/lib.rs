//! The words every layer of AttendanSee shares — error kinds, decision reasons, assignment
//! sources, upload outcomes, job kinds — as plain enums, each with one explicit name.
//!
//! The worker protocol, the store, the services and the API all spell a kind the same way, and
//! always through [`as_str`](ErrorKind::as_str) / [`FromStr`](std::str::FromStr) (or serde,
//! which uses the same names), never through `Debug`.

use std::fmt;

/// A name that no variant of `what` has (read from storage or from another process).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {} '{}'", self.what, self.name)
    }
}

impl std::error::Error for UnknownName {}

impl Reason {
    /// Whether this reason says the face itself is too poor to recognise (rather than what
    /// matching found): such a face is never assigned automatically nor clustered.
    pub const fn is_poor_quality(self) -> bool {
        matches!(self, Reason::TooSmall | Reason::Blurred | Reason::Profile)
    }
}

/// Declares an enum whose variants each have one name: `ALL`, `as_str`, `Display`, `FromStr`
/// and serde all use it, so the name written is always the name read back.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident as $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        $vis enum $name {
            $( $(#[$vmeta])* #[serde(rename = $text)] $variant, )+
        }

        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name stored, sent and shown for this variant.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownName;

            fn from_str(name: &str) -> Result<Self, UnknownName> {
                match name {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(UnknownName { what: $what, name: name.to_owned() }),
                }
            }
        }
    };
}

named_enum! {
    /// What went wrong, in terms every layer shares: a worker's job error, the face engine's
    /// error, a service's error. The API turns each into its `error_type` (HTTP-only types such
    /// as `MethodNotAllowed` are not here: nothing below the API can produce them).
    pub enum ErrorKind as "error kind" {
        /// The request's content is not acceptable (a bad field, an unknown model name…).
        ValidationError = "ValidationError",
        /// No or bad credentials.
        Unauthorized = "Unauthorized",
        /// Allowed only to another role.
        Forbidden = "Forbidden",
        /// No such object, or one that belongs to someone else.
        NotFound = "NotFound",
        /// Clashes with existing data.
        Conflict = "Conflict",
        /// Larger than accepted (a worker refusing a frame, an upload over its limit).
        PayloadTooLarge = "PayloadTooLarge",
        /// Not an image we can decode, or too large in pixels.
        UnsupportedImage = "UnsupportedImage",
        /// A face was required and there is none.
        NoFaceDetected = "NoFaceDetected",
        /// One person was required and several faces of similar size are there.
        MultipleFaces = "MultipleFaces",
        /// A known model whose weights are not installed, or no workers at all.
        ModelNotAvailable = "ModelNotAvailable",
        /// A model's output dimension differs from its catalog entry.
        DimensionMismatch = "DimensionMismatch",
        /// The worker handling the job died.
        WorkerCrashed = "WorkerCrashed",
        /// The worker handling the job took too long and was stopped.
        WorkerTimeout = "WorkerTimeout",
        /// Too much work is queued; try again later.
        Overloaded = "Overloaded",
        /// Too many attempts from this client or for this account.
        TooManyRequests = "TooManyRequests",
        /// The database or blob storage cannot take the request now; nothing was changed.
        StorageUnavailable = "StorageUnavailable",
        /// Anything else; the cause is in the log.
        Internal = "Internal",
    }
}

named_enum! {
    /// Why automatic assignment did what it did to a face.
    pub enum Reason as "decision reason" {
        /// The face was assigned to its best student.
        Matched = "matched",
        /// Nothing to compare with: the gallery is empty, or the face's vector has the wrong
        /// dimension for it.
        NoStudents = "no_students",
        /// Even the best student is below the similarity threshold.
        BelowThreshold = "below_threshold",
        /// The best student does not lead the runner-up by the margin.
        Ambiguous = "ambiguous",
        /// The face's best student went to another face of the same photo.
        Conflict = "conflict",
        /// Too few pixels to recognise reliably: kept and shown, never assigned automatically.
        TooSmall = "too_small",
        /// Too blurred to recognise reliably: kept and shown, never assigned automatically.
        Blurred = "blurred",
        /// Turned too far sideways to recognise reliably: kept and shown, never assigned
        /// automatically.
        Profile = "profile",
    }
}

named_enum! {
    /// Who put a student on a face (or a status on an attendance row).
    pub enum Source as "assignment source" {
        /// An instructor, by hand: never overwritten by automatic work.
        Manual = "manual",
        /// Automatic assignment.
        Auto = "auto",
        /// An instructor naming a cluster of unknown faces.
        Cluster = "cluster",
    }
}

named_enum! {
    /// What became of one uploaded file.
    pub enum UploadStatus as "upload status" {
        /// Stored (and, for reference photos, enrolled).
        Stored = "stored",
        /// The same bytes are already there; nothing new was stored.
        Duplicate = "duplicate",
        /// Refused; the item's error says why. (Named `error` on the wire, as the API always had it.)
        Failed = "error",
    }
}

named_enum! {
    /// The kinds of background job.
    pub enum JobKind as "job kind" {
        /// Detect, crop and embed a session's photos, then assign and cluster.
        ProcessSession = "process_session",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T>(all: &[T])
    where
        T: Copy + PartialEq + fmt::Debug + fmt::Display + std::str::FromStr + serde::Serialize,
        T::Err: fmt::Debug,
    {
        for &v in all {
            let name = v.to_string();
            assert_eq!(name.parse::<T>().unwrap(), v);
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::Value::String(name)
            );
        }
    }

    #[test]
    fn every_name_reads_back_as_its_variant_in_text_and_json() {
        round_trips(ErrorKind::ALL);
        round_trips(Reason::ALL);
        round_trips(Source::ALL);
        round_trips(UploadStatus::ALL);
        round_trips(JobKind::ALL);
    }

    #[test]
    fn an_unknown_name_is_an_error_that_names_it() {
        let error = "Nope".parse::<ErrorKind>().unwrap_err();
        assert_eq!(error.to_string(), "unknown error kind 'Nope'");
    }
}

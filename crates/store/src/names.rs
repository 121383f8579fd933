//! Where the shared vocabulary's enums meet their TEXT columns, in both directions.
//!
//! A name is written as the variant's `as_str()` (bound as a parameter, never spelled in SQL)
//! and read back only through [`decode`] here. A name no variant has can only come from a bug or
//! a hand-edited database, so it is [`StoreError::Corrupt`] for the caller, never a panic and
//! never a row quietly left out.

use std::str::FromStr;

use attendansee_vocabulary::UnknownName;

use crate::{Result, StoreError};

/// The variant a name column holds.
pub(crate) fn decode<T: FromStr<Err = UnknownName>>(name: &str) -> Result<T> {
    name.parse()
        .map_err(|UnknownName { what, name }| StoreError::Corrupt { what, name })
}

/// The variant a nullable name column holds, if any.
pub(crate) fn decode_optional<T: FromStr<Err = UnknownName>>(
    name: Option<&str>,
) -> Result<Option<T>> {
    name.map(decode).transpose()
}

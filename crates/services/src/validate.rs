//! Checks for user-supplied text fields, shared by every resource: the API and the services both
//! take names, codes and titles from people.

use crate::{ServiceError, ServiceResult};

/// A required text field, trimmed: non-empty, at most `max_chars`, no control characters.
pub fn text(field: &str, value: &str, max_chars: usize) -> ServiceResult<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(ServiceError::invalid_field(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if value.chars().count() > max_chars {
        return Err(ServiceError::invalid_field(
            field,
            format!("{field} must be at most {max_chars} characters"),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(ServiceError::invalid_field(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(value.to_owned())
}

/// An optional text field: absent, null or blank all mean "none".
pub fn optional_text(
    field: &str,
    value: Option<&str>,
    max_chars: usize,
) -> ServiceResult<Option<String>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(value) => text(field, value, max_chars).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded_and_unicode_counts_characters() {
        assert_eq!(
            text("name", "  Zoë Ångström  ", 20).unwrap(),
            "Zoë Ångström"
        );
        assert_eq!(text("name", "日本語", 3).unwrap(), "日本語");
        assert!(text("name", "日本語", 2).is_err());
        assert!(text("name", "   ", 10).is_err());
        assert!(text("name", "a\u{0}b", 10).is_err());
        assert_eq!(optional_text("x", Some("  "), 5).unwrap(), None);
        assert_eq!(optional_text("x", None, 5).unwrap(), None);
    }
}

//! Where the relational data lives, as configured: a SQLite file in the data directory (the
//! default) or a PostgreSQL server named by a `postgres://` URL.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::{DB_FILE_NAME, Result, StoreError};

#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    /// The SQLite file (one server per data directory).
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (several nodes may share it).
    Postgres(String),
}

impl DatabaseLocation {
    /// The configured `url`, or with none the SQLite file in `data_dir`. `sqlite://PATH` names a
    /// SQLite file elsewhere; any other scheme is refused.
    pub fn resolve(url: Option<&str>, data_dir: &Path) -> Result<Self> {
        let Some(url) = url.map(str::trim).filter(|url| !url.is_empty()) else {
            return Ok(Self::Sqlite(data_dir.join(DB_FILE_NAME)));
        };
        let scheme = url.split_once("://").map(|(scheme, _)| scheme);
        match scheme {
            Some("postgres" | "postgresql") => Ok(Self::Postgres(url.to_owned())),
            Some("sqlite") => Ok(Self::Sqlite(PathBuf::from(&url["sqlite://".len()..]))),
            _ => Err(StoreError::UnsupportedDatabaseUrl(redact(url))),
        }
    }

    /// Whether several servers may use this database at once (no data-directory lock applies).
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }
}

/// Shown without the password, so that it can be logged and printed in errors.
impl fmt::Display for DatabaseLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

impl fmt::Debug for DatabaseLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseLocation({self})")
    }
}

/// `url` with the password of its user info (if any) and of a `password=` query parameter
/// (which libpq and sqlx also read) replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_owned(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_is_the_sqlite_file_in_the_data_directory_and_unknown_schemes_are_refused() {
        let dir = Path::new("/srv/data");
        assert_eq!(
            DatabaseLocation::resolve(None, dir).unwrap(),
            DatabaseLocation::Sqlite(dir.join(DB_FILE_NAME))
        );
        assert_eq!(
            DatabaseLocation::resolve(Some(" "), dir).unwrap(),
            DatabaseLocation::Sqlite(dir.join(DB_FILE_NAME))
        );
        let pg = DatabaseLocation::resolve(Some("postgres://a:secret@db:5432/x"), dir).unwrap();
        assert!(pg.is_shared());
        assert_eq!(pg.to_string(), "postgres://a:***@db:5432/x");
        assert!(!format!("{pg:?}").contains("secret"));
        assert_eq!(
            DatabaseLocation::resolve(Some("sqlite:///tmp/a.db"), dir).unwrap(),
            DatabaseLocation::Sqlite("/tmp/a.db".into())
        );
        let error = DatabaseLocation::resolve(Some("mysql://u:pw@h/db"), dir)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("mysql://u:***@h/db") && !error.contains("pw@"),
            "{error}"
        );
    }

    #[test]
    fn a_url_without_a_password_is_shown_as_it_is() {
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db?user=u"), "postgres://h/db?user=u");
        assert_eq!(redact("postgres://u:p@h"), "postgres://u:***@h");
    }

    #[test]
    fn a_password_in_the_query_is_hidden_too() {
        assert_eq!(
            redact("postgres://h/db?user=u&password=secret&sslmode=disable"),
            "postgres://h/db?user=u&password=***&sslmode=disable"
        );
        assert_eq!(
            redact("postgres://u:pw@h/db?password=secret"),
            "postgres://u:***@h/db?password=***"
        );
        let shown = DatabaseLocation::Postgres("postgres://h?password=secret".into()).to_string();
        assert!(!shown.contains("secret"), "{shown}");
    }
}

//! Accounts: the rules for usernames and passwords, and the account operations the API and the
//! CLI share (the CLI creates the first admin without a server).

use attendansee_store::{ApiToken, IssuedToken, Page, Paged, Role, Store, User, UserUpdate};

use crate::{ServiceError, ServiceResult};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// The form a username is stored and looked up in: NFKC (a full-width `ｉｎｓｔ１` is `inst1`),
/// then lower case, so that `Inst1` and `inst1` are one user.
pub fn normalize_username(username: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    username.nfkc().collect::<String>().to_lowercase()
}

/// Checks a new username: 1–150 characters of letters, digits and `.@+-_` (Django's rule), and
/// returns it normalized (see [`normalize_username`]).
pub fn check_username(username: &str) -> Result<String, String> {
    let username = normalize_username(username);
    let ok_chars = username
        .chars()
        .all(|c| c.is_alphanumeric() || "@.+-_".contains(c));
    if username.is_empty() || username.chars().count() > 150 || !ok_chars {
        return Err("username must be 1 to 150 letters, digits or @.+-_".into());
    }
    Ok(username)
}

/// Passwords attackers try first; refused whatever their length (compared in lower case).
const COMMON_PASSWORDS: &[&str] = &[
    "password",
    "password1",
    "password12",
    "password123",
    "password1234",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "12345678",
    "123456789",
    "1234567890",
    "0123456789",
    "87654321",
    "11111111",
    "00000000",
    "12341234",
    "11223344",
    "qwertyui",
    "qwerty12",
    "qwerty123",
    "qwertyuiop",
    "1q2w3e4r",
    "1qaz2wsx",
    "zaq12wsx",
    "asdfghjk",
    "asdf1234",
    "abcd1234",
    "abc12345",
    "aaaaaaaa",
    "iloveyou",
    "letmein1",
    "welcome1",
    "welcome123",
    "admin123",
    "administrator",
    "changeme",
    "sunshine",
    "princess",
    "football",
    "baseball",
    "superman",
    "trustno1",
    "starwars",
    "whatever",
    "computer",
    "internet",
    "attendansee",
    "teacher1",
    "student1",
    "university",
    "school123",
];

/// Checks a new password: at least [`MIN_PASSWORD_CHARS`] characters, not only whitespace, not
/// the username, not one of the commonest passwords.
pub fn check_password(password: &str, username: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "password must be at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.trim().is_empty() {
        return Err("password must not be only spaces".into());
    }
    let lower = password.to_lowercase();
    if normalize_username(password) == normalize_username(username) {
        return Err("password must not be the username".into());
    }
    if COMMON_PASSWORDS.contains(&lower.as_str()) {
        return Err("this password is among the most common ones; choose another".into());
    }
    Ok(())
}

/// Longest token label, in characters.
pub const TOKEN_LABEL_MAX: usize = 100;

/// Checks a token's label (1 to [`TOKEN_LABEL_MAX`] characters once trimmed) and returns it trimmed.
pub fn check_token_label(label: &str) -> ServiceResult<&str> {
    let label = label.trim();
    if label.is_empty() || label.chars().count() > TOKEN_LABEL_MAX {
        return Err(ServiceError::invalid_field(
            "label",
            format!("label must be 1 to {TOKEN_LABEL_MAX} characters"),
        ));
    }
    Ok(label)
}

/// Only an admin manages accounts.
pub fn require_admin(actor: &User) -> ServiceResult<()> {
    if actor.role == Role::Admin {
        Ok(())
    } else {
        Err(ServiceError::forbidden("This action needs the admin role"))
    }
}

/// Account operations on a store: what the API's account routes and the CLI's `users` command
/// do. The CLI builds one on the store alone (it needs no blobs or workers).
#[derive(Clone, Copy)]
pub struct Accounts<'a> {
    store: &'a Store,
}

impl<'a> Accounts<'a> {
    pub fn new(store: &'a Store) -> Self {
        Self { store }
    }

    /// Creates an account after checking its username and password (the name is stored normalized).
    pub async fn create(&self, username: &str, password: &str, role: Role) -> ServiceResult<User> {
        let username =
            check_username(username).map_err(|m| ServiceError::invalid_field("username", m))?;
        check_password(password, &username)
            .map_err(|m| ServiceError::invalid_field("password", m))?;
        Ok(self.store.create_user(&username, password, role).await?)
    }

    /// The account of a username as typed (any case or width).
    pub async fn find(&self, username: &str) -> ServiceResult<Option<User>> {
        Ok(self
            .store
            .find_user_by_name(&normalize_username(username))
            .await?)
    }

    /// Every account, a page at a time (admin only).
    pub async fn list(&self, actor: &User, page: Page) -> ServiceResult<Paged<User>> {
        require_admin(actor)?;
        Ok(self.store.list_users(page).await?)
    }

    /// One account (admin only).
    pub async fn get(&self, actor: &User, id: i64) -> ServiceResult<User> {
        require_admin(actor)?;
        Ok(self.store.get_user(id).await?)
    }

    /// Creates an account on behalf of an admin.
    pub async fn create_as(
        &self,
        actor: &User,
        username: &str,
        password: &str,
        role: Role,
    ) -> ServiceResult<User> {
        require_admin(actor)?;
        self.create(username, password, role).await
    }

    /// Changes an account's role, active flag or password (admin only; nobody deactivates or demotes
    /// their own account, so an installation always keeps an admin who can log in).
    pub async fn update(&self, actor: &User, id: i64, update: UserUpdate) -> ServiceResult<User> {
        require_admin(actor)?;
        if id == actor.id && (update.active == Some(false) || update.role == Some(Role::Instructor))
        {
            return Err(ServiceError::validation(
                "You cannot deactivate or demote your own account",
            ));
        }
        if let Some(password) = &update.password {
            let user = self.store.get_user(id).await?;
            check_password(password, &user.username)
                .map_err(|m| ServiceError::invalid_field("password", m))?;
        }
        Ok(self.store.update_user(id, update).await?)
    }

    /// The user and token id of a live bearer token; `None` for an unknown, expired or revoked one.
    pub async fn authenticate(&self, secret: &str) -> ServiceResult<Option<(User, i64)>> {
        Ok(self.store.authenticate(secret).await?)
    }

    /// The active account of a username (as typed) and password, or `None`. The password check runs
    /// on the store's dedicated threads, a bounded number at once.
    pub async fn verify_login(
        &self,
        username: &str,
        password: &str,
    ) -> ServiceResult<Option<User>> {
        Ok(self
            .store
            .verify_login(&normalize_username(username), password)
            .await?)
    }

    /// A new token for the user, valid for `ttl`.
    pub async fn issue_token(
        &self,
        user: &User,
        label: &str,
        ttl: chrono::Duration,
    ) -> ServiceResult<IssuedToken> {
        let label = check_token_label(label)?;
        Ok(self.store.issue_token(user.id, label, ttl).await?)
    }

    /// The user's tokens (never their secrets).
    pub async fn list_tokens(&self, user: &User) -> ServiceResult<Vec<ApiToken>> {
        Ok(self.store.list_tokens(user.id).await?)
    }

    /// Revokes one of the user's tokens (another user's token is `NotFound`).
    pub async fn revoke_token(&self, user: &User, token_id: i64) -> ServiceResult<()> {
        Ok(self.store.revoke_token(user.id, token_id).await?)
    }
}

impl crate::Services {
    pub fn accounts(&self) -> Accounts<'_> {
        Accounts::new(&self.store)
    }
}

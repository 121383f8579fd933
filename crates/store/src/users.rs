//! SQL for users and API tokens.

use chrono::{DateTime, Duration, Utc};

use crate::credentials::{self, generate_token, token_digest};
use crate::error::conflict_on_unique;
use crate::{
    ApiToken, IssuedToken, Page, Paged, Result, Role, Store, StoreError, User, UserId, UserUpdate,
};

const USER_COLUMNS: &str = "id, username, role, active, created_at";
const TOKEN_COLUMNS: &str = "id, user_id, label, created_at, expires_at, last_used_at";

/// `last_used_at` is refreshed at most this often, so that reads do not all turn into writes.
const LAST_USED_RESOLUTION: Duration = Duration::seconds(60);

#[derive(sqlx::FromRow)]
struct TokenLookup {
    token_id: i64,
    expires_at: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
    user_id: UserId,
}

impl Store {
    /// Creates a user; the password is hashed with argon2id before it reaches the database.
    pub async fn create_user(&self, username: &str, password: &str, role: Role) -> Result<User> {
        with_pool!(self, pool => {
            let password = password.to_owned();
            let hash = self
                .password_work(move || credentials::hash_password(&password))
                .await??;
            let sql = format!(
                "INSERT INTO users (username, password_hash, role, active, created_at)
                 VALUES ($1, $2, $3, TRUE, $4) RETURNING {USER_COLUMNS}"
            );
            let mut tx = begin_write(pool).await?;
            let user = sqlx::query_as::<_, User>(&sql)
                .bind(username)
                .bind(hash)
                .bind(role)
                .bind(Utc::now())
                .fetch_one(&mut *tx)
                .await
                .map_err(conflict_on_unique(|| {
                    format!("a user named '{username}' already exists")
                }))?;
            tx.commit().await?;
            Ok(user)
        })
    }

    pub async fn count_users(&self) -> Result<i64> {
        with_pool!(self, pool => {
            Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await?)
        })
    }

    pub async fn get_user(&self, id: UserId) -> Result<User> {
        with_pool!(self, pool => {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1");
            sqlx::query_as::<_, User>(&sql)
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound { entity: "User", id })
        })
    }

    pub async fn find_user_by_name(&self, username: &str) -> Result<Option<User>> {
        with_pool!(self, pool => {
            let sql = format!("SELECT {USER_COLUMNS} FROM users WHERE username = $1");
            Ok(sqlx::query_as::<_, User>(&sql)
                .bind(username)
                .fetch_optional(pool)
                .await?)
        })
    }

    pub async fn list_users(&self, page: Page) -> Result<Paged<User>> {
        with_pool!(self, pool => {
            let total = self.count_users().await?;
            let sql = format!("SELECT {USER_COLUMNS} FROM users ORDER BY id LIMIT $1 OFFSET $2");
            let items = sqlx::query_as::<_, User>(&sql)
                .bind(page.limit())
                .bind(page.offset())
                .fetch_all(pool)
                .await?;
            Ok(Paged { total, items })
        })
    }

    /// Applies an admin's changes to a user. Deactivating a user or changing their password
    /// revokes all their tokens in the same transaction.
    pub async fn update_user(&self, id: UserId, update: UserUpdate) -> Result<User> {
        with_pool!(self, pool => {
            let hash = match update.password {
                Some(password) => Some(
                    self.password_work(move || credentials::hash_password(&password))
                        .await??,
                ),
                None => None,
            };
            let mut tx = begin_write(pool).await?;
            // Locked until the commit: what is not changed is written back as read, so another
            // admin's change made meanwhile must be read, not undone.
            let current =
                sqlx::query_as::<_, User>(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = $1{FOR_UPDATE}"))
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .ok_or(StoreError::NotFound { entity: "User", id })?;
            let active = update.active.unwrap_or(current.active);
            let sql = format!(
                "UPDATE users SET role = $1, active = $2, password_hash = COALESCE($3, password_hash)
                 WHERE id = $4 RETURNING {USER_COLUMNS}"
            );
            let user = sqlx::query_as::<_, User>(&sql)
                .bind(update.role.unwrap_or(current.role))
                .bind(active)
                .bind(&hash)
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            if !active || hash.is_some() {
                sqlx::query(
                    "UPDATE api_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
                )
                .bind(Utc::now())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(user)
        })
    }

    /// Renames users whose stored name is not in `normalize`d form (accounts from before names
    /// were normalized: SQLite's `lower()` in migration 0007 folds only ASCII), unless that would
    /// merge two accounts. Returns the names left as they are because of such a clash.
    pub async fn normalize_usernames(
        &self,
        normalize: impl Fn(&str) -> String,
    ) -> Result<Vec<String>> {
        with_pool!(self, pool => {
            let users: Vec<(UserId, String)> = sqlx::query_as("SELECT id, username FROM users")
                .fetch_all(pool)
                .await?;
            let mut taken: std::collections::HashSet<String> =
                users.iter().map(|(_, name)| name.clone()).collect();
            let mut clashes = Vec::new();
            for (id, name) in users {
                let normalized = normalize(&name);
                if normalized == name {
                    continue;
                }
                if taken.contains(&normalized) {
                    clashes.push(name);
                    continue;
                }
                let mut tx = begin_write(pool).await?;
                sqlx::query("UPDATE users SET username = $1 WHERE id = $2")
                    .bind(&normalized)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                taken.insert(normalized);
            }
            Ok(clashes)
        })
    }

    /// The active user with this username and password, or `None` (never saying which part was wrong).
    pub async fn verify_login(&self, username: &str, password: &str) -> Result<Option<User>> {
        with_pool!(self, pool => {
            let row: Option<(String, bool)> =
                sqlx::query_as("SELECT password_hash, active FROM users WHERE username = $1")
                    .bind(username)
                    .fetch_optional(pool)
                    .await?;
            let password = password.to_owned();
            let verified = self
                .password_work(move || match row {
                    Some((hash, active)) => credentials::verify_password(&password, &hash) && active,
                    None => {
                        credentials::verify_against_dummy(&password);
                        false
                    }
                })
                .await?;
            if verified {
                self.find_user_by_name(username).await
            } else {
                Ok(None)
            }
        })
    }

    /// Issues a new token for `user_id`, valid for `ttl`.
    pub async fn issue_token(
        &self,
        user_id: UserId,
        label: &str,
        ttl: Duration,
    ) -> Result<IssuedToken> {
        with_pool!(self, pool => {
            let secret = generate_token();
            let now = Utc::now();
            let sql = format!(
                "INSERT INTO api_tokens (user_id, token_hash, label, created_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5) RETURNING {TOKEN_COLUMNS}"
            );
            let mut tx = begin_write(pool).await?;
            let token = sqlx::query_as::<_, ApiToken>(&sql)
                .bind(user_id)
                .bind(token_digest(&secret))
                .bind(label)
                .bind(now)
                .bind(now + ttl)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(IssuedToken { token, secret })
        })
    }

    /// The user a presented token belongs to, with the token's id; `None` for an unknown,
    /// expired or revoked token, or an inactive user.
    pub async fn authenticate(&self, secret: &str) -> Result<Option<(User, i64)>> {
        with_pool!(self, pool => {
            let lookup = sqlx::query_as::<_, TokenLookup>(
                "SELECT t.id AS token_id, t.expires_at, t.revoked_at, t.last_used_at, t.user_id
                 FROM api_tokens t WHERE t.token_hash = $1",
            )
            .bind(token_digest(secret))
            .fetch_optional(pool)
            .await?;
            let now = Utc::now();
            let Some(lookup) = lookup.filter(|t| t.revoked_at.is_none() && t.expires_at > now) else {
                return Ok(None);
            };
            let user = self.get_user(lookup.user_id).await?;
            if !user.active {
                return Ok(None);
            }
            if lookup
                .last_used_at
                .is_none_or(|at| now - at > LAST_USED_RESOLUTION)
            {
                // Bookkeeping only: a read must still work when the disk is full, so a failure here
                // is logged rather than failing the request.
                if let Err(error) = sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(lookup.token_id)
                    .execute(pool)
                    .await
                {
                    tracing::warn!(%error, token = lookup.token_id, "cannot record a token's last use");
                }
            }
            Ok(Some((user, lookup.token_id)))
        })
    }

    /// A user's tokens that are neither revoked nor expired, newest first.
    pub async fn list_tokens(&self, user_id: UserId) -> Result<Vec<ApiToken>> {
        with_pool!(self, pool => {
            let sql = format!(
                "SELECT {TOKEN_COLUMNS} FROM api_tokens
                 WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id DESC"
            );
            let now = Utc::now();
            let tokens = sqlx::query_as::<_, ApiToken>(&sql)
                .bind(user_id)
                .fetch_all(pool)
                .await?;
            Ok(tokens.into_iter().filter(|t| t.expires_at > now).collect())
        })
    }

    /// Revokes one of `user_id`'s tokens; another user's token is "not found".
    pub async fn revoke_token(&self, user_id: UserId, token_id: i64) -> Result<()> {
        with_pool!(self, pool => {
            let revoked = sqlx::query(
                "UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
            )
            .bind(Utc::now())
            .bind(token_id)
            .bind(user_id)
            .execute(pool)
            .await?
            .rows_affected();
            if revoked == 0 {
                return Err(StoreError::NotFound {
                    entity: "Token",
                    id: token_id,
                });
            }
            Ok(())
        })
    }
}

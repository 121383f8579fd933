//! SQL for background jobs: create, claim (a queued job, or a running one whose lease ran out),
//! lease renewal, progress and finish (only by the lease's holder), cancel, and recovery after a
//! restart of the one SQLite node.

use attendansee_vocabulary::JobKind;
use chrono::{DateTime, Utc};

use crate::scope::Table;
use crate::{
    JobLease, JobRecord, JobStatus, LeaseState, Page, Paged, Result, Scope, SessionStatus, Store,
    StoreError, StoredJobKind, UserId, names,
};

const JOB_COLUMNS: &str = "j.id, j.kind, j.payload, j.status, j.done, j.total, j.error, j.errors, j.stats, j.course_id, j.created_by, j.created_at, \
     j.started_at, j.finished_at, j.lease_owner, j.lease_expires_at, j.attempts";
/// A job without a course is visible to admins only.
const JOBS: Table = Table {
    entity: "Job",
    from: "jobs j LEFT JOIN courses c ON c.id = j.course_id",
    id: "j.id",
};

/// A job as its row holds it, before the kind is read as a [`JobKind`].
#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: i64,
    kind: String,
    payload: String,
    status: JobStatus,
    done: i64,
    total: i64,
    error: Option<String>,
    errors: String,
    stats: String,
    course_id: Option<i64>,
    created_by: Option<UserId>,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    lease_owner: Option<String>,
    lease_expires_at: Option<DateTime<Utc>>,
    attempts: i64,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;

    fn try_from(r: JobRow) -> Result<Self> {
        Ok(JobRecord {
            id: r.id,
            kind: match names::decode(&r.kind) {
                Ok(kind) => StoredJobKind::Known(kind),
                Err(_) => StoredJobKind::Unknown(r.kind),
            },
            payload: r.payload,
            status: r.status,
            done: r.done,
            total: r.total,
            error: r.error,
            errors: r.errors,
            stats: r.stats,
            course_id: r.course_id,
            created_by: r.created_by,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            lease_owner: r.lease_owner,
            lease_expires_at: r.lease_expires_at,
            attempts: r.attempts,
        })
    }
}

impl Store {
    /// Queues a job, unless one of the same kind and payload is already queued or running, in
    /// which case that one is returned (`false`).
    pub async fn queue_job(
        &self,
        kind: JobKind,
        payload: &str,
        course_id: i64,
        created_by: UserId,
        total: i64,
    ) -> Result<(JobRecord, bool)> {
        // On PostgreSQL another node may queue the same job between the check and the insert:
        // the partial unique index `jobs_one_active` refuses the second, which then finds the
        // first on its next round.
        for _ in 0..3 {
            let queued = with_pool!(self, pool => {
                let mut tx = begin_write(pool).await?;
                let existing = sqlx::query_as::<_, JobRow>(&format!(
                    "SELECT {JOB_COLUMNS} FROM jobs j WHERE j.kind = $1 AND j.payload = $2 AND j.status IN ('queued', 'running')"
                ))
                .bind(kind.as_str())
                .bind(payload)
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(job) = existing {
                    return Ok((job.try_into()?, false));
                }
                let inserted = sqlx::query_as::<_, JobRow>(&format!(
                    "INSERT INTO jobs (kind, payload, status, done, total, course_id, created_by, created_at)
                     VALUES ($1, $2, 'queued', 0, $3, $4, $5, $6) RETURNING {}",
                    JOB_COLUMNS.replace("j.", "")
                ))
                .bind(kind.as_str())
                .bind(payload)
                .bind(total)
                .bind(course_id)
                .bind(created_by)
                .bind(Utc::now())
                .fetch_one(&mut *tx)
                .await;
                match inserted {
                    Ok(job) => {
                        tx.commit().await?;
                        Some(job)
                    }
                    Err(sqlx::Error::Database(error)) if error.is_unique_violation() => None,
                    Err(error) => return Err(error.into()),
                }
            });
            if let Some(job) = queued {
                return Ok((job.try_into()?, true));
            }
        }
        Err(StoreError::Conflict(
            "the same job was queued and finished concurrently; try again".into(),
        ))
    }

    /// Takes the next job for `lease`'s node and marks it running, held until the lease runs out;
    /// `None` when there is none. A job is free to take when it is queued, or running under a
    /// lease that has expired (its node stopped renewing it: it died); those come first. Among
    /// queued jobs users take turns: the next is the oldest of the user whose last job started
    /// longest ago (or who has never had one), so one user's many queued sessions do not hold up
    /// everyone else's. On PostgreSQL the candidate is locked with `SKIP LOCKED`: nodes claiming
    /// at once each get another job, none waits for another's claim.
    ///
    /// A job of a kind this version does not know is failed on the spot, with why, and the next
    /// one is taken: nobody could ever run it, and left queued it would be claimed forever.
    pub async fn claim_job(&self, lease: &JobLease) -> Result<Option<JobRecord>> {
        let until = lease_end(lease)?;
        with_pool!(self, pool => {
        let mut tx = begin_write(pool).await?;
        loop {
            let Some(row) = claim_next(&mut tx, &lease.owner, until).await? else {
                tx.commit().await?;
                return Ok(None);
            };
            let id = row.id;
            let job = JobRecord::try_from(row)?;
            if let StoredJobKind::Unknown(name) = &job.kind {
                let error = format!("unknown job kind '{name}': this version cannot run it");
                tracing::error!(job = id, %error, "cannot run a job");
                sqlx::query(
                    "UPDATE jobs SET status = $1, error = $2, finished_at = $3, lease_expires_at = NULL WHERE id = $4",
                )
                .bind(JobStatus::Failed)
                .bind(error)
                .bind(Utc::now())
                .bind(id)
                .execute(&mut *tx)
                .await?;
                continue;
            }
            tx.commit().await?;
            return Ok(Some(job));
        }
        })
    }

    /// Pushes the lease of a job its node is still working on forward by the lease's duration.
    /// Anything but [`LeaseState::Held`] tells the node to stop: the job was cancelled, or
    /// another node took it over after the lease had expired.
    pub async fn renew_job_lease(&self, id: i64, lease: &JobLease) -> Result<LeaseState> {
        let until = lease_end(lease)?;
        let renewed = with_pool!(self, pool => {
            sqlx::query(
                "UPDATE jobs SET lease_expires_at = $1 WHERE id = $2 AND lease_owner = $3 AND status = 'running'",
            )
            .bind(until)
            .bind(id)
            .bind(&lease.owner)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if renewed == 1 {
            return Ok(LeaseState::Held);
        }
        self.job_lease_state(id, &lease.owner).await
    }

    /// Whether `owner` still holds job `id` (a deleted job is lost).
    pub async fn job_lease_state(&self, id: i64, owner: &str) -> Result<LeaseState> {
        let row: Option<(JobStatus, Option<String>)> = with_pool!(self, pool => {
            sqlx::query_as("SELECT status, lease_owner FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        Ok(match row {
            Some((status, Some(holder))) if holder == owner => match status {
                JobStatus::Running => LeaseState::Held,
                JobStatus::Cancelled => LeaseState::Cancelled,
                _ => LeaseState::Lost,
            },
            _ => LeaseState::Lost,
        })
    }

    /// Marks `session` `processing` for job `id`, only while `owner` holds the job running;
    /// `false` (nothing written) otherwise. A node that lost the job's lease (cut off from the
    /// database for longer than a lease) must not write over the status the new holder left,
    /// `processed` say, which nothing would ever set back.
    pub async fn mark_session_processing(
        &self,
        session: i64,
        id: i64,
        owner: &str,
    ) -> Result<bool> {
        with_pool!(self, pool => {
            let written = sqlx::query(
                "UPDATE sessions SET status = $1 WHERE id = $2
                 AND EXISTS (SELECT 1 FROM jobs WHERE id = $3 AND lease_owner = $4 AND status = 'running')",
            )
            .bind(SessionStatus::Processing)
            .bind(session)
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(written == 1)
        })
    }

    pub async fn job_status(&self, id: i64) -> Result<JobStatus> {
        with_pool!(self, pool => {
            sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound { entity: "Job", id })
        })
    }

    /// Progress of a running job held by `owner`; `errors` is the JSON list of per-item errors
    /// so far and `stats` the JSON object of timings. `false` (nothing written) when `owner` no
    /// longer holds it running: a node that lost its lease never overwrites the new holder's
    /// progress.
    pub async fn job_progress(
        &self,
        id: i64,
        owner: &str,
        (done, total): (i64, i64),
        errors: &str,
        stats: &str,
    ) -> Result<bool> {
        with_pool!(self, pool => {
            let written = sqlx::query(
                "UPDATE jobs SET done = $1, total = $2, errors = $3, stats = $4
                 WHERE id = $5 AND status = 'running' AND lease_owner = $6",
            )
            .bind(done)
            .bind(total)
            .bind(errors)
            .bind(stats)
            .bind(id)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected();
            Ok(written == 1)
        })
    }

    /// Ends a job held by `owner` with `status` (a cancelled one stays cancelled) and sets its
    /// session's status, in one transaction. `false` (nothing written) when another node holds
    /// the job now: its end, and the session's, are that node's to record.
    pub async fn finish_job(
        &self,
        id: i64,
        owner: &str,
        (status, error): (JobStatus, Option<&str>),
        session: Option<(i64, SessionStatus)>,
    ) -> Result<bool> {
        with_pool!(self, pool => {
            let mut tx = begin_write(pool).await?;
            // The job's row is written first, which locks it (PostgreSQL) until the commit: a
            // node taking the job over meanwhile waits, then finds it finished.
            let ended = sqlx::query(
                "UPDATE jobs SET status = CASE WHEN status = 'running' THEN $1 ELSE status END,
                     error = CASE WHEN status = 'running' THEN $2 ELSE error END,
                     finished_at = CASE WHEN status = 'running' THEN $3 ELSE finished_at END,
                     lease_expires_at = NULL
                 WHERE id = $4 AND lease_owner = $5 AND status IN ('running', 'cancelled')",
            )
            .bind(status)
            .bind(error)
            .bind(Utc::now())
            .bind(id)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if ended == 0 {
                return Ok(false);
            }
            if let Some((session, status)) = session {
                sqlx::query("UPDATE sessions SET status = $1 WHERE id = $2")
                    .bind(status)
                    .bind(session)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Cancels a queued or running job; a finished one is a conflict. `session` is the session
    /// the job processes: a running job's live holder sets its status when it sees the
    /// cancellation, but a job nobody holds (queued, or its node died and its lease ran out)
    /// has nobody to, so a `processing` session is set back to `open` here, in the same
    /// transaction.
    pub async fn cancel_job(
        &self,
        scope: Scope,
        id: i64,
        session: Option<i64>,
    ) -> Result<JobRecord> {
        with_pool!(self, pool => {
            let job = self.get_job(scope, id).await?;
            if job.status.is_finished() {
                return Err(StoreError::Conflict(format!(
                    "job {id} has already finished"
                )));
            }
            let now = Utc::now();
            let mut tx = begin_write(pool).await?;
            // Written first, which locks the job's row: a node claiming or renewing it waits.
            let unheld: Option<bool> = sqlx::query_scalar(
                "UPDATE jobs SET status = 'cancelled', finished_at = $1
                 WHERE id = $2 AND status IN ('queued', 'running')
                 RETURNING (lease_expires_at IS NULL OR lease_expires_at < $1)",
            )
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            if let (Some(true), Some(session)) = (unheld, session) {
                sqlx::query("UPDATE sessions SET status = $1 WHERE id = $2 AND status = $3")
                    .bind(SessionStatus::Open)
                    .bind(session)
                    .bind(SessionStatus::Processing)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            self.get_job(scope, id).await
        })
    }

    pub async fn get_job(&self, scope: Scope, id: i64) -> Result<JobRecord> {
        self.get_visible::<JobRow>(&JOBS, JOB_COLUMNS, scope, id)
            .await?
            .try_into()
    }

    /// Jobs visible in `scope`, newest first.
    pub async fn list_jobs(&self, scope: Scope, page: Page) -> Result<Paged<JobRecord>> {
        let page = self
            .list_visible::<JobRow>(
                &JOBS,
                JOB_COLUMNS,
                scope,
                crate::scope::Filter::default(),
                "j.id DESC",
                page,
            )
            .await?;
        Ok(Paged {
            total: page.total,
            items: page
                .items
                .into_iter()
                .map(JobRecord::try_from)
                .collect::<Result<_>>()?,
        })
    }

    /// At the start of the only node (SQLite, under the data-directory lock, so no other node
    /// can hold a lease): jobs left running by the previous process are queued again at once,
    /// not after their leases run out (their work is idempotent: they resume where they
    /// stopped). Returns how many. Never called on a shared database, where those jobs may be
    /// other nodes' live ones.
    pub async fn requeue_interrupted_jobs(&self) -> Result<u64> {
        with_pool!(self, pool => {
            Ok(sqlx::query(
                "UPDATE jobs SET status = 'queued', lease_owner = NULL, lease_expires_at = NULL WHERE status = 'running'",
            )
            .execute(pool)
            .await?
            .rows_affected())
        })
    }
}

/// When a lease taken or renewed now ends. The nodes' clocks are compared through it: they must
/// agree to well within a lease (NTP does).
fn lease_end(lease: &JobLease) -> Result<DateTime<Utc>> {
    let duration = chrono::Duration::from_std(lease.duration)
        .map_err(|_| StoreError::Invalid(format!("job lease too long: {:?}", lease.duration)))?;
    Ok(Utc::now() + duration)
}

per_backend! {
    /// Marks the next free job running under `owner`'s lease until `until` (see
    /// [`Store::claim_job`] for the order) and returns it. SQLite compares the timestamps as it
    /// stores them, RFC 3339 text in UTC, whose order is the order of time. The creator's last
    /// start is looked up with `=` (index `jobs_creator_started`; PostgreSQL cannot use an index
    /// for `IS NOT DISTINCT FROM`), jobs of deleted users apart.
    pub(crate) async fn claim_next(
        tx: &mut Conn,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<Option<JobRow>> {
        Ok(sqlx::query_as::<_, JobRow>(&format!(
            "UPDATE jobs SET status = 'running', started_at = COALESCE(started_at, $1),
                     lease_owner = $2, lease_expires_at = $3, attempts = attempts + 1
                 WHERE id = (
                     SELECT q.id FROM jobs q
                     WHERE q.status = 'queued'
                        OR (q.status = 'running'
                            AND (q.lease_expires_at IS NULL OR q.lease_expires_at < $1))
                     ORDER BY q.status = 'queued',
                              CASE WHEN q.created_by IS NULL
                                   THEN (SELECT MAX(s.started_at) FROM jobs s
                                         WHERE s.created_by IS NULL)
                                   ELSE (SELECT MAX(s.started_at) FROM jobs s
                                         WHERE s.created_by = q.created_by)
                              END NULLS FIRST,
                              q.id
                     LIMIT 1{SKIP_LOCKED})
                 RETURNING {}",
            JOB_COLUMNS.replace("j.", "")
        ))
        .bind(Utc::now())
        .bind(owner)
        .bind(until)
        .fetch_optional(tx)
        .await?)
    }
}

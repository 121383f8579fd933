//! SQL for background jobs: create, claim, progress, finish, cancel, and recovery after a restart.

use attendansee_vocabulary::JobKind;
use chrono::{DateTime, Utc};

use crate::scope::Table;
use crate::{
    JobRecord, JobStatus, Page, Paged, Result, Scope, Store, StoreError, StoredJobKind, UserId,
    names,
};

const JOB_COLUMNS: &str = "j.id, j.kind, j.payload, j.status, j.done, j.total, j.error, j.errors, j.stats, j.course_id, j.created_by, j.created_at, \
     j.started_at, j.finished_at";
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

    /// Takes the next queued job and marks it running; `None` when there is none. Users take
    /// turns: the next job is the oldest of the user whose last job started longest ago (or who
    /// has never had one), so one user's many queued sessions do not hold up everyone else's.
    ///
    /// A job of a kind this version does not know is failed on the spot, with why, and the next
    /// one is taken: nobody could ever run it, and left queued it would be claimed forever.
    pub async fn claim_job(&self) -> Result<Option<JobRecord>> {
        with_pool!(self, pool => {
        let mut tx = begin_write(pool).await?;
        loop {
            let Some(row) = claim_next(&mut tx).await? else {
                tx.commit().await?;
                return Ok(None);
            };
            let id = row.id;
            let job = JobRecord::try_from(row)?;
            if let StoredJobKind::Unknown(name) = &job.kind {
                let error = format!("unknown job kind '{name}': this version cannot run it");
                tracing::error!(job = id, %error, "cannot run a job");
                sqlx::query(
                    "UPDATE jobs SET status = $1, error = $2, finished_at = $3 WHERE id = $4",
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

    pub async fn job_status(&self, id: i64) -> Result<JobStatus> {
        with_pool!(self, pool => {
            sqlx::query_scalar("SELECT status FROM jobs WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .ok_or(StoreError::NotFound { entity: "Job", id })
        })
    }

    /// Progress of a running job; `errors` is the JSON list of per-item errors so far and
    /// `stats` the JSON object of timings.
    pub async fn job_progress(
        &self,
        id: i64,
        done: i64,
        total: i64,
        errors: &str,
        stats: &str,
    ) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE jobs SET done = $1, total = $2, errors = $3, stats = $4 WHERE id = $5 AND status = 'running'")
                .bind(done)
                .bind(total)
                .bind(errors)
                .bind(stats)
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Ends a running job (a cancelled one stays cancelled).
    pub async fn finish_job(&self, id: i64, status: JobStatus, error: Option<&str>) -> Result<()> {
        with_pool!(self, pool => {
            sqlx::query("UPDATE jobs SET status = $1, error = $2, finished_at = $3 WHERE id = $4 AND status = 'running'")
                .bind(status)
                .bind(error)
                .bind(Utc::now())
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Cancels a queued or running job; a finished one is a conflict.
    pub async fn cancel_job(&self, scope: Scope, id: i64) -> Result<JobRecord> {
        with_pool!(self, pool => {
            let job = self.get_job(scope, id).await?;
            if job.status.is_finished() {
                return Err(StoreError::Conflict(format!(
                    "job {id} has already finished"
                )));
            }
            sqlx::query("UPDATE jobs SET status = 'cancelled', finished_at = $1 WHERE id = $2 AND status IN ('queued', 'running')")
                .bind(Utc::now())
                .bind(id)
                .execute(pool)
                .await?;
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

    /// After a restart: jobs left running by the previous process are queued again (their work
    /// is idempotent, so they resume where they stopped). Returns how many.
    pub async fn requeue_interrupted_jobs(&self) -> Result<u64> {
        with_pool!(self, pool => {
            Ok(
                sqlx::query("UPDATE jobs SET status = 'queued' WHERE status = 'running'")
                    .execute(pool)
                    .await?
                    .rows_affected(),
            )
        })
    }
}

per_backend! {
    /// Marks the next queued job running (see [`Store::claim_job`] for the order) and returns it.
    pub(crate) async fn claim_next(tx: &mut Conn) -> Result<Option<JobRow>> {
        Ok(sqlx::query_as::<_, JobRow>(&format!(
            "UPDATE jobs SET status = 'running', started_at = $1
                 WHERE id = (
                     SELECT q.id FROM jobs q WHERE q.status = 'queued'
                     ORDER BY (SELECT MAX(s.started_at) FROM jobs s
                               WHERE s.created_by IS NOT DISTINCT FROM q.created_by
                                 AND s.started_at IS NOT NULL) NULLS FIRST,
                              q.id
                     LIMIT 1)
                   AND status = 'queued'
                 RETURNING {}",
            JOB_COLUMNS.replace("j.", "")
        ))
        .bind(Utc::now())
        .fetch_optional(tx)
        .await?)
    }
}

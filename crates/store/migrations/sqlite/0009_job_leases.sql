-- Several server nodes share one queue: a running job is held by the node that claimed it
-- (`lease_owner`, a random id per process start) until `lease_expires_at`, which that node keeps
-- pushing forward while it works. A running job whose lease has expired is claimed again by any
-- node. `attempts` counts the claims.
ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
ALTER TABLE jobs ADD COLUMN lease_expires_at TEXT;
ALTER TABLE jobs ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
-- Claiming orders the free jobs by when their creator's last job started: one index lookup per
-- candidate instead of a scan of the creator's jobs.
CREATE INDEX jobs_creator_started ON jobs(created_by, started_at);

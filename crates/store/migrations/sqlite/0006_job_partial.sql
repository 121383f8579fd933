-- A job whose photos partly failed ends 'partial' (SQLite cannot alter a CHECK: rebuild the table).
CREATE TABLE jobs_new (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL, -- JSON
    status      TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'partial', 'failed', 'cancelled')),
    done        INTEGER NOT NULL DEFAULT 0,
    total       INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    created_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT,
    course_id   INTEGER REFERENCES courses(id) ON DELETE CASCADE,
    errors      TEXT NOT NULL DEFAULT '[]', -- JSON [{"item", "error_type", "error"}]
    stats       TEXT NOT NULL DEFAULT '{}'
);
INSERT INTO jobs_new (id, kind, payload, status, done, total, error, created_by, created_at, started_at,
                      finished_at, course_id, errors, stats)
    SELECT id, kind, payload, status, done, total, error, created_by, created_at, started_at,
           finished_at, course_id, errors, stats FROM jobs;
DROP TABLE jobs;
ALTER TABLE jobs_new RENAME TO jobs;
CREATE INDEX jobs_status ON jobs(status);
CREATE INDEX jobs_course ON jobs(course_id);

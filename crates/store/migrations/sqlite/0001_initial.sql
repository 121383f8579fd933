-- The whole domain of DESIGN.md §3. SQLite dialect; timestamps are RFC 3339 text written by sqlx.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('admin', 'instructor')),
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    TEXT NOT NULL
);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash   TEXT NOT NULL UNIQUE,
    label        TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    last_used_at TEXT,
    revoked_at   TEXT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE courses (
    id              INTEGER PRIMARY KEY,
    owner_id        INTEGER NOT NULL REFERENCES users(id),
    name            TEXT NOT NULL,
    code            TEXT NOT NULL,
    embedding_model TEXT,
    created_at      TEXT NOT NULL,
    UNIQUE (owner_id, code)
);

CREATE TABLE students (
    id          INTEGER PRIMARY KEY,
    course_id   INTEGER NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    external_id TEXT,
    created_at  TEXT NOT NULL,
    UNIQUE (course_id, external_id)
);
CREATE INDEX students_course ON students(course_id);

-- A student's reference faces come from enrollment photos.
CREATE TABLE reference_photos (
    id         INTEGER PRIMARY KEY,
    student_id INTEGER NOT NULL REFERENCES students(id) ON DELETE CASCADE,
    blob_key   TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    width      INTEGER NOT NULL,
    height     INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (student_id, sha256)
);

CREATE TABLE sessions (
    id         INTEGER PRIMARY KEY,
    course_id  INTEGER NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    title      TEXT NOT NULL,
    held_at    TEXT NOT NULL,
    status     TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'processing', 'processed', 'failed')),
    created_at TEXT NOT NULL
);
CREATE INDEX sessions_course ON sessions(course_id);

CREATE TABLE session_images (
    id            INTEGER PRIMARY KEY,
    session_id    INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    blob_key      TEXT NOT NULL,
    sha256        TEXT NOT NULL,
    original_name TEXT,
    width         INTEGER NOT NULL,
    height        INTEGER NOT NULL,
    status        TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processed', 'failed')),
    error         TEXT,
    created_at    TEXT NOT NULL,
    UNIQUE (session_id, sha256)
);

CREATE TABLE clusters (
    id                   INTEGER PRIMARY KEY,
    course_id            INTEGER NOT NULL REFERENCES courses(id) ON DELETE CASCADE,
    suggested_student_id INTEGER REFERENCES students(id) ON DELETE SET NULL,
    created_at           TEXT NOT NULL
);

-- A face found in a session image or in a student's reference photo (exactly one of the two).
CREATE TABLE face_crops (
    id                 INTEGER PRIMARY KEY,
    image_id           INTEGER REFERENCES session_images(id) ON DELETE CASCADE,
    reference_photo_id INTEGER REFERENCES reference_photos(id) ON DELETE CASCADE,
    bbox_x             REAL NOT NULL,
    bbox_y             REAL NOT NULL,
    bbox_w             REAL NOT NULL,
    bbox_h             REAL NOT NULL,
    landmarks          TEXT NOT NULL, -- JSON [[x, y] × 5]
    det_score          REAL NOT NULL,
    quality_size       REAL,
    quality_blur       REAL,
    crop_blob_key      TEXT,
    student_id         INTEGER REFERENCES students(id) ON DELETE SET NULL,
    assignment_source  TEXT CHECK (assignment_source IN ('manual', 'auto', 'cluster')),
    confidence         REAL,
    cluster_id         INTEGER REFERENCES clusters(id) ON DELETE SET NULL,
    not_a_student      BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         TEXT NOT NULL,
    CHECK ((image_id IS NULL) <> (reference_photo_id IS NULL))
);
CREATE INDEX face_crops_image ON face_crops(image_id);
CREATE INDEX face_crops_reference ON face_crops(reference_photo_id);
CREATE INDEX face_crops_cluster ON face_crops(cluster_id);

CREATE TABLE face_embeddings (
    id         INTEGER PRIMARY KEY,
    crop_id    INTEGER NOT NULL REFERENCES face_crops(id) ON DELETE CASCADE,
    model_name TEXT NOT NULL,
    dimension  INTEGER NOT NULL,
    vector     BLOB NOT NULL, -- little-endian f32 × dimension, L2-normalised
    created_at TEXT NOT NULL,
    UNIQUE (crop_id, model_name)
);

CREATE TABLE attendance (
    id         INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    student_id INTEGER NOT NULL REFERENCES students(id) ON DELETE CASCADE,
    status     TEXT NOT NULL CHECK (status IN ('present', 'absent', 'unknown')),
    source     TEXT NOT NULL CHECK (source IN ('auto', 'manual')),
    updated_at TEXT NOT NULL,
    UNIQUE (session_id, student_id)
);

CREATE TABLE attendance_evidence (
    attendance_id INTEGER NOT NULL REFERENCES attendance(id) ON DELETE CASCADE,
    crop_id       INTEGER NOT NULL REFERENCES face_crops(id) ON DELETE CASCADE,
    PRIMARY KEY (attendance_id, crop_id)
);

CREATE TABLE jobs (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL, -- JSON
    status      TEXT NOT NULL CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    done        INTEGER NOT NULL DEFAULT 0,
    total       INTEGER NOT NULL DEFAULT 0,
    error       TEXT,
    created_by  INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL,
    started_at  TEXT,
    finished_at TEXT
);
CREATE INDEX jobs_status ON jobs(status);

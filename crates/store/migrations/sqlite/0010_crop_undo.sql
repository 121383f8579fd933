-- The assignment a face had before a person's last correction (assign, not a student, reset,
-- naming its group), so that the correction can be undone: one level, one row per face.
-- A student or group deleted meanwhile is forgotten here too (the face comes back without it).
CREATE TABLE crop_undo (
    crop_id              INTEGER PRIMARY KEY REFERENCES face_crops(id) ON DELETE CASCADE,
    student_id           INTEGER REFERENCES students(id) ON DELETE SET NULL,
    assignment_source    TEXT,
    confidence           REAL,
    cluster_id           INTEGER REFERENCES clusters(id) ON DELETE SET NULL,
    not_a_student        BOOLEAN NOT NULL,
    match_model          TEXT,
    match_reason         TEXT,
    best_student_id      INTEGER REFERENCES students(id) ON DELETE SET NULL,
    best_similarity      REAL,
    runner_up_student_id INTEGER REFERENCES students(id) ON DELETE SET NULL,
    runner_up_similarity REAL
);

-- Recognition (DESIGN.md §7): why each automatic decision was made, per-course overrides of the
-- model's calibrated thresholds, and clusters that a person edited (kept by re-clustering).

ALTER TABLE courses ADD COLUMN match_threshold REAL;
ALTER TABLE courses ADD COLUMN match_margin REAL;

-- The last automatic decision about a crop, kept whatever it decided so the UI can explain it.
ALTER TABLE face_crops ADD COLUMN match_model TEXT;
ALTER TABLE face_crops ADD COLUMN match_reason TEXT;
ALTER TABLE face_crops ADD COLUMN best_student_id INTEGER REFERENCES students(id) ON DELETE SET NULL;
ALTER TABLE face_crops ADD COLUMN best_similarity REAL;
ALTER TABLE face_crops ADD COLUMN runner_up_student_id INTEGER REFERENCES students(id) ON DELETE SET NULL;
ALTER TABLE face_crops ADD COLUMN runner_up_similarity REAL;
CREATE INDEX face_crops_student ON face_crops(student_id);

ALTER TABLE clusters ADD COLUMN model_name TEXT NOT NULL DEFAULT '';
ALTER TABLE clusters ADD COLUMN suggested_similarity REAL;
-- Merged or otherwise edited by hand: a full re-cluster keeps its members together.
ALTER TABLE clusters ADD COLUMN locked BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX clusters_course ON clusters(course_id);

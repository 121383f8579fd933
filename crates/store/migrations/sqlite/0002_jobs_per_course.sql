-- Jobs belong to a course (so ownership applies to them) and keep their per-item errors.
ALTER TABLE jobs ADD COLUMN course_id INTEGER REFERENCES courses(id) ON DELETE CASCADE;
ALTER TABLE jobs ADD COLUMN errors TEXT NOT NULL DEFAULT '[]'; -- JSON [{"item", "error_type", "error"}]
CREATE INDEX jobs_course ON jobs(course_id);
CREATE INDEX session_images_session ON session_images(session_id);

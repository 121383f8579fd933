-- Where a job's time went: JSON {"photos", "faces", "decode_ms", "detect_ms", "align_ms", "embed_ms"}.
ALTER TABLE jobs ADD COLUMN stats TEXT NOT NULL DEFAULT '{}';

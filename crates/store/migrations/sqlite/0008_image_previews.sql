-- A processed photo's preview (long side at most 1600 px, JPEG), made by the worker that
-- processed it; NULL until then.
ALTER TABLE session_images ADD COLUMN preview_blob_key TEXT;

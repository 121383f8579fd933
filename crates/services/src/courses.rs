//! Courses, their students and their sessions: the operations that are more than one row —
//! deletions, which also erase every file the deleted rows pointed to.

use attendansee_store::Scope;

use crate::{ServiceResult, Services};

impl Services {
    /// Deletes a course with everything in it, then its files.
    pub async fn delete_course(&self, scope: Scope, id: i64) -> ServiceResult<()> {
        let blobs = self.store.delete_course(scope, id).await?;
        self.delete_blobs(blobs).await;
        Ok(())
    }

    /// Deletes a student with their reference photos (faces assigned to them become unknown).
    pub async fn delete_student(&self, scope: Scope, id: i64) -> ServiceResult<()> {
        let blobs = self.store.delete_student(scope, id).await?;
        self.delete_blobs(blobs).await;
        Ok(())
    }

    /// Deletes a session with its photos and faces, then their files.
    pub async fn delete_session(&self, scope: Scope, id: i64) -> ServiceResult<()> {
        let blobs = self.store.delete_session(scope, id).await?;
        self.delete_blobs(blobs).await;
        Ok(())
    }
}

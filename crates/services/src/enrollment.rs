//! Enrollment: a student's reference photos. Each photo must show one clear face — the largest;
//! a photo with none, or with two faces of similar size, is refused — and that face's embedding
//! joins the student's prototype set.

use attendansee_pool::Lane;
use attendansee_pool::protocol::DetectedFace;
use attendansee_recognition::OneFace;
use attendansee_store::{NewReference, ReferencePhoto, Scope, User, blob_keys};
use attendansee_vocabulary::{ErrorKind, UploadStatus};

use crate::error::nothing_stored_for_storage;
use crate::faces::new_crop;
use crate::uploads::Upload;
use crate::{PhotoFaces, ServiceError, ServiceResult, Services};

/// What became of one enrollment photo.
#[derive(Debug)]
pub struct EnrollOutcome {
    pub file: Option<String>,
    /// `Stored` or `Failed`.
    pub status: UploadStatus,
    pub reference: Option<ReferencePhoto>,
    pub error: Option<ServiceError>,
}

impl Services {
    /// The recognizer a student's course enrolls with, checked to be installed: before any
    /// upload is read, so a request that cannot succeed is refused at once.
    pub async fn enrollment_model(&self, actor: &User, student_id: i64) -> ServiceResult<String> {
        let student = self.store.get_student(actor.scope(), student_id).await?;
        let course = self
            .store
            .get_course(actor.scope(), student.course_id)
            .await?;
        let model = self.course_model(&course);
        self.check_recognizer("model_name", &model)?;
        Ok(model)
    }

    /// Enrolls reference photos of a student with `model` (from [`Self::enrollment_model`]).
    /// Each file gets its own outcome; a refused photo does not stop the others. When storage
    /// failed and no photo was stored, the whole request is `StorageUnavailable`.
    pub async fn enroll(
        &self,
        actor: &User,
        student_id: i64,
        model: &str,
        uploads: Vec<Upload>,
    ) -> ServiceResult<Vec<EnrollOutcome>> {
        let mut outcomes = Vec::with_capacity(uploads.len());
        for upload in uploads {
            let file = upload.name.clone();
            outcomes.push(
                match self.enroll_one(actor, student_id, model, &upload).await {
                    Ok(reference) => EnrollOutcome {
                        file,
                        status: UploadStatus::Stored,
                        reference: Some(reference),
                        error: None,
                    },
                    Err(e) => EnrollOutcome {
                        file,
                        status: UploadStatus::Failed,
                        reference: None,
                        error: Some(e),
                    },
                },
            );
        }
        let files = outcomes
            .iter()
            .map(|o| (o.status == UploadStatus::Stored, o.error.as_ref()));
        match nothing_stored_for_storage(files) {
            Some(e) => Err(e),
            None => Ok(outcomes),
        }
    }

    /// Finds the photo's faces in a worker, keeps the largest, stores the photo and its face.
    async fn enroll_one(
        &self,
        actor: &User,
        student_id: i64,
        model: &str,
        upload: &Upload,
    ) -> ServiceResult<ReferencePhoto> {
        upload.require_content()?;
        let bytes = upload.read().await?;
        let PhotoFaces {
            width,
            height,
            faces,
            ..
        } = self
            .detect_and_embed(bytes, model, true, Lane::batch(actor.id))
            .await?;
        let mut face = the_one_face(faces)?;
        let sha256 = upload.sha256.clone();
        let photo_key = blob_keys::reference_photo(student_id, &sha256);
        let crop_key = blob_keys::reference_face(student_id, &sha256);
        self.blobs.put_file(&photo_key, upload.path()).await?;
        // Recorded only when stored: a key without its blob would fail every later re-embedding.
        let crop_blob_key = match face.crop_jpeg.take() {
            Some(jpeg) => match self.blobs.put(&crop_key, jpeg.into()).await {
                Ok(()) => Some(crop_key.clone()),
                Err(e) => {
                    self.discard_blobs(vec![photo_key]).await;
                    return Err(e.into());
                }
            },
            None => None,
        };
        let reference = NewReference {
            blob_key: photo_key.clone(),
            sha256,
            width: i64::from(width),
            height: i64::from(height),
            crop: new_crop(face, crop_blob_key, model),
        };
        match self
            .store
            .add_reference_photo(actor.scope(), student_id, &reference)
            .await
        {
            Ok(photo) => Ok(photo),
            Err(e) => {
                // A duplicate shares its keys with the photo already stored: those blobs stay.
                self.discard_blobs(vec![photo_key, crop_key]).await;
                Err(e.into())
            }
        }
    }

    /// A student's reference photos.
    pub async fn reference_photos(
        &self,
        scope: Scope,
        student_id: i64,
    ) -> ServiceResult<Vec<ReferencePhoto>> {
        Ok(self.store.list_reference_photos(scope, student_id).await?)
    }

    /// Removes a reference photo with its face and embeddings, and erases their files.
    pub async fn delete_reference_photo(&self, scope: Scope, id: i64) -> ServiceResult<()> {
        let blobs = self.store.delete_reference_photo(scope, id).await?;
        self.delete_blobs(blobs).await;
        Ok(())
    }
}

/// The face an enrollment photo is about: the largest, provided no other comes close in size.
pub fn the_one_face(mut faces: Vec<DetectedFace>) -> ServiceResult<DetectedFace> {
    let sizes: Vec<f32> = faces.iter().map(|f| f.bbox[2].min(f.bbox[3])).collect();
    match attendansee_recognition::the_one_face(&sizes) {
        OneFace::Found(index) => Ok(faces.swap_remove(index)),
        OneFace::NoFace => Err(ServiceError::new(
            ErrorKind::NoFaceDetected,
            "No face detected in the photo; use a photo where the student's face is clearly visible",
        )),
        OneFace::Ambiguous {
            faces,
            largest,
            second,
        } => Err(ServiceError::new(
            ErrorKind::MultipleFaces,
            format!(
                "The photo shows {faces} faces of similar size ({largest:.0} and {second:.0} px); use a photo of the student alone"
            ),
        )),
    }
}

//! `BlobStore` on a real S3-compatible server (moto, `tests/common/s3.rs` of the binary): put, get,
//! delete, listing below the URL's prefix, the orphan sweep and its grace for blobs just written,
//! and a store that stops answering — a storage outage (`is_unavailable`), not a missing blob.

#[path = "../../attendansee/tests/common/s3.rs"]
mod s3;

use std::time::{Duration, Instant};

use attendansee_store::{
    BlobCheckError, BlobStore, CourseFields, ImageInsert, NewImage, Role, SessionFields, Store,
    StoreError, sweep_orphan_blobs,
};
use bytes::Bytes;
use futures::TryStreamExt;
use s3::S3Server;

fn s3_blobs(s3: &S3Server, prefix: &str) -> BlobStore {
    BlobStore::from_url_with(&s3.url(prefix), s3.env()).unwrap()
}

#[tokio::test]
async fn blobs_round_trip_below_the_prefix_and_a_missing_one_is_named() {
    let Some(s3) = S3Server::start("blobs_round_trip_below_the_prefix_and_a_missing_one_is_named")
    else {
        return;
    };
    let store = s3_blobs(&s3, "school/a");
    let other = s3_blobs(&s3, "school/b");
    store
        .put("images/1/abc", Bytes::from_static(b"photo"))
        .await
        .unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), b"face").unwrap();
    store.put_file("crops/1/0.jpg", file.path()).await.unwrap();
    other
        .put("images/2/def", Bytes::from_static(b"other"))
        .await
        .unwrap();

    assert_eq!(
        store.get("images/1/abc").await.unwrap(),
        Bytes::from_static(b"photo")
    );
    assert_eq!(
        store.get("crops/1/0.jpg").await.unwrap(),
        Bytes::from_static(b"face")
    );
    // The objects are where the URL says, and each store lists only its own prefix.
    assert_eq!(
        s3.keys("school/"),
        [
            "school/a/crops/1/0.jpg",
            "school/a/images/1/abc",
            "school/b/images/2/def"
        ]
    );
    let mut keys: Vec<String> = store.keys().try_collect().await.unwrap();
    keys.sort();
    assert_eq!(keys, ["crops/1/0.jpg", "images/1/abc"]);
    store.check().await.unwrap();

    store.delete("images/1/abc").await.unwrap();
    store.delete("images/1/abc").await.unwrap();
    let err = store.get("images/1/abc").await.unwrap_err();
    assert!(matches!(err, StoreError::BlobNotFound { .. }), "{err}");
    assert!(!err.is_unavailable());
    assert_eq!(
        s3.keys("school/"),
        ["school/a/crops/1/0.jpg", "school/b/images/2/def"]
    );
}

#[tokio::test]
async fn the_sweep_lists_the_prefix_and_spares_referenced_and_recent_blobs() {
    let Some(s3) =
        S3Server::start("the_sweep_lists_the_prefix_and_spares_referenced_and_recent_blobs")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db.sqlite3")).await.unwrap();
    let owner = store
        .create_user("alice", "password-a", Role::Instructor)
        .await
        .unwrap();
    let course = store
        .create_course(
            owner.id,
            &CourseFields {
                name: "Course".into(),
                code: "C1".into(),
                embedding_model: None,
                match_threshold: None,
                match_margin: None,
            },
        )
        .await
        .unwrap();
    let session = store
        .create_session(
            owner.scope(),
            course.id,
            &SessionFields {
                title: "W1".into(),
                held_at: chrono::Utc::now(),
            },
        )
        .await
        .unwrap();
    let recorded = format!("images/{}/abc", session.id);
    let image = NewImage {
        blob_key: recorded.clone(),
        sha256: "abc".into(),
        original_name: None,
        width: 640,
        height: 480,
    };
    let blobs = s3_blobs(&s3, "node");
    // Another installation in the same bucket.
    s3_blobs(&s3, "elsewhere")
        .put("images/999/gone", Bytes::from_static(b"data"))
        .await
        .unwrap();
    for key in [recorded.as_str(), "images/999/gone", "crops/999/0.jpg"] {
        blobs.put(key, Bytes::from_static(b"data")).await.unwrap();
    }
    assert!(matches!(
        store
            .add_session_image(owner.scope(), session.id, &image)
            .await
            .unwrap(),
        ImageInsert::Stored(_)
    ));

    // Just written: another node may be about to record them.
    assert_eq!(blobs.sweep_grace(), Duration::from_secs(15 * 60));
    assert_eq!(
        sweep_orphan_blobs(&store, &blobs, blobs.sweep_grace())
            .await
            .unwrap(),
        0
    );
    assert_eq!(s3.keys("node/").len(), 3);
    // Once old enough, the two no row references go; the recorded one and everything outside
    // the prefix stay.
    assert_eq!(
        sweep_orphan_blobs(&store, &blobs, Duration::ZERO)
            .await
            .unwrap(),
        2
    );
    assert_eq!(s3.keys("node/"), [format!("node/{recorded}")]);
    assert_eq!(s3.keys("elsewhere/"), ["elsewhere/images/999/gone"]);
}

#[tokio::test]
async fn a_paused_server_is_an_outage_answered_within_seconds_and_service_resumes() {
    let Some(s3) =
        S3Server::start("a_paused_server_is_an_outage_answered_within_seconds_and_service_resumes")
    else {
        return;
    };
    let blobs = s3_blobs(&s3, "p");
    blobs
        .put("images/1/a", Bytes::from_static(b"kept"))
        .await
        .unwrap();

    s3.pause();
    let started = Instant::now();
    let err = blobs
        .put("images/1/b", Bytes::from_static(b"lost"))
        .await
        .unwrap_err();
    let waited = started.elapsed();
    eprintln!("a put to the paused server failed after {waited:?}");
    assert!(err.is_unavailable(), "{err:?}");
    assert!(waited < Duration::from_secs(20), "{waited:?}");
    let err = blobs.get("images/1/a").await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let started = Instant::now();
    assert!(blobs.check().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(4));

    s3.resume();
    blobs.check().await.unwrap();
    assert_eq!(
        blobs.get("images/1/a").await.unwrap(),
        Bytes::from_static(b"kept")
    );
}

#[tokio::test]
async fn a_stopped_server_is_an_outage_too() {
    // Nothing listens on this port: connections are refused at once.
    let url = "s3://bucket/prefix";
    let env = [
        ("AWS_ACCESS_KEY_ID", "k"),
        ("AWS_SECRET_ACCESS_KEY", "s"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ALLOW_HTTP", "true"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into_iter()
    .chain([(
        "AWS_ENDPOINT_URL".to_owned(),
        format!("http://127.0.0.1:{}", s3::free_port()),
    )]);
    let blobs = BlobStore::from_url_with(url, env).unwrap();
    let err = blobs.put("a", Bytes::from_static(b"x")).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(blobs.check().await.is_err());
}

#[tokio::test]
async fn a_missing_bucket_is_found_by_the_check_and_is_no_outage() {
    let Some(s3) = S3Server::start("a_missing_bucket_is_found_by_the_check_and_is_no_outage")
    else {
        return;
    };
    let missing = BlobStore::from_url_with("s3://no-such-bucket/x", s3.env()).unwrap();
    let err = missing.check().await.unwrap_err();
    assert!(matches!(err, BlobCheckError::NoBucket), "{err}");
    assert!(!err.is_outage());
    s3_blobs(&s3, "x").check().await.unwrap();
}

#[test]
fn a_blob_url_of_another_kind_is_refused_with_what_is_supported() {
    for url in ["gs://bucket/x", "/srv/blobs", "s3://", "file:///srv/blobs"] {
        let err = BlobStore::from_url_with(url, std::iter::empty()).unwrap_err();
        assert!(matches!(err, StoreError::BlobUrl { .. }), "{url}: {err}");
        assert!(err.to_string().contains("s3://bucket/prefix"), "{err}");
        assert!(!err.is_unavailable());
    }
}

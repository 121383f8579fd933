//! The store against a real SQLite file: scoping, conflicts, tokens, persistence across reopen.

use attendansee_store::{CourseFields, Page, Role, Scope, Store, StoreError, StudentFields};
use chrono::Duration;

async fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("db.sqlite3")).await.unwrap()
}

fn course(code: &str) -> CourseFields {
    CourseFields {
        name: format!("Course {code}"),
        code: code.into(),
        embedding_model: None,
    }
}

#[tokio::test]
async fn scoped_reads_and_writes_treat_foreign_objects_as_missing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let alice = store
        .create_user("alice", "password-a", Role::Instructor)
        .await
        .unwrap();
    let bob = store
        .create_user("bob", "password-b", Role::Instructor)
        .await
        .unwrap();
    let c = store
        .create_course(alice.id, &course("CS101"))
        .await
        .unwrap();

    assert_eq!(
        store.get_course(alice.scope(), c.id).await.unwrap().code,
        "CS101"
    );
    assert_eq!(store.get_course(Scope::All, c.id).await.unwrap().id, c.id);
    for result in [
        store.get_course(bob.scope(), c.id).await.map(|_| ()),
        store
            .update_course(bob.scope(), c.id, &course("X"))
            .await
            .map(|_| ()),
        store.delete_course(bob.scope(), c.id).await,
        store
            .create_student(
                bob.scope(),
                c.id,
                &StudentFields {
                    name: "Eve".into(),
                    external_id: None,
                },
            )
            .await
            .map(|_| ()),
    ] {
        assert!(
            matches!(
                result,
                Err(StoreError::NotFound {
                    entity: "Course",
                    ..
                })
            ),
            "{result:?}"
        );
    }
    assert_eq!(
        store
            .list_courses(
                bob.scope(),
                Page {
                    number: 1,
                    size: 10
                }
            )
            .await
            .unwrap()
            .total,
        0
    );
    assert_eq!(
        store
            .list_courses(
                Scope::All,
                Page {
                    number: 1,
                    size: 10
                }
            )
            .await
            .unwrap()
            .total,
        1
    );

    let s = store
        .create_student(
            alice.scope(),
            c.id,
            &StudentFields {
                name: "Ada".into(),
                external_id: Some("1".into()),
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        store.get_student(bob.scope(), s.id).await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        store.delete_student(bob.scope(), s.id).await,
        Err(StoreError::NotFound { .. })
    ));
    store.delete_student(alice.scope(), s.id).await.unwrap();
}

#[tokio::test]
async fn unique_violations_are_conflicts_and_quotes_are_just_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let alice = store
        .create_user("alice", "password-a", Role::Instructor)
        .await
        .unwrap();
    let tricky = "x'); DROP TABLE courses; --";
    store
        .create_course(alice.id, &course(tricky))
        .await
        .unwrap();
    let err = store
        .create_course(alice.id, &course(tricky))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    let err = store
        .create_user("alice", "whatever1", Role::Admin)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(
        store
            .list_courses(
                Scope::All,
                Page {
                    number: 1,
                    size: 10
                }
            )
            .await
            .unwrap()
            .items[0]
            .code,
        tricky
    );
}

#[tokio::test]
async fn tokens_authenticate_until_revoked_or_expired_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let alice = store
        .create_user("alice", "password-a", Role::Instructor)
        .await
        .unwrap();
    assert!(
        store
            .verify_login("alice", "password-a")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .verify_login("alice", "password-b")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .verify_login("nobody", "password-a")
            .await
            .unwrap()
            .is_none()
    );

    let live = store
        .issue_token(alice.id, "cli", Duration::days(1))
        .await
        .unwrap();
    let expired = store
        .issue_token(alice.id, "old", Duration::seconds(-1))
        .await
        .unwrap();
    let revoked = store
        .issue_token(alice.id, "gone", Duration::days(1))
        .await
        .unwrap();
    store
        .revoke_token(alice.id, revoked.token.id)
        .await
        .unwrap();

    assert_eq!(
        store
            .authenticate(&live.secret)
            .await
            .unwrap()
            .unwrap()
            .0
            .id,
        alice.id
    );
    assert!(store.authenticate(&expired.secret).await.unwrap().is_none());
    assert!(store.authenticate(&revoked.secret).await.unwrap().is_none());
    let listed: Vec<_> = store
        .list_tokens(alice.id)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.label)
        .collect();
    assert_eq!(listed, ["cli"]);

    store.close().await;
    let store = open(&dir).await;
    assert_eq!(
        store
            .authenticate(&live.secret)
            .await
            .unwrap()
            .unwrap()
            .0
            .username,
        "alice"
    );

    let update = attendansee_store::UserUpdate {
        active: Some(false),
        ..Default::default()
    };
    store.update_user(alice.id, update).await.unwrap();
    assert!(store.authenticate(&live.secret).await.unwrap().is_none());
    assert!(
        store
            .verify_login("alice", "password-a")
            .await
            .unwrap()
            .is_none()
    );
}

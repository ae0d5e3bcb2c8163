//! The org's last admin key cannot be deleted, even by two admins deleting each other's
//! keys at the same moment: the store below lets the other deletion land between this
//! deletion's read (two admin keys) and its write, as a concurrent request would. A
//! read-then-delete would leave the org with no admin key; the conditional transaction
//! refuses the second deletion.

#![allow(clippy::unwrap_used)] // tests fail loudly on any error

mod common;

use std::sync::{Arc, Mutex};

use arca_core::ports::item_store::{Condition, ItemStore, Page, Query, Write};
use async_trait::async_trait;
use common::Api;
use serde_json::json;

/// A store that, at the first write touching `watched`, first deletes `racer` directly:
/// the other admin's request, committed while this one was between its read and write.
struct Racing {
    inner: Arc<dyn ItemStore>,
    race: Mutex<Option<(String, String)>>,
}

impl Racing {
    async fn before_write(&self, touched: &[(&str, &str)]) {
        let fire = {
            let mut race = self.race.lock().unwrap();
            match race.as_ref() {
                Some((watched, _)) if touched.iter().any(|(_, sk)| sk == watched) => race.take(),
                _ => None,
            }
        };
        if let Some((_, racer)) = fire {
            let pk = touched[0].0;
            self.inner.delete(pk, &racer, Condition::None).await.unwrap();
        }
    }
}

#[async_trait]
impl ItemStore for Racing {
    async fn get(&self, pk: &str, sk: &str) -> arca_core::Result<Option<arca_core::ports::item_store::Item>> {
        self.inner.get(pk, sk).await
    }
    async fn put(&self, item: arca_core::ports::item_store::Item, condition: Condition) -> arca_core::Result<()> {
        self.before_write(&[(&item.pk, &item.sk)]).await;
        self.inner.put(item, condition).await
    }
    async fn delete(&self, pk: &str, sk: &str, condition: Condition) -> arca_core::Result<()> {
        self.before_write(&[(pk, sk)]).await;
        self.inner.delete(pk, sk, condition).await
    }
    async fn query(&self, query: Query) -> arca_core::Result<Page> {
        self.inner.query(query).await
    }
    async fn transact(&self, writes: Vec<Write>) -> arca_core::Result<()> {
        let touched: Vec<(String, String)> = writes
            .iter()
            .map(|w| match w {
                Write::Put { item, .. } => (item.pk.clone(), item.sk.clone()),
                Write::Delete { pk, sk, .. } | Write::Check { pk, sk, .. } => (pk.clone(), sk.clone()),
            })
            .collect();
        let refs: Vec<(&str, &str)> = touched.iter().map(|(p, s)| (p.as_str(), s.as_str())).collect();
        self.before_write(&refs).await;
        self.inner.transact(writes).await
    }
}

#[tokio::test]
async fn two_admins_deleting_each_others_keys_leave_one() {
    let dir = tempfile::tempdir().unwrap();
    let redb = Arc::new(arca_embedded::RedbItemStore::open(dir.path().join("arca.redb")).unwrap());
    let racing = Arc::new(Racing {
        inner: redb,
        race: Mutex::new(None),
    });
    let api = Api::on(racing.clone(), true, Default::default());
    let t = api.signup("race").await;
    let second = api
        .post(
            "/v1/apikeys",
            &t.admin,
            json!({ "name": "second admin", "role": "admin" }),
        )
        .await
        .expect(201);
    let second_id = second.body["id"].as_str().unwrap().to_owned();
    let keys = api.get("/v1/apikeys", &t.admin).await.expect(200);
    let first = keys.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] != second_id.as_str())
        .unwrap()
        .clone();
    let first_id = first["id"].as_str().unwrap().to_owned();

    // The second admin deletes the first key while the first admin's deletion of the
    // second key is between its read and its write.
    let sk = |id: &str| arca_core::store::keys::api_key_sk(&id.parse().unwrap());
    *racing.race.lock().unwrap() = Some((sk(&second_id), sk(&first_id)));
    let reply = api
        .delete(
            &format!("/v1/apikeys/{second_id}"),
            &t.admin,
            &format!("\"{}\"", second.body["version"]),
        )
        .await;
    assert!(racing.race.lock().unwrap().is_none(), "the race happened");
    let refused = reply.problem(409, "last_admin_key");
    assert!(refused.text.contains("last admin key"), "{}", refused.text);

    // The org keeps an admin key: the second one, which still works.
    let secret = second.body["secret"].as_str().unwrap();
    let left = api.get("/v1/apikeys", secret).await.expect(200);
    let ids = left.ids();
    assert_eq!(ids, vec![second_id.as_str()], "{}", left.text);
}

//! Each pool's schema, fetched through `SchemaReader::describe_pool` and kept for a TTL.
//! Concurrent requests for one pool share a single fetch; failures are not cached.
//! Depends on `cognito` and `schema`; used by the update service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cognito::{DirectoryError, SchemaReader};
use crate::input::{AttributeChanges, PoolId};
use crate::report::FieldError;
use crate::schema::PoolSchema;

/// How old a cached schema must be before a request naming an attribute it lacks
/// fetches it again: a custom attribute added to the pool works within this time,
/// yet unknown names cannot make attrgate call DescribeUserPool more often than this.
const RECHECK_AFTER: Duration = Duration::from_secs(30);

type Slot = Arc<tokio::sync::Mutex<Option<(Instant, Arc<PoolSchema>)>>>;

pub(crate) struct SchemaCache {
    directory: Arc<dyn SchemaReader>,
    ttl: Duration,
    recheck_after: Duration,
    slots: Mutex<HashMap<String, Slot>>,
}

impl SchemaCache {
    pub(crate) fn new(directory: Arc<dyn SchemaReader>, ttl: Duration) -> Self {
        Self {
            directory,
            ttl,
            recheck_after: RECHECK_AFTER,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// Checks the requested names against the pool's schema.
    ///
    /// # Errors
    /// The outer error: the schema could not be fetched (e.g. no such pool). The inner
    /// one: the names the pool lacks or cannot change, one field error each.
    pub(crate) async fn check(
        &self,
        pool: &PoolId,
        changes: &AttributeChanges,
    ) -> Result<Result<(), Vec<FieldError>>, DirectoryError> {
        let mut schema = self.schema(pool, self.ttl).await?;
        let lacks_a_name = changes
            .as_map()
            .keys()
            .any(|name| schema.mutability(name).is_none());
        if lacks_a_name {
            // Maybe the attribute was added to the pool since the schema was fetched.
            schema = self.schema(pool, self.recheck_after.min(self.ttl)).await?;
        }
        Ok(schema.check(pool.as_str(), changes))
    }

    /// The pool's schema, fetched if the cached one is older than `max_age`.
    ///
    /// # Errors
    /// DescribeUserPool failed; nothing is cached.
    pub(crate) async fn schema(
        &self,
        pool: &PoolId,
        max_age: Duration,
    ) -> Result<Arc<PoolSchema>, DirectoryError> {
        let slot = self
            .slots
            .lock()
            .expect("schema slots lock")
            .entry(pool.as_str().to_owned())
            .or_default()
            .clone();
        let mut cached = slot.lock().await;
        if let Some((fetched, schema)) = cached.as_ref()
            && fetched.elapsed() < max_age
        {
            return Ok(schema.clone());
        }
        match self.directory.describe_pool(pool).await {
            Ok(schema) => {
                let schema = Arc::new(schema);
                *cached = Some((Instant::now(), schema.clone()));
                Ok(schema)
            }
            Err(error) => {
                if cached.is_none() {
                    drop(cached);
                    // Pool ids that fail (e.g. do not exist) must not pile up in the map.
                    let mut slots = self.slots.lock().expect("schema slots lock");
                    if slots
                        .get(pool.as_str())
                        .is_some_and(|current| Arc::ptr_eq(current, &slot))
                        && Arc::strong_count(&slot) == 2
                    {
                        slots.remove(pool.as_str());
                    }
                }
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures_util::future::BoxFuture;

    use super::*;
    use crate::cognito::DirectoryErrorKind;
    use crate::input::Regions;
    use crate::schema::SchemaAttribute;

    /// A directory whose pool gains `custom:late` after the first DescribeUserPool.
    #[derive(Default)]
    struct FakeDirectory {
        describes: AtomicUsize,
    }

    impl SchemaReader for FakeDirectory {
        fn describe_pool<'a>(
            &'a self,
            pool_id: &'a PoolId,
        ) -> BoxFuture<'a, Result<PoolSchema, DirectoryError>> {
            let calls = self.describes.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                if pool_id.as_str() == "us-east-1_missing" {
                    return Err(DirectoryError {
                        kind: DirectoryErrorKind::PoolNotFound,
                        code: "ResourceNotFoundException".to_owned(),
                        request_id: None,
                    });
                }
                let mut attributes = vec![SchemaAttribute {
                    name: "custom:plan".to_owned(),
                    mutable: true,
                }];
                if calls > 0 {
                    attributes.push(SchemaAttribute {
                        name: "custom:late".to_owned(),
                        mutable: true,
                    });
                }
                Ok(PoolSchema::new(attributes))
            })
        }
    }

    fn cache(ttl: Duration) -> (SchemaCache, Arc<FakeDirectory>) {
        let directory = Arc::new(FakeDirectory::default());
        (SchemaCache::new(directory.clone(), ttl), directory)
    }

    fn pool(id: &str) -> PoolId {
        Regions::default().pool(id).unwrap()
    }

    fn changes(name: &str) -> AttributeChanges {
        AttributeChanges::parse(BTreeMap::from([(name.to_owned(), "v".to_owned())])).unwrap()
    }

    #[tokio::test]
    async fn a_schema_is_fetched_once_within_its_ttl() {
        // Arrange
        let (cache, directory) = cache(Duration::from_secs(300));

        // Act
        for _ in 0..5 {
            cache
                .check(&pool("us-east-1_a"), &changes("custom:plan"))
                .await
                .unwrap()
                .unwrap();
        }

        // Assert
        assert_eq!(directory.describes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_expired_schema_is_fetched_again() {
        // Arrange
        let (cache, directory) = cache(Duration::from_millis(1));
        cache
            .schema(&pool("us-east-1_a"), Duration::ZERO)
            .await
            .unwrap();

        // Act
        tokio::time::sleep(Duration::from_millis(5)).await;
        cache
            .check(&pool("us-east-1_a"), &changes("custom:plan"))
            .await
            .unwrap()
            .unwrap();

        // Assert
        assert_eq!(directory.describes.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_unknown_name_does_not_refetch_a_schema_younger_than_the_recheck_interval() {
        // Arrange: a young cached schema (first fetch) lacks custom:late.
        let (cache, directory) = cache(Duration::from_secs(300));

        // Act
        let young = cache
            .check(&pool("us-east-1_a"), &changes("custom:late"))
            .await
            .unwrap();

        // Assert
        assert!(young.is_err(), "a fresh schema is not fetched again");
        assert_eq!(directory.describes.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn an_unknown_name_refetches_a_schema_older_than_the_recheck_interval() {
        // Arrange
        let (mut cache, directory) = cache(Duration::from_secs(300));
        cache.recheck_after = Duration::ZERO;

        // Act
        let rechecked = cache
            .check(&pool("us-east-1_a"), &changes("custom:late"))
            .await
            .unwrap();

        // Assert
        assert_eq!(rechecked, Ok(()));
        assert_eq!(directory.describes.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_missing_pool_is_an_error_and_leaves_nothing_cached() {
        // Arrange
        let (cache, _directory) = cache(Duration::from_secs(300));

        // Act
        let error = cache
            .check(&pool("us-east-1_missing"), &changes("custom:plan"))
            .await
            .unwrap_err();

        // Assert
        assert_eq!(error.kind, DirectoryErrorKind::PoolNotFound);
        assert!(cache.slots.lock().unwrap().is_empty());
    }
}

//! [`ObjectStore`] on a local directory: the destination of single-machine mode.

use std::io::{ErrorKind, SeekFrom};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use arca_core::ports::{ObjectMeta, ObjectStore};
use arca_core::{Error, Result};
use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// Objects are files under `root`, at their key's path. A write goes to a temporary
/// file that is renamed into place, so a reader never sees half an object.
#[derive(Clone, Debug)]
pub struct LocalFsObjectStore {
    root: PathBuf,
}

/// Temporary files carry this suffix; listings skip them.
const PARTIAL_SUFFIX: &str = ".arca-partial";

impl LocalFsObjectStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        let relative = Path::new(key);
        let plain = !key.is_empty()
            && !key.ends_with(PARTIAL_SUFFIX)
            && relative.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(Error::invalid(
                "key",
                format!("{key:?} is not a plain relative object key"),
            ));
        }
        Ok(self.root.join(relative))
    }
}

fn io_error(err: std::io::Error, key: &str) -> Error {
    match err.kind() {
        ErrorKind::NotFound => Error::not_found(format!("object {key}")),
        ErrorKind::Interrupted | ErrorKind::TimedOut | ErrorKind::WouldBlock => Error::transient(err),
        _ => Error::permanent(err),
    }
}

#[async_trait]
impl ObjectStore for LocalFsObjectStore {
    async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        let path = self.path_of(key)?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| io_error(e, key))?;
        }
        let partial = path.with_file_name(format!(
            "{}.{}{PARTIAL_SUFFIX}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("object"),
            ulid::Ulid::new()
        ));
        // `tokio::fs::write` would copy the body first (16 MiB per repository pack, in
        // whichever runtime thread's malloc arena): write from the shared buffer instead.
        let write_to = partial.clone();
        tokio::task::spawn_blocking(move || std::fs::write(&write_to, &body))
            .await
            .map_err(Error::permanent)?
            .map_err(|e| io_error(e, key))?;
        tokio::fs::rename(&partial, &path).await.map_err(|e| io_error(e, key))
    }

    async fn get(&self, key: &str) -> Result<Bytes> {
        let path = self.path_of(key)?;
        tokio::fs::read(&path)
            .await
            .map(Bytes::from)
            .map_err(|e| io_error(e, key))
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path_of(key)?;
        let mut file = tokio::fs::File::open(&path).await.map_err(|e| io_error(e, key))?;
        file.seek(SeekFrom::Start(range.start))
            .await
            .map_err(|e| io_error(e, key))?;
        let len = range.end.saturating_sub(range.start);
        let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        file.take(len)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| io_error(e, key))?;
        Ok(Bytes::from(buf))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        // Walk only the deepest directory the prefix names, then filter by the full prefix.
        let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let start = if dir_part.is_empty() {
            self.root.clone()
        } else {
            self.path_of(dir_part)?
        };
        let mut out = Vec::new();
        let mut pending = vec![start];
        while let Some(dir) = pending.pop() {
            let mut entries = match tokio::fs::read_dir(&dir).await {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error(e, prefix)),
            };
            while let Some(entry) = entries.next_entry().await.map_err(|e| io_error(e, prefix))? {
                let meta = entry.metadata().await.map_err(|e| io_error(e, prefix))?;
                let path = entry.path();
                if meta.is_dir() {
                    pending.push(path);
                    continue;
                }
                let Ok(relative) = path.strip_prefix(&self.root) else {
                    continue;
                };
                let Some(key) = relative.to_str().map(|k| k.replace(std::path::MAIN_SEPARATOR, "/")) else {
                    continue;
                };
                if key.starts_with(prefix) && !key.ends_with(PARTIAL_SUFFIX) {
                    out.push(ObjectMeta { key, size: meta.len() });
                }
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(io_error(e, key)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_object_store_contract() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFsObjectStore::new(dir.path());
        arca_core::testing::object_store_contract(&store, "contract").await;
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalFsObjectStore::new(dir.path().join("repo"));
        for key in ["../outside", "/etc/passwd", "a/../../b", "", "x.arca-partial"] {
            let err = store.put(key, Bytes::from_static(b"x")).await.unwrap_err();
            assert!(matches!(err, Error::Invalid { .. }), "{key:?}: {err:?}");
        }
        assert!(!dir.path().join("outside").exists());
    }
}

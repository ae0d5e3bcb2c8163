//! `verify`: the repository's structure and, with `read_data`, every blob (format doc, section 9).

use std::collections::BTreeSet;

use serde::Serialize;

use crate::error::{RepoError, Result};
use crate::format::{KIND_MAP, MAX_KEY_FILE_LEN, MAX_PACK_LEN, MapEntry};
use crate::id::{Id, IdMap};
use crate::keys::decode_key_file;
use crate::repo::{BlobScratch, Repository, get_bounded, key_for, list_objects, open_blob_in_place};
use arca_core::model::layout::RepositoryLayout;

#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    pub snapshots: u64,
    pub packs: u64,
    pub blobs: u64,
    pub unindexed_packs: u64,
    pub bytes_read: u64,
    /// One line per problem, naming the object and the snapshots it damages.
    pub errors: Vec<String>,
}

pub async fn verify(repo: &Repository, read_data: bool) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let store = repo.store();
    for object in list_objects(store.as_ref(), RepositoryLayout::KEYS, "keys").await? {
        match get_bounded(store.as_ref(), &object.key, MAX_KEY_FILE_LEN).await {
            Ok(bytes) => {
                if let Err(e) = decode_key_file(&bytes) {
                    report.errors.push(format!("{}: {e}", object.key));
                }
            }
            Err(e) => report.errors.push(format!("{}: {e}", object.key)),
        }
    }
    let index = repo.load_index(false).await?;
    if index.missing_packs > 0 {
        report
            .errors
            .push(format!("index names {} pack(s) that do not exist", index.missing_packs));
    }
    report.packs = index.packs.len() as u64;
    report.blobs = index.blob_count() as u64;
    report.unindexed_packs = index
        .existing
        .keys()
        .filter(|p| index.pack_position(p).is_none())
        .count() as u64;

    // Which snapshots need each blob, to name them in errors.
    let mut users: IdMap<BTreeSet<usize>> = IdMap::default();
    let snapshots = repo.snapshots().await?;
    report.snapshots = snapshots.len() as u64;
    let names: Vec<String> = snapshots.iter().map(|(id, _)| id.to_hex()).collect();
    for (i, (snap_id, snap)) in snapshots.iter().enumerate() {
        let maps = match snap.map_ids() {
            Ok(maps) => maps,
            Err(e) => {
                report.errors.push(format!("snapshot {snap_id}: {e}"));
                continue;
            }
        };
        let mut total = 0u64;
        for map in maps {
            users.entry(map).or_default().insert(i);
            match index.get(&map) {
                Some((_, e)) if e.kind == KIND_MAP => {}
                Some(_) => report
                    .errors
                    .push(format!("snapshot {snap_id}: map blob {map} is not of kind map")),
                None => {
                    report
                        .errors
                        .push(format!("snapshot {snap_id}: map blob {map} is missing from the index"));
                    continue;
                }
            }
            let entries = match repo.read_map(&index, &map).await {
                Ok(entries) => entries,
                Err(e) => {
                    report.errors.push(format!("snapshot {snap_id}: {e}"));
                    continue;
                }
            };
            for e in entries {
                total += e.len();
                if let MapEntry::Data { id, len } = e {
                    users.entry(id).or_default().insert(i);
                    match index.get(&id) {
                        Some((_, b)) if b.raw_len == len => {}
                        Some(_) => report
                            .errors
                            .push(format!("snapshot {snap_id}: blob {id} has the wrong length")),
                        None => report
                            .errors
                            .push(format!("snapshot {snap_id}: blob {id} is missing from the index")),
                    }
                }
            }
        }
        if total != snap.size && report.errors.is_empty() {
            report.errors.push(format!(
                "snapshot {snap_id}: map covers {total} bytes, manifest says {}",
                snap.size
            ));
        }
    }
    let needed_by = |id: &Id| -> String {
        match users.get(id) {
            Some(set) if !set.is_empty() => {
                let list: Vec<&str> = set.iter().map(|i| names[*i].as_str()).collect();
                format!(" (needed by snapshot {})", list.join(", "))
            }
            _ => " (not needed by any snapshot)".into(),
        }
    };

    for pack in &index.packs {
        let header = match repo.read_pack_header(&pack.id, pack.size).await {
            Ok(h) => h,
            Err(e) => {
                let ids: Vec<String> = pack
                    .entries
                    .iter()
                    .map(|e| needed_by(&e.id))
                    .filter(|s| s.contains("needed by s"))
                    .collect();
                report
                    .errors
                    .push(format!("{e}{}", ids.first().cloned().unwrap_or_default()));
                continue;
            }
        };
        if header.blobs != pack.entries {
            report
                .errors
                .push(format!("pack {}: header and index disagree", pack.id));
        }
        if !read_data {
            continue;
        }
        let key = key_for(RepositoryLayout::pack, &pack.id)?;
        let bytes = match get_bounded(store.as_ref(), &key, MAX_PACK_LEN).await {
            Ok(b) => b,
            Err(e) => {
                report.errors.push(format!("pack {}: {e}", pack.id));
                continue;
            }
        };
        report.bytes_read += bytes.len() as u64;
        // Opened where they lie, so a frame is decrypted and decompressed once for all its
        // blobs (the scratch keeps it; its range is plaintext after the first).
        let mut bytes = bytes.to_vec();
        let mut scratch = BlobScratch::new().map_err(RepoError::Internal)?;
        for entry in &pack.entries {
            let at = entry.offset as usize;
            let end = (at + entry.stored_len as usize).min(bytes.len());
            let sealed = bytes.get_mut(at.min(end)..end).unwrap_or_default();
            if let Err(e) = open_blob_in_place(repo.keys(), entry, sealed, &mut scratch) {
                report.errors.push(format!(
                    "blob {} in pack {}: {e}{}",
                    entry.id,
                    pack.id,
                    needed_by(&entry.id)
                ));
            }
        }
    }
    Ok(report)
}

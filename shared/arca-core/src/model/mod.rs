//! Entities and pure rules. Nothing here imports `ports`, `store` or `control_plane`:
//! the model depends only on `error`, `ids` and `validate` (and on itself).

pub mod agent;
pub mod alert;
pub mod archive_key;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cloud;
pub mod cluster;
pub mod cron;
pub mod destination;
pub mod dispatch;
pub mod hooks;
pub mod install;
pub mod job;
pub mod layout;
pub mod maintenance;
pub mod org;
pub mod plan;
pub mod policy;
pub mod rds;
pub mod recovery;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod secret;
pub mod verification;

/// `text` cut to at most `max` bytes at a character boundary, marked with "…" when cut.
pub fn cut_to_bytes(mut text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let mut at = max.saturating_sub('…'.len_utf8());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    text.truncate(at);
    text.push('…');
    text
}

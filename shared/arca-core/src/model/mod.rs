//! Entities and pure rules. Nothing here imports `ports`, `store` or `control_plane`:
//! the model depends only on `error`, `ids` and `validate` (and on itself).

pub mod agent;
pub mod archive_key;
pub mod auth;
pub mod backup;
pub mod cloud;
pub mod cluster;
pub mod cron;
pub mod destination;
pub mod dispatch;
pub mod install;
pub mod job;
pub mod org;
pub mod plan;
pub mod policy;
pub mod rds;
pub mod recovery;
pub mod restore;
pub mod retention;
pub mod schedule;
pub mod secret;

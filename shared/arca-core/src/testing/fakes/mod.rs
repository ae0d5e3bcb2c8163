//! Fakes of the ports that have no embedded adapter (AWS accounts, RDS).

pub mod cloud;
#[cfg(test)]
pub(crate) mod memory_store;
pub mod rds;

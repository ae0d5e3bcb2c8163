//! AWS adapters for Arca's ports. Each adapter maps SDK errors onto
//! [`arca_core::Error`] by kind (see [`errors`]), so the domain never sees SDK types.

pub mod config;
pub mod errors;
mod s3;

pub use s3::S3ObjectStore;

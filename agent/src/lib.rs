//! Arca's agent. It only ever calls out: to its cluster's API server and to the Arca
//! API. The job loop, resource backup/restore and the data path arrive with their
//! issues; what exists now is how the agent learns what cluster it is in.

pub mod credentials_ref;
pub mod ebs;
pub mod facts;
pub mod protocol;
pub mod resources;
pub mod runner;
pub mod volumes;
pub mod worker;

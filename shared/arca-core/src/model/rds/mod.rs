//! RDS and Aurora protection: backup definitions (databases of one linked account and
//! region, by list or by AWS tag), the recovery points Arca's snapshots and copies are
//! recorded as, the work an RDS job carries from one check to the next, the ports are in
//! `ports::rds`. The rules that use them are in `control_plane::rds` (`ControlPlane`).

pub mod definitions;
pub mod naming;
pub mod verification;
pub mod work;

pub use definitions::*;
pub use naming::*;
pub use verification::*;
pub use work::*;

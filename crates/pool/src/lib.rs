//! The isolated inference worker pool: the protocol spoken with `attendansee worker` processes
//! ([`protocol`]), the [`supervisor`] that runs them, and its [`metrics`].

pub mod metrics;
pub mod protocol;
mod queue;
pub mod supervisor;

pub use queue::Lane;
pub use supervisor::{Pool, PoolConfig, PoolError, PoolStatus};

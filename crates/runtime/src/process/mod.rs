//! Cloning the container init and the processes exec'd into it.
pub mod exec;

//! The container runtime: an OCI bundle becomes an isolated process.

//! OCI seccomp profiles compiled to BPF.

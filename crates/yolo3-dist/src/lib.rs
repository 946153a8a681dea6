//! Data-parallel training across processes and machines on PyTorch's own distributed engine.
//!
//! yolo3 writes no communication layer: libtorch, which tch already links, ships c10d (the
//! `TCPStore` rendezvous, `ProcessGroupGloo` for CPU tensors, `ProcessGroupNCCL` for CUDA
//! ones), exported by `libtorch_cpu` and `libtorch_cuda`. tch binds none of it, so a small
//! C++ shim (`csrc/`) reaches it and this crate wraps the shim in owning types:
//!
//! * [`WorldEnv`]: this process' rank from torchrun's or SLURM's variables;
//! * [`ProcessGroup`]: the joined run: mean all-reduce of gradient buckets, broadcasts, a
//!   differentiable sum for synchronised batch statistics, small messages through the store,
//!   and errors that name the rank that was lost.

mod env;
mod error;
mod ffi;
mod group;

pub use env::{WorldEnv, DEFAULT_PORT};
pub use error::{C10dError, DistError, Lost, Result};
pub use group::{has_nccl, Backend, ProcessGroup, BEAT, BUCKET_BYTES};

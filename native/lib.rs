//! mlskip native kernels: a byte-identical port of `mlskip.metadata.pair_polygon`
//! (the conservative size-bounded pair polygon of FORMAT.md) plus the column
//! summaries (min, max, NULL/NaN/inf counts, fine grid), behind a small C ABI.
//! Standard library only. The numba/numpy code in metadata/ is the reference.

pub mod budget;
pub mod column;
pub mod ffi;
pub mod fp;
pub mod hull;
pub mod polygon;
pub mod reduce;

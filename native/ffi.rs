//! The C ABI (loaded by metadata/native.py with ctypes). Every function returns
//! a status: 0 ok, 1 the reference raises OverflowError (grid beyond float64),
//! 2 the reference raises MetadataError (record not encodable), 3 bad argument,
//! 4 internal panic (caught; never unwinds into the caller).

use std::cell::RefCell;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::slice;

use crate::budget::account;
use crate::column::{int_ulps, summarize, Grid, Summary, Validity, Values};
use crate::hull::{area2, pair_hull_with, HullScratch, NoHull, Poly};
use crate::polygon::{
    cells_into, pair_polygon, polygon_from_hull, Cells, Column, Error, BITS_CHOICES, MAX_RECORD,
};

pub const OK: i32 = 0;
pub const E_OVERFLOW: i32 = 1;
pub const E_ENCODE: i32 = 2;
pub const E_ARG: i32 = 3;
pub const E_PANIC: i32 = 4;

/// Column buffer: `kind` 0 = f64, 1 = i64, 2 = i32, 3 = decimal128 (low 64-bit words
/// read with stride 2, divided by `div`); `data` points at row 0; `valid` null = no
/// NULLs, else one byte per row (`valid_kind` 0) or an Arrow bitmap (1) starting at
/// bit `valid_offset`; `ulps` -1 = as to_numeric for integers (1 beyond 2**53, else 0).
#[repr(C)]
pub struct MlsColumn {
    pub kind: i32,
    pub ulps: i32,
    pub data: *const c_void,
    pub len: i64,
    pub valid: *const u8,
    pub valid_kind: i32,
    pub _pad: i32,
    pub valid_offset: i64,
    pub div: f64,
}

/// Column summary (polygon.py ColumnSummary; `ulps` is the widening used).
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct MlsSummary {
    pub lo: f64,
    pub hi: f64,
    pub nulls: i64,
    pub nans: i64,
    pub infs: i64,
    pub has_grid: i32,
    pub e: i32,
    pub n0: i64,
    pub ulps: i32,
    pub _pad: i32,
}

/// Encoded record; `len` 0 = absent.
#[repr(C)]
pub struct MlsRecord {
    pub len: i32,
    pub bytes: [u8; 128],
}

const _: () = assert!(MAX_RECORD <= 128);

/// Buffers reused across calls on one thread (cells of each column, hull table).
#[derive(Default)]
struct Scratch {
    cells: Vec<Cells>,
    hull: HullScratch,
}

/// Rows of cells kept per column between calls (16 MiB).
const KEEP_CELLS: usize = 1 << 22;

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

struct Col<'a> {
    col: Column<'a>,
}

unsafe fn column<'a>(c: &MlsColumn) -> Result<Col<'a>, i32> {
    if c.len < 0 || (c.data.is_null() && c.len > 0) {
        return Err(E_ARG);
    }
    let n = c.len as usize;
    let data = if n == 0 {
        std::ptr::NonNull::<i64>::dangling().as_ptr() as *const c_void
    } else {
        c.data
    };
    let values = match c.kind {
        0 => Values::F64(slice::from_raw_parts(data as *const f64, n)),
        1 => Values::I64(slice::from_raw_parts(data as *const i64, n)),
        2 => Values::I32(slice::from_raw_parts(data as *const i32, n)),
        3 if c.div > 0.0 => Values::Dec(slice::from_raw_parts(data as *const i64, 2 * n), c.div),
        _ => return Err(E_ARG),
    };
    let valid = if c.valid.is_null() {
        Validity::All
    } else if c.valid_kind == 0 {
        Validity::Bytes(slice::from_raw_parts(c.valid, n))
    } else if c.valid_kind == 1 && c.valid_offset >= 0 {
        let off = c.valid_offset as usize;
        Validity::Bits(slice::from_raw_parts(c.valid, (off + n).div_ceil(8)), off)
    } else {
        return Err(E_ARG);
    };
    let ulps = if c.ulps >= 0 {
        c.ulps as u32
    } else if c.ulps == -1 {
        int_ulps(&values, &valid)
    } else {
        return Err(E_ARG);
    };
    Ok(Col {
        col: Column { values, valid, ulps },
    })
}

fn to_c(s: &Summary, ulps: u32) -> MlsSummary {
    let g = s.grid.unwrap_or(Grid { e: 0, n0: 0 });
    MlsSummary {
        lo: s.lo,
        hi: s.hi,
        nulls: s.nulls as i64,
        nans: s.nans as i64,
        infs: s.infs as i64,
        has_grid: s.grid.is_some() as i32,
        e: g.e,
        n0: g.n0,
        ulps: ulps as i32,
        _pad: 0,
    }
}

fn from_c(s: &MlsSummary) -> Summary {
    Summary {
        lo: s.lo,
        hi: s.hi,
        nulls: s.nulls as u64,
        nans: s.nans as u64,
        infs: s.infs as u64,
        grid: if s.has_grid != 0 {
            Some(Grid { e: s.e, n0: s.n0 })
        } else {
            None
        },
    }
}

fn status(e: Error) -> i32 {
    match e {
        Error::Overflow => E_OVERFLOW,
        Error::Encode => E_ENCODE,
    }
}

fn put_record(rec: Option<Vec<u8>>, out: &mut MlsRecord) {
    match rec {
        Some(r) => {
            out.len = r.len() as i32;
            out.bytes[..r.len()].copy_from_slice(&r);
        }
        None => out.len = 0,
    }
}

unsafe fn bits_choices<'a>(bits: *const u32, nbits: usize) -> Result<&'a [u32], i32> {
    if nbits == 0 {
        return Ok(&[]);
    }
    if bits.is_null() {
        return Err(E_ARG);
    }
    let b = slice::from_raw_parts(bits, nbits);
    if b.iter().all(|v| BITS_CHOICES.contains(v)) {
        Ok(b)
    } else {
        Err(E_ARG)
    }
}

fn guarded(f: impl FnOnce() -> i32) -> i32 {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(E_PANIC)
}

/// Version of this ABI (bumped on any signature or struct change).
#[no_mangle]
pub extern "C" fn mlskip_abi_version() -> u32 {
    3
}

/// `pair_polygon(x, y, valid, hull_bytes, x_ulps=, y_ulps=, x_summary=, y_summary=,
/// bits_choices=)`: both columns carry the pair's validity; `x_given`/`y_given` may be null.
///
/// # Safety
/// All pointers must be valid for the lengths they describe; outputs writable.
#[no_mangle]
pub unsafe extern "C" fn mlskip_pair_polygon(
    x: *const MlsColumn,
    y: *const MlsColumn,
    hull_bytes: u32,
    bits: *const u32,
    nbits: usize,
    x_given: *const MlsSummary,
    y_given: *const MlsSummary,
    out_x: *mut MlsSummary,
    out_y: *mut MlsSummary,
    out_rec: *mut MlsRecord,
) -> i32 {
    guarded(|| {
        if x.is_null() || y.is_null() || out_x.is_null() || out_y.is_null() || out_rec.is_null() {
            return E_ARG;
        }
        let (cx, cy) = match (column(&*x), column(&*y)) {
            (Ok(a), Ok(b)) => (a, b),
            _ => return E_ARG,
        };
        if cx.col.values.len() != cy.col.values.len() {
            return E_ARG;
        }
        let bits = match bits_choices(bits, nbits) {
            Ok(b) => b,
            Err(e) => return e,
        };
        let xg = x_given.as_ref().map(from_c);
        let yg = y_given.as_ref().map(from_c);
        match pair_polygon(&cx.col, &cy.col, hull_bytes, bits, xg, yg) {
            Ok(p) => {
                *out_x = to_c(&p.x, cx.col.ulps);
                *out_y = to_c(&p.y, cy.col.ulps);
                put_record(p.record, &mut *out_rec);
                OK
            }
            Err(e) => status(e),
        }
    })
}

/// Columns of a row group, their summaries (with `hull_bytes`, after the v2 byte
/// accounting of budget.rs; written to `out_cols` unless null), then
/// `on_pair(p, budget, hull)` per pair: hull None when a grid is absent, else hull.py
/// `pair_hull`'s result on the columns' cells (shared between the pairs of a column);
/// budget the pair's record budget (0 without `hull_bytes`).
unsafe fn row_group_pairs(
    cols: *const MlsColumn,
    ncols: usize,
    pairs: *const u32,
    npairs: usize,
    hull_bytes: Option<u32>,
    out_cols: *mut MlsSummary,
    mut on_pair: impl FnMut(usize, u32, Option<Result<Poly, NoHull>>) -> i32,
) -> i32 {
    if (ncols > 0 && cols.is_null()) || (npairs > 0 && pairs.is_null()) {
        return E_ARG;
    }
    let cin = if ncols == 0 {
        &[][..]
    } else {
        slice::from_raw_parts(cols, ncols)
    };
    let mut columns = Vec::with_capacity(ncols);
    for c in cin {
        match column(c) {
            Ok(c) => columns.push(c.col),
            Err(e) => return e,
        }
    }
    let pin = if npairs == 0 {
        &[][..]
    } else {
        slice::from_raw_parts(pairs, 2 * npairs)
    };
    if pin.iter().any(|&i| i as usize >= ncols) {
        return E_ARG;
    }
    let mut sums = Vec::with_capacity(ncols);
    for c in &columns {
        match summarize(&c.values, &c.valid, c.ulps) {
            Ok(s) => sums.push(s),
            Err(e) => return status(e.into()),
        }
    }
    let budgets = match hull_bytes {
        Some(hb) => {
            let pl: Vec<(usize, usize)> = (0..npairs)
                .map(|p| (pin[2 * p] as usize, pin[2 * p + 1] as usize))
                .collect();
            account(&mut sums, &pl, hb)
        }
        None => vec![0; npairs],
    };
    if !out_cols.is_null() && ncols > 0 {
        let oc = slice::from_raw_parts_mut(out_cols, ncols);
        for (i, s) in sums.iter().enumerate() {
            oc[i] = to_c(s, columns[i].ulps);
        }
    }
    SCRATCH.with(|sc| {
        let mut guard = sc.borrow_mut();
        let Scratch { cells, hull } = &mut *guard;
        if cells.len() < ncols {
            cells.resize_with(ncols, Vec::new);
        }
        let mut done = vec![false; ncols];
        let mut rc = OK;
        for p in 0..npairs {
            let (a, b) = (pin[2 * p] as usize, pin[2 * p + 1] as usize);
            let h = match (sums[a].grid, sums[b].grid) {
                (Some(ga), Some(gb)) => {
                    for (i, g) in [(a, ga), (b, gb)] {
                        if !done[i] {
                            cells_into(&columns[i], g, &mut cells[i]);
                            done[i] = true;
                        }
                    }
                    Some(pair_hull_with(&cells[a], &cells[b], hull))
                }
                _ => None,
            };
            rc = on_pair(p, budgets[p], h);
            if rc != OK {
                break;
            }
        }
        for c in cells.iter_mut() {
            c.shrink_to(KEEP_CELLS);
        }
        rc
    })
}

/// The writer's row group: summaries of `ncols` columns (each with its own validity)
/// and the records of `npairs` pairs (`pairs[2i]`, `pairs[2i+1]` column indices),
/// cells shared between the pairs of a column (writer.py `summarize_row_group`).
/// `hull_bytes` is the v2 budget per pair (record + share of the grid anchors):
/// grids and record budgets follow footer.py `account`.
///
/// # Safety
/// All pointers must be valid for the lengths they describe; outputs writable.
#[no_mangle]
pub unsafe extern "C" fn mlskip_row_group(
    cols: *const MlsColumn,
    ncols: usize,
    pairs: *const u32,
    npairs: usize,
    hull_bytes: u32,
    bits: *const u32,
    nbits: usize,
    out_cols: *mut MlsSummary,
    out_recs: *mut MlsRecord,
) -> i32 {
    guarded(|| {
        if (ncols > 0 && out_cols.is_null()) || (npairs > 0 && out_recs.is_null()) {
            return E_ARG;
        }
        let bits = match bits_choices(bits, nbits) {
            Ok(b) => b,
            Err(e) => return e,
        };
        let orec = if npairs == 0 {
            &mut [][..]
        } else {
            slice::from_raw_parts_mut(out_recs, npairs)
        };
        row_group_pairs(
            cols,
            ncols,
            pairs,
            npairs,
            Some(hull_bytes),
            out_cols,
            |p, budget, h| match h {
                Some(Ok((hx, hy))) => match polygon_from_hull(&hx, &hy, budget, bits) {
                    Ok(r) => {
                        put_record(r, &mut orec[p]);
                        OK
                    }
                    Err(e) => status(e),
                },
                _ => {
                    orec[p].len = 0;
                    OK
                }
            },
        )
    })
}

/// The exact fine hull of a pair, summarized: `status` 0 ok, 1 no row valid in both
/// columns, 2 a valid row is NaN/inf, 3 a grid is absent; vertex count, twice the
/// area (exact) and the bounding box on the fine grid.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct MlsHull {
    pub status: i32,
    pub nverts: i32,
    pub area2: i64,
    pub xmin: i64,
    pub xmax: i64,
    pub ymin: i64,
    pub ymax: i64,
}

/// Fine hulls of pairs (writer.py `select_pairs` ranks pairs by hull area / box).
///
/// # Safety
/// All pointers must be valid for the lengths they describe; outputs writable
/// (`out_cols` may be null).
#[no_mangle]
pub unsafe extern "C" fn mlskip_fine_hulls(
    cols: *const MlsColumn,
    ncols: usize,
    pairs: *const u32,
    npairs: usize,
    out_cols: *mut MlsSummary,
    out_hulls: *mut MlsHull,
) -> i32 {
    guarded(|| {
        if npairs > 0 && out_hulls.is_null() {
            return E_ARG;
        }
        let oh = if npairs == 0 {
            &mut [][..]
        } else {
            slice::from_raw_parts_mut(out_hulls, npairs)
        };
        row_group_pairs(cols, ncols, pairs, npairs, None, out_cols, |p, _, h| {
            oh[p] = match h {
                None => MlsHull {
                    status: 3,
                    ..Default::default()
                },
                Some(Err(NoHull::NoValidRow)) => MlsHull {
                    status: 1,
                    ..Default::default()
                },
                Some(Err(NoHull::NonFinite)) => MlsHull {
                    status: 2,
                    ..Default::default()
                },
                Some(Ok((hx, hy))) => MlsHull {
                    status: 0,
                    nverts: hx.len() as i32,
                    area2: area2(&hx, &hy),
                    xmin: *hx.iter().min().unwrap(),
                    xmax: *hx.iter().max().unwrap(),
                    ymin: *hy.iter().min().unwrap(),
                    ymax: *hy.iter().max().unwrap(),
                },
            };
            OK
        })
    })
}

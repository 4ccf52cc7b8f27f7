//! The v2 byte accounting of a row group (port of footer.py `column_entry`'s size
//! and `account`): which grids are stored and each pair's polygon record budget.

use crate::column::{Summary, PAD};

/// footer.py `E_BIAS`.
pub const E_BIAS: i64 = 8;

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn varint_len(mut u: u64) -> u32 {
    let mut n = 1;
    while u >= 0x80 {
        u >>= 7;
        n += 1;
    }
    n
}

/// Bytes of a column's v2 entry (footer.py `column_entry`).
pub fn entry_len(s: &Summary) -> u32 {
    match s.grid {
        None => 1,
        Some(g) => {
            let nan = (s.nans > 0) as u64;
            let head = (zigzag(g.e as i64 + E_BIAS) << 2) | (nan << 1) | 1;
            varint_len(head) + varint_len(zigzag(g.n0 + PAD))
        }
    }
}

fn share(size: &[u32], users: &[u32], a: usize, b: usize) -> u32 {
    size[a].div_ceil(users[a]) + size[b].div_ceil(users[b])
}

/// footer.py `account`: drops grids (in `sums`) of columns in no pair and of pairs
/// whose share leaves no byte for the record header; returns each pair's record
/// budget `hull_bytes - share` (saturating at 0).
pub fn account(sums: &mut [Summary], pairs: &[(usize, usize)], hull_bytes: u32) -> Vec<u32> {
    let mut users = vec![0u32; sums.len()];
    for &(a, b) in pairs {
        users[a] += 1;
        users[b] += 1;
    }
    for (s, &u) in sums.iter_mut().zip(&users) {
        if u == 0 {
            s.grid = None;
        }
    }
    let mut size: Vec<u32> = sums.iter().map(entry_len).collect();
    for &(a, b) in pairs {
        if share(&size, &users, a, b) as u64 + 1 > hull_bytes as u64 {
            for i in [a, b] {
                if sums[i].grid.is_some() {
                    sums[i].grid = None;
                    size[i] = entry_len(&sums[i]);
                }
            }
        }
    }
    pairs
        .iter()
        .map(|&(a, b)| hull_bytes.saturating_sub(share(&size, &users, a, b)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::column::Grid;

    fn col(e: i32, n0: i64, nans: u64) -> Summary {
        Summary {
            lo: 0.0,
            hi: 1.0,
            nulls: 0,
            nans,
            infs: 0,
            grid: Some(Grid { e, n0 }),
        }
    }

    #[test]
    fn entry_sizes() {
        assert_eq!(entry_len(&col(-4, 124480, 0)), 4); // dates: 1 + 3
        assert_eq!(entry_len(&col(-19, -4097, 1)), 2); // discount: 1 + 1
        assert_eq!(entry_len(&col(-25, 0, 0)), 4); // head 2 bytes, 4096 -> 2 bytes
        let mut s = col(0, 0, 0);
        s.grid = None;
        assert_eq!(entry_len(&s), 1);
    }

    #[test]
    fn budgets_and_drops() {
        let mut s = vec![col(-4, 124480, 0), col(-4, 124528, 0), col(1, -3646, 0)];
        // column 2 in no pair: its grid is dropped
        assert_eq!(account(&mut s, &[(0, 1)], 45), vec![37]);
        assert!(s[2].grid.is_none() && s[0].grid.is_some());
        let mut s = vec![col(-4, 124480, 0), col(-4, 124528, 0), col(1, -3646, 0)];
        assert_eq!(account(&mut s, &[(0, 1), (0, 2)], 45), vec![39, 40]);
        // too small for the anchors: grids dropped, 1 byte left for an absent record
        let mut s = vec![col(-4, 124480, 0), col(-4, 124528, 0)];
        assert_eq!(account(&mut s, &[(0, 1)], 5), vec![3]);
        assert!(s.iter().all(|c| c.grid.is_none()));
    }
}

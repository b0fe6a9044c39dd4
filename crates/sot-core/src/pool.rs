//! Weighted pooling of table rows into unit vectors: the sentence vector of
//! a bag of word vectors (SIF-style averaging), computed off the JS thread.

use crate::control::Control;
use crate::error::{ErrorKind, Result, SotError};
use ndarray::{Array2, ArrayView2};
use rayon::prelude::*;

/// Bags per block between cancellation checks.
const BLOCK: usize = 1024;

/// For each bag `b` (the table rows `ids[offsets[b]..offsets[b + 1]]`), the
/// unit vector along `sum_i weights[id_i] * table[id_i]` (weight 1 without
/// `weights`), accumulated in f64. Normalising the sum gives the direction of
/// the weighted average. A bag that is empty, or whose sum is zero, is an
/// `ERR_EMPTY` error naming it.
pub fn pool_rows(
    table: ArrayView2<f32>,
    ids: &[u32],
    offsets: &[u32],
    weights: Option<&[f32]>,
    ctl: &Control,
) -> Result<Array2<f32>> {
    let (rows, dim) = table.dim();
    if offsets.is_empty() || offsets[0] != 0 || *offsets.last().unwrap() as usize != ids.len() {
        return Err(SotError::new(
            ErrorKind::Shape,
            format!(
                "offsets must start at 0 and end at ids.length ({}), one more than the bags",
                ids.len()
            ),
        ));
    }
    if let Some(b) = offsets.windows(2).position(|w| w[0] > w[1]) {
        return Err(SotError::at(
            ErrorKind::Shape,
            b,
            format!(
                "offsets[{}] > offsets[{}]: offsets must not decrease",
                b,
                b + 1
            ),
        ));
    }
    if let Some(i) = ids.iter().position(|&id| id as usize >= rows) {
        return Err(SotError::at(
            ErrorKind::Shape,
            i,
            format!("ids[{i}] = {} is not a row of the {rows}-row table", ids[i]),
        ));
    }
    if let Some(b) = offsets.windows(2).position(|w| w[0] == w[1]) {
        return Err(SotError::at(
            ErrorKind::Empty,
            b,
            format!("bag {b} is empty"),
        ));
    }
    if let Some(w) = weights {
        if w.len() != rows {
            return Err(SotError::new(
                ErrorKind::Shape,
                format!("weights has {} entries for a {rows}-row table", w.len()),
            ));
        }
    }
    let bags = offsets.len() - 1;
    let mut out = crate::pages::zeros2::<f32>(bags, dim)?;
    let data = out.as_slice_mut().expect("standard layout");
    for (block, chunk) in data.chunks_mut((BLOCK * dim).max(1)).enumerate() {
        ctl.check()?;
        let first = block * BLOCK;
        // A bag whose sum is zero leaves its row zero; the first one is reported below.
        chunk
            .par_chunks_mut(dim.max(1))
            .enumerate()
            .for_each(|(k, row)| {
                let b = first + k;
                let mut acc = vec![0f64; dim];
                for &id in &ids[offsets[b] as usize..offsets[b + 1] as usize] {
                    let w = weights.map_or(1.0, |w| w[id as usize] as f64);
                    for (a, &x) in acc.iter_mut().zip(table.row(id as usize)) {
                        *a += w * x as f64;
                    }
                }
                let norm = acc.iter().map(|a| a * a).sum::<f64>().sqrt();
                if norm > 0.0 && norm.is_finite() {
                    for (o, a) in row.iter_mut().zip(&acc) {
                        *o = (a / norm) as f32;
                    }
                }
            });
        if let Some(k) = chunk
            .chunks(dim.max(1))
            .position(|row| row.iter().all(|&x| x == 0.0))
        {
            let b = first + k;
            return Err(SotError::at(
                ErrorKind::Empty,
                b,
                format!("bag {b} has a zero (or non-finite) weighted sum"),
            ));
        }
    }
    Ok(out)
}

//! Rows of f32 held in Rust memory and filled from JS in batches: a matrix
//! argument given as such a store is shared by the tasks that read it, where
//! a JS array is copied (it may change under a running task; a store cannot,
//! since writes are refused while a task holds it).

use napi::bindgen_prelude::{External, Float32Array, Uint32Array};
use napi::{Error, Result, Status};
use napi_derive::napi;
use std::sync::Arc;

/// A `rows x cols` row-major matrix in Rust memory.
pub struct Rows {
    pub(crate) data: Arc<Vec<f32>>,
    cols: usize,
}

fn invalid(msg: String) -> Error {
    Error::new(Status::InvalidArg, msg)
}

/// A zeroed `rows x cols` store; its size is reported to the JS engine's
/// garbage collector, as an array of that size would be.
#[napi(ts_return_type = "ExternalObject<'Rows'>")]
pub fn rows_store(rows: u32, cols: u32) -> Result<External<Rows>> {
    let len = (rows as usize)
        .checked_mul(cols as usize)
        .ok_or_else(|| invalid(format!("{rows} x {cols} values do not fit in memory")))?;
    let data = sot_core::zeroed_lazy::<f32>(len).map_err(|e| invalid(e.message))?;
    let rows = Rows {
        data: Arc::new(data),
        cols: cols as usize,
    };
    Ok(External::new_with_size_hint(rows, len * 4))
}

/// Copies whole rows into the store from row `row` on; refused while a task
/// reads the store, or when they do not fit.
#[napi]
pub fn rows_write(
    #[napi(ts_arg_type = "ExternalObject<'Rows'>")] store: &mut External<Rows>,
    row: u32,
    values: Float32Array,
) -> Result<()> {
    let cols = store.cols;
    let src: &[f32] = values.as_ref();
    let start = (row as usize).saturating_mul(cols);
    let Some(data) = Arc::get_mut(&mut store.data) else {
        return Err(invalid("the rows are in use by a running task".into()));
    };
    let end = start.checked_add(src.len()).filter(|&e| e <= data.len());
    match end {
        Some(end) if cols > 0 && src.len().is_multiple_of(cols) => {
            data[start..end].copy_from_slice(src);
            Ok(())
        }
        _ => Err(invalid(format!(
            "{} values from row {row} are not whole rows of {cols} within the store's {} rows",
            src.len(),
            data.len() / cols.max(1)
        ))),
    }
}

/// Copies of the given rows, in that order (row-major).
#[napi]
pub fn rows_gather(
    #[napi(ts_arg_type = "ExternalObject<'Rows'>")] store: &External<Rows>,
    rows: Uint32Array,
) -> Result<Float32Array> {
    let mut out = vec![0.0; rows.len().saturating_mul(store.cols)];
    gather(store, &rows, &mut out)?;
    Ok(out.into())
}

/// `rowsGather` into `out` (exactly the rows' length), which a caller reuses
/// from batch to batch instead of making garbage of each.
#[napi]
pub fn rows_gather_into(
    #[napi(ts_arg_type = "ExternalObject<'Rows'>")] store: &External<Rows>,
    rows: Uint32Array,
    mut out: Float32Array,
) -> Result<()> {
    if out.len() != rows.len().saturating_mul(store.cols) {
        return Err(invalid(format!(
            "{} rows of {} need {} values, the output holds {}",
            rows.len(),
            store.cols,
            rows.len().saturating_mul(store.cols),
            out.len()
        )));
    }
    // SAFETY: a synchronous call on the JS thread, and no Rust reference to
    // this array's memory exists (a store's rows are never exposed as an array).
    gather(store, &rows, unsafe { out.as_mut() })
}

fn gather(store: &Rows, rows: &[u32], out: &mut [f32]) -> Result<()> {
    let (data, cols) = (&store.data, store.cols);
    let n = data.len() / cols.max(1);
    for (i, &r) in rows.iter().enumerate() {
        let r = r as usize;
        if r >= n {
            return Err(invalid(format!(
                "row {r} is not below the store's {n} rows"
            )));
        }
        out[i * cols..(i + 1) * cols].copy_from_slice(&data[r * cols..(r + 1) * cols]);
    }
    Ok(())
}

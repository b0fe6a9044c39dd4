//! How costs are held: the option and report shapes shared by the solves and the learner.

use napi_derive::napi;
use sot_core::{Storage, StorageOptions, StorageReport, Verification};

/// Storage of the costs; absent fields take the core's defaults.
#[napi(object)]
#[derive(Default, Clone)]
pub struct StorageInput {
    /// "auto" (default), "dense", "truncated" or "blocked".
    pub mode: Option<String>,
    /// Bytes the costs and stored kernels may hold (default 4 GiB).
    pub budget: Option<f64>,
    /// Most nearest references per row of truncated costs (default 256).
    pub neighbours: Option<u32>,
    /// Store the Gibbs kernel beside dense costs when the budget allows (default true).
    pub store_kernel: Option<bool>,
    /// Measure the error of truncated costs by one exact blocked pass (default true).
    pub verify: Option<bool>,
}

impl StorageInput {
    pub fn to_core(input: &Option<StorageInput>) -> sot_core::Result<StorageOptions> {
        let d = StorageOptions::default();
        let Some(s) = input else { return Ok(d) };
        if let Some(b) = s.budget {
            sot_core::validate::positive(b, "storage.budget")?;
        }
        Ok(StorageOptions {
            storage: s.mode.as_deref().map_or(Ok(d.storage), Storage::parse)?,
            budget: s
                .budget
                .map_or(d.budget, |b| b.min(usize::MAX as f64) as usize),
            neighbours: s.neighbours.map_or(d.neighbours, |k| k as usize),
            store_kernel: s.store_kernel.unwrap_or(d.store_kernel),
            verify: s.verify.unwrap_or(d.verify),
        })
    }
}

#[napi(object)]
pub struct VerificationOutput {
    /// Largest and weighted mean |f - f_exact| at the returned g.
    pub max_error: f64,
    pub mean_error: f64,
    /// L1 row-marginal error of the returned potentials on the exact costs.
    pub row_error: f64,
    /// L1 column-marginal error of (f_exact, g) on the exact costs.
    pub col_error: f64,
    /// Seconds the exact pass took.
    pub seconds: f64,
}

#[napi(object)]
pub struct StorageOutput {
    /// "dense", "dense+kernel", "truncated" or "blocked".
    pub mode: String,
    /// Truncated: references kept per row (0 otherwise).
    pub neighbours: u32,
    pub bytes: f64,
    /// Passes served by the stored kernel (and the seconds they took), and passes that built it.
    pub kernel_passes: u32,
    pub kernel_seconds: f64,
    pub kernel_builds: u32,
    /// Truncated: bound on the error of each row's soft-min at the returned g (0 when exact).
    pub bound: f64,
    pub verification: Option<VerificationOutput>,
    /// Seconds spent building the costs (matrix products, truncation).
    pub build_seconds: f64,
}

impl From<StorageReport> for StorageOutput {
    fn from(r: StorageReport) -> Self {
        StorageOutput {
            mode: r.storage.to_string(),
            neighbours: r.neighbours as u32,
            bytes: r.bytes as f64,
            kernel_passes: r.kernel_passes as u32,
            kernel_seconds: r.kernel_seconds,
            kernel_builds: r.kernel_builds as u32,
            bound: r.bound,
            verification: r.verification.map(|v: Verification| VerificationOutput {
                max_error: v.max_error,
                mean_error: v.mean_error,
                row_error: v.row_error,
                col_error: v.col_error,
                seconds: v.seconds,
            }),
            build_seconds: r.build_seconds,
        }
    }
}

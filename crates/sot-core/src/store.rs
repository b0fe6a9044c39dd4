//! How the costs of an OT term are held, within a memory budget.
//!
//! A term between `n` samples and `m` references costs `4 n m` bytes when
//! stored dense. When that fits the budget it is stored (with the Gibbs
//! kernel beside it when that fits too, so that passes run at memory speed);
//! when it does not, each row keeps its nearest references and a mean-field
//! cost for the rest (`truncated`), with a bound on the error at every pass
//! and an exact blocked pass that measures it; when even that does not fit,
//! the costs are recomputed in blocks from the points at every pass. The
//! time of a pass stays linear in `n` in every case.

use crate::control::Control;
use crate::cost::{check_pair, CostKind, CostTiles};
use crate::costs::{Blocked, CostForm, Dense, DenseKernel, StoredKernel, TruncatedCosts};
use crate::error::{ErrorKind, Result, SotError};
use crate::sweep::Problem;
use crate::truncated::Truncated;
use ndarray::{Array2, ArrayView2, CowArray, Ix2};
use std::time::Instant;

/// How to hold the costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// Dense when it fits the budget, else truncated, else blocked.
    #[default]
    Auto,
    Dense,
    /// The `neighbours` nearest references of each row (fewer if the budget says so).
    Truncated,
    /// Recomputed in blocks at every pass: exact and small, but each pass costs a GEMM.
    Blocked,
}

impl Storage {
    pub fn parse(name: &str) -> Result<Self> {
        match name {
            "auto" => Ok(Storage::Auto),
            "dense" => Ok(Storage::Dense),
            "truncated" => Ok(Storage::Truncated),
            "blocked" => Ok(Storage::Blocked),
            other => Err(SotError::new(
                ErrorKind::InvalidOption,
                format!("unknown storage '{other}' (expected 'auto', 'dense', 'truncated' or 'blocked')"),
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StorageOptions {
    pub storage: Storage,
    /// Bytes that the costs and stored kernels of a solve (of all the terms of
    /// a learner) may hold. Default 4 GiB.
    pub budget: usize,
    /// Most nearest references a truncated row keeps. Default 256.
    pub neighbours: usize,
    /// Store the Gibbs kernel beside the costs when the budget allows (used by
    /// solves with `tol >= 1e-7`: its f32 entries round row sums by up to 6e-8). Default true.
    pub store_kernel: bool,
    /// After a solve on truncated costs, measure its error by one exact
    /// blocked pass. Default true.
    pub verify: bool,
}

/// 4 GiB; where usize has 32 bits (wasm32) the whole address space, since
/// `4 << 30` wraps to 0 there.
pub const DEFAULT_BUDGET: usize = if usize::BITS > 32 {
    4 << 30
} else {
    usize::MAX
};
/// Fewer neighbours than this make a poor approximation: below it, blocks.
const MIN_NEIGHBOURS: usize = 8;

impl Default for StorageOptions {
    fn default() -> Self {
        StorageOptions {
            storage: Storage::Auto,
            budget: DEFAULT_BUDGET,
            neighbours: 256,
            store_kernel: true,
            verify: true,
        }
    }
}

pub(crate) fn check_storage(o: &StorageOptions) -> Result<()> {
    if o.neighbours == 0 {
        return Err(SotError::option(
            "neighbours",
            "neighbours must be at least 1",
        ));
    }
    Ok(())
}

/// The storage chosen for one term: `kernel` stores the Gibbs kernel of the
/// held entries beside their costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    Dense { kernel: bool },
    Truncated { k: usize, kernel: bool },
    Blocked,
}

impl Plan {
    pub fn name(self) -> &'static str {
        match self {
            Plan::Dense { kernel: false } => "dense",
            Plan::Dense { kernel: true } => "dense+kernel",
            Plan::Truncated { kernel: false, .. } => "truncated",
            Plan::Truncated { kernel: true, .. } => "truncated+kernel",
            Plan::Blocked => "blocked",
        }
    }

    /// Bytes the term holds for `n x m` costs (blocks: the per-thread tiles).
    pub fn bytes(self, n: usize, m: usize) -> usize {
        match self {
            Plan::Dense { kernel } => {
                Dense::bytes(n, m).saturating_add(if kernel { DenseKernel::bytes(n, m) } else { 0 })
            }
            Plan::Truncated { k, kernel } => TruncatedCosts::bytes(n, k, m, kernel),
            Plan::Blocked => Blocked::<f32>::bytes(m),
        }
    }

    fn with_kernel(self) -> Plan {
        match self {
            Plan::Dense { .. } => Plan::Dense { kernel: true },
            Plan::Truncated { k, .. } => Plan::Truncated { k, kernel: true },
            Plan::Blocked => Plan::Blocked,
        }
    }
}

/// Refuses dense `n x m` f32 costs over `budget` bytes: the one check, before
/// any work, of every dense matrix whose size the input sets (stored costs,
/// cost matrices returned whole, the terms of a divergence, the learner's self cost).
pub fn check_dense(n: usize, m: usize, budget: usize) -> Result<()> {
    match n.checked_mul(m).and_then(|e| e.checked_mul(4)) {
        Some(bytes) if bytes <= budget => Ok(()),
        _ => Err(over_budget(n, m, budget)),
    }
}

/// The error of `check_dense`, naming the sizes.
pub(crate) fn over_budget(n: usize, m: usize, budget: usize) -> SotError {
    let mib = (n as u128 * m as u128 * 4) >> 20;
    let limit = if budget == usize::MAX {
        "the address space".to_string()
    } else {
        format!("the memory budget of {} MiB left", budget >> 20)
    };
    SotError::new(
        ErrorKind::InvalidOption,
        format!("dense storage of the {n} x {m} costs needs {mib} MiB, over {limit}"),
    )
}

/// Plans the storage of terms of shapes `(n, m)` within one budget: the
/// smaller terms first (they are cheap to store exactly), each truncated
/// term taking an equal share of what is left; kernels last, from what remains.
pub fn plan(shapes: &[(usize, usize)], o: &StorageOptions) -> Result<Vec<Plan>> {
    check_storage(o)?;
    let mut order: Vec<usize> = (0..shapes.len()).collect();
    order.sort_by_key(|&t| shapes[t].1);
    let mut plans = vec![Plan::Blocked; shapes.len()];
    let mut left = o.budget;
    for (rank, &t) in order.iter().enumerate() {
        let (n, m) = shapes[t];
        let dense = Plan::Dense { kernel: false }.bytes(n, m);
        let share = left / (order.len() - rank);
        let k = o
            .neighbours
            .min(m.saturating_sub(1))
            .min(share.saturating_sub(n * 16) / (8 * n).max(1));
        // the fewest neighbours worth keeping (or all the caller asked for, if fewer)
        let least = MIN_NEIGHBOURS
            .min(o.neighbours)
            .min(m.saturating_sub(1))
            .max(1);
        let over = |what: String| {
            SotError::new(
                ErrorKind::InvalidOption,
                format!("{what}, over the memory budget of {} MiB left", left >> 20),
            )
        };
        plans[t] = match o.storage {
            Storage::Blocked => Plan::Blocked,
            Storage::Dense | Storage::Truncated
                if o.storage == Storage::Dense || o.neighbours >= m =>
            {
                check_dense(n, m, left)?;
                Plan::Dense { kernel: false }
            }
            Storage::Auto if dense <= left && (rank + 1 == order.len() || dense <= share) => {
                Plan::Dense { kernel: false }
            }
            _ if m > 1 && k >= least => Plan::Truncated { k, kernel: false },
            Storage::Auto => Plan::Blocked,
            _ => {
                return Err(over(format!(
                    "truncated storage of {n} rows needs {} MiB for {least} neighbours",
                    Truncated::bytes(n, least) >> 20
                )))
            }
        };
        left = left.saturating_sub(plans[t].bytes(n, m));
    }
    if o.store_kernel {
        for &t in &order {
            let (n, m) = shapes[t];
            let (now, with) = (plans[t].bytes(n, m), plans[t].with_kernel().bytes(n, m));
            if with > now && with - now <= left {
                plans[t] = plans[t].with_kernel();
                left -= with - now;
            }
        }
    }
    Ok(plans)
}

/// How a solve's costs were held and, for truncated costs, how far off they were.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StorageReport {
    /// "dense", "dense+kernel", "truncated", "truncated+kernel" or "blocked".
    pub storage: &'static str,
    /// Truncated: references kept per row (0 otherwise).
    pub neighbours: usize,
    pub bytes: usize,
    /// Passes served by the stored kernel (and the seconds they took), and passes that (re)built it.
    pub kernel_passes: usize,
    pub kernel_seconds: f64,
    pub kernel_builds: usize,
    /// Truncated: at the returned potentials, the largest bound over the rows on
    /// the error of the truncated soft-min (0 for exact storage).
    pub bound: f64,
    /// Truncated, with `verify`: what the exact blocked pass measured.
    pub verification: Option<Verification>,
    /// Seconds spent building the store (the cost matrix products, the truncation).
    pub build_seconds: f64,
}

/// The truncated solution checked against the exact costs at its returned `g`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verification {
    /// Largest and `a`-weighted mean `|f_i - f_exact_i|`, where `f_exact` is the
    /// exact soft-min of the returned `g`.
    pub max_error: f64,
    pub mean_error: f64,
    /// L1 row-marginal error of the returned potentials on the exact costs.
    pub row_error: f64,
    /// L1 column-marginal error of `(f_exact, g)` on the exact costs.
    pub col_error: f64,
    /// Seconds the exact pass took.
    pub seconds: f64,
}

/// The costs of one term, held as planned.
pub(crate) struct CostStore<'a> {
    pub(crate) plan: Plan,
    dense: Option<Array2<f32>>,
    truncated: Option<Truncated>,
    kernel: Option<StoredKernel>,
    tiles: CostTiles<'a>,
    n: usize,
    m: usize,
    /// Serves many solves (a learner's term): a stored kernel is worth building at once.
    persistent: bool,
    build_seconds: f64,
}

impl<'a> CostStore<'a> {
    /// Builds the store of the costs between `x` and `y` (already checked by
    /// `check_pair`); `eps` and the column weights `b` serve the truncated tail.
    pub(crate) fn build(
        x: ArrayView2<'a, f32>,
        y: impl Into<CowArray<'a, f32, Ix2>>,
        kind: CostKind,
        plan: Plan,
        eps: f64,
        b: &[f64],
        ctl: &Control,
    ) -> Result<Self> {
        let start = Instant::now();
        let tiles = CostTiles::new(x, y, kind);
        let (n, m) = (tiles.rows(), tiles.cols());
        let mut store = CostStore {
            plan,
            dense: None,
            truncated: None,
            kernel: None,
            tiles,
            n,
            m,
            persistent: false,
            build_seconds: 0.0,
        };
        match plan {
            Plan::Dense { kernel } => {
                store.dense = Some(store.tiles.matrix(ctl)?);
                store.kernel = kernel.then(StoredKernel::new);
            }
            Plan::Truncated { k, kernel } => {
                store.truncated = Some(Truncated::build(&store.tiles, k, eps, b, ctl)?);
                store.kernel = kernel.then(StoredKernel::new);
            }
            Plan::Blocked => {}
        }
        store.build_seconds = start.elapsed().as_secs_f64();
        Ok(store)
    }

    /// Marks the store as serving many solves.
    pub(crate) fn persistent(mut self) -> Self {
        self.persistent = true;
        self
    }

    /// Checks the pair, plans it alone under `o` and builds it.
    pub(crate) fn for_points(
        x: ArrayView2<'a, f32>,
        y: ArrayView2<'a, f32>,
        kind: CostKind,
        o: &StorageOptions,
        eps: f64,
        b: &[f64],
        ctl: &Control,
    ) -> Result<Self> {
        check_pair(&x, &y, kind)?;
        let plan = plan(&[(x.nrows(), y.nrows())], o)?[0];
        CostStore::build(x, y, kind, plan, eps, b, ctl)
    }

    /// The problem over these costs, with the stored kernel if `use_kernel`.
    pub(crate) fn problem<'p>(
        &'p mut self,
        a: &'p [f64],
        log_b: Vec<f64>,
        use_kernel: bool,
    ) -> Problem<'p> {
        let kernel = self.kernel.as_mut().filter(|_| use_kernel);
        let (n, m) = (self.n, self.m);
        let costs: Box<dyn CostForm + 'p> = match (&self.dense, &self.truncated, kernel) {
            (Some(d), _, kernel) => {
                let dense = Dense::new(d.as_slice().expect("standard layout"), m, false);
                match kernel {
                    Some(k) => Box::new(DenseKernel::new(dense, k)),
                    None => Box::new(dense),
                }
            }
            (None, Some(t), kernel) => Box::new(TruncatedCosts::new(t, kernel)),
            (None, None, _) => Box::new(Blocked::new(&self.tiles, n, m)),
        };
        Problem {
            costs,
            n,
            m,
            a,
            log_b,
            symmetric: false,
            first_build: self.persistent,
        }
    }

    pub(crate) fn shape(&self) -> (usize, usize) {
        (self.n, self.m)
    }

    /// One exact blocked pass at the returned `(f, g)` of a solve on truncated
    /// costs: how far its potentials are from the exact ones' soft-min.
    pub(crate) fn verify(
        &self,
        a: &[f64],
        log_b: Vec<f64>,
        eps: f64,
        f: &[f64],
        g: &[f64],
        ctl: &Control,
    ) -> Result<Verification> {
        ctl.check()?;
        let start = Instant::now();
        let costs = Box::new(Blocked::new(&self.tiles, self.n, self.m));
        let mut exact = Problem {
            costs,
            n: self.n,
            m: self.m,
            a,
            log_b,
            symmetric: false,
            first_build: false,
        };
        let (mut f_exact, mut g_next) = (vec![0.0; self.n], vec![0.0; self.m]);
        let errors = exact.sweep(eps, 1.0, f, g, &mut f_exact, &mut g_next)?;
        let dev = f.iter().zip(&f_exact).map(|(p, q)| (p - q).abs());
        Ok(Verification {
            max_error: dev.clone().fold(0.0, f64::max),
            mean_error: dev.zip(a).map(|(d, w)| d * w).sum(),
            row_error: errors.rows,
            col_error: errors.cols,
            seconds: start.elapsed().as_secs_f64(),
        })
    }

    pub(crate) fn report(&self, bound: f64, verification: Option<Verification>) -> StorageReport {
        StorageReport {
            storage: self.plan.name(),
            neighbours: match self.plan {
                Plan::Truncated { k, .. } => k,
                _ => 0,
            },
            bytes: self.plan.bytes(self.n, self.m),
            kernel_passes: self.kernel.as_ref().map_or(0, |k| k.served),
            kernel_seconds: self.kernel.as_ref().map_or(0.0, |k| k.seconds),
            kernel_builds: self.kernel.as_ref().map_or(0, |k| k.built),
            bound,
            verification,
            build_seconds: self.build_seconds,
        }
    }
}

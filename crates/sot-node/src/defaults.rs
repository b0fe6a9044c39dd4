//! The core's defaults, read from its `Default`s, so that the TypeScript
//! docs, the CLI help and the README tables have one source to follow.

use napi_derive::napi;
use sot_core::{
    EmbedOptions, ExactCosts, LearnerOptions, SinkhornOptions, Storage, StorageOptions,
};

/// Defaults of `learnWeights` (the names of `LearnOptions`).
#[napi(object)]
pub struct LearnerDefaults {
    pub cost: String,
    pub eps: f64,
    pub lambda: f64,
    pub tau: f64,
    pub step: f64,
    pub max_steps: u32,
    pub tol: f64,
    pub debiased: bool,
    pub max_self_anchor: u32,
    pub own_harm_share: f64,
    pub own_harm_mass: f64,
    pub inner_tol: f64,
    pub inner_max_iter: u32,
    pub inner_overrelax: bool,
}

/// Defaults of a Sinkhorn solve (the names of `SolveOptions`).
#[napi(object)]
pub struct SinkhornDefaults {
    pub eps: f64,
    pub tol: f64,
    pub max_iter: u32,
    pub check_every: u32,
    pub overrelax: bool,
    /// 'auto', 'on' or 'off'.
    pub exact_costs: String,
}

/// Defaults of `StorageInput`.
#[napi(object)]
pub struct StorageDefaults {
    pub mode: String,
    /// Bytes (the whole address space where usize has 32 bits).
    pub budget: f64,
    pub neighbours: u32,
    pub store_kernel: bool,
    pub verify: bool,
}

/// Defaults of the built-in embedder (`embedTexts`). Its length is the
/// caller's choice: the TS layer sizes it to the dataset (`builtinDim`).
#[napi(object)]
pub struct EmbedDefaults {
    pub seed: u32,
    pub word_weight: f64,
}

#[napi(object)]
pub struct CoreDefaults {
    pub learner: LearnerDefaults,
    pub sinkhorn: SinkhornDefaults,
    pub storage: StorageDefaults,
    pub embed: EmbedDefaults,
}

fn storage_name(s: Storage) -> &'static str {
    match s {
        Storage::Auto => "auto",
        Storage::Dense => "dense",
        Storage::Truncated => "truncated",
        Storage::Blocked => "blocked",
    }
}

/// The values an absent option takes, as the core defines them.
#[napi]
pub fn core_defaults() -> CoreDefaults {
    let l = LearnerOptions::default();
    let s = SinkhornOptions::default();
    let st = StorageOptions::default();
    let e = EmbedOptions::default();
    CoreDefaults {
        learner: LearnerDefaults {
            cost: l.cost.name().to_string(),
            eps: l.eps,
            lambda: l.lambda,
            tau: l.tau,
            step: l.step,
            max_steps: l.max_steps as u32,
            tol: l.tol,
            debiased: l.debiased,
            max_self_anchor: l.max_self_anchor as u32,
            own_harm_share: l.own_harm_share,
            own_harm_mass: l.own_harm_mass,
            inner_tol: l.inner.tol,
            inner_max_iter: l.inner.max_iter as u32,
            inner_overrelax: l.inner.overrelax,
        },
        sinkhorn: SinkhornDefaults {
            eps: s.eps,
            tol: s.tol,
            max_iter: s.max_iter as u32,
            check_every: s.check_every as u32,
            overrelax: s.overrelax,
            exact_costs: match s.exact {
                ExactCosts::Auto => "auto",
                ExactCosts::On => "on",
                ExactCosts::Off => "off",
            }
            .to_string(),
        },
        storage: StorageDefaults {
            mode: storage_name(st.storage).to_string(),
            budget: st.budget as f64,
            neighbours: st.neighbours as u32,
            store_kernel: st.store_kernel,
            verify: st.verify,
        },
        embed: EmbedDefaults {
            seed: e.seed as u32,
            word_weight: e.word_weight,
        },
    }
}

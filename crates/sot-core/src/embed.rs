//! A zero-download, deterministic text embedder: hashed word and character
//! n-gram features, TF-IDF weighted, projected to a fixed dimension by signed
//! feature hashing.
//!
//! # Features
//!
//! A text is split into *words*: maximal runs of Unicode alphanumeric
//! characters, lowercased (`char::to_lowercase`). Its features are
//!
//! * the *word block*: every word (unigram) and every pair of adjacent words
//!   (bigram);
//! * the *char block*: the character n-grams, n = 3, 4, 5, of each word
//!   padded with boundary markers, `<word>` (fastText style; a one-letter
//!   word still gives the trigram `<a>`).
//!
//! Each feature is identified by a 64-bit hash ([`feature ids`](fmix64)):
//! FNV-1a over the Unicode scalar values, started from a per-kind offset
//! (word, bigram, char n-gram), finished by the MurmurHash3 64-bit mixer.
//! Feature ids do not depend on the seed or the dimension, so one document
//! frequency table serves every embedder configuration.
//!
//! # Weights
//!
//! A feature occurring `tf` times in a text weighs `(1 + ln tf) * idf`, where
//! `idf = ln((1 + N) / (1 + df)) + 1` (scikit-learn's smooth idf) with `df`
//! read from a [`DocFreq`] table of [`DF_BUCKETS`] hashed buckets over `N`
//! documents, or `idf = 1` without a table. `df` is clamped to `N`, so
//! `idf >= 1`. The word block and the char block are each normalised to unit
//! length and concatenated with factors `sqrt(word_weight)` and
//! `sqrt(1 - word_weight)`: before projection the vector has unit length and
//! the cosine of two texts is `word_weight * cos_word + (1 - word_weight) *
//! cos_char`. The default `word_weight` is 0.5.
//!
//! # Projection
//!
//! Every feature adds its weight to one of `dim` output coordinates with a
//! sign, both taken from a second hash of its id mixed with the seed
//! (signed feature hashing, which preserves inner products in expectation).
//! The result is normalised to unit length. Should a tiny text's few features
//! cancel exactly, the projection is redone with the next salt, so a row is
//! never zero.
//!
//! Each row is computed by the same sequential code, so the output is
//! bit-identical whatever the number of threads. Hashes use only integer
//! arithmetic and are the same on every platform; changing them changes the
//! vectors (the `sot-hash-v1` id of the TypeScript embedder names this
//! version). Tokenisation follows the Unicode tables of Rust's standard
//! library, which only grow with new Unicode versions.

use crate::control::{Control, Progress};
use crate::error::{ErrorKind, Result, SotError};
use ndarray::Array2;
use rayon::prelude::*;
use std::sync::OnceLock;

/// Buckets of a document-frequency table (2^20).
pub const DF_BUCKETS: usize = 1 << 20;
const DF_SHIFT: u32 = 64 - 20;

/// Texts per block between cancellation checks and progress reports.
const BLOCK: usize = 2048;

#[derive(Debug, Clone, PartialEq)]
pub struct EmbedOptions {
    /// Output dimension (default 512).
    pub dim: usize,
    /// Seed of the projection (coordinates and signs); features do not depend on it.
    pub seed: u64,
    /// Share of the word block in the cosine, in [0, 1] (default 0.5).
    pub word_weight: f64,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        EmbedOptions {
            dim: 512,
            seed: 0,
            word_weight: 0.5,
        }
    }
}

impl EmbedOptions {
    pub fn validate(&self) -> Result<()> {
        if self.dim == 0 || self.dim > 1 << 20 {
            return Err(SotError::new(
                ErrorKind::InvalidOption,
                format!("dim must be between 1 and {}, got {}", 1 << 20, self.dim),
            ));
        }
        if !(self.word_weight.is_finite() && (0.0..=1.0).contains(&self.word_weight)) {
            return Err(SotError::new(
                ErrorKind::InvalidOption,
                format!("wordWeight must be in [0, 1], got {}", self.word_weight),
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- hashing

const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const TAG_WORD: u64 = 0x5772_6400_0000_0001;
const TAG_BIGRAM: u64 = 0x4269_6700_0000_0002;
const TAG_CHAR: u64 = 0x4368_7200_0000_0003;
const TAG_PROJECT: u64 = 0x5072_6a00_0000_0004;

#[inline(always)]
fn fnv_step(h: u64, c: char) -> u64 {
    (h ^ c as u64).wrapping_mul(FNV_PRIME)
}

/// MurmurHash3's 64-bit finaliser: every input bit affects every output bit.
#[inline(always)]
pub fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

#[inline(always)]
fn bigram_id(a: u64, b: u64) -> u64 {
    fmix64(a.rotate_left(23) ^ b.wrapping_mul(FNV_PRIME) ^ TAG_BIGRAM)
}

#[inline(always)]
fn bucket(id: u64) -> usize {
    (id >> DF_SHIFT) as usize
}

/// Calls `word(chars)` for every lowercased word of `text`; `buf` is scratch.
#[inline]
fn for_each_word(text: &str, buf: &mut Vec<char>, mut word: impl FnMut(&[char])) {
    buf.clear();
    buf.push('<');
    for c in text.chars() {
        if c.is_ascii() {
            if c.is_ascii_alphanumeric() {
                buf.push(c.to_ascii_lowercase());
                continue;
            }
        } else if c.is_alphanumeric() {
            buf.extend(c.to_lowercase());
            continue;
        }
        if buf.len() > 1 {
            word(buf);
            buf.truncate(1);
        }
    }
    if buf.len() > 1 {
        word(buf);
    }
}

/// The word features (unigrams, bigrams) and char n-gram features of a text,
/// as unsorted ids. `buf` is `<` followed by the word's characters.
fn features(text: &str, buf: &mut Vec<char>, words: &mut Vec<u64>, chars: &mut Vec<u64>) {
    words.clear();
    chars.clear();
    let mut prev: Option<u64> = None;
    for_each_word(text, buf, |w| {
        // word id over the characters without the leading marker
        let id = fmix64(
            w[1..]
                .iter()
                .fold(FNV_OFFSET ^ TAG_WORD, |h, &c| fnv_step(h, c)),
        );
        words.push(id);
        if let Some(p) = prev {
            words.push(bigram_id(p, id));
        }
        prev = Some(id);
        // n-grams of "<word>": the closing marker is a virtual last char
        let len = w.len() + 1;
        let at = |i: usize| if i < w.len() { w[i] } else { '>' };
        for start in 0..len.saturating_sub(2) {
            let mut h = FNV_OFFSET ^ TAG_CHAR;
            for n in 1..=5.min(len - start) {
                h = fnv_step(h, at(start + n - 1));
                if n >= 3 {
                    chars.push(fmix64(h));
                }
            }
        }
    });
}

/// Counts occurrences of feature ids: an open-addressing table reused from
/// text to text, cleared slot by slot.
#[derive(Default)]
struct Counter {
    keys: Vec<u64>,
    counts: Vec<u32>,
    used: Vec<usize>,
}

impl Counter {
    /// `(id, tf)` for each distinct id of `ids`, in order of first occurrence.
    fn count(&mut self, ids: &[u64], out: &mut Vec<(u64, u32)>) {
        let want = (2 * ids.len()).next_power_of_two().max(1024);
        if self.keys.len() < want {
            self.keys = vec![0; want];
            self.counts = vec![0; want];
        }
        let mask = self.keys.len() - 1;
        for &id in ids {
            // ids are mixed hashes: their low bits index the table directly
            let mut slot = id as usize & mask;
            loop {
                if self.counts[slot] == 0 {
                    self.keys[slot] = id;
                    self.counts[slot] = 1;
                    self.used.push(slot);
                    break;
                }
                if self.keys[slot] == id {
                    self.counts[slot] += 1;
                    break;
                }
                slot = (slot + 1) & mask;
            }
        }
        out.clear();
        for &slot in &self.used {
            out.push((self.keys[slot], self.counts[slot]));
            self.counts[slot] = 0;
        }
        self.used.clear();
    }
}

// ---------------------------------------------------------------- document frequencies

/// Document frequencies over [`DF_BUCKETS`] hashed buckets: how many documents
/// contain a feature of each bucket, and how many documents were counted.
/// Counts saturate at `u32::MAX`; updates and merges commute.
#[derive(Debug, Clone, PartialEq)]
pub struct DocFreq {
    counts: Vec<u32>,
    docs: u64,
}

impl Default for DocFreq {
    fn default() -> Self {
        DocFreq::new()
    }
}

/// Per-batch bucket counts: the sorted buckets present in the batch and how
/// many of its documents contain each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DocFreqBatch {
    pub buckets: Vec<u32>,
    pub counts: Vec<u32>,
    pub docs: u64,
}

impl DocFreq {
    pub fn new() -> Self {
        DocFreq {
            counts: vec![0; DF_BUCKETS],
            docs: 0,
        }
    }

    /// A table from its parts (`counts` must have [`DF_BUCKETS`] entries).
    pub fn from_parts(counts: Vec<u32>, docs: u64) -> Result<Self> {
        check_table(&counts)?;
        Ok(DocFreq { counts, docs })
    }

    pub fn counts(&self) -> &[u32] {
        &self.counts
    }

    pub fn docs(&self) -> u64 {
        self.docs
    }

    /// Counts the features of `texts` (in parallel).
    pub fn update(&mut self, texts: &[&str]) {
        let batch = doc_freq_batch(texts, &Control::default()).expect("no cancellation");
        self.apply(&batch);
    }

    /// Adds a batch computed by [`doc_freq_batch`].
    pub fn apply(&mut self, batch: &DocFreqBatch) {
        for (&b, &c) in batch.buckets.iter().zip(&batch.counts) {
            let slot = &mut self.counts[b as usize];
            *slot = slot.saturating_add(c);
        }
        self.docs += batch.docs;
    }

    /// Adds another table.
    pub fn merge(&mut self, other: &DocFreq) {
        self.counts
            .par_iter_mut()
            .zip(other.counts.par_iter())
            .for_each(|(a, b)| *a = a.saturating_add(*b));
        self.docs += other.docs;
    }

    pub fn idf(&self) -> Idf<'_> {
        Idf {
            counts: &self.counts,
            docs: self.docs,
        }
    }
}

fn check_table(counts: &[u32]) -> Result<()> {
    if counts.len() != DF_BUCKETS {
        return Err(SotError::new(
            ErrorKind::Shape,
            format!(
                "a document-frequency table has {DF_BUCKETS} buckets, got {}",
                counts.len()
            ),
        ));
    }
    Ok(())
}

/// The per-bucket document counts of a batch of texts: parallel over blocks of
/// texts, exact and independent of the number of threads.
pub fn doc_freq_batch(texts: &[&str], ctl: &Control) -> Result<DocFreqBatch> {
    let mut table: Vec<u32> = Vec::new();
    let mut reporter = ctl.reporter();
    for (b, block) in texts.chunks(BLOCK).enumerate() {
        ctl.check()?;
        let lists: Vec<Vec<u32>> = block
            .par_iter()
            .map_init(Scratch::default, |s, text| {
                features(text, &mut s.buf, &mut s.words, &mut s.chars);
                // distinct buckets, marked in a bitset cleared after use
                if s.seen.is_empty() {
                    s.seen = vec![0u64; DF_BUCKETS / 64];
                }
                let mut ids: Vec<u32> = Vec::with_capacity(s.words.len() + s.chars.len());
                for &id in s.words.iter().chain(&s.chars) {
                    let b = bucket(id);
                    let (w, bit) = (b / 64, 1u64 << (b % 64));
                    if s.seen[w] & bit == 0 {
                        s.seen[w] |= bit;
                        ids.push(b as u32);
                    }
                }
                for &b in &ids {
                    s.seen[b as usize / 64] = 0;
                }
                ids
            })
            .collect();
        if table.is_empty() {
            table = vec![0; DF_BUCKETS];
        }
        for ids in &lists {
            for &i in ids {
                table[i as usize] += 1;
            }
        }
        let done = (b * BLOCK + block.len()).min(texts.len());
        reporter.report(progress("docfreq", done, texts.len()), false);
    }
    reporter.report(progress("docfreq", texts.len(), texts.len()), true);
    let mut out = DocFreqBatch {
        docs: texts.len() as u64,
        ..Default::default()
    };
    for (i, &c) in table.iter().enumerate() {
        if c > 0 {
            out.buckets.push(i as u32);
            out.counts.push(c);
        }
    }
    Ok(out)
}

fn progress(stage: &'static str, done: usize, total: usize) -> Progress {
    Progress {
        stage,
        iteration: done,
        max_iterations: total,
        error: f64::NAN,
        eps: f64::NAN,
    }
}

/// Inverse document frequencies read from a borrowed table.
#[derive(Debug, Clone, Copy)]
pub struct Idf<'a> {
    counts: &'a [u32],
    docs: u64,
}

impl<'a> Idf<'a> {
    /// A view of a table held elsewhere (e.g. by JavaScript).
    pub fn new(counts: &'a [u32], docs: u64) -> Result<Self> {
        check_table(counts)?;
        Ok(Idf { counts, docs })
    }

    #[inline(always)]
    fn prefetch(&self, id: u64) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch hint never faults; the pointer is in bounds.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(self.counts.as_ptr().add(bucket(id)) as *const i8);
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = id;
    }

    /// `ln((1 + N) / (1 + df)) + 1` with `df` clamped to `N`.
    #[inline]
    fn of(&self, id: u64, ln_n1: f64) -> f64 {
        let df = (self.counts[bucket(id)] as u64).min(self.docs);
        ln_n1 - ln1p_count(df) + 1.0
    }
}

/// `1 + ln tf` (most features occur once).
#[inline]
fn sublinear_tf(tf: u32) -> f64 {
    if tf == 1 {
        1.0
    } else {
        1.0 + (tf as f64).ln()
    }
}

/// `ln(1 + k)`, from a table for small `k`.
#[inline]
fn ln1p_count(k: u64) -> f64 {
    const SMALL: usize = 1 << 16;
    static TABLE: OnceLock<Vec<f64>> = OnceLock::new();
    let t = TABLE.get_or_init(|| (0..SMALL).map(|k| (k as f64).ln_1p()).collect());
    if (k as usize) < SMALL {
        t[k as usize]
    } else {
        (k as f64).ln_1p()
    }
}

// ---------------------------------------------------------------- embedding

#[derive(Default)]
struct Scratch {
    buf: Vec<char>,
    words: Vec<u64>,
    chars: Vec<u64>,
    counter: Counter,
    seen: Vec<u64>,
    word_runs: Vec<(u64, u32)>,
    char_runs: Vec<(u64, u32)>,
    weights: Vec<f64>,
    acc: Vec<f64>,
}

/// Whether a text has at least one word.
fn has_word(text: &str) -> bool {
    text.chars().any(char::is_alphanumeric)
}

/// Embeds `texts` as the rows of an `n x dim` matrix of unit vectors.
/// A text without words is an `ERR_EMPTY` error naming its index.
pub fn embed_texts(
    texts: &[&str],
    opts: &EmbedOptions,
    idf: Option<Idf>,
    ctl: &Control,
) -> Result<Array2<f32>> {
    opts.validate()?;
    let dim = opts.dim;
    if let Some(i) = texts.par_iter().position_first(|t| !has_word(t)) {
        return Err(SotError::at(
            ErrorKind::Empty,
            i,
            format!("texts[{i}] has no words (it is empty, whitespace or punctuation only)"),
        ));
    }
    let mut out = crate::pages::zeros2::<f32>(texts.len(), dim)?;
    let mut reporter = ctl.reporter();
    let flat = out.as_slice_mut().expect("standard layout");
    let ln_n1 = idf.map_or(0.0, |t| ((1 + t.docs) as f64).ln());
    let scales = [opts.word_weight.sqrt(), (1.0 - opts.word_weight).sqrt()];
    for (b, rows) in flat.chunks_mut(BLOCK * dim).enumerate() {
        ctl.check()?;
        let block = &texts[b * BLOCK..(b * BLOCK + rows.len() / dim)];
        rows.par_chunks_mut(dim)
            .zip(block.par_iter())
            .try_for_each_init(Scratch::default, |s, (row, text)| {
                ctl.check()?;
                embed_one(text, s, idf.as_ref(), ln_n1, scales, opts.seed, row);
                Ok::<(), SotError>(())
            })?;
        let done = b * BLOCK + block.len();
        reporter.report(progress("embed", done, texts.len()), false);
    }
    reporter.report(progress("embed", texts.len(), texts.len()), true);
    Ok(out)
}

fn embed_one(
    text: &str,
    s: &mut Scratch,
    idf: Option<&Idf>,
    ln_n1: f64,
    scales: [f64; 2],
    seed: u64,
    row: &mut [f32],
) {
    let Scratch {
        buf,
        words,
        chars,
        counter,
        word_runs,
        char_runs,
        weights,
        acc,
        ..
    } = s;
    features(text, buf, words, chars);
    counter.count(words, word_runs);
    counter.count(chars, char_runs);
    // the DF lookups miss the cache (a 4 MiB table): request them all first
    if let Some(t) = idf {
        for &(id, _) in word_runs.iter().chain(char_runs.iter()) {
            t.prefetch(id);
        }
    }
    // weights of both blocks, each scaled to norm `scales[block]`
    weights.clear();
    for (runs, scale) in [(&*word_runs, scales[0]), (&*char_runs, scales[1])] {
        let start = weights.len();
        let mut sq = 0.0;
        for &(id, tf) in runs {
            let w = sublinear_tf(tf) * idf.map_or(1.0, |t| t.of(id, ln_n1));
            sq += w * w;
            weights.push(w);
        }
        let k = scale / sq.sqrt();
        weights[start..].iter_mut().for_each(|w| *w *= k);
    }
    let dim = row.len();
    let ids = word_runs.iter().chain(char_runs.iter()).map(|r| r.0);
    for salt in 0..64u64 {
        acc.clear();
        acc.resize(dim, 0.0);
        let key = fmix64(seed ^ TAG_PROJECT).wrapping_add(salt.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        for (id, &w) in ids.clone().zip(weights.iter()) {
            let h = fmix64(id ^ key);
            let j = (((h >> 32) * dim as u64) >> 32) as usize;
            acc[j] += if h & 1 == 0 { w } else { -w };
        }
        // The vector has unit length before projection, so only an exact
        // cancellation of a few equal weights comes near zero: then re-project.
        let norm = acc.iter().map(|v| v * v).sum::<f64>().sqrt();
        if norm > 1e-6 {
            row.iter_mut()
                .zip(acc.iter())
                .for_each(|(o, v)| *o = (v / norm) as f32);
            return;
        }
    }
    // unreachable in practice (64 salts all cancelled): one coordinate
    row.fill(0.0);
    row[(fmix64(seed) % dim as u64) as usize] = 1.0;
}

/// The features of a text as `(id, weight)` pairs before projection, for
/// tests and diagnostics: word block then char block, each in order of first
/// occurrence (for the word block: each word, then its bigram with the previous one).
pub fn text_features(text: &str, opts: &EmbedOptions, idf: Option<Idf>) -> Vec<(u64, f64)> {
    let mut s = Scratch::default();
    let mut row = vec![0.0f32; opts.dim.max(1)];
    let ln_n1 = idf.map_or(0.0, |t| ((1 + t.docs) as f64).ln());
    let scales = [opts.word_weight.sqrt(), (1.0 - opts.word_weight).sqrt()];
    embed_one(
        text,
        &mut s,
        idf.as_ref(),
        ln_n1,
        scales,
        opts.seed,
        &mut row,
    );
    s.word_runs
        .iter()
        .chain(s.char_runs.iter())
        .map(|r| r.0)
        .zip(s.weights.iter().copied())
        .collect()
}

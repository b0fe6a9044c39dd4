//! Throughput of the built-in embedder and of the 2-D projection.
//!
//! `cargo run --release -p sot-core --example embed_bench [texts] [chars]`
//! (or `... embed_bench project [n] [d]` for the projection alone)
//! embeds synthetic English-like texts (~`chars` characters, default 500)
//! at dim 512 with an idf table, and prints texts/s for each stage.

use ndarray::Array2;
use sot_core::{doc_freq_batch, embed_texts, project_2d, Control, DocFreq, EmbedOptions};
use std::time::Instant;

const WORDS: &[&str] = &[
    "the",
    "model",
    "data",
    "write",
    "a",
    "story",
    "about",
    "how",
    "to",
    "make",
    "safe",
    "answer",
    "question",
    "please",
    "explain",
    "code",
    "function",
    "python",
    "list",
    "of",
    "steps",
    "recipe",
    "history",
    "science",
    "summarise",
    "article",
    "translate",
    "into",
    "french",
    "email",
    "customer",
    "service",
    "review",
    "product",
    "weather",
    "tomorrow",
    "poem",
    "nature",
    "ocean",
    "mountain",
    "network",
    "security",
    "database",
    "query",
    "optimise",
    "performance",
    "learning",
    "training",
    "dataset",
    "quality",
    "instruction",
    "response",
];

/// CPU seconds of this process so far (Linux), to report texts per CPU-second
/// on a machine shared with other work.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn per_cpu(n: usize, cpu0: Option<f64>) -> String {
    match (cpu0, cpu_seconds()) {
        (Some(a), Some(b)) if b > a => format!(", {:.0} texts per CPU-second", n as f64 / (b - a)),
        _ => String::new(),
    }
}

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mi", "ren", "tos", "ba", "dre", "fu", "gal", "hin", "jo", "quo", "sa", "ti",
    "ver", "wex", "yo", "zan", "pe", "nu",
];

fn main() {
    // `project N D`: only the projection, on N x D random points
    if std::env::args().nth(1).as_deref() == Some("project") {
        let a: Vec<usize> = std::env::args()
            .skip(2)
            .filter_map(|a| a.parse().ok())
            .collect();
        let (n, d) = (
            a.first().copied().unwrap_or(1_000_000),
            a.get(1).copied().unwrap_or(512),
        );
        let mut state = 1u64;
        let x = Array2::from_shape_fn((n, d), |(_, j)| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * (1.0 + 4.0 / (1 + j) as f32)
        });
        let t = Instant::now();
        let p = project_2d(x.view(), &Control::default()).unwrap();
        println!(
            "project_2d {n} x {d}: {:.2} s ({} rows out)",
            t.elapsed().as_secs_f64(),
            p.nrows()
        );
        return;
    }
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let n = args.first().copied().unwrap_or(50_000);
    let chars = args.get(1).copied().unwrap_or(500);
    let mut state = 7u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 33) as usize
    };
    let texts: Vec<String> = (0..n)
        .map(|i| {
            let mut s = String::with_capacity(chars + 16);
            while s.len() < chars {
                // a Zipf-like mix of common words and a large rare vocabulary
                if next() % 2 == 0 {
                    s.push_str(WORDS[next() % WORDS.len()]);
                } else {
                    let w = (next() % 50_000) * (next() % 50_000) / 50_000;
                    for k in 0..2 + w % 3 {
                        s.push_str(SYLLABLES[(w / 7usize.pow(k as u32) + k) % SYLLABLES.len()]);
                    }
                }
                // some rarer tokens so the vocabulary is not tiny
                if next() % 5 == 0 {
                    s.push_str(&format!("{}", next() % 10_000 + i % 7));
                }
                s.push(if next() % 12 == 0 { '.' } else { ' ' });
            }
            s
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
    let avg = texts.iter().map(|t| t.len()).sum::<usize>() as f64 / n as f64;
    println!(
        "{n} texts, {avg:.0} chars on average, {} threads",
        rayon::current_num_threads()
    );

    let (t, c) = (Instant::now(), cpu_seconds());
    let batch = doc_freq_batch(&refs, &Control::default()).unwrap();
    let mut df = DocFreq::new();
    df.apply(&batch);
    let s = t.elapsed().as_secs_f64();
    println!(
        "docfreq:        {:>9.0} texts/s ({s:.2} s{})",
        n as f64 / s,
        per_cpu(n, c)
    );

    let opts = EmbedOptions::default();
    for (label, idf) in [
        ("embed (no idf):", None),
        ("embed (idf):   ", Some(df.idf())),
    ] {
        let (t, c) = (Instant::now(), cpu_seconds());
        let e = embed_texts(&refs, &opts, idf, &Control::default()).unwrap();
        let s = t.elapsed().as_secs_f64();
        println!(
            "{label} {:>9.0} texts/s ({s:.2} s, {} x {}{})",
            n as f64 / s,
            e.nrows(),
            e.ncols(),
            per_cpu(n, c)
        );
    }

    let e: Array2<f32> = embed_texts(&refs, &opts, Some(df.idf()), &Control::default()).unwrap();
    let t = Instant::now();
    let p = project_2d(e.view(), &Control::default()).unwrap();
    let s = t.elapsed().as_secs_f64();
    println!(
        "project_2d:     {:>9.0} rows/s ({s:.2} s, {} x {})",
        n as f64 / s,
        p.nrows(),
        p.ncols()
    );
    let c = sot_core::project::principal_components(e.view(), 2, &Control::default()).unwrap();
    println!("  {} iterations, variances {:?}", c.iterations, c.values);
}

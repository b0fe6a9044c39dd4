#!/usr/bin/env python3
"""Markdown tables for docs/learner-defaults.md from the grid results (plain Python, no deps).

    python3 bench/quality/summarize.py [results/*.json]

Without arguments it reads every bench/quality/results/*.json. Seeds 0-2 are
the grid; seeds >= 10 are held out (the short list was chosen on seeds 0-2).
Per cell: harmful recall@80% per task (mean ± sd over seeds), mean over the
informative tasks, AUROC, ESS of the kept training weights, steps, time, and
the paired difference to a reference cell (the shipped defaults).
"""
import json
import statistics as st
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REF = (0.05, 1.0, 0.05)  # the defaults the grid was run against


def load(paths):
    runs = []
    for p in paths:
        runs += json.load(open(p))["runs"]
    return runs


def key(r):
    if r["method"] != "sot":
        return (r["method"], r.get("eps"))
    if r.get("extra"):
        tags = [f"step={r['step']}" if r.get("step") else "", r.get("cost") or "", "debiased" if r.get("debiased") else "", "no-anchor" if r.get("noAnchor") else ""]
        return ("sot+", (r["eps"], r["lambda"], r["tau"], " ".join(t for t in tags if t)))
    return ("sot", (r["eps"], r["lambda"], r["tau"]))


def fmt_key(k):
    m, v = k
    if m == "sot":
        return f"SOT eps={v[0]:g} λ={v[1]:g} τ={v[2]:g}"
    if m == "sot+":
        return f"SOT eps={v[0]:g} λ={v[1]:g} τ={v[2]:g} {v[3]}"
    return m if v is None else f"{m} eps={v:g}"


def ms(xs):
    if not xs:
        return ""
    if len(xs) == 1:
        return f"{xs[0]:.3f}"
    return f"{st.mean(xs):.3f}±{st.stdev(xs):.3f}"


def table(runs, tasks, informative, ref=REF, top=None, only=None):
    groups = defaultdict(list)
    for r in runs:
        groups[key(r)].append(r)
    ref_runs = {(r["task"], r["seed"]): r for r in groups.get(("sot", ref), [])}
    rows = []
    for k, rs in groups.items():
        if only and not only(k):
            continue
        inf = [r for r in rs if r["task"] in informative]
        score = st.mean(r["recall"] for r in inf) if inf else float("nan")
        diffs = [r["recall"] - ref_runs[(r["task"], r["seed"])]["recall"] for r in inf if (r["task"], r["seed"]) in ref_runs]
        wins = sum(d < 0 for d in diffs)
        losses = sum(d > 0 for d in diffs)
        rows.append((score, k, rs, diffs, wins, losses))
    rows.sort(key=lambda x: x[0])
    if top:
        rows = rows[:top]
    head = ["config"] + [f"recall {t}" for t in tasks] + ["mean (informative)", "benign retained", f"Δ vs {fmt_key(('sot', ref))} (W/L)", "AUROC (informative)", "ESS kept", "max train w", "steps (max)", "inner !conv", "ms"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for score, k, rs, diffs, wins, losses in rows:
        # learner figures over the informative tasks (gsm8k's flat weights would skew ESS)
        sot_rows = [r for r in rs if "steps" in r and r["task"] in informative] or [r for r in rs if "steps" in r]
        cells = [fmt_key(k)]
        for t in tasks:
            cells.append(ms([r["recall"] for r in rs if r["task"] == t]))
        cells.append(f"{score:.3f}")
        cells.append(f"{st.mean(r['retention'] for r in rs if r['task'] in informative):.3f}" if score == score else "")
        cells.append(f"{st.mean(diffs):+.3f} ({wins}/{losses})" if diffs else "")
        inf = [r for r in rs if r["task"] in informative]
        cells.append(f"{st.mean(r['auroc'] for r in inf):.3f}" if inf else "")
        if sot_rows:
            cells.append(f"{st.mean(r['ess'] for r in sot_rows):.2f}")
            cells.append(f"{max(r['maxTrainWeight'] for r in sot_rows):.0f}")
            cells.append(f"{st.mean(r['steps'] for r in sot_rows):.0f} ({max(r['steps'] for r in sot_rows)})")
            cells.append(str(sum(not r["innerConverged"] for r in sot_rows)) + ("" if all(r["converged"] for r in sot_rows) else f", {sum(not r['converged'] for r in sot_rows)} outer"))
        else:
            cells += ["", "", "", ""]
        cells.append(f"{st.mean(r['ms'] for r in rs):.0f}")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    paths = sys.argv[1:] or sorted(str(p) for p in (HERE / "results").glob("*.json"))
    runs, seen = [], set()
    for r in load(paths):
        k = (key(r), r["task"], r["seed"])
        if k not in seen:  # a cell run twice (same task, seed) is deterministic: keep one
            seen.add(k)
            runs.append(r)
    tasks = sorted({r["task"] for r in runs})
    # a task where every SOT grid cell keeps no harmful sample tells the cells nothing apart
    informative = [t for t in tasks if any(r["recall"] > 0 for r in runs if r["task"] == t and r["method"] == "sot" and not r.get("extra"))]
    grid = [r for r in runs if r["seed"] < 10]
    held = [r for r in runs if r["seed"] >= 10]
    print(f"# from {', '.join(paths)}\n# tasks {tasks}; informative (mean column) {informative}\n")
    print("## Grid, seeds 0-2: SOT cells\n")
    print(table(grid, tasks, informative, only=lambda k: k[0] == "sot"))
    print("\n## Grid, seeds 0-2: baselines and extras\n")
    print(table(grid, tasks, informative, only=lambda k: k[0] != "sot" or k[1] == REF))
    if held:
        htasks = sorted({r["task"] for r in held})
        print("\n## Held-out seeds 10-19 (short list chosen on seeds 0-2)\n")
        print(table(held, htasks, [t for t in htasks if t in informative]))


if __name__ == "__main__":
    main()

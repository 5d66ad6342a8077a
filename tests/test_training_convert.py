"""The bundled SmolLM2 GGUF becomes a trainable safetensors folder, once and atomically."""

from __future__ import annotations

import json
import math
import os

import pytest
import torch

from codeultra.errors import UserError
from codeultra.training.convert_gguf import MODELS_DIR_ENV, bundled_gguf_path, ensure_hf_model

pytestmark = pytest.mark.slow


def test_bundled_gguf_converts_once_to_a_working_model(tmp_path, monkeypatch):
    import gguf
    from gguf.quants import dequantize
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "models"))
    stale = tmp_path / "models" / ".smollm2-135m-instruct.tmp-999999999-x"  # a killed conversion
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")

    folder = ensure_hf_model("smollm2-135m")
    assert folder == tmp_path / "models" / "smollm2-135m-instruct"
    assert (folder / "model.safetensors").is_file() and not stale.exists()
    info = json.loads((folder / "codeultra-gguf.json").read_text())
    assert info["source"].endswith("SmolLM2-135M-Instruct.Q4_1.gguf")
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # a plain model: trainable and saveable

    # Weights equal the GGUF's own values, dequantized by the gguf reader.
    reader = gguf.GGUFReader(bundled_gguf_path("smollm2-135m"))
    embd = next(t for t in reader.tensors if t.name == "token_embd.weight")
    expected = torch.from_numpy(dequantize(embd.data, embd.tensor_type).copy())
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert torch.equal(model.get_input_embeddings().weight.detach(), expected)

    # And the model is a language model, not noise: low loss on plain chat text.
    tokenizer = AutoTokenizer.from_pretrained(folder)
    chat = [
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "The capital of France is Paris."},
    ]
    ids = tokenizer.apply_chat_template(chat, return_tensors="pt", return_dict=True)["input_ids"]
    assert "<|im_start|>" in tokenizer.decode(ids[0])
    with torch.no_grad():
        loss = model(input_ids=ids, labels=ids).loss.item()
    assert loss < math.log(len(tokenizer)) / 3  # uniform guessing would be ~10.8 nats

    mtime = os.stat(folder / "model.safetensors").st_mtime_ns
    assert ensure_hf_model("smollm2-135m") == folder  # cached: no second conversion
    assert os.stat(folder / "model.safetensors").st_mtime_ns == mtime


def test_unknown_models_are_refused(tmp_path):
    with pytest.raises(UserError, match="unknown GGUF model 'llama-9000'"):
        ensure_hf_model("llama-9000")
    with pytest.raises(UserError, match="GGUF file not found"):
        ensure_hf_model(tmp_path / "missing.gguf")
    assert ensure_hf_model(tmp_path) == tmp_path  # an HF folder passes through

"""Executability: answers run in the real sandbox under the validating stand-ins."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeultra.errors import UserError
from codeultra.metrics.executability import executability, validation_db
from codeultra.rlaif.apibench import ApiEntry, default_apibench_dir, load_api_database
from codeultra.sandbox import SandboxLimits

REPO = Path(__file__).resolve().parents[1]
LIMITS = SandboxLimits(timeout_s=4.0, cpu_s=4, memory_mb=1024)


def entry(api_call: str, example: str | None = None) -> ApiEntry:
    return ApiEntry("D", "F", "", "name", api_call, None, "", raw={"example_code": example})


HF_DB = [
    entry(
        "AutoModelForSequenceClassification.from_pretrained('org/clf')",
        "tok = AutoTokenizer.from_pretrained('org/clf-tokenizer')",
    ),
    entry("pipeline('image-classification', model='org/vit')"),
]
TH_DB = [entry("torch.hub.load(repo_or_dir='pytorch/vision', model='resnet50', pretrained=True)")]
TF_DB = [entry("hub.KerasLayer('https://tfhub.dev/google/imagenet/x/4')")]


def run(codes: list[str], hub: str, db: list[ApiEntry]) -> dict[str, dict]:
    """code -> its item, plus the summary under "_summary"."""
    result = executability([""] * len(codes), hub, db, workers=2, limits=LIMITS, codes=codes)
    assert result["n"] == len(codes)
    return dict(zip(codes, result["items"], strict=True)) | {"_summary": result}


HF_CODES = {
    "valid": """
from transformers import AutoTokenizer, AutoModelForSequenceClassification
import torch
tokenizer = AutoTokenizer.from_pretrained('org/clf-tokenizer')
model = AutoModelForSequenceClassification.from_pretrained('org/clf')
inputs = tokenizer(["great movie"], return_tensors="pt", padding=True)
with torch.no_grad():
    logits = model(**inputs).logits
label_id = int(logits.argmax(-1)[0])
probs, classes = torch.softmax(logits, -1).topk(2)
print(model.config.id2label[label_id], f"{probs[0][0].item():.2f}", " ".join(classes))
""",
    "pipeline_and_requests": """
from transformers import pipeline
from PIL import Image
import requests
image = Image.open(requests.get("https://example.com/cat.jpg", stream=True).raw)
classify = pipeline('image-classification', model='org/vit')
for result in classify(image):
    print(result["label"], round(result["score"], 3))
""",
    "unknown_id": "from transformers import AutoModel\nAutoModel.from_pretrained('org/made-up')",
    "unknown_pipeline_model": "from transformers import pipeline\npipeline('fill-mask', 'x/y')",
    "unknown_task": "from transformers import pipeline\npipeline('make-coffee', model='org/vit')",
    "pipeline_no_args": "from transformers import pipeline\npipeline()",
    "missing_id": "from transformers import AutoModel\nAutoModel.from_pretrained()",
    "placeholder": "from transformers import pipeline\nprint(pipeline(model='org/vit')(img_path))",
    "missing_import": "model = AutoModel.from_pretrained('org/clf')",
    "made_up_package": "import surely_not_a_real_package_xyz\n",
    "socket": "import socket\nsocket.create_connection(('93.184.216.34', 80), timeout=1)",
    "hang": "import time\nwhile True:\n    time.sleep(0.1)",
    "syntax": "def broken(:\n    pass",
    "user_module": """
import torch
from torch import nn
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
    def forward(self, x):
        raise ValueError("forward ran")
Net()(torch.zeros(4))
""",
    "decorators_and_apply": """
import requests
import torch
model = torch.nn.Linear(2, 2).apply(lambda layer: None)
model = model.apply(print)
model.eval()
try:
    raise requests.exceptions.HTTPError("404")
except requests.exceptions.RequestException:
    pass
@torch.no_grad()
def predict(x):
    return x * 2
assert predict(21) == 42
""",
    "empty": "",
    "after_failures": "x = 1\nprint(x + 1)",
}


@pytest.fixture(scope="module")
def hf_results() -> dict[str, dict]:
    return run(list(HF_CODES.values()), "huggingface", HF_DB)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("valid", None),
        ("pipeline_and_requests", None),
        ("unknown_id", "unknown_model"),
        ("unknown_pipeline_model", "unknown_model"),
        ("unknown_task", "bad_arguments"),
        ("pipeline_no_args", "bad_arguments"),
        ("missing_id", "bad_arguments"),
        ("placeholder", "runtime_error"),
        ("missing_import", "runtime_error"),
        ("made_up_package", "runtime_error"),
        ("socket", "network"),
        ("hang", "timeout"),
        ("syntax", "syntax"),
        ("user_module", "runtime_error"),
        ("decorators_and_apply", None),
        ("empty", "no_code"),
        ("after_failures", None),  # earlier network/timeout failures don't stop the run
    ],
)
def test_huggingface_stand_ins(hf_results: dict, name: str, reason: str | None) -> None:
    item = hf_results[HF_CODES[name]]
    assert item["reason"] == reason, item["detail"]
    assert item["status"] == ("ok" if reason is None else "fail")


def test_placeholders_counted_strictly_and_leniently(hf_results: dict) -> None:
    item = hf_results[HF_CODES["placeholder"]]
    assert "img_path" in item["detail"]
    assert item["lenient_reason"] is None and item["placeholders"] == ["img_path"]
    missing = hf_results[HF_CODES["missing_import"]]  # a module-like name is never filled
    assert missing["lenient_reason"] == "runtime_error" and missing["placeholders"] == []
    assert "forward ran" in hf_results[HF_CODES["user_module"]]["detail"]
    summary = hf_results["_summary"]
    assert summary["rate"] == pytest.approx(4 / len(HF_CODES))
    assert summary["rate_with_placeholders"] == pytest.approx(5 / len(HF_CODES))
    assert summary["counts"]["timeout"] == 1 and summary["counts"]["network"] == 1


def test_torchhub_and_tensorflow_stand_ins() -> None:
    th = {
        "import torch\nm = torch.hub.load('pytorch/vision', 'resnet50', pretrained=True)\n"
        "m.eval()\nout = m(torch.randn(1, 3, 224, 224))\nprint(out.shape)": None,
        "import torch\ntorch.hub.load('pytorch/vision:v0.10.0', model='resnet50')": None,
        "import torch\ntorch.hub.load('pytorch/vision', 'resnet5000')": "unknown_model",
        "import torch\ntorch.hub.load('someone/else', 'resnet50')": "unknown_model",
        "import torch\ntorch.hub.load('pytorch/vision', 'resnet50', colour='red')": "bad_arguments",
        "import torch\ntorch.hub.load('pytorch/vision')": "bad_arguments",
    }
    tf = {
        "import tensorflow as tf\nimport tensorflow_hub as hub\nmodel = tf.keras.Sequential([\n"
        "    hub.KerasLayer('https://tfhub.dev/google/imagenet/x/4', input_shape=(224, 224, 3),"
        " trainable=False),\n    tf.keras.layers.Dense(5, activation='softmax')])\n"
        "model.compile(optimizer='adam', loss='sparse_categorical_crossentropy')": None,
        "import tensorflow_hub as hub\nhub.KerasLayer('https://tfhub.dev/google/nope/1')": (
            "unknown_model"
        ),
        "import tensorflow_hub as hub\n"
        "hub.KerasLayer('https://tfhub.dev/google/imagenet/x/4', colour=1)": "bad_arguments",
        "import tensorflow_hub as hub\n"
        "hub.load('https://tfhub.dev/google/imagenet/x/4', 1, 2, 3)": "bad_arguments",
    }
    for hub, db, cases in (("torchhub", TH_DB, th), ("tensorflowhub", TF_DB, tf)):
        results = run(list(cases), hub, db)
        for code, reason in cases.items():
            assert results[code]["reason"] == reason, (code, results[code]["detail"])


def test_validation_db_from_real_databases() -> None:
    try:
        apibench = default_apibench_dir(REPO)
    except UserError:
        pytest.skip("shared APIBench data not present")
    th = validation_db(load_api_database(apibench, "torchhub"), "torchhub")["torchhub"]
    assert "resnet50" in th["pytorch/vision"]["models"]
    assert "NVIDIA/DeepLearningExamples" in th  # the ":torchhub" branch is dropped
    tf = validation_db(load_api_database(apibench, "tensorflowhub"), "tensorflowhub")
    assert "tfhub.dev/google/universal-sentence-encoder/4" in tf["tf_handles"]
    hf = validation_db(load_api_database(apibench, "huggingface"), "huggingface")
    assert "princeton-nlp/unsup-simcse-roberta-base" in hf["hf_ids"]
    assert "text-classification" in hf["hf_tasks"]

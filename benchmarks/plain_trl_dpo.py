"""DPO with TRL alone, no codeultra: the baseline that bench_train.py compares train() with."""

import argparse
import json
import resource
import time

from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoTokenizer
from trl import DPOConfig, DPOTrainer

p = argparse.ArgumentParser()
p.add_argument("--model", required=True)
p.add_argument("--data", required=True, help="pairs folder with train.parquet")
p.add_argument("--output-dir", required=True)
p.add_argument("--max-steps", type=int, default=8)
p.add_argument("--batch-size", type=int, default=2)
p.add_argument("--max-length", type=int, default=512)
p.add_argument("--learning-rate", type=float, default=1e-4)
p.add_argument("--seed", type=int, default=42)
p.add_argument("--lora-r", type=int, default=16)
p.add_argument("--lora-alpha", type=int, default=32)
a = p.parse_args()

args = DPOConfig(
    output_dir=a.output_dir,
    use_cpu=True,
    bf16=False,
    activation_checkpointing=False,
    max_steps=a.max_steps,
    per_device_train_batch_size=a.batch_size,
    max_length=a.max_length,
    learning_rate=a.learning_rate,
    seed=a.seed,
    save_strategy="no",
    logging_steps=1,
    report_to="none",
    model_init_kwargs={"dtype": "float32"},
)
lora = LoraConfig(
    r=a.lora_r,
    lora_alpha=a.lora_alpha,
    lora_dropout=0.0,
    target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    task_type="CAUSAL_LM",
)
train = load_dataset("parquet", data_files={"train": f"{a.data}/train.parquet"})["train"]
tokenizer = AutoTokenizer.from_pretrained(a.model)
trainer = DPOTrainer(
    a.model, args=args, train_dataset=train, processing_class=tokenizer, peft_config=lora
)
cpu_start = time.process_time()
runtime = trainer.train().metrics["train_runtime"]
cpu_s = time.process_time() - cpu_start
tokens = trainer._total_train_tokens
peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
result = {"tokens": tokens, "runtime_s": runtime, "tokens_per_s": tokens / runtime, "cpu_s": cpu_s}
print("BENCH_JSON " + json.dumps(result | {"peak_rss_mb": peak_rss_mb}))

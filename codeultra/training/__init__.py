"""Training with TRL (SFT, DPO) from one YAML recipe per run; heavy imports happen on use."""

from codeultra.training.config import TrainingRecipe, load_training_recipe
from codeultra.training.convert_gguf import ensure_hf_model
from codeultra.training.run import train

__all__ = ["TrainingRecipe", "ensure_hf_model", "load_training_recipe", "train"]

"""codeultra: code-preference datasets with AI feedback, and alignment of code models on them."""

__version__ = "0.1.0"

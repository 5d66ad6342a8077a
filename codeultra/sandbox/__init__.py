"""Sandboxed execution of untrusted Python, and extraction of code from chat answers."""

from codeultra.sandbox.extract import extract_code, extract_function_body
from codeultra.sandbox.runner import SandboxLimits, SandboxResult, run_many, run_python

__all__ = [
    "SandboxLimits",
    "SandboxResult",
    "extract_code",
    "extract_function_body",
    "run_many",
    "run_python",
]

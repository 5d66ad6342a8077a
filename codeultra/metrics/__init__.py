"""APIBench metrics: Gorilla's AST match, ROUGE-L and CodeBLEU on code, executability."""

from codeultra.metrics.ast_match import load_gorilla_responses, score_ast
from codeultra.metrics.codebleu_metric import codebleu_one, codebleu_scores
from codeultra.metrics.executability import executability
from codeultra.metrics.report import eval_apibench_file, load_responses, score_all
from codeultra.metrics.rouge import rouge_l, rouge_l_many

__all__ = [
    "codebleu_one",
    "codebleu_scores",
    "eval_apibench_file",
    "executability",
    "load_gorilla_responses",
    "load_responses",
    "rouge_l",
    "rouge_l_many",
    "score_all",
    "score_ast",
]

"""Code extraction from messy chat answers."""

from __future__ import annotations

import pytest

from codeultra.sandbox import extract_code, extract_function_body

DOUBLE = "def f(x):\n    return x * 2\n"

# (answer, expected extraction): the shapes chat models actually produce.
CORPUS = {
    "fence with prose around": (
        "Sure! Here's the solution:\n\n```python\n" + DOUBLE + "```\n\nThis doubles x.",
        DOUBLE,
    ),
    "py tag, never closed": ("Here you go:\n```py\n" + DOUBLE + "\n", DOUBLE),
    "untagged fence": ("Answer:\n```\n" + DOUBLE + "```", DOUBLE),
    "capitalised tag with attributes": ("```Python title=sol.py\n" + DOUBLE + "```", DOUBLE),
    "no fence at all": (DOUBLE, DOUBLE),
    "prose around unfenced code": (
        "Here is the function:\ndef f(x):\n    if x > 1:\n        return x * 2\n    return 0\n"
        "This doubles x when it is large.\n",
        "def f(x):\n    if x > 1:\n        return x * 2\n    return 0\n",
    ),
    "markdown indented code": (
        "The function is:\n\n    def f(x):\n        return x * 2\n\nCall it as f(2).",
        DOUBLE,
    ),
    "reasoning block ignored": (
        "<think>maybe\n```python\nwrong()\n```\n</think>\nFinal:\n```python\n" + DOUBLE + "```",
        DOUBLE,
    ),
    "closing think tag only": ("wrong()\n</think>\n```python\n" + DOUBLE + "```", DOUBLE),
    "tilde fence holding backticks": (
        "~~~python\ndef f(x):\n    s = '```'\n    return x\n~~~",
        "def f(x):\n    s = '```'\n    return x\n",
    ),
    "four-backtick fence holding a fence": (
        "````python\ndef f(x):\n    '''\n    ```\n    '''\n    return x\n````\nbye",
        "def f(x):\n    '''\n    ```\n    '''\n    return x\n",
    ),
    "fence in a list item": (
        "1. Define it:\n   ```python\n   def f(x):\n       return x * 2\n   ```\n2. Done.",
        DOUBLE,
    ),
    "windows line ends": ("```python\r\ndef f(x):\r\n    return x * 2\r\n```\r\n", DOUBLE),
    "closing fence glued to code": ("```python\ndef f(x):\n    return x * 2```", DOUBLE),
    "doctest transcript": (
        "```python\n>>> def f(x):\n...     return x * 2\n...\n>>> f(2)\n4\n```",
        "def f(x):\n    return x * 2\nf(2)\n",
    ),
    "other languages and output skipped, usage dropped, imports joined": (
        "Install:\n```bash\npip install nothing\n```\nCode:\n```python\nimport math\n```\n"
        "```python\ndef f(x):\n    return math.sqrt(x)\n```\nUsage:\n```python\nprint(f(4))\n```\n"
        "Output:\n```text\n2.0\n```",
        "import math\n\ndef f(x):\n    return math.sqrt(x)\n",
    ),
    "python tag preferred over untagged": (
        "```\nprint('untagged')\n```\n```python\n" + DOUBLE + "```",
        DOUBLE,
    ),
    "no definitions: longest block": (
        "```python\nx = 1\n```\nor better\n```python\nx = int(input())\nprint(x * 2)\n```",
        "x = int(input())\nprint(x * 2)\n",
    ),
    "pure prose": ("I am sorry, I cannot help with that request.", ""),
    "empty": ("", ""),
}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_extract_code_corpus(name):
    answer, expected = CORPUS[name]
    assert extract_code(answer) == expected


def test_revised_function_overrides_first_attempt_but_keeps_helpers():
    answer = (
        "First try:\n```python\ndef helper(y):\n    return y + 1\n\ndef f(x):\n    return 0\n```\n"
        "Oops, fixed:\n```python\ndef f(x):\n    return helper(x) * 2\n```"
    )
    namespace: dict = {}
    exec(extract_code(answer), namespace)
    assert namespace["f"](3) == 8


def test_other_language():
    answer = "Run:\n```bash\nls -la\n```\nthen\n```python\nprint(1)\n```"
    assert extract_code(answer, "bash") == "ls -la\n"


PROMPT = (
    "from typing import List\n\n\n"
    "def add(a: int, b: int) -> int:\n"
    '    """Add two numbers.\n    >>> add(1, 2)\n    3\n    """\n'
)

ANSWERS = {
    "full function with demo code": (
        "Sure:\n```python\nfrom typing import List\n\ndef add(a: int, b: int) -> int:\n"
        "    return a + b\n\nprint(add(1, 2))\nassert add(1, 1) == 3\n"
        "for i in range(3):\n    print(i)\nif __name__ == '__main__':\n    print('demo')\n```\n"
        "It adds."
    ),
    "body indented": "```python\n    return a + b\n```",
    "body at column 0": "The body:\n```python\nresult = a + b\nreturn result\n```",
    "plain body": "    return a + b",
    "first line lost its indent": "total = a + b\n    return total",
    "decorated full function": (
        "```python\nimport functools\n\n@functools.lru_cache\ndef add(a, b):\n    return a + b\n```"
    ),
    "prompt echoed with body": "```python\n" + PROMPT + "    return a + b\n```",
    "helper function then entry point": (
        "```python\ndef _plus(x, y):\n    return x + y\n\n\ndef add(a, b):\n"
        "    return _plus(a, b)\n```"
    ),
}


@pytest.mark.parametrize("name", sorted(ANSWERS))
def test_extract_function_body_makes_working_program(name, capsys):
    completion = extract_function_body(ANSWERS[name], PROMPT, "add")
    namespace: dict = {"__name__": "__main__"}
    exec(PROMPT + completion, namespace)
    assert namespace["add"](2, 3) == 5
    assert capsys.readouterr().out == ""  # demo prints, loops and __main__ blocks are gone


def test_extract_function_body_of_nothing_is_empty():
    assert extract_function_body("No idea.", PROMPT, "add") == ""

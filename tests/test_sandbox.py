"""The sandbox with real child processes: limits, isolation, no network, parallel runs."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from codeultra.errors import UserError
from codeultra.sandbox import SandboxLimits, run_many, run_python
from codeultra.sandbox import runner as sandbox_runner


def _alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (a container's PID 1 may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _wait_dead(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def listener():
    """A real listening TCP socket on 127.0.0.1, with its port."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.5)
    yield server, server.getsockname()[1]
    server.close()


def _connect_program(port: int) -> str:
    return (
        "import socket\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
        "s.settimeout(5)\n"
        f"s.connect(('127.0.0.1', {port}))\n"
        "print('connected')\n"
    )


def _accepted(server: socket.socket) -> bool:
    try:
        conn, _ = server.accept()
    except TimeoutError:
        return False
    conn.close()
    return True


def test_ok_program_captures_stdout_and_stdin():
    result = run_python("import sys\nprint('hello', sys.stdin.read().upper())", stdin="abc")
    assert result.status == "ok" and result.ok
    assert result.returncode == 0
    assert result.stdout == "hello ABC\n"
    assert result.stderr == ""
    assert result.duration_s > 0


def test_exception_is_error_with_traceback():
    result = run_python("def f():\n    raise ValueError('boom')\nf()\n")
    assert result.status == "error" and not result.ok
    assert result.returncode == 1
    assert "ValueError: boom" in result.stderr
    assert "_child.py" not in result.stderr.splitlines()[1]  # the user's frame comes first


def test_syntax_error_and_nonzero_exit_are_errors():
    assert run_python("def f(:\n").status == "error"
    result = run_python("import sys\nsys.exit(3)")
    assert (result.status, result.returncode) == ("error", 3)


def test_installed_packages_and_exit_builtin_are_available():
    result = run_python("import yaml\nprint(yaml.safe_dump({'a': 1}).strip())\nexit(0)\n")
    assert result.ok, result.stderr
    assert result.stdout == "a: 1\n"


def test_signal_is_killed():
    result = run_python("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)")
    assert result.status == "killed"
    assert result.returncode == -signal.SIGTERM


def test_infinite_loop_stops_at_wall_timeout():
    result = run_python("while True:\n    pass\n", SandboxLimits(timeout_s=1.0, cpu_s=60))
    assert result.status == "timeout"
    assert result.returncode == -signal.SIGKILL
    assert 1.0 <= result.duration_s < 10.0


def test_timeout_kills_the_whole_process_group():
    code = (
        "import os, sys, time\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    time.sleep(120)\n"
        "    os._exit(0)\n"
        "print(pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    result = run_python(code, SandboxLimits(timeout_s=1.0))
    assert result.status == "timeout"
    assert _wait_dead(int(result.stdout))


def test_background_children_do_not_outlive_a_normal_exit():
    code = "import os, time\npid = os.fork()\nif pid == 0:\n    time.sleep(120)\nprint(pid)\n"
    result = run_python(code)
    assert result.status == "ok"
    assert _wait_dead(int(result.stdout))


def test_cpu_limit_kills_busy_loop():
    result = run_python("while True:\n    pass\n", SandboxLimits(timeout_s=60.0, cpu_s=1))
    assert result.status == "timeout"  # the CPU clock ran out, not the wall clock
    assert result.returncode == -signal.SIGXCPU


def test_memory_limit():
    allocate = "data = bytearray(1024 * 1024 * 1024)\nprint(len(data))\n"
    result = run_python(allocate, SandboxLimits(memory_mb=256))
    assert result.status == "memory"
    assert "MemoryError" in result.stderr
    assert run_python(allocate, SandboxLimits(memory_mb=4096)).status == "ok"  # the control


def test_file_size_limit():
    write = "with open('big.bin', 'wb') as f:\n    f.write(b'x' * {n})\n"
    result = run_python(write.format(n=3 * 1024 * 1024), SandboxLimits(file_size_mb=1))
    assert result.status == "error"
    assert "File too large" in result.stderr
    assert run_python(write.format(n=512 * 1024), SandboxLimits(file_size_mb=1)).ok


def test_process_limit():
    code = (
        "import os, time\n"
        "for _ in range(50):\n"
        "    if os.fork() == 0:\n"
        "        time.sleep(30)\n"
        "        os._exit(0)\n"
    )
    result = run_python(code, SandboxLimits(max_processes=4))
    assert result.status == "error"
    assert "BlockingIOError" in result.stderr


def test_network_connect_is_refused_inside_but_works_outside(listener):
    server, port = listener
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    assert _accepted(server)  # the test's own connection: the setup can detect one

    result = run_python(_connect_program(port))
    assert result.status == "error"
    assert "connected" not in result.stdout
    assert "PermissionError" in result.stderr
    assert not _accepted(server)

    name_lookup = run_python("import socket\nsocket.getaddrinfo('localhost', 80)")
    assert "PermissionError" in name_lookup.stderr


def test_network_true_allows_the_same_program(listener):
    server, port = listener
    result = run_python(_connect_program(port), SandboxLimits(network=True))
    assert result.status == "ok", result.stderr
    assert result.stdout == "connected\n"
    assert _accepted(server)


def test_audit_hook_alone_blocks_network_and_escapes(listener, monkeypatch):
    """Where no network namespace can be made, the in-process guard still holds."""
    monkeypatch.setattr(sandbox_runner, "_TRY_NETNS", False)
    server, port = listener
    result = run_python(_connect_program(port))
    assert result.status == "error"
    assert "PermissionError" in result.stderr
    assert not _accepted(server)
    spawn = run_python("import subprocess\nsubprocess.run(['true'])")
    assert "PermissionError" in spawn.stderr
    assert "PermissionError" in run_python("import ctypes").stderr


def test_network_namespace_covers_programs_the_sandbox_starts(listener):
    """A fresh interpreter started inside has no audit hook; the namespace must stop it."""
    server, port = listener
    probe = run_python("import os\nprint(os.readlink('/proc/self/ns/net'))")
    if probe.stdout.strip() == os.readlink("/proc/self/ns/net"):
        pytest.skip("this kernel/container does not allow a private network namespace")
    inner = _connect_program(port)
    code = (
        "import subprocess, sys\n"
        f"p = subprocess.run([sys.executable, '-c', {inner!r}], capture_output=True, text=True)\n"
        "print(p.returncode, p.stdout.strip())\n"
        "print(p.stderr, file=sys.stderr)\n"
    )
    result = run_python(code)
    assert result.status == "ok", result.stderr
    assert result.stdout.split()[0] != "0"
    assert "connected" not in result.stdout
    assert "unreachable" in result.stderr.lower() or "refused" in result.stderr.lower()
    assert not _accepted(server)


def test_environment_is_scrubbed(monkeypatch):
    monkeypatch.setenv("FAKE_API_KEY", "sk-do-not-leak")
    code = "import os\nprint(sorted(os.environ))\nprint(os.environ['HOME'] == os.getcwd())\n"
    result = run_python(code)
    assert result.ok
    assert "FAKE_API_KEY" not in result.stdout
    assert "sk-do-not-leak" not in result.stdout
    assert result.stdout.splitlines()[1] == "True"


def test_files_are_importable_and_scratch_is_removed():
    files = {
        "helper.py": "def double(x):\n    return 2 * x\n",
        "pkg/__init__.py": "",
        "pkg/consts.py": "ANSWER = 21\n",
        "data/input.txt": "payload",
    }
    code = (
        "import os\n"
        "from helper import double\n"
        "from pkg.consts import ANSWER\n"
        "print(double(ANSWER), open('data/input.txt').read())\n"
        "print(os.getcwd())\n"
    )
    result = run_python(code, files=files)
    assert result.ok, result.stderr
    first, cwd = result.stdout.splitlines()
    assert first == "42 payload"
    assert not Path(cwd).exists()


@pytest.mark.parametrize("name", ["/etc/evil.py", "../escape.py", "main.py", ""])
def test_bad_file_names_are_user_errors(name):
    with pytest.raises(UserError):
        run_python("print(1)", files={name: "x = 1"})


def test_bad_limits_and_workers_are_user_errors():
    with pytest.raises(UserError):
        SandboxLimits(timeout_s=0)
    with pytest.raises(UserError):
        SandboxLimits(memory_mb=-5)
    with pytest.raises(UserError):
        run_many(["print(1)"], workers=0)


def test_large_stdout_is_truncated():
    result = run_python("import sys\nsys.stdout.write('x' * 3_000_000)\n")
    assert result.ok
    assert sandbox_runner.MAX_STDOUT < len(result.stdout) < sandbox_runner.MAX_STDOUT + 200
    assert "truncated" in result.stdout


def test_run_many_keeps_order_and_runs_in_parallel(tmp_path):
    """Each program waits until all have started: only a parallel run lets every one finish."""
    count = 3
    template = (
        "import os, time\n"
        "open(os.path.join({shared!r}, '{i}'), 'w').close()\n"
        "deadline = time.monotonic() + {wait}\n"
        "while len(os.listdir({shared!r})) < {count}:\n"
        "    if time.monotonic() > deadline:\n"
        "        raise SystemExit('alone')\n"
        "    time.sleep(0.01)\n"
        "print({i})\n"
    )
    programs = [
        template.format(shared=str(tmp_path), i=i, wait=30, count=count) for i in range(count)
    ]
    results = run_many(programs, workers=count)
    assert [r.status for r in results] == ["ok"] * count
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(count)]

    serial_dir = tmp_path / "serial"
    serial_dir.mkdir()
    serial = [template.format(shared=str(serial_dir), i=i, wait=0.3, count=2) for i in range(2)]
    results = run_many(serial, workers=1)
    assert [r.status for r in results] == ["error", "ok"]  # the first ran alone

"""Run untrusted Python in a child process: resource limits, scrubbed environment, no network.

Layers, each covering what the others miss:
- own session / process group: the whole group is SIGKILLed at the wall-clock timeout, and
  after a normal exit too, so stray background children do not outlive the run;
- rlimits (CPU, address space, file size, process count, no core dumps), set in the child;
- a fresh scratch directory as cwd, HOME and TMPDIR, holding `files`, removed afterwards;
- an environment built from scratch (no parent variables, so no API keys), `python -I -B`;
  with the default interpreter also -S, the child getting the stdlib plus our site-packages
  directories (no .pth start-up hooks, so the editable codeultra install is not importable);
- no network: a fresh network namespace when the kernel allows it (directly as root, else in
  a new user namespace), and always an audit hook that refuses IP connect/bind/send and name
  resolution (AF_UNIX stays allowed). Where no namespace can be had, the hook also refuses
  exec/spawn and ctypes, which would bypass it.
RLIMIT_NPROC is ignored by the kernel for root; there the hook refuses fork/spawn from Python
once the process group holds `max_processes` live processes. Programs started with exec (only
possible when the namespace is active) are only bounded by the timeout's group kill.
This is a guard against buggy or runaway generated code, not a hardened jail: the child still
sees the file system with the caller's permissions.
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath

from codeultra.errors import UserError

_CHILD = Path(__file__).with_name("_child.py")
PROGRAM_NAME = "main.py"
MAX_STDOUT = 256 * 1024  # bytes kept from the start of stdout
MAX_STDERR = 64 * 1024  # bytes kept from the end of stderr, where tracebacks are
_TRY_NETNS = True  # tests switch it off to check the audit-hook guard on its own
_MEMORY_RE = re.compile(
    r"^[\w.]*MemoryError\b|std::bad_alloc|Cannot allocate memory|out of memory", re.MULTILINE
)


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0  # wall clock; the whole process group is killed past it
    cpu_s: int = 10  # RLIMIT_CPU
    memory_mb: int = 1024  # RLIMIT_AS
    file_size_mb: int = 16  # RLIMIT_FSIZE; also bounds captured stdout/stderr on disk
    max_processes: int = 64  # RLIMIT_NPROC, plus the process-group cap for root (see above)
    network: bool = False

    def __post_init__(self) -> None:
        t = self.timeout_s
        if isinstance(t, bool) or not isinstance(t, int | float) or not t > 0:
            raise UserError(f"sandbox limit timeout_s must be a positive number, got {t!r}")
        for name in ("cpu_s", "memory_mb", "file_size_mb", "max_processes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"sandbox limit {name} must be a positive integer, got {value!r}")


@dataclass
class SandboxResult:
    status: str  # "ok" | "error" | "timeout" | "memory" | "killed"
    returncode: int | None
    stdout: str
    stderr: str
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)


def _site_paths() -> list[str]:
    return [p for p in site.getsitepackages() if os.path.isdir(p)]


def _child_env(scratch: str) -> dict[str, str]:
    # The PYTHON* variables only matter for interpreters the program starts: -I ignores them.
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": scratch,
        "TMPDIR": scratch,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONIOENCODING": "utf-8",
        "PYTHONNOUSERSITE": "1",
        "MALLOC_ARENA_MAX": "2",  # glibc reserves 64 MiB of address space per arena otherwise
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }


def _write_files(scratch: Path, files: dict[str, str]) -> None:
    for name, content in files.items():
        rel = PurePosixPath(name)
        if not name or rel.is_absolute() or ".." in rel.parts:
            raise UserError(
                f"sandbox file name must be a relative path inside the sandbox: {name!r}"
            )
        if rel == PurePosixPath(PROGRAM_NAME):
            raise UserError(f"sandbox file name {PROGRAM_NAME!r} is reserved for the program")
        if not isinstance(content, str):
            raise UserError(f"sandbox file {name!r} must have str content")
        target = scratch / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")


def _wait_exit(pid: int, timeout_s: float) -> bool:
    """Wait until the child exits, without reaping it (so its process group id stays valid)."""
    deadline = time.monotonic() + timeout_s
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        try:
            poller = select.poll()
            poller.register(pidfd, select.POLLIN)
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if poller.poll(max(1, int(left * 1000))):
                    return True
        finally:
            os.close(pidfd)
    delay = 0.0005
    while time.monotonic() < deadline:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        time.sleep(delay)
        delay = min(delay * 2, 0.02)
    return False


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _read_head(path: Path, limit: int) -> str:
    size = path.stat().st_size
    with path.open("rb") as f:
        data = f.read(limit)
    text = data.decode("utf-8", errors="replace")
    return text if size <= limit else f"{text}\n...[truncated: {size} bytes in all]"


def _read_tail(path: Path, limit: int) -> str:
    size = path.stat().st_size
    with path.open("rb") as f:
        f.seek(max(0, size - limit))
        data = f.read()
    text = data.decode("utf-8", errors="replace")
    return text if size <= limit else f"...[truncated: {size} bytes in all]\n{text}"


def _classify(timed_out: bool, returncode: int, stderr: str, cpu_used: float, cpu_s: int) -> str:
    if timed_out:
        return "timeout"
    if _MEMORY_RE.search(stderr):
        return "memory"
    if returncode == 0:
        return "ok"
    if returncode == -signal.SIGXCPU or (returncode == -signal.SIGKILL and cpu_used >= cpu_s):
        # RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL at the hard one. A busy loop is a
        # timeout whichever clock ran out first, so callers count it as one.
        return "timeout"
    if returncode < 0:
        # A SIGKILL we did not send and the CPU limit did not cause: the kernel's OOM killer.
        if returncode == -signal.SIGKILL:
            return "memory"
        return "killed"
    return "error"


def run_python(
    code: str,
    limits: SandboxLimits = SandboxLimits(),
    *,
    files: dict[str, str] | None = None,
    stdin: str | None = None,
    python: str | None = None,
) -> SandboxResult:
    """Run `code` as __main__ in a fresh sandboxed interpreter and report how it ended."""
    if not isinstance(code, str):
        raise UserError(f"sandbox code must be a str, got {type(code).__name__}")
    cfg = {
        "cpu_s": limits.cpu_s,
        "memory_mb": limits.memory_mb,
        "file_size_mb": limits.file_size_mb,
        "max_processes": limits.max_processes,
        "network": bool(limits.network),
        "netns": _TRY_NETNS,
        "program": PROGRAM_NAME,
        "site_paths": _site_paths(),
    }
    root = Path(tempfile.mkdtemp(prefix="codeultra-sandbox-"))
    try:
        scratch = root / "work"
        scratch.mkdir()
        _write_files(scratch, files or {})
        (scratch / PROGRAM_NAME).write_text(code, encoding="utf-8")
        out_path, err_path, in_path = root / "stdout", root / "stderr", root / "stdin"
        in_path.write_text(stdin or "", encoding="utf-8")
        # Our own interpreter skips `site` (-S): its .pth hooks (editable installs) cost ~30 ms
        # a run; the bootstrap puts our site-packages on sys.path instead.
        flags = ["-I", "-B", "-X", "utf8"] + ([] if python else ["-S"])
        cmd = [python or sys.executable, *flags, str(_CHILD), json.dumps(cfg)]
        with (
            in_path.open("rb") as fin,
            out_path.open("wb") as fout,
            err_path.open("wb") as ferr,
        ):
            start = time.monotonic()
            try:
                proc = subprocess.Popen(
                    cmd,
                    cwd=scratch,
                    env=_child_env(str(scratch)),
                    stdin=fin,
                    stdout=fout,
                    stderr=ferr,
                    start_new_session=True,  # own session and process group, pgid == pid
                    close_fds=True,
                )
            except FileNotFoundError as exc:
                raise UserError(f"sandbox python interpreter not found: {cmd[0]}") from exc
            try:
                exited = _wait_exit(proc.pid, limits.timeout_s)
                duration = time.monotonic() - start
            finally:  # also on KeyboardInterrupt: never leave a sandbox running
                _kill_group(proc.pid)  # the leader is at most a zombie here: the group is ours
                _, status, usage = os.wait4(proc.pid, 0)
                proc.returncode = os.waitstatus_to_exitcode(status)
        stdout = _read_head(out_path, MAX_STDOUT)
        stderr = _read_tail(err_path, MAX_STDERR)
        cpu_used = usage.ru_utime + usage.ru_stime
        status_name = _classify(not exited, proc.returncode, stderr, cpu_used, limits.cpu_s)
        return SandboxResult(
            status=status_name,
            returncode=proc.returncode,
            stdout=stdout,
            stderr=stderr,
            duration_s=duration,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_many(
    programs: Sequence[str],
    limits: SandboxLimits = SandboxLimits(),
    *,
    workers: int = 1,
    files: dict[str, str] | None = None,
) -> list[SandboxResult]:
    """Run each program in its own sandbox, `workers` at a time; results in input order."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise UserError(f"sandbox workers must be a positive integer, got {workers!r}")
    if workers == 1 or len(programs) <= 1:
        return [run_python(code, limits, files=files) for code in programs]
    with ThreadPoolExecutor(max_workers=min(workers, len(programs))) as pool:
        return list(pool.map(lambda code: run_python(code, limits, files=files), programs))

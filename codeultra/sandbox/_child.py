"""Bootstrap that runs inside the sandboxed interpreter, before the untrusted program.

It is started as `python -I -B -X utf8 [-S] _child.py CONFIG_JSON` with the scratch directory as its
working directory. Stdlib only: under -I the codeultra package is not importable by path.

Order matters: the network namespace needs privileges that the resource limits and the audit
hook do not take away, and the hook must be in place before any untrusted byte runs.
"""

import builtins
import errno
import json
import os
import resource
import sys
import types

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
AF_UNIX = 1  # Linux; local IPC (socketpair, multiprocessing managers) is not networking

# Name resolution always touches the network, whatever the socket family.
DNS_EVENTS = frozenset(
    {
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.getnameinfo",
    }
)
SOCKET_EVENTS = frozenset({"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg"})
# Without a network namespace, a new program (curl, a fresh python) or raw libc calls through
# ctypes would not carry the audit hook, so they are refused too.
ESCAPE_EVENTS = frozenset(
    {
        "os.exec",
        "os.posix_spawn",
        "os.system",
        "subprocess.Popen",
        "ctypes.dlopen",
        "ctypes.dlsym",
        "ctypes.dlsym/handle",
    }
)
SPAWN_EVENTS = frozenset(
    {"os.fork", "os.forkpty", "os.posix_spawn", "os.system", "subprocess.Popen"}
)


def unshare_network() -> bool:
    """Move this process into a fresh, empty network namespace (only loopback, and it is down).

    Root can do that directly; an unprivileged user often can inside a new user namespace,
    mapped to the same uid/gid so files keep their permissions.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(CLONE_NEWNET) == 0:
            return True
        uid, gid = os.getuid(), os.getgid()
        if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
            return False
    except (OSError, AttributeError):
        return False
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"{uid} {uid} 1"),
        ("gid_map", f"{gid} {gid} 1"),
    ):
        try:
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
        except OSError:
            pass  # unmapped ids only change what getuid() shows, not file access
    return True


def set_limit(which: int, soft: int, hard: int) -> None:
    try:
        resource.setrlimit(which, (soft, hard))
    except (ValueError, OSError):
        # Not allowed to raise the hard limit (unprivileged): stay within it.
        _, cur_hard = resource.getrlimit(which)
        if cur_hard != resource.RLIM_INFINITY:
            resource.setrlimit(which, (min(soft, cur_hard), cur_hard))


def set_limits(cfg: dict) -> None:
    mib = 1024 * 1024
    # SIGXCPU at the soft limit; the kernel's SIGKILL one second later if that is ignored.
    set_limit(resource.RLIMIT_CPU, cfg["cpu_s"], cfg["cpu_s"] + 1)
    set_limit(resource.RLIMIT_AS, cfg["memory_mb"] * mib, cfg["memory_mb"] * mib)
    set_limit(resource.RLIMIT_FSIZE, cfg["file_size_mb"] * mib, cfg["file_size_mb"] * mib)
    set_limit(resource.RLIMIT_NPROC, cfg["max_processes"], cfg["max_processes"])
    set_limit(resource.RLIMIT_CORE, 0, 0)


def group_size(pgid: int) -> int:
    """Live processes in the sandbox's process group, read from /proc."""
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid:
            count += 1
    return count


def install_guard(block_network: bool, block_escapes: bool, process_cap: int) -> None:
    pgid = os.getpgrp()

    def hook(event: str, args: tuple) -> None:
        if block_network:
            if event in DNS_EVENTS:
                raise PermissionError(f"network access is disabled in the sandbox ({event})")
            if event in SOCKET_EVENTS and getattr(args[0], "family", None) != AF_UNIX:
                raise PermissionError(f"network access is disabled in the sandbox ({event})")
        if block_escapes and event in ESCAPE_EVENTS:
            raise PermissionError(
                f"not allowed in the sandbox without a network namespace ({event})"
            )
        if process_cap and event in SPAWN_EVENTS and group_size(pgid) >= process_cap:
            raise BlockingIOError(errno.EAGAIN, f"sandbox process limit ({process_cap}) reached")

    sys.addaudithook(hook)


def main() -> None:
    cfg = json.loads(sys.argv[1])
    netns = False if cfg["network"] or not cfg["netns"] else unshare_network()
    set_limits(cfg)
    # RLIMIT_NPROC does not apply to root, so there the hook counts the process group instead.
    install_guard(
        block_network=not cfg["network"],
        block_escapes=not cfg["network"] and not netns,
        process_cap=cfg["max_processes"] if os.geteuid() == 0 else 0,
    )

    workdir = os.getcwd()
    sys.path.insert(0, workdir)  # -I left it out; `files` must be importable
    if sys.flags.no_site:  # started with -S: the parent's site-packages, minus .pth start-up cost
        import site

        site.setquit()  # exit() and quit(), which generated code does call
        site.sethelper()
        sys.path.extend(cfg["site_paths"])
    program = os.path.join(workdir, cfg["program"])
    with open(program, encoding="utf-8") as f:
        source = f.read()
    module = types.ModuleType("__main__")
    module.__file__ = program
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    sys.argv = [program]
    try:
        exec(compile(source, program, "exec"), module.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:  # report like the interpreter would, minus this frame
        if exc.__traceback__ is not None:
            exc.__traceback__ = exc.__traceback__.tb_next
        sys.excepthook(type(exc), exc, exc.__traceback__)
        sys.exit(1)


if __name__ == "__main__":
    main()

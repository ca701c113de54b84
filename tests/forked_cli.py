"""Run command lines, each in a process of its own, paying Python's start-up and the imports once per test session.

``python -m tests.forked_cli`` imports every entry point, then reads JSON lines ``[[module, cwd, [arg, ...], signal?],
...]`` from stdin and forks, for each command, a child that runs the module as ``__main__`` there, as ``python -m``
would after its imports; ``signal``, ``[signum, line start, delay...]``, is sent when a line of the child's stdout
starts so, and again after each delay (a second Ctrl-C). It answers one JSON line, ``[[exit status, stdout, stderr],
...]``. The parent does no torch work, so no thread pool is inherited half-started.

The commands of a line run side by side, one a CPU core, each child on one thread: a tiny run's time is mostly Python's,
which one core runs, and one thread adds its sums in one order, so that runs compared bit for bit agree."""

import importlib
import json
import os
import runpy
import sys
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

ENTRY_POINTS = ("src.train", "src.eval", "src.predict", "src.export", "src.plot", "src.serve")
SIDE_BY_SIDE = os.cpu_count() or 1


def run_one(module: str, cwd: str, arguments: list[str], signal: list | None = None) -> tuple[int, str, str]:
    with tempfile.TemporaryDirectory() as folder:
        out_path, err_path = os.path.join(folder, "out"), os.path.join(folder, "err")
        pid = os.fork()
        if pid == 0:  # the child: becomes `python -m <module> <arguments>`
            status = 1
            try:
                os.chdir(cwd)
                sys.modules["torch"].set_num_threads(1)
                out, err = os.open(out_path, os.O_WRONLY | os.O_CREAT), os.open(err_path, os.O_WRONLY | os.O_CREAT)
                os.dup2(out, 1)
                os.dup2(err, 2)
                sys.stdout, sys.stderr = open(1, "w", closefd=False), open(2, "w", closefd=False)  # noqa: SIM115
                sys.argv = [module, *arguments]
                sys.modules.pop(module, None)  # run afresh as __main__; what it imports stays imported
                runpy.run_module(module, run_name="__main__", alter_sys=True)
                status = 0
            except SystemExit as stop:
                status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
                if not isinstance(stop.code, int | None):
                    print(stop.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(status)
        reaped = wait_for_line(pid, out_path, *signal) if signal is not None else None
        wait_status = reaped if reaped is not None else os.waitpid(pid, 0)[1]
        with open(out_path) as out, open(err_path) as err:
            return os.waitstatus_to_exitcode(wait_status), out.read(), err.read()


def wait_for_line(pid: int, out_path: str, signum: int, line_start: str, *delays: float) -> int | None:
    """Send ``signum`` to the child once a line of its stdout starts with ``line_start``, then again after each of
    ``delays`` seconds while it runs; the child's wait status if it ended before the first."""
    while True:
        done, wait_status = os.waitpid(pid, os.WNOHANG)
        if done:
            return wait_status
        if os.path.exists(out_path):
            with open(out_path) as out:
                if any(line.startswith(line_start) for line in out.read().splitlines()):
                    os.kill(pid, signum)
                    for delay in delays:
                        time.sleep(delay)
                        os.kill(pid, signum)  # a zombie until reaped: never another process
                    return None
        time.sleep(0.02)


def main() -> None:
    for module in ENTRY_POINTS:
        importlib.import_module(module)  # the imports every child shares
    with ThreadPoolExecutor(SIDE_BY_SIDE) as pool:
        for line in sys.stdin:
            print(json.dumps(list(pool.map(lambda command: run_one(*command), json.loads(line)))), flush=True)


if __name__ == "__main__":
    main()

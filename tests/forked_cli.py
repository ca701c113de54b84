"""Run many command lines, each in its own process, paying Python's start-up and the imports once.

``python -m tests.forked_cli`` reads ``[[module, cwd, [arg, ...]], ...]`` as JSON on stdin, imports every module
once, then for each command forks a child that runs the module as ``__main__`` with that ``sys.argv`` in that
working folder, its stdout and stderr going to files, exactly as ``python -m <module> arg ...`` would run after its
imports. It prints ``[[exit status, stdout, stderr], ...]`` as JSON. The parent does no torch work before forking,
so no thread pool is inherited half-started.
"""

import importlib
import json
import os
import runpy
import sys
import tempfile
import traceback


def run_one(module: str, cwd: str, arguments: list[str]) -> tuple[int, str, str]:
    with tempfile.TemporaryDirectory() as folder:
        out_path, err_path = os.path.join(folder, "out"), os.path.join(folder, "err")
        pid = os.fork()
        if pid == 0:  # the child: becomes `python -m <module> <arguments>`
            status = 1
            try:
                os.chdir(cwd)
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
        _, wait_status = os.waitpid(pid, 0)
        with open(out_path) as out, open(err_path) as err:
            return os.waitstatus_to_exitcode(wait_status), out.read(), err.read()


def main() -> None:
    commands = json.load(sys.stdin)
    for module in dict.fromkeys(module for module, _, _ in commands):
        importlib.import_module(module)  # the imports every child shares
    print(json.dumps([run_one(module, cwd, arguments) for module, cwd, arguments in commands]))


if __name__ == "__main__":
    main()

"""`python -m studio` and the bundled `qstudio` binary: the CLI, a run worker, or an exported script.

A frozen bundle has no `python -m` and no plain interpreter, so the engine starts its workers
(`__worker__ JOB`) and `qstudio verify` runs an export's predict.py (`__script__ FILE ARGS`) through
this entry point.
"""

from __future__ import annotations

import sys

from studio.core.bundle import SCRIPT_FLAG, WORKER_FLAG


def run() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == WORKER_FLAG:
        from studio.core.worker import main as worker_main

        sys.exit(worker_main(sys.argv[2:]))
    if len(sys.argv) > 2 and sys.argv[1] == SCRIPT_FLAG:
        import runpy

        sys.argv = sys.argv[2:]
        runpy.run_path(sys.argv[0], run_name="__main__")
        sys.exit(0)
    from studio.cli.main import main

    sys.exit(main())


if __name__ == "__main__":
    run()

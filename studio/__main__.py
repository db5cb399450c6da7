"""`python -m studio` and the bundled `qstudio` binary: the CLI, or (with `__worker__ JOB`) a run worker.

A frozen bundle has no `python -m`, so the engine starts its workers through this entry point.
"""

from __future__ import annotations

import sys

WORKER_FLAG = "__worker__"


def run() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == WORKER_FLAG:
        from studio.core.worker import main as worker_main

        sys.exit(worker_main(sys.argv[2:]))
    from studio.cli.main import main

    sys.exit(main())


if __name__ == "__main__":
    run()

"""PyInstaller's entry script for the `qstudio` binary."""

from studio.__main__ import run

run()

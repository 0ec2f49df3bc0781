"""Helpers for tests that run servers as child processes."""

from __future__ import annotations

import subprocess


def stop(process: subprocess.Popen[str] | subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Ask a child process to end (SIGTERM), and kill it if it has not after ``timeout``."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

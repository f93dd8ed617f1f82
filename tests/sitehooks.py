"""A ``sitecustomize`` hook that kills the process planning one sweep point, for fault tests."""

from __future__ import annotations

from pathlib import Path


def write_sigkill_hook(tmp_path: Path, condition: str) -> Path:
    """Write ``tmp_path/hook/sitecustomize.py``; put that folder on ``PYTHONPATH`` to load it.

    Every process that loads it wraps ``hetopt.pipeline.plan_agent``: where ``condition`` (a
    Python expression of ``request``) holds, the process kills itself with SIGKILL, as the
    kernel's OOM killer would.

    Returns
    -------
    Path
        The folder holding the hook.
    """
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        f"""
import os, signal
import hetopt.pipeline as pipeline

_real = pipeline.plan_agent

def plan_agent(request, *args, **kwargs):
    if {condition}:
        os.kill(os.getpid(), signal.SIGKILL)
    return _real(request, *args, **kwargs)

pipeline.plan_agent = plan_agent
"""
    )
    return hook

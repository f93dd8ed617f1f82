"""User-facing errors.

Every mistake a user can make (a malformed file, an unknown device, an SLA that no placement
meets) raises a subclass of :class:`HetoptUserError`. The CLI prints its message as one
paragraph and exits with status 2, without a traceback. Library callers catch it like any
other exception.
"""

from __future__ import annotations


class HetoptUserError(Exception):
    """An error caused by the user's input, with a message that says what to fix.

    Parameters
    ----------
    message
        One paragraph that names the file, field, key or constraint, and the fix.
    """

    exit_code: int = 2


class InputError(HetoptUserError):
    """A file, field or value in the user's input is malformed, missing or out of range."""


class UnknownNameError(InputError):
    """A device, model, workload or solver name that the catalog does not know."""


class InfeasibleError(HetoptUserError):
    """No placement meets the constraints; the message names the binding one and a fix.

    Parameters
    ----------
    message
        The explanation.
    tightest_e2e_s
        When the end-to-end SLA is what binds: the tightest SLA that some plan meets.
    """

    def __init__(self, message: str, tightest_e2e_s: float | None = None) -> None:
        super().__init__(message)
        self.tightest_e2e_s = tightest_e2e_s


class SolverLimitError(HetoptUserError):
    """The solver stopped at its time limit; the best plan found so far was still written."""


class OutputError(HetoptUserError):
    """A result cannot be written: the disk is full, or the directory is read-only or taken.

    Nothing partial is left behind (see :mod:`hetopt.atomic`); the message names the path.
    """

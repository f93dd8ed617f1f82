"""Arguments of the standalone commands (``export``, ``import``, ``profile``): positional paths
and ``key=value`` settings, outside Hydra.

One rule for all of them: every ``key=value`` is one the command reads, given once, with a
value of the form it reads, or the command stops with exit status 2 naming it and what it
reads, so no setting is ever silently ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hetopt.errors import InputError


@dataclass(frozen=True)
class Setting:
    """A ``key=value`` a command reads: the form shown in messages and the check of a value."""

    form: str
    valid: Callable[[str], bool] = bool


BOOLEAN = Setting("true|false", lambda v: v.lower() in ("true", "false"))
"""``overwrite=true|false``."""


def parse_args(
    command: str, args: list[str], settings: Mapping[str, Setting]
) -> tuple[list[str], dict[str, str]]:
    """The positional arguments and the ``key=value`` settings of ``hetopt <command>``.

    Raises
    ------
    InputError
        For a key the command does not read, a value not of its form (empty included), or a
        key given twice.

    Examples
    --------
    >>> parse_args("export", ["runs/a", "overwrite=true"], {"overwrite": BOOLEAN})
    (['runs/a'], {'overwrite': 'true'})
    >>> parse_args("export", ["runs/a", "solver=cpsat"], {"overwrite": BOOLEAN})
    Traceback (most recent call last):
    ...
    hetopt.errors.InputError: hetopt export does not use 'solver=cpsat' (key 'solver'): it reads overwrite=true|false. Remove or fix it (`hetopt export --help`).
    >>> parse_args("profile", ["t.json", "out=a", "out=b"], {"out": Setting("DIR")})
    Traceback (most recent call last):
    ...
    hetopt.errors.InputError: hetopt profile: out= is given twice (out=a and out=b); give it once.
    """
    positional = [a for a in args if "=" not in a]
    values: dict[str, str] = {}
    for raw in (a for a in args if "=" in a):
        key, _, value = raw.partition("=")
        key, value = key.strip(), value.strip()
        setting = settings.get(key)
        if setting is None or not value or not setting.valid(value):
            reads = " and ".join(f"{k}={s.form}" for k, s in settings.items())
            raise InputError(
                f"hetopt {command} does not use {raw!r} (key '{key}'): it reads {reads}. "
                f"Remove or fix it (`hetopt {command} --help`)."
            )
        if key in values:
            raise InputError(
                f"hetopt {command}: {key}= is given twice ({key}={values[key]} and {raw}); give "
                f"it once."
            )
        values[key] = value
    return positional, values


def is_true(values: Mapping[str, str], key: str = "overwrite") -> bool:
    """Whether the boolean setting ``key`` was given as true (default false)."""
    return values.get(key, "false").lower() == "true"

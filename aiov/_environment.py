"""The AIOV_* environment variables, checked when aiov is imported: a value the engine would
not take is an error naming the variable, what it takes and what it got; a name that is not
one of them but close to one (a typo) is a warning."""

from __future__ import annotations

import difflib
import os
import warnings

from . import _core


def known_variables() -> dict[str, str]:
    """Every AIOV_* variable the engine reads, with what it does."""
    return dict(_core.env_vars())


def check_environment(environ=None) -> None:
    environ = os.environ if environ is None else environ
    problems = _core.env_problems()
    if problems:
        raise ValueError("invalid aiov environment: " + "; ".join(problems))
    known = known_variables()
    for name in environ:
        if name.startswith("AIOV_") and name not in known:
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.8)
            if close:
                warnings.warn(f"{name} is not an aiov variable (did you mean {close[0]}?)", stacklevel=3)

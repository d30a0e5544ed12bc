"""Config fields that carry their own description, choices and range.

Each config field is declared once, with :func:`option`; the CLI help, the choices
argparse lists and the range checks applied to flags, config files and presets alike
(:func:`check_value`) all read that one declaration.
"""

from __future__ import annotations

import dataclasses


def option(default, help: str, *, choices: tuple | None = None, min: float | None = None,
           max: float | None = None):
    """A dataclass field with ``help`` (one line, with units), optional ``choices`` and an
    inclusive range ``[min, max]`` (for a tuple field, each element's range)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices, "min": min, "max": max})


def check_value(f: dataclasses.Field, value, *, name: str, where: str) -> None:
    """Raise ``ValueError`` naming ``where`` and ``name`` when ``value`` is outside the field's
    choices or range; the message says what is allowed."""
    meta = f.metadata
    choices, lo, hi = meta.get("choices"), meta.get("min"), meta.get("max")
    if choices is not None and value not in choices:
        raise ValueError(f"{where}: {name} = {value!r}; choose one of {', '.join(map(str, choices))}")
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            rng = (f">= {lo:g}" if hi is None else f"<= {hi:g}" if lo is None else f"in [{lo:g}, {hi:g}]")
            raise ValueError(f"{where}: {name} = {value!r} is out of range; it must be {rng} ({meta['help']})")

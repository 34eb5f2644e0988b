"""Checks of the command line that started Snakemake, made before any job runs.

Snakemake's ``--configfile`` (alias ``--configfiles``) takes one or more files, but given twice
only the last occurrence counts: ``--configfile config/smoke.yaml --configfile local.yaml`` runs
without the preset and without a word. :func:`check_configfiles` stops such a command naming the
files it would drop and the form that works.
"""

from __future__ import annotations

from collections.abc import Sequence

#: The spellings of Snakemake's option (argparse also accepts an unambiguous prefix of them).
CONFIGFILE_OPTIONS = ("--configfile", "--configfiles")


class CommandLineError(ValueError):
    """The command line would not do what it says."""


def _configfile_option(token: str) -> tuple[bool, str | None]:
    """Whether ``token`` is the ``--configfile`` option (or a prefix argparse takes for it), and
    the value given with ``=`` if any."""
    name, eq, value = token.partition("=")
    is_option = len(name) > len("--config") and any(o.startswith(name) for o in CONFIGFILE_OPTIONS)
    return is_option, (value if eq else None)


def configfile_groups(argv: Sequence[str]) -> list[list[str]]:
    """The files of every ``--configfile`` occurrence in ``argv``, in order (each occurrence takes
    the words after it up to the next option, as Snakemake's parser does)."""
    groups: list[list[str]] = []
    current: list[str] | None = None
    for token in argv:
        is_option, value = _configfile_option(token) if token.startswith("--") else (False, None)
        if is_option:
            current = [value] if value is not None else []
            groups.append(current)
            if value is not None:
                current = None  # --configfile=x takes no further words
        elif token.startswith("-") and token != "-":
            current = None
        elif current is not None:
            current.append(token)
    return groups


def check_configfiles(argv: Sequence[str]) -> None:
    """Raise :class:`CommandLineError` when ``--configfile`` occurs more than once in ``argv``:
    Snakemake keeps only the last occurrence's files."""
    groups = configfile_groups(argv)
    if len(groups) < 2:
        return
    dropped = [name for group in groups[:-1] for name in group]
    every = [name for group in groups for name in group]
    raise CommandLineError(
        f"--configfile was given {len(groups)} times; Snakemake keeps only the last "
        f"({' '.join(groups[-1])}) and would silently drop {' '.join(dropped)}. "
        "Give every file after one --configfile, later files overlaying earlier ones, and "
        "put targets before the flags (the list takes every word up to the next option): "
        f"snakemake [targets] --cores N --configfile {' '.join(every)}"
    )

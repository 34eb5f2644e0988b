"""A configuration or command line that would not do what the user meant fails before any job,
in a few lines: each wrong key's path, what is wrong, and what to do (Snakemake's own report
prints the whole schema around one wrong key; the validator's full output comes on request)."""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Mapping, Sequence

import yaml

from .config import plain

_ONE_JOB_PER_RUN = (
    "removed: every run is one job; delete the key "
    "(for one GPU, run jobs side by side with --cores)"
)
#: Keys (dotted) the configuration no longer has (once the schema drops them), and what to do.
REMOVED_KEYS = {
    "training.compile": "removed: it measured no gain; delete the key",
    "training.eval_overlap": "removed: it measured no gain; delete the key",
    "training.triton_eval": (
        "removed: conv_epilogue: triton already evaluates through the Triton kernels; "
        "delete the key"
    ),
    "training.first_conv": "removed: delete the key",
    "training.runs_per_job": _ONE_JOB_PER_RUN,
    "training.group_form": _ONE_JOB_PER_RUN,
    "training.conv_bias": "renamed: use training.conv_epilogue (torch or triton)",
}
#: JSON-schema type names of the values YAML reads from text.
_YAML_TYPES = {bool: "boolean", int: "integer", float: "number", type(None): "null", list: "array"}


def _typed(text: str):
    """``text`` read as YAML, and as a float where YAML leaves it a string (``1e-2``)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return float(value)
    return value


def _wanted_as_typed(error) -> bool:
    """Whether a schema error on a string is gone once the string is read as a typed value."""
    if not isinstance(error.instance, str):
        return False
    value = _typed(error.instance)
    if error.validator == "enum":
        return not isinstance(value, str) and value in error.validator_value
    if error.validator != "type":
        return False
    types = error.validator_value
    kind, wanted = _YAML_TYPES.get(type(value)), {types} if isinstance(types, str) else set(types)
    return kind in wanted or (kind == "integer" and "number" in wanted)


def values_left_as_text(config: Mapping, schema: Mapping) -> list[str]:
    """Keys whose string value (``--config 'section={...}'`` leaves text) YAML reads as wanted."""
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = validator.iter_errors(plain(config))
    return [_dotted(error.absolute_path) for error in errors if _wanted_as_typed(error)]


def text_values_hint(keys: list[str]) -> str:
    """What to do about :func:`values_left_as_text`."""
    return (
        f"{', '.join(keys)}: a number, boolean, null or list given as text. Snakemake reads "
        "a value nested in --config 'section={...}' as a string; put nested keys in a YAML file "
        "passed with --configfile after the preset (an overlay: only the keys you change), or "
        "give a top-level key as --config key=value."
    )


FULL_ERRORS_VARIABLE = "HW5_FULL_ERRORS"
#: At most this many violations are listed (the rest counted), each cut to MAX_MESSAGE characters.
MAX_LISTED = 5
MAX_MESSAGE = 240


def full_errors_wanted(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the user asked for the validator's full output."""
    return environ.get(FULL_ERRORS_VARIABLE, "") not in {"", "0"} or "--verbose" in argv


def _dotted(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)[1:]


def _schema_at(schema: Mapping, path) -> Mapping:
    for part in path:
        if isinstance(part, int):
            schema = schema.get("items", {})
        else:
            schema = schema.get("properties", {}).get(part, {})
    return schema


def _unknown_key(key: str, allowed: list[str]) -> str:
    where, _, name = key.rpartition(".")
    if key in REMOVED_KEYS:
        return f"{key}: {REMOVED_KEYS[key]}"
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    if close:
        return f"{key}: unknown key; did you mean {where + '.' if where else ''}{close[0]}?"
    return f"{key}: unknown key; allowed here: {', '.join(allowed)}"


def _violations(config: Mapping, schema: Mapping) -> list[str]:
    import jsonschema

    validator = jsonschema.validators.validator_for(schema)(schema)
    lines = []
    for error in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.path))):
        path = list(error.absolute_path)
        if error.validator == "additionalProperties" and isinstance(error.instance, Mapping):
            allowed = list(_schema_at(schema, path).get("properties", {}))
            prefix = _dotted(path)
            for name in error.instance:
                if name not in allowed:
                    lines.append(_unknown_key(f"{prefix}.{name}" if prefix else name, allowed))
            continue
        message = error.message
        if len(message) > MAX_MESSAGE:
            message = message[: MAX_MESSAGE - 3] + "..."
        lines.append(f"{_dotted(path) or '(top level)'}: {message}")
    return lines


def config_problems(config: Mapping, schema: Mapping) -> str | None:
    """A short account of what is wrong with ``config`` against ``schema`` (None: nothing)."""
    config = plain(config)
    text_keys = values_left_as_text(config, schema)
    lines = [text_values_hint(text_keys)] if text_keys else _violations(config, schema)
    if not lines:
        return None
    listed = lines[:MAX_LISTED]
    if len(lines) > MAX_LISTED:
        listed.append(f"... and {len(lines) - MAX_LISTED} more")
    header = (
        "Error validating config file (config/README.md lists every key; "
        f"{FULL_ERRORS_VARIABLE}=1 or snakemake --verbose prints the validator's full output):"
    )
    return "\n".join([header, *(f"  {line}" for line in listed)])


def config_error(config: Mapping, schema: Mapping, error: Exception, full: bool) -> Exception:
    """``error`` itself when ``full`` or nothing shorter explains it, else a ``WorkflowError``."""
    from snakemake.exceptions import WorkflowError

    problems = None if full else config_problems(config, schema)
    return error if problems is None else WorkflowError(problems)


#: The spellings of Snakemake's option (argparse also accepts an unambiguous prefix of them).
CONFIGFILE_OPTIONS = ("--configfile", "--configfiles")


class CommandLineError(ValueError):
    """The command line would not do what it says."""


def _configfile_option(token: str) -> tuple[bool, str | None]:
    """Whether ``token`` is ``--configfile`` (or a prefix of it), and its ``=`` value if any."""
    name, eq, value = token.partition("=")
    is_option = len(name) > len("--config") and any(o.startswith(name) for o in CONFIGFILE_OPTIONS)
    return is_option, (value if eq else None)


def configfile_groups(argv: Sequence[str]) -> list[list[str]]:
    """The files of every ``--configfile`` occurrence in ``argv``, as Snakemake parses them."""
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
    """Raise :class:`CommandLineError` on a repeated ``--configfile`` (Snakemake keeps the last)."""
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

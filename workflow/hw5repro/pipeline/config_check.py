"""Configuration errors in a few lines: each wrong key's path, what is wrong, and what to do.

Snakemake's own report of a schema violation prints the whole schema (hundreds of lines) around
one wrong key. :func:`config_error` turns the violations of a configuration into a short message:
an unknown key with the nearest allowed one (or the allowed ones), a removed key with what to do
instead (:data:`REMOVED_KEYS`), a wrong value with what the schema wants; values that Snakemake's
``--config`` left as text keep their own hint (:func:`hw5repro.settings.values_left_as_text`).
The validator's full output is printed on request (:data:`FULL_ERRORS_VARIABLE` set to 1, or
``snakemake --verbose``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence

from .config import _plain, text_values_hint, values_left_as_text

#: Keys (dotted) that the configuration no longer has, with what to do instead. A key listed here
#: that the schema still defines is not removed yet and is validated as usual.
REMOVED_KEYS = {
    "training.compile": "removed: it measured no gain; delete the key",
    "training.eval_overlap": "removed: it measured no gain; delete the key",
    "training.triton_eval": (
        "removed: conv_epilogue: triton already evaluates through the Triton kernels; "
        "delete the key"
    ),
    "training.first_conv": "removed: delete the key",
    "training.runs_per_job": (
        "removed: every run is one job; delete the key "
        "(for one GPU, run jobs side by side with --cores)"
    ),
    "training.group_form": (
        "removed: every run is one job; delete the key "
        "(for one GPU, run jobs side by side with --cores)"
    ),
    "training.conv_bias": "renamed: use training.conv_epilogue (torch or triton)",
}
#: The environment variable that asks for the validator's full output.
FULL_ERRORS_VARIABLE = "HW5_FULL_ERRORS"
#: At most this many violations are listed (the rest are counted).
MAX_LISTED = 5
#: A violation's message is cut to this many characters.
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
    name = key.rpartition(".")[2]
    if key in REMOVED_KEYS:
        return f"{key}: {REMOVED_KEYS[key]}"
    close = difflib.get_close_matches(name, allowed, n=1, cutoff=0.6)
    if close:
        where = key.rpartition(".")[0]
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
    config = _plain(config)
    text_keys = values_left_as_text(config, schema)
    lines = [text_values_hint(text_keys)] if text_keys else _violations(config, schema)
    if not lines:
        return None
    listed = lines[:MAX_LISTED]
    if len(lines) > MAX_LISTED:
        listed.append(f"... and {len(lines) - MAX_LISTED} more")
    return "\n".join(
        [
            "Error validating config file (config/README.md lists every key; "
            f"{FULL_ERRORS_VARIABLE}=1 or snakemake --verbose prints the validator's full output):",
            *(f"  {line}" for line in listed),
        ]
    )


def config_error(config: Mapping, schema: Mapping, error: Exception, full: bool) -> Exception:
    """What to raise for ``error``, the failed validation of ``config``: ``error`` itself when
    ``full`` output was asked for or nothing shorter explains it, else a ``WorkflowError``
    (whose report Snakemake prints without a traceback) with :func:`config_problems`."""
    from snakemake.exceptions import WorkflowError

    problems = None if full else config_problems(config, schema)
    return error if problems is None else WorkflowError(problems)

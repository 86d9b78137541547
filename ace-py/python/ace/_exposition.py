"""A parser of the OpenMetrics text that ``Ace.metrics_text()`` returns, into families with typed
samples, for exporters that need the values rather than the text (``ace.integrations.otel``'s
metric producer). It reads what the exposition format allows, not only what ace writes today:
escaped label values (``\\\\``, ``\\"``, ``\\n``), ``+Inf``, ``-Inf`` and ``NaN``, timestamps and
exemplars after a value, ``# UNIT`` lines, and samples of a family without ``# TYPE``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple, Union

from ace.exceptions import InvalidInputError

__all__ = ["Family", "Sample", "parse"]

Number = Union[int, float]

# A sample named <family><suffix> belongs to <family> when that family was declared.
_SUFFIXES = ("_total", "_created", "_bucket", "_count", "_sum", "_info", "_gcount", "_gsum")
_NAME_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_:")
_NAME_REST = _NAME_START | frozenset("0123456789")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n"}


@dataclass
class Sample:
    """One line of values: its full name (``ace_x_total``), labels and value."""

    name: str
    labels: Dict[str, str]
    value: Number


@dataclass
class Family:
    """A metric family: ``type`` is OpenMetrics' (``counter``, ``gauge``, ``histogram``, ...,
    ``unknown`` when undeclared)."""

    name: str
    type: str = "unknown"
    help: str = ""
    unit: str = ""
    samples: List[Sample] = field(default_factory=list)


def parse(text: str) -> Dict[str, Family]:
    """The families of an OpenMetrics (or Prometheus 0.0.4) text, in the order they appear.

    Raises ``InvalidInputError`` (``field="text"``, ``line`` the 1-based line number) for a line
    that is neither a comment nor a well-formed sample."""
    if not isinstance(text, str):
        raise TypeError(f"metrics text must be a str, not {type(text).__name__}")
    families: Dict[str, Family] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        if not line or line == "# EOF":
            continue
        try:
            if line.startswith("#"):
                _comment(line, families)
            else:
                sample = _sample(line)
                _owner(sample.name, families).samples.append(sample)
        except _Malformed as e:
            raise InvalidInputError(
                f"metrics text line {number}: {e} ({line[:120]!r})", field="text", line=number
            ) from None
    return families


class _Malformed(Exception):
    pass


def _family(name: str, families: Dict[str, Family]) -> Family:
    found = families.get(name)
    if found is None:
        found = families[name] = Family(name)
    return found


def _owner(sample: str, families: Dict[str, Family]) -> Family:
    if sample in families:
        return families[sample]
    for suffix in _SUFFIXES:
        if sample.endswith(suffix) and sample[: -len(suffix)] in families:
            return families[sample[: -len(suffix)]]
    return _family(sample, families)


def _comment(line: str, families: Dict[str, Family]) -> None:
    parts = line.split(" ", 3)
    if len(parts) < 3 or parts[0] != "#" or parts[1] not in ("HELP", "TYPE", "UNIT"):
        return  # a free comment
    name, rest = parts[2], (parts[3] if len(parts) > 3 else "")
    if not _is_name(name):
        raise _Malformed(f"{parts[1]} names no metric")
    family = _family(name, families)
    if parts[1] == "HELP":
        family.help = _unescape(rest)
    elif parts[1] == "TYPE":
        family.type = rest.strip() or "unknown"
    else:
        family.unit = rest.strip()


def _is_name(name: str) -> bool:
    return bool(name) and name[0] in _NAME_START and all(c in _NAME_REST for c in name[1:])


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out: List[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(_ESCAPES.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _sample(line: str) -> Sample:
    i = 0
    while i < len(line) and line[i] in _NAME_REST:
        i += 1
    name = line[:i]
    if not _is_name(name):
        raise _Malformed("a sample line starts with a metric name")
    labels: Dict[str, str] = {}
    if i < len(line) and line[i] == "{":
        labels, i = _labels(line, i + 1)
    if i >= len(line) or line[i] != " ":
        raise _Malformed("a space follows the name and labels")
    # The value, then optionally a timestamp and an exemplar (`# {...} v`), which are dropped.
    token = line[i + 1 :].split(" ", 1)[0]
    return Sample(name, labels, _number(token))


def _labels(line: str, i: int) -> Tuple[Dict[str, str], int]:
    """Reads `name="value",...}` from i; returns the labels and the index after `}`."""
    labels: Dict[str, str] = {}
    while True:
        if i < len(line) and line[i] == "}":
            return labels, i + 1
        start = i
        while i < len(line) and line[i] in _NAME_REST:
            i += 1
        key = line[start:i]
        if not _is_name(key) or line[i : i + 2] != '="':
            raise _Malformed('labels are name="value" pairs')
        i += 2
        value: List[str] = []
        while True:
            if i >= len(line):
                raise _Malformed("a label value is not closed")
            c = line[i]
            if c == '"':
                break
            if c == "\\":
                if i + 1 >= len(line):
                    raise _Malformed("a label value ends in a lone backslash")
                nxt = line[i + 1]
                value.append(_ESCAPES.get(nxt, "\\" + nxt))
                i += 2
            else:
                value.append(c)
                i += 1
        labels[key] = "".join(value)
        i += 1
        if i < len(line) and line[i] == ",":
            i += 1
        elif i >= len(line) or line[i] != "}":
            raise _Malformed("labels are separated by commas and closed by }")


def _number(token: str) -> Number:
    if not token or "_" in token:  # int() and float() take 1_000; the format does not
        raise _Malformed(f"{token!r} is not a number" if token else "a sample has a value")
    try:
        return int(token)
    except ValueError:
        pass
    lowered = token.lower()
    if lowered in ("+inf", "inf"):
        return math.inf
    if lowered == "-inf":
        return -math.inf
    if lowered == "nan":
        return math.nan
    try:
        return float(token)
    except ValueError:
        raise _Malformed(f"{token!r} is not a number") from None


def bucket_bound(labels: Dict[str, str]) -> Optional[float]:
    """A histogram bucket's upper bound (its ``le`` label), or None when it has none."""
    le = labels.get("le")
    if le is None:
        return None
    try:
        return float(_number(le))
    except _Malformed:
        return None

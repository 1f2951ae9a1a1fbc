"""The Prometheus text exposition format (version 0.0.4), written and read.

The sandbox's collector renders its exporter and its own telemetry in this format, and the
sandbox's ama-metrics agent scrapes and parses it, exactly as a real Prometheus scraper would
read a real collector. Only what the pipeline needs is covered: counters, gauges, histograms,
summaries and untyped samples with optional timestamps; no exemplars, no OpenMetrics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_NAME_PREFIX = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_PREFIX = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

Labels = tuple[tuple[str, str], ...]


def labels_of(mapping: Mapping[str, str]) -> Labels:
    """A canonical (sorted, hashable) label set from a mapping."""
    return tuple(sorted((str(k), str(v)) for k, v in mapping.items()))


@dataclass(frozen=True)
class Sample:
    """One line of the exposition: a series (name and labels) and its value."""

    name: str
    labels: Labels
    value: float
    timestamp_ms: int | None = None

    def label(self, name: str) -> str | None:
        """The value of one label, or None when the sample does not carry it."""
        for key, value in self.labels:
            if key == name:
                return value
        return None


@dataclass
class MetricFamily:
    """A family of samples sharing one name, one `# TYPE` and one `# HELP`."""

    name: str
    type: str = "untyped"
    help: str = ""
    samples: list[Sample] = field(default_factory=list)


class ParseError(ValueError):
    """Raised when scraped text is not valid exposition format."""


def format_value(value: float) -> str:
    """A float as Prometheus writes it: `+Inf`, `-Inf`, `NaN`, integers without `.0`."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def render(families: Iterable[MetricFamily]) -> str:
    """The exposition text of the given families, in the order given."""
    lines: list[str] = []
    for family in families:
        if not family.samples:
            continue
        if family.help:
            lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.type}")
        for sample in family.samples:
            lines.append(render_sample(sample))
    return "\n".join(lines) + ("\n" if lines else "")


def render_sample(sample: Sample) -> str:
    """One sample line, e.g. `http_requests_total{code="200"} 3`."""
    text = sample.name
    if sample.labels:
        inner = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in sample.labels)
        text += "{" + inner + "}"
    text += " " + format_value(sample.value)
    if sample.timestamp_ms is not None:
        text += f" {sample.timestamp_ms}"
    return text


def _parse_labels(text: str, pos: int, line_no: int) -> tuple[dict[str, str], int]:
    """Read `{a="b",...}` starting at text[pos] == '{'; return labels and the position after '}'."""
    labels: dict[str, str] = {}
    pos += 1
    while True:
        while pos < len(text) and text[pos] in " \t,":
            pos += 1
        if pos >= len(text):
            raise ParseError(f"line {line_no}: unterminated label set")
        if text[pos] == "}":
            return labels, pos + 1
        match = _LABEL_PREFIX.match(text, pos)
        if not match:
            raise ParseError(f"line {line_no}: bad label name at column {pos + 1}")
        name = match.group(0)
        pos = match.end()
        while pos < len(text) and text[pos] in " \t":
            pos += 1
        if text[pos : pos + 2] != '="':
            raise ParseError(f'line {line_no}: expected =" after label {name}')
        pos += 2
        value: list[str] = []
        while True:
            if pos >= len(text):
                raise ParseError(f"line {line_no}: unterminated label value")
            char = text[pos]
            if char == "\\":
                nxt = text[pos + 1 : pos + 2]
                value.append({"n": "\n", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
                pos += 2
                continue
            if char == '"':
                pos += 1
                break
            value.append(char)
            pos += 1
        labels[name] = "".join(value)


def _parse_float(text: str, line_no: int) -> float:
    lowered = text.lower()
    if lowered in ("+inf", "inf"):
        return math.inf
    if lowered == "-inf":
        return -math.inf
    if lowered == "nan":
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ParseError(f"line {line_no}: bad value {text!r}") from None


def parse(text: str) -> list[MetricFamily]:
    """Parse exposition text into families (samples keep the order they were written in)."""
    families: dict[str, MetricFamily] = {}
    types: dict[str, str] = {}
    helps: dict[str, str] = {}

    def family_for(sample_name: str) -> MetricFamily:
        # Histogram and summary samples belong to the family without their suffix.
        for suffix in ("_bucket", "_sum", "_count", ""):
            if suffix and not sample_name.endswith(suffix):
                continue
            base = sample_name[: len(sample_name) - len(suffix)] if suffix else sample_name
            if base in types and (suffix == "" or types[base] in ("histogram", "summary")):
                break
        else:
            base = sample_name
        if base not in families:
            families[base] = MetricFamily(
                name=base, type=types.get(base, "untyped"), help=helps.get(base, "")
            )
        return families[base]

    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] == "TYPE":
                types[parts[2]] = parts[3].strip() if len(parts) > 3 else "untyped"
            elif len(parts) >= 3 and parts[1] == "HELP":
                helps[parts[2]] = parts[3] if len(parts) > 3 else ""
            continue
        match = _NAME_PREFIX.match(line)
        if not match:
            raise ParseError(f"line {line_no}: bad metric name")
        name = match.group(0)
        pos = match.end()
        labels: dict[str, str] = {}
        if pos < len(line) and line[pos] == "{":
            labels, pos = _parse_labels(line, pos, line_no)
        rest = line[pos:].split()
        if not rest or len(rest) > 2:
            raise ParseError(f"line {line_no}: expected a value and an optional timestamp")
        value = _parse_float(rest[0], line_no)
        timestamp = int(rest[1]) if len(rest) == 2 else None
        family_for(name).samples.append(Sample(name, labels_of(labels), value, timestamp))
    return list(families.values())


def is_valid_metric_name(name: str) -> bool:
    """True when `name` is a legal Prometheus metric name."""
    return bool(_METRIC_NAME.match(name))


def is_valid_label_name(name: str) -> bool:
    """True when `name` is a legal Prometheus label name."""
    return bool(_LABEL_NAME.match(name))

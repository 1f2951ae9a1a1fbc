"""Azure Monitor workspaces: where shipped samples land, and their Prometheus query API.

`WorkspaceStore` keeps, per workspace name, the recent samples of every series that ama-metrics
ingested. `WorkspaceQueryApi` serves the Prometheus HTTP API a real workspace offers on its query
endpoint, mounted on the sandbox's ARM server as `/prometheus/<workspace-name>/api/v1/...`
(bearer token required, as the real endpoint does). The query language is a small subset of
PromQL, enough for checks and canaries:

- a selector: `name`, `name{label="v", other!="x", re=~"a.*", nre!~"b.*"}`, `{__name__="name"}`;
- an aggregation over one selector: `count(...)`, `sum(...)`, `min(...)`, `max(...)`, optionally
  with `by (label, ...)`.

Anything else is refused with 400 `bad_data`, the way Prometheus refuses a query it cannot parse.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from sandbox.behaviour.promtext import Labels, Sample, format_value, labels_of

logger = logging.getLogger(__name__)

LOOKBACK_SECONDS = 300.0
MAX_POINTS_PER_SERIES = 2000


class QueryError(ValueError):
    """A query the workspace cannot parse or evaluate (HTTP 400, errorType bad_data)."""


@dataclass
class _Series:
    labels: Labels  # includes __name__
    points: list[tuple[float, float]] = field(default_factory=list)  # (seconds, value)


class Workspace:
    """The time series of one Azure Monitor workspace."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._series: dict[Labels, _Series] = {}

    def append(self, sample: Sample, *, at: float) -> None:
        """Store one sample at time `at` (seconds since the epoch)."""
        labels = labels_of(dict(sample.labels) | {"__name__": sample.name})
        series = self._series.get(labels)
        if series is None:
            series = _Series(labels=labels)
            self._series[labels] = series
        series.points.append((at, sample.value))
        if len(series.points) > MAX_POINTS_PER_SERIES:
            del series.points[: len(series.points) - MAX_POINTS_PER_SERIES]

    def series(self) -> Iterable[_Series]:
        """Every stored series."""
        return self._series.values()

    def dump(self) -> dict[str, Any]:
        """A JSON-able copy, for persisting the sandbox's state."""
        return {
            "name": self.name,
            "series": [
                {"labels": dict(s.labels), "points": s.points[-50:]} for s in self._series.values()
            ],
        }

    @classmethod
    def load(cls, data: dict[str, Any]) -> Workspace:
        """The inverse of `dump`."""
        workspace = cls(data["name"])
        for item in data.get("series") or []:
            labels = labels_of(item["labels"])
            workspace._series[labels] = _Series(
                labels=labels, points=[(float(t), float(v)) for t, v in item["points"]]
            )
        return workspace


class WorkspaceStore:
    """All workspaces of the sandbox, by name (case-insensitive, as ARM names are)."""

    def __init__(self) -> None:
        self._workspaces: dict[str, Workspace] = {}

    def workspace(self, name: str) -> Workspace:
        """The workspace called `name`, created empty on first use."""
        key = name.lower()
        if key not in self._workspaces:
            self._workspaces[key] = Workspace(name)
        return self._workspaces[key]

    def ingest(self, name: str, samples: Iterable[Sample], *, at: float | None = None) -> int:
        """Store scraped samples in a workspace; return how many were stored."""
        at = time.time() if at is None else at
        workspace = self.workspace(name)
        count = 0
        for sample in samples:
            workspace.append(sample, at=at)
            count += 1
        return count

    def dump(self) -> list[dict[str, Any]]:
        """A JSON-able copy of every workspace."""
        return [w.dump() for w in self._workspaces.values()]

    def load(self, data: list[dict[str, Any]]) -> None:
        """Replace the contents with a `dump`."""
        self._workspaces = {item["name"].lower(): Workspace.load(item) for item in data}


# -- the query language --------------------------------------------------------------------

_AGGREGATION = re.compile(
    r"^\s*(count|sum|min|max)\s*(?:by\s*\(([^)]*)\)\s*)?\((.*)\)\s*(?:by\s*\(([^)]*)\))?\s*$",
    re.DOTALL,
)
_SELECTOR = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*(\{(.*)\})?\s*$", re.DOTALL)
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|$)')


@dataclass
class Matcher:
    """One label matcher of a selector."""

    label: str
    op: str
    value: str

    def matches(self, labels: dict[str, str]) -> bool:
        actual = labels.get(self.label, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        matched = re.fullmatch(self.value, actual) is not None
        return matched if self.op == "=~" else not matched


@dataclass
class Query:
    """A parsed query: a selector, optionally aggregated."""

    matchers: list[Matcher]
    aggregation: str | None = None
    by: list[str] = field(default_factory=list)


def parse_query(text: str) -> Query:
    """Parse the supported PromQL subset; raise QueryError for anything else."""
    if not text or not text.strip():
        raise QueryError("empty query")
    aggregation = _AGGREGATION.match(text)
    if aggregation:
        inner = parse_query(aggregation.group(3))
        if inner.aggregation:
            raise QueryError("nested aggregations are not supported by the sandbox")
        by_text = aggregation.group(2) or aggregation.group(4) or ""
        by = [b.strip() for b in by_text.split(",") if b.strip()]
        return Query(matchers=inner.matchers, aggregation=aggregation.group(1), by=by)

    selector = _SELECTOR.match(text)
    if not selector:
        raise QueryError(f'1:1: parse error: unexpected input in query "{text.strip()}"')
    matchers: list[Matcher] = []
    if selector.group(1):
        matchers.append(Matcher("__name__", "=", selector.group(1)))
    body = (selector.group(3) or "").strip()
    position = 0
    while position < len(body):
        match = _MATCHER.match(body, position)
        if not match:
            raise QueryError(
                f'parse error: unexpected character inside braces: "{body[position:]}"'
            )
        value = match.group(3).encode().decode("unicode_escape")
        if match.group(2) in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise QueryError(f"error parsing regexp: {exc}") from None
        matchers.append(Matcher(match.group(1), match.group(2), value))
        position = match.end()
    if not matchers:
        raise QueryError("vector selector must contain at least one non-empty matcher")
    if not any(m.op in ("=", "=~") and m.value for m in matchers) and not any(
        m.label == "__name__" for m in matchers
    ):
        raise QueryError("vector selector must contain at least one non-empty matcher")
    return Query(matchers=matchers)


def evaluate(
    workspace: Workspace, query: Query, *, at: float
) -> list[tuple[dict[str, str], float]]:
    """The instant vector of `query` at time `at` (latest point within the lookback window)."""
    selected: list[tuple[dict[str, str], float]] = []
    for series in workspace.series():
        labels = dict(series.labels)
        if not all(m.matches(labels) for m in query.matchers):
            continue
        value = _value_at(series.points, at)
        if value is not None:
            selected.append((labels, value))
    if query.aggregation is None:
        return selected

    groups: dict[Labels, list[float]] = {}
    for labels, value in selected:
        key = labels_of({b: labels[b] for b in query.by if b in labels})
        groups.setdefault(key, []).append(value)
    reducers: dict[str, Callable[[list[float]], float]] = {
        "count": lambda values: float(len(values)),
        "sum": lambda values: float(math.fsum(values)),
        "min": min,
        "max": max,
    }
    reduce = reducers[query.aggregation]
    return [(dict(key), reduce(values)) for key, values in groups.items()]


def _value_at(points: list[tuple[float, float]], at: float) -> float | None:
    for timestamp, value in reversed(points):
        if timestamp <= at:
            return value if timestamp > at - LOOKBACK_SECONDS else None
    return None


# -- the HTTP API --------------------------------------------------------------------------

TokenCheck = Callable[[web.Request], bool | Awaitable[bool]]


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def _error(status: int, error_type: str, message: str) -> web.Response:
    return _json(status, {"status": "error", "errorType": error_type, "error": message})


def _float_param(value: str | None, default: float, name: str) -> float:
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        pass
    try:
        from datetime import datetime

        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise QueryError(
            f'invalid parameter "{name}": cannot parse "{value}" to a valid timestamp'
        ) from None


def _step_param(value: str | None) -> float:
    if not value:
        raise QueryError('invalid parameter "step": missing step')
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)?", value.strip())
    if not match:
        raise QueryError(f'invalid parameter "step": cannot parse "{value}" to a valid duration')
    number = float(match.group(1))
    return number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


class WorkspaceQueryApi:
    """The Prometheus HTTP API of the sandbox's workspaces, for mounting on the ARM server."""

    PREFIX = "/prometheus/{workspace}/api/v1"

    def __init__(
        self, store: WorkspaceStore, *, token_check: TokenCheck, known: Callable[[str], bool]
    ) -> None:
        self._store = store
        self._token_check = token_check
        self._known = known

    def routes(
        self,
    ) -> list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]]:
        """(method, path, handler) for every route, as `AzureSandbox.add_route` takes them."""
        routes = []
        for method in ("GET", "POST"):
            routes.append((method, f"{self.PREFIX}/query", self.query))
            routes.append((method, f"{self.PREFIX}/query_range", self.query_range))
            routes.append((method, f"{self.PREFIX}/labels", self.labels))
        routes.append(("GET", self.PREFIX + "/label/{label}/values", self.label_values))
        return routes

    async def _params(self, request: web.Request) -> dict[str, str]:
        params = dict(request.query)
        if request.method == "POST":
            form = await request.post()
            params.update({k: str(v) for k, v in form.items()})
        return params

    async def _authorise(self, request: web.Request) -> web.Response | Workspace:
        verdict = self._token_check(request)
        if not isinstance(verdict, bool):
            verdict = await verdict
        if not verdict:
            response = _error(401, "unauthorized", "the bearer token is missing or not valid")
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
            return response
        name = request.match_info["workspace"]
        if not self._known(name):
            return _error(404, "not_found", f"workspace {name!r} does not exist")
        return self._store.workspace(name)

    async def query(self, request: web.Request) -> web.Response:
        """`/api/v1/query`: an instant vector."""
        workspace = await self._authorise(request)
        if isinstance(workspace, web.Response):
            return workspace
        params = await self._params(request)
        try:
            query = parse_query(params.get("query", ""))
            at = _float_param(params.get("time"), time.time(), "time")
        except QueryError as exc:
            return _error(400, "bad_data", str(exc))
        result = [
            {"metric": labels, "value": [round(at, 3), format_value(value)]}
            for labels, value in evaluate(workspace, query, at=at)
        ]
        return _json(200, {"status": "success", "data": {"resultType": "vector", "result": result}})

    async def query_range(self, request: web.Request) -> web.Response:
        """`/api/v1/query_range`: a matrix, evaluating the query at every step."""
        workspace = await self._authorise(request)
        if isinstance(workspace, web.Response):
            return workspace
        params = await self._params(request)
        try:
            query = parse_query(params.get("query", ""))
            start = _float_param(params.get("start"), math.nan, "start")
            end = _float_param(params.get("end"), math.nan, "end")
            step = _step_param(params.get("step"))
            if math.isnan(start) or math.isnan(end):
                raise QueryError('invalid parameter "start"/"end": both are required')
            if end < start:
                raise QueryError(
                    'invalid parameter "end": end timestamp must not be before start time'
                )
            if (end - start) / step > 11000:
                raise QueryError("exceeded maximum resolution of 11,000 points per timeseries")
        except QueryError as exc:
            return _error(400, "bad_data", str(exc))
        matrix: dict[Labels, list[list[Any]]] = {}
        at = start
        while at <= end:
            for labels, value in evaluate(workspace, query, at=at):
                matrix.setdefault(labels_of(labels), []).append([round(at, 3), format_value(value)])
            at += step
        result = [{"metric": dict(k), "values": v} for k, v in matrix.items()]
        return _json(200, {"status": "success", "data": {"resultType": "matrix", "result": result}})

    async def labels(self, request: web.Request) -> web.Response:
        """`/api/v1/labels`: every label name in the workspace."""
        workspace = await self._authorise(request)
        if isinstance(workspace, web.Response):
            return workspace
        names = sorted({k for s in workspace.series() for k, _ in s.labels})
        return _json(200, {"status": "success", "data": names})

    async def label_values(self, request: web.Request) -> web.Response:
        """`/api/v1/label/<name>/values`: every value of one label."""
        workspace = await self._authorise(request)
        if isinstance(workspace, web.Response):
            return workspace
        label = request.match_info["label"]
        values = sorted({v for s in workspace.series() for k, v in s.labels if k == label})
        return _json(200, {"status": "success", "data": values})

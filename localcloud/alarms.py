"""The template's CloudWatch alarms, evaluated over the metrics a local run emitted.

Every ``AWS::CloudWatch::Alarm`` of the synthesized template is read back as CloudWatch would read it
(metric or metric math, statistic, period, evaluation periods, datapoints to alarm, threshold,
comparison, missing-data treatment) and evaluated at the end of each of its periods over the datapoints
``localcloud.metrics`` recorded; each ``AWS::CloudWatch::CompositeAlarm`` follows its children. The
result is a timeline: each alarm's state changes, in seconds since the run started, and the alarms
that cannot be evaluated here, with the reason.

Time compression. A run compressed /F (``localcloud.scenarios.compressed_context``) lives F nominal
seconds per second, so:

* every period is divided by F (at /10 a 60 s period is 6 s of the run), so an alarm sees as many
  periods of a fault as it would in the cloud;
* metrics that measure how long work has waited (``TIME_VALUED_METRICS``: a queue's oldest message, a
  paused consumer) are multiplied by F: their thresholds are nominal durations (300 s of queue age),
  not compressed settings;
* ``RATE`` is per nominal second (it divides by the template's period);
* nothing else is scaled: counts per period stay counts per period, and thresholds derived from
  compressed settings (a function's duration near its compressed timeout) are already compressed.

Missing data, per ``TreatMissingData``: ``notBreaching`` / ``breaching`` count a missing period as not
breaching / breaching; ``missing`` / ``ignore`` judge the periods that have data (ALARM when at least
DatapointsToAlarm of them breach), and with none the alarm goes to INSUFFICIENT_DATA (``missing``) or
keeps its state (``ignore``).
"""

from __future__ import annotations

import ast
import dataclasses
import itertools
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lambdas.contracts.metrics import METRIC_PAUSED_SECONDS
from localcloud.metrics import LOCAL_SERVICE_METRICS, NOT_OBSERVABLE, MetricKey, MetricStore

ALARM, OK, INSUFFICIENT_DATA = "ALARM", "OK", "INSUFFICIENT_DATA"
TIME_VALUED_METRICS = frozenset({"ApproximateAgeOfOldestMessage", METRIC_PAUSED_SECONDS})
COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": lambda v, t: v > t,
    "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
    "LessThanThreshold": lambda v, t: v < t,
    "LessThanOrEqualToThreshold": lambda v, t: v <= t,
}

Resolver = Callable[[Any], Any]
Series = dict[int, float]  # period index -> value; a period without data has no entry
Value = Series | float


class NotEvaluableError(ValueError):
    """An alarm (or part of one) the local cloud cannot evaluate; the message says why."""


# ------------------------------------------------------------------------------------------ definitions


@dataclass(frozen=True)
class MetricStat:
    key: MetricKey
    stat: str
    period_s: int  # nominal, as in the template


@dataclass(frozen=True)
class Query:
    id: str
    metric: MetricStat | None = None
    expression: str | None = None
    return_data: bool = True


@dataclass(frozen=True)
class AlarmDefinition:
    logical_id: str
    queries: tuple[Query, ...]
    threshold: float
    comparison: str
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing: str

    @property
    def name(self) -> str:
        return friendly_name(self.logical_id)

    @property
    def returned(self) -> Query:
        return next(q for q in self.queries if q.return_data)

    @property
    def period_s(self) -> int:
        return next(q.metric.period_s for q in self.queries if q.metric is not None)

    @property
    def metrics(self) -> list[MetricStat]:
        return [q.metric for q in self.queries if q.metric is not None]


@dataclass(frozen=True)
class CompositeDefinition:
    logical_id: str
    rule: str  # children named ``alarm:<logical id>``

    @property
    def name(self) -> str:
        return friendly_name(self.logical_id)


def friendly_name(logical_id: str) -> str:
    """``MonitoringOrdersQueueAgeDE63994E`` -> ``OrdersQueueAge`` (the construct's id)."""
    name = re.sub(r"[0-9A-F]{8}$", "", logical_id)
    return name.removeprefix("Monitoring") or logical_id


def symbolic(value: Any) -> Any:
    """A resolver without a deployed stack: ``Ref`` -> the logical id, ``Fn::GetAtt`` -> ``id.Attribute``."""
    if isinstance(value, list):
        return [symbolic(v) for v in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value:
        return str(value["Ref"])
    if "Fn::GetAtt" in value:
        argument = value["Fn::GetAtt"]
        return ".".join(argument) if isinstance(argument, list) else str(argument)
    if "Fn::Join" in value:
        separator, items = value["Fn::Join"]
        return str(separator).join(str(symbolic(item)) for item in items)
    return {k: symbolic(v) for k, v in value.items()}


def _metric_stat(metric: Mapping[str, Any], stat: str, period: Any, resolve: Resolver) -> MetricStat:
    dimensions = {str(d["Name"]): str(resolve(d["Value"])) for d in metric.get("Dimensions") or []}
    return MetricStat(MetricKey.of(metric["Namespace"], metric["MetricName"], dimensions), stat, int(period))


def read_alarm(logical_id: str, props: Mapping[str, Any], resolve: Resolver) -> AlarmDefinition:
    if "MetricName" in props:
        stat = props.get("Statistic") or props.get("ExtendedStatistic")
        queries: tuple[Query, ...] = (Query("m", _metric_stat(props, str(stat), props["Period"], resolve)),)
    else:
        queries = tuple(
            Query(
                str(q["Id"]),
                _metric_stat(
                    q["MetricStat"]["Metric"], q["MetricStat"]["Stat"], q["MetricStat"]["Period"], resolve
                )
                if "MetricStat" in q
                else None,
                q.get("Expression"),
                bool(q.get("ReturnData", True)),
            )
            for q in props["Metrics"]
        )
    periods = int(props["EvaluationPeriods"])
    return AlarmDefinition(
        logical_id=logical_id,
        queries=queries,
        threshold=float(props["Threshold"]),
        comparison=str(props["ComparisonOperator"]),
        evaluation_periods=periods,
        datapoints_to_alarm=int(props.get("DatapointsToAlarm", periods)),
        treat_missing=str(props.get("TreatMissingData", "missing")),
    )


def _alarm_arns_named(value: Any, alarms: set[str]) -> Any:
    """``Fn::GetAtt [alarm, Arn]`` -> ``alarm:<logical id>``, so a composite's rule names its children."""
    if isinstance(value, list):
        return [_alarm_arns_named(v, alarms) for v in value]
    if isinstance(value, dict):
        argument = value.get("Fn::GetAtt")
        if isinstance(argument, list) and argument[0] in alarms and argument[1] == "Arn":
            return f"alarm:{argument[0]}"
        return {k: _alarm_arns_named(v, alarms) for k, v in value.items()}
    return value


@dataclass
class TemplateAlarms:
    alarms: list[AlarmDefinition]
    composites: list[CompositeDefinition]
    unreadable: dict[str, str]  # logical id -> why it could not be read


def clear_window_s(template: Mapping[str, Any], metric_name: str) -> float:
    """How long (nominal seconds) the alarms reading ``metric_name`` take to return to OK once it stops:
    their evaluation window, plus one period for the evaluation to come round."""
    windows = [
        (alarm.evaluation_periods + 1) * alarm.period_s
        for alarm in read_template(template).alarms
        if any(metric.key.name == metric_name for metric in alarm.metrics)
    ]
    return float(max(windows, default=0))


def read_template(template: Mapping[str, Any], resolve: Resolver = symbolic) -> TemplateAlarms:
    resources: Mapping[str, Any] = template["Resources"]
    alarm_ids = {k for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    out = TemplateAlarms([], [], {})
    for logical_id, resource in resources.items():
        props = resource.get("Properties", {})
        try:
            if resource["Type"] == "AWS::CloudWatch::Alarm":
                out.alarms.append(read_alarm(logical_id, props, resolve))
            elif resource["Type"] == "AWS::CloudWatch::CompositeAlarm":
                rule = resolve(_alarm_arns_named(props["AlarmRule"], alarm_ids))
                out.composites.append(CompositeDefinition(logical_id, str(rule)))
        except (KeyError, ValueError, TypeError) as exc:
            out.unreadable[logical_id] = f"cannot resolve its definition locally: {exc}"
    return out


# ------------------------------------------------------------------------------------------ metric math

FUNCTIONS = ("FILL", "IF", "RATE")
_OPERATORS = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/",
    ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!=",
}  # fmt: skip


def parse_expression(expression: str) -> Any:
    """The metric math the template uses (numbers, query ids, + - * /, one comparison, parentheses,
    FILL(x, value), IF(condition, a, b) and RATE(x)), read with Python's parser: for these the grammar
    and the precedence are the same."""
    try:
        body = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError:
        raise NotEvaluableError(f"cannot read metric math {expression!r}") from None
    return _math_tree(body, expression)


def _math_tree(node: ast.expr, expression: str) -> Any:
    match node:
        case ast.Constant(value=int() | float() as number) if not isinstance(number, bool):
            return ("number", float(number))
        case ast.Name(id=name):
            return ("id", name)
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return ("op", "*", ("number", -1.0), _math_tree(operand, expression))
        case ast.BinOp(left=left, op=op, right=right) | ast.Compare(left=left, ops=[op], comparators=[right]):
            if type(op) in _OPERATORS:
                return (
                    "op",
                    _OPERATORS[type(op)],
                    _math_tree(left, expression),
                    _math_tree(right, expression),
                )
        case ast.Call(func=ast.Name(id=name), args=arguments, keywords=[]):
            if name not in FUNCTIONS:
                raise NotEvaluableError(f"metric math function {name} is not evaluated locally")
            return ("call", name, [_math_tree(argument, expression) for argument in arguments])
    raise NotEvaluableError(f"unexpected {ast.unparse(node)!r} in {expression!r}")


def _apply(operator: str, a: float, b: float) -> float | None:
    if operator == "+":
        return a + b
    if operator == "-":
        return a - b
    if operator == "*":
        return a * b
    if operator == "/":
        return None if b == 0 else a / b  # CloudWatch drops a division by zero
    return float({">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b, "==": a == b, "!=": a != b}[operator])


def _binary(operator: str, left: Value, right: Value) -> Value:
    if isinstance(left, float) and isinstance(right, float):
        result = _apply(operator, left, right)
        return math.nan if result is None else result
    indices = (
        set(left) & set(right)
        if isinstance(left, dict) and isinstance(right, dict)
        else set(left if isinstance(left, dict) else right)  # type: ignore[arg-type]
    )
    out: Series = {}
    for i in indices:
        a = left[i] if isinstance(left, dict) else left
        b = right[i] if isinstance(right, dict) else right
        value = _apply(operator, a, b)
        if value is not None:
            out[i] = value
    return out


@dataclass(frozen=True)
class MathContext:
    series: Mapping[str, Series]  # query id -> its datapoints
    indices: range  # the periods the expression is evaluated over (FILL fills these)
    period_s: float  # nominal: RATE is per nominal second


def evaluate_expression(tree: Any, context: MathContext) -> Value:
    kind = tree[0]
    if kind == "number":
        return float(tree[1])
    if kind == "id":
        if tree[1] not in context.series:
            raise NotEvaluableError(f"metric math reads {tree[1]}, which the alarm does not define")
        return dict(context.series[tree[1]])
    if kind == "op":
        return _binary(tree[1], evaluate_expression(tree[2], context), evaluate_expression(tree[3], context))
    name, arguments = tree[1], [evaluate_expression(a, context) for a in tree[2]]
    if name == "FILL" and len(arguments) == 2 and isinstance(arguments[1], float):
        x, fill = arguments[0], arguments[1]
        return x if isinstance(x, float) else {i: x.get(i, fill) for i in context.indices}
    if name == "RATE" and len(arguments) == 1 and isinstance(arguments[0], dict):
        x = arguments[0]
        ordered = sorted(x)
        return {j: (x[j] - x[i]) / ((j - i) * context.period_s) for i, j in itertools.pairwise(ordered)}
    if name == "IF" and len(arguments) == 3:
        condition, then, otherwise = arguments
        if isinstance(condition, float):
            return then if condition else otherwise
        out: Series = {}
        for i, c in condition.items():
            chosen = then if c else otherwise
            value = chosen.get(i) if isinstance(chosen, dict) else chosen
            if value is not None:
                out[i] = value
        return out
    raise NotEvaluableError(f"{name} with these arguments is not evaluated locally")


# ------------------------------------------------------------------------------------------ statistics


def statistic(stat: str, values: list[float]) -> float | None:
    """One period's statistic; None when the period has no data."""
    if not values:
        return None
    if stat == "Sum":
        return sum(values)
    if stat == "Maximum":
        return max(values)
    if stat == "Minimum":
        return min(values)
    if stat == "Average":
        return sum(values) / len(values)
    if stat == "SampleCount":
        return float(len(values))
    match = re.fullmatch(r"p(\d+(?:\.\d+)?)", stat)
    if match:
        ordered = sorted(values)
        rank = math.ceil(float(match.group(1)) / 100 * len(ordered))  # nearest rank
        return ordered[max(0, rank - 1)]
    raise NotEvaluableError(f"statistic {stat} is not evaluated locally")


# ------------------------------------------------------------------------------------------ evaluation


@dataclass(frozen=True)
class StateChange:
    t: float  # seconds since the run started
    from_state: str
    to_state: str


@dataclass(frozen=True)
class Seen:
    peak: float | None  # the highest datapoint
    breaching_periods: int  # periods whose datapoint breached on its own
    datapoints_to_alarm: int
    evaluation_periods: int


@dataclass
class AlarmTimeline:
    """What the template's alarms did during one run."""

    factor: float
    changes: dict[str, list[StateChange]] = field(default_factory=dict)  # alarm name -> its changes
    not_evaluable: dict[str, str] = field(default_factory=dict)  # alarm name -> why
    # Evaluated, but some inputs are never observable locally (read as missing): alarm name -> which.
    partly_observed: dict[str, str] = field(default_factory=dict)
    composites: list[str] = field(default_factory=list)
    # Alarm name -> what it saw over the run, fired or not.
    seen: dict[str, Seen] = field(default_factory=dict)

    def fired(self) -> list[str]:
        """Alarms that went to ALARM at least once, in the order they first did."""
        first = {
            name: next(c.t for c in changes if c.to_state == ALARM)
            for name, changes in self.changes.items()
            if any(c.to_state == ALARM for c in changes)
        }
        return sorted(first, key=lambda name: (first[name], name))

    def breached_without_firing(self) -> list[str]:
        """Alarms that saw breaching periods but never enough of them together to fire."""
        fired = set(self.fired())
        return sorted(
            name for name, seen in self.seen.items() if seen.breaching_periods and name not in fired
        )

    def alarm_windows(self, name: str) -> list[tuple[float, float | None]]:
        """(went to ALARM, left it or None) for each time ``name`` was in ALARM."""
        windows: list[tuple[float, float | None]] = []
        for change in self.changes.get(name, []):
            if change.to_state == ALARM:
                windows.append((change.t, None))
            elif change.from_state == ALARM and windows:
                windows[-1] = (windows[-1][0], change.t)
        return windows

    def document(self) -> dict[str, Any]:
        return {
            "factor": self.factor,
            "evaluated": len(self.changes),
            "fired": {name: self.alarm_windows(name) for name in self.fired()},
            "changes": {
                name: [(round(c.t, 2), c.from_state, c.to_state) for c in changes]
                for name, changes in self.changes.items()
                if changes
            },
            "not_evaluable": dict(sorted(self.not_evaluable.items())),
            "partly_observed": dict(sorted(self.partly_observed.items())),
            "composites": self.composites,
            "seen": {name: dataclasses.asdict(seen) for name, seen in self.seen.items()},
        }


def observability(alarm: AlarmDefinition) -> tuple[list[str], list[str]]:
    """(why each unobservable input is, inputs with a local source) of an alarm's metrics."""
    missing, observed = [], []
    for metric in alarm.metrics:
        key = (metric.key.namespace, metric.key.name)
        if key in NOT_OBSERVABLE:
            missing.append(f"{metric.key.namespace} {metric.key.name}: {NOT_OBSERVABLE[key]}")
        elif metric.key.namespace.startswith("AWS/") and key not in LOCAL_SERVICE_METRICS:
            missing.append(f"{metric.key.namespace} {metric.key.name}: the local cloud does not publish it")
        else:
            observed.append(metric.key.name)
    return sorted(set(missing)), observed


class AlarmEvaluator:
    """Evaluates one alarm at the end of each of its (compressed) periods."""

    def __init__(self, alarm: AlarmDefinition, store: MetricStore, factor: float) -> None:
        self.alarm = alarm
        self.store = store
        self.factor = factor
        self.period_s = alarm.period_s / factor  # of the run
        returned = alarm.returned
        self.tree = parse_expression(returned.expression) if returned.expression else None
        self.compare = COMPARISONS.get(alarm.comparison)
        if self.compare is None:
            raise NotEvaluableError(f"comparison {alarm.comparison} is not evaluated locally")
        for metric in alarm.metrics:
            statistic(metric.stat, [0.0])  # raises for a statistic not evaluated here
        # Over the run: the highest datapoint, and how many periods breached on their own (an alarm
        # needing 3 of 3 may see a fault it does not fire on).
        self.peak: float | None = None
        self.breaching_periods = 0

    def series(self, metric: MetricStat, indices: range) -> Series:
        scale = self.factor if metric.key.name in TIME_VALUED_METRICS else 1.0
        out: Series = {}
        for i in indices:
            values = self.store.values(metric.key, i * self.period_s, (i + 1) * self.period_s)
            value = statistic(metric.stat, [v * scale for v in values])
            if value is not None:
                out[i] = value
        return out

    def datapoints(self, last: int) -> list[float | None]:
        """The alarm's value in each of its evaluation periods ending with period ``last``."""
        window = range(last - self.alarm.evaluation_periods + 1, last + 1)
        fetched = range(window.start - 1, last + 1)  # one more: RATE needs the period before
        if self.tree is None:
            values: Value = self.series(self.alarm.returned.metric, fetched)  # type: ignore[arg-type]
        else:
            series = {
                q.id: self.series(q.metric, fetched) for q in self.alarm.queries if q.metric is not None
            }
            values = evaluate_expression(self.tree, MathContext(series, fetched, float(self.alarm.period_s)))
        if isinstance(values, float):
            return [None if math.isnan(values) else values for _ in window]
        return [values.get(i) for i in window]

    def state(self, last: int, previous: str) -> str:
        assert self.compare is not None
        datapoints = self.datapoints(last)
        newest = datapoints[-1]
        if newest is not None:
            self.peak = newest if self.peak is None else max(self.peak, newest)
            self.breaching_periods += self.compare(newest, self.alarm.threshold)
        breaching: list[bool | None] = [
            None if v is None else self.compare(v, self.alarm.threshold) for v in datapoints
        ]
        treat = self.alarm.treat_missing
        if treat in ("breaching", "notBreaching"):
            breaching = [treat == "breaching" if b is None else b for b in breaching]
        if all(b is None for b in breaching):
            return previous if treat == "ignore" else INSUFFICIENT_DATA
        return ALARM if sum(1 for b in breaching if b) >= self.alarm.datapoints_to_alarm else OK

    def run(self, end_s: float) -> list[StateChange]:
        """Evaluated at the end of every complete period up to ``end_s`` (seconds of the run)."""
        changes: list[StateChange] = []
        state = INSUFFICIENT_DATA
        last = 0
        while (last + 1) * self.period_s <= end_s + 1e-9:
            new = self.state(last, state)
            if new != state:
                changes.append(StateChange(round((last + 1) * self.period_s, 3), state, new))
                state = new
            last += 1
        return changes


_RULE_WORDS = {"AND": "and", "OR": "or", "NOT": "not", "TRUE": "True", "FALSE": "False"}


def composite_state(rule: str, states: Mapping[str, str]) -> bool:
    """Whether ``rule`` (``ALARM("alarm:X") OR (OK("alarm:Y") AND NOT ...)``) holds for ``states``: the
    rule's grammar is Python's boolean one in capitals, so it is read with Python's parser."""
    python = re.sub(r'"[^"]*"|\b(?:AND|OR|NOT|TRUE|FALSE)\b', lambda m: _RULE_WORDS.get(m[0], m[0]), rule)
    try:
        body = ast.parse(python.strip(), mode="eval").body
    except SyntaxError:
        raise NotEvaluableError(f"cannot read the alarm rule {rule[:80]!r}") from None

    def holds(node: ast.expr) -> bool:
        match node:
            case ast.BoolOp(op=ast.And(), values=values):
                return all([holds(value) for value in values])
            case ast.BoolOp(op=ast.Or(), values=values):
                return any([holds(value) for value in values])
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                return not holds(operand)
            case ast.Constant(value=bool() as value):
                return value
            case ast.Call(func=ast.Name(id=state), args=[ast.Constant(value=str() as child)], keywords=[]):
                if state in (ALARM, OK, INSUFFICIENT_DATA):
                    return states.get(child.removeprefix("alarm:"), OK) == state
        raise NotEvaluableError(f"cannot read {ast.unparse(node)!r} of the alarm rule {rule[:80]!r}")

    return holds(body)


def evaluate(
    template_alarms: TemplateAlarms,
    store: MetricStore,
    end_s: float,
    factor: float = 1.0,
    *,
    absent: Mapping[str, str] | None = None,
) -> AlarmTimeline:
    """Every alarm of the template over ``store``'s datapoints, from 0 to ``end_s`` seconds of the run.

    ``absent``: dimension values of resources that exist in the template but not in the local run
    (value -> why); an alarm reading only those is not evaluable.
    """
    timeline = AlarmTimeline(factor)
    by_id: dict[str, list[StateChange]] = {}
    for logical_id, why in template_alarms.unreadable.items():
        timeline.not_evaluable[friendly_name(logical_id)] = why
    for alarm in template_alarms.alarms:
        missing, observed = observability(alarm)
        gone = [_absent_reason(metric, absent or {}) for metric in alarm.metrics]
        if gone and all(gone):
            timeline.not_evaluable[alarm.name] = "; ".join(sorted({reason for reason in gone if reason}))
            continue
        if not observed:
            timeline.not_evaluable[alarm.name] = "; ".join(missing)
            continue
        try:
            evaluator = AlarmEvaluator(alarm, store, factor)
            changes = evaluator.run(end_s)
        except NotEvaluableError as exc:
            timeline.not_evaluable[alarm.name] = str(exc)
            continue
        timeline.seen[alarm.name] = Seen(
            evaluator.peak, evaluator.breaching_periods, alarm.datapoints_to_alarm, alarm.evaluation_periods
        )
        if missing:
            timeline.partly_observed[alarm.name] = "; ".join(missing)
        timeline.changes[alarm.name] = changes
        by_id[alarm.logical_id] = changes
    for composite in template_alarms.composites:
        try:
            timeline.changes[composite.name] = _composite_changes(composite, by_id)
        except NotEvaluableError as exc:
            timeline.not_evaluable[composite.name] = str(exc)
            continue
        timeline.composites.append(composite.name)
    return timeline


def _absent_reason(metric: MetricStat, absent: Mapping[str, str]) -> str | None:
    return next((absent[value] for _, value in metric.key.dimensions if value in absent), None)


def _composite_changes(
    composite: CompositeDefinition, children: Mapping[str, list[StateChange]]
) -> list[StateChange]:
    """The composite re-evaluated whenever a child changes state. A child that is not evaluated
    locally counts as OK (the rule names it; the timeline lists why it is not evaluated)."""
    moments = sorted({c.t for changes in children.values() for c in changes})
    changes: list[StateChange] = []
    state = INSUFFICIENT_DATA
    for t in moments:
        states = {
            child: next((c.to_state for c in reversed(changes_of) if c.t <= t), INSUFFICIENT_DATA)
            for child, changes_of in children.items()
        }
        new = ALARM if composite_state(composite.rule, states) else OK
        if new != state:
            changes.append(StateChange(t, state, new))
            state = new
    return changes

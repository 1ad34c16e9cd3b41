"""The subset of API Gateway's Velocity (VTL) mapping-template language the ingestion API uses.

The local front door does not re-implement the API's request and response mappings in Python: it renders
the *synthesized template's own* mapping templates with this interpreter, so a change to
``stacks/ingestion_api.py`` changes the local run too. Anything outside the subset raises ``VtlError``
(the e2e contract tests render every template of the API, so such a change fails a test instead of
silently drifting).

Supported:
  * references ``$name``, ``$a.b.c``, ``$a.method(args)`` and chains, ``$!quiet``, ``${formal}``;
  * ``#set($x = expr)`` (also ``#set($context.responseOverride.status = 502)``), ``#if`` / ``#elseif`` /
    ``#else`` / ``#end``, ``##`` comments; a line holding only a directive produces no output;
  * expressions: references, 'single' and "double" quoted strings (no escapes, as in Velocity), integers,
    ``true`` / ``false``, comparisons ``== != > >= < <=``, ``&&``, ``||``, ``!``;
  * ``$input.body``, ``$input.json(path)``, ``$input.path(path)``, ``$input.params(name)``,
    ``$context.*``, ``$util.escapeJavaScript/urlEncode/urlDecode/base64Encode/base64Decode/parseJson``,
    and the Java string methods ``replaceAll``, ``replace``, ``length``, ``toString``, ``trim``.

JSONPath: ``$``, ``$.a.b``, ``$.a[0]``, ``$['a']``.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


class VtlError(ValueError):
    """The template uses VTL this interpreter does not support (or is malformed)."""


# ------------------------------------------------------------------------------------------ API objects


def json_path(document: Any, path: str) -> Any:
    """Evaluate the JSONPath subset API Gateway templates use; a missing member gives None."""
    path = path.strip()
    if not path.startswith("$"):
        raise VtlError(f"JSONPath must start with '$': {path!r}")
    tokens = re.findall(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]", path[1:])
    rebuilt = "".join(
        f".{name}" if name else f"[{index}]" if index else f"['{single}']" if single else f'["{double}"]'
        for name, index, single, double in tokens
    )
    if rebuilt != path[1:]:
        raise VtlError(f"unsupported JSONPath {path!r}")
    value = document
    for name, index, single, double in tokens:
        if index:
            if not isinstance(value, list) or int(index) >= len(value):
                return None
            value = value[int(index)]
        else:
            key = name or single or double
            if not isinstance(value, dict):
                return None
            value = value.get(key)
    return value


def escape_javascript(value: Any) -> str:
    """Apache Commons Lang 2 ``StringEscapeUtils.escapeJavaScript``, what ``$util.escapeJavaScript`` is."""
    text = to_text(value)
    out = []
    for char in text:
        code = ord(char)
        if char in "'\"\\/":
            out.append("\\" + char)
        elif char == "\b":
            out.append("\\b")
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\f":
            out.append("\\f")
        elif char == "\r":
            out.append("\\r")
        elif code < 32 or code > 0x7E:
            if code > 0xFFFF:
                encoded = char.encode("utf-16-be")
                out.extend(f"\\u{int.from_bytes(encoded[i : i + 2], 'big'):04X}" for i in (0, 2))
            else:
                out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    return "".join(out)


def url_encode(value: Any) -> str:
    """``java.net.URLEncoder.encode(value, "UTF-8")``: spaces become '+', only ``*-._`` stay literal."""
    return urllib.parse.quote_plus(to_text(value), safe="*").replace("~", "%7E")


def to_text(value: Any) -> str:
    """How Velocity prints a value."""
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return json.dumps(value)
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


@dataclass
class Input:
    """``$input`` for one request (or, in an integration response, the service's response body)."""

    body: str
    params_by_kind: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # header/querystring/path

    def document(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise VtlError(f"$input body is not JSON: {exc}") from None

    def path(self, path: str) -> Any:
        return json_path(self.document(), path)

    def json(self, path: str) -> str:
        return json.dumps(json_path(self.document(), path), separators=(",", ":"))

    def params(self, name: str | None = None) -> Any:
        if name is None:  # every kind is a map, empty when the request has none
            return {
                kind: dict(self.params_by_kind.get(kind, {})) for kind in ("path", "querystring", "header")
            }
        for kind in ("path", "querystring", "header"):
            values = self.params_by_kind.get(kind, {})
            if kind == "header":
                lowered = {key.lower(): value for key, value in values.items()}
                if name.lower() in lowered:
                    return lowered[name.lower()]
            elif name in values:
                return values[name]
        return ""


class Util:
    """``$util``."""

    escapeJavaScript = staticmethod(escape_javascript)
    urlEncode = staticmethod(url_encode)

    @staticmethod
    def urlDecode(value: Any) -> str:
        return urllib.parse.unquote_plus(to_text(value))

    @staticmethod
    def base64Encode(value: Any) -> str:
        return base64.b64encode(to_text(value).encode()).decode()

    @staticmethod
    def base64Decode(value: Any) -> str:
        return base64.b64decode(to_text(value)).decode()

    @staticmethod
    def parseJson(value: Any) -> Any:
        return json.loads(to_text(value))


_STRING_METHODS: dict[str, Callable[..., Any]] = {
    "length": lambda s: len(s),
    "toString": lambda s: s,
    "trim": lambda s: s.strip(),
    "replace": lambda s, old, new: s.replace(old, new),
    "replaceAll": lambda s, pattern, replacement: re.sub(
        _java_regex(pattern), _java_replacement(replacement), s
    ),
    # Java's String.matches: the whole string.
    "matches": lambda s, pattern: re.fullmatch(_java_regex(pattern), s) is not None,
}
# java.util.Map's, for $input.params() and its per-kind maps.
_MAP_METHODS: dict[str, Callable[..., Any]] = {
    "get": lambda m, key: m.get(key),
    "containsKey": lambda m, key: key in m,
    "isEmpty": lambda m: not m,
}


def _java_regex(pattern: str) -> str:
    if re.search(r"\(\?<[A-Za-z]|\\[pPQEG]|\+\+|\*\+|\?\+", pattern):
        raise VtlError(f"Java regex feature not supported: {pattern!r}")
    return pattern


def _java_replacement(replacement: str) -> Callable[[re.Match[str]], str]:
    def substitute(match: re.Match[str]) -> str:
        out, i = [], 0
        while i < len(replacement):
            char = replacement[i]
            if char == "\\" and i + 1 < len(replacement):
                out.append(replacement[i + 1])
                i += 2
            elif char == "$" and i + 1 < len(replacement) and replacement[i + 1].isdigit():
                out.append(match.group(int(replacement[i + 1])) or "")
                i += 2
            else:
                out.append(char)
                i += 1
        return "".join(out)

    return substitute


# ------------------------------------------------------------------------------------------ the language


class _Quiet:
    def __init__(self, value: Any) -> None:
        self.value = value


@dataclass
class _Scanner:
    text: str
    pos: int = 0

    def peek(self, size: int = 1) -> str:
        return self.text[self.pos : self.pos + size]

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def expect(self, token: str) -> None:
        self.skip_spaces()
        if not self.text.startswith(token, self.pos):
            raise VtlError(f"expected {token!r} at {self.pos}: {self.text[self.pos : self.pos + 30]!r}")
        self.pos += len(token)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Renderer:
    """Render one template against a variable scope (``input``, ``context``, ``util`` and #set variables)."""

    def __init__(self, variables: dict[str, Any]) -> None:
        self.variables = {"util": Util(), **variables}

    # -- statements ----------------------------------------------------------------------------

    def render(self, template: str) -> str:
        scanner = _Scanner(_drop_directive_only_lines(template))
        out: list[str] = []
        self._block(scanner, out, stop=())
        if scanner.pos != len(scanner.text):
            raise VtlError(f"unexpected {scanner.text[scanner.pos : scanner.pos + 20]!r}")
        return "".join(out)

    def _block(self, s: _Scanner, out: list[str] | None, stop: tuple[str, ...]) -> str:
        """Render until one of the ``stop`` directives (returned, not consumed past its name)."""
        while s.pos < len(s.text):
            char = s.peek()
            if char == "#":
                if s.peek(2) == "##":
                    end = s.text.find("\n", s.pos)
                    s.pos = len(s.text) if end < 0 else end
                    continue
                name_match = re.compile(r"#\{?(set|if|elseif|else|end)\}?").match(s.text, s.pos)
                unsupported = _UNSUPPORTED_DIRECTIVE.match(s.text, s.pos)
                if unsupported is not None:
                    raise VtlError(f"unsupported directive #{unsupported.group(1)}")
                if name_match is None:
                    if out is not None:
                        out.append(char)
                    s.pos += 1
                    continue
                name = name_match.group(1)
                if name in stop:
                    s.pos = name_match.end()
                    return name
                if name in ("elseif", "else", "end"):
                    raise VtlError(f"#{name} without #if")
                s.pos = name_match.end()
                if name == "set":
                    self._set(s, out is not None)
                else:
                    self._if(s, out)
            elif char == "$" and not re.compile(r"\$!?\{?[A-Za-z_]").match(s.text, s.pos):
                if out is not None:
                    out.append(char)  # a '$' that starts no reference is text
                s.pos += 1
            elif char == "$":
                start = s.pos
                value = self._reference(s, evaluate=out is not None)
                if out is not None:
                    if isinstance(value, _Quiet):
                        out.append(to_text(value.value))
                    elif value is None:
                        out.append(s.text[start : s.pos])  # Velocity prints an unresolved reference as is
                    else:
                        out.append(to_text(value))
            else:
                nxt = min(
                    (i for i in (s.text.find("#", s.pos), s.text.find("$", s.pos)) if i >= 0), default=-1
                )
                end = len(s.text) if nxt < 0 else nxt
                if out is not None:
                    out.append(s.text[s.pos : end])
                s.pos = end
        if stop:
            raise VtlError(f"missing #{'/#'.join(stop)}")
        return ""

    def _set(self, s: _Scanner, active: bool) -> None:
        s.expect("(")
        s.skip_spaces()
        if s.peek() != "$":
            raise VtlError("#set needs a $reference on the left")
        s.pos += 1
        path = [self._ident(s)]
        while s.peek() == ".":
            s.pos += 1
            path.append(self._ident(s))
        s.expect("=")
        value = self._expression(s, active)
        s.expect(")")
        if not active:
            return
        if len(path) == 1:
            self.variables[path[0]] = value
            return
        target = self.variables.get(path[0])
        for part in path[1:-1]:
            target = target.get(part) if isinstance(target, dict) else getattr(target, part, None)
        if isinstance(target, dict):
            target[path[-1]] = value
        else:
            raise VtlError(f"cannot #set ${'.'.join(path)}")

    def _if(self, s: _Scanner, out: list[str] | None) -> None:
        taken = False
        s.expect("(")
        condition = self._expression(s, out is not None)
        s.expect(")")
        while True:
            branch_active = out is not None and not taken and _truthy(condition)
            taken = taken or branch_active
            ended = self._block(s, out if branch_active else None, stop=("elseif", "else", "end"))
            if ended == "end":
                return
            if ended == "elseif":
                s.expect("(")
                condition = self._expression(s, out is not None and not taken)
                s.expect(")")
            else:  # else
                condition = True
                branch_active = out is not None and not taken
                ended = self._block(s, out if branch_active else None, stop=("end",))
                return

    # -- expressions ---------------------------------------------------------------------------

    def _expression(self, s: _Scanner, active: bool) -> Any:
        left = self._and(s, active)
        while True:
            s.skip_spaces()
            if s.peek(2) == "||":
                s.pos += 2
                right = self._and(s, active)
                left = _truthy(left) or _truthy(right)
            else:
                return left

    def _and(self, s: _Scanner, active: bool) -> Any:
        left = self._comparison(s, active)
        while True:
            s.skip_spaces()
            if s.peek(2) == "&&":
                s.pos += 2
                right = self._comparison(s, active)
                left = _truthy(left) and _truthy(right)
            else:
                return left

    def _comparison(self, s: _Scanner, active: bool) -> Any:
        left = self._unary(s, active)
        s.skip_spaces()
        for op in ("==", "!=", ">=", "<=", ">", "<"):
            if s.peek(len(op)) == op:
                s.pos += len(op)
                right = self._unary(s, active)
                return _compare(op, left, right) if active else False
        return left

    def _unary(self, s: _Scanner, active: bool) -> Any:
        s.skip_spaces()
        if s.peek() == "!" and s.peek(2) != "!=":
            s.pos += 1
            return not _truthy(self._unary(s, active))
        return self._primary(s, active)

    def _primary(self, s: _Scanner, active: bool) -> Any:
        s.skip_spaces()
        char = s.peek()
        if char == "(":
            s.pos += 1
            value = self._expression(s, active)
            s.expect(")")
            return value
        if char in "'\"":
            end = s.text.find(char, s.pos + 1)
            if end < 0:
                raise VtlError("unterminated string")
            literal = s.text[s.pos + 1 : end]
            s.pos = end + 1
            if char == '"' and "$" in literal:
                return Renderer(self.variables).render(literal) if active else literal
            return literal
        if char == "$":
            value = self._reference(s, evaluate=active)
            return value.value if isinstance(value, _Quiet) else value
        number = re.compile(r"-?\d+").match(s.text, s.pos)
        if number:
            s.pos = number.end()
            return int(number.group())
        word = _IDENT.match(s.text, s.pos)
        if word and word.group() in ("true", "false", "null"):
            s.pos = word.end()
            return {"true": True, "false": False, "null": None}[word.group()]
        raise VtlError(f"unsupported expression at {s.text[s.pos : s.pos + 30]!r}")

    def _ident(self, s: _Scanner) -> str:
        match = _NAME.match(s.text, s.pos)
        if match is None:
            raise VtlError(f"identifier expected at {s.text[s.pos : s.pos + 20]!r}")
        s.pos = match.end()
        return match.group()

    def _reference(self, s: _Scanner, evaluate: bool) -> Any:
        s.pos += 1  # '$'
        quiet = s.peek() == "!"
        if quiet:
            s.pos += 1
        formal = s.peek() == "{"
        if formal:
            s.pos += 1
        name = self._ident(s)
        value: Any = self.variables.get(name) if evaluate else None
        while s.peek() == "." and _NAME.match(s.text, s.pos + 1):
            s.pos += 1
            member = self._ident(s)
            if s.peek() == "(":
                s.pos += 1
                args = []
                s.skip_spaces()
                if s.peek() != ")":
                    args.append(self._expression(s, evaluate))
                    s.skip_spaces()
                    while s.peek() == ",":
                        s.pos += 1
                        args.append(self._expression(s, evaluate))
                        s.skip_spaces()
                s.expect(")")
                if evaluate:
                    value = _call(value, member, args)
            elif evaluate:
                value = _member(value, member)
        if formal:
            s.expect("}")
        return _Quiet(value) if quiet else value


def _member(value: Any, name: str) -> Any:
    if value is None:
        return None
    if isinstance(value, Mapping):
        return value.get(name)
    if isinstance(value, Input) and name == "body":
        return value.body
    getter = "get" + name[:1].upper() + name[1:]
    if hasattr(value, getter):
        return getattr(value, getter)()
    raise VtlError(f"unsupported property .{name} on {type(value).__name__}")


def _call(value: Any, name: str, args: list[Any]) -> Any:
    if isinstance(value, str) and name in _STRING_METHODS:
        return _STRING_METHODS[name](value, *args)
    if isinstance(value, Mapping) and name in _MAP_METHODS:
        return _MAP_METHODS[name](value, *args)
    if isinstance(value, Input | Util) and not name.startswith("_") and hasattr(value, name):
        return getattr(value, name)(*args)
    raise VtlError(f"unsupported method .{name}() on {type(value).__name__}")


def _truthy(value: Any) -> bool:
    return value is not None and value is not False


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return left == right or to_text(left) == to_text(right)
    if op == "!=":
        return not (left == right or to_text(left) == to_text(right))
    if left is None or right is None:
        return False
    try:
        a, b = float(left), float(right)
    except (TypeError, ValueError):
        raise VtlError(f"cannot compare {left!r} {op} {right!r}") from None
    return {">": a > b, ">=": a >= b, "<": a < b, "<=": a <= b}[op]


_UNSUPPORTED_DIRECTIVE = re.compile(r"#\{?(foreach|macro|include|parse|break|stop|evaluate|define)\b")
_DIRECTIVE_ONLY_LINE = re.compile(r"^[ \t]*#(set|if|elseif|else|end)\b.*$")


def _drop_directive_only_lines(template: str) -> str:
    """A line holding only directives renders nothing, not an empty line ("lines" space gobbling)."""
    lines = template.split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        stripped = re.sub(r"#(set|if|elseif)\((?:[^()]|\([^()]*\))*\)|#(else|end)\b|##.*$", "", line)
        only_directives = stripped.strip() == "" and _DIRECTIVE_ONLY_LINE.match(line) is not None
        if only_directives and index < len(lines) - 1:
            kept.append(line + "\x00")  # marker: drop the newline after it
        else:
            kept.append(line)
    return "\n".join(kept).replace("\x00\n", "")


def render(template: str, **variables: Any) -> str:
    return Renderer(dict(variables)).render(template)

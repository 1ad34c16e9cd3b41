"""API Gateway's mapping templates (VTL), rendered by airspeed-ext with the gateway's variables.

The local front door does not re-implement the API's request and response mappings in Python: it renders
the *synthesized template's own* mapping templates, so a change to ``stacks/ingestion_api.py`` changes
the local run too. The Velocity engine is airspeed-ext (pinned in requirements-dev.txt), the one AWS
emulators use; this module adds only what API Gateway puts around it:

  * ``$input``: ``body``, ``json(path)``, ``path(path)``, ``params()`` (always the ``path`` /
    ``querystring`` / ``header`` maps) and ``params(name)`` (those maps in that order, headers
    case-insensitively; ``""`` when absent);
  * ``$util``: ``escapeJavaScript``, ``urlEncode``, ``urlDecode``, ``base64Encode``, ``base64Decode``,
    ``parseJson``;
  * ``$context`` is the caller's dict: ``#set($context.responseOverride.status = 502)`` and
    ``#set($context.responseOverride.header.Retry-After = "1")`` write into it (the caller gives
    ``responseOverride`` a ``header`` map, as API Gateway does);
  * the Java methods airspeed-ext lacks: String ``isEmpty``, ``trim``, ``toString``, ``replaceAll`` with
    Java's replacement syntax (``$1``, ``\\$``); Map ``containsKey``, ``isEmpty``.

A template the gateway could not render raises ``VtlError``: a syntax error, a JSONPath outside the subset
(``$``, ``$.a.b``, ``$.a[0]``, ``$['a']``), a body that is not JSON, a regex Python cannot compile, a
member ``$input`` or ``$util`` does not have (the e2e contract tests render every template of the API, so
such a change fails a test instead of silently drifting).

airspeed-ext's own choices (tests/e2e/test_vtl.py pins them): an unresolved reference renders empty, as
in API Gateway; ``#if($x)`` is true when ``$x`` is null (Velocity: false), and ``#if``, ``!``, ``&&``
and ``||`` take ``""``, ``0`` and empty collections as false; ``>`` / ``<`` with a null operand are an
error; a map or list prints as Python writes it; the newline after ``#set(...)``, ``#if(...)`` and
``#end`` is dropped, the one after ``#else`` kept (the front door strips a response body).
"""

from __future__ import annotations

import base64
import functools
import json
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import airspeed
from airspeed import operators


class VtlError(ValueError):
    """The template cannot be rendered (unsupported or malformed)."""


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
            if not isinstance(value, dict):
                return None
            value = value.get(name or single or double)
    return value


def escape_javascript(value: Any) -> str:
    """Apache Commons Lang 2 ``StringEscapeUtils.escapeJavaScript``, what ``$util.escapeJavaScript`` is."""
    out = []
    for char in to_text(value):
        code = ord(char)
        if char in "'\"\\/":
            out.append("\\" + char)
        elif char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif code > 0xFFFF:  # UTF-16 surrogate pair, as Java's char sees it
            encoded = char.encode("utf-16-be")
            out.extend(f"\\u{int.from_bytes(encoded[i : i + 2], 'big'):04X}" for i in (0, 2))
        elif code < 32 or code > 0x7E:
            out.append(f"\\u{code:04X}")
        else:
            out.append(char)
    return "".join(out)


_SHORT_ESCAPES = {"\b": "\\b", "\n": "\\n", "\t": "\\t", "\f": "\\f", "\r": "\\r"}


def url_encode(value: Any) -> str:
    """``java.net.URLEncoder.encode(value, "UTF-8")``: spaces become '+', only ``*-._`` stay literal."""
    return urllib.parse.quote_plus(to_text(value), safe="*").replace("~", "%7E")


def to_text(value: Any) -> str:
    """A helper's argument as text (Velocity's ``toString``; maps and lists as compact JSON)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


class _Strict:
    """A member API Gateway's object does not have is an error, not an empty string."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise VtlError(f"${type(self).__name__.lower()} has no member {name!r}")


@dataclass
class Input(_Strict):
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
        kinds = ("path", "querystring", "header")
        if name is None:  # every kind is a map, empty when the request has none
            return {kind: dict(self.params_by_kind.get(kind, {})) for kind in kinds}
        for kind in kinds:
            values = self.params_by_kind.get(kind, {})
            if kind == "header":  # header names are case-insensitive
                values = {key.lower(): value for key, value in values.items()}
            key = name.lower() if kind == "header" else name
            if key in values:
                return values[key]
        return ""


class Util(_Strict):
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


def _java_replace_all(text: str, pattern: str, replacement: str) -> str:
    """``String.replaceAll``: in the replacement ``$n`` is group n and a backslash quotes the next char."""

    def substitute(match: re.Match[str]) -> str:
        return re.sub(
            r"\\(.)|\$(\d)",
            lambda part: part.group(1) if part.group(2) is None else match.group(int(part.group(2))) or "",
            replacement,
        )

    return re.sub(pattern, substitute, text)


# airspeed-ext's hook for the Java methods of Python values (by exact type); its replaceAll takes Python's
# replacement syntax (``\\1``), Java's is ``$1``.
operators.__additional_methods__[str].update(
    isEmpty=lambda s: not s, trim=lambda s: s.strip(), toString=lambda s: s, replaceAll=_java_replace_all
)
operators.__additional_methods__[dict].update(containsKey=lambda m, key: key in m, isEmpty=lambda m: not m)


@functools.lru_cache(maxsize=64)
def _compiled(template: str) -> Any:
    compiled = airspeed.Template(template)
    compiled.ensure_compiled()
    return compiled


def render(template: str, **variables: Any) -> str:
    """Render ``template`` with ``input``, ``context`` and any other variables (``$util`` is given)."""
    try:
        rendered: str = _compiled(template).merge({"util": Util(), **variables})
        return rendered
    except airspeed.TemplateError as error:
        raise VtlError(str(error)) from error

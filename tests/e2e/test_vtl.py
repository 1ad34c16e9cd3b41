"""The ingestion API's own mapping templates render as API Gateway renders them (airspeed-ext + adapter)."""

from __future__ import annotations

import json
import urllib.parse

import pytest

from lambdas.contracts import api
from localcloud.vtl import Input, VtlError, escape_javascript, json_path, render, url_encode
from stacks import ingestion_api

CALLER = "arn:aws:sts::123456789012:assumed-role/order-producer/session-1"


def context(**extra: object) -> dict[str, object]:
    # API Gateway's $context.responseOverride has a header map a response template can write into.
    return {
        "requestId": "req-1",
        "responseOverride": {"header": {}},
        "identity": {"userArn": CALLER},
        **extra,
    }


def test_send_order_template_becomes_a_sendmessage_query() -> None:
    body = json.dumps({"orderId": "o 1", "note": "a&b=c ü"})
    headers = {"header": {"idempotency-key": "key/1+2&3"}}  # header lookup is case-insensitive
    rendered = render(ingestion_api.SEND_ORDER_TEMPLATE, input=Input(body, headers), context=context())
    params = {k: v[0] for k, v in urllib.parse.parse_qs(rendered, keep_blank_values=True).items()}
    assert params["Action"] == "SendMessage"
    # The validated document, written compactly ($input.json), not the raw body.
    assert params["MessageBody"] == json.dumps(json.loads(body), separators=(",", ":"))
    assert params["MessageAttribute.1.Name"] == api.REQUEST_ID_ATTRIBUTE
    assert params["MessageAttribute.1.Value.StringValue"] == "req-1"
    assert params["MessageAttribute.2.Name"] == api.IDEMPOTENCY_KEY_ATTRIBUTE
    assert params["MessageAttribute.2.Value.StringValue"] == "key/1+2&3"
    assert params["MessageAttribute.3.Name"] == api.PRODUCER_ARN_ATTRIBUTE
    assert params["MessageAttribute.3.Value.StringValue"] == CALLER


@pytest.mark.parametrize(
    "params",
    [
        {},  # no key (the request validator refuses this first)
        {"header": {"Idempotency-Key": "two words"}},
        {"header": {"Idempotency-Key": "ok"}, "querystring": {"Idempotency-Key": "smuggled"}},
    ],
)
def test_a_refused_key_renders_a_send_sqs_rejects(params: dict[str, dict[str, str]]) -> None:
    """No MessageBody: SQS answers MissingParameter and stores nothing; the 4xx template says why."""
    rendered = render(ingestion_api.SEND_ORDER_TEMPLATE, input=Input("{}", params), context=context())
    assert urllib.parse.parse_qs(rendered) == {"Action": ["SendMessage"]}
    gateway = context()
    refused = render(ingestion_api.ORDER_REFUSED_TEMPLATE, input=Input("{}", params), context=gateway)
    assert json.loads(refused)["type"] == "INVALID_IDEMPOTENCY_KEY"
    assert gateway["responseOverride"] == {"status": 400, "header": {}}


def test_put_event_template_escapes_detail_into_a_json_string() -> None:
    template = ingestion_api.put_event_template("bus-1", "svc.ingestion")
    detail = {"quote": 'it\'s "x"', "slash": "a/b", "nested": {"n": [1, 2]}, "unicode": "ü"}
    rendered = render(
        template, input=Input(json.dumps({"detailType": "A.B", "detail": detail})), context=context()
    )
    entry = json.loads(rendered)["Entries"][0]
    assert (entry["EventBusName"], entry["Source"], entry["DetailType"]) == ("bus-1", "svc.ingestion", "A.B")
    assert entry["Resources"] == [CALLER]  # who sent it
    assert json.loads(entry["Detail"]) == detail


RETRY_AFTER_SECONDS = 7  # not the default (1): the header must say what the API was configured with


def render_put_events_answer(response: dict[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """The events route's answer to a PutEvents response: (body, $context.responseOverride)."""
    ctx = context()
    template = ingestion_api.event_accepted_template(RETRY_AFTER_SECONDS)
    rendered = render(template, input=Input(json.dumps(response)), context=ctx)
    return json.loads(rendered), ctx["responseOverride"]  # type: ignore[return-value]


def refused(error_code: str) -> dict[str, object]:
    """PutEvents' HTTP 200 for an entry it did not store."""
    return {"FailedEntryCount": 1, "Entries": [{"ErrorCode": error_code, "ErrorMessage": "refused"}]}


def test_a_stored_event_is_accepted() -> None:
    body, override = render_put_events_answer({"FailedEntryCount": 0, "Entries": [{"EventId": "e-1"}]})
    assert body == {"eventId": "e-1", "status": "accepted", "requestId": "req-1"}
    assert override == {"header": {}}  # the integration response's own status: 202


# EventBridge's retryable per-entry codes (PutEventsResultEntry.ErrorCode).
@pytest.mark.parametrize("error_code", ["ThrottlingException", "InternalFailure"])
def test_an_entry_the_bus_could_not_take_now_is_a_503_with_retry_after(error_code: str) -> None:
    body, override = render_put_events_answer(refused(error_code))
    assert override == {"status": 503, "header": {api.RETRY_AFTER_HEADER: str(RETRY_AFTER_SECONDS)}}
    assert body == {
        "message": ingestion_api.EVENT_RETRY_LATER_MESSAGE,
        "errorCode": error_code,
        "requestId": "req-1",
    }
    assert "retry the same event" in str(body["message"])


# The non-retryable ones: our template, permissions or keys are wrong, and a retry cannot fix that.
@pytest.mark.parametrize(
    "error_code",
    ["MalformedDetail", "InvalidArgument", "AccessDeniedException", "NotAuthorizedForSourceException"],
)
def test_an_entry_refused_for_any_other_reason_is_a_502_without_retry_after(error_code: str) -> None:
    body, override = render_put_events_answer(refused(error_code))
    assert override == {"status": 502, "header": {}}
    assert body == {
        "message": ingestion_api.EVENT_NOT_STORED_MESSAGE,
        "errorCode": error_code,
        "requestId": "req-1",
    }


def test_order_accepted_template_reads_the_sqs_json_response() -> None:
    response = {"SendMessageResponse": {"SendMessageResult": {"MessageId": "m-1"}}}
    rendered = render(
        ingestion_api.ORDER_ACCEPTED_TEMPLATE, input=Input(json.dumps(response)), context=context()
    )
    assert json.loads(rendered) == {"messageId": "m-1", "status": "accepted", "requestId": "req-1"}


def test_helpers_match_java_semantics() -> None:
    assert url_encode("a b~*") == "a+b%7E*"
    assert escape_javascript("it's \"/\n") == "it\\'s \\\"\\/\\n"
    assert json_path({"a": [{"b": 1}]}, "$.a[0].b") == 1
    assert json_path({"a": 1}, "$.missing") is None


def test_unsupported_vtl_is_an_error_not_a_silent_difference() -> None:
    broken = [
        ("$input.path('$..deep')", {}),  # JSONPath outside the subset
        ("$input.json('$.a')", {"input": Input("not json")}),
        ("$input.pathOf('$')", {}),  # no such member of $input
        ("$util.escapeJson('x')", {}),  # nor of $util
        ("#if($input.body)never closed", {}),
        ("#include('other.vm')", {}),  # API Gateway has no other templates to include
        ("$input.body.matches('\\p{Alpha}+')", {}),  # a Java regex class Python's re lacks
    ]
    for template, variables in broken:
        with pytest.raises(VtlError):
            render(template, **({"input": Input("{}")} | variables))


def test_directives_and_java_methods_render_as_velocity_does() -> None:
    params = {"header": {"H": "v"}, "querystring": {"q": "1"}}
    rendered = render(
        "#set($p = $input.params())"
        "#foreach($kind in ['path', 'querystring', 'header'])$kind=$p.get($kind).isEmpty()"
        "#if($foreach.hasNext),#end#end"
        " $p.querystring.containsKey('q')/$p.querystring.containsKey('H')/$p.header.get('H')"
        " #set($s = $input.path('$.s'))$s.length() $s.isEmpty() '$s.trim()' $s.contains('b c')"
        " $s.matches(' ?[a-d ]+ ') $s.matches('[a-d]+') $s.replaceAll('(b) (c)', '$2\\$$1')"
        " $s.replace(' ', '_').toString()"
        " #if($s.isEmpty())empty#elseif($s.length() > 3)long#{else}short#end",
        input=Input(json.dumps({"s": " ab cd "}), params),
    )
    assert rendered == (
        "path=true,querystring=false,header=false true/false/v"
        " 7 false 'ab cd' true true false  ac$bd  _ab_cd_ long"
    )


def test_the_engines_own_choices_are_pinned() -> None:
    """airspeed-ext decides these (see localcloud/vtl.py); an upgrade that changes one fails here."""
    body = Input(json.dumps({"n": None, "e": "", "z": 0, "m": {"a": 1}}))
    assert render("[$nothing][$input.path('$.missing')][$!quiet]", input=body) == "[][][]"
    assert render("#if($nothing)T#{else}F#end #if($input.path('$.e'))T#{else}F#end", input=body) == "T F"
    assert render("#if(!$input.path('$.z') && !$input.path('$.e'))T#{else}F#end", input=body) == "T"
    assert render("$input.path('$.m') $input.json('$.m')", input=body) == "{'a': 1} {\"a\":1}"
    assert render("#set($x = 1)\n#if($x > 0)\nA\n#else\nB\n#end\nC", input=body) == "A\nC"
    assert render("#if($x > 0)\nA\n#else\nB\n#end", x=0) == "\nB\n"
    with pytest.raises(VtlError):
        render("#if($input.path('$.n') > 0)T#end", input=body)

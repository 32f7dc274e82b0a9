"""Tests for streamserver.signature: Plivo's published vectors, round trips, upgrade checks."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from websockets.datastructures import Headers

from streamserver.signature import (
    HEADER_MA_V3,
    HEADER_NONCE_V3,
    HEADER_TWILIO,
    HEADER_V3,
    NonceCache,
    Params,
    TwilioUpgradeVerifier,
    UpgradeVerifier,
    VerifyResult,
    compute_twilio,
    compute_v2,
    compute_v3,
    sign_headers,
    twilio_url_candidates,
    twilio_url_variants,
    verify_twilio,
    verify_v2,
    verify_v3,
    websocket_url_candidates,
)

# Test vectors published in plivo-go's tests (see reference/plivo-audio-streams.md).
TOKEN = "Y2Q2ZDgxZmY5YWRiOTI5YmQ1Njg0MTAxZWIyOTc4"
NONCE = "31627761595286130198"
UUID = "3e82ae9d-2c78-4d85-b1a4-6eae7dbafb36"
PARAMS = {
    "Direction": "outbound",
    "From": "19792014278",
    "ALegUUID": UUID,
    "CallStatus": "in-progress",
    "BillRate": "0.002",
    "ParentAuthID": "MANWVLYTK4ZWU1YTY4QA",
    "To": "sip:PlivoSignature382029104058171078704104@phone-qa.voice.plivodev.com",
    "ALegRequestUUID": UUID,
    "CallUUID": UUID,
    "RequestUUID": UUID,
    "SIP-H-To": "<sip:PlivoSignature382029104058171078704104@52.9.11.55;transport=udp>;tag=1",
    "SessionStart": "2020-04-08 11:34:33.238707",
    "Event": "StartApp",
}
URL_QUERY = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml/?a=b&c=d"
URL_PLAIN = "https://plivobin.non-prod.plivops.com/api/v1/validate_signature03.xml"


def oracle(token: str, message: str) -> str:
    """Independent HMAC of an exact signed string, to pin down the canonical form."""
    digest = hmac.new(token.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


# --- Published vectors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "expected"),
    [
        ("POST", URL_QUERY, "k7Pusd4OxCIjR5IfA9iedDNu/h/gbdYqdzG/MiYtd1c="),
        ("GET", URL_QUERY, "UBq8jAtd32wR8EK9VgxbBn4n5rpI/l1H9iN4WfSEHFQ="),
        ("POST", URL_PLAIN, "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0="),
        ("GET", URL_PLAIN, "i/MQsaQSAd6fiKhOh2qeeeLHZ9faldADSb3/7+Akfbc="),
    ],
)
def test_v3_reference_vectors(method: str, url: str, expected: str) -> None:
    assert compute_v3(url, NONCE, TOKEN, PARAMS, method) == expected
    assert verify_v3(url, NONCE, expected, [TOKEN], PARAMS, method)
    assert compute_v3(url, NONCE, TOKEN, PARAMS, method.lower()) == expected


def test_v2_reference_vector() -> None:
    expected = "ehV3IKhLysWBxC1sy8INm0qGoQYdYsHwuoKjsX7FsXc="
    assert compute_v2("https://answer.url", "12345", "my_auth_token") == expected
    assert verify_v2("https://answer.url", "12345", expected, ["my_auth_token"])
    # V2 ignores the query.
    assert verify_v2("https://answer.url?x=1", "12345", expected, ["my_auth_token"])
    assert not verify_v2("https://answer.url", "12346", expected, ["my_auth_token"])
    assert not verify_v2("https://answer.url", "12345", expected, ["other"])


# --- Canonical strings ------------------------------------------------------------------------


def test_get_without_query_or_params_signs_bare_url() -> None:
    assert compute_v3("https://h.example/cb", "1", "t", method="GET") == oracle(
        "t", "https://h.example/cb.1"
    )


def test_get_merges_params_into_query_sorted_with_repeated_keys() -> None:
    got = compute_v3("https://h.example/cb?z=1&a=9", "7", "t", {"m": ["b", "a"], "a": "3"}, "GET")
    assert got == oracle("t", "https://h.example/cb?a=3&a=9&m=a&m=b&z=1.7")


def test_get_repeated_keys_in_url_are_sorted_and_decoded() -> None:
    got = compute_v3("https://h.example/cb?k=b&k=a&s=x%20y&e=", "7", "t", method="GET")
    assert got == oracle("t", "https://h.example/cb?e=&k=a&k=b&s=x y.7")


def test_post_without_query_concatenates_sorted_params() -> None:
    got = compute_v3("https://h.example:8443/cb", "7", "t", {"b": "2", "a": ["y", "x"]})
    assert got == oracle("t", "https://h.example:8443/cb?axayb2.7")


def test_post_with_query_joins_sorted_query_and_params_with_dot() -> None:
    got = compute_v3("https://h.example/cb?q=2&p=1#frag", "7", "t", {"b": "2", "a": "1"})
    assert got == oracle("t", "https://h.example/cb?p=1&q=2.a1b2.7")


def test_post_with_empty_body_signs_like_get() -> None:
    for url in ("https://h.example/cb", "https://h.example/cb?b=2&a=1"):
        assert compute_v3(url, "7", "t", {}, "POST") == compute_v3(url, "7", "t", None, "GET")


def test_unsupported_method_is_rejected() -> None:
    with pytest.raises(ValueError, match="PUT"):
        compute_v3("https://h.example/cb", "7", "t", method="PUT")


# --- verify_v3 --------------------------------------------------------------------------------


def test_verify_accepts_any_of_several_signatures_in_header() -> None:
    good = compute_v3(URL_PLAIN, NONCE, TOKEN, PARAMS)
    assert verify_v3(URL_PLAIN, NONCE, f"bogus=,{good}", [TOKEN], PARAMS)
    assert verify_v3(URL_PLAIN, NONCE, f"{good}, bogus=", [TOKEN], PARAMS)


def test_verify_rejects_wrong_token_nonce_params_and_url() -> None:
    good = compute_v3(URL_PLAIN, NONCE, TOKEN, PARAMS)
    assert not verify_v3(URL_PLAIN, NONCE, good, ["wrong-token"], PARAMS)
    assert not verify_v3(URL_PLAIN, NONCE + "0", good, [TOKEN], PARAMS)
    assert not verify_v3(URL_PLAIN, NONCE, good, [TOKEN], {**PARAMS, "From": "1"})
    assert not verify_v3(URL_PLAIN + "x", NONCE, good, [TOKEN], PARAMS)
    assert not verify_v3(URL_PLAIN, NONCE, "", [TOKEN], PARAMS)
    assert not verify_v3(URL_PLAIN, "", good, [TOKEN], PARAMS)
    assert not verify_v3(URL_PLAIN, NONCE, good, [], PARAMS)


def test_verify_accepts_any_token_for_rotation_and_a_lone_token() -> None:
    good = compute_v3(URL_PLAIN, NONCE, TOKEN, PARAMS)
    assert verify_v3(URL_PLAIN, NONCE, good, ["old-token", TOKEN], PARAMS)
    assert verify_v3(URL_PLAIN, NONCE, good, TOKEN, PARAMS)


def test_verify_survives_non_ascii_header() -> None:
    assert not verify_v3(URL_PLAIN, NONCE, "sig\u00e9\udcff", [TOKEN], PARAMS)


# --- sign_headers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url", "params"),
    [
        ("GET", "https://app.example/answer", None),
        ("GET", "https://app.example/answer?x=1", {"CallUUID": "u", "To": ["2", "1"]}),
        ("POST", "https://app.example/answer", {"CallUUID": "u", "From": "+1555"}),
        ("POST", "https://app.example/answer?x=1", {"CallUUID": "u", "Digits": ""}),
    ],
)
def test_sign_headers_round_trip(method: str, url: str, params: Params | None) -> None:
    headers = sign_headers(url, "sub-token", params, method, main_account_token="main-token")
    nonce = headers[HEADER_NONCE_V3]
    assert len(nonce) == 20 and nonce.isdigit()
    assert verify_v3(url, nonce, headers[HEADER_V3], ["sub-token"], params, method)
    assert verify_v3(url, nonce, headers[HEADER_MA_V3], ["main-token"], params, method)
    assert not verify_v3(url, nonce, headers[HEADER_V3], ["main-token"], params, method)


def test_sign_headers_fixed_nonce_and_main_token_default() -> None:
    headers = sign_headers(URL_PLAIN, TOKEN, PARAMS, nonce=NONCE)
    assert headers == {
        HEADER_V3: "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0=",
        HEADER_NONCE_V3: NONCE,
        HEADER_MA_V3: "iAjE5QqI37mbkYe4w3jTMudqEzbDufdqi7sYwTu64e0=",
    }


def test_sign_headers_draws_fresh_nonces() -> None:
    nonces = {sign_headers(URL_PLAIN, TOKEN)[HEADER_NONCE_V3] for _ in range(20)}
    assert len(nonces) == 20


# --- websocket_url_candidates -----------------------------------------------------------------


def test_candidates_all_forms_in_order() -> None:
    assert websocket_url_candidates("wss://media.example.com", "/stream?callId=42") == [
        "wss://media.example.com/stream?callId=42",
        "https://media.example.com/stream?callId=42",
        "http://media.example.com/stream?callId=42",
        "ws://media.example.com/stream?callId=42",
        "http://media.example.com/stream/websocket?callId=42",
    ]


def test_candidates_keep_port_and_prefix_without_query() -> None:
    assert websocket_url_candidates("https://media.example.com:8443/prefix/", "/s") == [
        "wss://media.example.com:8443/prefix/s",
        "https://media.example.com:8443/prefix/s",
        "http://media.example.com:8443/prefix/s",
        "ws://media.example.com:8443/prefix/s",
        "http://media.example.com:8443/prefix/s/websocket",
    ]


def test_candidates_root_path() -> None:
    urls = websocket_url_candidates("ws://127.0.0.1:9000", "/")
    assert urls[0] == "wss://127.0.0.1:9000/"
    assert urls[-1] == "http://127.0.0.1:9000/websocket"
    assert len(urls) == len(set(urls)) == 5


@pytest.mark.parametrize("bad", ["media.example.com", "ftp://h/x", "wss://", "wss://h/?a=1"])
def test_candidates_reject_bad_public_url(bad: str) -> None:
    with pytest.raises(ValueError, match="public URL"):
        websocket_url_candidates(bad, "/s")


# --- UpgradeVerifier --------------------------------------------------------------------------

PUBLIC = "wss://media.example.com:8443/prefix"
TARGET = "/stream?callId=42&x=a%20b"


@pytest.mark.parametrize("signed_url", websocket_url_candidates(PUBLIC, TARGET))
def test_upgrade_accepts_each_candidate_form(signed_url: str) -> None:
    headers = sign_headers(signed_url, "tok", method="GET")
    result = UpgradeVerifier(["tok"], PUBLIC, NonceCache()).verify(TARGET, headers)
    assert result == VerifyResult(True, "valid", signed_url, HEADER_V3)


def test_upgrade_accepts_ma_v3_alone_and_rotated_tokens() -> None:
    signed_url = "https://media.example.com:8443/prefix/stream?callId=42&x=a%20b"
    headers = sign_headers(signed_url, "sub", method="GET", main_account_token="main")
    del headers[HEADER_V3]
    result = UpgradeVerifier(["old", "main"], PUBLIC).verify(TARGET, headers)
    assert (result.ok, result.header, result.matched_url) == (True, HEADER_MA_V3, signed_url)


def test_upgrade_reports_ma_v3_when_only_main_token_known() -> None:
    signed_url = "wss://media.example.com:8443/prefix/stream?callId=42&x=a%20b"
    headers = sign_headers(signed_url, "sub", method="GET", main_account_token="main")
    result = UpgradeVerifier(["main"], PUBLIC).verify(TARGET, headers)
    assert (result.ok, result.header) == (True, HEADER_MA_V3)


def test_upgrade_headers_are_case_insensitive() -> None:
    signed = sign_headers("wss://media.example.com:8443/prefix/stream", "tok", method="GET")
    lower = {k.lower(): v for k, v in signed.items()}
    upper = {k.upper(): v for k, v in signed.items()}
    ws_headers = Headers([*signed.items(), ("Host", "media.example.com")])
    for headers in (lower, upper, ws_headers):
        assert UpgradeVerifier(["tok"], PUBLIC).verify("/stream", headers).ok


def test_upgrade_joins_repeated_signature_headers() -> None:
    signed = sign_headers("wss://media.example.com:8443/prefix/stream", "tok", method="GET")
    headers = Headers()
    headers[HEADER_V3] = "bogus="
    headers[HEADER_V3] = signed[HEADER_V3]
    headers[HEADER_NONCE_V3] = signed[HEADER_NONCE_V3]
    assert UpgradeVerifier(["tok"], PUBLIC).verify("/stream", headers).ok


def test_upgrade_rejects_missing_signature_and_nonce() -> None:
    verifier = UpgradeVerifier(["tok"], PUBLIC)
    signed = sign_headers("wss://media.example.com:8443/prefix/stream", "tok", method="GET")
    result = verifier.verify("/stream", {HEADER_NONCE_V3: signed[HEADER_NONCE_V3]})
    assert result == VerifyResult(False, f"missing {HEADER_V3} header")
    assert verifier.verify("/stream", {HEADER_V3: " , "}).reason == f"missing {HEADER_V3} header"
    result = verifier.verify("/stream", {HEADER_V3: signed[HEADER_V3]})
    assert result == VerifyResult(False, "missing nonce")


def test_upgrade_rejects_invalid_signatures() -> None:
    verifier = UpgradeVerifier(["tok"], PUBLIC)
    good = sign_headers("wss://media.example.com:8443/prefix/stream", "tok", method="GET")
    cases = [
        sign_headers("wss://media.example.com:8443/prefix/stream", "other", method="GET"),
        sign_headers("wss://evil.example.com:8443/prefix/stream", "tok", method="GET"),
        sign_headers("wss://media.example.com:8443/prefix/stream", "tok", {"a": "1"}, "POST"),
        {**good, HEADER_NONCE_V3: "1" + good[HEADER_NONCE_V3]},
    ]
    for headers in cases:
        assert verifier.verify("/stream", headers) == VerifyResult(False, "signature mismatch")
    assert not verifier.verify("/stream?extra=1", good).ok
    assert not verifier.verify("/other", good).ok


def test_upgrade_rejects_replayed_nonce_but_not_unsigned_attempts() -> None:
    cache = NonceCache(ttl_s=60.0)
    verifier = UpgradeVerifier(["tok"], PUBLIC, cache)
    signed_url = "wss://media.example.com:8443/prefix/stream"
    headers = sign_headers(signed_url, "tok", method="GET")
    # A forged request with the same nonce must not burn it for the genuine one.
    forged = {**headers, HEADER_V3: "forged=", HEADER_MA_V3: "forged="}
    assert verifier.verify("/stream", forged).reason == "signature mismatch"
    assert verifier.verify("/stream", headers).ok
    replay = verifier.verify("/stream", headers)
    assert replay == VerifyResult(False, "replayed nonce", signed_url, HEADER_V3)


def test_upgrade_without_cache_allows_repeats() -> None:
    verifier = UpgradeVerifier(["tok"], PUBLIC)
    headers = sign_headers("wss://media.example.com:8443/prefix/stream", "tok", method="GET")
    assert verifier.verify("/stream", headers).ok
    assert verifier.verify("/stream", headers).ok


def test_upgrade_verifier_needs_tokens_and_valid_url() -> None:
    with pytest.raises(ValueError, match="auth token"):
        UpgradeVerifier([], PUBLIC)
    with pytest.raises(ValueError, match="auth token"):
        UpgradeVerifier([""], PUBLIC)
    with pytest.raises(ValueError, match="public URL"):
        UpgradeVerifier(["tok"], "media.example.com")


# --- NonceCache -------------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_nonce_cache_expires_after_ttl() -> None:
    clock = FakeClock()
    cache = NonceCache(ttl_s=10.0, clock=clock)
    assert not cache.seen("a")
    clock.now += 5.0
    assert cache.seen("a")
    assert not cache.seen("b")
    clock.now += 5.0  # "a" (recorded at t=0) expires now; "b" (t=5) lives on.
    assert not cache.seen("a")
    assert cache.seen("b")
    clock.now += 100.0
    assert not cache.seen("c")
    assert len(cache) == 1  # expired entries are purged, not just ignored


def test_nonce_cache_is_bounded_and_evicts_oldest() -> None:
    clock = FakeClock()
    cache = NonceCache(ttl_s=60.0, max_items=3, clock=clock)
    for nonce in "abcd":
        assert not cache.seen(nonce)
    assert len(cache) == 3
    assert not cache.seen("a")  # evicted, so no longer recognised
    assert cache.seen("d")


def test_nonce_cache_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        NonceCache(ttl_s=0)
    with pytest.raises(ValueError, match="max_items"):
        NonceCache(max_items=0)


# --- Twilio ----------------------------------------------------------------------------------


TW_TOKEN = "12345"
TW_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
# The worked example of https://www.twilio.com/docs/usage/security#validating-requests
TW_DOC_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Caller": "+12349013030",
    "Digits": "1234",
    "From": "+12349013030",
    "To": "+18005551212",
}
# The vectors of twilio-python's tests/unit/test_request_validator.py (same URL and token).
TW_SDK_PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}


def test_twilio_documented_example() -> None:
    assert compute_twilio(TW_URL, TW_TOKEN, TW_DOC_PARAMS) == "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert verify_twilio(TW_URL, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=", [TW_TOKEN], TW_DOC_PARAMS)


def test_twilio_sdk_vectors() -> None:
    assert compute_twilio(TW_URL, TW_TOKEN, TW_SDK_PARAMS) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    # A repeated parameter: values sorted too (Digits 1234 before 5678).
    dup: Params = {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234"]}
    assert compute_twilio(TW_URL, TW_TOKEN, dup) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        # Signed without the port, called with one (a proxy or a non-default listener).
        (TW_URL.replace(".com", ".com:1234"), "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
        # Signed with the default port, the request URL without it.
        (TW_URL, "kvajT1Ptam85bY51eRf/AJRuM3w="),
        (TW_URL.replace("https", "http"), "0ZXoZLH/DfblKGATFgpif+LLRf4="),
        # Signed with a non-default port on http: kept.
        (
            TW_URL.replace(".com", ".com:1234").replace("https", "http"),
            "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
        ),
    ],
)
def test_twilio_port_rules(url: str, signature: str) -> None:
    assert verify_twilio(url, signature, TW_TOKEN, TW_SDK_PARAMS)


def test_twilio_json_body_is_checked_through_body_sha256() -> None:
    body = '{"property": "value", "boolean": true}'
    digest = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
    url = f"{TW_URL}&bodySHA256={digest}"
    assert hashlib.sha256(body.encode()).hexdigest() == digest
    assert verify_twilio(url, "a9nBmqA0ju/hNViExpshrM61xv4=", [TW_TOKEN], body=body)
    assert verify_twilio(url, "a9nBmqA0ju/hNViExpshrM61xv4=", [TW_TOKEN], body=body.encode())
    assert not verify_twilio(url, "a9nBmqA0ju/hNViExpshrM61xv4=", [TW_TOKEN], body=body + " ")
    assert not verify_twilio(url, "a9nBmqA0ju/hNViExpshrM61xv4=", [TW_TOKEN])


def test_twilio_rejects_tampering_and_wrong_tokens() -> None:
    good = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
    assert not verify_twilio(TW_URL, good, ["other"], TW_DOC_PARAMS)
    assert verify_twilio(TW_URL, good, ["old", TW_TOKEN], TW_DOC_PARAMS)  # rotation
    assert not verify_twilio(TW_URL, good, [TW_TOKEN], {**TW_DOC_PARAMS, "Digits": "9"})
    assert not verify_twilio(TW_URL + "&x=1", good, [TW_TOKEN], TW_DOC_PARAMS)
    assert not verify_twilio(TW_URL.replace("https", "http"), good, [TW_TOKEN], TW_DOC_PARAMS)
    assert not verify_twilio(TW_URL, "", [TW_TOKEN], TW_DOC_PARAMS)
    assert not verify_twilio(TW_URL, good[:-1], [TW_TOKEN], TW_DOC_PARAMS)


def test_twilio_url_variants() -> None:
    assert twilio_url_variants("wss://h.example/s?a=1") == [
        "wss://h.example/s?a=1",
        "wss://h.example:443/s?a=1",
    ]
    assert twilio_url_variants("ws://h.example:80/s") == ["ws://h.example:80/s", "ws://h.example/s"]
    assert twilio_url_variants("https://[::1]:8443/s") == [
        "https://[::1]:8443/s",
        "https://[::1]/s",
    ]
    assert twilio_url_variants("https://h:bad/s") == ["https://h:bad/s"]


def _tw_upgrade(url: str, token: str = TW_TOKEN) -> dict[str, str]:
    return {"x-twilio-signature": compute_twilio(url, token)}


def test_twilio_upgrade_signed_over_wss_behind_an_https_public_url() -> None:
    # <Connect><Stream url="wss://media.example.com/twilio?route=a"/>: Twilio signs the
    # wss:// URL, while the server (behind TLS termination) is configured with https://.
    signed = "wss://media.example.com/twilio?route=a"
    verifier = TwilioUpgradeVerifier([TW_TOKEN], "https://media.example.com")
    result = verifier.verify("/twilio?route=a", _tw_upgrade(signed))
    assert result == VerifyResult(True, "valid", signed, HEADER_TWILIO)
    # Signed with :443 in the TwiML URL.
    assert verifier.verify("/twilio?route=a", _tw_upgrade(signed.replace(".com", ".com:443"))).ok
    # A validator that rewrites the scheme to https (some SDK middlewares) still matches.
    https = "https://media.example.com/twilio?route=a"
    assert verifier.verify("/twilio?route=a", _tw_upgrade(https)).matched_url == https


def test_twilio_upgrade_rejections() -> None:
    verifier = TwilioUpgradeVerifier([TW_TOKEN], "wss://media.example.com/base/")
    signed = "wss://media.example.com/base/twilio"
    assert verifier.verify("/twilio", _tw_upgrade(signed)).ok
    assert verifier.verify("/twilio", {}) == VerifyResult(False, f"missing {HEADER_TWILIO} header")
    assert verifier.verify("/twilio", _tw_upgrade(signed, "other")).reason == "signature mismatch"
    assert not verifier.verify("/twilio?x=1", _tw_upgrade(signed)).ok
    assert not verifier.verify("/other", _tw_upgrade(signed)).ok
    headers = Headers()
    headers["X-Twilio-Signature"] = compute_twilio(signed, TW_TOKEN)
    assert verifier.verify("/twilio", headers).ok
    with pytest.raises(ValueError, match="auth token"):
        TwilioUpgradeVerifier([], "wss://media.example.com")
    with pytest.raises(ValueError, match="public URL"):
        TwilioUpgradeVerifier([TW_TOKEN], "ftp://media.example.com")


def test_twilio_url_candidates() -> None:
    assert twilio_url_candidates("https://m.example:8443/p", "s?a=1") == [
        "wss://m.example:8443/p/s?a=1",
        "https://m.example:8443/p/s?a=1",
    ]
    assert twilio_url_candidates("http://127.0.0.1:8080", "/s") == [
        "ws://127.0.0.1:8080/s",
        "http://127.0.0.1:8080/s",
    ]

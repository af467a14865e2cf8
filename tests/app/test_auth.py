"""Tokens at the door of a real server: every route (enumerated from the app, so a new route without a guard fails
here) and the WebSocket answer 401 without a token or with a wrong one and 403 for a role that may not; a revoked
token stops working at its next request on the running server; a token over its rate gets 429 with Retry-After,
and so does an address that sent too many wrong tokens (a 401 flood), while other addresses go on;
serving beyond loopback without tokens refuses to start."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import httpx
import pytest
from starlette.routing import Mount, WebSocketRoute
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from envsound.app.auth import Guard
from envsound.app.run import running
from envsound.app.server import create_app
from envsound.deploy.snippet_files import SnippetFiles
from envsound.deploy.store import Store

# what anyone may fetch: the page, its files, liveness and the API's schema (FastAPIOffline's /docs and /redoc)
PUBLIC = {"/", "/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
ROLE_MAY = {"/v1/model": {"viewer", "admin"}, "/v1/predict": {"viewer", "admin"}, "/v1/events": {"viewer", "admin"},
            "/v1/sensors": {"viewer", "admin"}, "/v1/report": {"sensor", "admin"},
            "/v1/review/events": {"viewer", "admin"}, "/v1/review/verdicts": {"admin"},
            "/v1/review/precision": {"viewer", "admin"},
            "/v1/snippets/{sensor}/{key}": {"sensor", "admin"}, "/v1/events/{event_id}/audio": {"viewer", "admin"},
            "/v1/fleet/assignment": {"sensor", "admin"}, "/v1/fleet/versions/{version_id}/file": {"sensor", "admin"},
            "/v1/fleet/key": {"sensor", "admin"}, "/v1/fleet/versions": {"viewer", "admin"},
            "/v1/fleet/status": {"viewer", "admin"}, "/v1/fleet/rates": {"viewer", "admin"}}


@dataclass
class Deployed:
    url: str
    app: object
    store: Store
    tokens: dict  # role -> secret (the sensor token is sensor "lab"'s)


@pytest.fixture(scope="module")
def deployed(served, tmp_path_factory):
    store = Store.open(tmp_path_factory.mktemp("auth") / "events.sqlite")
    tokens = {role: store.create_token("lab" if role == "sensor" else role, role)[1]
              for role in ("sensor", "viewer", "admin")}
    # failures: these tests send wrong tokens on purpose, more than a minute's default from one address
    app = create_app(served.model, store=store, guard=Guard(store, required=True, rate=1000, streams=1,
                                                            failures=1000),
                     snippets=SnippetFiles(store, tmp_path_factory.mktemp("auth-fleet")))
    with running(app) as url:
        yield Deployed(url, app, store, tokens)
    store.close()


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def http_routes(app):
    for route in app.routes:
        if isinstance(route, (Mount, WebSocketRoute)):
            continue
        for method in sorted(route.methods - {"HEAD"}):
            yield method, route.path


def test_the_one_socket_is_the_guarded_listen(deployed):
    """Sockets are not HTTP routes: the socket tests below check /v1/listen; a new one must get tests of its own."""
    assert [route.path for route in deployed.app.routes if isinstance(route, WebSocketRoute)] == ["/v1/listen"]


def test_every_route_but_the_public_ones_needs_the_right_token(deployed):
    guarded = [(method, path) for method, path in http_routes(deployed.app) if path not in PUBLIC]
    assert {path for _, path in guarded} == set(ROLE_MAY), "a new route: guard it, and list who may call it here"
    with httpx.Client(base_url=deployed.url, timeout=30) as client:
        for method, path in guarded:
            for headers, why in (({}, "needs a token"), (bearer("es_wrong"), "unknown or revoked"),
                                 ({"Authorization": "Basic bGFiOmxhYg=="}, "needs a token")):
                answer = client.request(method, path, headers=headers)
                assert answer.status_code == 401 and why in answer.json()["error"], (method, path, answer.text)
                assert answer.headers["WWW-Authenticate"] == "Bearer"
            for role, secret in deployed.tokens.items():
                answer = client.request(method, path, headers=bearer(secret))
                if role in ROLE_MAY[path]:
                    assert answer.status_code not in (401, 403), (method, path, role, answer.text)
                else:
                    assert answer.status_code == 403 and f"a {role} token may not" in answer.json()["error"]
        for method, path in http_routes(deployed.app):
            if path in PUBLIC:
                assert client.request(method, path).status_code == 200, path
        assert client.get("/healthz").json()["auth"] is True


def test_a_sensor_token_speaks_only_for_its_sensor(deployed):
    report = {"sensor": "yard", "events": []}
    answer = httpx.post(f"{deployed.url}/v1/report", json=report, headers=bearer(deployed.tokens["sensor"]))
    assert answer.status_code == 403 and "belongs to sensor 'lab'" in answer.json()["error"]
    answer = httpx.post(f"{deployed.url}/v1/report", json=report, headers=bearer(deployed.tokens["admin"]))
    assert answer.status_code == 200


def socket_refusal(url: str, hello: dict | None) -> tuple[int, str]:
    ws = url.replace("http://", "ws://") + "/v1/listen?rate=8000&encoding=pcm16"
    with connect(ws) as socket:
        socket.send(json.dumps(hello) if hello is not None else b"\0\0" * 800)
        message = json.loads(socket.recv(timeout=30))
        try:
            socket.recv(timeout=30)
        except ConnectionClosed as closed:
            return closed.rcvd.code, message["error"]
    raise AssertionError("the server did not close")


def test_the_socket_takes_the_token_in_its_first_message(deployed):
    assert socket_refusal(deployed.url, None) == (1008, "401: this server needs a token: send 'Authorization: "
                                                        "Bearer <token>' (make one with envsound token create NAME "
                                                        "--role ROLE)")
    assert socket_refusal(deployed.url, {"token": "es_wrong"})[1] == "401: the token is unknown or revoked"
    code, reason = socket_refusal(deployed.url, {"token": deployed.tokens["sensor"], "sensor": "yard"})
    assert code == 1008 and "belongs to sensor 'lab'" in reason
    code, reason = socket_refusal(deployed.url, {"token": deployed.tokens["viewer"], "secret": 1})
    assert code == 1008 and "the first message is" in reason
    code, reason = socket_refusal(deployed.url, {"token": 12345})
    assert code == 1008 and "each a string" in reason
    code, reason = socket_refusal(deployed.url, {"token": deployed.tokens["viewer"], "sensor": "yard"})
    assert code == 1008 and reason.startswith("403: a viewer token may not stream as a sensor")


def test_a_silent_socket_gives_up_its_place_within_seconds(deployed):
    ws = deployed.url.replace("http://", "ws://") + "/v1/listen?rate=8000&encoding=pcm16"
    began = time.monotonic()
    with connect(ws) as socket:  # says nothing: no token
        message = json.loads(socket.recv(timeout=30))
    assert message["error"] == "no token for 5 s; the stream was closed" and time.monotonic() - began < 10


def test_a_revoked_token_stops_working_on_the_running_server(deployed):
    _, secret = deployed.store.create_token("temp", "viewer")
    headers = bearer(secret)
    assert httpx.get(f"{deployed.url}/v1/sensors", headers=headers).status_code == 200
    deployed.store.revoke("temp")
    answer = httpx.get(f"{deployed.url}/v1/sensors", headers=headers)
    assert answer.status_code == 401 and "revoked" in answer.json()["error"]


def test_over_its_rate_a_token_gets_429_with_retry_after(served, tmp_path):
    store = Store.open(tmp_path / "events.sqlite")
    _, secret = store.create_token("me", "viewer")
    app = create_app(served.model, store=store, guard=Guard(store, required=True, rate=2))
    with running(app) as url, httpx.Client(base_url=url, headers=bearer(secret)) as client:
        codes = [client.get("/v1/sensors") for _ in range(8)]
    assert [c.status_code for c in codes[:4]] == [200] * 4  # a burst of twice the rate
    refused = [c for c in codes if c.status_code == 429]
    assert refused and "over this token's 2 requests a second" in refused[0].json()["error"]
    assert int(refused[0].headers["Retry-After"]) >= 1


def test_a_401_flood_is_limited_per_client_address_and_other_addresses_go_on(served, tmp_path):
    """Issue 68: the rate was per token, so unknown tokens were never limited. A wrong token counts against the
    address it came from: past ``failures`` in the window every request from there gets 429 with Retry-After,
    before its token is looked up, over HTTP and on the socket; another address (here named by X-Forwarded-For,
    which uvicorn takes from a proxy on 127.0.0.1) is unaffected."""
    store = Store.open(tmp_path / "events.sqlite")
    _, secret = store.create_token("me", "viewer")
    app = create_app(served.model, store=store, guard=Guard(store, required=True, failures=3, failure_window=60))
    with running(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/v1/sensors", headers=bearer(secret)).status_code == 200
        flood = [client.get("/v1/sensors", headers=bearer(f"es_guess{i}")) for i in range(6)]
        assert [a.status_code for a in flood] == [401] * 3 + [429] * 3
        assert "3 unknown or revoked tokens from 127.0.0.1 within 60 s" in flood[3].json()["error"]
        assert 1 <= int(flood[3].headers["Retry-After"]) <= 61
        assert client.get("/v1/sensors", headers=bearer(secret)).status_code == 429  # the address waits
        assert client.get("/v1/sensors").status_code == 429  # with no token too
        code, reason = socket_refusal(url, {"token": secret})
        assert code == 1013 and reason.startswith("429: 3 unknown or revoked tokens from 127.0.0.1")
        elsewhere = {**bearer(secret), "X-Forwarded-For": "192.0.2.7"}
        assert client.get("/v1/sensors", headers=elsewhere).status_code == 200
        assert client.get("/v1/sensors", headers={**bearer("es_guess"), "X-Forwarded-For": "192.0.2.7"}
                          ).status_code == 401  # counted for that address, one of its three
        assert client.get("/healthz").status_code == 200  # public routes need no token and are not counted
    store.close()


def test_serving_beyond_loopback_needs_tokens(envsound_main, trained_run, tmp_path):
    store = tmp_path / "events.sqlite"
    ran = envsound_main("serve", trained_run.checkpoint, "--host", "0.0.0.0", "--port", "0", "--store", store)
    assert ran.returncode == 1
    assert ran.stderr.strip().splitlines()[-1] == (
        f"envsound serve: error: serving on 0.0.0.0 (beyond this machine) needs tokens and sqlite:///{store} holds "
        f"none: make one with `envsound token create NAME --role admin --store {store}`")
    ran = envsound_main("serve", trained_run.checkpoint, "--auth", "--port", "0", "--store", store)
    assert ran.returncode == 1 and "--auth needs tokens" in ran.stderr


def test_a_token_holds_at_most_its_streams(deployed):
    ws = deployed.url.replace("http://", "ws://") + "/v1/listen?rate=8000&encoding=pcm16"
    hello = json.dumps({"token": deployed.tokens["viewer"]})
    with connect(ws) as first:
        first.send(hello)
        first.send(b"\0\0" * 16000)  # two seconds of silence: the stream is open, counted, answering
        first.recv(timeout=30)
        code, reason = socket_refusal(deployed.url, {"token": deployed.tokens["viewer"]})
        assert code == 1013 and reason == "429: this token holds 1 live streams already (serve --streams-per-token)"
        first.send("end")  # the place is given back when the stream ends
        while True:
            try:
                first.recv(timeout=30)
            except ConnectionClosed:
                break
    with connect(ws) as again:  # the first stream closed: its place is free
        again.send(hello)
        again.send(b"\0\0" * 16000)
        assert "top" in json.loads(again.recv(timeout=30))

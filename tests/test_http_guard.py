"""The HTTP guard: same decisions as in process, 400/413 on bad input, never a 500."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inferwatch.detectors.config import MonitorConfig
from inferwatch.streams.guard import Guard, Rejection
from inferwatch.streams.http_guard import build_http_app, listen
from inferwatch.testing.services import listen_port

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "card_fraud_stream.jsonl"

# Every rule kind and every action.
ALL_RULES = {"default": {
    "columns": {"amount": {"type": "numeric"}, "country": {"type": "categorical"},
                "tenure_days": {"type": "numeric"}, "prediction": {"type": "numeric"}},
    "rules": [
        {"kind": "range", "field": "prediction", "min": 0, "max": 0.9, "action": "fix"},
        {"kind": "range", "field": "amount", "min": 0, "max": 5000, "action": "flag"},
        {"kind": "allowed", "field": "country", "values": ["US", "GB", "DE", "FR", "ES"], "action": "fix",
         "fix_value": "US"},
        {"kind": "not_null", "field": "tenure_days", "action": "pass"},
        {"kind": "expression", "expression": 'amount > 20000 and country not in ["US"]', "action": "block"},
        {"kind": "expression", "expression": "prediction > 0.95", "action": "fallback", "fallback_value": 0.5},
    ]}}


def crafted_events() -> list[dict]:
    """Events that hit each rule and each action."""
    base = {"event_id": "c", "model": "card-fraud", "timestamp": "2026-11-01T00:00:00Z"}
    features = [
        ({"amount": 10.0, "country": "US", "tenure_days": 3}, 0.2),     # pass
        ({"amount": 10.0, "country": "US", "tenure_days": None}, 0.2),  # not_null, action pass
        ({"amount": 9000.0, "country": "US", "tenure_days": 3}, 0.2),   # flag
        ({"amount": 10.0, "country": "BR", "tenure_days": 3}, 0.2),     # fix a feature
        ({"amount": 10.0, "country": "US", "tenure_days": 3}, 0.93),    # fix the prediction
        ({"amount": 10.0, "country": "US", "tenure_days": 3}, 0.99),    # fallback
        ({"amount": 30000.0, "country": "BR", "tenure_days": None}, 0.99),  # block wins
    ]
    return [{**base, "event_id": f"c{i}", "features": f, "prediction": p} for i, (f, p) in enumerate(features)]


def demo_events(n: int) -> list[bytes]:
    return [line for line in DEMO.read_bytes().splitlines()[:n] if line.strip()]


@pytest.fixture(scope="module")
def guard():
    return Guard(MonitorConfig.model_validate(ALL_RULES))


@pytest.fixture(scope="module")
def client(guard):
    """The ASGI app under uvicorn (httptools), in a thread, and a keep-alive client."""
    import uvicorn

    sock = listen("127.0.0.1", 0)  # bound before the server runs: the client's connection queues
    app = build_http_app(guard, max_body_bytes=1 << 20, max_events=500)
    server = uvicorn.Server(uvicorn.Config(app, http="httptools", lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    conn = http.client.HTTPConnection(*sock.getsockname(), timeout=30)

    def call(method: str, path: str, data=None, chunked: bool = False) -> tuple[int, bytes]:
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"}, encode_chunked=chunked)
        response = conn.getresponse()
        body = response.read()
        if response.will_close:
            conn.close()  # reconnects on the next request
        return response.status, body

    call.address = sock.getsockname()
    yield call
    conn.close()
    server.should_exit = True
    thread.join(timeout=30)
    assert not thread.is_alive()


def test_each_rule_kind_and_action_gives_the_same_decision_in_process_and_over_http(guard, client):
    events = crafted_events()
    in_process = [guard.check(e).to_dict() for e in events]
    assert [d["action"] for d in in_process] == ["pass", "pass", "flag", "fix", "fix", "fallback", "block"]
    assert in_process[3]["fixed"] == {"country": "US"} and in_process[4]["prediction"] == 0.9
    assert in_process[5]["prediction"] == 0.5 and in_process[6]["prediction"] is None
    one_by_one = []
    for e in events:
        status, body = client("POST", "/v1/guard", data=orjson.dumps(e))
        assert status == 200
        one_by_one.append(orjson.loads(body))
    status, body = client("POST", "/v1/guard", data=orjson.dumps(events))
    assert status == 200
    assert one_by_one == in_process == orjson.loads(body)


def test_demo_events_give_the_same_decisions_over_http(guard, client):
    lines = [line for line in demo_events(400) if not isinstance(guard.check_batch([line])[0], Rejection)]
    status, body = client("POST", "/v1/guard", data=b"[" + b",".join(lines) + b"]")
    assert status == 200
    assert orjson.loads(body) == [guard.check(line).to_dict() for line in lines]


@pytest.mark.parametrize("body, code, field", [
    (b"not json", 400, None),
    (b"42", 400, None),
    (b'{"event_id":"e","timestamp":"2026-11-01T00:00:00Z","features":{}}', 400, "model"),
    (b'{"event_id":"e","model":"m","timestamp":"2026-11-01T00:00:00Z","features":{"amount":"cheap"}}', 400,
     "features.amount"),
    (b'{"event_id":"e","model":"m","timestamp":"yesterday","features":{}}', 400, "timestamp"),
    (b'{"event_id":"e","model":"m","timestamp":1.0,"features":{"amount":NaN}}', 400, "features.amount"),
    (b'{"event_id":"e","model":"m","timestamp":NaN,"features":{"amount":1}}', 400, None),
    (b"[" + b",".join([b"{}"] * 501) + b"]", 413, None),
    (b"x" * ((1 << 20) + 1), 413, None),
])
def test_bad_input_is_a_400_or_413_naming_the_field(client, body, code, field):
    status, answer = client("POST", "/v1/guard", data=body)
    assert status == code
    errors = orjson.loads(answer)["errors"]
    assert errors and all(e["error"] for e in errors)
    assert errors[0]["field"] == field


def test_a_list_with_bad_events_names_each_by_index(client):
    good = crafted_events()[0]
    status, answer = client("POST", "/v1/guard", data=orjson.dumps([good, {"event_id": 1}, good, "x"]))
    assert status == 400
    assert [e["index"] for e in orjson.loads(answer)["errors"]] == [1, 3]


def test_a_bare_nan_in_a_list_is_named_by_index_and_field(client):
    good = orjson.dumps(crafted_events()[0])
    bad = b'{"event_id":"e","model":"m","timestamp":1.0,"features":{"amount":NaN}}'
    status, answer = client("POST", "/v1/guard", data=b"[" + good + b", " + bad + b"," + good + b"]")
    assert status == 400
    assert [(e["index"], e["field"]) for e in orjson.loads(answer)["errors"]] == [(1, "features.amount")]
    for body in (b"[" + good + b"," + bad, b"[" + good + b"," + bad + b",]"):  # not an array: no index
        status, answer = client("POST", "/v1/guard", data=body)
        assert status == 400 and orjson.loads(answer)["errors"][0]["index"] is None


def test_a_client_gone_mid_body_leaves_the_server_serving(client):
    with socket.create_connection(client.address) as s:
        s.sendall(b"POST /v1/guard HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"event_id\"")
    status, answer = client("POST", "/v1/guard", data=orjson.dumps(crafted_events()[2]))
    assert status == 200 and orjson.loads(answer)["action"] == "flag"


def test_a_chunked_body_is_read_whole_and_its_cap_holds(client):
    event = orjson.dumps(crafted_events()[2])
    chunks = [event[:10], event[10:]]
    status, answer = client("POST", "/v1/guard", data=iter(chunks), chunked=True)
    assert status == 200 and orjson.loads(answer)["action"] == "flag"
    status, answer = client("POST", "/v1/guard", data=iter([b" " * 65536] * 17), chunked=True)  # 1 MiB + 64 KiB
    assert status == 413 and "too large" in orjson.loads(answer)["errors"][0]["error"]


def test_answers_carry_a_date_and_keep_the_connection(client):
    with socket.create_connection(client.address) as s:
        reader = s.makefile("rb")
        for _ in range(2):  # the second request on the same connection is answered too
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head = [reader.readline()]
            while head[-1] != b"\r\n":
                head.append(reader.readline())
            fields = dict(line.decode().rstrip("\r\n").lower().split(": ", 1) for line in head[1:-1])
            assert head[0].startswith(b"HTTP/1.1 200") and "date" in fields
            assert orjson.loads(reader.read(int(fields["content-length"]))) == {"status": "ok"}


def test_unknown_paths_and_methods_are_404_and_405(client):
    status, answer = client("GET", "/v1/guard")
    assert status == 405 and "GET" in orjson.loads(answer)["errors"][0]["error"]
    status, answer = client("POST", "/v2/guard", data=b"{}")
    assert status == 404 and "/v2/guard" in orjson.loads(answer)["errors"][0]["error"]


def test_healthz_metrics_and_openapi(client):
    assert client("GET", "/healthz")[0] == 200
    client("POST", "/v1/guard", data=orjson.dumps(crafted_events()[2]))
    status, text = client("GET", "/metrics")
    assert status == 200 and b'inferwatch_guard_decisions_total{action="flag"}' in text
    status, doc = client("GET", "/openapi.json")
    spec = orjson.loads(doc)
    assert spec["openapi"].startswith("3.") and "post" in spec["paths"]["/v1/guard"]
    assert {"InferenceEvent", "Decision", "Errors"} <= set(spec["components"]["schemas"])


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                     max_leaves=20)
_EVENTISH = st.fixed_dictionaries({}, optional={
    "event_id": _JSON, "model": _JSON, "timestamp": _JSON, "prediction": _JSON,
    "features": st.dictionaries(st.sampled_from(["amount", "country", "tenure_days", "other"]), _JSON)})


def _body(value) -> bytes | None:
    try:
        return orjson.dumps(value)
    except TypeError:
        return None


@settings(max_examples=250, deadline=None)
@given(st.one_of(st.binary(max_size=300),
                 _JSON.map(_body), _EVENTISH.map(_body), st.lists(_EVENTISH, max_size=4).map(_body)))
def test_arbitrary_bodies_get_an_answer_never_a_500(client, body):
    if body is None:
        return
    status, answer = client("POST", "/v1/guard", data=body)
    assert status in (200, 400, 413)
    payload = orjson.loads(answer)
    if status == 200:
        decisions = payload if isinstance(payload, list) else [payload]
        assert all(d["action"] in ("pass", "flag", "fix", "fallback", "block") for d in decisions)
    else:
        assert payload["errors"]


def test_guard_command_serves_http_and_refuses_a_bad_rule(tmp_path):
    import urllib.request

    bad = tmp_path / "bad.yaml"
    bad.write_text("default:\n  rules: [{kind: range, field: amount, max: 1, action: explode}]\n")
    res = subprocess.run([sys.executable, "-m", "inferwatch", "guard", "--config", str(bad), "--http", "127.0.0.1:1"],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert res.returncode == 2 and "rules" in res.stderr and "action" in res.stderr
    config = tmp_path / "rules.yaml"
    import yaml
    config.write_text(yaml.safe_dump(ALL_RULES))
    port = listen_port()
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch", "guard", "--config", str(config),
                             "--http", f"127.0.0.1:{port}"], cwd=ROOT, stderr=subprocess.PIPE)
    try:
        assert b"serving" in proc.stderr.readline()
        event = crafted_events()[6]
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/guard", data=orjson.dumps(event), method="POST")
        with urllib.request.urlopen(request, timeout=30) as r:  # the port is bound before the "serving" line
            assert orjson.loads(r.read())["action"] == "block"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_token_and_tls_guard_only_what_must_be(tmp_path):
    """A whole ``inferwatch guard --http`` process with a token file and a certificate: HTTPS only; every path
    but /healthz needs the bearer token (401 without, /metrics included); the token never in the output."""
    import ssl
    import time

    cert, key, token = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "token"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=120)
    token.write_text("s3cret-token\n")
    config = tmp_path / "rules.yaml"
    config.write_text(orjson.dumps(ALL_RULES).decode())
    port = listen_port()
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch", "guard", "--config", str(config), "--http",
                             f"127.0.0.1:{port}", "--token-file", str(token), "--tls-cert", str(cert),
                             "--tls-key", str(key)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    context = ssl.create_default_context(cafile=str(cert))

    def call(method: str, path: str, token: str | None = None, data: bytes | None = None) -> int:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=context)
        try:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            conn.request(method, path, body=data, headers=headers)
            return conn.getresponse().status
        finally:
            conn.close()

    try:
        for _ in range(600):  # the socket is bound before the server runs: wait for the process to serve
            try:
                if call("GET", "/healthz") == 200:
                    break
            except (ConnectionError, OSError):
                time.sleep(0.1)
        event = orjson.dumps(crafted_events()[0])
        assert call("POST", "/v1/guard", None, event) == 401
        assert call("POST", "/v1/guard", "wrong", event) == 401
        assert call("POST", "/v1/guard", "s3cret-token", event) == 200
        assert call("GET", "/metrics") == 401 and call("GET", "/metrics", "s3cret-token") == 200
        with pytest.raises((ssl.SSLError, ConnectionError, http.client.HTTPException)):  # no plain HTTP
            plain = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            plain.request("GET", "/healthz")
            assert plain.getresponse().status != 200
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    assert b"s3cret-token" not in out + err and b"https://" in err


def test_tls_needs_both_files_and_the_token_file_must_hold_one(tmp_path):
    config = tmp_path / "rules.yaml"
    config.write_text(orjson.dumps(ALL_RULES).decode())
    empty = tmp_path / "empty"
    empty.write_text("\n")
    for extra, named in ((["--tls-cert", str(config)], b"--tls-key"), (["--token-file", str(empty)], b"--token-file")):
        res = subprocess.run([sys.executable, "-m", "inferwatch", "guard", "--config", str(config), "--http",
                              f"127.0.0.1:{listen_port()}", *extra], capture_output=True, timeout=120)
        assert res.returncode == 2 and named in res.stderr, res.stderr


@pytest.fixture
def roomy(tmp_path):
    """``inferwatch guard --http`` in a process of its own (production caps: 8 MiB, 10,000 events)."""
    import yaml

    config = tmp_path / "rules.yaml"
    config.write_text(yaml.safe_dump(ALL_RULES))
    port = listen_port()
    proc = subprocess.Popen([sys.executable, "-m", "inferwatch", "guard", "--config", str(config),
                             "--http", f"127.0.0.1:{port}"], cwd=ROOT, stderr=subprocess.PIPE)
    assert b"serving" in proc.stderr.readline()  # the port is bound before the "serving" line
    yield "127.0.0.1", port, proc.pid
    proc.terminate()
    proc.wait(timeout=30)


def _children(pid: int) -> list[int]:
    """The processes ``pid`` spawned with multiprocessing (not its resource tracker)."""
    found = [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
    return [c for c in found if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def test_a_long_list_does_not_hold_the_other_clients(guard, roomy):
    """While one client's 10,000 events are decided (in the long-list process), another's single events are
    answered; the long list's answer is whole and the same. That process killed, the next long list starts it
    again and gets the same answer."""
    import time

    parsed = []
    for line in demo_events(12_000):
        try:
            parsed.append(orjson.loads(line))
        except orjson.JSONDecodeError:
            continue
    events = [e for e, d in zip(parsed, guard.check_batch(parsed)) if not isinstance(d, Rejection)][:10_000]
    assert len(events) == 10_000
    body, done = orjson.dumps(events), {}

    def long_list():
        conn = http.client.HTTPConnection(*roomy[:2], timeout=120)
        started = time.perf_counter()
        conn.request("POST", "/v1/guard", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = response.read()
        done["long"] = (response.status, time.perf_counter() - started, answer)

    conn = http.client.HTTPConnection(*roomy[:2], timeout=30)
    one = orjson.dumps(events[0])
    for batch in (one, orjson.dumps(events[:100])):  # the server's first calls load its compiled kernels
        conn.request("POST", "/v1/guard", body=batch, headers={"Content-Type": "application/json"})
        assert conn.getresponse().read()
    worker = threading.Thread(target=long_list)
    worker.start()
    waits = []  # a single event's answer time while the long list is in work (one is always in flight)
    while worker.is_alive():
        sent = time.perf_counter()
        conn.request("POST", "/v1/guard", body=one, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200 and orjson.loads(response.read())["event_id"] == events[0]["event_id"]
        waits.append(time.perf_counter() - sent)
    worker.join()
    status, took, answer = done["long"]
    decisions = orjson.loads(answer)
    assert status == 200 and len(decisions) == len(events)
    assert decisions == [orjson.loads(orjson.dumps(d.to_dict())) for d in guard.check_batch(events)]
    # before, the loop was held while the whole list was decided: the single event in flight waited for it
    assert max(waits) < took / 4, (max(waits), took)
    (child,) = _children(roomy[2])
    os.kill(child, signal.SIGKILL)
    long_list()
    status, _, again = done["long"]
    assert status == 200 and again == answer and _children(roomy[2]) != [child]


def test_a_body_over_the_cap_sent_whole_gets_its_413():
    """A client that sends its whole body before reading (Python's urllib, with Connection: close) reads the 413."""
    import urllib.error
    import urllib.request

    import uvicorn

    sock = listen("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(build_http_app(Guard(MonitorConfig()), max_body_bytes=1 << 20),
                                          http="httptools", lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        host, port = sock.getsockname()
        body = b"[" + b"0," * (7 << 18) + b"0]"  # 3.5 MiB: more than the kernel's buffers hold on loopback
        request = urllib.request.Request(f"http://{host}:{port}/v1/guard", data=body,
                                         headers={"Content-Type": "application/json"}, method="POST")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 413 and b"too large" in refused.value.read()
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def strict(guard):
    """The guard with its connection limits, the timeouts short: (host, port)."""
    import uvicorn

    from inferwatch.streams.http_limits import limited_protocol

    sock = listen("127.0.0.1", 0)
    protocol = limited_protocol(header_seconds=1.0, body_seconds=1.0)
    server = uvicorn.Server(uvicorn.Config(build_http_app(guard), http=protocol, lifespan="off", log_level="warning",
                                          timeout_keep_alive=30))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    yield sock.getsockname()
    server.should_exit = True
    thread.join(timeout=30)


def _exchange(address, sent: bytes, wait: float = 10.0) -> bytes:
    """Send ``sent`` and read until the server closes the connection (at most ``wait`` seconds)."""
    with socket.create_connection(address, timeout=wait) as s:
        try:
            s.sendall(sent)
        except (BrokenPipeError, ConnectionResetError):  # closed while we still sent: what it answered is read
            pass
        got = b""
        try:
            while chunk := s.recv(65536):
                got += chunk
        except ConnectionResetError:
            pass
        return got


def test_a_huge_head_or_too_many_headers_is_431_and_the_connection_closed(strict):
    head = b"POST /v1/guard HTTP/1.1\r\nHost: x\r\n"
    assert _exchange(strict, head + b"X-Big: " + b"a" * (200 * 1024) + b"\r\n\r\n").startswith(b"HTTP/1.1 431")
    many = b"".join(b"X-%d: 1\r\n" % i for i in range(150))
    assert _exchange(strict, head + many + b"\r\n").startswith(b"HTTP/1.1 431")
    ok = b'{"event_id":"a","model":"m","timestamp":"2026-11-01T00:00:00Z","features":{}}'
    fifty = b"".join(b"X-%d: 1\r\n" % i for i in range(50))
    fine = head + fifty + b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(ok) + ok
    assert _exchange(strict, fine).startswith(b"HTTP/1.1 200")


def test_a_silent_or_slow_client_is_let_go(strict):
    """A connection that sends nothing, or half a head, gets 408 after the header timeout; a body that stops
    coming is closed after the body timeout (nothing held for good)."""
    import time

    for sent in (b"", b"POST /v1/guard HTTP/1.1\r\nHost: x\r\n"):
        started = time.perf_counter()
        assert _exchange(strict, sent).startswith(b"HTTP/1.1 408")
        assert time.perf_counter() - started < 5
    started = time.perf_counter()
    got = _exchange(strict, b"POST /v1/guard HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
    assert not got.startswith(b"HTTP/1.1 200") and time.perf_counter() - started < 5

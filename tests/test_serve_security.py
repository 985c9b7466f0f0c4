"""`medsam2 serve` security: token (cookie, compare_digest), Host allowlist, Origin, no CORS, CSP,
body limits, traversal payloads, JSON errors without tracebacks, no debug, loopback by default."""

from __future__ import annotations

import hmac
from pathlib import Path

import pytest
from serve_helpers import BASE, PORT, TOKEN, TestClient, make_client, oblique_volume, tiny_model

from medsam2.cli.main import main
from medsam2.web.security import CSP


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    out = tmp_path_factory.mktemp("serve") / "out.nii.gz"
    client, state = make_client(tiny_model(), oblique_volume(), out)
    return client, state


def anonymous(client: TestClient, **headers: str) -> TestClient:
    return TestClient(client.app, base_url=BASE, headers=headers, raise_server_exceptions=False)


ROUTES = [
    ("GET", "/"),
    ("GET", "/static/app.js"),
    ("GET", "/api/volume"),
    ("GET", "/api/image.nii.gz"),
    ("GET", "/api/labels.nii.gz"),
    ("GET", "/api/objects"),
    ("POST", "/api/objects"),
    ("PATCH", "/api/objects/1"),
    ("DELETE", "/api/objects/1"),
    ("POST", "/api/objects/1/prompts"),
    ("POST", "/api/undo"),
    ("POST", "/api/reset"),
    ("POST", "/api/propagate"),
    ("POST", "/api/cancel"),
    ("POST", "/api/save"),
    ("POST", "/api/resume"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_the_token(served, method: str, path: str) -> None:
    client, _ = served
    for c in (anonymous(client), anonymous(client, **{"X-Medsam2-Token": TOKEN + "x"})):
        r = c.request(method, path, json={} if method != "GET" else None)
        assert r.status_code == 401 and r.json()["error"].startswith("missing or wrong token")


def test_health_is_public_and_static(served) -> None:
    r = anonymous(served[0]).get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_token_in_url_sets_a_strict_cookie_then_the_cookie_works(served, monkeypatch) -> None:
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    c = anonymous(served[0])
    r = c.get(f"/?token={TOKEN}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"  # the token leaves the address bar
    cookie = r.headers["set-cookie"]
    assert f"medsam2_{PORT}={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert c.get("/").status_code == 200 and "<canvas" in c.get("/").text
    assert c.get("/api/volume").status_code == 200
    assert calls  # tokens are compared in constant time
    assert anonymous(served[0]).get("/?token=wrong").status_code == 401


@pytest.mark.parametrize(
    "host", ["evil.example", "attacker.com:8765", "127.0.0.1.nip.io", "", "localhost.evil"]
)
def test_host_allowlist(served, host: str) -> None:
    r = served[0].get("/api/volume", headers={"host": host})
    assert r.status_code == 400 and "Host" in r.json()["error"]


@pytest.mark.parametrize("host", [f"localhost:{PORT}", f"127.0.0.1:{PORT}", f"[::1]:{PORT}", "localhost"])
def test_loopback_hosts_pass(served, host: str) -> None:
    assert served[0].get("/api/volume", headers={"host": host}).status_code == 200


def test_origin_is_checked_on_writes(served) -> None:
    client, _ = served
    assert client.post("/api/cancel", json={}, headers={"origin": "http://evil.example"}).status_code == 403
    assert client.post("/api/cancel", json={}, headers={"origin": "null"}).status_code == 403
    assert client.post("/api/cancel", json={}, headers={"sec-fetch-site": "cross-site"}).status_code == 403
    assert (
        client.post("/api/cancel", json={}, headers={"origin": f"http://127.0.0.1:{PORT}"}).status_code == 200
    )
    assert client.get("/api/volume", headers={"origin": "http://evil.example"}).status_code == 200  # reads


def test_wildcard_bind_still_needs_a_same_origin_write(tmp_path: Path) -> None:
    client, _ = make_client(tiny_model(), oblique_volume((16, 16, 4)), tmp_path / "o.nii.gz", any_host=True)
    lan = {"host": "192.168.1.20:8765"}
    assert client.get("/api/volume", headers=lan).status_code == 200
    assert (
        client.post("/api/cancel", json={}, headers={**lan, "origin": "http://192.168.1.20:8765"}).status_code
        == 200
    )
    assert (
        client.post("/api/cancel", json={}, headers={**lan, "origin": "http://evil.example"}).status_code
        == 403
    )
    assert anonymous(client, **lan).get("/api/volume").status_code == 401


def test_no_cors_and_security_headers_everywhere(served) -> None:
    client, _ = served
    responses = [
        client.options(
            "/api/objects", headers={"origin": "http://evil.example", "access-control-request-method": "POST"}
        ),
        client.get("/api/volume", headers={"origin": "http://evil.example"}),
        client.get("/nope"),
        anonymous(client).get("/api/volume"),
        client.get("/"),
    ]
    assert responses[0].status_code in (401, 403, 405)
    for r in responses:
        assert not [h for h in r.headers if h.lower().startswith("access-control-")]
        assert r.headers["content-security-policy"] == CSP and CSP.startswith("default-src 'self';")
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"


def test_body_limits_and_content_type(served) -> None:
    client, _ = served
    big = b'{"name": "' + b"a" * 70_000 + b'"}'
    r = client.post("/api/objects", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413

    def chunks():
        for _ in range(100):
            yield b"a" * 1024

    r = client.post("/api/objects", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert (
        client.post("/api/objects", content=b"name=x", headers={"content-type": "text/plain"}).status_code
        == 415
    )
    assert (
        client.post(
            "/api/objects", content=b"{not json", headers={"content-type": "application/json"}
        ).status_code
        == 400
    )


TRAVERSAL = ["../../etc/passwd", "..%2f..%2fetc%2fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/etc/passwd",
             "..\\..\\windows\\win.ini", "....//....//etc/passwd", "%252e%252e%252fetc%252fpasswd"]  # fmt: skip


@pytest.mark.parametrize("payload", TRAVERSAL)
def test_traversal_payloads_are_refused_everywhere(served, payload: str) -> None:
    client, _ = served
    client.post("/api/objects", json={})
    attempts = [
        client.get(f"/static/{payload}"),
        client.get(f"/api/{payload}"),
        client.get(f"/api/volume?path={payload}"),
        client.get(f"/api/image.nii.gz?file={payload}"),
        client.post("/api/save", json={"path": payload}),
        client.post("/api/save", json={"output": payload}),
        client.post("/api/objects", json={"name": payload}),
        client.patch("/api/objects/1", json={"name": payload}),
        client.post("/api/objects/1/prompts", json={"points": [[0, 0, 0]], "file": payload}),
        client.post("/api/objects/1/prompts", json={"points": [payload]}),
        client.post("/api/propagate", json={"direction": payload}),
        client.post("/api/undo", json={"object": payload}),
        client.post(f"/api/objects/{payload}/prompts", json={}),
    ]
    for r in attempts:
        assert 400 <= r.status_code < 500, (r.request.url, r.status_code)
        assert "root:" not in r.text and r.headers["content-type"].startswith("application/json")


def test_errors_are_json_without_tracebacks_and_debug_is_off(served, monkeypatch) -> None:
    client, state = served

    def boom() -> None:
        raise RuntimeError("secret detail /home/user/data")

    monkeypatch.setattr(state.annotator, "info", boom)
    r = client.get("/api/volume")
    assert r.status_code == 500 and r.json() == {"error": "internal server error"}
    assert "Traceback" not in r.text and "secret" not in r.text
    assert client.app.app.debug is False
    r = client.get("/api/nothing-here")
    assert r.status_code == 404 and set(r.json()) == {"error"}
    r = client.put("/api/objects")
    assert r.status_code == 405 and set(r.json()) == {"error"}


def test_non_loopback_host_needs_allow_remote(capsys, tmp_path: Path) -> None:
    assert main(["serve", str(tmp_path / "x.nii.gz"), "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--allow-remote" in err and "not a loopback" in err


def test_missing_web_extra_is_a_clear_error(monkeypatch, capsys, tmp_path: Path) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda n, *a: None if n == "uvicorn" else real(n, *a))
    assert main(["serve", str(tmp_path / "x.nii.gz")]) == 2
    assert "pip install 'medical-sam2[web]'" in capsys.readouterr().err

"""The HTTP service against a real uvicorn server on a loopback port, serving the tiny trained model."""
from __future__ import annotations

import concurrent.futures
import json
import os

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tokentune.errors import ConfigError  # noqa: E402
from tokentune.serving import Limits, create_app  # noqa: E402

from serving.helpers import GatedTagger, ThreadServer, client, trained_model, wait_for  # noqa: E402

SENTENCE = "Alice Smith visited Paris with Acme today ."
SMALL = Limits(max_texts=3, max_chars=50, max_body_bytes=2000)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, tiny_data, tiny_base_model):
    return trained_model(tmp_path_factory, tiny_data, tiny_base_model)


@pytest.fixture(scope="session")
def tagger(model_dir):
    from tokentune import Tagger

    return Tagger.from_pretrained(model_dir)


@pytest.fixture(scope="module")
def server(model_dir):
    with ThreadServer(create_app(model_dir, limits=SMALL)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server):
    with client(server.url) as http:
        yield http


def entities(response_json):
    return [[(e["label"], e["start"], e["end"], e["text"]) for e in r["entities"]] for r in response_json["results"]]


# -- endpoints ------------------------------------------------------------------------------------
def test_predict_matches_the_tagger(http, tagger):
    texts = [SENTENCE, "Bob works for Globex in Berlin .", ""]
    response = http.post("/predict", json={"texts": texts})
    assert response.status_code == 200, response.text
    body = response.json()
    assert [r["text"] for r in body["results"]] == texts
    expected = tagger.predict_texts(texts)
    assert entities(body) == [[(e.label, e.start, e.end, e.text) for e in found] for found in expected]
    assert any(body["results"][0]["entities"]), "the trained tiny model should find entities in SENTENCE"
    for result in body["results"]:
        for entity in result["entities"]:
            assert result["text"][entity["start"]:entity["end"]] == entity["text"]
            assert 0.0 < entity["score"] <= 1.0


def test_predict_single_text_form(http):
    one = http.post("/predict", json={"text": SENTENCE}).json()
    many = http.post("/predict", json={"texts": [SENTENCE]}).json()
    assert one == many and len(one["results"]) == 1


def test_offsets_count_code_points(http):
    text = "😀 Alice visited Paris ."  # an astral character first: UTF-16 offsets would be off by one
    result = http.post("/predict", json={"text": text}).json()["results"][0]
    assert result["entities"], result
    for entity in result["entities"]:
        assert text[entity["start"]:entity["end"]] == entity["text"]


def test_health(http):
    body = http.get("/health").json()
    assert body["status"] == "ok"
    assert body["max_queue"] == SMALL.max_queue and body["queue"] == 0
    assert body["batches"] >= 0 and body["largest_batch"] <= SMALL.max_batch_texts


@pytest.mark.parametrize("path", ["/", "/health", "/model", "/docs"])
def test_head_is_answered_as_get_without_a_body(http, path):
    """Health and link checkers send HEAD: a 405 there read as a server down."""
    response = http.head(path)
    assert response.status_code == 200 and response.content == b""
    assert response.headers["content-type"] == http.get(path).headers["content-type"]


def test_model_info(http, model_dir, tiny_base_model):
    body = http.get("/model").json()
    with open(os.path.join(model_dir, "config.json")) as handle:
        id2label = json.load(handle)["id2label"]
    with open(os.path.join(model_dir, "metrics.json")) as handle:
        metrics = json.load(handle)
    assert body["labels"] == [id2label[str(i)] for i in range(len(id2label))]
    assert body["entity_types"] == ["LOC", "ORG", "PER"]
    assert body["base_model"] == tiny_base_model
    assert body["metrics"] == metrics and "test" in body["metrics"]
    assert body["limits"] == {"max_texts": 3, "max_chars": 50, "max_body_bytes": 2000}
    from tokentune.inference.runners import inference_precision

    assert body["precision"] == inference_precision("auto", "cpu")  # what this machine's auto picks


def test_openapi_and_offline_docs(http):
    spec = http.get("/openapi.json").json()
    predict = spec["paths"]["/predict"]["post"]
    schema = predict["requestBody"]["content"]["application/json"]["schema"]
    assert set(schema["properties"]) == {"text", "texts", "min_score"}
    assert {"200", "413", "422", "503"} <= set(predict["responses"])
    assert {"/health", "/model"} <= set(spec["paths"])
    assert set(spec["paths"]["/health"]) == {"get"} and set(spec["paths"]["/model"]) == {"get"}  # HEAD not listed
    docs = http.get("/docs")
    assert docs.status_code == 200 and "static/docs.js" in docs.text


def test_page_and_static_files_need_no_network(http):
    page = http.get("/")
    assert page.status_code == 200 and 'id="tag"' in page.text
    for path in ("/static/app.js", "/static/style.css", "/static/docs.js", "/static/docs.html", "/"):
        response = http.get(path)
        assert response.status_code == 200, path
        assert "http://" not in response.text and "https://" not in response.text, f"{path} loads from the network"


def test_unknown_path_and_method(http):
    assert http.get("/nope").json() == {"detail": "Not Found"}
    assert http.get("/predict").status_code == 405


# -- limits ---------------------------------------------------------------------------------------
def test_too_many_texts(http):
    assert http.post("/predict", json={"texts": ["a", "b", "c"]}).status_code == 200  # at the limit
    response = http.post("/predict", json={"texts": ["a", "b", "c", "d"]})
    assert response.status_code == 413
    body = response.json()
    assert body["limit"] == "max_texts" and body["value"] == 3
    assert "4 texts" in body["detail"] and "--max-texts" in body["detail"]


def test_text_too_long(http):
    assert http.post("/predict", json={"text": "é" * 50}).status_code == 200  # 50 characters, 100 bytes
    response = http.post("/predict", json={"texts": ["ok", "x" * 51]})
    assert response.status_code == 413
    body = response.json()
    assert body["limit"] == "max_chars" and body["value"] == 50
    assert "texts[1] has 51 characters" in body["detail"] and "--max-chars" in body["detail"]


def test_body_too_large(http):
    body = json.dumps({"text": "a" * 10}) + " " * 2000
    response = http.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["limit"] == "max_body_bytes" and response.json()["value"] == 2000


def test_chunked_body_too_large(http):
    def chunks():  # no Content-Length: the server must count while reading
        yield b'{"text": "'
        for _ in range(30):
            yield b"a" * 100
        yield b'"}'

    response = http.post("/predict", content=chunks())
    assert response.status_code == 413 and response.json()["limit"] == "max_body_bytes"


@pytest.mark.parametrize("body, expected", [
    (b"", "empty"),
    (b"{", "not valid JSON"),
    (b"\xff\xfe{", "not UTF-8 (byte 0 is b'\\xff')"),
    ('{"text": "Alice"}'.encode("utf-16"), "not UTF-8"),  # json.loads alone would take UTF-16 and UTF-32
    ('{"text": "Alice"}'.encode("utf-32"), "not UTF-8"),
    ('{"text": "Alice"}'.encode("utf-16-le"), "not valid JSON"),  # NUL bytes are UTF-8, but not JSON
    (b'["Alice"]', "found a list"),
    (b'"Alice"', "found a string"),
    (b'{"texts": "Alice"}', "'texts' must be a list"),
    (b'{"texts": []}', "empty list"),
    (b'{"texts": ["a", 3]}', "texts[1] must be a string, found a number"),
    (b'{"text": null}', "must be a string, found null"),
    (b'{"text": "a", "texts": ["b"]}', "exactly one"),
    (b"{}", "exactly one"),
    (b'{"txt": "a"}', "unknown field 'txt'"),
    (b'{"text": "\\ud800 Alice"}', "unpaired surrogate"),
])
def test_malformed_input_is_422_with_a_reason(http, body, expected):
    response = http.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert expected in response.json()["detail"]


def test_deep_nesting_is_422(model_dir, tagger):
    with ThreadServer(create_app(tagger, model_dir=model_dir)) as running, client(running.url) as http:
        response = http.post("/predict", content=b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 422 and "nested too deeply" in response.json()["detail"]


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=60),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["text", "texts", "x"]), inner,
                                                                 max_size=3),
    max_leaves=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=JSON_VALUES | st.binary(max_size=200).map(lambda b: {"raw": b}))
def test_no_input_causes_a_server_error(http, payload):
    if isinstance(payload, dict) and isinstance(payload.get("raw"), bytes):
        response = http.post("/predict", content=payload["raw"])
    else:
        response = http.post("/predict", content=json.dumps(payload))
    assert response.status_code in (200, 413, 422), response.text
    assert ("results" in response.json()) == (response.status_code == 200)


# -- micro-batching and the queue -----------------------------------------------------------------
def post_in_threads(url: str, bodies: list[dict]) -> list[concurrent.futures.Future]:
    pool = concurrent.futures.ThreadPoolExecutor(len(bodies))

    def post(body):
        with client(url) as http:
            return http.post("/predict", json=body)

    futures = [pool.submit(post, body) for body in bodies]
    pool.shutdown(wait=False)
    return futures


def test_concurrent_requests_share_one_forward_pass(model_dir, tagger):
    gated = GatedTagger(tagger)
    app = create_app(gated, model_dir=model_dir, limits=Limits(max_batch_texts=64, batch_wait_ms=5))
    with ThreadServer(app) as running, client(running.url) as http:
        first = post_in_threads(running.url, [{"text": SENTENCE}])
        assert gated.entered.wait(10), "the first request never reached the model"
        texts = [f"{name} visited Paris ." for name in ("Alice", "Bob", "Carol", "Dieter", "Erika")]
        rest = post_in_threads(running.url, [{"text": text} for text in texts])
        assert wait_for(lambda: http.get("/health").json()["queue"] == 5), "the requests did not queue"
        gated.gate.set()
        responses = [f.result(timeout=30) for f in first + rest]
        health = http.get("/health").json()
    assert [r.status_code for r in responses] == [200] * 6
    # the five that queued while the model was busy ran as one batch
    assert len(gated.batches) == 2 and gated.batches[0] == [SENTENCE]
    assert sorted(gated.batches[1]) == texts  # in order of arrival, which threads do not fix
    assert health["batches"] == 2 and health["largest_batch"] == 5 and health["texts"] == 6
    for text, response in zip(texts, responses[1:]):
        assert response.json()["results"][0]["text"] == text
        assert entities(response.json()) == [[(e.label, e.start, e.end, e.text) for e in tagger.predict_text(text)]]


def test_full_queue_answers_503_with_retry_after(model_dir, tagger):
    gated = GatedTagger(tagger)
    app = create_app(gated, model_dir=model_dir, limits=Limits(max_queue=2, max_batch_texts=1))
    with ThreadServer(app) as running, client(running.url) as http:
        busy = post_in_threads(running.url, [{"text": "Alice ."}])
        assert gated.entered.wait(10)
        queued = post_in_threads(running.url, [{"text": "Bob ."}, {"text": "Carol ."}])
        assert wait_for(lambda: http.get("/health").json()["queue"] == 2)
        refused = http.post("/predict", json={"text": "Erika ."}, timeout=5)  # must not hang
        gated.gate.set()
        answered = [f.result(timeout=30) for f in busy + queued]
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert "--max-queue" in refused.json()["detail"]
    assert [r.status_code for r in answered] == [200, 200, 200]
    # --max-batch-texts 1: one text per forward pass (the two queued ones in either order)
    assert gated.batches[0] == ["Alice ."] and sorted(gated.batches[1:]) == [["Bob ."], ["Carol ."]]


def test_a_failing_request_does_not_fail_its_batch_mates(tagger):
    class Picky:  # the model fails on one particular text
        labels = tagger.labels

        def predict_texts(self, texts):
            if "boom" in texts:
                raise RuntimeError("the model failed on this text")
            return tagger.predict_texts(texts)

    gated = GatedTagger(Picky())
    with ThreadServer(create_app(gated)) as running, client(running.url) as http:
        busy = post_in_threads(running.url, [{"text": "Alice ."}])
        assert gated.entered.wait(10)
        queued = post_in_threads(running.url, [{"text": "boom"}, {"text": "Bob ."}])
        assert wait_for(lambda: http.get("/health").json()["queue"] == 2)
        gated.gate.set()
        first, *rest = [f.result(timeout=30) for f in busy + queued]
    by_text = {json.loads(r.request.content)["text"]: r for r in rest}
    assert first.status_code == 200
    assert by_text["Bob ."].status_code == 200
    failed = by_text["boom"]
    assert failed.status_code == 500 and "server log" in failed.json()["detail"]
    # the two shared a batch that failed, then each was retried alone
    assert sorted(gated.batches[1]) == ["Bob .", "boom"]
    assert sorted(gated.batches[2:]) == [["Bob ."], ["boom"]]


# -- API key --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keyed(tagger, model_dir):
    with ThreadServer(create_app(tagger, model_dir=model_dir, api_key="s3cret")) as running:
        yield running


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"},
                                     {"Authorization": "Basic s3cret"}, {"Authorization": "Bearer s3cret2"}])
def test_api_key_refuses_without_the_right_bearer(keyed, headers):
    with client(keyed.url) as http:
        for method, path in (("POST", "/predict"), ("GET", "/health"), ("GET", "/model"), ("GET", "/nope")):
            response = http.request(method, path, json={"text": "Alice"}, headers=headers)
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"].startswith("Bearer")
            assert "Authorization: Bearer KEY" in response.json()["detail"]


def test_api_key_accepts_the_right_bearer(keyed):
    with client(keyed.url, headers={"Authorization": "bearer s3cret"}) as http:
        assert http.post("/predict", json={"text": "Alice"}).status_code == 200
        assert http.get("/health").json()["status"] == "ok"
        assert http.get("/model").status_code == 200


def test_api_key_leaves_the_page_and_offline_docs_public(keyed):
    with client(keyed.url) as http:
        for path in ("/", "/static/app.js", "/static/docs.js", "/docs"):
            assert http.get(path).status_code == 200, path


def test_openapi_is_behind_the_api_key(keyed, tagger):
    """The OpenAPI document names the entity types, which /model keeps behind the key."""
    with client(keyed.url) as http:
        docs_js = http.get("/static/docs.js").text  # first: a file's log line can lag its reply
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            refused = http.get("/openapi.json", headers=headers)
            assert refused.status_code == 401 and "Authorization: Bearer KEY" in refused.json()["detail"]
            assert not any(label in refused.text for label in ("PER", "LOC", "ORG"))
        spec = http.get("/openapi.json", headers={"Authorization": "Bearer s3cret"}).json()
    assert "PER" in spec["info"]["description"]
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert spec["paths"]["/predict"]["post"]["security"] == [{"bearer": []}]
    assert "401" in docs_js and "Authorization" in docs_js, "/docs must ask for the key when openapi.json is refused"


# -- the Python API -------------------------------------------------------------------------------
def test_create_app_refuses_bad_settings(tagger):
    with pytest.raises(ConfigError, match="max_texts must be a whole number of at least 1.*--max-texts"):
        Limits(max_texts=0)
    with pytest.raises(ConfigError, match="batch_wait_ms"):
        Limits(batch_wait_ms=-1)
    with pytest.raises(ConfigError, match="API key is empty"):
        create_app(tagger, api_key="")
    with pytest.raises(ConfigError, match="cannot serve a dict"):
        create_app({"not": "a tagger"})


def test_requests_are_logged_one_line_each(server, http, caplog):
    caplog.set_level("INFO", logger="tokentune.serving")
    http.post("/predict", json={"text": "Alice"})
    http.get("/nope")

    def lines():  # the server thread logs just after the reply is sent: allow it a moment. Only this
        # server's thread: another test's server may log its last request's line late, into this test
        return [r.getMessage() for r in caplog.records
                if r.name == "tokentune.serving" and r.thread == server.thread.ident]

    assert wait_for(lambda: len(lines()) >= 2, timeout=5)
    lines = lines()
    assert len(lines) == 2
    assert lines[0].startswith("POST /predict 200 ") and lines[0].endswith(" ms")
    assert lines[1].startswith("GET /nope 404 ")

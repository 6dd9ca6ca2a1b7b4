"""The official openai client, unchanged, against hmst-server: completions, chat, streaming,
embeddings, models and errors. The model is an untrained micro checkpoint, so the text is
noise; the tests check what must hold for any weights: greedy determinism, agreement with
`hmst generate`, token counts, stop strings, log-probabilities and error shapes."""
import math
import subprocess

import numpy as np
import openai
import pytest
import requests

from conftest import CLI_BIN, FIXTURE


def test_models(server):
    c = server.client()
    models = c.models.list().data
    assert len(models) == 1 and models[0].id == "micro" and models[0].owned_by == "hmst"
    assert c.models.retrieve("micro").id == "micro"
    with pytest.raises(openai.NotFoundError) as e:
        c.models.retrieve("nope")
    assert e.value.body["code"] == "model_not_found"


def test_completion_greedy_matches_cli(server):
    """Greedy text from the server equals `hmst generate --temperature 0` on the same prompt."""
    c = server.client()
    r = c.completions.create(model="micro", prompt="The license", max_tokens=12, temperature=0)
    text = r.choices[0].text
    assert r.object == "text_completion" and r.choices[0].finish_reason in ("length", "stop")
    assert 1 <= r.usage.completion_tokens <= 12
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens
    out = subprocess.run([CLI_BIN, "generate", FIXTURE, "--prompt", "The license", "--max-length", "12",
                          "--temperature", "0", "--threads", "1"], capture_output=True, check=True).stdout
    # the untrained model emits invalid UTF-8; the server sends U+FFFD for it, as Python's "replace"
    assert out.decode("utf-8", "replace") == "The license" + text + "\n"
    # same request, same text (another slot may serve it)
    again = c.completions.create(model="micro", prompt="The license", max_tokens=12, temperature=0)
    assert again.choices[0].text == text


def test_frequency_and_presence_penalties_match_cli(server):
    """frequency_penalty and presence_penalty change greedy text (they were accepted and
    ignored), as `hmst generate --frequency-penalty --presence-penalty` does."""
    c = server.client()
    def cli(*extra):
        out = subprocess.run([CLI_BIN, "generate", FIXTURE, "--prompt", "The license", "--max-length", "12",
                              "--temperature", "0", "--threads", "1", *extra], capture_output=True, check=True).stdout
        return out.decode("utf-8", "replace")
    penalized = c.completions.create(model="micro", prompt="The license", max_tokens=12, temperature=0,
                                     frequency_penalty=1.5, presence_penalty=2).choices[0].text
    assert cli("--frequency-penalty", "1.5", "--presence-penalty", "2") == "The license" + penalized + "\n"
    assert cli() != "The license" + penalized + "\n"
    # repeat_last_n 0: nothing is recent, so nothing is penalized
    none = c.completions.create(model="micro", prompt="The license", max_tokens=12, temperature=0,
                                frequency_penalty=1.5, presence_penalty=2, extra_body={"repeat_last_n": 0}).choices[0].text
    assert cli() == "The license" + none + "\n"
    with pytest.raises(openai.BadRequestError):
        c.completions.create(model="micro", prompt="x", max_tokens=1, presence_penalty=2.5)


def test_logit_bias(server):
    """logit_bias +100 forces a token under greedy decoding (the ids come back as the
    log-probabilities' tokens); keys must be token ids of the vocabulary, values in -100...100."""
    c = server.client()
    r = c.completions.create(model="micro", prompt="The license", max_tokens=5, temperature=0, logprobs=0,
                             logit_bias={"7": 100})
    assert r.choices[0].logprobs.tokens and len(set(r.choices[0].logprobs.tokens)) == 1
    plain = c.completions.create(model="micro", prompt="The license", max_tokens=5, temperature=0).choices[0].text
    assert r.choices[0].text != plain
    assert subprocess.run([CLI_BIN, "generate", FIXTURE, "--prompt", "The license", "--max-length", "5", "--temperature", "0",
                           "--threads", "1", "--logit-bias", "7=100"], capture_output=True, check=True).stdout.decode("utf-8", "replace") \
        == "The license" + r.choices[0].text + "\n"
    for bad in ({"x": 1}, {"-1": 1}, {"100000000": 1}, {"7": 101}, {"7": "a"}):
        with pytest.raises(openai.BadRequestError) as e:
            c.completions.create(model="micro", prompt="x", max_tokens=1, logit_bias=bad)
        assert e.value.body["param"] == "logit_bias"


def test_echo(server):
    """echo: the prompt's text ahead of the completion and, with logprobs, its tokens'
    log-probabilities (null for the first), as lm-evaluation-harness reads them (max_tokens 0).
    They equal the log-probabilities generation reports for the same tokens at the same place,
    across the 256-token chunks the prompt is evaluated in."""
    c = server.client()
    prompt = [(37 * i + 11) % 1000 for i in range(300)]
    # two tokens forced by logit_bias; their log-probabilities come from the model's own logits
    gen = c.completions.create(model="micro", prompt=prompt, max_tokens=2, temperature=0, logprobs=1, logit_bias={"7": 100})
    forced = gen.choices[0].logprobs.token_logprobs
    echo = c.completions.create(model="micro", prompt=prompt + [7, 7], max_tokens=0, temperature=0, logprobs=2, echo=True)
    lp = echo.choices[0].logprobs
    assert len(lp.tokens) == 302 and lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert all(x is not None and x <= 0 for x in lp.token_logprobs[1:])
    assert all(len(t) == 2 for t in lp.top_logprobs[1:])
    assert lp.token_logprobs[-2:] == pytest.approx(forced, abs=1e-4)
    assert echo.choices[0].text == "".join(lp.tokens) and lp.text_offset[0] == 0
    assert echo.usage.prompt_tokens == 302 and echo.usage.completion_tokens == 0
    # a prefix's log-probabilities are the same (causal), whatever the chunking
    short = c.completions.create(model="micro", prompt=prompt[:260], max_tokens=0, logprobs=0, echo=True).choices[0].logprobs
    assert short.token_logprobs[1:] == pytest.approx(lp.token_logprobs[1:260], abs=1e-4)
    # text: the prompt, then the same completion as without echo; a stop string inside the prompt does not stop it
    plain = c.completions.create(model="micro", prompt="The license", max_tokens=6, temperature=0).choices[0].text
    e = c.completions.create(model="micro", prompt="The license", max_tokens=6, temperature=0, echo=True, stop=["lic"])
    assert e.choices[0].text.startswith("The license") and plain.startswith(e.choices[0].text[len("The license"):])
    streamed = "".join(ch.choices[0].text for ch in c.completions.create(model="micro", prompt="The license", max_tokens=6,
                                                                          temperature=0, echo=True, stream=True) if ch.choices)
    assert streamed == "The license" + plain
    with pytest.raises(openai.BadRequestError) as err:
        c.chat.completions.create(model="micro", messages=[{"role": "user", "content": "hi"}], extra_body={"echo": True})
    assert err.value.body["param"] == "echo"


def test_tokenize_and_detokenize(server):
    """/tokenize and /detokenize (llama.cpp's routes) use the served tokenizer: the ids are the
    ones `hmst tokenizer encode` gives and a completion counts, and they decode back."""
    h = server.headers()
    text = "The license, naïve 東京"
    r = requests.post(server.url + "/tokenize", json={"content": text}, headers=h, timeout=30)
    assert r.status_code == 200
    ids = r.json()["tokens"]
    assert all(isinstance(i, int) for i in ids) and len(ids) > 3
    out = subprocess.run([CLI_BIN, "tokenizer", "encode", "--tokenizer", FIXTURE, text], capture_output=True, check=True, text=True).stdout
    assert [int(x) for x in out.split()] == ids
    usage = server.client().completions.create(model="micro", prompt=text, max_tokens=1, temperature=0).usage
    assert usage.prompt_tokens == len(ids)
    pieces = requests.post(server.url + "/tokenize", json={"content": text, "with_pieces": True}, headers=h, timeout=30).json()["tokens"]
    assert [p["id"] for p in pieces] == ids and "".join(p["piece"] for p in pieces).startswith("The license, na")
    back = requests.post(server.url + "/detokenize", json={"tokens": ids}, headers=h, timeout=30)
    assert back.status_code == 200 and back.json()["content"] == text
    for path, body in (("/detokenize", {"tokens": [-1]}), ("/detokenize", {"tokens": [10**9]}), ("/detokenize", {"tokens": "x"}),
                       ("/tokenize", {}), ("/tokenize", {"content": 5})):
        bad = requests.post(server.url + path, json=body, headers=h, timeout=30)
        assert bad.status_code == 400 and bad.json()["error"]["param"] in ("tokens", "content"), (path, body, bad.text)
    assert requests.post(server.url + "/tokenize", json={"content": "x"}, timeout=30).status_code == 401


def test_response_format_json_object(server):
    """response_format json_object: the text is one JSON object when it ends by itself
    (finish_reason stop), a prefix of one when max_tokens cuts it; other types are a 400."""
    import json as _json
    c = server.client()
    closed = 0
    for seed in range(6):
        r = c.chat.completions.create(model="micro", messages=[{"role": "user", "content": "Reply in JSON."}], max_tokens=48,
                                      seed=seed, temperature=1, response_format={"type": "json_object"})
        text, finish = r.choices[0].message.content, r.choices[0].finish_reason
        assert text.lstrip().startswith("{"), text
        if finish == "stop":
            assert isinstance(_json.loads(text), dict), text
            closed += 1
        else:
            assert finish == "length"
    assert closed > 0
    streamed = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="micro", messages=[{"role": "user", "content": "Reply in JSON."}], max_tokens=48, seed=0, temperature=1,
        response_format={"type": "json_object"}, stream=True) if ch.choices)
    first = c.chat.completions.create(model="micro", messages=[{"role": "user", "content": "Reply in JSON."}], max_tokens=48, seed=0,
                                      temperature=1, response_format={"type": "json_object"}).choices[0].message.content
    assert streamed == first
    for bad in ({"type": "json_schema"}, {"type": "json_schema", "json_schema": {"name": "x", "schema": {"uniqueItems": True}}},
                {"type": "yaml"}, {"kind": "text"}):
        with pytest.raises(openai.BadRequestError) as e:
            c.chat.completions.create(model="micro", messages=[{"role": "user", "content": "x"}], max_tokens=1, response_format=bad)
        assert e.value.body["param"] == "response_format"


def test_response_format_json_schema_and_grammar(server):
    """response_format json_schema (OpenAI's structured outputs): a text that ends by itself is
    JSON the schema accepts; llama.cpp's `grammar` field (GBNF) on both endpoints; errors say where."""
    import json as _json
    c = server.client()
    schema = {"type": "object", "additionalProperties": False, "required": ["answer", "confidence"],
              "properties": {"answer": {"enum": ["yes", "no"]}, "confidence": {"type": "integer"},
                             "why": {"type": "array", "items": {"type": "boolean"}, "maxItems": 2}}}
    fmt = {"type": "json_schema", "json_schema": {"name": "verdict", "schema": schema, "strict": True}}
    closed = 0
    for seed in range(6):
        r = c.chat.completions.create(model="micro", messages=[{"role": "user", "content": "Verdict?"}], max_tokens=64,
                                      seed=seed, temperature=1, response_format=fmt)
        text, finish = r.choices[0].message.content, r.choices[0].finish_reason
        if finish == "stop":
            v = _json.loads(text)
            assert v["answer"] in ("yes", "no") and isinstance(v["confidence"], int), text
            assert set(v) <= {"answer", "confidence", "why"} and len(v.get("why", [])) <= 2, text
            closed += 1
        else:
            assert finish == "length"
    assert closed > 0
    # streaming gives the same text
    streamed = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="micro", messages=[{"role": "user", "content": "Verdict?"}], max_tokens=64, seed=1, temperature=1,
        response_format=fmt, stream=True) if ch.choices)
    assert streamed == c.chat.completions.create(model="micro", messages=[{"role": "user", "content": "Verdict?"}], max_tokens=64,
                                                 seed=1, temperature=1, response_format=fmt).choices[0].message.content
    # llama.cpp's json_object with a schema is the same as json_schema
    same = c.chat.completions.create(model="micro", messages=[{"role": "user", "content": "Verdict?"}], max_tokens=64, seed=1,
                                     temperature=1, response_format={"type": "json_object", "schema": schema}).choices[0].message.content
    assert same == streamed
    # llama.cpp's grammar field, on /v1/completions: ends by itself after at most 3 digits
    for seed in range(3):
        r = c.completions.create(model="micro", prompt="Count:", max_tokens=16, seed=seed, temperature=1,
                                 extra_body={"grammar": 'root ::= ("yes" | "no") " " [0-9]{1,3}'})
        word, _, digits = r.choices[0].text.partition(" ")
        assert r.choices[0].finish_reason == "stop" and word in ("yes", "no") and digits.isdigit() and len(digits) <= 3
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model="micro", prompt="x", max_tokens=1, extra_body={"grammar": 'root ::= "a" b'})
    assert e.value.body["param"] == "grammar" and "line 1, column 14" in e.value.body["message"]
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model="micro", prompt="x", max_tokens=1,
                             extra_body={"grammar": 'root ::= "a"', "response_format": {"type": "json_object"}})
    with pytest.raises(openai.BadRequestError) as e:   # a schema and a grammar: which one would win is not guessed
        c.chat.completions.create(model="micro", messages=[{"role": "user", "content": "x"}], max_tokens=1, response_format=fmt,
                                  extra_body={"grammar": 'root ::= "a"'})
    assert e.value.body["param"] == "grammar"
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model="micro", prompt="x", max_tokens=1, extra_body={"json_schema": {"type": "strin"}})
    assert e.value.body["param"] == "json_schema" and "unknown type 'strin'" in e.value.body["message"]


def test_completion_token_prompt_and_usage(server):
    c = server.client()
    r = c.completions.create(model="micro", prompt=[5, 6, 7, 8], max_tokens=3, temperature=0)
    assert r.usage.prompt_tokens == 4
    assert r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length"
    # two prompts x n=2: four choices, prompt tokens counted once per prompt
    r = c.completions.create(model="micro", prompt=[[5, 6], [7, 8, 9]], max_tokens=2, n=2, temperature=0.8, seed=3)
    assert [ch.index for ch in r.choices] == [0, 1, 2, 3]
    assert r.usage.prompt_tokens == 5 and r.usage.completion_tokens == 8


def test_seeded_sampling_is_reproducible(server):
    c = server.client()
    kw = dict(model="micro", prompt="Apache License", max_tokens=10, temperature=1.0, top_p=0.9,
              extra_body={"top_k": 40, "min_p": 0.01})
    a = c.completions.create(seed=42, **kw).choices[0].text
    b = c.completions.create(seed=42, **kw).choices[0].text
    assert a == b
    others = {c.completions.create(seed=s, **kw).choices[0].text for s in range(1, 6)}
    assert len(others | {a}) > 1, "different seeds should not all give the same text"


def test_stop_string_truncates(server):
    c = server.client()
    full = c.completions.create(model="micro", prompt="GNU General", max_tokens=16, temperature=0).choices[0].text
    assert len(full) >= 4
    stop = full[2:4]
    cut = c.completions.create(model="micro", prompt="GNU General", max_tokens=16, temperature=0, stop=[stop])
    assert cut.choices[0].text == full[:full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_logprobs(server):
    c = server.client()
    r = c.chat.completions.create(model="micro", messages=[{"role": "user", "content": "Hello"}], max_tokens=4,
                                  temperature=0, logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for t in content:
        assert t.logprob <= 0 and len(t.top_logprobs) == 3
        # greedy: the sampled token is the most likely one
        assert t.top_logprobs[0].token == t.token and math.isclose(t.top_logprobs[0].logprob, t.logprob, rel_tol=1e-6)
        assert t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob >= t.top_logprobs[2].logprob
    # the tokens' bytes are the text's bytes (tokens may split characters, so join bytes, not strings)
    joined = b"".join(bytes(t.bytes) for t in content).decode("utf-8", "replace")
    assert joined == r.choices[0].message.content
    cr = c.completions.create(model="micro", prompt="The", max_tokens=3, temperature=0, logprobs=2)
    lp = cr.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 3
    assert all(len(d) <= 2 for d in lp.top_logprobs) and lp.text_offset[0] == 0


def test_chat_and_streaming_agree(server):
    c = server.client()
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is a license?"}]
    full = c.chat.completions.create(model="micro", messages=msgs, max_tokens=20, temperature=0)
    assert full.object == "chat.completion" and full.choices[0].message.role == "assistant"
    parts, finish, usage = [], None, None
    for chunk in c.chat.completions.create(model="micro", messages=msgs, max_tokens=20, temperature=0, stream=True):
        assert chunk.object == "chat.completion.chunk"
        for ch in chunk.choices:
            if ch.delta.content:
                parts.append(ch.delta.content)
            finish = ch.finish_reason or finish
        usage = chunk.usage or usage
    assert "".join(parts) == full.choices[0].message.content
    assert finish == full.choices[0].finish_reason
    assert usage.completion_tokens == full.usage.completion_tokens and usage.prompt_tokens == full.usage.prompt_tokens


def test_completion_streaming_with_usage_chunk(server):
    c = server.client()
    full = c.completions.create(model="micro", prompt="Copyright", max_tokens=15, temperature=0).choices[0].text
    chunks = list(c.completions.create(model="micro", prompt="Copyright", max_tokens=15, temperature=0, stream=True,
                                       stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == full
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 15


def test_embeddings(server):
    c = server.client()
    # the client asks for base64 by default and decodes it; ask for floats too
    r = c.embeddings.create(model="micro", input=["free software", "free software", "warranty"])
    v = np.array([d.embedding for d in r.data], dtype=np.float64)
    assert v.shape == (3, 256)
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert np.array_equal(v[0], v[1]) and not np.allclose(v[0], v[2])
    f = c.embeddings.create(model="micro", input="warranty", encoding_format="float")
    assert np.allclose(f.data[0].embedding, v[2], atol=1e-7)
    assert r.usage.prompt_tokens > 0 and r.usage.total_tokens == r.usage.prompt_tokens
    # input is literal text: "<|endoftext|>" is its characters (several tokens), not the token
    e = c.embeddings.create(model="micro", input="<|endoftext|>", encoding_format="float")
    assert e.usage.prompt_tokens > 3


def test_errors_have_openai_shape(server):
    c = server.client()
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model="micro", prompt="x", max_tokens=5000)
    assert e.value.body["code"] == "context_length_exceeded" and e.value.body["param"] == "max_tokens"
    with pytest.raises(openai.BadRequestError) as e:
        c.chat.completions.create(model="micro", messages=[], max_tokens=2)
    assert e.value.body["param"] == "messages"
    with pytest.raises(openai.BadRequestError) as e:
        c.completions.create(model="micro", prompt="x", temperature=3)
    assert e.value.body["param"] == "temperature" and e.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.AuthenticationError) as e:
        openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0).models.list()
    assert e.value.body["code"] == "invalid_api_key"
    # raw HTTP: unknown route, bad JSON, oversized body, an ask without its query; /health needs no key
    h = server.headers()
    r = requests.get(server.url + "/v1/nothing", headers=h)
    assert r.status_code == 404 and set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = requests.post(server.url + "/v1/completions", headers=h, data=b"{not json")
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = requests.post(server.url + "/v1/completions", headers=h, data=b"x" * (2 << 20))
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    r = requests.post(server.url + "/v1/hmst/ask", headers=h, json={"question": "?", "owner": "a"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "query"
    assert requests.get(server.url + "/health").json()["status"] == "ok"
    assert requests.get(server.url + "/metrics").status_code == 401
    # a known path with another method: 405 naming the methods it takes
    for method, path, allow in [("PUT", "/v1/completions", "POST, OPTIONS"), ("GET", "/v1/chat/completions", "POST, OPTIONS"),
                                ("HEAD", "/v1/completions", "POST, OPTIONS"),
                                ("PATCH", "/v1/hmst/memory/semantic/entries", "POST, GET, HEAD, DELETE, OPTIONS"),
                                ("POST", "/v1/models", "GET, HEAD, OPTIONS")]:
        r = requests.request(method, server.url + path, headers=h, json={})
        assert r.status_code == 405, (method, path, r.status_code, r.text)
        assert r.headers["Allow"] == allow, (method, path, r.headers)
        assert method == "HEAD" or r.json()["error"]["code"] == "method_not_allowed", r.text
    # OPTIONS names the methods; HEAD of a GET route is its headers without a body
    r = requests.options(server.url + "/v1/hmst/memory/episodic/entries/7", headers=h)
    assert r.status_code == 204 and r.headers["Allow"] == "DELETE, OPTIONS", (r.status_code, r.headers)
    get = requests.get(server.url + "/v1/models", headers=h)
    r = requests.head(server.url + "/v1/models", headers=h)
    assert r.status_code == 200 and r.content == b"", (r.status_code, r.content)
    assert r.headers["Content-Type"] == get.headers["Content-Type"]
    assert int(r.headers["Content-Length"]) == len(get.content)
    # a repeated key: one reader takes the first, another the last; refused, naming it
    r = requests.post(server.url + "/v1/completions", headers=dict(h, **{"Content-Type": "application/json"}),
                      data=b'{"prompt": "x", "max_tokens": 1, "max_tokens": 4000}')
    assert r.status_code == 400 and 'duplicate key \\"max_tokens\\"' in r.text, r.text


def test_seeds_use_the_whole_64_bit_range(server):
    """Seeds beyond 2^53 are exact (not rounded to a neighbour that another seed also rounds to)."""
    def text(seed):
        r = requests.post(server.url + "/v1/completions", headers=server.headers(), timeout=60,
                          json={"prompt": "Apache License", "max_tokens": 8, "temperature": 1.0, "seed": seed})
        assert r.status_code == 200, r.text
        return r.json()["choices"][0]["text"]
    big = 2**63 - 1
    assert text(big) == text(big)
    assert len({text(big - i) for i in range(4)}) > 1, "2^63-1 ... 2^63-4 are four seeds"
    assert text(-1) == text(-1)
    for bad in [2**63, 1.5, "7"]:
        r = requests.post(server.url + "/v1/completions", headers=server.headers(), json={"prompt": "x", "seed": bad})
        assert r.status_code == 400 and r.json()["error"]["param"] == "seed", r.text


def test_metrics(server):
    c = server.client()
    c.completions.create(model="micro", prompt="metrics", max_tokens=4, temperature=0)
    text = requests.get(server.url + "/metrics", headers=server.headers()).text
    vals = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            vals[k] = float(v)
    assert vals['hmst_requests_total{route="/v1/completions",method="POST",status="200"}'] >= 1
    assert vals["hmst_completion_tokens_total"] >= 4 and vals["hmst_slots"] == 2
    assert vals["hmst_time_to_first_token_seconds_count"] >= 1 and "hmst_queue_depth" in vals
    assert vals["hmst_decode_tokens_per_second"] > 0

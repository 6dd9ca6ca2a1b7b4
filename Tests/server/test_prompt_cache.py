"""Prompt caching: a request keeps the longest prefix of its prompt that a slot's context already
holds (llama.cpp's cache_prompt, on by default), reports it as OpenAI's
usage.prompt_tokens_details.cached_tokens, and goes to the slot that holds the most of it."""
import requests


def post(server, path, body):
    r = requests.post(server.url + path, headers=server.headers(), timeout=120, json=body)
    assert r.status_code == 200, r.text
    return r.json()


def chat(server, messages, **kw):
    body = {"messages": messages, "max_tokens": 6, "temperature": 0}
    body.update(kw)
    j = post(server, "/v1/chat/completions", body)
    return j["choices"][0]["message"]["content"], j["usage"]


def test_next_turn_reuses_the_conversation(start_server):
    s = start_server(slots=2)
    a = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me about the sea and the ships."}]
    reply, u1 = chat(s, a)
    assert u1["prompt_tokens_details"]["cached_tokens"] == 0
    turn2 = a + [{"role": "assistant", "content": reply}, {"role": "user", "content": "And the harbour?"}]
    reply2, u2 = chat(s, turn2)
    cached = u2["prompt_tokens_details"]["cached_tokens"]
    assert u1["prompt_tokens"] <= cached < u2["prompt_tokens"]
    # without the cache: nothing reused, and greedy decoding gives the same reply
    reply2_fresh, u3 = chat(s, turn2, cache_prompt=False)
    assert u3["prompt_tokens_details"]["cached_tokens"] == 0 and u3["prompt_tokens"] == u2["prompt_tokens"]
    assert reply2_fresh == reply2
    # the same request again: all of the prompt but its last token
    _, u4 = chat(s, turn2)
    assert u4["prompt_tokens_details"]["cached_tokens"] == u2["prompt_tokens"] - 1

    metrics = requests.get(s.url + "/metrics", headers=s.headers(), timeout=30).text
    line = [l for l in metrics.splitlines() if l.startswith("hmst_prompt_tokens_cached_total ")]
    assert line and int(line[0].split()[1]) == cached + u4["prompt_tokens_details"]["cached_tokens"]


def test_each_conversation_finds_its_slot(start_server):
    """Two conversations interleaved on two slots: each next turn goes to the slot holding it."""
    s = start_server(slots=2)
    x = [{"role": "user", "content": "The first conversation is about apples and pears."}]
    y = [{"role": "user", "content": "Another one, about rivers, lakes and mountains."}]
    rx, ux = chat(s, x)
    ry, uy = chat(s, y)
    _, ux2 = chat(s, x + [{"role": "assistant", "content": rx}, {"role": "user", "content": "More."}])
    _, uy2 = chat(s, y + [{"role": "assistant", "content": ry}, {"role": "user", "content": "More."}])
    assert ux2["prompt_tokens_details"]["cached_tokens"] >= ux["prompt_tokens"]
    assert uy2["prompt_tokens_details"]["cached_tokens"] >= uy["prompt_tokens"]


def test_a_shared_system_prompt_is_copied_to_another_slot(start_server):
    """A new conversation that shares a long system prompt with another slot's conversation, but
    less than half of its own prompt, goes to the least recently used slot; the shared prefix is
    copied there (no recomputation), and the first conversation keeps its cache."""
    s = start_server(slots=2)
    system = {"role": "system", "content": "You are a careful assistant for a shipping company. " * 6}
    a = [system, {"role": "user", "content": "Where is my parcel?"}]
    ra, ua = chat(s, a)
    long_question = "Please list every port on the route from Rotterdam to Singapore, with the days between them. " * 8
    b = [system, {"role": "user", "content": long_question}]
    rb, ub = chat(s, b)
    shared = ub["prompt_tokens_details"]["cached_tokens"]
    assert 0.25 * ua["prompt_tokens"] < shared < ua["prompt_tokens"], (ua, ub)
    assert 2 * shared < ub["prompt_tokens"]    # less than half: not a's slot, so a's cache stays
    _, ua2 = chat(s, a + [{"role": "assistant", "content": ra}, {"role": "user", "content": "Thanks."}])
    assert ua2["prompt_tokens_details"]["cached_tokens"] >= ua["prompt_tokens"]
    # the copied rows give what computing them gives: the same greedy reply without the cache
    rb_fresh, _ = chat(s, b, cache_prompt=False)
    assert rb == rb_fresh


def test_completions_streaming_n_and_echo(start_server):
    s = start_server(slots=1)
    prompt = "Once upon a time there was a quiet village by the sea"
    first = post(s, "/v1/completions", {"prompt": prompt, "max_tokens": 3, "temperature": 0, "n": 2})
    n_prompt = first["usage"]["prompt_tokens"]
    # a prompt counts once, however many choices reuse it
    assert first["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    again = post(s, "/v1/completions", {"prompt": prompt, "max_tokens": 3, "temperature": 0, "n": 2})
    assert again["usage"]["prompt_tokens_details"]["cached_tokens"] == n_prompt - 1
    assert [c["text"] for c in again["choices"]] == [c["text"] for c in first["choices"]]
    # the prompt's own log-probabilities need its logits: nothing is reused
    echo = post(s, "/v1/completions", {"prompt": prompt, "max_tokens": 1, "temperature": 0, "echo": True, "logprobs": 1})
    assert echo["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    # streamed, with usage at the end
    r = requests.post(s.url + "/v1/completions", headers=s.headers(), timeout=120, stream=True,
                      json={"prompt": prompt + " lived", "max_tokens": 2, "temperature": 0, "stream": True,
                            "stream_options": {"include_usage": True}})
    events = [l for l in r.iter_lines(decode_unicode=True) if l.startswith("data: {")]
    import json
    usage = json.loads(events[-1][6:])["usage"]
    assert usage["prompt_tokens_details"]["cached_tokens"] >= n_prompt - 1


def test_cache_prompt_must_be_a_boolean(server):
    r = requests.post(server.url + "/v1/completions", headers=server.headers(), timeout=60,
                      json={"prompt": "hi", "max_tokens": 1, "cache_prompt": "yes"})
    assert r.status_code == 400 and "cache_prompt" in r.text

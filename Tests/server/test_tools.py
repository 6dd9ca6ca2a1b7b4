"""Tool calling on /v1/chat/completions: tools reach the model's chat template (or, for templates
without a call syntax, hmst's generic format), tool_choice required / named holds the reply to a
call by a grammar (so even the untrained fixture writes one), replies are parsed into
message.tool_calls, streamed as delta.tool_calls, and a conversation with calls and results
renders. Errors are 400s naming the parameter."""
import json
import os

import requests

from conftest import FIXTURE

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                      "parameters": {"type": "object", "properties": {
                                          "city": {"type": "string", "maxLength": 12},
                                          "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                                          "required": ["city", "days"]}}},
    {"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
]

# a Hermes / Qwen style template: tools listed in a system turn, calls written in <tool_call> tags
HERMES = (
    "{% if tools %}<|endoftext|>system\n{% for t in tools %}{{ t | tojson }}\n{% endfor %}"
    "Call a tool: <tool_call>{\"name\": ..., \"arguments\": ...}</tool_call>\n{% endif %}"
    "{% for m in messages %}<|endoftext|>{{ m.role }}\n"
    "{% if m.tool_calls %}{% for c in m.tool_calls %}<tool_call>\n"
    "{{ {\"name\": c.function.name, \"arguments\": c.function.arguments} | tojson }}\n</tool_call>{% endfor %}"
    "{% else %}{{ m.content }}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|endoftext|>assistant\n{% endif %}")


def hermes_checkpoint(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for name in os.listdir(FIXTURE):
        os.symlink(os.path.join(os.path.abspath(FIXTURE), name), ckpt / name)
    (ckpt / "chat_template.jinja").write_text(HERMES)
    return str(ckpt)


def post(server, body):
    return requests.post(server.url + "/v1/chat/completions", headers=server.headers(), timeout=120, json=body)


def check_call(call, names=("get_weather", "now")):
    assert call["type"] == "function" and call["id"].startswith("call_") and len(call["id"]) == 29
    assert call["function"]["name"] in names
    args = json.loads(call["function"]["arguments"])
    if call["function"]["name"] == "get_weather":
        assert set(args) == {"city", "days"} and isinstance(args["city"], str) and len(args["city"]) <= 12
        assert isinstance(args["days"], int) and 1 <= args["days"] <= 7
    else:
        assert args == {}
    return args


def joined_calls(pieces):
    """delta.tool_calls pieces joined as OpenAI's clients join them."""
    calls = []
    for p in pieces:
        if "id" in p:
            assert p["index"] == len(calls) and p["type"] == "function" and p["function"]["arguments"] == ""
            calls.append({"id": p["id"], "type": "function", "function": {"name": p["function"]["name"], "arguments": ""}})
        else:
            assert p["index"] == len(calls) - 1 and "name" not in p["function"]
            calls[-1]["function"]["arguments"] += p["function"]["arguments"]
    return calls


def test_required_call_in_the_generic_format(server):
    """The fixture's built-in patterns have no call syntax: the generic JSON format."""
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    r = post(server, {"messages": messages, "tools": TOOLS, "tool_choice": "required", "max_tokens": 120,
                      "temperature": 1, "seed": 3})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    if choice["finish_reason"] == "length":    # the untrained model may ramble inside a string
        return
    assert choice["finish_reason"] == "tool_calls", choice
    assert choice["message"]["content"] is None
    for call in choice["message"]["tool_calls"]:
        check_call(call)
    # auto: either calls or a {"response": ...} answer, never raw JSON as content
    r = post(server, {"messages": messages, "tools": TOOLS, "max_tokens": 80, "temperature": 0})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    if choice["finish_reason"] != "length":
        assert choice["finish_reason"] in ("stop", "tool_calls")
        assert not (choice["message"]["content"] or "").lstrip().startswith("{\"")


def test_named_call_with_a_hermes_template(start_server, tmp_path):
    s = start_server(checkpoint=hermes_checkpoint(tmp_path))
    messages = [{"role": "user", "content": "Weather in Oslo for three days?"}]
    body = {"messages": messages, "tools": TOOLS, "max_tokens": 80, "temperature": 0,
            "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}
    r = post(s, body)
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] in ("tool_calls", "length"), choice
    if choice["finish_reason"] == "tool_calls":
        [call] = choice["message"]["tool_calls"]
        assert call["function"]["name"] == "get_weather"
        args = check_call(call)
        # the result goes back; the template gets the call's arguments as an object
        follow = messages + [{"role": "assistant", "content": None, "tool_calls": [call]},
                             {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]
        r2 = post(s, {"messages": follow, "tools": TOOLS, "tool_choice": "none", "max_tokens": 4})
        assert r2.status_code == 200, r2.text
        assert r2.json()["choices"][0]["finish_reason"] in ("stop", "length")
        tok = requests.post(s.url + "/tokenize", headers=s.headers(), timeout=30,
                            json={"content": json.dumps({"name": "get_weather", "arguments": args})}).json()["tokens"]
        assert r2.json()["usage"]["prompt_tokens"] > len(tok)

    # streamed: content never shows the call's markup; the call comes as delta.tool_calls while it
    # is written: its id and name first, then its arguments in pieces that join into JSON
    r = requests.post(s.url + "/v1/chat/completions", headers=s.headers(), timeout=120, stream=True,
                      json=dict(body, stream=True, tool_choice="required", max_tokens=200))
    chunks = [json.loads(l[6:]) for l in r.iter_lines(decode_unicode=True) if l.startswith("data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    pieces = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finish in (["tool_calls"], ["length"])
    calls = joined_calls(pieces)
    if finish == ["tool_calls"]:
        assert "<tool_call>" not in text
        assert calls and len(pieces) > 2 * len(calls), pieces    # required with parallel calls: one or more
        for call in calls:
            check_call(call)


def test_auto_with_a_hermes_template(start_server, tmp_path):
    """tool_choice auto (the default) with a call syntax: the reply is free until it starts a call
    (the untrained fixture rarely does: then its text is the content), any call it makes parses
    and follows the schema; a response_format then holds the whole reply instead."""
    s = start_server(checkpoint=hermes_checkpoint(tmp_path))
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    for seed in range(3):
        r = post(s, {"messages": messages, "tools": TOOLS, "max_tokens": 40, "temperature": 1, "seed": seed})
        assert r.status_code == 200, r.text
        choice = r.json()["choices"][0]
        assert choice["finish_reason"] in ("stop", "length", "tool_calls")
        for call in choice["message"].get("tool_calls") or []:
            check_call(call)
    r = post(s, {"messages": messages, "tools": TOOLS, "max_tokens": 40, "temperature": 0,
                 "response_format": {"type": "json_object"}})
    assert r.status_code == 200, r.text
    choice = r.json()["choices"][0]
    if choice["finish_reason"] == "stop":
        assert isinstance(json.loads(choice["message"]["content"]), dict)
    r = post(s, {"messages": messages, "tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}})
    assert r.status_code == 400 and "tool_choice" in r.text


def test_openai_client_reads_the_calls(start_server, tmp_path):
    import openai
    s = start_server(checkpoint=hermes_checkpoint(tmp_path))
    r = s.client().chat.completions.create(model="m", messages=[{"role": "user", "content": "time?"}], tools=TOOLS,
                                           tool_choice={"type": "function", "function": {"name": "now"}}, max_tokens=40,
                                           temperature=0)
    c = r.choices[0]
    assert c.finish_reason in ("tool_calls", "length")
    if c.finish_reason == "tool_calls":
        assert c.message.tool_calls[0].function.name == "now" and json.loads(c.message.tool_calls[0].function.arguments) == {}
    del openai


def test_tool_errors(server):
    msgs = [{"role": "user", "content": "hi"}]
    cases = [
        ({"tools": [{"type": "function"}]}, "tools"),
        ({"tools": [{"type": "function", "function": {"name": "a b"}}]}, "tools"),
        ({"tools": [{"type": "function", "function": {"name": "s", "parameters": {"type": "string"}}}]}, "tools"),
        ({"tools": TOOLS, "tool_choice": "always"}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"tools": TOOLS, "tool_choice": "required", "response_format": {"type": "json_object"}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"tools": TOOLS, "parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ]
    for extra, param in cases:
        r = post(server, dict({"messages": msgs, "max_tokens": 2}, **extra))
        assert r.status_code == 400, (extra, r.text)
        assert r.json()["error"]["param"] == param, (extra, r.text)
    r = requests.post(server.url + "/v1/completions", headers=server.headers(), timeout=60,
                      json={"prompt": "hi", "tools": TOOLS})
    assert r.status_code == 400 and r.json()["error"]["code"] == "unsupported_parameter"
    # tool_choice none: tools ignored, a plain reply
    r = post(server, {"messages": msgs, "tools": TOOLS, "tool_choice": "none", "max_tokens": 2})
    assert r.status_code == 200 and "tool_calls" not in r.json()["choices"][0]["message"]

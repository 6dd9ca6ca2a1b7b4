"""Chat templates: the default one, and a checkpoint's own chat_template.json, render messages
into exactly the prompt that a plain completion of the same text sees."""
import json
import os
import subprocess

import requests

from conftest import CLI_BIN, FIXTURE


def n_tokens(text):
    out = subprocess.run([CLI_BIN, "tokenizer", "encode", "--tokenizer", FIXTURE], input=text, capture_output=True,
                         text=True, check=True).stdout
    return len(out.split())


def chat_vs_completion(server, rendered, messages):
    h = server.headers()
    chat = requests.post(server.url + "/v1/chat/completions", headers=h, timeout=60,
                         json={"messages": messages, "max_tokens": 10, "temperature": 0}).json()
    plain = requests.post(server.url + "/v1/completions", headers=h, timeout=60,
                          json={"prompt": rendered, "max_tokens": 10, "temperature": 0}).json()
    assert chat["usage"]["prompt_tokens"] == n_tokens(rendered) == plain["usage"]["prompt_tokens"]
    return chat["choices"][0]["message"]["content"], plain["choices"][0]["text"]


def test_default_template(server):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": [{"type": "text", "text": "Why?"}]}]
    chat, plain = chat_vs_completion(server, "System: Be brief.\nUser: Hi\nAssistant: Hello.\nUser: Why?\nAssistant:", msgs)
    # the chat adds the template's stop string "\nUser:"; the plain completion does not
    assert plain.startswith(chat) and "\nUser:" not in chat


def test_checkpoint_template(start_server, tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for name in os.listdir(FIXTURE):
        os.symlink(os.path.join(FIXTURE, name), ckpt / name)
    (ckpt / "chat_template.json").write_text(json.dumps(
        {"system": "[{content}]", "user": "Q: {content}\n", "assistant": "A: {content}\n", "generation_prompt": "A:", "stop": []}))
    s = start_server(memory=None, slots=1, checkpoint=str(ckpt))
    chat, plain = chat_vs_completion(s, "[rules]Q: hi\nA:", [{"role": "system", "content": "rules"}, {"role": "user", "content": "hi"}])
    assert chat == plain    # no stop strings in this template: the same greedy text


def test_bad_template_is_refused_at_start(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for name in os.listdir(FIXTURE):
        os.symlink(os.path.join(FIXTURE, name), ckpt / name)
    (ckpt / "chat_template.json").write_text(json.dumps({"user": "no placeholder"}))
    from conftest import SERVER_BIN
    r = subprocess.run([SERVER_BIN, str(ckpt), "--port", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "{content}" in r.stderr


def test_message_content_cannot_hold_special_tokens(server, start_server, tmp_path):
    """A user's "<|endoftext|>" is text (several tokens), not the end-of-text token: a chat
    prompt counts more tokens than the same text as a completion prompt, which reads the token
    (as OpenAI's legacy completions and llama.cpp do). A template's own special token still is one."""
    h = server.headers()
    def usage(path, body):
        r = requests.post(server.url + path, headers=h, timeout=60, json=dict(body, max_tokens=1, temperature=0))
        assert r.status_code == 200, r.text
        return r.json()["usage"]["prompt_tokens"]
    eot = "<|endoftext|>"
    rendered = f"User: a{eot}b\nAssistant:"
    chat = usage("/v1/chat/completions", {"messages": [{"role": "user", "content": f"a{eot}b"}]})
    plain = usage("/v1/completions", {"prompt": rendered})
    assert plain == n_tokens(rendered)       # the CLI's encode reads the special token too
    assert chat > plain + 2, (chat, plain)
    # the same text without the special: both agree exactly
    assert usage("/v1/chat/completions", {"messages": [{"role": "user", "content": "a b"}]}) == \
        usage("/v1/completions", {"prompt": "User: a b\nAssistant:"})
    # a template may use special tokens: there they are tokens
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for name in os.listdir(FIXTURE):
        os.symlink(os.path.join(FIXTURE, name), ckpt / name)
    (ckpt / "chat_template.json").write_text(json.dumps(
        {"user": eot + "U: {content}\n", "generation_prompt": "A:", "stop": []}))
    s = start_server(memory=None, slots=1, checkpoint=str(ckpt))
    chat, plain = chat_vs_completion(s, f"{eot}U: hi\nA:", [{"role": "user", "content": "hi"}])
    assert chat == plain


def test_jinja_template(start_server, tmp_path):
    """A checkpoint's chat_template.jinja (as transformers saves it) renders the chat: messages
    with tool_calls reach it, chat_template_kwargs are its variables, its raise_exception is a
    400 naming the reason; one that does not parse stops the server at start, naming the line."""
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for name in os.listdir(FIXTURE):
        os.symlink(os.path.join(FIXTURE, name), ckpt / name)
    (ckpt / "chat_template.jinja").write_text(
        "{%- if messages[0].role == 'assistant' %}{{ raise_exception('Conversations start with the user') }}{% endif %}\n"
        "{%- for m in messages %}\n"
        "<{{ m.role }}>{{ m.content if m.content is string else '' }}"
        "{% for c in m.tool_calls | default([]) %}call:{{ c.function.name }}({{ c.function.arguments | tojson }}){% endfor %}\n"
        "{%- endfor %}\n"
        "{%- if enable_thinking is defined and not enable_thinking %}<nothink>{% endif %}\n"
        "{%- if add_generation_prompt %}<assistant>{% endif %}\n")
    s = start_server(memory=None, slots=1, checkpoint=str(ckpt))
    msgs = [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get", "arguments": {"city": "Paris"}}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "21C"}]
    chat, plain = chat_vs_completion(s, '<user>weather?<assistant>call:get({"city": "Paris"})<tool>21C<assistant>', msgs)
    assert chat == plain
    h = s.headers()
    r = requests.post(s.url + "/v1/chat/completions", headers=h, timeout=60,
                      json={"messages": msgs[:1], "max_tokens": 1, "chat_template_kwargs": {"enable_thinking": False}})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == n_tokens("<user>weather?<nothink><assistant>")
    r = requests.post(s.url + "/v1/chat/completions", headers=h, timeout=60,
                      json={"messages": [{"role": "assistant", "content": "x"}], "max_tokens": 1})
    assert r.status_code == 400 and "Conversations start with the user" in r.json()["error"]["message"]
    r = requests.post(s.url + "/v1/chat/completions", headers=h, timeout=60,
                      json={"messages": msgs[:1], "chat_template_kwargs": [1]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "chat_template_kwargs"

    (ckpt / "chat_template.jinja").write_text("line one\n{% for m in messages %}\n{{ m.content }")
    from conftest import SERVER_BIN
    r = subprocess.run([SERVER_BIN, str(ckpt), "--port", "0"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "chat_template.jinja: chat template line 3" in r.stderr, r.stderr

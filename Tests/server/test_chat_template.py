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

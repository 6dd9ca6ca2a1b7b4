"""Model and Context bindings: numpy in and out, exceptions, context managers, golden logits."""
import json
import os
import struct

import numpy as np
import pytest

import hmst

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "..", "..", "Tests", "Golden", "model")


def read_golden(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"HMSTGOLD"
    _, ndim = struct.unpack("<II", data[8:16])
    shape = struct.unpack(f"<{ndim}I", data[16:16 + 4 * ndim])
    return np.frombuffer(data[16 + 4 * ndim:], dtype=np.float32).reshape(shape)


@pytest.fixture(scope="module")
def micro():
    with hmst.Model.random("micro", seed=3) as m:
        yield m


def test_hf_checkpoint_logits_match_transformers():
    path = os.path.join(GOLDEN, "tiny_untied")
    ref = json.load(open(os.path.join(path, "reference.json")))
    golden = read_golden(os.path.join(path, "logits.bin"))
    with hmst.Model(path) as model, model.context() as ctx:
        logits = ctx.forward(ref["tokens"])
    assert logits.dtype == np.float32 and logits.shape == golden.shape
    np.testing.assert_allclose(logits, golden, atol=1e-4)


def test_f16_weights_held_at_load_and_saved(tmp_path):
    """weights="f16" rounds the matrices to IEEE half at load; dtype="f16" saves every tensor so,
    and that checkpoint loads as f16 in place, with transformers' logits to f16's precision."""
    path = os.path.join(GOLDEN, "tiny_untied")
    ref = json.load(open(os.path.join(path, "reference.json")))
    golden = read_golden(os.path.join(path, "logits.bin"))
    with hmst.Model(path, weights="f16") as m:
        assert m.info["weights"] == "f16"
        with m.context() as ctx:
            np.testing.assert_allclose(ctx.forward(ref["tokens"]), golden, atol=2e-2)
        m.save(tmp_path / "h", dtype="float16")
    assert json.load(open(tmp_path / "h" / "config.json"))["torch_dtype"] == "float16"
    with hmst.Model(tmp_path / "h") as h, h.context() as ctx:
        assert h.info["weights"] == "f16"
        np.testing.assert_allclose(ctx.forward(ref["tokens"]), golden, atol=2e-2)


def test_info_and_shapes(micro):
    info = micro.info
    assert info["untrained"] is True
    assert info["shape"]["V"] == 4096 and micro.n_vocab == 4096
    assert 15e6 < info["n_params"] < 16e6
    assert micro.eos_token is None


def test_cached_decode_equals_full_forward(micro):
    toks = np.array([5, 9, 100, 7], dtype=np.int64)
    with micro.context(n_ctx=32) as a, micro.context(n_ctx=32) as b:
        full = a.forward(toks)
        for i, t in enumerate(toks):
            b.eval([t])
            np.testing.assert_allclose(b.logits(), full[i], atol=1e-4)
        assert b.n_past == 4


def test_route_trace(micro):
    with micro.context(trace_routes=True) as ctx:
        ctx.eval([1, 2, 3])
        experts, gates = ctx.route_trace()
    assert experts.shape == (3, 4, 2) and gates.shape == (3, 4, 2)
    assert ((experts >= 0) & (experts < 8)).all()
    np.testing.assert_allclose(gates.sum(-1), 1, atol=1e-5)


def test_errors_are_exceptions(micro, tmp_path):
    with pytest.raises(hmst.HMSTError) as e:
        hmst.Model(tmp_path / "missing")
    assert e.value.status_name == "NOT_FOUND"
    with pytest.raises(hmst.HMSTError):
        hmst.Model.random("gigantic")
    # a seed beyond uint64 or a float is refused (2**64 gave seed 0's weights, 2.7 seed 2's)
    with pytest.raises(hmst.HMSTError, match="seed"):
        hmst.Model.random("micro", seed=2**64)
    with pytest.raises(TypeError):
        hmst.Model.random("micro", seed=2.7)
    # a load progress callback's exception surfaces as itself (it read as CANCELLED)
    micro.save(tmp_path / "m")
    with pytest.raises(ZeroDivisionError):
        hmst.Model(tmp_path / "m", progress=lambda f: 1 / 0)
    with micro.context(n_ctx=8) as ctx:
        with pytest.raises(hmst.HMSTError) as e:
            ctx.eval([1, 5000])
        assert "5000" in e.value.message
        with pytest.raises(hmst.HMSTError):
            ctx.logits()
        with pytest.raises(hmst.HMSTError):
            ctx.eval(list(range(9)))
        with pytest.raises(TypeError):
            ctx.eval([1.5])
        with pytest.raises(hmst.HMSTError, match="tokens is empty"):
            ctx.eval([])
    with pytest.raises(TypeError, match="text must be str or bytes"):
        micro.embed(123)
    with pytest.raises(TypeError, match="dtype must be str or bytes"):
        micro.save(tmp_path / "x", dtype=None)
    with pytest.raises(TypeError, match="model must be an hmst.Model"):
        hmst.evaluate(None, tmp_path / "task.json")
        with pytest.raises(hmst.HMSTError) as e:
            ctx.generate("hello")
        assert e.value.status_name == "UNSUPPORTED"
    with pytest.raises(ValueError):
        hmst.Model(tmp_path, numa="everywhere")


def test_close_is_idempotent_and_guards_use(tmp_path):
    m = hmst.Model.random("micro", seed=1)
    m.save(tmp_path / "ckpt", dtype="bf16")
    m.close()
    m.close()
    with pytest.raises(hmst.HMSTError):
        m.info
    calls = []
    with hmst.Model(tmp_path / "ckpt", progress=lambda f: calls.append(f)) as m2:
        assert m2.info["weights"] == "bf16"
    assert calls and calls[-1] == pytest.approx(1.0)
    with pytest.raises(hmst.HMSTError) as e:
        hmst.Model(tmp_path / "ckpt", progress=lambda f: False)
    assert e.value.status_name == "CANCELLED"


FIXTURE_MODEL = os.path.join(os.path.dirname(__file__), "..", "..", "..", "build", "fixtures", "micro")


@pytest.mark.skipif(not os.path.exists(os.path.join(FIXTURE_MODEL, "tokenizer.json")), reason="run `make` fixtures first")
def test_frequency_and_presence_penalties():
    """OpenAI's penalties over the last repeat_last_n tokens, prompt included: a huge presence
    penalty never repeats a token of the window, a huge negative frequency penalty only repeats."""
    prompt = "The license grants"
    with hmst.Model(FIXTURE_MODEL) as m, m.context() as ctx:
        seen = m.tokenize(prompt)
        def run(**kw):
            ctx.reset()
            out = []
            ctx.generate(prompt, max_tokens=24, temperature=0, ignore_eos=True, repeat_last_n=4096,
                         on_token=lambda t, _p: out.append(t), **kw)
            return out
        fresh = run(presence_penalty=1e4)
        assert len(fresh) == 24 and len(set(fresh)) == 24 and not set(fresh) & set(seen)
        same = run(frequency_penalty=-1e4)
        assert len(same) == 24
        for i, t in enumerate(same):
            assert t in set(seen) | set(same[:i])
        assert run() == run(frequency_penalty=0.0, presence_penalty=0.0)
        with pytest.raises(hmst.HMSTError, match="presence_penalty inf must be finite"):
            run(presence_penalty=float("inf"))


@pytest.mark.skipif(not os.path.exists(os.path.join(FIXTURE_MODEL, "tokenizer.json")), reason="run `make` fixtures first")
def test_logit_bias():
    """logit_bias forces a token (+100), bans one (-inf), and names an id beyond the vocabulary."""
    with hmst.Model(FIXTURE_MODEL) as m, m.context() as ctx:
        def run(**kw):
            ctx.reset()
            out = []
            ctx.generate("The license", max_tokens=8, temperature=0, ignore_eos=True, on_token=lambda t, _p: out.append(t), **kw)
            return out
        plain = run()
        assert run(logit_bias={7: 100.0}) == [7] * 8
        banned = run(logit_bias={plain[0]: float("-inf")})
        assert banned[0] != plain[0] and plain[0] not in banned
        with pytest.raises(hmst.HMSTError, match="logit_bias names token 1000000"):
            run(logit_bias={1000000: 1.0})
        with pytest.raises(hmst.HMSTError, match="logit_bias of token 3 is nan"):
            run(logit_bias={3: float("nan")})


@pytest.mark.skipif(not os.path.exists(os.path.join(FIXTURE_MODEL, "tokenizer.json")), reason="run `make` fixtures first")
def test_grammar_and_json_schema():
    """grammar= (GBNF) and json_schema= (dict or text) give sentences of the grammar; errors name where."""
    with hmst.Model(FIXTURE_MODEL) as m, m.context() as ctx:
        for seed in range(3):
            ctx.reset()
            g = ctx.generate("Answer:", max_tokens=16, temperature=1.0, top_k=0, top_p=1.0, seed=seed,
                             grammar='root ::= ("yes" | "no") " " [0-9]{1,3}')
            assert g.stats["stop_reason"] == "eos"
            word, _, digits = g.text.partition(" ")
            assert word in ("yes", "no") and 1 <= len(digits) <= 3 and digits.isdigit(), g.text
        schema = {"type": "object", "properties": {"ok": {"type": "boolean"}, "n": {"enum": [1, 2]}},
                  "required": ["ok", "n"]}
        closed = 0
        for seed in range(4):
            ctx.reset()
            g = ctx.generate("JSON:", max_tokens=80, temperature=1.0, top_k=0, top_p=1.0, seed=seed, json_schema=schema)
            if g.stats["stop_reason"] == "eos":
                v = json.loads(g.text)
                assert isinstance(v["ok"], bool) and v["n"] in (1, 2) and set(v) == {"ok", "n"}, g.text
                closed += 1
        assert closed > 0
        # the same schema as JSON text; a schema with an unsupported keyword; bad GBNF
        ctx.reset()
        ctx.generate("JSON:", max_tokens=4, json_schema=json.dumps(schema))
        with pytest.raises(hmst.HMSTError, match="'uniqueItems' is not supported"):
            ctx.generate("x", json_schema={"type": "array", "uniqueItems": True})
        with pytest.raises(hmst.HMSTError, match="line 2, column 11: rule 'b' is used but not defined"):
            ctx.generate("x", grammar='root ::= a\na ::= "x" b')
        with pytest.raises(hmst.HMSTError, match="both"):
            ctx.generate("x", grammar='root ::= "a"', json_schema=True)
        with pytest.raises(TypeError):
            ctx.generate("x", json_schema=3)
    text = hmst.json_schema_to_grammar(schema)
    assert "root ::=" in text
    hmst.check_grammar(text)
    with pytest.raises(hmst.HMSTError, match="left-recursive"):
        hmst.check_grammar('root ::= root "a" | "b"')


def test_json_object():
    """json_object=True: one JSON object when generation ends by itself, a prefix of one when cut."""
    with hmst.Model(FIXTURE_MODEL) as m, m.context() as ctx:
        closed = 0
        for seed in range(6):
            ctx.reset()
            g = ctx.generate("Reply in JSON:", max_tokens=48, temperature=1.0, top_k=0, top_p=1.0, seed=seed, json_object=True)
            assert g.text.lstrip().startswith("{"), g.text
            if g.stats["stop_reason"] == "eos":
                assert isinstance(json.loads(g.text), dict)
                closed += 1
            else:
                assert g.stats["stop_reason"] == "max_tokens"
        assert closed > 0


CHATML = ("{% if greeting is defined %}{{ greeting }}\n{% endif %}{% for m in messages %}<|endoftext|>{{ m['role'] }}\n{{ m['content'] | trim }}\n{% endfor %}"
          "{% if tools %}tools: {{ tools | map(attribute='function') | map(attribute='name') | join(', ') }}\n{% endif %}"
          "{% if add_generation_prompt %}<|endoftext|>assistant\n{% endif %}")


@pytest.mark.skipif(not os.path.exists(os.path.join(FIXTURE_MODEL, "tokenizer.json")), reason="run `make` fixtures first")
def test_chat_template_and_chat(tmp_path):
    """The checkpoint's chat_template.jinja renders messages as jinja2 does; chat() answers under
    it with the messages' text literal; a template's refusal is an HMSTError."""
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    for name in os.listdir(FIXTURE_MODEL):
        os.symlink(os.path.join(os.path.abspath(FIXTURE_MODEL), name), ckpt / name)
    (ckpt / "chat_template.jinja").write_text(CHATML + "{% if messages[0]['role'] == 'assistant' %}"
                                              "{{ raise_exception('the first turn must be the user') }}{% endif %}")
    messages = [{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi <|endoftext|>"}]
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]
    with hmst.Model(str(ckpt)) as m:
        text = m.apply_chat_template(messages)
        assert text == "<|endoftext|>system\nBe brief.\n<|endoftext|>user\nHi <|endoftext|>\n<|endoftext|>assistant\n"
        assert m.apply_chat_template(messages, add_generation_prompt=False, tools=tools).endswith("tools: get_weather\n")
        assert m.apply_chat_template(messages, greeting="hello").startswith("hello\n<|endoftext|>system")
        jinja2 = pytest.importorskip("jinja2")
        from jinja2.sandbox import ImmutableSandboxedEnvironment
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        assert text == env.from_string(CHATML).render(messages=messages, add_generation_prompt=True)
        g = m.chat(messages, max_tokens=5, seed=1)
        assert g.stats["stop_reason"] in ("eos", "max_tokens") and g.stats["generated_tokens"] <= 5
        # typed special tokens stay text: more prompt tokens than the same chat with plain text
        plain = m.chat([messages[0], {"role": "user", "content": "Hi x"}], max_tokens=1)
        assert g.stats["prompt_tokens"] > plain.stats["prompt_tokens"] + 1
        with pytest.raises(hmst.HMSTError, match="the first turn must be the user"):
            m.apply_chat_template([{"role": "assistant", "content": "x"}])
        with pytest.raises(TypeError):
            m.apply_chat_template("hello")
        with pytest.raises(TypeError):
            m.chat(messages, nonsense=1)
        # template variables; token ids with the template's specials as tokens, typed ones as text
        assert m.apply_chat_template(messages, add_generation_prompt=False, tools=tools).endswith("tools: get_weather\n")
        with pytest.raises(hmst.HMSTError, match="'messages' is set by hmst"):
            m.chat(messages, template_vars={"messages": []})
        with pytest.raises(hmst.HMSTError, match="'bos_token' is set by hmst"):
            m.apply_chat_template(messages, bos_token="x")
        ids = m.apply_chat_template(messages, tokenize=True)
        assert ids.dtype == np.int32 and list(ids).count(0) == 3
        # prompt caching in a context: the next turn evaluates only what the last did not hold
        with m.context() as ctx:
            first = ctx.chat(messages, max_tokens=4, temperature=0)
            n = first.stats["prompt_tokens"]
            assert first.stats["cached_tokens"] == 0 and n == len(ids)
            held = ctx.tokens
            assert held.dtype == np.int32 and len(held) == ctx.n_past >= n and list(held[:n]) == list(ids)
            turn2 = messages + [{"role": "assistant", "content": first.text}, {"role": "user", "content": "More?"}]
            second = ctx.chat(turn2, max_tokens=4, temperature=0)
            assert second.stats["cached_tokens"] >= n
            assert second.stats["cached_tokens"] + second.stats["prompt_tokens"] == len(m.apply_chat_template(turn2, tokenize=True))
            # greedy: the same reply as from an empty context
            ctx.reset()
            fresh = ctx.chat(turn2, max_tokens=4, temperature=0)
            assert fresh.stats["cached_tokens"] == 0 and fresh.text == second.text
            ctx.rewind(3)
            assert ctx.n_past == 3 and list(ctx.tokens) == list(ids[:3])
            with pytest.raises(hmst.HMSTError, match="n_past"):
                ctx.rewind(10**6)
            with pytest.raises(hmst.HMSTError):
                ctx.rewind(2**40)
        # tool calls: this template lists tools in no known call syntax, so a required call is
        # one JSON object held by a grammar, parsed into tool_calls
        now = [{"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}]
        with m.context() as ctx:
            g = ctx.chat(messages, tools=now, tool_choice="required", max_tokens=400, temperature=0)
            assert g.stats["stop_reason"] == "eos", g.text
            assert [c["function"]["name"] for c in g.tool_calls] == ["now"] and g.text == ""
            assert json.loads(g.tool_calls[0]["function"]["arguments"]) == {} and g.tool_calls[0]["id"].startswith("call_")
            assert ctx.chat(messages, max_tokens=2).tool_calls == []
            # streamed chat: the pieces are the reply; with tools the parsed text comes at the end
            ctx.reset()
            plain = ctx.chat(messages, max_tokens=6, temperature=0)
            ctx.reset()
            it = ctx.chat_stream(messages, max_tokens=6, temperature=0)
            assert "".join(it) == plain.text and it.result.stats["generated_tokens"] == plain.stats["generated_tokens"]
            it = ctx.chat_stream(messages, tools=now, tool_choice="required", max_tokens=400, temperature=0)
            assert "".join(it) == it.result.text == "" and [c["function"]["name"] for c in it.result.tool_calls] == ["now"]
            it = ctx.chat_stream(messages, max_tokens=50, temperature=1)
            next(it, None)
            it.close()
            assert it.result is not None and it.result.stats["stop_reason"] in ("callback", "eos")
            with pytest.raises(TypeError):
                ctx.chat_stream(messages, on_token=print)
            with pytest.raises(TypeError):
                ctx.chat(messages, tools=now, tool_choice=3)
            with pytest.raises(hmst.HMSTError, match="not among the tools"):
                ctx.chat(messages, tools=now, tool_choice={"type": "function", "function": {"name": "zzz"}})
        assert "tools: now" in m.apply_chat_template(messages, tools=now)
        assert "tools:" not in m.apply_chat_template(messages, tools=now, tool_choice="none")
    # without a template file: hmst's built-in patterns
    with hmst.Model(FIXTURE_MODEL) as m:
        assert m.apply_chat_template([{"role": "user", "content": "hi"}]) == "User: hi\nAssistant:"

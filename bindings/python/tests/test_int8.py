"""int8 weights, the load-time NaN/Inf check and GGUF paths through the Python bindings."""
import json
import os
import struct

import numpy as np
import pytest

import hmst


def decode_logits(model, tokens):
    with hmst.Context(model, n_ctx=32) as ctx:
        for t in tokens:
            ctx.eval([t])
        return np.array(ctx.logits())


def test_int8_save_load_and_weights_kwarg(tmp_path):
    tokens = [1, 7, 300, 42]
    with hmst.Model.random("micro", seed=5) as m:
        ref = decode_logits(m, tokens)
        m.save(tmp_path / "f32", dtype="f32")
        m.save(tmp_path / "i8", dtype="int8")
        with pytest.raises(hmst.HMSTError, match="int8"):
            m.save(tmp_path / "bad", dtype="int4")
    cfg = json.loads((tmp_path / "i8" / "config.json").read_text())
    assert cfg["quantization"]["method"] == "q8_0"
    with hmst.Model(tmp_path / "i8") as q, hmst.Model(tmp_path / "f32", weights="int8") as q2:
        assert q.info["weights"] == "int8"
        a, b = decode_logits(q, tokens), decode_logits(q2, tokens)
    np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(a - ref)) < 0.1 * np.max(np.abs(ref))
    with hmst.Model(tmp_path / "i8", weights="f32") as w:
        assert w.info["weights"] == "f32"
    with pytest.raises(ValueError, match="weights"):
        hmst.Model(tmp_path / "i8", weights="int4")


def test_check_tensors_names_the_nan(tmp_path):
    with hmst.Model.random("micro", seed=6) as m:
        m.save(tmp_path / "ck", dtype="f32")
    path = tmp_path / "ck" / "model.safetensors"
    data = bytearray(path.read_bytes())
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    begin = header["model.layers.2.self_attn.v_proj.weight"]["data_offsets"][0]
    at = 8 + n + begin + 4 * 300  # row 1, column 44 of [128, 256]
    data[at:at + 4] = struct.pack("<f", float("inf"))
    path.write_bytes(bytes(data))
    with hmst.Model(tmp_path / "ck"):  # unchecked: loads
        pass
    with pytest.raises(hmst.HMSTError, match=r"v_proj.weight has \+Inf at index 300 \(row 1, column 44\)"):
        hmst.Model(tmp_path / "ck", check_tensors=True)


def test_gguf_path_errors_are_clean(tmp_path):
    bad = tmp_path / "x.gguf"
    bad.write_bytes(b"GGUF" + struct.pack("<I", 3) + b"\0" * 10)
    with pytest.raises(hmst.HMSTError, match="too short"):
        hmst.Model(bad)
    bad.write_bytes(b"NOPE" + b"\0" * 40)
    with pytest.raises(hmst.HMSTError, match="not a GGUF file"):
        hmst.Model(bad)


def test_bf16_kv_cache():
    tokens = [3, 1, 4, 1, 5, 9, 2, 6]
    with hmst.Model.random("micro", seed=2) as m:
        with hmst.Context(m, n_ctx=32) as a, hmst.Context(m, n_ctx=32, kv_cache="bf16") as b:
            for t in tokens:
                a.eval([t])
                b.eval([t])
            la, lb = np.array(a.logits()), np.array(b.logits())
        assert 0 < np.max(np.abs(la - lb)) < 0.03 * np.max(np.abs(la))
        with pytest.raises(ValueError, match="kv_cache"):
            hmst.Context(m, kv_cache="int8")
        with m.context(n_ctx=32, kv_cache="bf16") as c:   # Model.context passes it on
            for t in tokens:
                c.eval([t])
            assert np.array_equal(np.array(c.logits()), lb)


def _tensors(path):
    """name -> numpy array of a safetensors file (I8, F32)."""
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    dtypes = {"I8": np.int8, "F32": np.float32}
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + e], dtype=dtypes[t["dtype"]]).reshape(t["shape"])
    return out


def test_rows4_checkpoint_unpacks_to_the_row_major_file(tmp_path):
    tokens = [1, 7, 300, 42]
    with hmst.Model.random("micro", seed=5) as m:
        m.save(tmp_path / "rm", dtype="int8")
        m.save(tmp_path / "rq", dtype="int8-rows4")
    cfg = json.loads((tmp_path / "rq" / "config.json").read_text())
    assert cfg["quantization"]["layout"] == "rows4"
    rm, rq = _tensors(tmp_path / "rm" / "model.safetensors"), _tensors(tmp_path / "rq" / "model.safetensors")
    assert rm.keys() == rq.keys()
    reordered = 0
    for name, v in rq.items():
        if v.dtype != np.int8:
            continue
        s = rq[name + "_scale"]
        if hmst.int8.is_rows4(name, v.shape):
            assert not np.array_equal(v, rm[name])          # really permuted
            v, s = hmst.unpack_rows4(v, s)
            reordered += 1
        np.testing.assert_array_equal(v, rm[name])
        np.testing.assert_array_equal(s, rm[name + "_scale"])
    assert reordered > 10 and np.array_equal(rq["model.embed_tokens.weight"], rm["model.embed_tokens.weight"])
    w = hmst.dequantize(rm["model.layers.0.self_attn.q_proj.weight"], rm["model.layers.0.self_attn.q_proj.weight_scale"])
    assert w.dtype == np.float32 and w.shape == rm["model.layers.0.self_attn.q_proj.weight"].shape
    with hmst.Model(tmp_path / "rm") as a, hmst.Model(tmp_path / "rq") as b:
        np.testing.assert_allclose(decode_logits(a, tokens), decode_logits(b, tokens), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="row-quad"):
        hmst.unpack_rows4(np.zeros((3, 64), np.int8), np.zeros((3, 2), np.float32))

"""hmst.Tokenizer and text generation through Python."""
import os

import numpy as np
import pytest

import hmst

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "..", "..", "Tests", "Golden")
CORPUS = ["/usr/share/common-licenses/GPL-3", "/usr/share/common-licenses/Apache-2.0"]


def test_hf_tokenizer_round_trip_and_pieces():
    with hmst.Tokenizer(os.path.join(GOLDEN, "tokenizer", "hf_tokenizer.json")) as tok:
        assert len(tok) == 1000
        ids = tok.encode("Hello world, it's 2026")
        assert ids.dtype == np.int32
        assert tok.decode(ids) == "Hello world, it's 2026"
        raw = b"\xff\x00 bytes \xe2\x82"
        assert tok.decode_bytes(tok.encode(raw)) == raw
        assert tok.piece_to_id("<|endoftext|>") == 0
        assert tok.id_to_piece(0) == "<|endoftext|>"
        assert tok.piece_to_id("definitely not a piece") is None
        with pytest.raises(hmst.HMSTError):
            tok.decode([5000])
        with pytest.raises(TypeError):
            tok.decode([1.5])


def test_errors(tmp_path):
    with pytest.raises(hmst.HMSTError) as e:
        hmst.Tokenizer(tmp_path / "missing.json")
    assert e.value.status_name == "NOT_FOUND"
    bad = tmp_path / "bad.json"
    bad.write_text('{"model": {"type": "WordPiece"}}')
    with pytest.raises(hmst.HMSTError) as e:
        hmst.Tokenizer(bad)
    assert e.value.status_name == "BAD_FORMAT" and "WordPiece" in e.value.message
    # a path with a NUL inside would be cut short in C (tmp_path/"missing.json" here): refused,
    # as Python's open() refuses it; bytes and PathLike paths are taken as they are
    with pytest.raises(ValueError, match="NUL"):
        hmst.Tokenizer(str(tmp_path / "missing.json") + "\0.extra")
    with pytest.raises(ValueError, match="NUL"):
        hmst.Trainer(str(tmp_path) + "\0x", str(tmp_path / "out"))
    with pytest.raises(hmst.HMSTError):
        hmst.Tokenizer(os.fsencode(tmp_path / "missing.json"))


@pytest.mark.skipif(not all(map(os.path.exists, CORPUS)), reason="Debian license texts absent")
def test_train_save_and_generate(tmp_path):
    seen = []
    tok = hmst.Tokenizer.train(CORPUS, vocab_size=700, progress=seen.append, special_tokens=[b"<|endoftext|>", "<|pad|>"])
    assert len(tok) == 700 and seen
    # a progress callback's own exception surfaces as itself, not as CANCELLED
    with pytest.raises(ZeroDivisionError):
        hmst.Tokenizer.train(CORPUS, vocab_size=300, progress=lambda f: 1 / 0)
    with pytest.raises(TypeError):
        hmst.Tokenizer.train(CORPUS, vocab_size=300.9)
    ckpt = tmp_path / "ckpt"
    with hmst.Model.random("micro", seed=2) as m:
        m.save(ckpt)
    tok.save(ckpt / "tokenizer.json")
    with hmst.Model(ckpt) as model:
        np.testing.assert_array_equal(model.tokenize("the license"), tok.encode("the license"))
        with model.context() as ctx:
            pieces = []
            g = ctx.generate("The license", max_tokens=8, seed=1, ignore_eos=True,
                             on_token=lambda t, p: pieces.append(p))
            assert g.stats["generated_tokens"] == 8 and g.stats["stop_reason"] == "max_tokens"
            assert b"".join(pieces) == g.raw
            ctx.reset()
            again = ctx.generate("The license", max_tokens=8, seed=1, ignore_eos=True)
            assert again.text == g.text
            ctx.reset()
            streamed = "".join(ctx.stream("The license", max_tokens=8, seed=1, ignore_eos=True))
            assert streamed == g.text
            ctx.reset()
            with pytest.raises(ZeroDivisionError):  # a callback's exception surfaces in Python
                ctx.generate("x", max_tokens=3, on_token=lambda t, p: 1 / 0)
            # the context cannot be changed from its own generation's callback (it read on
            # over the altered cache); reading it is fine
            for change in (lambda: ctx.reset(), lambda: ctx.eval([1, 2]), lambda: ctx.generate("y", max_tokens=1)):
                with pytest.raises(hmst.HMSTError, match="already evaluating or generating"):
                    ctx.generate("x", max_tokens=3, on_token=lambda t, p, change=change: change())
            read = []
            ctx.generate("x", max_tokens=2, ignore_eos=True, on_token=lambda t, p: read.append(ctx.logits().shape))
            assert len(read) == 2 and read[0][0] > 0
            with pytest.raises(hmst.HMSTError, match="row 4294967296"):
                ctx.logits(2**32)
            with pytest.raises(TypeError):
                ctx.logits(1.9)
            ctx.reset()
            # arguments that ctypes would take the wrong way are refused in Python
            with pytest.raises(TypeError, match="prompt must be str or bytes"):
                ctx.generate(123)
            with pytest.raises(ValueError, match="NUL"):
                ctx.generate("a\0b")
            with pytest.raises(TypeError, match="stop string must be str or bytes"):
                ctx.generate("x", stop=[None])
            with pytest.raises(hmst.HMSTError, match="max_tokens 2147483648"):
                ctx.generate("x", max_tokens=2**31)
        with pytest.raises(TypeError, match="text must be str or bytes"):
            model.tokenize(123)
        with pytest.raises(hmst.HMSTError, match="token_id"):
            tok.id_to_piece(-2**32 + 3)

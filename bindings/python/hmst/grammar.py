"""Grammars for constrained generation: GBNF text (llama.cpp's notation) and JSON Schemas.

    hmst.check_grammar('root ::= ("yes" | "no") [.!]?')     # raises HMSTError naming line and column
    hmst.json_schema_to_grammar({"type": "object", ...})     # the GBNF text generate() uses

Context.generate(grammar=...) and generate(json_schema=...) take them directly.
"""
import ctypes
import json

from . import _lib
from .api import _check, _read_string, _text


def _schema_text(schema):
    """A schema given as a dict/list/bool (serialized) or as JSON text (str or bytes)."""
    if isinstance(schema, (dict, list, bool)):
        return _text(json.dumps(schema), "json_schema")
    if isinstance(schema, (str, bytes)):
        return _text(schema, "json_schema")
    raise TypeError(f"json_schema must be a dict, a bool or JSON text, not {type(schema).__name__}")


def json_schema_to_grammar(schema):
    """The GBNF grammar (str) that generate(json_schema=schema) follows."""
    text = _schema_text(schema)
    return _read_string(lambda buf, cap, n: _lib.lib.hmst_json_schema_to_grammar(text, buf, cap, n))


def check_grammar(grammar):
    """Raises HMSTError saying what is wrong with GBNF text (and where); returns None if it reads."""
    _check(_lib.lib.hmst_grammar_check(_text(grammar, "grammar")))

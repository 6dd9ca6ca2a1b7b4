#!/usr/bin/env python3
"""Golden renders of chat templates for hmst's Jinja2-subset interpreter, made with the real
`jinja2` package (3.1.x) configured exactly as Hugging Face transformers renders chat templates:

  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
  filters['tojson'] = json.dumps(x, ensure_ascii=False, indent=, separators=, sort_keys=)
  globals: raise_exception(msg) (raises; recorded as "error": msg),
           strftime_now(fmt) (a FIXED clock, 2026-12-06 10:00, so renders are deterministic)

Every template here was written for this file (none is copied from a model repository); the
family templates imitate the structure of common chat formats (ChatML, [INST], header tokens,
tool calls, ...) so the same Jinja features get exercised; the feature cases test one thing each
so that a failure localises.

Output: Tests/Golden/chat_template/cases.json
  {"cases": [{"name", "template", "vars", "expected"} | {"name", "template", "vars", "error"}]}
  "error" is the raise_exception message, or "<jinja2 exception class>: <str(exception)>".
  "vars" are all the variables the template is rendered with (JSON object order is meaningful:
  it is the dict insertion order that loops, |tojson and printing see).

    python3 tools/golden/make_chat_template_goldens.py [--out Tests/Golden/chat_template/cases.json]
"""
import argparse
import json
import os
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.sandbox

FIXED_NOW = datetime(2026, 12, 6, 10, 0)


class RaisedByTemplate(Exception):
    """What raise_exception throws (transformers raises jinja2.exceptions.TemplateError)."""


def raise_exception(message):
    raise RaisedByTemplate(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def make_env():
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: FIXED_NOW.strftime(fmt)
    return env


def render(env, template, variables):
    """-> ("expected", text) or ("error", message)."""
    try:
        return "expected", env.from_string(template).render(**variables)
    except RaisedByTemplate as e:
        return "error", str(e)
    except Exception as e:  # jinja2 errors (compile or render time) and Python errors (1/0)
        return "error", f"{type(e).__name__}: {e}"


# --------------------------------------------------------------------------------------------
# Message sets

SYS_USER = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "What is 2+2?"},
]
MULTI = [
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi there. How can I help?"},
    {"role": "user", "content": "Tell me a joke."},
]
SYS_MULTI = [{"role": "system", "content": "Be kind."}] + MULTI
SPECIAL = [
    {"role": "user", "content": "Print <|im_end|> and {{ not a tag }} and {% if x %} verbatim.\n  Indented line\n"},
    {"role": "assistant", "content": "  <s>[INST] </s> {# nope #}  "},
    {"role": "user", "content": "Unicode: héllo 日本語 😀"},
]
EMPTY = [{"role": "user", "content": ""}]
BAD_ORDER = [
    {"role": "user", "content": "one"},
    {"role": "user", "content": "two"},
]

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object",
                       "properties": {"city": {"type": "string", "description": "City name, e.g. Zürich"},
                                      "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "add", "description": "Adds two numbers.",
        "parameters": {"type": "object",
                       "properties": {"a": {"type": "number", "default": 1.0},
                                      "b": {"type": "number", "default": 0.5}},
                       "required": []}}},
]
TOOL_CHAT = [
    {"role": "system", "content": "You can call tools."},
    {"role": "user", "content": "Weather in Zürich, and 2+3?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich", "unit": "celsius"}}},
        {"type": "function", "function": {"name": "add", "arguments": "{\"a\": 2, \"b\": 3}"}},
    ]},
    {"role": "tool", "content": "{\"temp\": 3.5, \"sky\": \"cloudy\"}"},
    {"role": "tool", "content": "5"},
    {"role": "assistant", "content": "It is 3.5 °C and cloudy; 2+3 = 5."},
    {"role": "user", "content": "Thanks"},
]

# --------------------------------------------------------------------------------------------
# Family templates (written for this file, in the style of common chat formats)

CHATML = """\
{%- if messages[0]['role'] != 'system' %}
    {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

INST = """\
{%- if messages[0]['role'] == 'system' %}
    {%- set system_text = messages[0]['content'] %}
    {%- set turns = messages[1:] %}
{%- else %}
    {%- set system_text = false %}
    {%- set turns = messages %}
{%- endif %}
{%- for message in turns %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if loop.index0 == 0 and system_text %}
        {%- set content = '<<SYS>>\\n' + system_text + '\\n<</SYS>>\\n\\n' + message['content'] %}
    {%- else %}
        {%- set content = message['content'] %}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {{- bos_token + '[INST] ' + content | trim + ' [/INST]' }}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + content | trim + ' ' + eos_token }}
    {%- endif %}
{%- endfor %}
"""

HEADER = """\
{%- set loop_messages = messages %}
{%- for message in loop_messages %}
    {%- set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' %}
    {%- if loop.index0 == 0 %}
        {%- set content = bos_token + content %}
    {%- endif %}
    {{- content }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

MISTRALISH = """\
{%- set ns = namespace(system='', last_user=-1) %}
{%- for message in messages %}
    {%- if message.role == 'system' %}
        {%- set ns.system = message.content %}
    {%- elif message.role == 'user' %}
        {%- set ns.last_user = loop.index0 %}
    {%- endif %}
{%- endfor %}
{{- bos_token }}
{%- for message in messages %}
    {%- if message.role == 'user' %}
        {%- if tools and loop.index0 == ns.last_user %}
            {{- '[AVAILABLE_TOOLS] ' + tools | tojson + '[/AVAILABLE_TOOLS]' }}
        {%- endif %}
        {%- if loop.index0 == ns.last_user and ns.system %}
            {{- '[INST] ' + ns.system + '\\n\\n' + message.content + '[/INST]' }}
        {%- else %}
            {{- '[INST] ' + message.content + '[/INST]' }}
        {%- endif %}
    {%- elif message.role == 'assistant' %}
        {{- ' ' + message.content + eos_token }}
    {%- elif message.role != 'system' %}
        {{- raise_exception('Only user, assistant and system roles are supported, got ' + message.role) }}
    {%- endif %}
{%- endfor %}
"""

ZEPHYRISH = """\
{% for message in messages %}
{% if message['role'] == 'user' %}
{{ '<|user|>\\n' + message['content'] + eos_token }}
{% elif message['role'] == 'system' %}
{{ '<|system|>\\n' + message['content'] + eos_token }}
{% elif message['role'] == 'assistant' %}
{{ '<|assistant|>\\n'  + message['content'] + eos_token }}
{% endif %}
{% if loop.last and add_generation_prompt %}
{{ '<|assistant|>' }}
{% endif %}
{% endfor %}
"""

GEMMAISH = """\
{{ bos_token }}
{%- if messages[0]['role'] == 'system' -%}
    {%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}
    {%- set loop_messages = messages[1:] -%}
{%- else -%}
    {%- set first_user_prefix = '' -%}
    {%- set loop_messages = messages -%}
{%- endif -%}
{%- for message in loop_messages -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{ raise_exception("Conversation roles must alternate user/assistant/user/assistant/...") }}
    {%- endif -%}
    {%- if message['role'] == 'assistant' -%}
        {%- set role = 'model' -%}
    {%- else -%}
        {%- set role = message['role'] -%}
    {%- endif -%}
    {{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') + message['content'] | trim + '<end_of_turn>\\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<start_of_turn>model\\n' }}
{%- endif -%}
"""

PHIISH = """\
{% for message in messages %}
{% if message['role'] == 'system' %}
{{'<|system|>\\n' + message['content'] + '<|end|>\\n'}}
{% elif message['role'] == 'user' %}
{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}
{% elif message['role'] == 'assistant' %}
{{'<|assistant|>\\n' + message['content'] + '<|end|>\\n'}}
{% endif %}
{% endfor %}
{% if add_generation_prompt %}
{{ '<|assistant|>\\n' }}
{% else %}
{{ eos_token }}
{% endif %}
"""

DEEPSEEKISH = """\
{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}
{%- set ns = namespace(system_prompt='') -%}
{%- for message in messages -%}
    {%- if message['role'] == 'system' -%}
        {%- set ns.system_prompt = ns.system_prompt + message['content'] -%}
    {%- endif -%}
{%- endfor -%}
{{ bos_token }}{{ ns.system_prompt }}
{%- for message in messages -%}
    {%- if message['role'] == 'user' -%}
        {{ '<｜User｜>' + message['content'] }}
    {%- elif message['role'] == 'assistant' -%}
        {%- set content = message['content'] -%}
        {%- if '</think>' in content -%}
            {%- set content = content.split('</think>')[-1] -%}
        {%- endif -%}
        {{ '<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>' }}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{ '<｜Assistant｜>' }}
{%- endif -%}
"""

TOOLCALLS = """\
{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\\n\\n' }}
    {%- endif %}
    {{- '# Tools\\n\\n<tools>' }}
    {%- for tool in tools %}
        {{- '\\n' }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- '\\n</tools>\\n\\nReply with <tool_call>{"name": ..., "arguments": ...}</tool_call><|im_end|>\\n' }}
{%- elif messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}
    {%- elif message.role == 'assistant' %}
        {{- '<|im_start|>assistant' }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- if message.tool_calls is defined and message.tool_calls %}
            {%- for tool_call in message.tool_calls %}
                {%- if tool_call.function is defined %}
                    {%- set tool_call = tool_call.function %}
                {%- endif %}
                {{- '\\n<tool_call>\\n{"name": "' + tool_call.name + '", "arguments": ' }}
                {%- if tool_call.arguments is string %}
                    {{- tool_call.arguments }}
                {%- elif tool_call.arguments is mapping %}
                    {{- tool_call.arguments | tojson }}
                {%- endif %}
                {{- '}\\n</tool_call>' }}
            {%- endfor %}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == 'tool' %}
        {%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' }}
        {%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

MACROS = """\
{%- macro render_content(content) -%}
    {%- if content is string -%}
        {{ content }}
    {%- else -%}
        {%- for part in content -%}
            {%- if part.type == 'text' -%}
                {{ part.text }}
            {%- elif part.type == 'image' -%}
                <image>
            {%- endif -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro -%}
{%- macro turn(role, body='', end='<|end|>') -%}
<|{{ role }}|>{{ body }}{{ end }}
{%- endmacro -%}
{%- for m in messages -%}
    {{ turn(m.role, render_content(m.content)) }}{{ '\\n' }}
{%- endfor -%}
{%- if add_generation_prompt %}<|assistant|>{% endif %}
"""

DATED = """\
{%- set date_string = strftime_now('%d %b %Y') %}
{%- if messages[0].role == 'system' %}
    {%- set system_message = messages[0].content | trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = default_system | default('You are a helpful assistant.') %}
{%- endif %}
{{- bos_token + '<|header|>system\\n' }}
{{- 'Knowledge cutoff: ' + knowledge_cutoff | default('2025-01', true) + '\\n' }}
{{- 'Today: ' + date_string + ' (' + strftime_now('%A %H:%M') + ')\\n\\n' }}
{{- system_message + '<|eot|>' }}
{%- for message in messages %}
    {{- '<|header|>' + message.role + '\\n' + message.content | default('', true) + '<|eot|>' }}
{%- endfor %}
{%- if add_generation_prompt | default(false) %}
    {{- '<|header|>assistant\\n' }}
{%- endif %}
"""

MULTIMODAL = [
    {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in the picture?"}]},
    {"role": "assistant", "content": "A cat."},
    {"role": "user", "content": [{"type": "text", "text": "Colour? "}, {"type": "text", "text": "Be brief."}]},
]

# (family name, template, [(case suffix, messages, add_generation_prompt, extra vars)])
FAMILIES = [
    ("chatml", CHATML, [
        ("sys_user_gen", SYS_USER, True, {}),
        ("multi_nogen", MULTI, False, {}),
        ("special_gen", SPECIAL, True, {}),
        ("empty_content", EMPTY, True, {}),
    ]),
    ("inst", INST, [
        ("sys_user", SYS_USER, True, {}),
        ("sys_multi", SYS_MULTI, False, {}),
        ("special", SPECIAL, False, {}),
        ("bad_alternation", BAD_ORDER, False, {}),
    ]),
    ("header", HEADER, [
        ("sys_user_gen", SYS_USER, True, {}),
        ("multi_nogen", MULTI, False, {}),
        ("special_gen", SPECIAL, True, {}),
        ("empty_content", EMPTY, False, {}),
    ]),
    ("mistralish", MISTRALISH, [
        ("sys_multi", SYS_MULTI, False, {}),
        ("tools", SYS_MULTI, False, {"tools": TOOLS}),
        ("tools_none", MULTI, False, {"tools": None}),
        ("bad_role", [{"role": "user", "content": "x"}, {"role": "robot", "content": "y"}], False, {}),
    ]),
    ("zephyrish", ZEPHYRISH, [
        ("sys_user_gen", SYS_USER, True, {}),
        ("multi_nogen", MULTI, False, {}),
        ("special_gen", SPECIAL, True, {}),
    ]),
    ("gemmaish", GEMMAISH, [
        ("sys_user_gen", SYS_USER, True, {}),
        ("sys_multi_nogen", SYS_MULTI, False, {}),
        ("special_gen", SPECIAL, True, {}),
        ("bad_alternation", BAD_ORDER, True, {}),
    ]),
    ("phiish", PHIISH, [
        ("sys_user_gen", SYS_USER, True, {}),
        ("multi_nogen", MULTI, False, {}),
        ("empty_content", EMPTY, True, {}),
    ]),
    ("deepseekish", DEEPSEEKISH, [
        ("sys_user_gen", SYS_USER, True, {}),
        ("think_multi", [{"role": "user", "content": "2+2?"},
                         {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n4"},
                         {"role": "user", "content": "3+3?"}], True, {}),
        ("special_nogen", SPECIAL, False, {}),
    ]),
    ("toolcalls", TOOLCALLS, [
        ("with_tools_gen", TOOL_CHAT, True, {"tools": TOOLS}),
        ("no_tools_nogen", TOOL_CHAT, False, {}),
        ("plain_sys_user", SYS_USER, True, {}),
        ("special_gen", SPECIAL, True, {"tools": TOOLS[:1]}),
    ]),
    ("macros", MACROS, [
        ("multimodal_gen", MULTIMODAL, True, {}),
        ("strings_nogen", SYS_MULTI, False, {}),
        ("special", SPECIAL, False, {}),
    ]),
    ("dated", DATED, [
        ("sys_user_gen", SYS_USER, True, {}),
        ("default_system", MULTI, False, {}),
        ("custom_default", MULTI, True, {"default_system": "Custom system.", "knowledge_cutoff": ""}),
        ("empty_content", EMPTY, True, {"knowledge_cutoff": "2024-06"}),
    ]),
]


# --------------------------------------------------------------------------------------------
# Feature cases: (name, template, extra vars). All get the base vars below as well.

SMALL = [
    {"role": "system", "content": "sys"},
    {"role": "user", "content": "  Hi there  "},
    {"role": "assistant", "content": "Hello", "tool_calls": [{"name": "f"}]},
    {"role": "user", "content": "bye"},
]

FEATURES = [
    # --- whitespace control, trim_blocks / lstrip_blocks
    ("ws_trim_blocks_newline_after_block", "{% if true %}\nA\n{% endif %}\nB\n", {}),
    ("ws_no_trim_after_variable", "{{ 'A' }}\n{{ 'B' }}\nC", {}),
    ("ws_lstrip_indented_block", "x\n    {% if true %}\n    y\n    {% endif %}\nz", {}),
    ("ws_lstrip_not_before_variable", "x\n    {{ 'y' }}\nz", {}),
    ("ws_lstrip_not_after_text", "a  {% if true %}b{% endif %}  c", {}),
    ("ws_lstrip_tabs", "a\n\t \t{% for i in [1, 2] %}\n\t{{ i }}\n\t{% endfor %}\nb", {}),
    ("ws_minus_strips_newlines", "a   \n\n  {%- if true -%}  \n\n  b  \n  {%- endif -%}\n\n  c", {}),
    ("ws_variable_minus", "a \n {{- 'b' -}} \n c {{ 'd' -}}   e", {}),
    ("ws_plus_disables_lstrip", "a\n    {%+ if true %}b{% endif %}\nc", {}),
    ("ws_plus_disables_trim", "a\n{% if true +%}\nb\n{% endif %}\nc", {}),
    ("ws_comment_line", "a\n  {# a comment\n spanning lines #}\nb\n{#- trimmed -#}\n  c", {}),
    ("ws_comment_inline", "a {# c #} b", {}),
    ("ws_final_newline_dropped", "line\n", {}),
    ("ws_two_final_newlines", "line\n\n", {}),
    ("ws_crlf_normalised", "a\r\nb\r\n{% if true %}\r\nc\r\n{% endif %}\r\nd", {}),
    ("ws_set_lines", "{% set a = 1 %}\n{% set b = 2 %}\n{{ a + b }}\n", {}),
    # --- raw
    ("raw_block", "{% raw %}{{ x }} {% if %} {# c #}{% endraw %}", {}),
    ("raw_block_newlines", "{% raw %}\n  {{ x }}\n  {% endraw %}\nz", {}),
    ("raw_block_minus", "<{%- raw -%}\n  {{ x }}\n  {%- endraw -%}\n>", {}),
    # --- for loops
    ("for_loop_vars", "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}"
                      "{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}|{% endfor %}", {}),
    ("for_over_messages", "{% for m in messages %}{{ loop.index }}:{{ m.role }}={{ m.content }};{% endfor %}", {}),
    ("for_dict_items", "{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}", {"d": {"z": 1, "a": 2, "m": 3}}),
    ("for_dict_keys_values", "{% for k in d %}{{ k }}{% endfor %}|{% for k in d.keys() %}{{ k }}{% endfor %}"
                             "|{% for v in d.values() %}{{ v }}{% endfor %}", {"d": {"z": 1, "a": 2}}),
    ("for_tuple_unpack", "{% for a, b in [(1, 'x'), (2, 'y')] %}{{ a }}{{ b }} {% endfor %}", {}),
    ("for_filter_if", "{% for m in messages if m.role == 'user' %}{{ loop.index }}/{{ loop.length }}:{{ m.content }};"
                      "{% endfor %}", {}),
    ("for_else", "{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1] if x > 5 %}x{% else %}none{% endfor %}", {}),
    ("for_break_continue", "{% for i in range(10) %}{% if i is odd %}{% continue %}{% endif %}{% if i > 6 %}{% break %}"
                           "{% endif %}{{ i }}{% endfor %}", {}),
    ("for_nested", "{% for i in [1, 2] %}{% set outer = loop %}{% for j in 'ab' %}{{ outer.index }}{{ loop.index }}{{ j }} "
                   "{% endfor %}{% endfor %}", {}),
    ("for_prev_next_cycle", "{% for a in [1, 2, 3] %}{{ loop.previtem }}-{{ loop.nextitem }}-{{ loop.cycle('o', 'e') }},"
                            "{% endfor %}", {}),
    ("for_over_string", "{% for c in 'héy' %}[{{ c }}]{% endfor %}", {}),
    ("for_over_undefined", "{% for x in nothing %}x{% else %}no loop{% endfor %}", {}),
    ("for_set_scoping", "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + i %}{{ x }}{% endfor %}|{{ x }}", {}),
    ("for_set_resets_each_iteration", "{% set x = 'o' %}{% for i in 'abc' %}{% set x = x ~ i %}{{ x }},{% endfor %}|{{ x }}|"
                                      "{% for i in 'abc' %}{% if i == 'b' %}{% set y = 1 %}{% endif %}[{{ y }}]{% endfor %}", {}),
    # --- if / set / namespace
    ("if_elif_else", "{% for n in [1, 2, 3] %}{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %} {% endfor %}", {}),
    ("if_truthiness", "{% for v in [0, 1, '', 'a', [], [0], {}, {'a': 1}, none, 0.0] %}{{ 'T' if v else 'F' }}{% endfor %}", {}),
    ("if_missing_key", "{% for m in messages %}{% if m.tool_calls %}T{% else %}F{% endif %}{% endfor %}", {}),
    ("set_plain_tuple", "{% set a = 'x' %}{% set b, c = 1, 2 %}{% set d, e = ['p', 'q'] %}{{ a }}{{ b }}{{ c }}{{ d }}{{ e }}", {}),
    ("set_block", "{% set body %}\n  Hello {{ 'world' }}\n{% endset %}[{{ body }}]", {}),
    ("namespace_in_loop", "{% set ns = namespace(count=0, last='') %}{% for m in messages %}{% if m.role == 'user' %}"
                          "{% set ns.count = ns.count + 1 %}{% set ns.last = m.content %}{% endif %}{% endfor %}"
                          "{{ ns.count }}|{{ ns.last }}", {}),
    ("set_outside_if_visible", "{% if true %}{% set x = 'inner' %}{% endif %}{{ x }}", {}),
    # --- macros
    ("macro_defaults_kwargs", "{% macro tag(name, value='v', sep='=') %}<{{ name }}{{ sep }}{{ value }}>{% endmacro %}"
                              "{{ tag('a') }}{{ tag('b', 2) }}{{ tag('c', sep=':') }}", {}),
    ("macro_sees_globals", "{% macro f() %}{{ bos_token }}{{ x }}{% endmacro %}{% set x = 5 %}{{ f() }}", {}),
    ("macro_call_block", "{% macro wrap(kind) %}<{{ kind }}>{{ caller() }}</{{ kind }}>{% endmacro %}"
                         "{% call wrap('b') %}inside {{ 1 + 1 }}{% endcall %}", {}),
    # --- string methods
    ("str_strip_methods", "[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ 'xxaxx'.strip('x') }}]", {"s": "  \n a b \t "}),
    ("str_split", "{{ '  a b  c '.split() }} {{ 'a,,b'.split(',') }} {{ 'a b c'.split(' ', 1) }} "
                  "{{ 'x</think>y'.split('</think>')[-1] }}", {}),
    ("str_starts_ends", "{{ 'hello'.startswith('he') }} {{ 'hello'.endswith('lo') }} {{ 'hello'.startswith('lo') }}", {}),
    ("str_case_methods", "{{ s.upper() }}|{{ s.lower() }}|{{ s.title() }}|{{ s.capitalize() }}", {"s": "hELLo wORLD o'neil"}),
    ("str_replace_method", "{{ 'a-b-c'.replace('-', '+') }} {{ 'aaa'.replace('a', 'b', 2) }}", {}),
    ("str_slicing", "{{ s[1:4] }}|{{ s[::-1] }}|{{ s[-2:] }}|{{ s[0] }}|{{ s[:-1] }}|{{ s[::2] }}", {"s": "abcdef"}),
    ("list_slicing", "{% for m in messages[1:] %}{{ m.role }},{% endfor %}|{% for m in messages[:-1] %}{{ m.role }},"
                     "{% endfor %}|{% for m in messages[::-1] %}{{ m.role }},{% endfor %}|{{ messages[-1].content }}", {}),
    ("unicode_strings", "{{ s | length }}|{{ s | upper }}|{{ s[1:3] }}|{{ s[-1] }}|{{ s | reverse }}|{{ 'straße' | upper }}",
     {"s": "é日本😀x"}),
    # --- filters
    ("filter_trim", "[{{ '  a b \n' | trim }}][{{ 'xxaxx' | trim('x') }}]", {}),
    ("filter_length_count", "{{ messages | length }} {{ 'abc' | length }} {{ {'a': 1, 'b': 2} | count }} {{ [] | length }}", {}),
    ("filter_case", "{{ s | upper }}|{{ s | lower }}|{{ s | title }}|{{ s | capitalize }}", {"s": "hELLo wORLD-foo o'neil (x)"}),
    ("filter_default", "[{{ nothing | default('d') }}][{{ '' | default('d') }}][{{ '' | default('d', true) }}]"
                       "[{{ none | default('d') }}][{{ none | d('d', true) }}][{{ 0 | d('d', true) }}][{{ 'x' | d('d') }}]", {}),
    ("filter_join", "{{ ['a', 'b', 'c'] | join(', ') }}|{{ [1, 2, 3] | join }}|{{ messages | join('/', attribute='role') }}", {}),
    ("filter_first_last", "{{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ 'abc' | first }} {{ (messages | last).content }}", {}),
    ("filter_list_string", "{{ 'abc' | list }} {{ 3.0 | string }} {{ none | string }} {{ true | string }} {{ [1, 'a'] | string }}", {}),
    ("filter_int_float", "{{ '42' | int }} {{ '3.7' | int }} {{ 'abc' | int }} {{ 3.9 | int }} {{ '-5' | int }} {{ true | int }} "
                         "{{ '2' | float }} {{ 'x' | float }} {{ 3 | float }}", {}),
    ("filter_abs_round", "{{ -3 | abs }} {{ -2.5 | abs }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 1.23456 | round(2) }} "
                         "{{ 7 | round }} {{ 1.5 | round(0, 'floor') }} {{ 1.2 | round(0, 'ceil') }}", {}),
    ("filter_replace", "{{ 'a-b-c' | replace('-', '') }} {{ 'aaa' | replace('a', 'b', 2) }}", {}),
    ("filter_indent", "[{{ 'a\nb\n\nc' | indent(2) }}][{{ 'a\nb\n\nc' | indent(4, true) }}][{{ 'a\nb\n\nc' | indent(2, true, true) }}]"
                      "[{{ 'x\n' | indent(2) }}]", {}),
    ("filter_map_attribute", "{{ messages | map(attribute='role') | list }} {{ ['a', 'b'] | map('upper') | join }}", {}),
    ("filter_selectattr", "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }}"
                          "|{{ messages | selectattr('tool_calls', 'defined') | list | length }}"
                          "|{{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') | join(',') }}"
                          "|{{ messages | selectattr('content') | list | length }}", {}),
    ("filter_select_reject", "{{ [1, 2, 3, 4, 5] | select('odd') | list }} {{ [1, 2, 3, 4] | reject('even') | list }} "
                             "{{ [0, 1, '', 'a', none] | select | list }}", {}),
    ("filter_unique", "{{ ['a', 'A', 'b', 'a'] | unique | list }} {{ [3, 1, 3, 2] | unique | list }}", {}),
    ("filter_sort", "{{ ['b', 'A', 'a', 'C'] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} "
                    "{{ items | sort(attribute='n') | map(attribute='k') | join }}",
     {"items": [{"k": "x", "n": 2}, {"k": "y", "n": 1}, {"k": "z", "n": 2}]}),
    ("filter_reverse", "{{ [1, 2, 3] | reverse | list }} {{ 'abc' | reverse }} {{ messages | reverse | map(attribute='role') | join(',') }}", {}),
    ("filter_items_dictsort", "{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}|{% for k, v in d | dictsort %}{{ k }}{{ v }}"
                              "{% endfor %}|{{ d | dictsort }}", {"d": {"b": 1, "C": 2, "a": 3}}),
    ("filter_tojson_basic", "{{ d | tojson }}", {"d": {"s": "x", "i": 1, "f": 1.0, "h": 0.5, "t": True, "no": False,
                                                        "z": None, "l": [1, "é", "日本😀"], "e": {}, "el": []}}),
    ("filter_tojson_escapes", "{{ s | tojson }} {{ ['<tag>', \"it's\", '&'] | tojson }}", {"s": "quote \" back \\ nl \n tab \t ctl \u0001 é"}),
    ("filter_tojson_indent", "{{ d | tojson(indent=2) }}\n{{ d | tojson(indent=4) }}",
     {"d": {"a": [1, {"b": None}], "c": {}, "d": [], "e": "é"}}),
    ("filter_tojson_sort_keys", "{{ d | tojson(sort_keys=true) }} {{ d | tojson(separators=(',', ':')) }}",
     {"d": {"b": 1, "a": [1, 2]}}),
    ("filter_tojson_literals", "{{ {'k': 1.0, 'm': none, 'n': true} | tojson }} {{ (1, 'a') | tojson }} {{ 'x' | tojson }} {{ 3 | tojson }}", {}),
    ("filter_precedence", "{{ 'a' + ' b ' | trim + 'c' }}|{{ ('a' + ' b ') | trim }}|{{ -1 | abs }}|{{ [1, 2] | length * 2 }}|{{ messages | length > 1 }}", {}),
    ("filter_format", "{{ '%s has %d items' | format('list', 3) }}", {}),
    # --- tests
    ("test_defined", "{{ messages is defined }} {{ nothing is defined }} {{ nothing is undefined }} "
                     "{{ messages[2].tool_calls is defined }} {{ messages[0].tool_calls is defined }}", {}),
    ("test_types", "{% for v in vals %}{{ v is none }}{{ v is string }}{{ v is number }}{{ v is integer }}{{ v is float }}"
                   "{{ v is mapping }}{{ v is iterable }}{{ v is sequence }}{{ v is boolean }};{% endfor %}",
     {"vals": [None, "s", 1, 1.5, True, {"a": 1}, [1]]}),
    ("test_true_false", "{{ true is true }} {{ 1 is true }} {{ false is false }} {{ 0 is false }} {{ none is false }}", {}),
    ("test_numbers", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby(3) }} {{ 10 is divisibleby 3 }}", {}),
    ("test_eq_in", "{{ 1 is equalto 1 }} {{ 'a' is eq 'b' }} {{ 'a' is in ['a', 'b'] }} {{ 'z' is in 'xyz' }} "
                   "{{ 'user' is not in ['system'] }}", {}),
    ("test_is_not", "{{ none is not none }} {{ 1 is not string }} {{ nothing is not defined }}", {}),
    ("test_not_precedence", "{{ not nothing is defined }} {{ not (1 == 2) }} {{ not 1 == 2 }}", {}),
    # --- operators
    ("op_logic", "{{ true and false }} {{ true or false }} {{ not true }} {{ 0 or 'x' }} {{ 'a' and 'b' }} {{ '' and 'b' }}|"
                 "{{ none or [] }}", {}),
    ("op_in", "{{ 'ell' in 'hello' }} {{ 2 in [1, 2] }} {{ 'role' in messages[0] }} {{ 'tool_calls' not in messages[0] }} "
              "{{ 'x' not in 'abc' }}", {}),
    ("op_compare", "{{ 1 < 2 }} {{ 2 <= 2 }} {{ 'a' < 'b' }} {{ 1 == 1.0 }} {{ 'a' != 'A' }} {{ [1, 2] == [1, 2] }} "
                   "{{ true == 1 }} {{ 1 < 2 < 3 }} {{ none == none }}", {}),
    ("op_arith", "{{ 1 + 2 }} {{ 5 - 7 }} {{ 3 * 4 }} {{ 7 / 2 }} {{ 4 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} "
                 "{{ 2 ** 10 }} {{ 2 ** -1 }} {{ 1.5 + 1 }} {{ 10 / 4 }} {{ 1 / 3 }} {{ 0.1 + 0.2 }} {{ 3 * 1.0 }}", {}),
    ("op_unary_pow_precedence", "{{ -2 ** 2 }} {{ -(2 ** 2) }} {{ 2 + 3 * 4 }} {{ (2 + 3) * 4 }} {{ 2 ** 3 ** 2 }} {{ -3 + 5 }} "
                                "{{ 10 - 2 - 3 }}", {}),
    ("op_concat", "{{ 'a' ~ 1 ~ none ~ true ~ 1.0 ~ nothing ~ 'z' }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ 'ab' * 3 }}", {}),
    ("op_conditional", "{{ 'y' if true else 'n' }} {{ 'y' if false else 'n' }} [{{ 'y' if false }}] "
                       "{{ ('y' if false) is defined }} {{ 'a' if 0 else 'b' if 1 else 'c' }}", {}),
    ("op_string_list_mult", "{{ '-' * 5 }} {{ [0] * 3 }}", {}),
    # --- literals and printing
    ("lit_strings", "{{ 'single \\'quoted\\'' }}|{{ \"double \\\"quoted\\\"\" }}|{{ 'nl\\nx' }}|{{ 'back\\\\slash' }}|"
                    "{{ \"mixed 'q'\" }}|{{ 'tab\\tx' }}|{{ '\\u00e9\\x41' }}", {}),
    ("lit_numbers", "{{ 42 }} {{ -7 }} {{ 1.0 }} {{ 0.5 }} {{ 1.50 }} {{ 1e3 }} {{ 1_000 }} {{ 2.5e-3 }} {{ 100.0 * 3 }}", {}),
    ("lit_bool_none", "{{ true }} {{ True }} {{ false }} {{ False }} {{ none }} {{ None }} [{{ nothing }}]", {}),
    ("print_list_dict_tuple", "{{ [1, 'a', none, true, 1.0] }} {{ {'a': 1, 'b': [false, 'x']} }} {{ (1, 'b') }} {{ (1,) }} "
                              "{{ [] }} {{ {} }}", {}),
    ("print_repr_quoting", "{{ [\"it's\", 'say \"hi\"', 'a\\nb', 'é😀', 'back\\\\'] }}", {}),
    ("print_messages_slice", "{{ messages[:2] }}", {}),
    ("print_json_vars", "{{ i }} {{ f }} {{ neg }} {{ big }} {{ small }} {{ obj }}",
     {"i": 1, "f": 1.0, "neg": -0.25, "big": 1e20, "small": 1.5e-07, "obj": {"x": [1, 2.0, None, True, "s"]}}),
    # --- access
    ("access_attr_vs_subscript", "{{ messages[0].content == messages[0]['content'] }} {{ messages[1]['role'] }} "
                                 "{{ d['with space'] }} {{ d.k }} {{ messages[0]['missing'] is defined }} "
                                 "{{ l[0] }} {{ l.1 }}", {"d": {"k": "v", "with space": "s"}, "l": ["a", "b"]}),
    ("access_missing_prints_empty", "[{{ messages[0].nope }}][{{ messages[0]['nope'] }}][{{ nothing }}][{{ l[9] }}]", {"l": [1]}),
    ("dict_get", "{{ d.get('a') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }} {{ d.get('a', 'dflt') }}", {"d": {"a": 1}}),
    ("dict_keys_values_join", "{{ d.keys() | join(',') }} {{ d.values() | join(',') }} {{ d.items() | list }}", {"d": {"b": 1, "a": 2}}),
    ("range_forms", "{{ range(3) | list }} {{ range(1, 4) | list }} {{ range(0, 10, 3) | list }} {{ range(5, 0, -2) | list }} "
                    "{% for i in range(2) %}{{ i }}{% endfor %}", {}),
    ("dict_literal_loop", "{% set m = {'user': 'U', 'assistant': 'A'} %}{% for msg in messages %}{{ m[msg.role] | default('?') }}"
                          "{% endfor %}", {}),
    ("undefined_filters", "{{ nothing | length }} [{{ nothing | trim }}] {{ nothing | default([]) | length }}", {}),
    ("strftime_now_formats", "{{ strftime_now('%Y-%m-%d') }} {{ strftime_now('%d %B %Y') }} {{ strftime_now('%H:%M %a %b') }}", {}),
    # --- errors
    ("err_raise_exception", "before {{ raise_exception('Custom failure: ' + messages[0].role) }} after", {}),
    ("err_undefined_attr", "{{ foo.bar }}", {}),
    ("err_missing_key_attr", "{{ messages[0].nope.x }}", {}),
    ("err_unknown_filter", "{{ messages | no_such_filter }}", {}),
    ("err_unknown_test", "{{ messages is no_such_test }}", {}),
    ("err_division_by_zero", "{{ 1 / 0 }}", {}),
    ("err_unknown_tag", "{% endfor %}", {}),
    ("err_sandbox_mutation", "{% set x = [] %}{{ x.append(1) }}", {}),
]


def base_vars(messages, add_generation_prompt):
    return {"messages": messages, "add_generation_prompt": add_generation_prompt,
            "bos_token": "<s>", "eos_token": "</s>"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="Tests/Golden/chat_template/cases.json")
    args = ap.parse_args()
    env = make_env()
    cases = []
    for family, template, variants in FAMILIES:
        for suffix, messages, gen, extra in variants:
            cases.append((f"{family}_{suffix}", template, {**base_vars(messages, gen), **extra}))
    for name, template, extra in FEATURES:
        cases.append((f"feature_{name}", template, {**base_vars(SMALL, False), **extra}))

    out = []
    names = set()
    for name, template, variables in cases:
        assert name not in names, name
        names.add(name)
        # vars go through JSON first so the reference renders exactly what the Swift side reads
        variables = json.loads(json.dumps(variables, ensure_ascii=False))
        kind, text = render(env, template, variables)
        out.append({"name": name, "template": template, "vars": variables, kind: text})

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"cases": out}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    n_err = sum("error" in c for c in out)
    print(f"wrote {args.out}: {len(out)} cases ({n_err} expected errors)")


if __name__ == "__main__":
    main()

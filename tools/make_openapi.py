#!/usr/bin/env python3
# Writes Sources/hmst-server/OpenAPI.swift: the OpenAPI 3.0 document of hmst-server as a Swift
# string (served at /openapi.json). Edit the schemas here, run this, commit both.
import json
import os
def ref(n): return {"$ref": f"#/components/schemas/{n}"}
err_resp = {"description": "An error in OpenAI's shape", "content": {"application/json": {"schema": ref("Error")}}}
def errors(*codes):
    d = {}
    for c in codes: d[str(c)] = {"$ref": "#/components/responses/Error"}
    return d
def ok(schema, desc="OK", ctype="application/json", extra=None):
    content = {ctype: {"schema": schema}}
    if extra: content.update(extra)
    return {"200": {"description": desc, "content": content}}
def body(schema): return {"required": True, "content": {"application/json": {"schema": schema}}}
std = (400, 401, 413, 503)
# placeholders the server replaces with its own numbers when it serves the document
VOCAB_MAX, TOKENS_CAP = 2147483001, 2147483002
tokens_arr = {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": VOCAB_MAX}, "minItems": 1, "maxItems": 2048}
prompt = {"oneOf": [
    {"type": "string", "minLength": 1, "maxLength": 8192},
    {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 8192}, "minItems": 1, "maxItems": 16},
    tokens_arr,
    {"type": "array", "items": tokens_arr, "minItems": 1, "maxItems": 16}]}
stop = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "maxItems": 4}], "nullable": True}
sampling = {
    "model": {"type": "string", "description": "Accepted and ignored: the server serves one model."},
    "max_tokens": {"type": "integer", "minimum": 0, "maximum": TOKENS_CAP, "nullable": True, "description": "At most the server's --max-tokens-cap, and prompt + max_tokens at most the context."},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True, "default": 1},
    "top_p": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True, "default": 1},
    "top_k": {"type": "integer", "minimum": 0, "maximum": 1000000, "nullable": True, "default": 0},
    "min_p": {"type": "number", "minimum": 0, "maximum": 1, "nullable": True, "default": 0},
    "repetition_penalty": {"type": "number", "minimum": 0.01, "maximum": 100, "nullable": True, "default": 1},
    "repeat_last_n": {"type": "integer", "minimum": 0, "maximum": 1000000, "nullable": True, "default": 64,
                      "description": "hmst's: the recent tokens of the context (prompt included) the repetition, frequency and presence penalties count."},
    "frequency_penalty": {"type": "number", "minimum": -2, "maximum": 2, "nullable": True, "default": 0,
                          "description": "OpenAI's: logit -= count * frequency_penalty + (count > 0) * presence_penalty, count over the last repeat_last_n tokens."},
    "presence_penalty": {"type": "number", "minimum": -2, "maximum": 2, "nullable": True, "default": 0, "description": "See frequency_penalty."},
    "logit_bias": {"type": "object", "nullable": True, "maxProperties": 1024,
                   "additionalProperties": {"type": "number", "minimum": -100, "maximum": 100},
                   "description": "Token id (a decimal string, below the vocabulary) to a bias added to its logit before sampling: -100 all but bans it, 100 all but forces it."},
    "seed": {"type": "integer", "format": "int64", "minimum": -9223372036854775808, "maximum": 9223372036854775807, "nullable": True},
    "stop": stop,
    "response_format": {"type": "object", "nullable": True, "required": ["type"], "properties": {
                            "type": {"type": "string", "enum": ["text", "json_object", "json_schema"]},
                            "schema": {"type": "object", "description": "llama.cpp's: json_object with a schema is json_schema with it."},
                            "json_schema": {"type": "object", "properties": {"name": {"type": "string"}, "description": {"type": "string"},
                                                                             "schema": {"type": "object"}, "strict": {"type": "boolean", "nullable": True}}}},
                        "description": "json_object: the text is one JSON object; json_schema: one JSON value json_schema.schema accepts "
                                       "(type, enum, const, anyOf, oneOf, $ref, properties, required, additionalProperties, items, prefixItems, "
                                       "minItems, maxItems, minLength, maxLength, pattern (ECMA-262 subset), minimum/maximum/exclusiveMinimum/exclusiveMaximum, formats date/time/date-time/uuid; other constraining keywords are a 400). Every token is checked; "
                                       "generation ends when the value is complete."},
    "grammar": {"type": "string", "nullable": True,
                "description": "llama.cpp's: the text is a sentence of this GBNF grammar (it starts at rule root). Not with response_format json_object/json_schema."},
    "json_schema": {"type": "object", "nullable": True,
                    "description": "llama.cpp's: as response_format json_schema with this schema."},
    "n": {"type": "integer", "minimum": 1, "maximum": 8, "nullable": True, "default": 1},
    "stream": {"type": "boolean", "nullable": True, "default": False},
    "stream_options": {"type": "object", "nullable": True, "properties": {"include_usage": {"type": "boolean"}}},
    "user": {"type": "string", "nullable": True},
    "cache_prompt": {"type": "boolean", "nullable": True, "default": True,
                     "description": "llama.cpp's: keep the longest prefix of the prompt that a slot's context already holds (its KV cache) and evaluate only the rest; the request goes to the free slot that holds the most of it. usage.prompt_tokens_details.cached_tokens counts the tokens kept. Cached rows may differ from a fresh evaluation's in the last bits; false evaluates the whole prompt."},
}
completion_req = {"type": "object", "required": ["prompt"], "properties": dict(sampling, prompt=prompt,
    logprobs={"type": "integer", "minimum": 0, "maximum": 20, "nullable": True},
    echo={"type": "boolean", "nullable": True, "default": False,
          "description": "The prompt's text ahead of the completion; with logprobs, its tokens' log-probabilities too (null for the first)."})}
message = {"type": "object", "required": ["role", "content"], "properties": {
    "role": {"type": "string", "enum": ["system", "developer", "user", "assistant", "tool"]},
    "content": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "object", "required": ["type", "text"], "properties": {
        "type": {"type": "string", "enum": ["text"]}, "text": {"type": "string"}}}}], "nullable": True},
    "name": {"type": "string"},
    "tool_calls": {"type": "array", "items": {"type": "object"},
                   "description": "An assistant's earlier tool calls, passed to a Jinja chat template as given."},
    "tool_call_id": {"type": "string"}}}
tool = {"type": "object", "required": ["type", "function"], "properties": {
    "type": {"type": "string", "enum": ["function"]},
    "function": {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,64}$"}, "description": {"type": "string"},
        "parameters": {"type": "object", "description": "JSON Schema of the arguments"}}}}}
chat_req = {"type": "object", "required": ["messages"], "properties": dict(sampling,
    tools={"type": "array", "items": tool, "maxItems": 128, "nullable": True,
           "description": "The calls are written in the syntax of the model's chat template: <tool_call> (Hermes, Qwen), [TOOL_CALLS] (Mistral), a JSON reply (Llama 3.x), "
                          "else hmst's generic format (the tools described in a system message, the reply held to {\"tool_calls\": [...]} or {\"response\": ...} by a grammar). "
                          "Replies are parsed into message.tool_calls (finish_reason tool_calls); text that does not parse stays content."},
    tool_choice={"oneOf": [{"type": "string", "enum": ["none", "auto", "required"]},
                           {"type": "object", "required": ["type", "function"], "properties": {"type": {"type": "string", "enum": ["function"]},
                                                                                                "function": {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}}}],
                 "nullable": True, "description": "required or a named function: a grammar holds the reply to a call of those tools, whose arguments follow their schema; "
                                                  "auto (default): the reply is free until it starts a call, then the same grammar holds the call. "
                                                  "Streamed, a call a grammar holds goes out as it is written (delta.tool_calls: id and name, then pieces of its arguments)."},
    parallel_tool_calls={"type": "boolean", "nullable": True, "default": True},
    messages={"type": "array", "items": message, "minItems": 1, "maxItems": 64},
    chat_template_kwargs={"type": "object", "nullable": False,
                          "description": "llama.cpp's and vLLM's: extra variables for the model's Jinja chat template (e.g. enable_thinking)."},
    max_completion_tokens={"type": "integer", "minimum": 0, "maximum": TOKENS_CAP, "nullable": True},
    logprobs={"type": "boolean", "nullable": True},
    top_logprobs={"type": "integer", "minimum": 0, "maximum": 20, "nullable": True})}
usage = {"type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"], "properties": {
    "prompt_tokens": {"type": "integer"}, "completion_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"},
    "prompt_tokens_details": {"type": "object", "properties": {"cached_tokens": {"type": "integer",
        "description": "Prompt tokens taken from a slot's KV cache instead of evaluated (cache_prompt); each prompt counted once."}}}}}
finish = {"type": "string", "enum": ["stop", "length"]}
completion = {"type": "object", "required": ["id", "object", "created", "model", "choices", "usage"], "properties": {
    "id": {"type": "string"}, "object": {"type": "string", "enum": ["text_completion"]}, "created": {"type": "integer"},
    "model": {"type": "string"}, "system_fingerprint": {"type": "string"}, "usage": ref("Usage"),
    "choices": {"type": "array", "items": {"type": "object", "required": ["index", "text", "finish_reason"], "properties": {
        "index": {"type": "integer"}, "text": {"type": "string"}, "finish_reason": finish,
        "logprobs": {"type": "object", "nullable": True}}}}}}
chat = {"type": "object", "required": ["id", "object", "created", "model", "choices", "usage"], "properties": {
    "id": {"type": "string"}, "object": {"type": "string", "enum": ["chat.completion"]}, "created": {"type": "integer"},
    "model": {"type": "string"}, "system_fingerprint": {"type": "string"}, "usage": ref("Usage"),
    "choices": {"type": "array", "items": {"type": "object", "required": ["index", "message", "finish_reason"], "properties": {
        "index": {"type": "integer"}, "finish_reason": {"type": "string", "enum": ["stop", "length", "tool_calls"]},
        "message": {"type": "object", "required": ["role", "content"], "properties": {
            "role": {"type": "string"}, "content": {"type": "string", "nullable": True},
            "tool_calls": {"type": "array", "items": {"type": "object", "required": ["id", "type", "function"], "properties": {
                "id": {"type": "string"}, "type": {"type": "string", "enum": ["function"]},
                "function": {"type": "object", "required": ["name", "arguments"], "properties": {
                    "name": {"type": "string"}, "arguments": {"type": "string", "description": "JSON text of an object"}}}}}}}},
        "logprobs": {"type": "object", "nullable": True}}}}}}
# before OpenAPI 3.2 the schema of text/event-stream describes one event
sse = {"text/event-stream": {"schema": {"type": "object", "required": ["data"],
    "description": "Server-sent events: `data: <chunk JSON>` per event, then `data: [DONE]`.",
    "properties": {"data": {"type": "string"}}}}}
emb_req = {"type": "object", "required": ["input"], "properties": {
    "input": {"oneOf": [{"type": "string", "minLength": 1, "maxLength": 8192}, {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 8192}, "minItems": 1, "maxItems": 256},
                        tokens_arr, {"type": "array", "items": tokens_arr, "minItems": 1, "maxItems": 256}]},
    "model": {"type": "string"},
    "encoding_format": {"type": "string", "enum": ["float", "base64"], "default": "float"},
    "dimensions": {"type": "integer", "minimum": 1, "nullable": True, "description": "Only the model's embedding size."},
    "user": {"type": "string"}}}
emb = {"type": "object", "required": ["object", "data", "model", "usage"], "properties": {
    "object": {"type": "string", "enum": ["list"]}, "model": {"type": "string"},
    "data": {"type": "array", "items": {"type": "object", "required": ["object", "index", "embedding"], "properties": {
        "object": {"type": "string", "enum": ["embedding"]}, "index": {"type": "integer"},
        "embedding": {"oneOf": [{"type": "array", "items": {"type": "number"}}, {"type": "string"}]}}}},
    "usage": {"type": "object", "properties": {"prompt_tokens": {"type": "integer"}, "total_tokens": {"type": "integer"}}}}}
model_obj = {"type": "object", "required": ["id", "object", "created", "owned_by"], "properties": {
    "id": {"type": "string"}, "object": {"type": "string", "enum": ["model"]}, "created": {"type": "integer"}, "owned_by": {"type": "string"}}}
owner_schema = {"type": "string", "minLength": 1, "maxLength": 256, "description": "A user or session id (no control characters). Entries belong to one owner; searches and the engine see only the named owner's entries."}
owner = ref("Owner")
tier1 = {"name": "tier", "in": "path", "required": True, "schema": {"type": "string", "enum": ["episodic", "semantic"]}}
tier2 = {"name": "tier", "in": "path", "required": True, "schema": {"type": "string", "enum": ["episodic", "semantic", "both"]}}
owner_q = {"name": "owner", "in": "query", "required": True, "schema": owner}
mem_add = {"type": "object", "required": ["owner", "text"], "properties": {
    "owner": owner, "text": {"type": "string", "minLength": 1, "maxLength": 65536},
    "source": {"type": "string"}, "importance": {"type": "number", "minimum": 0, "maximum": 1}}}
mem_search = {"type": "object", "required": ["owner", "query"], "properties": {
    "owner": owner, "query": {"type": "string", "minLength": 1, "maxLength": 65536}, "k": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5}}}
entry = {"type": "object", "required": ["id", "tier", "text", "owner"], "properties": {
    "object": {"type": "string"}, "id": {"type": "integer"}, "tier": {"type": "string"}, "text": {"type": "string"}, "owner": {"type": "string"}}}
def list_of(item): return {"type": "object", "required": ["object", "data"], "properties": {
    "object": {"type": "string", "enum": ["list"]}, "data": {"type": "array", "items": item}}}
decision = {"type": "object", "required": ["chosen", "probability"], "properties": {
    "chosen": {"type": "boolean"}, "probability": {"type": "number", "minimum": 0, "maximum": 1, "description": "The policy's P(yes); 0 or 1 for a fixed policy."}}}
DECISIONS = ["early_exit", "episodic", "semantic", "expert_selection", "verify"]
citation = {"type": "object", "required": ["tier", "id", "score", "text"], "properties": {
    "tier": {"type": "string", "enum": ["episodic", "semantic"]}, "id": {"type": "integer"}, "score": {"type": "number"}, "text": {"type": "string"}}}
COST = ["prompt_tokens", "generated_tokens", "matmul_flops", "vectors_scanned", "retrieval_flops", "ssm_tokens_encoded",
        "retrievals", "critic_calls", "critic_tokens", "attempts", "latency_units"]
ask_req = {"type": "object", "required": ["query", "owner"], "properties": {
    "query": {"type": "string", "minLength": 1, "maxLength": 65536, "description": "The question. `prompt` is accepted as an alias (not both)."},
    "prompt": {"type": "string", "nullable": True, "description": "Alias of query."},
    "owner": owner,
    "policy": {"type": "string", "nullable": True, "default": "auto", "description": "auto (the checkpoint's controller, else full), controller, full (both memories + verification), none, or decisions joined by +: early_exit, episodic, semantic, expert_selection, verify. Anything else is a 400."},
    "max_tokens": {"type": "integer", "minimum": 1, "maximum": TOKENS_CAP, "nullable": True, "default": 16, "description": "Answer tokens per attempt; at most min(4096, the server's --max-tokens-cap)."},
    "temperature": {"type": "number", "minimum": 0, "maximum": 2, "nullable": True, "default": 0},
    "seed": {"type": "integer", "format": "int64", "minimum": -9223372036854775808, "maximum": 9223372036854775807, "nullable": True, "default": 0},
    "stream": {"type": "boolean", "nullable": True, "default": False}}}
answer = {"type": "object", "required": ["id", "object", "created", "model", "owner", "answer", "model_answer", "finish_reason", "max_tokens", "abstained", "retried",
                                         "confidence", "confidence_calibrated", "policy", "decisions", "citations", "usage", "cost"], "properties": {
    "id": {"type": "string"}, "object": {"type": "string", "enum": ["hmst.answer"]}, "created": {"type": "integer"},
    "model": {"type": "string"}, "owner": {"type": "string"}, "query": {"type": "string"},
    "answer": {"type": "string", "description": "What the engine says: the model's answer, or the abstain text."},
    "model_answer": {"type": "string"},
    "finish_reason": {"type": "string", "enum": ["stop", "length", "cancelled"], "description": "Why the answer ended: its end marker, a newline or end-of-text (stop), the token limit max_tokens (length), or the client leaving (cancelled)."},
    "max_tokens": {"type": "integer", "description": "The answer's token limit: the request's max_tokens, or less when the prompt left less room in the context."},
    "abstained": {"type": "boolean"}, "retried": {"type": "boolean"},
    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    "confidence_calibrated": {"type": "boolean", "description": "true: the critic's calibrated P(correct); false: the answer tokens' mean probability."},
    "policy": {"type": "string"},
    "decisions": {"type": "object", "required": DECISIONS, "properties": {d: ref("Decision") for d in DECISIONS}},
    "citations": {"type": "array", "items": ref("Citation")},
    "usage": ref("Usage"),
    "cost": {"type": "object", "required": COST, "properties": {c: {"type": "number"} for c in COST}},
    "stage_ms": {"type": "object", "additionalProperties": {"type": "number"}}}}
hit = {"type": "object", "required": ["id", "tier", "score", "text", "owner"], "properties": {
    "object": {"type": "string"}, "id": {"type": "integer"}, "tier": {"type": "string"}, "score": {"type": "number"},
    "text": {"type": "string"}, "owner": {"type": "string"}}}
doc = {
  "openapi": "3.0.3",
  "info": {"title": "hmst serve", "version": "0.1.0",
           "description": "OpenAI-compatible HTTP API of hmst-server (`hmst serve`), plus hmst's memory and engine routes. Errors use OpenAI's shape."},
  "servers": [{"url": "http://127.0.0.1:8080"}],
  "security": [{}, {"bearerAuth": []}],
  "paths": {
    "/health": {"get": {"operationId": "health", "security": [], "summary": "Liveness; never needs a key.",
        "responses": ok({"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]},
            "slots": {"type": "integer"}, "slots_busy": {"type": "integer"}, "queue_depth": {"type": "integer"}}})}},
    "/metrics": {"get": {"operationId": "metrics", "summary": "Prometheus text format.",
        "responses": dict(ok({"type": "string"}, ctype="text/plain"), **errors(401))}},
    "/openapi.json": {"get": {"operationId": "openapi", "summary": "This document.", "responses": dict(ok({"type": "object"}), **errors(401))}},
    "/v1/models": {"get": {"operationId": "listModels", "responses": dict(ok(list_of(ref("Model"))), **errors(401))}},
    "/v1/models/{model}": {"get": {"operationId": "retrieveModel",
        "parameters": [{"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}],
        "responses": dict(ok(ref("Model")), **errors(401, 404))}},
    "/v1/completions": {"post": {"operationId": "createCompletion", "requestBody": body(ref("CompletionRequest")),
        "responses": dict({"200": {"description": "A completion, or server-sent events with stream: true",
            "content": dict({"application/json": {"schema": ref("Completion")}}, **sse)}}, **errors(*std))}},
    "/v1/chat/completions": {"post": {"operationId": "createChatCompletion", "requestBody": body(ref("ChatCompletionRequest")),
        "responses": dict({"200": {"description": "A chat completion, or server-sent events with stream: true",
            "content": dict({"application/json": {"schema": ref("ChatCompletion")}}, **sse)}}, **errors(*std))}},
    "/v1/embeddings": {"post": {"operationId": "createEmbedding", "requestBody": body(ref("EmbeddingRequest")),
        "responses": dict(ok(ref("EmbeddingList")), **errors(*std))}},
    "/tokenize": {"post": {"operationId": "tokenize", "summary": "The model's tokenizer: text to token ids (llama.cpp's route).",
        "requestBody": body({"type": "object", "required": ["content"], "properties": {
            "content": {"type": "string"}, "with_pieces": {"type": "boolean", "nullable": True, "default": False}}}),
        "responses": dict(ok({"type": "object", "required": ["tokens"], "properties": {"tokens": {"type": "array", "items": {"oneOf": [
            {"type": "integer"}, {"type": "object", "required": ["id", "piece"], "properties": {"id": {"type": "integer"}, "piece": {"type": "string"}}}]}}}}),
            **errors(400, 401, 413))}},
    "/detokenize": {"post": {"operationId": "detokenize", "summary": "The model's tokenizer: token ids to text (llama.cpp's route).",
        "requestBody": body({"type": "object", "required": ["tokens"], "properties": {
            "tokens": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": VOCAB_MAX}, "maxItems": 1048576}}}),
        "responses": dict(ok({"type": "object", "required": ["content"], "properties": {"content": {"type": "string"}}}), **errors(400, 401, 413))}},
    "/v1/hmst/ask": {"post": {"operationId": "ask", "summary": "The engine: answer, confidence, the five decisions, citations and cost; memory scoped to the owner. 501 when the checkpoint cannot run the engine.",
        "requestBody": body(ref("AskRequest")),
        "responses": dict({"200": {"description": "The answer, or server-sent events with stream: true (hmst.answer.attempt, hmst.answer.delta, then the hmst.answer object)",
            "content": dict({"application/json": {"schema": ref("Answer")}}, **sse)}}, **errors(400, 401, 413, 501, 503))}},
    "/v1/hmst/memory/{tier}/entries": {
        "post": {"operationId": "addMemory", "parameters": [tier1], "requestBody": body(ref("MemoryAdd")),
            "responses": dict(ok({"type": "object", "required": ["id", "tier", "owner"], "properties": {
                "object": {"type": "string"}, "id": {"type": "integer"}, "tier": {"type": "string"}, "owner": {"type": "string"}, "saved": {"type": "boolean"}}}),
                **errors(400, 401, 404, 413, 503))},
        "get": {"operationId": "listMemories", "summary": "One owner's entries, ids ascending.", "parameters": [tier2, owner_q],
            "responses": dict(ok(list_of(ref("MemoryEntry"))), **errors(400, 401, 404))},
        "delete": {"operationId": "deleteOwnerMemories", "summary": "Every entry of one owner.", "parameters": [tier2, owner_q],
            "responses": dict(ok({"type": "object", "required": ["owner", "tier", "deleted"], "properties": {
                "object": {"type": "string"}, "owner": {"type": "string"}, "tier": {"type": "string"}, "deleted": {"type": "integer"}}}),
                **errors(400, 401, 404))}},
    "/v1/hmst/memory/{tier}/entries/{id}": {
        "delete": {"operationId": "deleteMemory", "parameters": [tier1, {"name": "id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}}, owner_q],
            "responses": dict(ok({"type": "object", "required": ["id", "tier", "deleted"], "properties": {
                "object": {"type": "string"}, "id": {"type": "integer"}, "tier": {"type": "string"}, "deleted": {"type": "boolean"}}}),
                **errors(400, 401, 404))}},
    "/v1/hmst/memory/{tier}/search": {
        "post": {"operationId": "searchMemory", "parameters": [tier2], "requestBody": body(ref("MemorySearch")),
            "responses": dict(ok(list_of(ref("MemoryHit"))), **errors(400, 401, 404, 413, 503))}},
    "/v1/hmst/memory/stats": {
        "get": {"operationId": "memoryStats", "parameters": [dict(owner_q, required=False)],
            "responses": dict(ok({"type": "object", "required": ["episodic", "semantic"], "properties": {
                "object": {"type": "string"}, "directory": {"type": "string"}, "saves": {"type": "integer"},
                "episodic": {"type": "object"}, "semantic": {"type": "object"}}}), **errors(400, 401, 404))}},
  },
  "components": {
    "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
    "responses": {"Error": err_resp},
    "schemas": {
      "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object", "required": ["message", "type", "param", "code"], "properties": {
          "message": {"type": "string"}, "type": {"type": "string"}, "param": {"type": "string", "nullable": True}, "code": {"type": "string", "nullable": True}}}}},
      "Usage": usage, "CompletionRequest": completion_req, "ChatCompletionRequest": chat_req, "Completion": completion,
      "ChatCompletion": chat, "EmbeddingRequest": emb_req, "EmbeddingList": emb, "Model": model_obj,
      "MemoryAdd": mem_add, "MemorySearch": mem_search, "MemoryHit": hit, "MemoryEntry": entry, "Owner": owner_schema,
      "AskRequest": ask_req, "Answer": answer, "Decision": decision, "Citation": citation,
    }},
}
text = json.dumps(doc, indent=1)
assert '"""#' not in text
swift = '''// The OpenAPI 3.0 document of hmst-server, served at GET /openapi.json and printed by
// `hmst-server --print-openapi`. It describes every route, the request schemas with the
// server's limits, and the error shape; Tests/server/test_schemathesis.py fuzzes the server
// against it. Keep it in step with the routes (ServerCommand.swift) and their checks.
// Written by tools/make_openapi.py: edit the schemas there. Two numbers are placeholders that
// the server replaces with its own when it serves the document: the largest token id
// (2147483001) and --max-tokens-cap (2147483002).

enum OpenAPIDocument {
    static func json(vocabSize: Int, maxTokensCap: Int) -> String {
        template.replacingOccurrences(of: "2147483001", with: String(max(0, vocabSize - 1)))
            .replacingOccurrences(of: "2147483002", with: String(maxTokensCap))
    }

    static let template = #"""
''' + text + '''
"""#
}

import Foundation
'''
open(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'Sources', 'hmst-server', 'OpenAPI.swift'), 'w').write(swift)
print(len(text))

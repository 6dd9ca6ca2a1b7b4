#!/usr/bin/env bash
# The hmst command-line tool end to end: every subcommand, its modes and its errors.
# Usage: Tests/cli/test_cli.sh HMST_BINARY WORKDIR
set -uo pipefail
HMST=$1
W=$2
rm -rf "$W" && mkdir -p "$W"
pass=0
fail=0
check() { # description, command...
    local what=$1
    shift
    if "$@" >"$W/out" 2>"$W/err"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL: $what" >&2
        sed 's/^/  | /' "$W/out" "$W/err" | head -20 >&2
    fi
}
fails() { # description, command... (must exit non-zero with a message)
    local what=$1
    shift
    if "$@" >"$W/out" 2>"$W/err"; then
        fail=$((fail + 1))
        echo "FAIL (succeeded): $what" >&2
    elif [[ -s "$W/err" ]]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL (no message): $what" >&2
    fi
}
# Each run writes checkpoints of tens of MB: drop them once nothing later reads them, and the
# whole work directory when every check passed (CI machines can be short of disk).
drop() { for d in "$@"; do rm -rf "${W:?}/$d"; done; }
CORPUS=(/usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0)

check "system-info --json" bash -c "$HMST system-info --json | python3 -c 'import json,sys; json.load(sys.stdin)'"
# OpenBLAS kernels: whatever OpenBLAS picks (OPENBLAS_CORETYPE=Prescott forces the misdetection
# seen on CPUs newer than Debian's OpenBLAS), the kernels in use match the CPU; =keep reports it.
blas_field() { python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
export -f blas_field
check "system-info names the int8 prompt path" bash -c \
    "$HMST system-info | grep -q 'int8 weights: prompts of more than 64 tokens' && HMST_BF16_WEIGHT_COMPUTE=f32 HMST_F32_GEMM=openblas $HMST system-info --json | blas_field int8_prompts | grep -qx openblas-f32"
check "kernels in use match the CPU" bash -c "[[ \$($HMST system-info --json | blas_field blas_below_capability) == False ]]"
if grep -q avx /proc/cpuinfo; then
    check "OPENBLAS_CORETYPE=Prescott is upgraded" bash -c \
        "j=\$(OPENBLAS_CORETYPE=Prescott $HMST system-info --json); [[ \$(blas_field blas_core_at_load <<<\"\$j\") == Prescott && \$(blas_field blas_core <<<\"\$j\") != Prescott && \$(blas_field blas_below_capability <<<\"\$j\") == False ]]"
    check "HMST_BLAS_CORETYPE=keep keeps and reports it" bash -c \
        "j=\$(OPENBLAS_CORETYPE=Prescott HMST_BLAS_CORETYPE=keep $HMST system-info --json 2>$W/keep.err); [[ \$(blas_field blas_core <<<\"\$j\") == Prescott && \$(blas_field blas_below_capability <<<\"\$j\") == True ]] && grep -q 'below this CPU' $W/keep.err"
    check "HMST_BLAS_CORETYPE beyond the CPU is refused" bash -c \
        "HMST_BLAS_CORETYPE=NoSuchCore $HMST system-info --json 2>&1 >/dev/null | grep -q 'not an OpenBLAS'"
fi
check "info --presets" bash -c "$HMST info --presets | grep -q 'micro'"
check "tokenizer train" "$HMST" tokenizer train --vocab-size 800 --no-progress --output "$W/tok.json" "${CORPUS[@]}"
check "tokenizer encode/decode round trip" bash -c \
    "ids=\$($HMST tokenizer encode --tokenizer $W/tok.json 'Hello, world!'); [[ \$($HMST tokenizer decode --tokenizer $W/tok.json \$ids) == 'Hello, world!' ]]"
check "init with tokenizer" bash -c "$HMST init --size micro --seed 3 --tokenizer $W/tok.json $W/ckpt > $W/init.txt"
check "init says untrained" grep -q UNTRAINED "$W/init.txt"
check "info on checkpoint" bash -c "$HMST info $W/ckpt | grep -q 'UNTRAINED' && $HMST info $W/ckpt | grep -q 'tokenizer:  800 tokens'"
check "info --json" bash -c "$HMST info --json $W/ckpt | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d[\"untrained\"]'"
check "generate --prompt" bash -c "$HMST generate $W/ckpt --prompt 'The license' --max-length 10 --seed 1 2>$W/stats | grep -q '^The license'"
check "generate reports tokens/s, latency and TTFT" bash -c "grep -q 'tokens/s' $W/stats && grep -q 'TTFT' $W/stats && grep -q 'latency' $W/stats"
check "generate is reproducible with --seed" bash -c \
    "[[ \$($HMST generate $W/ckpt --prompt 'A' --max-length 12 --seed 9 2>/dev/null) == \$($HMST generate $W/ckpt --prompt 'A' --max-length 12 --seed 9 2>/dev/null) ]]"
printf 'First prompt\nSecond prompt\n' >"$W/prompts.txt"
check "a negative option value reaches the range check (not 'Missing value'); -- still ends the options" bash -c \
    "! $HMST generate $W/ckpt --prompt x --temperature -1 2> $W/neg.err && grep -q 'temperature -1.0 must be finite and >= 0' $W/neg.err && \
     ! $HMST init --size micro --vocab -5 $W/negv 2> $W/negv.err && grep -q 'vocab' $W/negv.err && ! grep -q 'Missing value' $W/negv.err && \
     ! $HMST memory search --dir $W/nomem --model $W/ckpt --mode lexical -k -1 x 2> $W/negk.err && grep -q 'k = -1 must be' $W/negk.err && ! grep -q 'Missing value' $W/negk.err && \
     ! $HMST memory search --dir $W/nomem --model $W/ckpt --mode lexical x 2> $W/nomem.err && grep -q 'no such memory directory' $W/nomem.err"
check "generate batch --input/--output" "$HMST" generate "$W/ckpt" --input "$W/prompts.txt" --output "$W/results.txt" --max-length 5 --temperature 0
check "generate --logit-bias forces a token; a bad one is named" bash -c \
    "a=\$($HMST generate $W/ckpt --prompt 'A' --max-length 6 --temperature 0 --logit-bias 34=100 2>/dev/null) && [[ \$a == AAAAAAA* ]] && [[ \$($HMST tokenizer encode --tokenizer $W/tok.json A) == 34 ]] && \
     ! $HMST generate $W/ckpt --prompt A --logit-bias 65 2> $W/lb.err && grep -q 'takes ID=BIAS' $W/lb.err && \
     ! $HMST generate $W/ckpt --prompt A --logit-bias 99999=1 2> $W/lb.err && grep -q 'names token 99999' $W/lb.err && \
     ! $HMST generate $W/ckpt --prompt A --presence-penalty nan 2> $W/lb.err && grep -q 'presence_penalty nan must be finite' $W/lb.err"
check "generate --json: one JSON object, or a prefix of one when cut" bash -c \
    "$HMST generate $W/ckpt --prompt J --json --max-length 40 --seed 2 --temperature 1 > $W/json.out 2> $W/json.err && \
     python3 -c 'import json,sys; t=open(sys.argv[1]).read()[1:-1]; done=\"stop: eos\" in open(sys.argv[2]).read(); assert t.lstrip().startswith(\"{\"), t; assert not done or isinstance(json.loads(t), dict), t' $W/json.out $W/json.err"
check "generate --grammar: a whole sentence, ended by the grammar" bash -c \
    "$HMST generate $W/ckpt --prompt Q --grammar 'root ::= (\"yes\" | \"no\") \" \" [0-9]{1,3}' --max-length 16 --seed 1 --temperature 1 > $W/gr.out 2> $W/gr.err && \
     grep -Eqx 'Q(yes|no) [0-9]{1,3}' $W/gr.out && grep -q 'stop: eos' $W/gr.err"
check "generate --json-schema-file: JSON the schema accepts when it ends by itself" bash -c \
    "echo '{\"type\":\"object\",\"properties\":{\"ok\":{\"type\":\"boolean\"},\"n\":{\"enum\":[1,2]}},\"required\":[\"ok\",\"n\"]}' > $W/schema.json && \
     $HMST generate $W/ckpt --prompt J --json-schema-file $W/schema.json --max-length 60 --seed 3 --temperature 1 > $W/js.out 2> $W/js.err && \
     python3 -c 'import json,sys; t=open(sys.argv[1]).read()[1:-1]; done=\"stop: eos\" in open(sys.argv[2]).read(); v=json.loads(t) if done else None; assert not done or (set(v)=={\"ok\",\"n\"} and isinstance(v[\"ok\"],bool) and v[\"n\"] in (1,2)), t' $W/js.out $W/js.err"
printf '[{"role": "system", "content": " Be brief. "}, {"role": "user", "content": "Hi <|endoftext|>"}]' > $W/chat.json
check "chat-template: built-in patterns; a checkpoint's chat_template.jinja; message text literal; errors name the line" bash -c \
    "[[ \"\$($HMST chat-template --model $W/ckpt --messages $W/chat.json)\" == \$'System:  Be brief. \\nUser: Hi <|endoftext|>\\nAssistant:' ]] && \
     printf '{%% for m in messages %%}<|endoftext|>{{ m.role }}: {{ m.content | trim }}\\n{%% endfor %%}' > $W/ckpt/chat_template.jinja && \
     [[ \"\$($HMST chat-template --model $W/ckpt --messages $W/chat.json)\" == \$'<|endoftext|>system: Be brief.\\n<|endoftext|>user: Hi <|endoftext|>' ]] && \
     $HMST chat-template --model $W/ckpt --messages $W/chat.json --tokens | tail -1 | grep -q '^0 ' && \
     $HMST chat-template --model $W/ckpt --show | grep -q 'origin: .*chat_template.jinja' && \
     $HMST generate $W/ckpt --chat --system 'Be brief' --prompt Hi --max-length 4 --seed 1 > /dev/null 2> $W/chat.err && grep -q 'prompt tokens' $W/chat.err && \
     printf 'Hi\\nAnd you?\\n' | $HMST generate $W/ckpt --chat --max-length 4 --seed 1 > $W/chat.err 2>&1 && \
     [[ \$(grep -c 'prompt tokens' $W/chat.err) == 2 ]] && grep -q 'prompt tokens (+[0-9]* cached)' $W/chat.err && \
     printf '{{ raise_exception(\"no \" ~ mood) }}' > $W/refuse.jinja && \
     ! $HMST generate $W/ckpt --chat --chat-template-file $W/refuse.jinja --chat-var mood=chat --prompt Hi 2> $W/chat.err && grep -q 'no chat' $W/chat.err && \
     printf '{%% if %%}' > $W/bad.jinja && ! $HMST chat-template --template-file $W/bad.jinja --messages $W/chat.json 2> $W/c.err && \
     grep -q 'bad.jinja: chat template line 1' $W/c.err; rc=\$?; rm -f $W/ckpt/chat_template.jinja; exit \$rc"
printf '[{"type": "function", "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}}]' > $W/tools.json
check "generate --chat --tools: a required call printed as OpenAI's tool_calls; chat-template --tool-choice; errors" bash -c \
    "$HMST generate $W/ckpt --chat --tools $W/tools.json --tool-choice required --prompt Time? --max-length 600 --temperature 0 > $W/tc.out 2> $W/tc.err && \
     grep -q 'tool_calls: \\[{\"id\":\"call_' $W/tc.out && grep -q 'stop: eos' $W/tc.err && \
     printf '[{\"role\": \"user\", \"content\": \"Hi\"}]' > $W/m1.json && \
     $HMST chat-template --model $W/ckpt --messages $W/m1.json --tools $W/tools.json --tool-choice required 2> $W/ct.err | grep -q 'You can call these tools' && \
     grep -q 'generic syntax, the reply held to a call by a grammar' $W/ct.err && \
     ! $HMST chat-template --model $W/ckpt --messages $W/m1.json --tools $W/tools.json --tool-choice none | grep -q 'You can call' && \
     ! $HMST generate $W/ckpt --tools $W/tools.json --prompt Hi 2> /dev/null && \
     ! $HMST generate $W/ckpt --chat --tools $W/tools.json --tool-choice nope --prompt Hi 2> $W/tc.err && grep -q 'not among the tools' $W/tc.err"
check "grammar: a schema's GBNF reads back; errors name line and column, or the keyword" bash -c \
    "$HMST grammar --json-schema-file $W/schema.json > $W/schema.gbnf && grep -q '^root ::=' $W/schema.gbnf && $HMST grammar --check $W/schema.gbnf | grep -q reads && \
     printf 'root ::= \"a\" b\n' > $W/bad.gbnf && ! $HMST grammar --check $W/bad.gbnf 2> $W/g.err && grep -q 'bad.gbnf: grammar: line 1, column 14' $W/g.err && \
     ! $HMST generate $W/ckpt --prompt Q --grammar-file $W/bad.gbnf 2> $W/g.err && grep -q 'line 1, column 14' $W/g.err && \
     ! $HMST generate $W/ckpt --prompt Q --json-schema '{\"uniqueItems\":true}' 2> $W/g.err && grep -q \"'uniqueItems' is not supported\" $W/g.err && \
     ! $HMST generate $W/ckpt --prompt Q --json --grammar 'root ::= \"a\"' 2> $W/g.err && grep -q 'give one of' $W/g.err"
fails "generate --output over its --input" bash -c "cp $W/prompts.txt $W/prompts2.txt && $HMST generate $W/ckpt --input $W/prompts2.txt --output $W/prompts2.txt --max-length 2"
check "batch output has both prompts" bash -c "grep -q 'First prompt' $W/results.txt && grep -q 'Second prompt' $W/results.txt"
check "interactive REPL" bash -c "printf 'help\nset temperature 0\nset top_k 5\nset nonsense 1\nHello there\nstats\nquit\n' | $HMST generate $W/ckpt --max-length 4 > $W/repl.txt && grep -q 'temperature = 0' $W/repl.txt && grep -q 'unknown parameter' $W/repl.txt && grep -q 'generations' $W/repl.txt"
check "REPL ends at EOF" bash -c "printf 'Hello\n' | $HMST generate $W/ckpt --max-length 2"
check "preprocess with tokenizer" "$HMST" preprocess --input "${CORPUS[@]}" --output "$W/data" --tokenizer-path "$W/tok.json" --no-progress
check "preprocess trains a tokenizer when none is given" "$HMST" preprocess --input "${CORPUS[@]}" --output "$W/data2" --vocab-size 600 --no-progress
check "trained tokenizer saved beside the data" test -f "$W/data2/tokenizer/tokenizer.json"
check "split" "$HMST" split "$W/data" --val-fraction 0.2 --seed 4
check "split wrote train_split and val" bash -c "test -f $W/train_split/metadata.json && test -f $W/val/metadata.json"
check "split is deterministic" bash -c "$HMST split $W/data --val-fraction 0.2 --seed 4 --output-dir $W/again && cmp $W/val/shard_00000.bin $W/again/val/shard_00000.bin"
# session 35's data-tool fuzz pass: nothing a run reads is written over, failed or repeated runs
# leave no mixed dataset, outputs that are links or devices stay what they are
fails "split refuses to write over its own input (train_split beside train_split)" "$HMST" split "$W/train_split"
check "train_split intact after the refusal" bash -c "$HMST split $W/data --val-fraction 0.2 --seed 4 --output-dir $W/again2 && cmp $W/train_split/shard_00000.bin $W/again2/train_split/shard_00000.bin"
check "a preprocess that fails its options keeps the old tokenizer" bash -c \
    "sum=\$(md5sum < $W/data2/tokenizer/tokenizer.json); ! $HMST preprocess --input ${CORPUS[0]} --output $W/data2 --vocab-size 300 --shard-tokens 0 --no-progress 2>/dev/null && [[ \$(md5sum < $W/data2/tokenizer/tokenizer.json) == \$sum ]]"
check "a smaller rerun replaces the dataset (no stale shards)" bash -c \
    "$HMST preprocess --input ${CORPUS[0]} --output $W/rerun --tokenizer-path $W/tok.json --shard-tokens 500 --no-progress && printf 'one\\n\\ntwo\\n' > $W/tiny.txt && \
     $HMST preprocess --input $W/tiny.txt --output $W/rerun --tokenizer-path $W/tok.json --no-progress && [[ \$(ls $W/rerun | grep -c '^shard_') == 1 ]]"
fails "tokenizer train refuses --output over its corpus" bash -c "cp ${CORPUS[0]} $W/corpus_copy.txt && $HMST tokenizer train $W/corpus_copy.txt --output $W/corpus_copy.txt --vocab-size 300 --no-progress"
check "an output that is a symbolic link keeps the link and replaces its file" bash -c \
    "echo old > $W/target.json && ln -sf $W/target.json $W/link.json && $HMST tokenizer train ${CORPUS[0]} --output $W/link.json --vocab-size 300 --no-progress && test -L $W/link.json && grep -q merges $W/target.json"
fails "an output FIFO nobody reads is an error, not a hang" bash -c "mkfifo $W/out.fifo && timeout 60 $HMST tokenizer train ${CORPUS[0]} --output $W/out.fifo --vocab-size 300 --no-progress; rc=\$?; test -p $W/out.fifo && [[ \$rc != 124 ]] && exit \$rc"
check "a dataset listing one shard twice is refused, naming it" bash -c "mkdir -p $W/twice && cp $W/data/shard_* $W/twice/ && python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); m[\"shards\"]*=2; json.dump(m,open(sys.argv[2],\"w\"))' $W/data/metadata.json $W/twice/metadata.json && ! $HMST split $W/twice --output-dir $W/twice-out 2> $W/twice.err && grep -q 'listed twice' $W/twice.err"
fails "tokenizer train on empty files is an error naming them" bash -c ": > $W/empty2.txt && $HMST tokenizer train $W/empty2.txt --output $W/empty-tok.json --no-progress 2> $W/tokempty.err; rc=\$?; grep -q 'empty2.txt' $W/tokempty.err && test ! -e $W/empty-tok.json && cat $W/tokempty.err >&2 && exit \$rc"
check "preprocess of empty files is refused and leaves the dataset there" bash -c ": > $W/empty.txt && ! $HMST preprocess --input $W/empty.txt --output $W/data --tokenizer-path $W/tok.json --no-progress 2> $W/empty.err && grep -q 'empty' $W/empty.err && test -f $W/data/metadata.json"
check "a memory tier whose manifest is lost is an error, and its data stays" bash -c \
    "$HMST memory add --dir $W/lostmem --model $W/ckpt --tier episodic 'first entry' > /dev/null && mv $W/lostmem/episodic/episodic.json $W/lost.json && \
     ! $HMST memory add --dir $W/lostmem --model $W/ckpt --tier episodic 'second' 2> $W/lost.err && grep -q 'no readable episodic.json' $W/lost.err && \
     mv $W/lost.json $W/lostmem/episodic/episodic.json && $HMST memory stats --dir $W/lostmem | grep -q 'episodic: 1'"
check "a FIFO in place of a memory manifest is an error, not a hang" bash -c \
    "$HMST memory add --dir $W/fifomem --model $W/ckpt --tier semantic 'an entry' > /dev/null && rm $W/fifomem/semantic/memory.json && mkfifo $W/fifomem/semantic/memory.json && \
     timeout 60 $HMST memory stats --dir $W/fifomem 2> $W/fifo.err; rc=\$?; [[ \$rc != 0 && \$rc != 124 ]] && grep -q 'not a regular file' $W/fifo.err"
fails "a document separator with a newline is refused" "$HMST" preprocess --input "${CORPUS[0]}" --output "$W/sep" --tokenizer-path "$W/tok.json" --doc-separator $'a\nb' --no-progress
check "Windows line ends in a facts file are lines" bash -c \
    "$HMST facts generate --output $W/fcrlf --entities 3 --distractors 5 > /dev/null && sed 's/\$/\\r/' $W/fcrlf/facts.jsonl > $W/facts_crlf.jsonl && $HMST facts reading --output $W/reading.txt --documents 3 --exclude $W/facts_crlf.jsonl"
check "train (text, tokenizer trained, val split)" "$HMST" train "${CORPUS[@]}" --model-size micro --vocab-size 600 --seq-len 32 \
    --batch-size 2 --steps-per-epoch 4 --eval-every 2 --val-split 0.2 --output-dir "$W/run" --no-progress
check "train wrote best_model, final, metrics" bash -c "test -f $W/run/best_model/model.safetensors && test -f $W/run/final/tokenizer.json && [[ \$(wc -l < $W/run/metrics.jsonl) -eq 4 ]]"
check "metrics report bits per byte and loss.svg is drawn" bash -c "grep -q val_bpb $W/run/metrics.jsonl && python3 -c 'import xml.dom.minidom,sys; xml.dom.minidom.parse(sys.argv[1])' $W/run/loss.svg"
check "trained checkpoint generates" bash -c "$HMST generate $W/run/final --prompt 'The' --max-length 5 > /dev/null"
check "train (pre-tokenized, val file)" "$HMST" train "$W/train_split" --pretokenized --val-file "$W/val" --model-size micro \
    --seq-len 32 --batch-size 2 --steps-per-epoch 2 --output-dir "$W/run2" --no-progress
check "train --resume continues from final/" bash -c "$HMST train $W/train_split --pretokenized --model-size micro --seq-len 32 --batch-size 2 --steps-per-epoch 4 --output-dir $W/run3 --resume $W/run2/final --no-progress 2>&1 | grep -q 'resumed from'"
check "Ctrl-C saves a resumable checkpoint" bash -c "($HMST train $W/train_split --pretokenized --model-size micro --seq-len 32 --batch-size 2 --steps-per-epoch 100000 --output-dir $W/run4 --no-progress > $W/int.txt 2>&1 & pid=\$!; sleep 4; kill -INT \$pid; wait \$pid) ; test -f $W/run4/final/trainer_state.json && grep -q interrupted $W/int.txt"
check "train --mixed-precision --gradient-checkpointing --use-8bit-optimizer --gradient-accumulation-steps 2 --patience 1" \
    bash -c "$HMST train $W/train_split --pretokenized --val-file $W/val --model-size micro --seq-len 32 --batch-size 2 --steps-per-epoch 4 --epochs 2 \
    --eval-every 2 --patience 1 --save-every 1 --gradient-accumulation-steps 2 --mixed-precision --gradient-checkpointing --use-8bit-optimizer \
    --learning-rate 1e-3 --seed 3 --threads 2 --output-dir $W/run5 --no-progress > $W/run5.txt 2>&1 && grep -Eq 'mixed precision: (bf16|f32) compute.*, gradient checkpointing, adamw8bit' $W/run5.txt \
    && test -f $W/run5/final/optimizer.safetensors && grep -q adamw8bit $W/run5/final/trainer_state.json && test -d $W/run5/checkpoint-epoch-1"
check "a fresh run into an earlier run's directory is refused (its final/ untouched); --force starts over (metrics not appended)" bash -c \
    "md5sum $W/run2/final/model.safetensors > $W/run2.md5 && ! $HMST train $W/train_split --pretokenized --model-size micro --seq-len 32 --batch-size 2 \
       --steps-per-epoch 2 --output-dir $W/run2 --no-progress 2> $W/again.err && grep -q 'holds an earlier run' $W/again.err && md5sum -c --quiet $W/run2.md5 && \
     cp -r $W/run2 $W/run2f && $HMST train $W/train_split --pretokenized --model-size micro --seq-len 32 --batch-size 2 --steps-per-epoch 3 \
       --output-dir $W/run2f --force --no-progress 2> /dev/null && [[ \$(wc -l < $W/run2f/metrics.jsonl) == 3 ]] && rm -rf $W/run2f"
fails "resume with another --seq-len (the run's windows) is refused" "$HMST" train "$W/train_split" --pretokenized --model-size micro --seq-len 24 \
    --batch-size 2 --steps-per-epoch 4 --output-dir "$W/run3b" --resume "$W/run2/final" --no-progress
check "--seq-len beyond the model's positions is an error, not cut silently" bash -c \
    "! $HMST train $W/train_split --pretokenized --model-size micro --seq-len 20000 --batch-size 1 --steps-per-epoch 1 --output-dir $W/toolong --no-progress 2> $W/tl.err \
     && grep -q 'sequence length 20000 exceeds' $W/tl.err"
check "absurd accumulation and epochs are refused (their products trapped)" bash -c \
    "! $HMST train $W/train_split --pretokenized --model-size micro --seq-len 32 --gradient-accumulation-steps 4611686018427387904 --output-dir $W/ovf --no-progress 2> $W/ovf.err \
     && grep -q 'gradient accumulation steps 4611686018427387904 must be in' $W/ovf.err && \
     ! $HMST train $W/train_split --pretokenized --model-size micro --seq-len 32 --steps-per-epoch 3 --epochs 9223372036854775807 --output-dir $W/ovf --no-progress 2> $W/ovf2.err \
     && grep -q 'epochs 9223372036854775807 must be in' $W/ovf2.err"
fails "resume with another optimizer" "$HMST" train "$W/train_split" --pretokenized --model-size micro --seq-len 32 --batch-size 2 \
    --steps-per-epoch 8 --output-dir "$W/run6" --resume "$W/run5/final" --no-progress
check "train --time-budget 1 stops after a second of training, ends with an evaluation and reports bits per byte" bash -c "$HMST train $W/train_split --pretokenized --val-file $W/val --model-size micro --seq-len 32 --batch-size 2 --steps-per-epoch 3 --time-budget 1 --warmup 0.1 --min-learning-rate 0 --eval-windows 2 --output-dir $W/runb --no-progress > $W/budget.txt 2>&1 && grep -q 'bits per byte' $W/budget.txt && python3 -c \"import json,sys; m=[json.loads(l) for l in open(sys.argv[1])]; assert m[-1]['train_seconds'] >= 1 and 'val_loss' in m[-1] and m[-1]['lr'] < 1e-4, m[-1]\" $W/runb/metrics.jsonl"
check "train --config takes the shape from a config.json (vocabulary from the tokenizer)" bash -c "python3 -c \"import json; c=json.load(open('$W/ckpt/config.json')); c['num_hidden_layers']=2; c['vocab_size']=7; json.dump(c, open('$W/cfg2.json','w'))\" && $HMST train $W/train_split --pretokenized --config $W/cfg2.json --seq-len 32 --batch-size 2 --steps-per-epoch 2 --output-dir $W/runc --no-progress > /dev/null 2>&1 && python3 -c \"import json; c=json.load(open('$W/runc/final/config.json')); assert c['num_hidden_layers'] == 2 and c['vocab_size'] > 7, c\""
fails "train --config with --model-size" "$HMST" train "$W/train_split" --pretokenized --config "$W/cfg2.json" --model-size micro --output-dir "$W/bad"
fails "train --config of a file that is not a model config" "$HMST" train "$W/train_split" --pretokenized --config /etc/hostname --output-dir "$W/bad"
fails "train --time-budget with --epochs" "$HMST" train "$W/train_split" --pretokenized --time-budget 10 --epochs 2 --output-dir "$W/bad"
# --init-from: a checkpoint's weights trained further with a fresh optimizer, its tokenizer checked against the data's
check "train --init-from trains a checkpoint's weights further, keeping its shape and tokenizer" bash -c \
    "$HMST train $W/train_split --pretokenized --init-from $W/run2/final --seq-len 32 --batch-size 2 --steps-per-epoch 2 --output-dir $W/runi --no-progress > $W/init.out 2>&1 && \
     grep -q 'training $W/run2/final' $W/init.out && cmp -s $W/run2/final/tokenizer.json $W/runi/final/tokenizer.json && \
     ! cmp -s $W/run2/final/model.safetensors $W/runi/final/model.safetensors && \
     python3 -c \"import json; a=json.load(open('$W/run2/final/config.json')); b=json.load(open('$W/runi/final/config.json')); assert all(a[k] == b[k] for k in ('hidden_size','num_hidden_layers','vocab_size')), (a, b)\" && \
     $HMST train ${CORPUS[0]} --init-from $W/run2/final --seq-len 32 --batch-size 2 --steps-per-epoch 1 --output-dir $W/runi2 --no-progress > /dev/null 2>&1 && test ! -e $W/runi2/tokenizer && \
     cmp -s $W/run2/final/tokenizer.json $W/runi2/final/tokenizer.json"
check "train --init-from refuses data of another tokenizer, and text for a checkpoint without one" bash -c \
    "! $HMST train $W/train_split --pretokenized --init-from $W/run/final --seq-len 32 --steps-per-epoch 1 --output-dir $W/bad1 2> $W/ie.err && grep -q 'not the one of the checkpoint' $W/ie.err && \
     ! $HMST train ${CORPUS[0]} --init-from $W/run2/final --tokenizer-path $W/run/final --seq-len 32 --steps-per-epoch 1 --output-dir $W/bad2 2> $W/ie.err && grep -q 'not the one of the checkpoint' $W/ie.err && test ! -e $W/bad2/data && \
     cp -r $W/run2/final $W/notok && rm $W/notok/tokenizer.json && \
     ! $HMST train ${CORPUS[0]} --init-from $W/notok --seq-len 32 --steps-per-epoch 1 --output-dir $W/bad3 2> $W/ie.err && grep -q 'has no tokenizer.json' $W/ie.err && rm -rf $W/notok $W/bad1 $W/bad2 $W/bad3"
fails "train --init-from with --model-size" "$HMST" train "$W/train_split" --pretokenized --init-from "$W/run2/final" --model-size micro --output-dir "$W/bad"
fails "train --init-from with --resume" "$HMST" train "$W/train_split" --pretokenized --init-from "$W/run2/final" --resume "$W/run2/final" --output-dir "$W/bad"
drop runi runi2
check "train with a batch of 2^63-1 windows: out of memory, not a trap" bash -c "! $HMST train $W/train_split --pretokenized --model-size micro --seq-len 16 --batch-size 9223372036854775807 --output-dir $W/bad 2> $W/e0; grep -q 'out of memory: a training step' $W/e0"
fails "train --time-budget 0" "$HMST" train "$W/train_split" --pretokenized --time-budget 0 --output-dir "$W/bad"
# 2^46 MiB shifted to elements wrapped to 0: one-element buckets, millions of all-reduces a step
check "train --allreduce-bucket-mb 2^46 refused" bash -c \
    "out=\$($HMST train $W/train_split --pretokenized --allreduce-bucket-mb 70368744177664 --output-dir $W/bad 2>&1); [[ \$? -ne 0 && \$out == *'must be in 1...4096'* ]]"
fails "train --warmup 1" "$HMST" train "$W/train_split" --pretokenized --warmup 1 --output-dir "$W/bad"
drop run run2 run3 run4 run5 run6 runb runc bad
fails "train --min-learning-rate above the peak" "$HMST" train "$W/train_split" --pretokenized --min-learning-rate 1 --output-dir "$W/bad"
fails "--val-split with --val-file" "$HMST" train "${CORPUS[@]}" --val-split 0.1 --val-file x --output-dir "$W/bad"
fails "generate on a missing checkpoint" "$HMST" generate "$W/nope" --prompt x
fails "generate without a tokenizer" bash -c "$HMST init --size micro $W/notok >/dev/null && $HMST generate $W/notok --prompt x"
fails "bad sampling value" "$HMST" generate "$W/ckpt" --prompt x --top-p 0
fails "--prompt with --input" "$HMST" generate "$W/ckpt" --prompt x --input "$W/prompts.txt"
fails "unknown preset" "$HMST" init --size enormous "$W/x"
fails "split of a non-dataset" "$HMST" split "$W/ckpt"
fails "corrupt tokenizer" bash -c "echo '{' > $W/bad.json && $HMST tokenizer encode --tokenizer $W/bad.json hi"
# memory: a directory with episodic/ and semantic/
MEM="$W/mem"
check "memory add (episodic)" bash -c "$HMST memory add --dir $MEM --model $W/ckpt --state-size 32 --importance 0.9 'The licensee may copy the work.' 'Warranty is disclaimed.' > $W/ids.txt && [[ \$(wc -l < $W/ids.txt) -eq 2 ]]"
check "memory add (semantic, from a file)" bash -c "printf 'Patents are licensed.\nSource must be offered.\n' > $W/notes.txt && $HMST memory add --dir $MEM --model $W/ckpt --tier semantic --index Flat --file $W/notes.txt"
check "two memory adds at once into one directory: both land (one process at a time, the other waits)" bash -c \
    "for i in \$(seq 1 20); do echo \"first note \$i\"; done > $W/n1.txt && for i in \$(seq 1 20); do echo \"second note \$i\"; done > $W/n2.txt && \
     $HMST memory add --dir $W/memc --model $W/ckpt --tier semantic --index Flat 'seed entry' > /dev/null && \
     ($HMST memory add --dir $W/memc --model $W/ckpt --tier semantic --file $W/n1.txt > /dev/null & $HMST memory add --dir $W/memc --model $W/ckpt --tier semantic --file $W/n2.txt > /dev/null && wait \$!) && \
     $HMST memory stats --dir $W/memc | grep -q 'semantic: 41 entries' && rm -rf $W/memc"
check "memory search finds an entry by its own text" bash -c "$HMST memory search --dir $MEM --model $W/ckpt --tier episodic -k 1 --json 'Warranty is disclaimed.' | grep -q '\"text\":\"Warranty is disclaimed.\"'"
check "memory stats" bash -c "$HMST memory stats --dir $MEM | grep -q 'episodic: 2/1000' && $HMST memory stats --dir $MEM | grep -q 'semantic: 2 entries'"
check "memory consolidate moves important entries" bash -c "$HMST memory consolidate --dir $MEM --model $W/ckpt --threshold 0.4 > $W/cons.txt && grep -q 'semantic' $W/cons.txt && $HMST memory stats --dir $MEM | grep -q 'semantic: 4 entries'"
check "memory remove" bash -c "$HMST memory remove --dir $MEM --tier semantic 0 && $HMST memory stats --dir $MEM | grep -q 'semantic: 3 entries'"
check "memory search of an emptied semantic memory prints nothing" bash -c "$HMST memory add --dir $W/mem2 --model $W/ckpt --tier semantic --index Flat 'only entry' && $HMST memory remove --dir $W/mem2 --tier semantic 0 && [[ -z \$($HMST memory search --dir $W/mem2 --model $W/ckpt x) ]]"
check "memory search --mode lexical: BM25 part scores, no model loaded" bash -c "$HMST memory search --dir $MEM --model $W/nope --mode lexical --tier semantic --json 'may the licensee copy it?' | grep -q '\"lexical_rank\":1,\"text\":\"The licensee may copy the work.\"'"
check "memory search (hybrid default) prints both parts" bash -c "$HMST memory search --dir $MEM --model $W/ckpt --tier semantic -k 1 'Warranty disclaimed' | grep -q 'dense .*#[0-9]  lexical .*#1  Warranty is disclaimed.'"
check "train-retriever writes the projection into the checkpoint" bash -c "cp -r $W/ckpt $W/ckpt-r && printf '%s\n' '{\"question\":\"Who may copy?\",\"fact\":\"The licensee may copy the work.\"}' '{\"question\":\"Is there a warranty?\",\"fact\":\"Warranty is disclaimed.\"}' > $W/pairs.jsonl && $HMST train-retriever $W/ckpt-r --pairs $W/pairs.jsonl --steps 3 2> $W/tr.txt && grep -q 'projected-' $W/tr.txt && [[ -f $W/ckpt-r/retriever.safetensors && -f $W/ckpt-r/retriever.json ]]"
check "a pooled semantic memory refuses a projected model" bash -c "if $HMST memory search --dir $MEM --model $W/ckpt-r --tier semantic x 2> $W/e.txt; then false; else grep -q 'built by the pooled embedder' $W/e.txt; fi"
check "train-retriever's default pooling: version 2 naming hidden+tokens, input 2C" bash -c "grep -q '\"version\":2,\"pooling\":\"hidden-mean+token-embedding-mean\"' $W/ckpt-r/retriever.json"
check "train-retriever --pooling hidden writes the first format (version 1)" bash -c "cp -r $W/ckpt $W/ckpt-h && $HMST train-retriever $W/ckpt-h --pairs $W/pairs.jsonl --steps 3 --pooling hidden --hard-negatives 0 2> $W/tr.txt && grep -q '\"version\":1' $W/ckpt-h/retriever.json"
fails "train-retriever --pooling max" "$HMST" train-retriever "$W/ckpt-r" --pairs "$W/pairs.jsonl" --steps 3 --pooling max
drop ckpt-h
fails "memory remove of an unknown id" "$HMST" memory remove --dir "$MEM" --tier semantic 424242
fails "memory search without a model" "$HMST" memory search --dir "$MEM" --model "$W/nope" x
fails "memory stats of a missing directory" "$HMST" memory stats --dir "$W/no-memory"
# a full disk behind the redirect (/dev/full): the error still ends in its exit code, not a crash
check "an error written to a full disk exits 2" bash -c "$HMST memory stats --dir $W/no-memory 2>/dev/full; [[ \$? -eq 2 ]]"
check "a generation written to a full disk does not crash" bash -c "$HMST generate $W/ckpt --prompt 'The' --max-length 3 >/dev/full 2>/dev/full; [[ \$? -lt 128 ]]"
# eval: tasks on local files under memory conditions (the memory directory is only read)
E=$W/eval
mkdir -p "$E"
printf '%s\n' '{"id": "a", "prompt": "Who may copy the work?", "target": " the licensee", "choices": [" the licensee", " nobody"], "gold": 0, "memory": ["The licensee may copy the work."]}' \
    '{"id": "b", "prompt": "Is warranty given?", "target": " no", "choices": [" yes", " no"], "gold": 1, "memory": ["Warranty is disclaimed."]}' > "$E/items.jsonl"
echo '{"name": "mc", "output_type": "multiple_choice", "data": "items.jsonl"}' > "$E/mc.json"
echo '{"name": "gen", "output_type": "generate_until", "data": "items.jsonl", "until": ["\n"], "max_gen_tokens": 4}' > "$E/gen.json"
$HMST memory stats --dir "$MEM" > "$E/stats-before"
check "eval under four conditions writes the report and the items" bash -c "$HMST eval $W/ckpt --task $E/mc.json $E/gen.json --memory $MEM --condition off,on,oracle,deleted -k 2 --output $E/report.json --items-output $E/items-out.jsonl --bootstrap 50 > $E/stdout && grep -q '\"acc_norm\"' $E/report.json && grep -q 'gen  deleted  exact_match' $E/stdout && [[ \$(wc -l < $E/items-out.jsonl) -eq 16 ]]"
check "eval leaves the memory directory as it was" bash -c "$HMST memory stats --dir $MEM | cmp - $E/stats-before"
check "eval --retrieval lexical" bash -c "$HMST eval $W/ckpt --task $E/gen.json --memory $MEM --condition on,deleted --retrieval lexical -k 1 --bootstrap 10 > /dev/null"
fails "eval of an unknown retrieval mode" "$HMST" eval "$W/ckpt" --task "$E/gen.json" --memory "$MEM" --condition on --retrieval fuzzy
fails "eval --knn-lambdas with an empty entry" "$HMST" eval "$W/ckpt" --task "$E/gen.json" --knn-lambdas ",,"
fails "eval --items-output over a task's data" "$HMST" eval "$W/ckpt" --task "$E/gen.json" --items-output "$E/items.jsonl"
check "eval of a malformed line names the line" bash -c "echo '{\"prompt\": ' >> $E/items.jsonl; ! $HMST eval $W/ckpt --task $E/mc.json 2> $E/err && grep -q 'items.jsonl line 3: not valid JSON' $E/err"
fails "eval of an unknown condition" "$HMST" eval "$W/ckpt" --task "$E/mc.json" --condition off,sometimes
fails "eval on without a memory directory" "$HMST" eval "$W/ckpt" --task "$E/mc.json" --condition on

# Stage 2: facts, a few steps of memory fine-tuning with the markers, resume, and its errors
F=$W/facts
check "facts generate" "$HMST" facts generate --output "$F" --entities 12 --distractors 50 --seed 2
check "facts reading: deterministic, every answer is in its document, no name of the excluded set" bash -c "$HMST facts reading --output $W/r1.txt --documents 300 --entities 400 --exclude $F > /dev/null && $HMST facts reading --output $W/r2.txt --documents 300 --entities 400 --exclude $F/facts.jsonl > /dev/null && cmp -s $W/r1.txt $W/r2.txt && python3 -c \"
import json, re, sys
docs = open(sys.argv[1]).read().split('\\n%\\n')
assert len(docs) == 300, len(docs)
names = {json.loads(l)[k] for l in open(sys.argv[2]) for k in ('entity',) if json.loads(l)['source'] == 'synthetic'}
words = set(re.findall(r'[A-Za-z]+', open(sys.argv[1]).read()))
assert not names & words, names & words
for d in docs:
    lines = d.strip().split('\\n')
    facts = [l for l in lines if l.startswith('Fact: ')]
    answers = [l[len('Answer: '):] for l in lines if l.startswith('Answer: ')]
    assert facts and answers and all(any(a in f for f in facts) for a in answers), d
\" $W/r1.txt $F/facts.jsonl"
fails "facts reading with zero documents" "$HMST" facts reading --output "$W/r0.txt" --documents 0
check "facts reading with 2^63-1 documents: refused with the bound, not an allocation abort" bash -c "! $HMST facts reading --output $W/r0.txt --documents 9223372036854775807 2> $W/e0; grep -q 'at most 10000000' $W/e0"
S2=(--facts "$F" --data "$W/train_split" --batch-size 2 --seq-len 64 --memory-seq-len 64 --eval-questions 4 --seed 1 --no-progress)
check "train-memory adds the markers and trains" bash -c "$HMST train-memory $W/ckpt ${S2[*]} --output $W/s2 --steps 4 && grep -q '\"<mem>\"' $W/s2/final/tokenizer.json && grep -q answer_nll_on $W/s2/metrics.jsonl"
check "a FIFO in the facts directory is an error naming it, not a hang" bash -c \
    "cp -r $F $W/ffifo && f=\$(ls $W/ffifo/*.jsonl | head -1) && rm \$f && mkfifo \$f && \
     timeout 60 $HMST train-memory $W/ckpt ${S2[*]/$F/$W/ffifo} --output $W/s2fifo --steps 1 2> $W/ff.err; rc=\$?; rm -rf $W/ffifo $W/s2fifo; \
     [[ \$rc != 0 && \$rc != 124 ]] && grep -q 'not a regular file' $W/ff.err"
check "train-memory --force never removes the run's own input (a checkpoint inside the old run)" bash -c \
    "! $HMST train-memory $W/s2/final ${S2[*]} --output $W/s2 --steps 1 --force 2> $W/fi.err && grep -q 'holds this run.s input' $W/fi.err && test -f $W/s2/final/model.safetensors"
check "train-memory --resume continues" bash -c "$HMST train-memory $W/ckpt ${S2[*]} --output $W/s2b --steps 6 --resume $W/s2/final"
drop s2b
fails "train-memory --retrieved-by of an unknown kind" "$HMST" train-memory "$W/ckpt" "${S2[@]}" --output "$W/s2x" --steps 1 --retrieved-distractors 0.5 --retrieved-by bm25
check "train-memory hybrid blocks without a projection name train-retriever" bash -c "! $HMST train-memory $W/ckpt ${S2[*]} --output $W/s2x --steps 1 --retrieved-distractors 0.5 --retrieved-by hybrid 2> $W/rb.err && grep -q 'train-retriever' $W/rb.err"
check "train-memory on hybrid-retrieved blocks (the checkpoint's projection)" bash -c "$HMST train-memory $W/ckpt-r ${S2[*]} --output $W/s2h --steps 2 --retrieved-distractors 1 --retrieved-by hybrid && [[ -f $W/s2h/final/model.safetensors ]]"
drop s2h
check "eval of the memory-tuned model" bash -c "$HMST eval $W/s2/final --task $F/tasks/facts_heldout_ll.json --condition off,oracle --limit 3 --bootstrap 10 | grep -q 'oracle'"
fails "train-memory without facts" "$HMST" train-memory "$W/ckpt" --facts "$W/no-facts" --data "$W/train_split" --output "$W/s2x" --steps 1
# the episodic tier's soft tokens (issue 11): trained and stored; an episodic memory built for the
# model reads as soft tokens; a checkpoint without them, or a bad flag, is a named error
check "train-memory --episodic-soft-tokens stores them" bash -c "$HMST train-memory $W/ckpt ${S2[*]} --output $W/s2soft --steps 2 --episodic-soft-tokens 1 --episodic-fraction 1 --episodic-pretrain-steps 3 && grep -q hmst-episodic-soft-tokens $W/s2soft/final/episodic_soft_tokens.json && grep -q answer_nll_state_on $W/s2soft/metrics.jsonl"
check "train-memory --episodic-pretrain-steps and --episodic-soft-input" bash -c "$HMST train-memory $W/ckpt ${S2[*]} --output $W/s2pre --steps 1 --episodic-soft-tokens 2 --episodic-fraction 1 --episodic-pretrain-steps 2 --episodic-readout 1 2> $W/s2pre.err && grep -q 'read-out pre-training done' $W/s2pre.err && grep -q state_readout $W/s2pre/final/episodic_soft_tokens.json && $HMST train-memory $W/ckpt ${S2[*]} --output $W/s2pool --steps 1 --episodic-soft-tokens 1 --episodic-soft-input pooled_unit_key --episodic-pretrain-steps 0 && grep -q pooled_unit_key $W/s2pool/final/episodic_soft_tokens.json"
drop s2pool s2pre
fails "train-memory --episodic-soft-input of an unknown kind" "$HMST" train-memory "$W/ckpt" "${S2[@]}" --output "$W/s2x" --steps 1 --episodic-soft-tokens 1 --episodic-soft-input whole
fails "train-memory --episodic-soft-tokens 9" "$HMST" train-memory "$W/ckpt" "${S2[@]}" --output "$W/s2x" --steps 1 --episodic-soft-tokens 9
check "eval --episodic-injection state" bash -c "head -3 $F/memory_heldout.txt > $W/ep3.txt && $HMST memory add --dir $W/epm --model $W/s2soft/final --tier episodic --file $W/ep3.txt > /dev/null && $HMST eval $W/s2soft/final --task $F/tasks/facts_heldout_ll.json --memory $W/epm --tier episodic --retrieval lexical --condition on --episodic-injection state --limit 3 --bootstrap 10 --output $W/ep-report.json | grep -q 'on  answer_nll' && grep -q 'episodic_injection...state' $W/ep-report.json"
check "eval --episodic-injection state without trained soft tokens names them" bash -c "! $HMST eval $W/s2/final --task $F/tasks/facts_heldout_ll.json --memory $W/epm --tier episodic --condition on --episodic-injection state --limit 2 2> $W/ep-err && grep -q 'episodic-soft-tokens' $W/ep-err"
check "eval --episodic-injection state generates (generate_until)" bash -c "$HMST eval $W/s2soft/final --task $F/tasks/facts_heldout_gen.json --memory $W/epm --tier episodic --retrieval lexical --condition on --episodic-injection state --limit 3 --bootstrap 10 --items-output $W/ep-gen.jsonl | grep -q 'on  exact_match' && grep -q '\"generation\"' $W/ep-gen.jsonl"
fails "eval --episodic-injection of an unknown kind" "$HMST" eval "$W/s2soft/final" --task "$F/tasks/facts_heldout_ll.json" --episodic-injection vectors
check "memory reencode" bash -c "$HMST memory reencode --dir $W/epm --model $W/s2soft/final | grep -q 're-encoded 3 episodic entries'"
check "a memory refuses a retrained model until re-encoded for it; an int8 copy of its own model reads it" bash -c \
    "cp -r $MEM $W/mem-s2 && ! $HMST memory search --dir $W/mem-s2 --model $W/s2/final x 2> $W/ms.err && grep -q 'by another model' $W/ms.err && grep -q 'hmst memory reencode' $W/ms.err && \
     $HMST memory reencode --dir $W/mem-s2 --model $W/s2/final > $W/ms.out && grep -q 're-encoded [0-9]* episodic' $W/ms.out && grep -q 're-embedded [0-9]* semantic entries with the pooled embedder' $W/ms.out && \
     $HMST memory search --dir $W/mem-s2 --model $W/s2/final --tier semantic -k 1 --json 'Source must be offered.' | grep -q '\"text\":\"Source must be offered.\"' && \
     ! $HMST memory search --dir $W/mem-s2 --model $W/ckpt x 2> /dev/null && ! $HMST memory reencode --dir $W/mem-s2 --model $W/s2/final --tier all 2> /dev/null && \
     $HMST quantize $W/ckpt $W/ckpt-q8 --dtype int8 > /dev/null && $HMST memory search --dir $MEM --model $W/ckpt-q8 --tier semantic -k 1 --json 'Source must be offered.' | grep -q 'Source must be offered.' && \
     $HMST memory stats --dir $MEM --model $W/ckpt-q8 > $W/st.out && grep -q 'semantic: fits the model; the sampled weights differ by 0\\.[0-9]*% at most (5% allowed)' $W/st.out && \
     $HMST memory stats --dir $MEM --model $W/s2/final | grep -q 'semantic: does not fit the model: .*embedded by another model' && rm -rf $W/mem-s2 $W/ckpt-q8"
drop s2soft

# train-critic: a barely trained model answers nothing right, a clear error (the pool is kept);
# a pool whose labels vary (made here from the kept one) trains a critic written beside the model
check "train-critic says the pool has no correct answers and keeps the pool" bash -c "! $HMST train-critic $W/s2/final --facts $F --condition off,oracle --limit 3 --samples 1 --no-progress --pool-output $W/critic-pool.jsonl 2> $W/tc.err && grep -q 'the pool has no correct answers' $W/tc.err && [[ \$(wc -l < $W/critic-pool.jsonl) -eq 12 ]] && [[ ! -e $W/s2/final/critic ]]"
check "train-critic fits a pool with both kinds of answers" bash -c "cp -r $W/s2/final $W/s2c && python3 -c \"
import json, random, sys
row = json.loads(open(sys.argv[1]).readline())
C = len(row['hidden'])
rnd = random.Random(1)
with open(sys.argv[2], 'w') as f:
    for i in range(600):
        ok = rnd.random() < 0.4
        s = 1 if ok else -1
        r = dict(row, id='q%d' % i, entity='e%d' % (i // 3), correct=ok, stratum=['gold_retrieved', 'no_memory'][i % 2])
        r['features'] = {k: rnd.gauss(0, 1) for k in row['features']}
        r['features']['answer_logprob_mean'] = s + rnd.gauss(0, 1)
        r['hidden'] = [rnd.gauss(0, 1) + (0.7 * s if c == 0 else 0) for c in range(C)]
        f.write(json.dumps(r) + '\n')
\" $W/critic-pool.jsonl $W/critic-synth.jsonl && $HMST train-critic $W/s2c --pool $W/critic-synth.jsonl --report $W/critic-report.json > $W/tc.out && grep -q '^test: AUROC' $W/tc.out && grep -q 'stratum no_memory' $W/tc.out && test -f $W/s2c/critic/critic.safetensors && python3 -c \"
import json, sys
r = json.load(open(sys.argv[1]))
assert r['test']['auroc'] > 0.75, r['test']
c = json.load(open(sys.argv[2]))
assert c['format'] == 'hmst-critic' and c['calibration']['kind'] == 'platt', c
\" $W/critic-report.json $W/s2c/critic/config.json"
check "eval --critic adds the critic's metrics" bash -c "$HMST eval $W/s2c --task $F/tasks/facts_heldout_gen.json --condition off,oracle --limit 4 --critic --bootstrap 10 | grep -q 'oracle  critic_brier'"
fails "eval --critic of a checkpoint without a critic" "$HMST" eval "$W/s2/final" --task "$F/tasks/facts_heldout_gen.json" --limit 2 --critic
fails "train-critic into a directory without a model" "$HMST" train-critic "$W/s2/final" --pool "$W/critic-synth.jsonl" --output "$W/no-such-ckpt"
check "a critic made for f32 weights: --weights int8 loads without it (warning), quantize leaves it out and OUT generates" bash -c \
    "$HMST generate $W/s2c --weights int8 --prompt x --max-length 2 2> $W/ci.err > /dev/null && grep -q 'critic trained for another model' $W/ci.err && \
     $HMST quantize $W/s2c $W/s2cq --dtype int8 > /dev/null 2> $W/cq.err && grep -q 'critic/ not copied' $W/cq.err && test ! -e $W/s2cq/critic && \
     $HMST quantize $W/s2c $W/s2cb --dtype bf16 > $W/cb.out 2>&1 && test -f $W/s2cb/critic/config.json && \
     $HMST generate $W/s2cq --prompt x --max-length 2 > /dev/null && rm -rf $W/s2cq $W/s2cb"
check "train-critic of a pool from a model of another size names the problem" bash -c "python3 -c \"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows: r['hidden'] = r['hidden'][:3]
open(sys.argv[2], 'w').write(''.join(json.dumps(r) + '\\n' for r in rows))
\" $W/critic-synth.jsonl $W/critic-small.jsonl && ! $HMST train-critic $W/s2c --pool $W/critic-small.jsonl 2> $W/tc.err && grep -q 'hidden state of 3 values' $W/tc.err"


# the engine: rl-train builds the query mix's memory and a controller; ask answers through it
check "rl-train builds the mix, the outcome table and a controller" bash -c "cp -r $W/s2/final $W/s2e && $HMST rl-train --checkpoint $W/s2e --facts $F --output $W/rl --queries-per-kind 6 --semantic-distractors 20 --episodic-distractors 5 --episodes 2048 --threads 2 > $W/rl.out 2> $W/rl.err && grep -q 'PPO controller' $W/rl.out && grep -q 'per-query best action' $W/rl.out && grep -q 'ppo update' $W/rl.err && test -f $W/s2e/controller/controller.safetensors && python3 -c \"
import json, sys
r = json.load(open(sys.argv[1]))
names = [p['name'] for p in r['policies']]
assert len(names) == 36 and 'random' in names and 'all on' in names, names
rows = [json.loads(l) for l in open(sys.argv[2])]
assert len(rows) == 24 and all(len(x['outcomes']) == 32 for x in rows)
assert {x['kind'] for x in rows} == {'known', 'semantic', 'episodic', 'unanswerable'}
\" $W/rl/report.json $W/rl/outcomes.jsonl"
check "rl-train --reuse-outcomes --action-heads factorized probes again and trains five heads" bash -c "cp -r $W/s2e $W/s2j && $HMST rl-train --checkpoint $W/s2j --facts $F --output $W/rlj --queries-per-kind 6 --semantic-distractors 20 --episodic-distractors 5 --episodes 2048 --threads 2 --reuse-outcomes $W/rl/outcomes.jsonl --action-heads factorized --ent-coef 0.02 --hidden 16 > $W/rlj.out 2> $W/rlj.err && grep -q 'PPO controller' $W/rlj.out && grep -q '\"action_heads\":\[2,2,2,2,2\]' $W/s2j/controller/config.json && grep -q '\"action_heads\":\[32\]' $W/s2e/controller/config.json && cmp <(python3 -c \"import json,sys; print([r['outcomes'] for r in map(json.loads, open(sys.argv[1]))])\" $W/rl/outcomes.jsonl) <(python3 -c \"import json,sys; print([r['outcomes'] for r in map(json.loads, open(sys.argv[1]))])\" $W/rlj/outcomes.jsonl)"
fails "rl-train --reuse-outcomes of another query mix" "$HMST" rl-train --checkpoint "$W/s2j" --facts "$F" --output "$W/rlk" --queries-per-kind 5 --semantic-distractors 20 --episodic-distractors 5 --episodes 2048 --no-save --reuse-outcomes "$W/rl/outcomes.jsonl"
check "rl-train refuses bad counts up front and never replaces an input kept in OUTPUT/memory" bash -c \
    "! $HMST rl-train --checkpoint $W/s2j --facts $F --output $W/rlneg --semantic-distractors -5 2> $W/rn.err && grep -q 'semantic-distractors -5 must be in' $W/rn.err && \
     mkdir -p $W/rlin && cp -r $F $W/rlin/memory && ! $HMST rl-train --checkpoint $W/s2j --facts $W/rlin/memory --output $W/rlin --queries-per-kind 5 \
       2> $W/ri.err && grep -q 'which rl-train replaces' $W/ri.err && test -f $W/rlin/memory/facts.jsonl && rm -rf $W/rlin $W/rlneg"
check "rl-train --splits 2 reports the spread over entity splits" bash -c "$HMST rl-train --checkpoint $W/s2j --facts $F --output $W/rls --queries-per-kind 8 --semantic-distractors 20 --episodic-distractors 5 --episodes 2048 --threads 2 --no-save --splits 2 --split-seed 2 > $W/rls.out 2> $W/rls.err && grep -q 'over 2 entity splits' $W/rls.out && grep -q 'split 1:' $W/rls.err && python3 -c \"import json,sys; s=json.load(open(sys.argv[1]))['splits']; assert len(s['gap_closed']) == 2 and 'gap_closed_sd' in s, s\" $W/rls/report.json"
fails "rl-train --splits 0" "$HMST" rl-train --checkpoint "$W/s2j" --facts "$F" --output "$W/rlk" --queries-per-kind 6 --episodes 2048 --no-save --splits 0
fails "rl-train --hidden 0" "$HMST" rl-train --checkpoint "$W/s2j" --facts "$F" --output "$W/rlk" --queries-per-kind 6 --episodes 2048 --no-save --hidden 0
fails "rl-train --action-heads psychic" "$HMST" rl-train --checkpoint "$W/s2j" --facts "$F" --output "$W/rlk" --queries-per-kind 6 --episodes 2048 --no-save --action-heads psychic
check "ask uses the trained controller, cites memory, prints costs" bash -c "$HMST ask $W/s2e --memory $W/rl/memory 'What is the capital of Nowhere?' --policy controller > $W/ask.txt && grep -q '^decisions (controller)' $W/ask.txt && grep -q '^cost:' $W/ask.txt && grep -q '^ms: encode' $W/ask.txt"
check "ask --json with a fixed policy: citations only from the chosen tier" bash -c "$HMST ask $W/s2e --memory $W/rl/memory 'Who founded Nowhere?' --policy semantic --json | python3 -c \"
import json, sys
r = json.load(sys.stdin)
assert r['decisions']['semantic'] and not r['decisions']['episodic'], r['decisions']
assert r['citations'] and all(c['tier'] == 'semantic' for c in r['citations']), r['citations']
assert len(r['token_logprobs']) == len(r['tokens']) and r['cost']['vectors_scanned'] > 0
\""
check "ask with the critic: verification is calibrated" bash -c "$HMST ask $W/s2c --memory $W/rl/memory 'Who founded Nowhere?' --policy semantic+verify --json | python3 -c \"
import json, sys
r = json.load(sys.stdin)
assert r['confidence_calibrated'] and r['cost']['critic_calls'] >= 1, r
\""
check "ask reads questions from stdin" bash -c "printf 'Who founded Nowhere?\n\nWhat is the capital of Nowhere?\n' | $HMST ask $W/s2e --memory $W/rl/memory | grep -c '^Q: ' | grep -q 2"
check "generate --engine: the interactive engine mode" bash -c "printf 'policy semantic\npolicy bogus\nWho founded Nowhere?\nquit\n' | $HMST generate $W/s2e --engine --memory $W/rl/memory --max-length 4 > $W/eng.txt && grep -q 'policy = semantic' $W/eng.txt && grep -q 'error: policy' $W/eng.txt && grep -q '^decisions (fixed)' $W/eng.txt && grep -q '\[1\] semantic' $W/eng.txt"
fails "train-exit-head with a negative learning rate (it ascended the loss and saved the worse head)" "$HMST" train-exit-head "$W/ckpt" --data "$W/train_split" \
    --val-data "$W/val" --layer 1 --steps 2 --seq-len 16 --learning-rate -0.01 --no-save
check "train-exit-head: the trained exit beats the plain early read-out and is used" bash -c "cp -r $W/ckpt $W/exitck && $HMST train-exit-head $W/exitck --data $W/train_split --val-data $W/val --layer 1 --steps 30 --seq-len 32 --learning-rate 3e-3 > $W/exit.json && python3 -c \"
import json, sys
r = json.load(open(sys.argv[1]))
assert r['layer'] == 1 and r['val_loss_exit_head'] < r['val_loss_early_readout'], r
\" $W/exit.json && test -f $W/exitck/exit_head.safetensors && $HMST ask $W/exitck 'Who?' --policy early_exit --json | python3 -c 'import json,sys; r=json.load(sys.stdin); assert r[\"decisions\"][\"early_exit\"]'"
fails "ask with an empty question" "$HMST" ask "$W/s2e" "  "
fails "ask with an unknown policy" "$HMST" ask "$W/s2e" "Who?" --policy "semantic+psychic"
fails "ask --policy controller without a controller" "$HMST" ask "$W/s2/final" "Who?" --policy controller
check "a controller from another model is refused at load" bash -c "cp -r $W/ckpt $W/other && cp -r $W/s2e/controller $W/other/ && ! $HMST ask $W/other 'Who?' 2> $W/ask.err && grep -q 'controller was trained for a model' $W/ask.err"
# abstention: the engine's confident wrong answers with the gold memory present and deleted, critic on and off
check "abstention: four conditions, the gold gone from the deleted copy only" bash -c "$HMST abstention $W/s2c --facts $F --memory $W/rl/memory --output $W/abst --entities all --limit 6 --max-tokens 4 --threads 2 > $W/abst.out 2> $W/abst.err && grep -q 'gold deleted' $W/abst.err && python3 -c \"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert [(r['memory'], r['critic']) for r in rows] == [('present', True), ('present', False), ('deleted', True), ('deleted', False)], rows
assert all(r['bench'] == 'engine_abstention' and r['questions'] == 6 and r['policy'] == 'full' for r in rows), rows
assert all(r['gold_cited_rate'] == 0 for r in rows if r['memory'] == 'deleted'), rows
assert all(r['critic_calls_per_question'] >= 1 if r['critic'] else r['critic_calls_per_question'] == 0 for r in rows), rows
assert all(r['confident_wrong_rate'] <= r['answered_wrong_rate'] + 1e-12 and set(r['mean_ms']) >= {'encode', 'retrieve', 'generate', 'verify', 'total'} for r in rows)
assert open(sys.argv[2]).read() == open(sys.argv[1]).read()
assert len(open(sys.argv[3]).read().split(chr(10))) == 7
\" $W/abst.out $W/abst/abstention.jsonl $W/abst/questions.jsonl"
fails "abstention with a checkpoint without a critic" "$HMST" abstention "$W/s2e" --facts "$F" --memory "$W/rl/memory" --output "$W/abst2" --entities all --limit 2
fails "abstention --entities of an unknown kind" "$HMST" abstention "$W/s2c" --facts "$F" --memory "$W/rl/memory" --output "$W/abst2" --entities some
drop s2 s2b s2c s2e s2h s2j s2pool s2soft s2pre s2x ckpt-r abst abst2 rl

# int8 weights and the tensor check
check "quantize over its own input: refused, the input untouched" bash -c "cp -r $W/ckpt $W/self && ! $HMST quantize $W/self $W/self/ --dtype int8 2> $W/e0 && grep -q 'is the input' $W/e0 && cmp -s $W/ckpt/model.safetensors $W/self/model.safetensors && rm -rf $W/self"
check "quantize keeps the input's retriever; into an existing checkpoint only with --force, which drops that one's parts" bash -c \
    "cp -r $W/ckpt $W/qret && $HMST train-retriever $W/qret --pairs $W/pairs.jsonl --steps 2 --pooling hidden --hard-negatives 0 2> /dev/null && \
     $HMST quantize $W/qret $W/q8-r --dtype int8 > $W/qr.txt && grep -q 'copied retriever.safetensors, retriever.json' $W/qr.txt && cmp -s $W/qret/retriever.json $W/q8-r/retriever.json && \
     ! $HMST quantize $W/ckpt $W/q8-r --dtype int8 2> $W/qf.err && grep -q 'already holds a checkpoint' $W/qf.err && test -f $W/q8-r/retriever.json && \
     $HMST quantize $W/ckpt $W/q8-r --dtype int8 --force > /dev/null && test ! -e $W/q8-r/retriever.json && $HMST generate $W/q8-r --prompt 'The' --max-length 2 > /dev/null"
check "quantize refuses an output whose files link to the input's, and the input is untouched" bash -c \
    "mkdir -p $W/qlink && ln -sf $W/ckpt/model.safetensors $W/qlink/model.safetensors && ln -sf $W/ckpt/config.json $W/qlink/config.json && md5sum $W/ckpt/model.safetensors > $W/ql.md5 && \
     ! $HMST quantize $W/ckpt $W/qlink --dtype int8 --force 2> $W/ql.err && grep -q 'inside the input' $W/ql.err && md5sum -c --quiet $W/ql.md5"
check "init refuses an existing checkpoint; --force replaces it and drops its retriever" bash -c \
    "cp -r $W/qret $W/reinit && ! $HMST init --size micro $W/reinit 2> $W/ri.err && grep -q 'pass --force' $W/ri.err && test -f $W/reinit/retriever.json && \
     $HMST init --size micro --seed 9007199254740993 --force $W/reinit > /dev/null && test ! -e $W/reinit/retriever.json && grep -q '\"seed\":9007199254740993' $W/reinit/config.json"
check "generate --input names the prompt line that failed; an unwritable --output fails before any prompt runs" bash -c \
    "python3 -c 'print(\"one\"); print(); print(\"word \" * 3000)' > $W/long.txt && ! $HMST generate $W/ckpt --input $W/long.txt --max-length 2 --n-ctx 256 2> $W/gl.err && grep -q 'prompt 2 (.*long.txt line 3)' $W/gl.err && \
     ! $HMST generate $W/ckpt --input $W/long.txt --output /nonexistent-dir/x --max-length 2 2> $W/go.err && grep -q 'cannot write /nonexistent-dir/x' $W/go.err && ! grep -q 'prompt 1/' $W/go.err"
drop qret q8-r qlink reinit
check "quantize to int8 in the row-quad layout, then generate" bash -c "$HMST quantize $W/ckpt $W/q8r --dtype int8-rows4 > /dev/null && grep -q rows4 $W/q8r/config.json && $HMST generate $W/q8r --prompt 'The' --max-length 3 > /dev/null"
check "quantize to int8, then generate with --check-tensors" bash -c "$HMST quantize $W/ckpt $W/q8 --dtype int8 > /dev/null && grep -q q8_0 $W/q8/config.json && $HMST generate $W/q8 --prompt 'The' --max-length 3 --check-tensors > /dev/null"
check "quantize to f16: every tensor F16, each the f32 value rounded to half; held as f16; generates; --weights f16 at load" bash -c "$HMST quantize $W/ckpt $W/f16 --dtype f16 > /dev/null && grep -q float16 $W/f16/config.json && python3 -c \"
import json, struct, sys
import numpy as np
def tensors(d):
    b = open(d + '/model.safetensors', 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8 + n])
    dt = {'F32': np.float32, 'F16': np.float16}
    return {k: np.frombuffer(b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]], dtype=dt[v['dtype']]) for k, v in h.items() if k != '__metadata__'}
a, h = tensors(sys.argv[1]), tensors(sys.argv[2])
assert a.keys() == h.keys() and all(v.dtype == np.float16 for v in h.values())
assert all(np.array_equal(a[k].astype(np.float16), h[k]) for k in a)
\" $W/ckpt $W/f16 && $HMST info $W/f16 | grep -q 'weights: *f16' && $HMST generate $W/f16 --prompt 'The' --max-length 3 > /dev/null \\
  && $HMST info $W/ckpt --weights f16 | grep -q 'weights: *f16' && $HMST generate $W/ckpt --weights f16 --prompt 'The' --max-length 3 > /dev/null"
check "--check-tensors names a NaN weight" bash -c "cp -r $W/ckpt $W/nan && python3 -c \"
import json, struct, sys
p = sys.argv[1] + '/model.safetensors'
b = bytearray(open(p, 'rb').read())
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
name = next(k for k, v in h.items() if k != '__metadata__' and v['dtype'] == 'F32')
o = 8 + n + h[name]['data_offsets'][0] + 4 * 3
b[o:o + 4] = struct.pack('<f', float('nan'))
open(p, 'wb').write(b)
print(name)
\" $W/nan > $W/nan-name && ! $HMST info $W/nan --check-tensors 2> $W/nan.err && grep -qF \"\$(cat $W/nan-name)\" $W/nan.err"
check "quantize --force whose write fails (a norm beyond f16) keeps the checkpoint in OUTPUT whole, parts included" bash -c "cp -r $W/ckpt $W/big && python3 -c \"
import json, struct, sys
p = sys.argv[1] + '/model.safetensors'
b = bytearray(open(p, 'rb').read())
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
o = 8 + n + h['model.norm.weight']['data_offsets'][0]
b[o:o + 4] = struct.pack('<f', 1e6)
open(p, 'wb').write(b)
\" $W/big && cp -r $W/ckpt $W/qkeep && echo '{}' > $W/qkeep/chat_template.json && md5sum $W/qkeep/model.safetensors $W/qkeep/config.json > $W/qk.md5 && \
     ! $HMST quantize $W/big $W/qkeep --dtype f16 --force 2> $W/qk.err && grep -q 'beyond f16' $W/qk.err && md5sum -c --quiet $W/qk.md5 && test -f $W/qkeep/chat_template.json && \
     test -z \"\$(ls -A $W/qkeep | grep hmst-replacing)\" && mkdir $W/qkeep/.hmst-replacing-\$\$ && \
     ! $HMST quantize $W/ckpt $W/qkeep --dtype bf16 --force 2> $W/qk2.err && grep -q 'being replaced by process' $W/qk2.err && md5sum -c --quiet $W/qk.md5 && \
     mv $W/qkeep/.hmst-replacing-\$\$ $W/qkeep/.hmst-replacing-999999999 && \
     $HMST quantize $W/ckpt $W/qkeep --dtype bf16 --force > /dev/null 2> $W/qk3.err && grep -q 'left by an earlier replacement' $W/qk3.err && test ! -e $W/qkeep/chat_template.json && \
     test -z \"\$(ls -A $W/qkeep | grep hmst-replacing)\" && $HMST info $W/qkeep | grep -q 'weights: *bf16' && rm -rf $W/big $W/qkeep"
fails "memory of a corrupt directory" bash -c "echo '{' > $MEM/semantic/memory.json && $HMST memory stats --dir $MEM"
# placement-report: where a loaded model's pages and workers are (tools/numa-vm checks it on two
# nodes; here, one). Every weight page is resident after a placed load, on the only node.
pr_field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {}, d))" "$1"; }
export -f pr_field
check "placement-report disabled: JSON with page counts and 2 workers" bash -c \
    "j=\$($HMST placement-report $W/ckpt --threads 3 --per-tensor); [[ \$(pr_field 'nodes' <<<\"\$j\") == 1 && \$(pr_field 'len(workers)' <<<\"\$j\") == 2 \
     && \$(pr_field 'total[\"pages\"] == sum(total[\"by_node\"].values()) + total[\"not_present\"] + total[\"unknown\"]' <<<\"\$j\") == True \
     && \$(pr_field 'len(per_tensor) == tensors and tensors > 0' <<<\"\$j\") == True ]]"
if $HMST system-info | grep -q 'policy calls permitted'; then
    for copy in "" --copy; do
        check "placement-report isolate $copy: every page on node 0, bound, workers on node 0" bash -c \
            "j=\$($HMST placement-report $W/ckpt --numa isolate $copy --threads 3); \
             [[ \$(pr_field 'applied' <<<\"\$j\") == isolate && \$(pr_field 'total[\"by_node\"] == {\"0\": total[\"pages\"]}' <<<\"\$j\") == True \
             && \$(pr_field 'policy == {\"mode\": \"bind\", \"nodes\": [0]}' <<<\"\$j\") == True && \$(pr_field 'workers == node_cpus[:1] * 2' <<<\"\$j\") == True \
             && \$(pr_field 'copied' <<<\"\$j\") == \$([[ -n '$copy' ]] && echo True || echo False) ]]"
    done
    check "placement-report distribute: interleave policy, all pages resident" bash -c \
        "j=\$($HMST placement-report $W/ckpt --numa distribute --threads 3); [[ \$(pr_field 'policy[\"mode\"]' <<<\"\$j\") == interleave \
         && \$(pr_field 'total[\"not_present\"]' <<<\"\$j\") == 0 ]]"
else
    check "placement-report isolate where policy calls are refused: applied disabled, with a warning" bash -c \
        "j=\$($HMST placement-report $W/ckpt --numa isolate); [[ \$(pr_field 'applied' <<<\"\$j\") == disabled && \$(pr_field 'len(warnings)' <<<\"\$j\") -ge 1 ]]"
fi
check "placement-report --hold waits for stdin to close" bash -c "echo | timeout 60 $HMST placement-report $W/ckpt --hold > /dev/null"
check "worker threads are named hmst-wN" bash -c \
    "coproc P { exec $HMST placement-report $W/ckpt --threads 3 --hold; }; read -r line <&\${P[0]}; pid=\$(pr_field pid <<<\"\$line\"); \
     names=\$(cat /proc/\$pid/task/*/comm | grep '^hmst-w' | sort | tr '\n' ' '); eval \"exec \${P[1]}>&-\"; wait; [[ \$names == 'hmst-w0 hmst-w1 ' ]]"
fails "placement-report with an unknown strategy" "$HMST" placement-report "$W/ckpt" --numa everywhere
fails "placement-report of a missing checkpoint" "$HMST" placement-report "$W/no-such-ckpt"
echo "cli: $pass passed, $fail failed"
[[ $fail -eq 0 ]] && rm -rf "$W"
[[ $fail -eq 0 ]]

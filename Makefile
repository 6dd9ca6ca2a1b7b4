# hmst: build, test, demo and install.
#   make demo      set up missing dependencies, build, run the main job on a built-in default
#   make test      set up, build, run every test (swift test, C hosts + ASan, pytest, checks)
#   make install PREFIX=/usr/local   library, header, pkg-config file, the hmst tool and hmst-server
SHELL := /bin/bash
export PATH := $(PATH):/opt/swift/usr/bin

VERSION    := 0.1.0
SOVERSION  := 0
PREFIX     ?= /usr/local
PYTHON     ?= python3
CC         ?= cc
CXX        ?= c++

SCRATCH    := .build-release
OUT        := build
LIB        := $(OUT)/lib/libhmst.so.$(VERSION)
CLI        := $(OUT)/bin/hmst
SERVER     := $(OUT)/bin/hmst-server
SWIFTFLAGS := -c release --scratch-path $(SCRATCH) -Xswiftc -static-stdlib -Xswiftc -use-ld=lld
LIBFLAGS   := -Xlinker --version-script=$(CURDIR)/Sources/HMSTCAPI/exports.map -Xlinker -soname=libhmst.so.$(SOVERSION)
CWARN      := -std=c11 -Wall -Wextra -Werror
RPATH      := -Wl,-rpath,$(CURDIR)/$(OUT)/lib

.PHONY: all deps lib cli demo test disk-check install uninstall clean swift-test chost chost-asan pytest \
        header-check export-check examples install-check python-package cli-test bench mpi-test server server-test

all: lib cli server

deps: $(OUT)/.deps
$(OUT)/.deps: tools/setup-deps.sh
	@mkdir -p $(OUT)
	@PYTHON=$(PYTHON) bash tools/setup-deps.sh
	@touch $@

SOURCES := $(shell find Sources include -type f -o -type l) Package.swift

lib: $(LIB)
$(LIB): $(OUT)/.deps $(SOURCES)
	swift build $(SWIFTFLAGS) --product hmst $(LIBFLAGS)
	@mkdir -p $(OUT)/lib
	cp $(SCRATCH)/release/libhmst.so $(LIB).tmp && mv -f $(LIB).tmp $(LIB)
	ln -sf libhmst.so.$(VERSION) $(OUT)/lib/libhmst.so.$(SOVERSION)
	ln -sf libhmst.so.$(VERSION) $(OUT)/lib/libhmst.so

cli: $(CLI)
$(CLI): $(OUT)/.deps $(SOURCES)
	swift build $(SWIFTFLAGS) --product hmst-cli
	@mkdir -p $(OUT)/bin
	cp $(SCRATCH)/release/hmst-cli $(CLI).tmp && mv -f $(CLI).tmp $(CLI)

# The HTTP server (`hmst serve` execs it): its own executable, the only one that links Hummingbird.
server: $(SERVER)
$(SERVER): $(OUT)/.deps $(SOURCES)
	swift build $(SWIFTFLAGS) --product hmst-server
	@mkdir -p $(OUT)/bin
	cp $(SCRATCH)/release/hmst-server $(SERVER).tmp && mv -f $(SERVER).tmp $(SERVER)

# ---- tests ----------------------------------------------------------------------------------

test: disk-check all swift-test header-check export-check chost chost-asan examples pytest cli-test mpi-test server-test install-check
	@echo "make test: all suites passed"

# The suite peaks at about 4 GB in this tree (two Swift builds, fixtures, the CLI and MPI tests'
# checkpoints, each dropped once read): say so first where the disk is shorter than that.
disk-check:
	@avail=$$(df -Pm . | awk 'NR == 2 {print $$4}'); if [ "$${avail:-0}" -lt 4500 ]; then \
	  echo "make test: warning: $$avail MB free here; the suite needs about 4,500 MB (builds and test checkpoints)" >&2; fi

# A small checkpoint with a tokenizer for the examples: an UNTRAINED micro model plus a BPE
# trained on Debian's license texts (present on every Debian system).
FIXTURE := $(OUT)/fixtures/micro
LICENSES := /usr/share/common-licenses/GPL-3 /usr/share/common-licenses/Apache-2.0
$(FIXTURE)/config.json: $(CLI)
	@mkdir -p $(OUT)/fixtures
	$(CLI) tokenizer train --vocab-size 1000 --no-progress --output $(OUT)/fixtures/tokenizer.json $(LICENSES)
	$(CLI) init --size micro --seed 1 --force --tokenizer $(OUT)/fixtures/tokenizer.json $(FIXTURE)
	$(CLI) preprocess --input $(LICENSES) --output $(OUT)/fixtures/data --tokenizer-path $(OUT)/fixtures/tokenizer.json --no-progress

cli-test: $(CLI)
	bash Tests/cli/test_cli.sh $(CURDIR)/$(CLI) $(CURDIR)/$(OUT)/cli-test

# Data-parallel training under mpirun -np 2 (OpenMPI from tools/setup-deps.sh): equivalence with
# one process, kill -9 during checkpoint saves, a stalled and a killed rank; then the Python
# API as a rank of an MPI job.
mpi-test: $(CLI) $(FIXTURE)/config.json lib
	bash Tests/mpi/test_data_parallel.sh $(CURDIR)/$(CLI) $(CURDIR)/$(OUT)/fixtures $(CURDIR)/$(OUT)/mpi-test
	bash Tests/mpi/test_python_mpi.sh $(CURDIR)/$(LIB) $(CURDIR)/$(OUT)/fixtures $(CURDIR)/$(OUT)/mpi-test-python

# The server against the official openai client, schemathesis on its OpenAPI document, memory
# durability under kill -9, a small load test, cancellation and SIGTERM drain (Tests/server).
server-test: $(SERVER) $(CLI) $(FIXTURE)/config.json
	HMST_SERVER_BIN=$(CURDIR)/$(SERVER) HMST_CLI_BIN=$(CURDIR)/$(CLI) HMST_FIXTURE=$(CURDIR)/$(FIXTURE) \
	  $(PYTHON) -m pytest -q -p no:cacheprovider -o tmp_path_retention_policy=failed Tests/server

swift-test: $(OUT)/.deps
	@mkdir -p $(OUT)
	swift test --disable-swift-testing 2>&1 | tee $(OUT)/swift-test.log | \
	  grep -E "error:|failed|Executed .* tests|Test Suite 'All tests'" ; exit $${PIPESTATUS[0]}

header-check:
	$(CC) $(CWARN) -pedantic -fsyntax-only -x c include/hmst.h
	$(CXX) -std=c++17 -Wall -Wextra -Werror -pedantic -fsyntax-only -x c++ include/hmst.h
	@echo "header-check: hmst.h is clean C11 and C++17"

export-check: lib
	$(PYTHON) tools/check_exports.py --header include/hmst.h --library $(LIB) --tests Tests/CHost/*.c
	@if ldd $(LIB) | grep -qi swift; then echo "export-check: libhmst depends on the Swift runtime" >&2; exit 1; fi

CHOST_TESTS := $(patsubst Tests/CHost/%.c,$(OUT)/tests/%,$(wildcard Tests/CHost/*.c))

$(OUT)/tests/%: Tests/CHost/%.c include/hmst.h $(LIB)
	@mkdir -p $(OUT)/tests
	$(CC) $(CWARN) -g -Iinclude -DGOLDEN_DIR=\"$(CURDIR)/Tests/Golden\" -DFIXTURE_DIR=\"$(CURDIR)/$(OUT)/fixtures\" $< -L$(OUT)/lib -lhmst -lpthread -lm $(RPATH) -o $@

$(OUT)/tests-asan/%: Tests/CHost/%.c include/hmst.h $(LIB)
	@mkdir -p $(OUT)/tests-asan
	$(CC) $(CWARN) -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer -Iinclude -DGOLDEN_DIR=\"$(CURDIR)/Tests/Golden\" -DFIXTURE_DIR=\"$(CURDIR)/$(OUT)/fixtures\" $< \
	  -L$(OUT)/lib -lhmst -lpthread -lm $(RPATH) -o $@

chost: $(CHOST_TESTS) $(FIXTURE)/config.json
	@set -e; for t in $(CHOST_TESTS); do echo "== $$t"; env -u LD_LIBRARY_PATH $$t; done; rm -rf /tmp/hmst-ctest-*

chost-asan: $(patsubst $(OUT)/tests/%,$(OUT)/tests-asan/%,$(CHOST_TESTS)) $(FIXTURE)/config.json
	@set -e; for t in $(patsubst $(OUT)/tests/%,$(OUT)/tests-asan/%,$(CHOST_TESTS)); do echo "== $$t (AddressSanitizer)"; \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/CHost/lsan.supp \
	  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 $$t; done; rm -rf /tmp/hmst-ctest-*

EXAMPLES_C := $(patsubst examples/c/%.c,$(OUT)/examples/%,$(wildcard examples/c/*.c))
$(OUT)/examples/%: examples/c/%.c include/hmst.h $(LIB)
	@mkdir -p $(OUT)/examples
	$(CC) $(CWARN) -Iinclude $< -L$(OUT)/lib -lhmst $(RPATH) -o $@

examples: $(EXAMPLES_C) python-package $(FIXTURE)/config.json
	@echo "== examples/c/system_info.c"; $(OUT)/examples/system_info
	@echo "== examples/c/generate.c (untrained micro model: the text is noise)"; \
	  $(OUT)/examples/generate $(FIXTURE) "The license" 20
	@echo "== examples/python/system_info.py"; HMST_LIBRARY=$(CURDIR)/$(LIB) $(PYTHON) examples/python/system_info.py
	@echo "== examples/python/generate.py (untrained micro model)"; \
	  HMST_LIBRARY=$(CURDIR)/$(LIB) $(PYTHON) examples/python/generate.py $(FIXTURE) "The license" 20
	@echo "== examples/python/memory_search.py (untrained micro model)"; \
	  HMST_LIBRARY=$(CURDIR)/$(LIB) $(PYTHON) examples/python/memory_search.py $(FIXTURE)

python-package: lib
	cp $(LIB) bindings/python/hmst/libhmst.so
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --root-user-action=ignore ./bindings/python

pytest: python-package $(FIXTURE)/config.json
	cd bindings/python && HMST_LIBRARY=$(CURDIR)/$(LIB) $(PYTHON) -m pytest -q -o tmp_path_retention_policy=failed tests
	cd /tmp && env -u HMST_LIBRARY $(PYTHON) -c "import hmst; print('pip-installed hmst', hmst.__version__, 'loads', hmst.library_path())"

# make install into a scratch prefix, then build an out-of-tree program with pkg-config alone.
install-check: all
	rm -rf $(OUT)/stage
	$(MAKE) --no-print-directory install PREFIX=$(CURDIR)/$(OUT)/stage
	mkdir -p $(OUT)/oot && cp examples/c/system_info.c $(OUT)/oot/app.c
	cd $(OUT)/oot && PKG_CONFIG_PATH=$(CURDIR)/$(OUT)/stage/lib/pkgconfig \
	  $(CC) $(CWARN) app.c $$(PKG_CONFIG_PATH=$(CURDIR)/$(OUT)/stage/lib/pkgconfig pkg-config --cflags --libs hmst) -o app
	env -u LD_LIBRARY_PATH $(OUT)/oot/app > /dev/null && echo "install-check: out-of-tree program built with pkg-config runs"

# ---- install ---------------------------------------------------------------------------------

install: all
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/bin
	install -m 755 $(LIB) $(DESTDIR)$(PREFIX)/lib/
	ln -sf libhmst.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libhmst.so.$(SOVERSION)
	ln -sf libhmst.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libhmst.so
	install -m 644 include/hmst.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(CLI) $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(SERVER) $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' tools/hmst.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/hmst.pc
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libhmst.so* $(DESTDIR)$(PREFIX)/include/hmst.h \
	      $(DESTDIR)$(PREFIX)/bin/hmst $(DESTDIR)$(PREFIX)/bin/hmst-server $(DESTDIR)$(PREFIX)/lib/pkgconfig/hmst.pc

# ---- demo ------------------------------------------------------------------------------------

# The main job on a built-in default: train the micro preset on Debian's fortunes for about two
# minutes (tokenizer, shards, document-level validation split, AdamW), then generate from the
# best checkpoint from the CLI, from C and from Python.
DEMO := $(OUT)/demo
FORTUNES = $(shell ls /usr/share/games/fortunes/* 2>/dev/null | grep -v '\.')
DEMO_STEPS ?= 450
DEMO_S2_STEPS ?= 300
DEMO_READING_DOCS ?= 7000
DEMO_COPY_DOCS ?= 9000
demo: all examples
	$(CLI) system-info
	rm -rf $(DEMO)
	@echo "== the demo corpus: the fortune files plus reading documents (facts, then questions answered from them) and copy lists,"
	@echo "   which never name the fact benchmark's entities (hmst facts reading --exclude)"
	$(CLI) facts generate --output $(DEMO)/facts --seed 1 > /dev/null
	$(CLI) facts reading --output $(DEMO)/reading.txt --documents $(DEMO_READING_DOCS) --copy-documents $(DEMO_COPY_DOCS) --exclude $(DEMO)/facts
	$(CLI) train $(DEMO)/reading.txt $(FORTUNES) --doc-separator % --model-size micro --vocab-size 4096 --seq-len 128 --batch-size 8 \
	  --steps-per-epoch $(DEMO_STEPS) --eval-every 50 --val-split 0.1 --learning-rate 1e-3 --seed 1 --output-dir $(DEMO)
	@echo "== validation curve (metrics.jsonl)"; grep val_loss $(DEMO)/metrics.jsonl | \
	  $(PYTHON) -c "import sys, json; [print('step %4d  val loss %.3f nats/token, %.3f bits/byte' % (d['step'], d['val_loss'], d.get('val_bpb', float('nan')))) for d in map(json.loads, sys.stdin)]"
	@echo "   (loss curves: $(DEMO)/loss.svg)"
	@echo "== hmst generate (CLI)"; $(CLI) generate $(DEMO)/best_model --prompt "Q: What is the meaning of life?" --max-length 40 --seed 7 --temperature 0.7
	@echo "== examples/c/generate.c"; $(OUT)/examples/generate $(DEMO)/best_model "A computer" 40
	@echo "== examples/python/generate.py"; HMST_LIBRARY=$(CURDIR)/$(LIB) $(PYTHON) examples/python/generate.py $(DEMO)/best_model "Love is" 40
	@echo "== examples/python/memory_search.py (episodic SSM memory, consolidation, FAISS semantic memory)"; \
	  cat $(FORTUNES) | head -c 20000 | tr '\n' ' ' | sed 's/ % /\n/g' | head -40 > $(DEMO)/memories.txt; \
	  HMST_LIBRARY=$(CURDIR)/$(LIB) $(PYTHON) examples/python/memory_search.py $(DEMO)/best_model $(DEMO)/memories.txt
	@echo "== Stage 2: $(DEMO_S2_STEPS) steps of memory fine-tuning on the fact benchmark, then held-out facts with memory"
	@echo "   off / on (hybrid retrieval among 10k distractors, then BM25 alone) / oracle / deleted (benchmarks/memory_finetune.sh)"
	STEPS=$(DEMO_S2_STEPS) LIMIT=60 EM_ALL=0 HMST=$(CLI) EXTRA="--copy-head --learning-rate 1e-3 --questions-per-example 4 --condition-weights 0.6,0.3,0.1 --retrieved-distractors 1.0" bash benchmarks/memory_finetune.sh \
	  $(DEMO)/best_model $(DEMO) $(DEMO)/stage2
	@echo "== Stage 3: the meta-controller by PPO on a query mix (known / semantic / episodic / unanswerable facts)"
	$(CLI) rl-train --checkpoint $(DEMO)/stage2/stage2/final --facts $(DEMO)/stage2/facts --output $(DEMO)/rl \
	  --queries-per-kind 12 --semantic-distractors 300 --episodic-distractors 30 --episodes 65536
	@echo "== the HMST engine (hmst ask): decisions, citations, confidence, cost"
	@$(PYTHON) -c "import json,sys; rows=[json.loads(l) for l in open(sys.argv[1])]; \
	  [print(next(r['query'] for r in rows if r['kind'] == k)) for k in ('semantic', 'episodic', 'unanswerable')]" \
	  $(DEMO)/rl/outcomes.jsonl > $(DEMO)/queries.txt
	@echo "   with the PPO controller's decisions:"; $(CLI) ask $(DEMO)/stage2/stage2/final --memory $(DEMO)/rl/memory < $(DEMO)/queries.txt
	@echo "   with both memories and verification (--policy full):"
	$(CLI) ask $(DEMO)/stage2/stage2/final --memory $(DEMO)/rl/memory --policy full < $(DEMO)/queries.txt

# Inference, training, GEMM and tokenizer speed, as JSON lines (not part of make test).
bench: deps
	swift build -c release --product hmst-bench
	.build/release/hmst-bench
	.build/release/hmst-bench train --preset micro --threads 1,2 --precision f32,bf16
	.build/release/hmst-bench gemm
	$(PYTHON) benchmarks/tokenizer_vs_hf.py

clean:
	rm -rf $(OUT) $(SCRATCH) .build bindings/python/hmst/libhmst.so bindings/python/build

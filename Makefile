# hearth - one plain Makefile.
#   make            build libhearth.a and the hearth CLI (build/)
#   make run        run a model: MODEL=path.gguf or a stored name, else the first models/*.gguf,
#                   else the default instruct model (pulled once), else the bundled one
#   make test       build and run the tests, then again under ASan+UBSan;
#                   also builds everything with clang -Werror when clang is there
#   make deps       install the Debian packages the build needs (apt-get; run by run and test)
#   make conformance  differential fuzzing of the tokenizers against Hugging Face's
#                   (100 000 random strings per vocabulary; npm registry; not in CI)
#   make fuzz       libFuzzer targets (clang), FUZZ_SECONDS each [300]; make test runs
#                   fuzz-short (FUZZ_SHORT_SECONDS each [20])

CC       ?= cc
OPT      ?= -O2
CFLAGS   += -std=c11 $(OPT) -g -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -fno-strict-aliasing
CPPFLAGS += -D_DEFAULT_SOURCE -Iinclude
LDLIBS   += -lcurl -lmicrohttpd -lpcre2-8 -lutf8proc -ljansson -lcrypto -lsqlite3 -lm -lpthread
SAN      := -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all -fno-omit-frame-pointer

B        ?= build
LIB_SRC  := $(sort $(wildcard src/*/*.c src/*/*/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c server/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c tests/unit/*.c tests/golden/*.c))
# kernels: -O3 so that the plain-C loops (attn-tile.h) are vectorized
$(B)/src/kern/%.o: CFLAGS += -O3
# each instruction set is its own translation unit with its own flags (x86-64 only)
ifneq ($(findstring x86_64,$(shell $(CC) -dumpmachine)),)
CPPFLAGS += -DHEARTH_HAVE_AVX2 -DHEARTH_HAVE_AVX512VNNI -DHEARTH_HAVE_AVX512BF16
$(B)/src/kern/x86/avx2.o: CFLAGS += -mavx2 -mfma -mf16c
$(B)/src/kern/x86/avx2-gemm-f32.o: CFLAGS += -mavx2 -mfma
$(B)/src/kern/x86/avx2-dequant.o: CFLAGS += -mavx2 -mf16c
$(B)/src/kern/x86/avx512vnni.o: CFLAGS += -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni
$(B)/src/kern/x86/avx512vnni-kquants.o: CFLAGS += -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512vnni
$(B)/src/kern/x86/avx512-attn.o: CFLAGS += -mavx2 -mfma -mf16c -mavx512f
$(B)/src/kern/x86/avx512bf16.o: CFLAGS += -mavx2 -mfma -mavx512f -mavx512bw -mavx512vl -mavx512bf16
else
LIB_SRC  := $(filter-out src/kern/x86/%,$(LIB_SRC))
endif
LIB_OBJ  := $(LIB_SRC:%.c=$(B)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(B)/%.o) $(B)/server/web-assets.o
TEST_OBJ := $(TEST_SRC:%.c=$(B)/%.o)
# the server's request path without its main (serve.c), for the tests and the fuzzers
SRV_OBJ  := $(filter-out $(B)/server/serve.o,$(filter $(B)/server/%,$(CLI_OBJ)))
DEBS     := build-essential libcurl4-openssl-dev libpcre2-dev libutf8proc-dev libjansson-dev libmicrohttpd-dev libssl-dev libsqlite3-dev clang libclang-rt-dev openssl \
	    python3-jinja2

.PHONY: all run test test-plain test-san test-clang test-e2e test-conformance test-jinja-diff conformance deps deps-browser bench clean \
	fuzz fuzz-short fuzz-build
all: $(B)/hearth

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c $< -o $@

# the web chat page (web/), embedded into the server by a generator of byte arrays
WEB_FILES := $(sort $(wildcard web/*.html web/*.css web/*.js))
$(B)/web-embed: tools/web-embed.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<
$(B)/server/web-assets.c: $(B)/web-embed $(WEB_FILES)
	@mkdir -p $(dir $@)
	$(B)/web-embed $(WEB_FILES) > $@.tmp && mv $@.tmp $@
$(B)/server/web-assets.o: $(B)/server/web-assets.c
	$(CC) $(CPPFLAGS) -Iserver $(CFLAGS) -c $< -o $@

$(B)/libhearth.a: $(LIB_OBJ)
	ar rcs $@ $^

$(B)/hearth: $(CLI_OBJ) $(B)/libhearth.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# the test runner's allocations go through tests/fault.c (fault injection; see tests/fault.h)
TEST_WRAP := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=posix_memalign,--wrap=aligned_alloc,--wrap=mmap
$(B)/test-runner: $(TEST_OBJ) $(SRV_OBJ) $(B)/libhearth.a
	$(CC) $(CFLAGS) $(LDFLAGS) $(TEST_WRAP) -o $@ $^ $(LDLIBS)

# Install the build dependencies when they are missing (Debian/Ubuntu).
deps:
	@if ! (echo '#include <pcre2.h>'; echo '#include <utf8proc.h>'; echo '#include <jansson.h>'; \
	       echo '#include <microhttpd.h>'; echo '#include <openssl/evp.h>'; echo '#include <curl/curl.h>'; echo '#include <sqlite3.h>') | \
	    $(CC) -DPCRE2_CODE_UNIT_WIDTH=8 -E - >/dev/null 2>&1 || ! command -v npm >/dev/null || ! command -v openssl >/dev/null || \
	    ! tests/fuzz/run.sh --can-build $(FUZZ_CC) || ! python3 -c 'import jinja2' 2>/dev/null; then \
	  echo "installing $(DEBS)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $(DEBS) $$(command -v npm >/dev/null || echo nodejs npm); \
	fi

# the web pages' browser tests: Debian's chromium, installed for make test only
deps-browser:
	@command -v chromium >/dev/null || { echo "installing chromium (the web pages' browser tests)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium; } \
	  || echo "chromium could not be installed: the browser tests will skip"

MODEL ?= $(firstword $(wildcard models/*.gguf))
BUNDLED_MODEL := assets/stories260K/stories260K.gguf
# with no MODEL: this instruct model from the store, pulled the first time (about 400 MB)
DEFAULT_MODEL ?= Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M
PROMPT ?= Once upon a time
CHAT_PROMPT := $(if $(filter file,$(origin PROMPT)),Write a short poem about a warm hearth.,$(PROMPT))
run: deps
	@$(MAKE) --no-print-directory all
	@if [ -n "$(MODEL)" ]; then \
	  echo "make run: $(MODEL)"; \
	  ./$(B)/hearth run -m "$(MODEL)" -p "$(PROMPT)" -n 128; \
	elif ./$(B)/hearth show "$(DEFAULT_MODEL)" >/dev/null 2>&1 || \
	     { echo "make run: no MODEL=, so this pulls the default model $(DEFAULT_MODEL) (once, about 400 MB)"; \
	       ./$(B)/hearth pull --connect-timeout 5 --stall-timeout 20 "$(DEFAULT_MODEL)" >/dev/null; }; then \
	  echo "make run: $(DEFAULT_MODEL) from the store, as a chat (MODEL=path.gguf for another)"; \
	  echo "> $(CHAT_PROMPT)"; \
	  echo "$(CHAT_PROMPT)" | ./$(B)/hearth chat -m "$(DEFAULT_MODEL)" -n 256 2>/dev/null | sed -e '1s/^> //' -e '$${/^> *$$/d}'; echo; \
	else \
	  echo "make run: could not pull $(DEFAULT_MODEL) (no network?), so this runs the bundled TinyStories 260K model"; \
	  echo "($(BUNDLED_MODEL): 1 MB, MIT, writes short stories; not a chat model). For yours:"; \
	  echo "make run MODEL=path/to/model.gguf or a stored name (llama, mistral, qwen2/3, qwen3moe, gemma2/3, phi3, glm4, chatglm, gpt-oss)."; \
	  ./$(B)/hearth run -m "$(BUNDLED_MODEL)" -p "$(PROMPT)" -n 128; \
	fi

test: deps deps-browser
	@$(MAKE) --no-print-directory test-plain
	@$(MAKE) --no-print-directory test-san
	@$(MAKE) --no-print-directory test-clang
	@$(MAKE) --no-print-directory fuzz-short

test-plain: tests/conformance/node_modules/.package-lock.json
	@$(MAKE) --no-print-directory B=build $(B)/hearth build/test-runner
	HEARTH_BIN=build/hearth ./build/test-runner
	HEARTH_CPU=avx2 ./build/test-runner test_kern_    # the AVX2 kernels that AVX-512 ones replace here
	@$(MAKE) --no-print-directory test-e2e E2E_BIN=build/hearth
	@$(MAKE) --no-print-directory test-conformance FUZZ_N=3000
	@$(MAKE) --no-print-directory test-jinja-diff

test-san:
	@$(MAKE) --no-print-directory B=build-san OPT="-O1 $(SAN)" LDFLAGS="$(SAN)" build-san/hearth build-san/test-runner
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 HEARTH_BIN=build-san/hearth HEARTH_SAN=1 ./build-san/test-runner
	@$(MAKE) --no-print-directory test-e2e E2E_BIN=build-san/hearth E2E_ENV="HEARTH_SAN=1 ASAN_OPTIONS=detect_leaks=1"

# the server end to end, driven by the official openai npm package (node:test)
E2E_BIN ?= build/hearth
test-e2e: tests/e2e/node_modules/.package-lock.json
	cd tests/e2e && $(E2E_ENV) HEARTH_BIN=$(E2E_BIN) node --test

tests/e2e/node_modules/.package-lock.json: tests/e2e/package.json tests/e2e/package-lock.json
	cd tests/e2e && npm ci --no-audit --no-fund --loglevel=error

# the chat-template interpreter against Python's jinja2 (python3-jinja2; skips without it):
# random conversations for every fixture template, fixed seed
JINJA_SEED ?= 20261128
test-jinja-diff:
	@if python3 -c 'import jinja2' 2>/dev/null; then \
	  python3 tests/jinja/diff.py --seed $(JINJA_SEED) --per-template 40 --hearth build/hearth; \
	else echo "test-jinja-diff: skipped: python3-jinja2 is not installed (apt-get install python3-jinja2)"; fi

# the tokenizers against Hugging Face's own (npm "tokenizers", the Rust library)
FUZZ_N ?= 100000
test-conformance: tests/conformance/node_modules/.package-lock.json
	cd tests/conformance && HEARTH_BIN=build/hearth node fuzz.mjs --n $(FUZZ_N)

conformance:
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory test-conformance

tests/conformance/node_modules/.package-lock.json: tests/conformance/package.json tests/conformance/package-lock.json
	cd tests/conformance && npm ci --no-audit --no-fund --loglevel=error

# benchmarks: tools here, scripts and results in bench/ (run on purpose, never in CI)
bench: $(B)/hearth $(B)/mkmodel $(B)/tokbench $(B)/membw $(B)/peak $(B)/grammar-mask $(B)/embd-dump
$(B)/mkmodel: bench/mkmodel.c tests/synth.c $(B)/libhearth.a
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ bench/mkmodel.c tests/synth.c $(B)/libhearth.a $(LDLIBS)
$(B)/membw: bench/membw.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -O3 -mavx2 -o $@ bench/membw.c src/base/bigmem.c -lpthread
$(B)/peak: bench/peak.c
	$(CC) $(CPPFLAGS) $(CFLAGS) -O2 -o $@ bench/peak.c -lpthread
$(B)/grammar-mask: bench/grammar-mask.c $(B)/libhearth.a
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ bench/grammar-mask.c $(B)/libhearth.a $(LDLIBS)
$(B)/tokbench: bench/tokbench.c $(B)/libhearth.a
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ bench/tokbench.c $(B)/libhearth.a $(LDLIBS)
$(B)/embd-dump: bench/embd-dump.c $(B)/libhearth.a
	$(CC) $(CPPFLAGS) $(CFLAGS) -o $@ bench/embd-dump.c $(B)/libhearth.a $(LDLIBS)

# gcc and clang must both compile the tree without a warning
test-clang:
	@if command -v clang >/dev/null; then \
	  $(MAKE) --no-print-directory B=build-clang CC=clang build-clang/hearth build-clang/test-runner >/dev/null && \
	  echo "clang build: clean"; \
	else echo "clang not installed: skipped the clang build"; fi

# libFuzzer targets: tests/fuzz/fuzz-NAME.c each, listed here (one more target is
# one more file and one more name). Seeds: tests/fuzz/corpus/NAME/ (committed,
# replayed by every run) and build-fuzz/seeds/NAME/ (written by mkseeds);
# tests/fuzz/NAME.dict when present. New inputs go to build-fuzz/corpus/NAME/,
# reproducers of findings to build-fuzz/findings/NAME/ (and the make target fails).
FUZZ_TARGETS := gguf tok hf-vocab http jinja grammar safetensors state lora lora-moe dataset checkpoint
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 300
FUZZ_SHORT_SECONDS ?= 20
fuzz-build:
	@$(MAKE) --no-print-directory B=build-fuzz CC=$(FUZZ_CC) OPT="-O1 -fsanitize=fuzzer-no-link $(SAN)" \
	  LDFLAGS="$(SAN)" $(FUZZ_TARGETS:%=build-fuzz/fuzz-%) build-fuzz/mkseeds
	@./build-fuzz/mkseeds build-fuzz/seeds

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-build
	@tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# the harnesses compile warning-free under $(CC) too; the run needs clang's libFuzzer
fuzz-short:
	@$(CC) $(CPPFLAGS) $(CFLAGS) -fsyntax-only tests/fuzz/*.c
	@if tests/fuzz/run.sh --can-build $(FUZZ_CC); then \
	  $(MAKE) --no-print-directory fuzz-build >/dev/null && tests/fuzz/run.sh $(FUZZ_SHORT_SECONDS) $(FUZZ_TARGETS); \
	else echo "fuzz-short: skipped: $(FUZZ_CC) cannot link -fsanitize=fuzzer (install clang and libclang-rt-dev)"; fi

.PRECIOUS: $(B)/tests/fuzz/%.o
$(B)/fuzz-%: $(B)/tests/fuzz/fuzz-%.o $(B)/tests/fuzz/common.o $(B)/libhearth.a
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/fuzz-http: $(B)/tests/fuzz/fuzz-http.o $(B)/tests/fuzz/common.o $(SRV_OBJ) $(B)/libhearth.a
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(B)/mkseeds: $(B)/tests/fuzz/mkseeds.o $(B)/libhearth.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

clean:
	rm -rf build build-san build-clang build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d) $(wildcard $(B)/tests/fuzz/*.d)

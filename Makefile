# intact — plain Makefile. `make` builds build/intact; `make check` runs every test;
# `make check SANITIZE=1` does the same under AddressSanitizer + UBSan (in build-san/).
CC      ?= cc
SANITIZE ?= 0
OPT     ?= -O2
BUILD   := $(if $(filter 1,$(SANITIZE)),build-san,build)
SAN_ON   := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g
SANFLAGS := $(if $(filter 1,$(SANITIZE)),$(SAN_ON),)
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Werror -Iinclude -Isrc -pthread $(SANFLAGS)
LDLIBS  := -lm -pthread
LDFLAGS += $(SANFLAGS)

# x86 SIMD kernels live in *_avx2.c / *_avx512.c and get their ISA flags per file; the rest of the
# binary stays baseline x86-64 and picks kernels at run time.
AVX2_FLAGS   := -mavx2 -mfma -mf16c
AVX512_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512bf16 -mfma -mf16c

LIB_SRC  := $(wildcard src/core/*.c src/formats/*.c src/io/*.c src/model/*.c src/kernels/*.c src/forward/*.c \
                       src/kv/*.c src/eval/*.c src/sample/*.c src/quant/*.c src/ikv/*.c)
# The server (src/serve/, only in the CLI binary) uses GNU libmicrohttpd and cJSON from Debian
# (apt-get install libmicrohttpd-dev libcjson-dev), found with pkg-config.
CLI_SRC  := $(wildcard src/cli/*.c src/serve/*.c)
SERVE_PKGS := libmicrohttpd libcjson
SERVE_CFLAGS := $(shell pkg-config --cflags $(SERVE_PKGS) 2>/dev/null)
SERVE_LIBS   := $(shell pkg-config --libs $(SERVE_PKGS) 2>/dev/null || echo -lmicrohttpd -lcjson)
TEST_SRC := $(wildcard tests/test_*.c)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIB      := $(BUILD)/libintact.a
BIN      := $(BUILD)/intact

SHARED ?= ../shared
export INTACT_SHARED := $(abspath $(SHARED))
# stories260K.bin and tok512.bin (the demo, most tests, the install test) come from the shared
# directory like every other model: weights are not kept in the repository.
export INTACT_MODELS := $(INTACT_SHARED)/models
NEED_SHARED = @test -r $(INTACT_MODELS)/stories260K.bin || { echo "needs stories260K.bin and tok512.bin in $(INTACT_MODELS): make $@ SHARED=DIR (they are MIT, from huggingface.co/karpathy/tinyllamas, stories260K/)"; exit 2; }

# Installation (`make install PREFIX=... DESTDIR=...`): the CLI, libintact.a, the versioned shared
# library, the header, a pkg-config file and the man page.
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
VERSION  := $(shell sed -n 's/^\#define INTACT_VERSION "\(.*\)"/\1/p' include/intact.h)
SOMAJOR  := $(firstword $(subst ., ,$(VERSION)))
SONAME   := libintact.so.$(SOMAJOR)
SO       := $(BUILD)/libintact.so.$(VERSION)

.PHONY: all check test-bins demo bench clean goldens fuzz fuzz-smoke lib install uninstall
all: $(BIN)

# SIMD_O0: kernel sources compiled at -O0 (the fuzz build: matmul_avx512.c takes 130 s at -O1 under
# clang's coverage + ASan + UBSan, 10 s at -O0).
# The sanitizer build compiles the VNNI kernels at -O0 too (2.5 min at -O2 under ASan+UBSan).
SIMD_O0 ?= $(if $(filter 1,$(SANITIZE)),src/kernels/iqmatmul_avx512vnni.c src/kernels/iqdec_avx512vnni.c src/kernels/iqgemm_avx512vnni.c)
$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX2_FLAGS) $(if $(filter $<,$(SIMD_O0)),-O0) -MMD -MP -c $< -o $@

$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) $(if $(filter $<,$(SIMD_O0)),-O0) -MMD -MP -c $< -o $@

# AVX-512 VNNI kernels (iqmatmul_avx512vnni.c): their own suffix so AVX512_FLAGS stays VNNI-free
# (Skylake-X has AVX-512 without VNNI); chosen at run time only when cpuid reports VNNI. No
# -mavxvnni: with it GCC encodes 256-bit vpdpbusd as VEX (AVX-VNNI), which Zen 4 and Ice Lake lack
# although they have AVX-512 VNNI; the ggml decode kernel died there with SIGILL.
$(BUILD)/%_avx512vnni.o: %_avx512vnni.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -mavx512vnni -mavx512bitalg -mavx512vbmi -mgfni $(if $(filter $<,$(SIMD_O0)),-O0) -MMD -MP -c $< -o $@

# AMX kernels (iqgemm_amx.c): run only when cpuid reports AMX-INT8 and the OS grants the tile state.
$(BUILD)/%_amx.o: %_amx.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -mavx512vnni -mamx-tile -mamx-int8 $(if $(filter $<,$(SIMD_O0)),-O0) -MMD -MP -c $< -o $@

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The shared library's objects: the same sources compiled position-independent in $(BUILD)/pic/, with
# only the INTACT_API functions of include/intact.h exported (-fvisibility=hidden). The static library
# and the CLI keep their non-PIC objects (and their speed); plain `make` does not build these.
PIC_OBJ   := $(LIB_SRC:%.c=$(BUILD)/pic/%.o)
ISA_FLAGS  = $(if $(filter %_avx2.c,$<),$(AVX2_FLAGS))$(if $(filter %_avx512.c,$<),$(AVX512_FLAGS)) \
             $(if $(filter %_avx512vnni.c,$<),$(AVX512_FLAGS) -mavx512vnni -mavx512bitalg -mavx512vbmi -mgfni) \
             $(if $(filter %_amx.c,$<),$(AVX512_FLAGS) -mavx512vnni -mamx-tile -mamx-int8)
$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA_FLAGS) -fPIC -fvisibility=hidden $(if $(filter $<,$(SIMD_O0)),-O0) -MMD -MP -c $< -o $@

$(SO): $(PIC_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) -Wl,-z,defs $(LDFLAGS) -o $@ $(PIC_OBJ) $(LDLIBS)
	ln -sf $(notdir $@) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libintact.so

# The pkg-config file, written by `install` for the PREFIX/LIBDIR of that call. ${prefix} stays a
# variable in it, so pkg-config's --define-variable=prefix=... relocates it.
PC_LINES := 'prefix=$(PREFIX)' 'exec_prefix=$${prefix}' \
    'libdir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))' \
    'includedir=$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))' '' \
    'Name: intact' 'Description: accurate low-bit LLaMA-family inference (IntactKV, MiKV)' \
    'Version: $(VERSION)' 'Cflags: -I$${includedir}' 'Libs: -L$${libdir} -lintact' \
    'Libs.private: -lm -pthread'

lib: $(LIB) $(SO)

install: $(BIN) $(LIB) $(SO)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
	    $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(BIN) $(DESTDIR)$(BINDIR)/intact
	install -m 644 $(LIB) $(DESTDIR)$(LIBDIR)/libintact.a
	install -m 755 $(SO) $(DESTDIR)$(LIBDIR)/$(notdir $(SO))
	ln -sf $(notdir $(SO)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libintact.so
	install -m 644 include/intact.h $(DESTDIR)$(INCLUDEDIR)/intact.h
	printf '%s\n' $(PC_LINES) > $(DESTDIR)$(LIBDIR)/pkgconfig/intact.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/intact.pc
	install -m 644 docs/intact.1 $(DESTDIR)$(MANDIR)/man1/intact.1

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/intact $(DESTDIR)$(LIBDIR)/libintact.a \
	    $(DESTDIR)$(LIBDIR)/$(notdir $(SO)) $(DESTDIR)$(LIBDIR)/$(SONAME) \
	    $(DESTDIR)$(LIBDIR)/libintact.so $(DESTDIR)$(INCLUDEDIR)/intact.h \
	    $(DESTDIR)$(LIBDIR)/pkgconfig/intact.pc $(DESTDIR)$(MANDIR)/man1/intact.1

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/src/serve/%.o: CFLAGS += $(SERVE_CFLAGS)

$(BIN): $(CLI_OBJ) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(SERVE_LIBS) $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(LIB) tests/harness.h tests/cli_harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(LIB) $(LDFLAGS) $(LDLIBS)

# The chat templates live with the server (src/serve, not in the library); their unit test links
# the one object it tests.
$(BUILD)/tests/test_template: tests/test_template.c $(BUILD)/src/serve/template.o $(LIB) tests/harness.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/src/serve/template.o $(LIB) $(LDFLAGS) $(LDLIBS)

test-bins: $(TESTS) $(BIN)

# Every test program prints "<name>: N passed, N failed"; tests/run.sh sums them into one line
# ("N passed, N failed, N skipped"). tests/test_install.sh installs into a temporary DESTDIR (hence
# `lib`: the shared library is built for `make check`, not for plain `make`). The include graph of
# src/ folders must have no cycles (scripts/include_graph.py).
# The sanitizer run leaves the install test out: it checks packaging, not memory safety, and would
# compile every object a second time (position-independent) under ASan, which CI's budget cannot pay.
INSTALL_TEST := $(if $(filter 1,$(SANITIZE)),,tests/test_install.sh)
# Without the shared directory the self-contained core runs (kernels, formats, parsers, quantizers,
# KV caches on synthetic data) and every test that needs a shared file says that it skipped and why.
check: test-bins $(if $(INSTALL_TEST),lib)
	@python3 scripts/include_graph.py --check
	@INTACT_BIN=$(abspath $(BIN)) INTACT_SANFLAGS="$(SANFLAGS)" sh tests/run.sh $(TESTS) $(INSTALL_TEST)

demo: $(BIN)
	$(NEED_SHARED)
	./$(BIN) run -m $(INTACT_MODELS)/stories260K.bin -z $(INTACT_MODELS)/tok512.bin \
	    -p "Once upon a time" -n 200 --temp 0

bench: $(BIN)
	sh bench/run.sh

# Regenerate tests/goldens with the independent PyTorch reference (needs Debian python3-torch).
goldens:
	/usr/bin/python3 tests/ref/llama_ref.py --shared $(SHARED) --out tests/goldens
	/usr/bin/python3 tests/ref/eval_ref.py --shared $(SHARED) --out tests/goldens
	python3 tests/ref/make_variants.py --shared $(SHARED) --out build/variants
	/usr/bin/python3 tests/ref/variants_ref.py --dir build/variants --out tests/goldens/variants.gold

# libFuzzer targets (clang, ASan + UBSan): `make fuzz FUZZ_SECONDS=N` runs each fuzz/fuzz_*.c for
# N seconds from seeds generated out of the shared models (corpora stay in build-fuzz/).
FUZZ_SECONDS ?= 10
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) INTACT_SHARED=$(INTACT_SHARED) bash scripts/fuzz.sh

# The CI smoke (.ci/run): every target for 6 s, two at a time (>= 30 s of fuzzing in all); fails on
# any crash, leak, timeout or sanitizer report. Builds build/intact first for the real .ikv seeds.
fuzz-smoke: $(BIN)
	FUZZ_SECONDS=6 FUZZ_JOBS=2 INTACT_SHARED=$(INTACT_SHARED) bash scripts/fuzz.sh

clean:
	rm -rf build build-san build-fuzz

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(PIC_OBJ:.o=.d)

# moat - build, run, test.  See README.md.
#
#   make            build moatd, moatctl, moat-sendmail into build/ (and
#                   build/tools/smtp-latency, make bench's latency client)
#   make run        install missing packages, build, start the dev config
#   make check      install missing packages, build, unit + integration
#                   tests, then the integration tests again under ASan+UBSan,
#                   and a part of them with LeakSanitizer (integration-lsan)
#   make fuzz       build the libFuzzer targets; make fuzz-smoke runs them
#   make install    PREFIX=/usr/local DESTDIR=

PREFIX	?= /usr/local
DESTDIR	?=
SBINDIR	?= $(PREFIX)/sbin
BINDIR	?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
UNITDIR	?= /lib/systemd/system

CC	?= cc
PKGS	 = libevent libevent_openssl libssl libcrypto libcares libseccomp libpcre2-8
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
LIBS	 = $(PKG_LIBS) -lmagic -lcrypt -lpthread

WARN	 = -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
	   -Wmissing-prototypes -Wno-unused-parameter
HARDEN	 = -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fPIE \
	   -fstack-clash-protection
BASEFLAGS = -std=c17 -D_GNU_SOURCE -Isrc -g $(WARN) $(PKG_CFLAGS)
CFLAGS	?= -O2
ALL_CFLAGS = $(BASEFLAGS) $(CFLAGS) $(HARDEN)
LDHARDEN = -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack

ASAN_FLAGS = -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	     -fno-sanitize-recover=undefined

BUILD	?= build

LIB_SRCS    := $(wildcard src/lib/*.c)
COMMON_SRCS := $(wildcard src/common/*.c)
DAEMON_SRCS := $(filter-out src/master/main.c, \
		 $(wildcard src/master/*.c src/smtp_in/*.c src/smtp_out/*.c src/queue/*.c \
		 src/local/*.c))
CTL_SRCS    := $(filter-out src/ctl/moatctl.c src/ctl/sendmail.c, \
		 $(wildcard src/ctl/*.c))
CORE_SRCS   := $(LIB_SRCS) $(COMMON_SRCS) $(DAEMON_SRCS)
UNIT_SRCS   := $(wildcard tests/unit/test_*.c)
FUZZ_SRCS   := $(wildcard tests/fuzz/fuzz_*.c)

obj = $(patsubst %.c,$(1)/obj/%.o,$(2))

PROGS = $(BUILD)/moatd $(BUILD)/moatctl $(BUILD)/moat-sendmail

.PHONY: all deps run check unit integration asan integration-asan \
	integration-lsan fuzz \
	fuzz-smoke install clean bench bench-quick lint

all: $(PROGS) $(BUILD)/tools/smtp-latency

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/asan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(ASAN_FLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/moatd: $(call obj,$(BUILD),$(CORE_SRCS) src/master/main.c)
	$(CC) $(LDHARDEN) -o $@ $^ $(LIBS)

$(BUILD)/moatctl: $(call obj,$(BUILD),$(LIB_SRCS) $(COMMON_SRCS) \
		$(CTL_SRCS) src/ctl/moatctl.c)
	$(CC) $(LDHARDEN) -o $@ $^ $(LIBS)

$(BUILD)/moat-sendmail: $(call obj,$(BUILD),$(LIB_SRCS) $(COMMON_SRCS) \
		$(CTL_SRCS) src/ctl/sendmail.c)
	$(CC) $(LDHARDEN) -o $@ $^ $(LIBS)

$(BUILD)/mailq: $(BUILD)/moat-sendmail
	ln -sf moat-sendmail $@

# ASan+UBSan build of the same programs, for the second integration run
ASAN_PROGS = $(BUILD)/asan/moatd $(BUILD)/asan/moatctl \
	     $(BUILD)/asan/moat-sendmail

$(BUILD)/asan/moatd: $(call obj,$(BUILD)/asan,$(CORE_SRCS) src/master/main.c)
	$(CC) $(ASAN_FLAGS) -o $@ $^ $(LIBS)

$(BUILD)/asan/moatctl: $(call obj,$(BUILD)/asan,$(LIB_SRCS) $(COMMON_SRCS) \
		$(CTL_SRCS) src/ctl/moatctl.c)
	$(CC) $(ASAN_FLAGS) -o $@ $^ $(LIBS)

$(BUILD)/asan/moat-sendmail: $(call obj,$(BUILD)/asan,$(LIB_SRCS) \
		$(COMMON_SRCS) $(CTL_SRCS) src/ctl/sendmail.c)
	$(CC) $(ASAN_FLAGS) -o $@ $^ $(LIBS)

asan: $(ASAN_PROGS) $(BUILD)/asan/mailq
$(BUILD)/asan/mailq: $(BUILD)/asan/moat-sendmail
	ln -sf moat-sendmail $@

# unit tests: one table-driven program per module, linked with the core
UNIT_BINS = $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))

$(BUILD)/unit/%: tests/unit/%.c tests/unit/unit.h \
		$(call obj,$(BUILD)/asan,$(CORE_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(ASAN_FLAGS) -Isrc -MMD -MP -MF $@.d -MT $@ \
	    -o $@ $< $(filter %.o,$^) $(LIBS)

deps:
	@sh mk/deps.sh

unit: $(UNIT_BINS)
	@sh mk/run-unit.sh $(UNIT_BINS)

integration: all $(BUILD)/mailq
	MOAT_BUILD=$(CURDIR)/$(BUILD) sh mk/run-pytest.sh

integration-asan: asan
	MOAT_BUILD=$(CURDIR)/$(BUILD)/asan MOAT_ASAN=1 sh mk/run-pytest.sh

# LeakSanitizer on in every moatd process of a representative part of
# the suite: moatd runs as the role user, no chroot, sandbox = no
integration-lsan: asan
	MOAT_BUILD=$(CURDIR)/$(BUILD)/asan sh mk/run-lsan.sh

check: deps
	$(MAKE) all $(BUILD)/mailq
	$(MAKE) unit
	$(MAKE) integration
	$(MAKE) integration-asan
	$(MAKE) integration-lsan
	$(MAKE) fuzz-smoke

run: deps
	@$(MAKE) --no-print-directory all $(BUILD)/mailq
	@sh mk/run-dev.sh

# libFuzzer targets: clang, ASan+UBSan, core sources rebuilt with clang
FUZZ_CC	    = clang
FUZZ_FLAGS  = -g -O1 -fsanitize=fuzzer-no-link,address,undefined \
	      -fno-omit-frame-pointer
FUZZ_BINS   = $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRCS))

$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=c17 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) $(FUZZ_FLAGS) \
	    -MMD -MP -c -o $@ $<

$(BUILD)/fuzz/%: tests/fuzz/%.c $(call obj,$(BUILD)/fuzz,$(CORE_SRCS))
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=c17 -D_GNU_SOURCE -Isrc $(PKG_CFLAGS) $(FUZZ_FLAGS) \
	    -MMD -MP -MF $@.d -MT $@ -fsanitize=fuzzer -o $@ $< $(filter %.o,$^) \
	    $(LIBS)

fuzz: $(FUZZ_BINS)

FUZZ_SECONDS ?= 10
fuzz-smoke: fuzz
	@sh mk/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/moat $(DESTDIR)$(UNITDIR)
	install -m 755 $(BUILD)/moatd $(DESTDIR)$(SBINDIR)/moatd
	install -m 755 $(BUILD)/moatctl $(DESTDIR)$(SBINDIR)/moatctl
	install -m 755 $(BUILD)/moat-sendmail $(DESTDIR)$(SBINDIR)/moat-sendmail
	ln -sf $(SBINDIR)/moat-sendmail $(DESTDIR)$(BINDIR)/mailq
	test -e $(DESTDIR)$(SYSCONFDIR)/moat/moat.conf || \
	    install -m 644 etc/moat.conf $(DESTDIR)$(SYSCONFDIR)/moat/moat.conf
	sed 's|@SBINDIR@|$(SBINDIR)|g; s|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    etc/moat.service > $(DESTDIR)$(UNITDIR)/moat.service

clean:
	rm -rf $(BUILD)

# ---- DNS test driver ---------------------------------------------------
# tests/tools/dnsq drives src/common/dns.c against tests/integration/
# dnsserver.py for tests/integration/test_dns.py; built for both
# integration runs (plain and ASan+UBSan).
DNSQ_SRCS = tests/tools/dnsq.c src/common/dns.c $(LIB_SRCS)

$(BUILD)/tools/dnsq: $(call obj,$(BUILD),$(DNSQ_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDHARDEN) -o $@ $^ $(LIBS)

$(BUILD)/asan/tools/dnsq: $(call obj,$(BUILD)/asan,$(DNSQ_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_FLAGS) -o $@ $^ $(LIBS)

integration: $(BUILD)/tools/dnsq
integration-asan: $(BUILD)/asan/tools/dnsq
# ---- end of DNS test driver ----------------------------------------------

# ---- content scanner test driver ------------------------------------------
# tests/tools/milterc drives src/common/milter.c and clamd.c against real
# milters and clamd for tests/integration/test_clamd_milter.py.
MILTERC_SRCS = tests/tools/milterc.c $(LIB_SRCS) $(COMMON_SRCS)

$(BUILD)/tools/milterc: $(call obj,$(BUILD),$(MILTERC_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(LDHARDEN) -o $@ $^ $(LIBS)

$(BUILD)/asan/tools/milterc: $(call obj,$(BUILD)/asan,$(MILTERC_SRCS))
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_FLAGS) -o $@ $^ $(LIBS)

integration: $(BUILD)/tools/milterc
integration-asan: $(BUILD)/asan/tools/milterc
# ---- end of content scanner test driver ----------------------------------

# tests/tools/failsync.c: an LD_PRELOAD library that fails fsync() on a
# trigger, for tests/integration/test_fsync_fail.py (not under ASan: its
# runtime must come first in the library list)
$(BUILD)/tools/failsync.so: tests/tools/failsync.c
	@mkdir -p $(dir $@)
	$(CC) $(BASEFLAGS) $(CFLAGS) -D_FORTIFY_SOURCE=3 \
	    -fstack-protector-strong -fPIC -shared -Wl,-z,relro,-z,now \
	    -o $@ $<

integration: $(BUILD)/tools/failsync.so

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# objects are never intermediate: keep them between runs
.SECONDARY:

# ---- benchmarks (issue 7): moat vs Postfix, see bench/README.md ----------
# make bench          the full grid, writes bench/RESULTS.md (~11 min)
# make bench-quick    1 KiB x 50 sessions only (< 2 min)
# make bench-profile  the quick run with a perf profile: bench/PROFILE.md
# BENCH_FLAGS passes options to bench/bench.py (--reps, --scale, --profile)
.PHONY: bench-profile
BENCH_RUN = MOAT_BUILD=$(CURDIR)/$(BUILD) /usr/bin/python3 bench/bench.py

# bench/smtp-latency.c: the latency client of make bench, point (e)
$(BUILD)/tools/smtp-latency: $(call obj,$(BUILD),bench/smtp-latency.c)
	@mkdir -p $(dir $@)
	$(CC) $(LDHARDEN) -o $@ $^

bench: $(BUILD)/moatd $(BUILD)/tools/smtp-latency
	$(BENCH_RUN) full $(BENCH_FLAGS)

bench-quick: $(BUILD)/moatd $(BUILD)/tools/smtp-latency
	$(BENCH_RUN) quick $(BENCH_FLAGS)

bench-profile: $(BUILD)/moatd $(BUILD)/tools/smtp-latency
	$(BENCH_RUN) quick --profile $(BENCH_FLAGS)

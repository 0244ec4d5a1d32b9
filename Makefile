# custos - plain Makefile; pkg-config for every library.
#   make deps     install the Debian packages custos needs (apt-get, idempotent)
#   make          build (-Wall -Wextra -Werror)
#   make check    run every test (CUnit)
#   make asan     build and test with AddressSanitizer + UBSan
#   make fuzz     run each libFuzzer target FUZZ_TIME s (clang; see fuzz/run.sh)
#   make demo     an archive under ./var from real sample mail, searched; the gateway; a handover
#   make bench    run the benchmarks in bench/
#   make install  PREFIX=/usr/local DESTDIR=

PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR      = $(PREFIX)/bin
MANDIR      = $(PREFIX)/share/man
SYSCONFDIR ?= /etc

CC         ?= cc
BUILD      ?= build
PKGS        = gmime-3.0 glib-2.0 json-glib-1.0 sqlite3 libarchive libzstd libcrypto zlib cunit \
              icu-i18n icu-uc
OPT        ?= -O2 -g
CFLAGS_ALL  = -std=gnu11 $(OPT) -Wall -Wextra -Werror -Wno-unused-parameter \
              -D_GNU_SOURCE -Iinclude $(shell pkg-config --cflags $(PKGS)) $(EXTRA_CFLAGS)
LDLIBS_ALL  = -Wl,--as-needed $(shell pkg-config --libs $(PKGS)) -lpthread -lm $(EXTRA_LDFLAGS)

# Debian packages: build, test, demo and benchmark dependencies.
DEB_DEPS    = build-essential pkg-config clang libclang-rt-14-dev \
              libgmime-3.0-dev libglib2.0-dev libsqlite3-dev libarchive-dev \
              libzstd-dev libssl-dev zlib1g-dev libcunit1-dev libjson-glib-dev \
              python3 ca-certificates dpkg-dev notmuch maildir-utils sqlite3 openssl \
              libmilter-dev postfix swaks miltertest dovecot-imapd curl \
              libicu-dev zip 7zip

LIB_SRC    := $(filter-out archive/custos-archive.c,$(wildcard archive/*.c))
CMD_SRC    := $(wildcard archive/cmd-*.c)
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC   := $(wildcard tests/test-*.c) tests/runner.c
TEST_OBJ   := $(TEST_SRC:%.c=$(BUILD)/%.o)
PROGS      := $(BUILD)/custos-archive $(BUILD)/custos-archive-full
LIBEXECDIR  = $(PREFIX)/lib/custos
MANS       := $(wildcard man/*.[1-8])

all: $(PROGS) $(BUILD)/run-tests

$(BUILD)/%.o: %.c $(wildcard include/custos/*.h) $(wildcard archive/*-private.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/libcustos.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# Commands of archive/cmd-*.c announce themselves with CUS_COMMAND (cli.h).
$(BUILD)/archive/commands.gen.h: $(CMD_SRC)
	@mkdir -p $(dir $@)
	grep -h '^CUS_COMMAND(' $(CMD_SRC) /dev/null | sed 's/^CUS_COMMAND(/X(/' > $@.tmp && mv $@.tmp $@

$(BUILD)/archive/custos-archive.o: archive/custos-archive.c $(BUILD)/archive/commands.gen.h $(wildcard include/custos/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -I$(BUILD)/archive -c -o $@ $<

# custos-archive itself loads only GLib and SQLite (search and stats start
# fast); init, import and show run custos-archive-full, installed in LIBEXECDIR.
LEAN_LIBS   = -Wl,--as-needed $(shell pkg-config --libs glib-2.0 sqlite3) $(EXTRA_LDFLAGS)
$(BUILD)/archive/custos-archive-lean.o: archive/custos-archive.c $(BUILD)/archive/commands.gen.h $(wildcard include/custos/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -I$(BUILD)/archive -DCUSTOS_LEAN -DCUSTOS_LIBEXECDIR='"$(LIBEXECDIR)"' -c -o $@ $<

$(BUILD)/custos-archive: $(BUILD)/archive/custos-archive-lean.o $(BUILD)/libcustos.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LEAN_LIBS)

$(BUILD)/custos-archive-full: $(BUILD)/archive/custos-archive.o $(BUILD)/libcustos.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

# ---- custos-milter (milter/) ------------------------------------------------
# The milter's core (callbacks, per-message context) links into custos-milter
# and into run-tests; milter/smfi.c (the libmilter calls) and the daemon's
# main only into custos-milter, so the tests need no libmilter. nullmilter is
# the do-nothing baseline of bench/milter.sh. tests/postfix.c: the private
# Postfix harness of the integration suites.
MILTER_MAIN  := milter/custos-milter.c milter/smfi.c
MILTER_SRC   := $(filter-out $(MILTER_MAIN),$(wildcard milter/*.c))
MILTER_OBJ   := $(MILTER_SRC:%.c=$(BUILD)/%.o)
MILTER_LIBS   = -lmilter
TEST_OBJ     += $(MILTER_OBJ) $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/postfix.c))

all: $(BUILD)/custos-milter $(BUILD)/nullmilter $(BUILD)/detbench

$(BUILD)/custos-milter: $(MILTER_MAIN:%.c=$(BUILD)/%.o) $(MILTER_OBJ) $(BUILD)/libcustos.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL) $(MILTER_LIBS)

# detbench: the detectors timed on a directory of messages (bench/detect.sh).
$(BUILD)/detbench: $(BUILD)/bench/detbench.o $(MILTER_OBJ) $(BUILD)/libcustos.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

$(BUILD)/nullmilter: bench/nullmilter.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(MILTER_LIBS) -lpthread $(EXTRA_LDFLAGS)

$(BUILD)/tests/postfix.o $(BUILD)/tests/test-milter.o: $(wildcard tests/postfix.h)
# ---- end of custos-milter ---------------------------------------------------

# ---- custos-handover (handover/) ---------------------------------------------
# The handover library (handover/*.c but the program's main) links into
# custos-handover and into run-tests; tests/dovecot.c: the private Dovecot
# harness of its end-to-end suite. The man page goes with MANS; the notice
# templates go to SYSCONFDIR/custos unless an admin's copy is there.
HOV_MAIN   := handover/custos-handover.c
HOV_SRC    := $(filter-out $(HOV_MAIN),$(wildcard handover/*.c))
HOV_OBJ    := $(HOV_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ   += $(HOV_OBJ) $(patsubst %.c,$(BUILD)/%.o,$(wildcard tests/dovecot.c))

all: $(BUILD)/custos-handover

$(BUILD)/custos-handover: $(HOV_MAIN:%.c=$(BUILD)/%.o) $(HOV_OBJ) $(BUILD)/libcustos.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

# The library as an archive too, for the fuzz targets of its parsers.
$(BUILD)/libhandover.a: $(HOV_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(HOV_OBJ) $(HOV_MAIN:%.c=$(BUILD)/%.o): $(wildcard handover/*-private.h)
$(BUILD)/tests/dovecot.o $(BUILD)/tests/test-handover.o $(BUILD)/tests/test-milter.o: $(wildcard tests/dovecot.h)

install: install-handover
install-handover: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SYSCONFDIR)/custos
	install -m 0755 $(BUILD)/custos-handover $(DESTDIR)$(BINDIR)/
	for t in conf/handover-notice.*.txt conf/dovecot-handover.conf; do \
	  [ -e $(DESTDIR)$(SYSCONFDIR)/custos/$${t##*/} ] || \
	  install -m 0644 $$t $(DESTDIR)$(SYSCONFDIR)/custos/; done
.PHONY: install-handover
# ---- end of custos-handover --------------------------------------------------

# Test suites register themselves with CUS_SUITE(name); the list is generated.
$(BUILD)/tests/suites.gen.h: $(wildcard tests/test-*.c)
	@mkdir -p $(dir $@)
	grep -ho '^CUS_SUITE([a-z0-9_]*)' $(wildcard tests/test-*.c) /dev/null | \
	  sed 's/^CUS_SUITE(\(.*\))/X(\1)/' > $@.tmp && mv $@.tmp $@

$(BUILD)/tests/runner.o: tests/runner.c $(BUILD)/tests/suites.gen.h tests/cutest.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -I$(BUILD)/tests -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c tests/cutest.h $(wildcard include/custos/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Iarchive -c -o $@ $<

$(BUILD)/run-tests: $(TEST_OBJ) $(BUILD)/libcustos.a
	$(CC) $(CFLAGS_ALL) -o $@ $^ $(LDLIBS_ALL)

# Real mail nobody here wrote, from Debian packages (see tests/data/README).
CORPUS     ?= $(CURDIR)/var/corpus
corpus: $(CORPUS)/.done
$(CORPUS)/.done: tests/data/fetch-corpus.sh
	sh tests/data/fetch-corpus.sh $(CORPUS)

# make check also runs each fuzz target briefly (not with SUITES=...).
FUZZ_CHECK ?= $(if $(SUITES),,yes)
check: all corpus
	CUSTOS_CORPUS=$(CORPUS) CUSTOS_BIN=$(CURDIR)/$(BUILD) CUSTOS_SRC=$(CURDIR) \
	  $(BUILD)/run-tests $(SUITES)
	$(if $(FUZZ_CHECK),$(MAKE) fuzz-check)

asan:
	$(MAKE) BUILD=build-asan CC=clang OPT="-O1 -g -fno-omit-frame-pointer" \
	  EXTRA_CFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  EXTRA_LDFLAGS="-fsanitize=address,undefined" FUZZ_CHECK= check

# libFuzzer targets fuzz/fuzz-NAME.c, one per parser, built with clang,
# ASan and UBSan in build-fuzz/. Seeds in tests/fuzz/NAME; `make fuzz`
# keeps what it finds in var/fuzz/NAME for the next run. A crash stops
# with the input's path (see fuzz/run.sh); make it a regression test.
FUZZ_BUILD       = build-fuzz
FUZZ_TIME       ?= 300
FUZZ_CHECK_TIME ?= 15
FUZZ_OPTS       ?= -timeout=10 -rss_limit_mb=2048
FUZZ_NAMES      := $(patsubst fuzz/fuzz-%.c,%,$(wildcard fuzz/fuzz-*.c))
FUZZ_BINS       := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz-%)
FUZZ_MAXLEN_msg    = 65536
FUZZ_MAXLEN_query  = 4200
FUZZ_MAXLEN_spool  = 65536
FUZZ_MAXLEN_csv    = 65536
FUZZ_MAXLEN_export = 65536
FUZZ_MAXLEN_mutf7  = 1024
FUZZ_MAXLEN_sieve  = 16384
FUZZ_MAXLEN_subs   = 16384
FUZZ_MAXLEN_dettext = 65536
FUZZ_MAXLEN_detknow = 65536

fuzz-build:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang OPT="-O1 -g -fno-omit-frame-pointer" \
	  EXTRA_CFLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined" \
	  EXTRA_LDFLAGS="-fsanitize=fuzzer,address,undefined" fuzz-bins

fuzz-bins: $(FUZZ_BINS)
$(FUZZ_BINS): $(BUILD)/fuzz/fuzz-%: $(BUILD)/fuzz/fuzz-%.o $(BUILD)/libhandover.a $(BUILD)/libcustos.a
	$(CC) $(CFLAGS_ALL) -o $@ $+ $(LDLIBS_ALL)

# the detectors' text functions live in milter/ (and use libcustos.a: again after them)
$(BUILD)/fuzz/fuzz-dettext: $(BUILD)/milter/det-text.o $(BUILD)/milter/det-account.o \
  $(BUILD)/libcustos.a
$(BUILD)/fuzz/fuzz-detknow: $(BUILD)/milter/det-know.o $(BUILD)/milter/det-text.o \
  $(BUILD)/libcustos.a

fuzz: fuzz-build
	@$(foreach n,$(FUZZ_NAMES),sh fuzz/run.sh $(FUZZ_BUILD) $(n) $(FUZZ_TIME) var/fuzz/$(n) \
	  -max_len=$(FUZZ_MAXLEN_$(n)) $(FUZZ_OPTS) &&) true

# Seeds only, into a scratch corpus: the same inputs every time.
fuzz-check: fuzz-build
	@$(foreach n,$(FUZZ_NAMES),rm -rf $(FUZZ_BUILD)/fuzz/check/$(n) && \
	  sh fuzz/run.sh $(FUZZ_BUILD) $(n) $(FUZZ_CHECK_TIME) $(FUZZ_BUILD)/fuzz/check/$(n) \
	  -max_len=$(FUZZ_MAXLEN_$(n)) $(FUZZ_OPTS) &&) true

deps:
	@missing=""; for p in $(DEB_DEPS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	else echo "deps: all Debian packages present"; fi

# The archive's tools on real sample mail, then the gateway: a private
# Postfix on 127.0.0.1 with custos-milter and ingest; then a handover,
# the successor's folders read from a private Dovecot.
demo: all corpus
	sh tests/demo.sh $(BUILD) $(CORPUS)
	sh tests/milter/demo.sh $(BUILD)
	sh tests/handover/demo.sh $(BUILD)

bench: all corpus
	sh bench/run.sh $(BUILD) $(CORPUS)
	sh bench/milter.sh $(BUILD)
	sh bench/handover.sh $(BUILD)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	  $(DESTDIR)$(SYSCONFDIR)/custos
	install -d $(DESTDIR)$(LIBEXECDIR)
	install -m 0755 $(BUILD)/custos-archive $(DESTDIR)$(BINDIR)/
	install -m 0755 $(BUILD)/custos-archive-full $(DESTDIR)$(LIBEXECDIR)/
	for m in $(MANS); do s=$${m##*.}; install -d $(DESTDIR)$(MANDIR)/man$$s; \
	  install -m 0644 $$m $(DESTDIR)$(MANDIR)/man$$s/; done
	install -m 0644 conf/custos.conf.sample $(DESTDIR)$(SYSCONFDIR)/custos/custos.conf.sample
	[ -e $(DESTDIR)$(SYSCONFDIR)/custos/webmail-domains.txt ] || \
	  install -m 0644 conf/webmail-domains.txt $(DESTDIR)$(SYSCONFDIR)/custos/
	for t in conf/route-notice.*.txt; do \
	  [ -e $(DESTDIR)$(SYSCONFDIR)/custos/$${t##*/} ] || \
	  install -m 0644 $$t $(DESTDIR)$(SYSCONFDIR)/custos/; done
	install -d $(DESTDIR)$(PREFIX)/share/custos
	install -m 0644 conf/employees.sample.csv conf/customers.sample.csv \
	  conf/accounts.sample.csv $(DESTDIR)$(PREFIX)/share/custos/

clean:
	rm -rf build build-asan build-fuzz

.PHONY: all check asan deps demo bench install clean corpus fuzz fuzz-build fuzz-bins fuzz-check

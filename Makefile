# remus: one non-recursive Makefile.
#
#   make                 build/remus and the guest image
#   make check           the whole test suite: normal build + ASan/UBSan build
#   make check T=NAME    one test (or T=a,b) in both builds: a unit binary
#                        (T=test_auth, with C='*pattern*' for its cases), an
#                        integration script (T=kvm_protect), a lab scenario
#                        (T=xen_smoke) or the lint (T=set_e_lists)
#   make check-quick     unit + integration tests of the normal build only
#                        (no ASan build, no fuzzing, no Xen lab)
#   make check-fresh-root  `make deps` in a fresh Debian 12 minbase root,
#                        then every command the tests need must be there
#   make deps            install every Debian package the project needs
#   make install         PREFIX=/usr/local (DESTDIR, prefix, sbindir,
#                        mandir, sysconfdir, ... as GNU's); make uninstall
#   make deb             build/deb/remus_VERSION_amd64.deb (dpkg-buildpackage)
#   make fuzz            libFuzzer harnesses (clang)
#   make bench           benchmarks, report in build/bench/ (.md, .json)
#   make bench-xen       the Xen lab's benchmarks (build/bench/xen-report.md)
#   make xen-lab         build (cached) and boot the Xen lab
#   make check-xen       the Xen lab scenarios
#
# Switches: V=1 (show commands), WERROR=0 (warnings are not errors),
# ASAN=1 (AddressSanitizer + UBSan; objects go to build-asan/).

SHELL := /bin/bash

V ?= 0
WERROR ?= 1
ASAN ?= 0

ifeq ($(V),1)
Q :=
else
Q := @
endif

ifeq ($(ASAN),1)
BUILD ?= build-asan
else
BUILD ?= build
endif

CC ?= cc
PROTOC_C ?= protoc-c

PKGS := libprotobuf-c libnl-3.0 libnl-route-3.0 xencontrol xenforeignmemory \
        xenevtchn xenstore xentoollog xenguest xencall
PKGS += libsodium libquorum libvotequorum libcpg
PKGS += libsystemd libmicrohttpd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wformat=2 \
        -Wstrict-prototypes -Wmissing-prototypes -Wvla
ifeq ($(WERROR),1)
WARN += -Werror
endif

CFLAGS ?= -O2 -g
CFLAGS += -std=gnu11 $(WARN) -D_GNU_SOURCE -I. -I$(BUILD)/gen $(PKG_CFLAGS) \
          -MMD -MP -fno-strict-aliasing
LDLIBS := $(PKG_LIBS) -lpthread -lm

ifeq ($(ASAN),1)
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer \
       -fno-sanitize-recover=all
CFLAGS += $(SAN)
LDFLAGS += $(SAN)
endif

# ---------------------------------------------------------------- version
# `remus --version`: `git describe --tags --always --dirty` of this tree
# when it is a git checkout of its own (a describe without a tag, only a
# commit, follows VERSION's number: 0.1.0-g1234abc[-dirty]), else (a source
# package) the VERSION file.  Written into $(BUILD)/gen/remus_version.h,
# rewritten only when it changed.
ifndef REMUS_VERSION
REMUS_VERSION := $(shell v=$$(cat VERSION); \
    if [ "$$(git rev-parse --show-toplevel 2>/dev/null)" = "$(CURDIR)" ]; then \
        v=$$(git describe --tags --dirty 2>/dev/null | sed 's/^v//') || true; \
        [ -n "$$v" ] || v="$$(cat VERSION)-g$$(git describe --always --dirty)"; \
    fi; echo "$$v")
endif

# ---------------------------------------------------------------- objects
# common/: stream, engines, I/O, logging
COMMON_OBJS := common/err.o common/log.o common/io.o common/stream.o
COMMON_OBJS += common/save.o common/save_stage.o common/restore.o common/compress.o \
               common/status.o common/net.o common/ctlsock.o \
               common/stream_wrap.o common/stream_describe.o
COMMON_OBJS += common/auth.o common/key_resolve.o
COMMON_OBJS += common/disklog.o common/disk_replica.o common/disk_hash.o \
               common/disk_records.o

# common/, operating it (not in the fuzzers' sources): sd_notify, the
# metrics registry and its HTTP endpoint
OPS_OBJS := common/notify.o common/metrics.o common/metrics_http.o

# proto/: the control channel (generated code + framing)
PROTO_SRCS := proto/remus.proto
PROTO_GEN_OBJS := $(patsubst %.proto,%.pb-c.o,$(PROTO_SRCS))
PROTO_OBJS := proto/ctl_msg.o proto/channel.o proto/timing.o proto/liveness.o proto/disks.o

# netbuf/: output commit
NETBUF_OBJS := netbuf/netbuf.o netbuf/netbuf_queue.o netbuf/netbuf_plug.o \
               netbuf/netbuf_set.o
# ... and COLO's packet comparator (its frame rules, its queues)
NETBUF_OBJS += netbuf/frame_cmp.o netbuf/compare.o netbuf/netbuf_colo.o

# colo/: COLO mode (#20): the replica's mirrored input
COLO_OBJS := colo/input_queue.o colo/replica.o colo/primary.o

# nbd/: `remus disk serve`, a disk image served over NBD (Xen's disks)
NBD_OBJS := nbd/export.o nbd/negotiate.o nbd/transmit.o nbd/server.o \
            nbd/kernel.o nbd/feed.o nbd/attach.o

# backends/kvm/: the embedded micro-VMM and its save/restore ops
KVM_OBJS := backends/kvm/vmm.o backends/kvm/vm_config.o backends/kvm/vcpu.o \
            backends/kvm/vm_load.o backends/kvm/hypercall.o \
            backends/kvm/dirty.o backends/kvm/vm_net.o \
            backends/kvm/vcpu_state.o backends/kvm/devices.o \
            backends/kvm/guestcfg.o backends/kvm/kvm_sr.o backends/kvm/kvm_backend.o backends/kvm/kvm_disks.o \
            backends/kvm/offline.o backends/kvm/console.o \
            backends/kvm/vmctl.o backends/kvm/disk.o backends/kvm/disk_overlay.o

# backends/xen/: the Xen backend
XEN_OBJS := backends/xen/xen_host.o backends/xen/xen_sr.o \
            backends/xen/xen_hvm_pause.o backends/xen/xen_pause_domctl.o \
            backends/xen/xen_suspend_wait.o \
            backends/xen/xen_sr_pv_save.o backends/xen/xen_sr_pv_restore.o \
            backends/xen/xen_pv_mem.o \
            backends/xen/xen_offline_pv.o backends/xen/xen_offline.o \
            backends/xen/xen_migrate.o backends/xen/xen_backend.o \
            backends/xen/xl_config.o backends/xen/xen_domain_sr.o \
            backends/xen/xen_devices.o backends/xen/xen_disks.o
# backends/open.c: a backend by kind (the one file that knows them all)
XEN_OBJS += backends/open.o

# cluster/: split-brain protection on corosync (quorum, qdevice, cpg) and
# fencing
CLUSTER_OBJS := cluster/quorum.o cluster/hold.o cluster/fence.o

# primary/ and secondary/
PRIMARY_OBJS := primary/protect.o primary/connect.o primary/session.o \
                primary/control.o primary/protect_request.o primary/peer_spawn.o
SECONDARY_OBJS := secondary/accept.o secondary/receive.o secondary/takeover.o \
                  secondary/session.o

# drill/: the failover drill (orchestration + the guest service's client)
DRILL_OBJS := drill/drill.o drill/drill_clients.o drill/drill_report.o \
              drill/kvclient.o drill/drill_disk.o drill/drill_colo.o \
              drill/proc_cpu.o drill/pause_tail.o

# cli/: the remus binary's subcommands
CLI_OBJS := cli/main.o cli/cmd_stream_info.o cli/cmd_status.o cli/cmd_run.o \
            cli/cmd_save.o cli/cmd_restore.o cli/cmd_protect.o \
            cli/cmd_receive.o cli/cmd_drill.o cli/cmd_netbuf.o \
            cli/cmd_reprotect.o cli/cli_stop.o cli/help_sessions.o \
            cli/cmd_offline_page.o cli/protect_opts.o cli/receive_opts.o
CLI_OBJS += cli/cmd_keygen.o cli/cmd_handover.o cli/cli_key.o cli/cli_quorum.o \
            cli/cli_num.o
CLI_OBJS += cli/cli_spawn.o cli/cli_announce.o cli/cmd_disk.o cli/cli_ops.o

LIB_OBJS := $(COMMON_OBJS) $(OPS_OBJS) $(PROTO_OBJS) $(NETBUF_OBJS) $(COLO_OBJS) $(NBD_OBJS) $(KVM_OBJS) \
            $(XEN_OBJS) $(CLUSTER_OBJS) $(PRIMARY_OBJS) $(SECONDARY_OBJS) \
            $(DRILL_OBJS)

# Unit tests (cmocka): tests/unit/test_NAME.c -> $(BUILD)/tests/test_NAME
# Test-only support code (the memory-only backend) lives in tests/support.
TEST_SUPPORT_OBJS := tests/support/mem_backend.o tests/support/testutil.o
# ... and what only the cmocka tests use (it asserts with cmocka).
UNIT_SUPPORT_OBJS := tests/support/nbd_client.o
UNIT_TESTS := test_stream test_engines test_truncation test_proto \
              test_netbuf test_kvm_dirty test_kvm_disk
UNIT_TESTS += test_auth test_net test_local test_sessions test_xen_nohv \
              test_peer_spawn test_disklog test_nbd test_nbd_attach test_log \
              test_compare test_colo_input test_kvm_colo_net test_disk_overlay \
              test_colo_primary test_drill_pause test_kvm_pause test_drill_colo \
              test_colo_replica test_xen_suspend_wait test_save_stage \
              test_protect_request

# Fuzz harnesses (libFuzzer): tests/fuzz/fuzz_NAME.c
FUZZERS := fuzz_stream fuzz_restore fuzz_proto fuzz_wrap fuzz_nbd fuzz_compare fuzz_feed \
           fuzz_protect_request

# ------------------------------------------------------------------ rules
B_LIB_OBJS := $(addprefix $(BUILD)/,$(LIB_OBJS))
B_PROTO_GEN_OBJS := $(if $(PROTO_OBJS),$(addprefix $(BUILD)/gen/,$(PROTO_GEN_OBJS)))
B_CLI_OBJS := $(addprefix $(BUILD)/,$(CLI_OBJS))
B_TEST_SUPPORT_OBJS := $(addprefix $(BUILD)/,$(TEST_SUPPORT_OBJS))
B_UNIT_SUPPORT_OBJS := $(addprefix $(BUILD)/,$(UNIT_SUPPORT_OBJS))
B_UNIT_TESTS := $(addprefix $(BUILD)/tests/,$(UNIT_TESTS))
LIBREMUS := $(BUILD)/libremus.a

.PHONY: all clean deps check check-quick check-fresh-root fuzz bench bench-xen soak \
        xen-lab check-xen guest drill tests fuzz-smoke print-version FORCE \
        install install-data uninstall deb
.SECONDARY:
.DEFAULT_GOAL := all

all: $(BUILD)/remus guest

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c $< -o $@

$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: %.proto
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  PROTOC  $<")
	$(Q)$(PROTOC_C) --c_out=$(BUILD)/gen $<

$(BUILD)/gen/%.pb-c.o: $(BUILD)/gen/%.pb-c.c
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CFLAGS) -Wno-missing-prototypes -c $< -o $@

# Every object may include generated protobuf headers.
$(B_LIB_OBJS) $(B_CLI_OBJS): | $(if $(PROTO_OBJS),$(BUILD)/gen/proto/remus.pb-c.h)

$(BUILD)/gen/remus_version.h: FORCE
	@mkdir -p $(dir $@)
	$(Q)printf '#define REMUS_VERSION "%s"\n' '$(REMUS_VERSION)' > $@.tmp
	$(Q)if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
$(BUILD)/cli/main.o: $(BUILD)/gen/remus_version.h

print-version:
	@echo $(REMUS_VERSION)

FORCE:

$(LIBREMUS): $(B_LIB_OBJS) $(B_PROTO_GEN_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/remus: $(B_CLI_OBJS) $(LIBREMUS)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(B_CLI_OBJS) $(LIBREMUS) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(B_TEST_SUPPORT_OBJS) \
                  $(B_UNIT_SUPPORT_OBJS) $(LIBREMUS)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(B_TEST_SUPPORT_OBJS) \
	    $(B_UNIT_SUPPORT_OBJS) $(LIBREMUS) $(LDLIBS) -lcmocka

# Test tools (not cmocka): tests/support/NAME.c -> $(BUILD)/tests/NAME
TEST_TOOLS := mkstream kvcli tcpmangle xen_m2p_find xen_pv_frame cpg_join wirecap \
              xen_grow_p2m xen_p2m_gen mem_pair
B_TEST_TOOLS := $(addprefix $(BUILD)/tests/,$(TEST_TOOLS))

$(B_TEST_TOOLS): $(BUILD)/tests/%: $(BUILD)/tests/support/%.o \
                 $(B_TEST_SUPPORT_OBJS) $(LIBREMUS)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $< $(B_TEST_SUPPORT_OBJS) $(LIBREMUS) $(LDLIBS)

# Benchmarks: bench/NAME.c -> $(BUILD)/bench/NAME; `make bench` runs them
# and writes $(BUILD)/bench/report.md and report.json.
BENCHES := kvm_bench xen_pause_watch
B_BENCHES := $(addprefix $(BUILD)/bench/,$(BENCHES))
# What the benches share: the pause's parts, summed and printed.
BENCH_OBJS := $(BUILD)/bench/pause_parts.o
# kvm_bench's own files beside its main (bench/kvm_bench.h).
KVM_BENCH_OBJS := $(addprefix $(BUILD)/bench/,bench_guest.o e2e_rows.o \
                    disk_rows.o resync_rows.o)
$(BUILD)/bench/kvm_bench: $(KVM_BENCH_OBJS)

$(B_BENCHES): $(BUILD)/bench/%: $(BUILD)/bench/%.o $(BENCH_OBJS) $(LIBREMUS)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIBREMUS) $(LDLIBS)

# Then the same guest under QEMU (bench/qemu_bench.py), QEMU COLO with the
# guest's NIC and colo-compare (bench/qemu_colo_net.py), many VMs at once
# (bench/many_vms.py) and PNG plots.
# `make soak`: 1,000 rounds of random faults (kill -9 of either side, a cut
# replication link, a clean stop) on protected KVM VMs, outcomes counted
# (tests/soak/soak.sh).  Not in CI by default: CI runs soak_short.sh.
SOAK_ROUNDS ?= 1000
soak: deps
	$(Q)$(MAKE) --no-print-directory all tests
	$(Q)BUILD=$(abspath $(BUILD)) REMUS=$(abspath $(BUILD))/remus ROOT=$(CURDIR) \
	    bash tests/soak/soak.sh $(SOAK_ROUNDS) $(SOAK_SEED)

# Every step's own exit status counts (set -o pipefail): a row that could
# not be measured fails the run, after the first failing step.  Whatever
# the report holds then, its tables and NOT MEASURED lines are written
# beside it as report.json (bench/report_json.py), which bench/compare.py
# compares with another run's.
bench: deps
	$(Q)$(MAKE) --no-print-directory all $(B_BENCHES)
	$(Q)set -o pipefail; rc=0; \
	{ $(BUILD)/bench/kvm_bench $(BUILD)/bench | \
	    tee $(BUILD)/bench/report.md && \
	  python3 bench/qemu_bench.py $(BUILD) $(BUILD)/bench | \
	    tee -a $(BUILD)/bench/report.md && \
	  python3 bench/qemu_colo_net.py $(BUILD) $(BUILD)/bench | \
	    tee -a $(BUILD)/bench/report.md && \
	  python3 bench/many_vms.py $(BUILD) $(BUILD)/bench | \
	    tee -a $(BUILD)/bench/report.md && \
	  gnuplot -e "d='$(BUILD)/bench'" bench/plots.gp && \
	  printf '\nPlots: pause.png, latency.png, throughput.png\n' | \
	    tee -a $(BUILD)/bench/report.md; } || rc=1; \
	if python3 bench/report_json.py $(BUILD)/bench/report.md \
	    > $(BUILD)/bench/report.json.tmp; then \
	    mv $(BUILD)/bench/report.json.tmp $(BUILD)/bench/report.json; \
	else rm -f $(BUILD)/bench/report.json.tmp; rc=1; fi; \
	echo "report: $(BUILD)/bench/report.md, $(BUILD)/bench/report.json"; \
	exit $$rc

# ------------------------------------------------------------------ guest
# The guest image (guest/) is freestanding: its own flags and linker script.
# It is never built with sanitizers.
GUEST_ELF := $(BUILD)/guest/remus-guest.elf
GUEST_DISK_SRCS := guest/disk/blk.c guest/disk/kvlog.c guest/app/kv.c \
                   guest/disk/diskload.c
GUEST_HDRS := guest/lib/rt.h guest/net/net.h guest/disk/blk.h \
              guest/disk/kvlog.h guest/app/kv.h backends/kvm/guest_abi.h \
              guest/disk/diskload.h
GUEST_SRCS := guest/arch/entry.S guest/lib/rt.c guest/net/net.c \
              guest/app/main.c $(GUEST_DISK_SRCS)
GUEST_CFLAGS := -std=gnu11 -O2 -g -Wall -Wextra -Werror -I. \
    -ffreestanding -fno-builtin-printf -nostdlib -fno-pic -fno-pie \
    -fno-stack-protector -mno-red-zone -mgeneral-regs-only \
    -fno-asynchronous-unwind-tables -fcf-protection=none
GUEST_LDFLAGS := -nostdlib -static -no-pie -Wl,-T,guest/arch/guest.ld \
    -Wl,--build-id=none -Wl,-z,noexecstack

# The same guest for multiboot loaders (QEMU -kernel): a flat image.
GUEST_MB := $(BUILD)/guest/remus-guest-mb.bin
GUEST_MB_SRCS := guest/arch/multiboot.S guest/arch/mb_main.c \
                 guest/arch/mb_e1000.c guest/lib/rt.c guest/net/net.c \
                 guest/app/main.c $(GUEST_DISK_SRCS)

guest: $(GUEST_ELF) $(GUEST_MB)

$(GUEST_MB): $(GUEST_MB_SRCS) guest/arch/mb.ld $(GUEST_HDRS) \
    guest/arch/mb_e1000.h
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GUEST   $@")
	$(Q)$(CC) $(GUEST_CFLAGS) -DRM_GUEST_MULTIBOOT -nostdlib -static -no-pie \
	    -Wl,-T,guest/arch/mb.ld -Wl,--build-id=none -Wl,-z,noexecstack \
	    -Wl,--no-warn-rwx-segments \
	    -o $(@:.bin=.elf) $(GUEST_MB_SRCS)
	$(Q)objcopy -O binary $(@:.bin=.elf) $@

$(GUEST_ELF): $(GUEST_SRCS) guest/arch/guest.ld $(GUEST_HDRS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GUEST   $@")
	$(Q)$(CC) $(GUEST_CFLAGS) $(GUEST_LDFLAGS) -o $@ $(GUEST_SRCS)

# ------------------------------------------------------------------ tests
# the benches are built with the tests, so that they cannot rot unseen
tests: $(BUILD)/remus guest $(B_UNIT_TESTS) $(B_TEST_TOOLS) $(B_BENCHES)

# The whole suite: normal build, then the same suite under ASan+UBSan.
# T=NAME[,NAME] runs only those tests (no fuzzing then), C=PATTERN filters
# a unit binary's cases.
check:
	$(Q)$(MAKE) --no-print-directory tests
	$(Q)$(MAKE) --no-print-directory ASAN=1 tests
	$(Q)$(if $(T),,$(MAKE) --no-print-directory fuzz-smoke)
	$(Q)ONLY='$(T)' TEST_CASE='$(C)' tests/run-tests.sh build build-asan

# The Xen lab's benchmarks, each one boot, ratios: the disk rows of #19
# (lab/xen/scenarios/xendiskbench.sh) and remus against `xl remus` (#21,
# xenremusbench.sh).  Their tables: $(BUILD)/bench/xen-report.md.
XEN_BENCHES := xendiskbench xenremusbench
bench-xen: deps all $(B_BENCHES)
	$(Q)mkdir -p $(BUILD)/bench; rm -f $(BUILD)/bench/xen-report.md; rc=0; \
	for s in $(XEN_BENCHES); do \
	    XEN_LAB_RETRIES=0 XEN_LAB_TIMEOUT=1500 lab/xen/run-scenario.sh $$s $(BUILD) || rc=1; \
	    sed -n "/^$$s:/,\$$p" $(BUILD)/xen-lab/$$s/scenario.log | \
	        tee -a $(BUILD)/bench/xen-report.md; \
	done; echo "report: $(BUILD)/bench/xen-report.md"; exit $$rc

# The Xen lab: `xen-lab` builds the image (cached) and boots the smoke
# scenario; `check-xen` runs every lab scenario (tests/lab/*.sh).
xen-lab: all
	$(Q)lab/xen/run-scenario.sh smoke $(BUILD)

check-xen: all
	$(Q)tests/run-tests.sh --lab-only $(BUILD)

check-quick: tests
	$(Q)ONLY='$(T)' TEST_CASE='$(C)' tests/run-tests.sh --no-lab $(BUILD)

# Are DEB_PACKAGES enough?  `make deps` in a fresh debootstrap minbase root
# of Debian 12 (cached), then every external command the test scripts and
# the OCF agent run must exist in it (scripts/fresh-root-check.sh).
check-fresh-root:
	$(Q)scripts/fresh-root-check.sh $(DEB_PACKAGES)
.PHONY: print-deb-packages

# ------------------------------------------------------------------- fuzz
FUZZ_CC ?= clang
FUZZ_BUILD := build-fuzz
FUZZ_CFLAGS := -g -O1 -std=gnu11 -D_GNU_SOURCE -I. -I$(FUZZ_BUILD)/gen \
               $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined \
               -fno-sanitize-recover=all -Wall -Wextra -Wno-unused-parameter
FUZZ_LIB_SRCS := $(COMMON_OBJS:.o=.c)
B_FUZZERS := $(addprefix $(FUZZ_BUILD)/,$(FUZZERS))

$(FUZZ_BUILD)/%: tests/fuzz/%.c $(FUZZ_LIB_SRCS) tests/support/mem_backend.c \
                 tests/support/testutil.c tests/support/fuzz_peer.c proto/ctl_msg.c proto/channel.c proto/timing.c \
                 proto/disks.c $(NBD_OBJS:.o=.c) netbuf/frame_cmp.c netbuf/compare.c \
                 primary/protect_request.c \
                 $(FUZZ_BUILD)/gen/proto/remus.pb-c.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $^ -lprotobuf-c -lsodium -lpthread

$(FUZZ_BUILD)/gen/proto/remus.pb-c.c: $(FUZZ_BUILD)/gen/proto/remus.pb-c.h

$(FUZZ_BUILD)/gen/proto/remus.pb-c.h: proto/remus.proto
	@mkdir -p $(dir $@)
	$(Q)$(PROTOC_C) --c_out=$(FUZZ_BUILD)/gen $<

fuzz: $(B_FUZZERS)

# A bounded number of executions of every harness, part of `make check`.
# fuzz_feed starts two threads and a socket pair per input (~2 ms under
# ASan): a twentieth as many.
FUZZ_RUNS ?= 300000
FUZZ_RUNS_FEED ?= 15000
fuzz-smoke: fuzz
	$(Q)for f in $(FUZZERS); do \
	    runs=$(FUZZ_RUNS); [ $$f != fuzz_feed ] || runs=$(FUZZ_RUNS_FEED); \
	    mkdir -p $(FUZZ_BUILD)/corpus-$$f; \
	    echo "  FUZZRUN $$f ($$runs runs)"; \
	    $(FUZZ_BUILD)/$$f -runs=$$runs -seed=1 -max_len=65536 \
	        $(FUZZ_BUILD)/corpus-$$f tests/fuzz/corpus/$$f \
	        > $(FUZZ_BUILD)/$$f.log 2>&1 || \
	        { tail -40 $(FUZZ_BUILD)/$$f.log; exit 1; }; \
	done

# ---------------------------------------------------------------- install
# `make install` (GNU conventions: PREFIX/prefix, DESTDIR, sbindir, mandir,
# sysconfdir, ...).  The binary lives in $(pkglibdir) beside its guest
# image (remus run and remus drill look for guest/remus-guest.elf next to
# the binary they run from) with remus-unit, the units' command composer;
# $(sbindir)/remus is a symlink to it.  Generated here, into $(BUILD)/:
# the man pages (scdoc, man/*.scd), the bash completion (from the binary's
# own --help, completion/help_options.py) and the systemd units with the
# install paths in them.
PREFIX ?= /usr/local
prefix ?= $(PREFIX)
exec_prefix ?= $(prefix)
sbindir ?= $(exec_prefix)/sbin
libdir ?= $(exec_prefix)/lib
pkglibdir ?= $(libdir)/remus
datarootdir ?= $(prefix)/share
pkgdatadir ?= $(datarootdir)/remus
mandir ?= $(datarootdir)/man
sysconfdir ?= $(prefix)/etc
ocfdir ?= $(prefix)/lib/ocf/resource.d/remus
systemdunitdir ?= $(prefix)/lib/systemd/system
bashcompdir ?= $(datarootdir)/bash-completion/completions
INSTALL ?= install

MAN_PAGES := remus.1 remus-drill.1 remus.conf.5
B_MAN_PAGES := $(addprefix $(BUILD)/man/,$(MAN_PAGES))
UNITS := remus-protect@.service remus-receive@.service
B_UNITS := $(addprefix $(BUILD)/systemd/,$(UNITS))
B_COMPLETION := $(BUILD)/completion/remus
INSTALL_DATA := $(B_MAN_PAGES) $(B_UNITS) $(BUILD)/systemd/remus-unit \
                $(B_COMPLETION)

$(BUILD)/man/%: man/%.scd
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  SCDOC   $@")
	$(Q)scdoc < $< > $@.tmp && mv -f $@.tmp $@

$(B_COMPLETION): $(BUILD)/remus completion/help_options.py
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  GEN     $@")
	$(Q)python3 completion/help_options.py $(BUILD)/remus --bash > $@.tmp && \
	    mv -f $@.tmp $@

# The paths written into the units and remus-unit: rewritten only when
# they changed, so that another prefix regenerates them.
$(BUILD)/systemd/paths: FORCE
	@mkdir -p $(dir $@)
	$(Q)printf 's|@SBINDIR@|%s|g;s|@PKGLIBDIR@|%s|g;s|@SYSCONFDIR@|%s|g\n' \
	    '$(sbindir)' '$(pkglibdir)' '$(sysconfdir)' > $@.tmp
	$(Q)if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

$(BUILD)/systemd/%.service: systemd/%.service.in $(BUILD)/systemd/paths
	@$(if $(Q),echo "  GEN     $@")
	$(Q)sed -f $(BUILD)/systemd/paths $< > $@

$(BUILD)/systemd/remus-unit: systemd/remus-unit.sh $(BUILD)/systemd/paths
	@$(if $(Q),echo "  GEN     $@")
	$(Q)sed -f $(BUILD)/systemd/paths $< > $@ && chmod 755 $@

install-data: $(INSTALL_DATA)

install: $(BUILD)/remus $(GUEST_ELF) $(INSTALL_DATA)
	$(INSTALL) -d $(DESTDIR)$(sbindir) $(DESTDIR)$(pkglibdir)/guest \
	    $(DESTDIR)$(ocfdir) $(DESTDIR)$(systemdunitdir) \
	    $(DESTDIR)$(pkgdatadir)/grafana \
	    $(DESTDIR)$(mandir)/man1 $(DESTDIR)$(mandir)/man5 \
	    $(DESTDIR)$(bashcompdir) $(DESTDIR)$(sysconfdir)/remus
	$(INSTALL) -m 755 $(BUILD)/remus $(DESTDIR)$(pkglibdir)/remus
	$(INSTALL) -m 644 $(GUEST_ELF) $(DESTDIR)$(pkglibdir)/guest/remus-guest.elf
	$(INSTALL) -m 755 $(BUILD)/systemd/remus-unit $(DESTDIR)$(pkglibdir)/remus-unit
	ln -sfn $(shell realpath -m --relative-to=$(sbindir) $(pkglibdir)/remus) \
	    $(DESTDIR)$(sbindir)/remus
	$(INSTALL) -m 755 ocf/remus $(DESTDIR)$(ocfdir)/remus
	$(INSTALL) -m 644 $(B_UNITS) $(DESTDIR)$(systemdunitdir)
	$(INSTALL) -m 644 $(filter %.1,$(B_MAN_PAGES)) $(DESTDIR)$(mandir)/man1
	$(INSTALL) -m 644 $(filter %.5,$(B_MAN_PAGES)) $(DESTDIR)$(mandir)/man5
	$(INSTALL) -m 644 $(B_COMPLETION) $(DESTDIR)$(bashcompdir)/remus
	$(INSTALL) -m 644 systemd/example.conf systemd/example.vm \
	    $(DESTDIR)$(sysconfdir)/remus
	$(INSTALL) -m 644 ops/grafana/remus.json $(DESTDIR)$(pkgdatadir)/grafana

uninstall:
	rm -f $(DESTDIR)$(sbindir)/remus $(DESTDIR)$(pkglibdir)/remus \
	    $(DESTDIR)$(pkglibdir)/remus-unit \
	    $(DESTDIR)$(pkglibdir)/guest/remus-guest.elf \
	    $(DESTDIR)$(ocfdir)/remus \
	    $(addprefix $(DESTDIR)$(systemdunitdir)/,$(UNITS)) \
	    $(addprefix $(DESTDIR)$(mandir)/man1/,$(filter %.1,$(MAN_PAGES))) \
	    $(addprefix $(DESTDIR)$(mandir)/man5/,$(filter %.5,$(MAN_PAGES))) \
	    $(DESTDIR)$(bashcompdir)/remus \
	    $(DESTDIR)$(sysconfdir)/remus/example.conf \
	    $(DESTDIR)$(sysconfdir)/remus/example.vm \
	    $(DESTDIR)$(pkgdatadir)/grafana/remus.json

# -------------------------------------------------------------------- deb
# `make deb`: $(BUILD)/deb/remus_VERSION_amd64.deb, by dpkg-buildpackage
# from debian/, in a copy of the tracked files under $(BUILD)/deb/src
# (dpkg-buildpackage writes beside its source directory: this keeps it in
# $(BUILD)).  The copy is no git checkout: its VERSION is this tree's
# version, and so is debian/changelog's ("-" made "+": a native package).
# lintian's findings go to $(BUILD)/deb/lintian.txt.
DEB_VERSION = $(subst -,+,$(REMUS_VERSION))
DEB_SRC := $(BUILD)/deb/src/remus
# The files copied: git's tracked files, or outside git (a source
# package) every file but the build directories.
DEB_FILES = $(if $(filter $(CURDIR),$(shell git rev-parse --show-toplevel 2>/dev/null)),\
    git ls-files -z,find . -path './build*' -prune -o -type f -print0)

deb:
	$(Q)rm -rf $(BUILD)/deb && mkdir -p $(DEB_SRC)
	$(Q)$(DEB_FILES) | tar --null -T - -cf - | tar -C $(DEB_SRC) -xf -
	$(Q)echo '$(REMUS_VERSION)' > $(DEB_SRC)/VERSION
	$(Q)sed -i '1s/([^)]*)/($(DEB_VERSION))/' $(DEB_SRC)/debian/changelog
	@echo "  DEB     $(BUILD)/deb/remus_$(DEB_VERSION)_amd64.deb (log: $(BUILD)/deb/build.log)"
	$(Q)cd $(DEB_SRC) && DEB_BUILD_OPTIONS="parallel=2 $(DEB_BUILD_OPTIONS)" \
	    dpkg-buildpackage -b -us -uc > ../../build.log 2>&1 || \
	    { tail -40 ../../build.log; exit 1; }
	$(Q)mv $(BUILD)/deb/src/remus_$(DEB_VERSION)_amd64.deb $(BUILD)/deb/
	$(Q)lintian --info $(BUILD)/deb/remus_$(DEB_VERSION)_amd64.deb \
	    > $(BUILD)/deb/lintian.txt 2>&1 || true
	$(Q)grep -v 'root privileges' $(BUILD)/deb/lintian.txt | sed 's/^/  lintian: /' || true

# ------------------------------------------------------------------- deps
DEB_PACKAGES := build-essential pkg-config clang libclang-rt-14-dev \
    libxen-dev libnl-3-dev libnl-route-3-dev libprotobuf-c-dev \
    protobuf-c-compiler libcmocka-dev python3 iproute2 valgrind \
    qemu-system-x86 gnuplot-nox iputils-ping iputils-arping \
    debootstrap busybox-static cpio zstd
DEB_PACKAGES += libsodium-dev
# kvm_spawn.sh: a real ssh (sshd in a namespace)
DEB_PACKAGES += openssh-server openssh-client
# kvm_disk_faults.sh: the receiver's fdatasync calls counted by strace
DEB_PACKAGES += strace
# nbd_serve.sh: independent NBD clients (libnbd's tools and its Python
# binding, qemu-io) and nbdkit's memory plugin as the oracle
DEB_PACKAGES += libnbd-bin python3-libnbd qemu-utils nbdkit
# cluster/: corosync's client libraries; the quorum tests run corosync,
# corosync-qdevice and corosync-qnetd in namespaces; the OCF agent is
# checked with ocf-tester (resource-agents) and run by Pacemaker.
DEB_PACKAGES += libquorum-dev libvotequorum-dev libcpg-dev corosync \
    corosync-qdevice corosync-qnetd resource-agents pacemaker \
    pacemaker-cli-utils

# make install / make deb: man pages from scdoc sources, the units checked
# by systemd-analyze (systemd), man pages rendered by man (man-db), the
# Debian package built by debhelper and checked by lintian.
DEB_PACKAGES += scdoc man-db systemd debhelper lintian
# Type=notify units: sd_notify and sd_watchdog_enabled (libsystemd)
DEB_PACKAGES += libsystemd-dev
# --metrics: the HTTP endpoint (libmicrohttpd); ops_metrics.sh scrapes it
# with curl, checks it with promtool (prometheus) and the OpenMetrics
# parser of python3-prometheus-client
DEB_PACKAGES += libmicrohttpd-dev curl prometheus python3-prometheus-client

deps:
	$(Q)scripts/install-deps.sh $(DEB_PACKAGES)

print-deb-packages:
	@echo $(DEB_PACKAGES)

# The README's first command: a failover drill on the embedded KVM backend.
drill: deps
	$(Q)$(MAKE) --no-print-directory all
	$(Q)$(BUILD)/remus drill $(DRILL_ARGS)

clean:
	rm -rf build build-asan build-fuzz

# (not $(BUILD)/deb: a package's build tree, with its own build/)
-include $(shell find $(BUILD) -path $(BUILD)/deb -prune -o -name '*.d' -type f -print 2>/dev/null)

/* SPDX-License-Identifier: MIT */
/*
 * The micro-VMM's loader: a static ELF64 x86-64 guest image into guest
 * memory at or above 1 MiB.
 */
#define RM_LOG_PREFIX "vmm"
#include "backends/kvm/vmm_priv.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int load_elf(struct rm_vm *vm, uint64_t *entry, struct rm_error *err)
{
    const char *path = vm->cfg.image;
    Elf64_Ehdr eh;
    struct stat sb;
    int fd, i, rc = 0;
    uint64_t lo = UINT64_MAX, hi = 0;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rm_error_set(err, -errno, "cannot open guest image '%s': %s",
                            path, strerror(errno));
    if (fstat(fd, &sb) || pread(fd, &eh, sizeof(eh), 0) != sizeof(eh)) {
        rc = rm_error_set(err, -EIO, "'%s': cannot read an ELF header", path);
        goto out;
    }
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
        eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != EM_X86_64 ||
        eh.e_type != ET_EXEC || eh.e_phentsize != sizeof(Elf64_Phdr) ||
        eh.e_phnum == 0 || eh.e_phnum > 64) {
        rc = rm_error_set(err, -ENOEXEC, "'%s' is not a static x86-64 ELF "
                          "executable", path);
        goto out;
    }
    for (i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;

        if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph)))
            != sizeof(ph)) {
            rc = rm_error_set(err, -EIO, "'%s': truncated program headers",
                              path);
            goto out;
        }
        if (ph.p_type != PT_LOAD)
            continue;
        if (ph.p_filesz > ph.p_memsz || ph.p_vaddr < RM_GUEST_LOAD_GPA ||
            !gpa_ok(vm, ph.p_vaddr, ph.p_memsz) ||
            ph.p_offset > (uint64_t)sb.st_size ||
            ph.p_filesz > (uint64_t)sb.st_size - ph.p_offset) {
            rc = rm_error_set(err, -ENOEXEC, "'%s': segment %d (0x%" PRIx64
                              "+0x%" PRIx64 ") does not fit in %" PRIu64
                              " MiB of guest memory above 1 MiB", path, i,
                              (uint64_t)ph.p_vaddr, (uint64_t)ph.p_memsz,
                              vm->mem_bytes >> 20);
            goto out;
        }
        if (pread(fd, vm->mem + ph.p_vaddr, ph.p_filesz,
                  (off_t)ph.p_offset) != (ssize_t)ph.p_filesz) {
            rc = rm_error_set(err, -EIO, "'%s': short read", path);
            goto out;
        }
        memset(vm->mem + ph.p_vaddr + ph.p_filesz, 0,
               ph.p_memsz - ph.p_filesz);
        if (ph.p_vaddr < lo)
            lo = ph.p_vaddr;
        if (ph.p_vaddr + ph.p_memsz > hi)
            hi = ph.p_vaddr + ph.p_memsz;
    }
    if (lo == UINT64_MAX || eh.e_entry < lo || eh.e_entry >= hi) {
        rc = rm_error_set(err, -ENOEXEC, "'%s': entry point 0x%" PRIx64
                          " is outside its loaded segments", path,
                          (uint64_t)eh.e_entry);
        goto out;
    }
    *entry = eh.e_entry;
out:
    close(fd);
    return rc;
}

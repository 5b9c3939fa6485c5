/* SPDX-License-Identifier: MIT */
/*
 * The micro-VMM's guest description: rm_vm_config_default() and
 * rm_vm_config_load() with its parsers (see vmm.h).
 */
#define RM_LOG_PREFIX "vmm"
#include "backends/kvm/vmm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/sr.h"

void rm_vm_config_default(struct rm_vm_config *cfg)
{
    static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

    memset(cfg, 0, sizeof(*cfg));
    cfg->name = "vm";
    cfg->mem_bytes = 64ull << 20;
    cfg->nr_vcpus = 1;
    cfg->dirty_manual_clear = true;   /* the fastest here: see make bench */
    cfg->hot_after = 3;
    cfg->hot_period = 64;
    cfg->hot_pages_max = 4096;
    memcpy(cfg->mac, mac, 6);
}

static int parse_mac(const char *s, uint8_t mac[6])
{
    unsigned v[6];
    int i;

    if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5]) != 6)
        return -EINVAL;
    for (i = 0; i < 6; i++) {
        if (v[i] > 255)
            return -EINVAL;
        mac[i] = (uint8_t)v[i];
    }
    return 0;
}

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
                     e[-1] == '\r'))
        *--e = '\0';
    if (e - s >= 2 && ((s[0] == '"' && e[-1] == '"') ||
                       (s[0] == '\'' && e[-1] == '\''))) {
        e[-1] = '\0';
        s++;
    }
    return s;
}

int rm_vm_config_load(const char *path, struct rm_vm_config *cfg,
                      char **storage, struct rm_error *err)
{
    FILE *f = fopen(path, "r");
    char line[1024], *store, *sp;
    size_t used = 0;
    int lineno = 0, rc = 0;

    *storage = NULL;
    if (!f)
        return rm_error_set(err, -errno, "cannot open guest description "
                            "'%s': %s", path, strerror(errno));
    store = calloc(1, 8192);
    if (!store) {
        fclose(f);
        return rm_error_set(err, -ENOMEM, "out of memory");
    }
    while (fgets(line, sizeof(line), f)) {
        char *key, *val, *eq, *hash;
        size_t vlen;

        lineno++;
        hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        key = trim(line);
        if (!*key)
            continue;
        eq = strchr(key, '=');
        if (!eq) {
            rc = rm_error_set(err, -EINVAL, "%s:%d: expected 'key = value'",
                              path, lineno);
            break;
        }
        *eq = '\0';
        key = trim(key);
        val = trim(eq + 1);
        vlen = strlen(val) + 1;
        if (used + vlen > 8192) {
            rc = rm_error_set(err, -E2BIG, "%s: too long", path);
            break;
        }
        sp = store + used;
        memcpy(sp, val, vlen);
        used += vlen;
        if (!strcmp(key, "name")) {
            cfg->name = sp;
        } else if (!strcmp(key, "memory")) {
            char *end;
            unsigned long long mib = strtoull(val, &end, 10);

            if (*end || mib < 4 || mib > 4096) {
                rc = rm_error_set(err, -EINVAL, "%s:%d: memory '%s' must be "
                                  "4..4096 (MiB)", path, lineno, val);
                break;
            }
            cfg->mem_bytes = mib << 20;
        } else if (!strcmp(key, "vcpus")) {
            char *end;
            unsigned long n = strtoul(val, &end, 10);

            if (*end || n < 1 || n > RM_KVM_MAX_VCPUS) {
                rc = rm_error_set(err, -EINVAL, "%s:%d: vcpus '%s' must be "
                                  "1..%u", path, lineno, val,
                                  RM_KVM_MAX_VCPUS);
                break;
            }
            cfg->nr_vcpus = (uint32_t)n;
        } else if (!strcmp(key, "image")) {
            cfg->image = sp;
        } else if (!strcmp(key, "cmdline")) {
            cfg->cmdline = sp;
        } else if (!strcmp(key, "mac")) {
            if (parse_mac(val, cfg->mac)) {
                rc = rm_error_set(err, -EINVAL, "%s:%d: bad mac '%s'", path,
                                  lineno, val);
                break;
            }
        } else if (!strcmp(key, "ip") || !strcmp(key, "netmask") ||
                   !strcmp(key, "gateway")) {
            struct in_addr a;

            if (inet_pton(AF_INET, val, &a) != 1) {
                rc = rm_error_set(err, -EINVAL, "%s:%d: bad IPv4 address "
                                  "'%s'", path, lineno, val);
                break;
            }
            if (key[0] == 'i')
                cfg->ipv4 = a.s_addr;
            else if (key[0] == 'n')
                cfg->netmask = a.s_addr;
            else
                cfg->gateway = a.s_addr;
        } else if (!strcmp(key, "tap")) {
            cfg->tap = sp;
        } else if (!strcmp(key, "tap_netns")) {
            cfg->tap_netns = sp;
        } else if (!strcmp(key, "console")) {
            cfg->console_path = sp;
        } else if (!strcmp(key, "backend")) {
            if (strcmp(val, "kvm") && strcmp(val, "xen")) {
                rc = rm_error_set(err, -EINVAL, "%s:%d: backend '%s': kvm "
                                  "or xen", path, lineno, val);
                break;
            }
            cfg->backend = sp;
        } else if (!strcmp(key, "xl_config")) {
            cfg->xl_config = sp;
        } else if (!strcmp(key, "disk")) {
            if (!*val) {
                rc = rm_error_set(err, -EINVAL, "%s:%d: disk: expected the "
                                  "path of a raw image", path, lineno);
                break;
            }
            cfg->disk = sp;
        } else {
            rc = rm_error_set(err, -EINVAL, "%s:%d: unknown key '%s'", path,
                              lineno, key);
            break;
        }
    }
    fclose(f);
    if (rc)
        free(store);
    else
        *storage = store;
    return rc;
}

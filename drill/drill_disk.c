/* SPDX-License-Identifier: MIT */
/* The drill's disk (drill_disk.h). */
#define RM_LOG_PREFIX "drill"
#include "drill/drill_disk.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/io.h"

static int make_image(const char *path, unsigned mib, struct rm_error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    if (fd < 0)
        return rm_error_set(err, -errno, "cannot create %s: %s", path,
                            strerror(errno));
    if (ftruncate(fd, (off_t)mib << 20)) {
        int e = errno;

        close(fd);
        return rm_error_set(err, -e, "cannot size %s: %s", path,
                            strerror(e));
    }
    close(fd);
    return 0;
}

int rm_drill_disk_images(const char *dir, unsigned mib,
                         struct rm_drill_disk *dd, struct rm_error *err)
{
    int rc;

    memset(dd, 0, sizeof(*dd));
    dd->mib = mib;
    snprintf(dd->primary, sizeof(dd->primary), "%s/primary.img", dir);
    snprintf(dd->replica, sizeof(dd->replica), "%s/replica.img", dir);
    snprintf(dd->cold, sizeof(dd->cold), "%s/cold.img", dir);
    rc = make_image(dd->primary, mib, err);
    if (!rc)
        rc = make_image(dd->replica, mib, err);
    return rc;
}

int rm_drill_diskcheck(struct kv_client *c, uint64_t *records, char *why,
                       size_t len)
{
    struct kv_reply r;
    const char *p;

    *records = 0;
    if (kv_call(c, "DISKCHECK", &r, 100, rm_now_ns() + 5000000000ull,
                NULL)) {
        snprintf(why, len, "no answer to DISKCHECK");
        return -EPROTO;
    }
    p = strstr(r.text, "records=");
    if (p)
        *records = strtoull(p + 8, NULL, 10);
    if (!r.ok || !strstr(r.text, "disk=ok")) {
        snprintf(why, len, "DISKCHECK: %s", r.text);
        return -EPROTO;
    }
    return 0;
}

static int copy_file(const char *from, const char *to, struct rm_error *err)
{
    int in = open(from, O_RDONLY | O_CLOEXEC), out = -1, rc = 0;
    static char buf[1 << 20];
    ssize_t n;

    if (in < 0)
        return rm_error_set(err, -errno, "cannot open %s: %s", from,
                            strerror(errno));
    out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) {
        rc = rm_error_set(err, -errno, "cannot create %s: %s", to,
                          strerror(errno));
        goto out;
    }
    while ((n = read(in, buf, sizeof(buf))) > 0)
        if (rm_write_all(out, buf, (size_t)n)) {
            rc = rm_error_set(err, -EIO, "writing %s failed", to);
            goto out;
        }
    if (n < 0)
        rc = rm_error_set(err, -errno, "reading %s: %s", from,
                          strerror(errno));
out:
    if (out >= 0)
        close(out);
    close(in);
    return rc;
}

/* `remus run --config DIR/cold.cfg`, its output in DIR/cold.log. */
static pid_t start_cold(const struct rm_drill_disk *dd,
                        const struct rm_drill_cold *c, struct rm_error *err)
{
    char cfg[256], log[256];
    FILE *f;
    pid_t pid;

    snprintf(cfg, sizeof(cfg), "%s/cold.cfg", c->dir);
    snprintf(log, sizeof(log), "%s/cold.log", c->dir);
    f = fopen(cfg, "w");
    if (!f) {
        rm_error_set(err, -errno, "cannot write %s", cfg);
        return -1;
    }
    fprintf(f, "name = drillcold\nmemory = %u\nvcpus = %u\nimage = %s\n"
            "ip = %s\nnetmask = 255.255.255.0\ntap = %s\ndisk = %s\n",
            c->memory_mib, c->vcpus, c->image, c->ip, c->tap, dd->cold);
    fclose(f);
    pid = fork();
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);

        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execl(c->self, c->self, "run", "--config", cfg, (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        rm_error_set(err, -errno, "cannot start remus run: %s",
                     strerror(errno));
    return pid;
}

int rm_drill_cold_boot(const struct rm_drill_disk *dd,
                       const struct rm_drill_cold *c, double *boot_ms,
                       uint64_t *records, char *why, size_t len)
{
    struct rm_error err = { 0 };
    struct kv_client kc;
    struct kv_reply r;
    uint64_t t0;
    unsigned i;
    pid_t pid;
    int rc, status;

    *boot_ms = 0;
    *records = 0;
    rc = copy_file(dd->replica, dd->cold, &err);
    if (rc) {
        snprintf(why, len, "%s", rm_error_str(&err));
        return rc;
    }
    t0 = rm_now_ns();
    pid = start_cold(dd, c, &err);
    if (pid < 0) {
        snprintf(why, len, "%s", rm_error_str(&err));
        return err.code ? err.code : -EIO;
    }
    rc = kv_open(&kc, 777777, c->ip, c->port);
    if (rc) {
        snprintf(why, len, "no client socket: %s", strerror(-rc));
        goto out;
    }
    if (kv_call(&kc, "STATS", &r, 100, rm_now_ns() + 20000000000ull,
                NULL)) {
        snprintf(why, len, "the guest cold-booted from a copy of the "
                 "secondary's image did not answer within 20 s (see %s/"
                 "cold.log)", c->dir);
        rc = -EPROTO;
        goto out_kc;
    }
    *boot_ms = (double)(rm_now_ns() - t0) / 1e6;
    for (i = 0; i < c->n; i++) {
        char cmd[32];

        snprintf(cmd, sizeof(cmd), "GET k%u", i);
        if (kv_call(&kc, cmd, &r, 100, rm_now_ns() + 5000000000ull, NULL) ||
            !r.ok) {
            snprintf(why, len, "the cold-booted guest does not answer GET "
                     "k%u", i);
            rc = -EPROTO;
            goto out_kc;
        }
        if (r.value != c->want[i]) {
            snprintf(why, len, "the guest cold-booted from the secondary's "
                     "image has k%u = %" PRIu64 ", the replica served %"
                     PRIu64 " (%s)", i, r.value, c->want[i],
                     r.value < c->want[i] ? "acknowledged writes missing "
                     "from its disk" : "writes on its disk that the "
                     "replica never had");
            rc = -EPROTO;
            goto out_kc;
        }
    }
    rc = rm_drill_diskcheck(&kc, records, why, len);
out_kc:
    kv_close(&kc);
out:
    kill(pid, SIGINT);
    waitpid(pid, &status, 0);
    return rc;
}

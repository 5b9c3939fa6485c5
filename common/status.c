/* SPDX-License-Identifier: MIT */
#define RM_LOG_PREFIX "status"
#include "common/status.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/io.h"
#include "common/log.h"

uint64_t rm_unix_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void rm_status_publish(struct rm_status *st, const char *state,
                       uint64_t *last_ns, bool force)
{
    uint64_t now = rm_now_ns();
    struct rm_error err = { 0 };

    snprintf(st->state, sizeof(st->state), "%s", state);
    st->updated_unix_ms = rm_unix_ms();
    rm_status_tick(st);
    if (!force && now - *last_ns < 200000000ull)
        return;
    *last_ns = now;
    if (rm_status_write(st, &err))
        LOG_DBG("status: %s", rm_error_str(&err));
}

void rm_status_tick(const struct rm_status *st)
{
    const struct rm_status_observer *o;

    for (o = st->observers; o; o = o->next)
        o->seen(o->opaque, st);
}

const char *rm_run_dir(void)
{
    const char *d = getenv("REMUS_RUN_DIR");

    return d && *d ? d : "/run/remus";
}

int rm_run_dir_prepare(struct rm_error *err)
{
    const char *dir = rm_run_dir();
    struct stat st;
    int fd, rc = 0;

    if (mkdir(dir, 0700) && errno != EEXIST)
        return rm_error_set(err, -errno, "cannot create the run directory "
                            "%s: %s", dir, strerror(errno));
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return rm_error_set(err, -errno, "run directory %s: %s", dir,
                            strerror(errno));
    if (fstat(fd, &st))
        rc = rm_error_set(err, -errno, "run directory %s: %s", dir,
                          strerror(errno));
    else if (st.st_uid != geteuid())
        rc = rm_error_set(err, -EPERM, "run directory %s belongs to uid %u, "
                          "not to us (uid %u): refusing to use it", dir,
                          (unsigned)st.st_uid, (unsigned)geteuid());
    else if ((st.st_mode & 07777) != 0700 && fchmod(fd, 0700))
        rc = rm_error_set(err, -errno, "run directory %s (mode %04o): "
                          "cannot make it 0700: %s", dir,
                          (unsigned)(st.st_mode & 07777), strerror(errno));
    close(fd);
    return rc;
}

/* JSON string escaping of our own short strings. */
static int put_str(char *buf, int len, int off, const char *key,
                   const char *val)
{
    int n = snprintf(buf + off, off < len ? (size_t)(len - off) : 0,
                     "  \"%s\": \"", key);
    const char *p;

    off += n;
    for (p = val; *p; p++) {
        unsigned char c = (unsigned char)*p;

        if (c == '"' || c == '\\')
            n = snprintf(buf + off, off < len ? (size_t)(len - off) : 0,
                         "\\%c", c);
        else if (c < 0x20)
            n = snprintf(buf + off, off < len ? (size_t)(len - off) : 0,
                         "\\u%04x", c);
        else
            n = snprintf(buf + off, off < len ? (size_t)(len - off) : 0,
                         "%c", c);
        off += n;
    }
    n = snprintf(buf + off, off < len ? (size_t)(len - off) : 0, "\",\n");
    return off + n;
}

static int put_u64(char *buf, int len, int off, const char *key, uint64_t v,
                   bool last)
{
    return off + snprintf(buf + off, off < len ? (size_t)(len - off) : 0,
                          "  \"%s\": %" PRIu64 "%s\n", key, v,
                          last ? "" : ",");
}

static const char *const colo_cause_keys[4] = {
    "colo_checkpoints_mismatch", "colo_checkpoints_timeout",
    "colo_checkpoints_overflow", "colo_checkpoints_periodic",
};

int rm_status_to_json(const struct rm_status *st, char *buf, int len)
{
    int off = snprintf(buf, (size_t)len, "{\n");

    off = put_str(buf, len, off, "name", st->name);
    off = put_str(buf, len, off, "role", st->role);
    off = put_str(buf, len, off, "state", st->state);
    off = put_str(buf, len, off, "backend", st->backend);
    off = put_str(buf, len, off, "peer", st->peer);
    off = put_str(buf, len, off, "detail", st->detail);
    off = put_u64(buf, len, off, "pid", (uint64_t)st->pid, false);
    off = put_u64(buf, len, off, "pid_start", st->pid_start, false);
    off = put_u64(buf, len, off, "epoch", st->epoch, false);
    off = put_u64(buf, len, off, "acked_epoch", st->acked_epoch, false);
    off = put_u64(buf, len, off, "last_pause_us", st->last_pause_us, false);
    off = put_u64(buf, len, off, "last_dirty_pages", st->last_dirty_pages,
                  false);
    off = put_u64(buf, len, off, "last_bytes", st->last_bytes, false);
    off = put_u64(buf, len, off, "total_bytes", st->total_bytes, false);
    off = put_u64(buf, len, off, "interval_ms", st->interval_ms, false);
    off = put_u64(buf, len, off, "failover_unix_ms", st->failover_unix_ms,
                  false);
    if (st->colo_mode[0]) {
        unsigned i;

        off = put_str(buf, len, off, "colo_mode", st->colo_mode);
        for (i = 0; i < 4; i++)
            off = put_u64(buf, len, off, colo_cause_keys[i],
                          st->colo_checkpoints[i], false);
        off = put_u64(buf, len, off, "colo_checkpoints_buffered",
                      st->colo_buffered_checkpoints, false);
        off = put_u64(buf, len, off, "colo_fallbacks", st->colo_fallbacks,
                      false);
        off = put_u64(buf, len, off, "colo_held_primary",
                      st->colo_held_primary, false);
        off = put_u64(buf, len, off, "colo_held_replica",
                      st->colo_held_replica, false);
        off = put_u64(buf, len, off, "colo_replica_sectors",
                      st->colo_replica_sectors, false);
    }
    off = put_u64(buf, len, off, "updated_unix_ms", st->updated_unix_ms,
                  true);
    off += snprintf(buf + off, off < len ? (size_t)(len - off) : 0, "}\n");
    return off;
}

static bool valid_name(const char *name)
{
    const char *p;

    if (!*name || strlen(name) >= RM_STATUS_NAME_MAX)
        return false;
    for (p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' &&
            *p != '.')
            return false;
    return name[0] != '.';
}

/* Start time of process @pid (field 22 of /proc/PID/stat).  0 or
 * -errno. */
static int proc_start_time(int pid, uint64_t *out)
{
    char path[64], buf[1024], *p, *end;
    ssize_t n;
    int fd, field;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return n < 0 ? -errno : -ESRCH;
    buf[n] = '\0';
    /* The command name (field 2) may hold anything: skip to its end. */
    p = strrchr(buf, ')');
    if (!p)
        return -EBADMSG;
    p++;
    for (field = 3; field < 22 && p; field++)
        p = strchr(p + 1, ' ');
    if (!p)
        return -EBADMSG;
    errno = 0;
    *out = strtoull(p + 1, &end, 10);
    if (errno || end == p + 1)
        return -EBADMSG;
    return 0;
}

int rm_status_check_writer(const struct rm_status *st, struct rm_error *err)
{
    char exe[64];
    struct stat mine, theirs;
    uint64_t start;
    int rc;

    if (st->pid <= 0)
        return rm_error_set(err, -ESRCH, "the status file names no "
                            "process");
    rc = proc_start_time(st->pid, &start);
    if (rc)
        return rm_error_set(err, -ESRCH, "process %d is gone (a stale "
                            "status file)", st->pid);
    if (!st->pid_start || start != st->pid_start)
        return rm_error_set(err, -ESRCH, "process %d is not the one that "
                            "wrote the status file (it started at tick "
                            "%" PRIu64 ", the writer at %" PRIu64 "): a "
                            "stale status file", st->pid, start,
                            st->pid_start);
    snprintf(exe, sizeof(exe), "/proc/%d/exe", st->pid);
    if (stat("/proc/self/exe", &mine))
        return rm_error_set(err, -errno, "/proc/self/exe: %s",
                            strerror(errno));
    if (stat(exe, &theirs))
        return rm_error_set(err, errno == ENOENT ? -ESRCH : -EPERM,
                            "process %d: cannot check its executable (%s)",
                            st->pid, strerror(errno));
    if (mine.st_dev != theirs.st_dev || mine.st_ino != theirs.st_ino)
        return rm_error_set(err, -ESRCH, "process %d does not run remus "
                            "(a stale status file)", st->pid);
    return 0;
}

int rm_status_write(const struct rm_status *st_in, struct rm_error *err)
{
    char path[512], tmp[540], json[4096];
    struct rm_status copy = *st_in, *st = &copy;
    int fd, n, rc;

    if (!valid_name(st->name))
        return rm_error_set(err, -EINVAL, "invalid status name '%s'",
                            st->name);
    rc = rm_run_dir_prepare(err);
    if (rc)
        return rc;
    if (st->pid == (int)getpid() && proc_start_time(st->pid, &st->pid_start))
        st->pid_start = 0;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.%s.status.json",
                         rm_run_dir(), st->name, st->role[0] ? st->role :
                         "vm") >= sizeof(path))
        return rm_error_set(err, -ENAMETOOLONG, "run directory path %s is "
                            "too long", rm_run_dir());
    /* An unpredictable temp name, created exclusively (never through a
     * link someone left in the directory). */
    snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
    n = rm_status_to_json(st, json, sizeof(json));
    if (n >= (int)sizeof(json))
        return rm_error_set(err, -E2BIG, "status too long");
    fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return rm_error_set(err, -errno, "cannot write %s: %s", tmp,
                            strerror(errno));
    rc = fchmod(fd, 0644) ? -errno : 0;
    if (!rc)
        rc = rm_write_all(fd, json, (size_t)n);
    close(fd);
    if (rc == 0 && rename(tmp, path))
        rc = -errno;
    if (rc) {
        unlink(tmp);
        return rm_error_set(err, rc, "cannot write %s: %s", path,
                            strerror(-rc));
    }
    return 0;
}

void rm_status_remove(const char *name, const char *role)
{
    char path[512];

    if (!valid_name(name))
        return;
    snprintf(path, sizeof(path), "%s/%s.%s.status.json", rm_run_dir(), name,
             role);
    unlink(path);
}

/* Find "key": in @js and return a pointer just past the colon. */
static const char *find_key(const char *js, const char *key)
{
    char pat[80];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\"", key);
    p = strstr(js, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static int get_str(const char *js, const char *key, char *out, size_t len)
{
    const char *p = find_key(js, key);
    size_t o = 0;

    if (!p || *p != '"')
        return -EBADMSG;
    for (p++; *p && *p != '"'; p++) {
        char c = *p;

        if (c == '\\') {
            p++;
            if (!*p)
                return -EBADMSG;
            c = *p == 'u' ? '?' : *p;
            if (*p == 'u') {
                int k;

                for (k = 0; k < 4; k++)
                    if (!isxdigit((unsigned char)*++p))
                        return -EBADMSG;
            }
        }
        if (o + 1 < len)
            out[o++] = c;
    }
    if (*p != '"')
        return -EBADMSG;
    out[o] = '\0';
    return 0;
}

static int get_u64(const char *js, const char *key, uint64_t *v)
{
    const char *p = find_key(js, key);
    char *end;

    if (!p || !isdigit((unsigned char)*p))
        return -EBADMSG;
    errno = 0;
    *v = strtoull(p, &end, 10);
    if (errno || end == p)
        return -EBADMSG;
    return 0;
}

int rm_status_read(const char *path, struct rm_status *st,
                   struct rm_error *err)
{
    char js[8192];
    uint64_t pid = 0;
    ssize_t n;
    int fd, bad = 0;

    memset(st, 0, sizeof(*st));
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rm_error_set(err, -errno, "cannot read %s: %s", path,
                            strerror(errno));
    n = read(fd, js, sizeof(js) - 1);
    close(fd);
    if (n < 0)
        return rm_error_set(err, -errno, "cannot read %s", path);
    js[n] = '\0';
    bad |= get_str(js, "name", st->name, sizeof(st->name));
    bad |= get_str(js, "role", st->role, sizeof(st->role));
    bad |= get_str(js, "state", st->state, sizeof(st->state));
    bad |= get_str(js, "backend", st->backend, sizeof(st->backend));
    bad |= get_str(js, "peer", st->peer, sizeof(st->peer));
    bad |= get_str(js, "detail", st->detail, sizeof(st->detail));
    bad |= get_u64(js, "pid", &pid);
    if (get_u64(js, "pid_start", &st->pid_start))
        st->pid_start = 0;          /* older files: unknown */
    bad |= get_u64(js, "epoch", &st->epoch);
    bad |= get_u64(js, "acked_epoch", &st->acked_epoch);
    bad |= get_u64(js, "last_pause_us", &st->last_pause_us);
    bad |= get_u64(js, "last_dirty_pages", &st->last_dirty_pages);
    bad |= get_u64(js, "last_bytes", &st->last_bytes);
    bad |= get_u64(js, "total_bytes", &st->total_bytes);
    bad |= get_u64(js, "interval_ms", &st->interval_ms);
    bad |= get_u64(js, "failover_unix_ms", &st->failover_unix_ms);
    bad |= get_u64(js, "updated_unix_ms", &st->updated_unix_ms);
    /* COLO's, when it runs: all or none */
    if (!get_str(js, "colo_mode", st->colo_mode, sizeof(st->colo_mode))) {
        unsigned i;

        for (i = 0; i < 4; i++)
            bad |= get_u64(js, colo_cause_keys[i], &st->colo_checkpoints[i]);
        bad |= get_u64(js, "colo_checkpoints_buffered",
                       &st->colo_buffered_checkpoints);
        bad |= get_u64(js, "colo_fallbacks", &st->colo_fallbacks);
        bad |= get_u64(js, "colo_held_primary", &st->colo_held_primary);
        bad |= get_u64(js, "colo_held_replica", &st->colo_held_replica);
        /* newer than the rest: a status an older remus wrote has none */
        if (get_u64(js, "colo_replica_sectors", &st->colo_replica_sectors))
            st->colo_replica_sectors = 0;
    } else {
        st->colo_mode[0] = '\0';
    }
    if (bad || pid > 0x7fffffff)
        return rm_error_set(err, -EBADMSG, "%s is not a remus status file",
                            path);
    st->pid = (int)pid;
    return 0;
}

/* SPDX-License-Identifier: MIT */
/*
 * remus save [--live] [-c] VM FILE|-: save a running KVM VM;
 * remus save --xen [--live] [-c] DOMAIN FILE|-: a Xen domain
 * (backends/xen/xen_domain_sr.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backends/kvm/vmctl.h"
#include "backends/xen/xen_domain_sr.h"
#include "cli/cli.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: remus save [--live] [-c] VM FILE|-\n"
            "\n"
            "Save the running KVM VM named VM (started with `remus run --name\n"
            "VM`) into FILE (- for stdout) as a remus checkpoint stream.\n"
            "\n"
            "  --live    live save: pre-copy while the guest runs, then pause\n"
            "            and send the rest (bounded: 5 iterations, or 3x guest\n"
            "            memory, or fewer than 50 dirty pages)\n"
            "  -c        keep the VM running afterwards (default: it stops\n"
            "            after a successful save, as with `xl save`)\n"
            "\n"
            "FILE is written as a new file beside it (mode 0600: it holds the\n"
            "guest's memory), synced to disk before the VM stops, and renamed\n"
            "to FILE only when the save succeeded: a failed save (e.g. a full\n"
            "disk) leaves an existing FILE as it was.\n"
            "\n"
            "Exit status: 0 saved; 1 failed (the VM keeps running); 2 usage.\n");
}

/*
 * A save file is a dump of the guest's memory: it is written to a new
 * temporary file beside FILE (mode 0600), synced, and renamed over FILE
 * only when the save succeeded, so a failed save (a full disk) leaves the
 * previous FILE as it was.
 */
struct save_out {
    const char *path;      /* NULL: stdout */
    char tmp[4096];
    int fd;
};

static int save_out_open(struct save_out *o, const char *path)
{
    int n;

    memset(o, 0, sizeof(*o));
    if (!strcmp(path, "-")) {
        o->fd = STDOUT_FILENO;
        return 0;
    }
    o->path = path;
    n = snprintf(o->tmp, sizeof(o->tmp), "%s.XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof(o->tmp))
        return -ENAMETOOLONG;
    o->fd = mkostemp(o->tmp, O_CLOEXEC);
    if (o->fd < 0)
        return -errno;
    if (fchmod(o->fd, 0600)) {
        n = -errno;
        close(o->fd);
        unlink(o->tmp);
        return n;
    }
    return 0;
}

/* Sync the directory that holds @path (so a rename in it is durable). */
static int sync_dir_of(const char *path)
{
    char dir[4096];
    char *slash;
    int fd, rc = 0;

    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (fsync(fd) && errno != EINVAL)
        rc = -errno;
    close(fd);
    return rc;
}

/* Drop the temporary file (the save failed). */
static void save_out_abort(struct save_out *o)
{
    if (!o->path)
        return;
    close(o->fd);
    unlink(o->tmp);
}

/* The save succeeded: sync and put the file in place.  0 or -errno (then
 * the save stays in o->tmp: the VM may have stopped, it is not lost). */
static int save_out_commit(struct save_out *o)
{
    int rc = 0;

    if (!o->path)
        return 0;
    if (fsync(o->fd))
        rc = -errno;
    if (close(o->fd) && !rc)
        rc = -errno;
    if (!rc && rename(o->tmp, o->path))
        rc = -errno;
    if (!rc && sync_dir_of(o->path))
        fprintf(stderr, "remus save: warning: the directory of '%s' could "
                "not be synced: the new file's name may not survive a "
                "crash\n", o->path);
    return rc;
}

int cmd_save(int argc, char **argv)
{
    static const struct option opts[] = {
        { "live", no_argument, NULL, 'l' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_error err = { 0 };
    struct save_out out;
    char reply[600];
    bool live = false, keep = false;
    int c, rc;

    optind = 1;
    while ((c = getopt_long(argc, argv, "+lch", opts, NULL)) != -1) {
        switch (c) {
        case 'l': live = true; break;
        case 'c': keep = true; break;
        case 'h': usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("save", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("save", "expected VM and FILE");
    rc = save_out_open(&out, argv[optind + 1]);
    if (rc)
        return cli_fail("save", "cannot create a file beside '%s': %s",
                        argv[optind + 1], strerror(-rc));
    rc = rm_vmctl_save(argv[optind], live, keep, out.fd, reply,
                       sizeof(reply), &err);
    if (rc) {
        save_out_abort(&out);
        return cli_fail("save", "%s%s", rm_error_str(&err), out.path ?
                        " (the previous save file, if any, is unchanged)"
                        : "");
    }
    rc = save_out_commit(&out);
    if (rc)
        return cli_fail("save", "the VM was saved into '%s' but it could "
                        "not be made '%s': %s", out.tmp, argv[optind + 1],
                        strerror(-rc));
    {
        unsigned long long bytes = 0, pages = 0;
        unsigned iters = 0;

        sscanf(reply + 3, "%llu %llu %u", &bytes, &pages, &iters);
        fprintf(stderr, "remus save: '%s' saved: %llu bytes, %llu pages, "
                "%u pre-copy iterations\n", argv[optind], bytes, pages,
                iters);
    }
    return RM_EXIT_OK;
}

/* ---------------------------------------------------------------- Xen */

static void xen_usage(FILE *out)
{
    fprintf(out,
            "usage: remus save --xen [--live] [-c] DOMAIN FILE|-\n"
            "\n"
            "Save the Xen HVM/PVH guest DOMAIN (name or id) into FILE as a\n"
            "libxc migration stream (v3, x86 HVM): what `xl restore`'s libxc\n"
            "part and `remus restore --xen` read.  The guest is suspended\n"
            "cooperatively (control/shutdown or its suspend event channel).\n"
            "\n"
            "  --live          pre-copy with log-dirty first (short pause)\n"
            "  -c              keep the domain running afterwards (default:\n"
            "                  it is destroyed after a good save, as xl save)\n"
            "  --suspend-timeout MS  wait this long for the guest to\n"
            "                  suspend (default 30000)\n"
            "Exit status: 0 saved; 1 failed (the domain keeps running);\n"
            "2 usage.\n");
}

int cmd_save_xen(int argc, char **argv)
{
    static const struct option opts[] = {
        { "xen", no_argument, NULL, 'x' },
        { "live", no_argument, NULL, 'l' },
        { "suspend-timeout", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct rm_xen_save_opts o = { 0 };
    struct rm_xen_save_result res = { 0 };
    struct rm_xen_host *host = NULL;
    struct rm_error err = { 0 };
    const char *path;
    uint32_t domid = 0;
    int c, fd, rc, ret = RM_EXIT_FAIL;

    optind = 1;
    while ((c = getopt_long(argc, argv, "+ch", opts, NULL)) != -1) {
        switch (c) {
        case 'x': break;
        case 'l': o.live = true; break;
        case 'c': o.keep = true; break;
        case 's':
            if (cli_uint32("save", "--suspend-timeout", optarg, 1,
                           CLI_MS_MAX, &o.suspend_timeout_ms))
                return RM_EXIT_USAGE;
            break;
        case 'h': xen_usage(stdout); return RM_EXIT_OK;
        default:
            return cli_usage_error("save", "unknown option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (argc - optind != 2)
        return cli_usage_error("save", "expected DOMAIN and FILE");
    path = argv[optind + 1];
    rc = rm_xen_host_open(&host, &err);
    if (!rc)
        rc = rm_xen_domid(host, argv[optind], &domid, &err);
    if (rc) {
        ret = cli_fail("save", "%s", rm_error_str(&err));
        goto out;
    }
    fd = cli_open_out(path);
    if (fd < 0) {
        ret = cli_fail("save", "cannot create '%s': %s", path,
                       strerror(-fd));
        goto out;
    }
    rc = rm_xen_save_domain(host, domid, fd, &o, &res, &err);
    if (fd != STDOUT_FILENO && close(fd) && !rc)
        rc = rm_error_set(&err, -errno, "closing '%s': %s", path,
                          strerror(errno));
    if (rc) {
        if (strcmp(path, "-"))
            unlink(path);
        if (res.refused) {
            ret = cli_usage_error("save", "%s", rm_error_str(&err));
            goto out;
        }
        rm_xen_save_finish(host, domid, &o, &res, false, NULL);
        ret = cli_fail("save", "%s", rm_error_str(&err));
        goto out;
    }
    fprintf(stderr, "remus save: domain %u saved: %" PRIu64 " bytes, %"
            PRIu64 " pages, %u pre-copy iterations\n", domid, res.bytes,
            res.pages, res.iterations);
    ret = RM_EXIT_OK;
    if (rm_xen_save_finish(host, domid, &o, &res, true, &err))
        ret = cli_fail("save", "saved, but %s", rm_error_str(&err));
out:
    rm_xen_host_close(host);
    return ret;
}

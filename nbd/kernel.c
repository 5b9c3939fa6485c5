/* SPDX-License-Identifier: MIT */
/* The kernel's /dev/nbdN attached to an export served here (nbd/kernel.h). */
#define RM_LOG_PREFIX "nbd"
#include "nbd/kernel.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/nbd.h>

#include "common/log.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

struct rm_nbd_kernel {
    int dev_fd;
    int sv[2];              /* [0] the kernel's end, [1] ours */
    char *dev;
    pthread_t th;
    bool running;
    int do_it_rc;
};

static void *do_it_main(void *arg)
{
    struct rm_nbd_kernel *k = arg;

    /* returns when the device is disconnected (or the socket closes) */
    k->do_it_rc = ioctl(k->dev_fd, NBD_DO_IT) ? -errno : 0;
    return NULL;
}

int rm_nbd_kernel_attach(struct rm_nbd_kernel **out, const char *dev,
                         struct rm_nbd_export *e, int *serve_fd,
                         struct rm_error *err)
{
    struct rm_nbd_kernel *k = calloc(1, sizeof(*k));
    uint64_t size = rm_nbd_export_size(e);
    unsigned long flags = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH |
                          NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM;
    int rc = 0;

    *out = NULL;
    if (!k || !(k->dev = strdup(dev))) {
        free(k);
        return rm_error_set(err, -ENOMEM, "out of memory");
    }
    k->sv[0] = k->sv[1] = -1;
    k->dev_fd = open(dev, O_RDWR | O_CLOEXEC);
    if (k->dev_fd < 0) {
        rc = rm_error_set(err, -errno, "cannot open %s: %s%s", dev,
                          strerror(errno), errno == ENOENT
                              ? " (is the nbd module loaded? modprobe nbd)"
                              : "");
        goto out;
    }
    if (mlockall(MCL_CURRENT | MCL_FUTURE))
        LOG_WARN("mlockall: %s: the server's memory may be reclaimed while "
                 "the device it serves waits on it", strerror(errno));
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, k->sv)) {
        rc = rm_error_set(err, -errno, "socketpair: %s", strerror(errno));
        goto out;
    }
    if (ioctl(k->dev_fd, NBD_SET_BLKSIZE, (unsigned long)RM_NBD_BLOCK) ||
        ioctl(k->dev_fd, NBD_SET_SIZE_BLOCKS,
              (unsigned long)(size / RM_NBD_BLOCK)) ||
        ioctl(k->dev_fd, NBD_SET_FLAGS, flags) ||
        ioctl(k->dev_fd, NBD_SET_SOCK, (unsigned long)k->sv[0])) {
        rc = rm_error_set(err, -errno, "configuring %s: %s%s", dev,
                          strerror(errno), errno == EBUSY
                              ? " (the device is in use: another server?)"
                              : "");
        goto out;
    }
    rc = -pthread_create(&k->th, NULL, do_it_main, k);
    if (rc) {
        rm_error_set(err, rc, "starting %s: %s", dev, strerror(-rc));
        ioctl(k->dev_fd, NBD_CLEAR_SOCK);
        goto out;
    }
    k->running = true;
    *serve_fd = k->sv[1];
    LOG_INFO("%s attached: %" PRIu64 " bytes", dev, size);
out:
    if (rc) {
        rm_nbd_kernel_detach(k);
        return rc;
    }
    *out = k;
    return 0;
}

int rm_nbd_kernel_serving_thread(struct rm_error *err)
{
    if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0))
        return rm_error_set(err, -errno, "PR_SET_IO_FLUSHER: %s",
                            strerror(errno));
    return 0;
}

void rm_nbd_kernel_detach(struct rm_nbd_kernel *k)
{
    if (!k)
        return;
    if (k->running) {
        ioctl(k->dev_fd, NBD_DISCONNECT);
        /* our end closed: the kernel's thread sees the connection end */
        if (k->sv[1] >= 0)
            shutdown(k->sv[1], SHUT_RDWR);
        pthread_join(k->th, NULL);
        ioctl(k->dev_fd, NBD_CLEAR_SOCK);
        LOG_INFO("%s detached", k->dev);
    }
    if (k->sv[0] >= 0)
        close(k->sv[0]);
    if (k->sv[1] >= 0)
        close(k->sv[1]);
    if (k->dev_fd >= 0)
        close(k->dev_fd);
    free(k->dev);
    free(k);
}

/* SPDX-License-Identifier: MIT */
/*
 * What remus reads of a guest's xl config file itself (the toolstack
 * reads the rest when it builds a domain from it): the guest's name.
 */
#ifndef REMUS_BACKENDS_XEN_XL_CONFIG_H
#define REMUS_BACKENDS_XEN_XL_CONFIG_H

#include <stddef.h>

#include "common/err.h"

/*
 * The value of the first `name = "..."` (or '...') line of the xl config
 * @path into @name (@len bytes with the NUL); blanks around the name and
 * the '=' are allowed, an empty name or one that does not fit is skipped.
 * 0; -errno naming @path when it cannot be read; -ENOENT when it has no
 * such line (the message says to give --name).
 */
int rm_xl_config_name(const char *path, char *name, size_t len,
                      struct rm_error *err);

#endif

/* SPDX-License-Identifier: MIT */
/* The guest's name from its xl config (backends/xen/xl_config.h). */
#include "backends/xen/xl_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *skip_blanks(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

/* The quoted value of a `name = "..."` line into @name, or false. */
static bool name_line(const char *line, char *name, size_t len)
{
    const char *p = skip_blanks(line), *q;

    if (strncmp(p, "name", 4))
        return false;
    p = skip_blanks(p + 4);
    if (*p++ != '=')
        return false;
    p = skip_blanks(p);
    if (*p != '"' && *p != '\'')
        return false;
    q = strchr(p + 1, *p);
    if (!q || q == p + 1 || (size_t)(q - p - 1) >= len)
        return false;
    memcpy(name, p + 1, (size_t)(q - p - 1));
    name[q - p - 1] = '\0';
    return true;
}

int rm_xl_config_name(const char *path, char *name, size_t len,
                      struct rm_error *err)
{
    char line[512];
    FILE *f = fopen(path, "re");
    bool found = false;

    if (!f)
        return rm_error_set(err, -errno, "cannot read '%s': %s", path,
                            strerror(errno));
    while (!found && fgets(line, sizeof(line), f))
        found = name_line(line, name, len);
    fclose(f);
    if (!found)
        return rm_error_set(err, -ENOENT, "'%s' has no name = \"...\" line: "
                            "give --name", path);
    return 0;
}

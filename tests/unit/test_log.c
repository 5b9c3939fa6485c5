/* SPDX-License-Identifier: MIT */
/* The logger's journal priorities (common/log.h): "<3>" ... when the sink
 * is the stream $JOURNAL_STREAM names, nothing otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define RM_LOG_PREFIX "tlog"
#include "common/log.h"

/* Set $JOURNAL_STREAM to @f's device and inode, plus @ino_off. */
static void name_journal(FILE *f, long long ino_off)
{
    struct stat st;
    char v[64];

    assert_int_equal(fstat(fileno(f), &st), 0);
    snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (unsigned long long)ino_off);
    assert_int_equal(setenv("JOURNAL_STREAM", v, 1), 0);
}

/* Log one line per level into a fresh sink; return what was written. */
static char *log_all(FILE *f)
{
    static char buf[2048];
    size_t n;

    rm_log_init(RM_LOG_DEBUG, f);
    LOG_ERR("e %d", 1);
    LOG_WARN("w");
    LOG_INFO("i");
    LOG_DBG("d");
    fflush(f);
    rewind(f);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    rm_log_init(RM_LOG_INFO, NULL);
    return buf;
}

static int line_starts(const char *text, const char *want)
{
    const char *p = text;

    for (; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        if (!strncmp(p, want, strlen(want)))
            return 1;
    return 0;
}

static void test_journal_priorities(void **state)
{
    FILE *f = tmpfile();
    char *out;

    (void)state;
    assert_non_null(f);
    name_journal(f, 0);
    assert_true(rm_log_is_journal(fileno(f)));
    out = log_all(f);
    assert_true(line_starts(out, "<3>remus["));
    assert_non_null(strstr(out, "tlog: error: e 1\n"));
    assert_true(line_starts(out, "<4>remus["));
    assert_true(line_starts(out, "<6>remus["));
    assert_true(line_starts(out, "<7>remus["));
    fclose(f);
    unsetenv("JOURNAL_STREAM");
}

/* Another file than the one named (stderr redirected under the unit), a
 * value that does not parse, no variable: no priorities. */
static void test_not_journal(void **state)
{
    static const char *const bad[] = { "", "12", "1:2:3", "a:b", "1:2x" };
    FILE *f = tmpfile();
    size_t i;
    char *out;

    (void)state;
    assert_non_null(f);
    name_journal(f, 1);
    assert_false(rm_log_is_journal(fileno(f)));
    out = log_all(f);
    assert_false(strchr(out, '<'));
    assert_true(line_starts(out, "remus["));
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("JOURNAL_STREAM", bad[i], 1);
        assert_false(rm_log_is_journal(fileno(f)));
    }
    unsetenv("JOURNAL_STREAM");
    assert_false(rm_log_is_journal(fileno(f)));
    fclose(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_journal_priorities),
        cmocka_unit_test(test_not_journal),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}

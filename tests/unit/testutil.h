/* testutil.h - helpers shared by the Check unit tests. */
#ifndef CM_TESTUTIL_H
#define CM_TESTUTIL_H

#include <check.h>

#include "cmproto.h"

/* A fixed "now" for tests: 2026-01-01T00:00:00Z. */
#define CM_TEST_NOW (G_GINT64_CONSTANT(1767225600) * CM_USEC_PER_SEC)

/* Fails the test with the GError's message when error is set. */
#define cm_assert_no_error(err)                                                                    \
    ck_assert_msg((err) == NULL, "unexpected error: %s", (err) ? (err)->message : "")
/* Asserts error is set with the given CM_PROTO_ERROR code, then clears it. */
#define cm_assert_error(errp, want)                                                                \
    do {                                                                                           \
        ck_assert_msg(*(errp) != NULL, "expected error code %d, got none", (int)(want));          \
        ck_assert_msg(g_error_matches(*(errp), CM_PROTO_ERROR, (want)),                            \
                      "expected error code %d, got %d: %s", (int)(want), (*(errp))->code,          \
                      (*(errp))->message);                                                         \
        g_clear_error(errp);                                                                       \
    } while (0)

/* A fresh temporary directory (removed by cm_test_rmdir). */
char *cm_test_tmpdir(void);
void cm_test_rmdir(const char *dir);
/* Writes data to dir/name and returns the full path. */
char *cm_test_write(const char *dir, const char *name, const void *data, size_t len);
/* The openssl command line tool (OPENSSL_BIN or "openssl"). */
const char *cm_test_openssl(void);
/* Runs argv (NULL-terminated); returns the exit status, stdout/stderr in
 * *out / *err when given. */
int cm_test_run(const char *const *argv, char **out, char **err);
/* Runs a suite with CK_NORMAL output and returns the process exit code. */
int cm_test_main(Suite *s);

#endif

/* testutil.c - helpers shared by the Check unit tests. */
#include "testutil.h"

#include <stdlib.h>

char *
cm_test_tmpdir(void)
{
    GError *error = NULL;
    char *dir = g_dir_make_tmp("cmlab-test-XXXXXX", &error);
    if (dir == NULL)
        g_error("cannot make a temporary directory: %s", error->message);
    return dir;
}

void
cm_test_rmdir(const char *dir)
{
    const char *argv[] = {"rm", "-rf", dir, NULL};
    if (dir != NULL)
        (void)cm_test_run(argv, NULL, NULL);
}

char *
cm_test_write(const char *dir, const char *name, const void *data, size_t len)
{
    GError *error = NULL;
    char *path = g_build_filename(dir, name, NULL);
    if (!g_file_set_contents(path, data, (gssize)len, &error))
        g_error("cannot write %s: %s", path, error->message);
    return path;
}

const char *
cm_test_openssl(void)
{
    const char *bin = g_getenv("OPENSSL_BIN");
    return (bin != NULL && *bin != '\0') ? bin : "openssl";
}

int
cm_test_run(const char *const *argv, char **out, char **err)
{
    GError *error = NULL;
    int status = -1;
    char *o = NULL, *e = NULL;

    if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL, &o, &e,
                      &status, &error)) {
        g_printerr("cannot run %s: %s\n", argv[0], error->message);
        g_clear_error(&error);
        return -1;
    }
    if (out != NULL)
        *out = o;
    else
        g_free(o);
    if (err != NULL)
        *err = e;
    else
        g_free(e);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int
cm_test_main(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

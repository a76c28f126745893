/* replay.c - runs a fuzz target over every file of its corpus, so that
 * `make check` replays the corpora without libFuzzer.  The corpus is
 * $top_srcdir/tests/fuzz/corpus/<name>, where the program is fuzz-<name>;
 * arguments, when given, are files or folders to replay instead. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
replay_file(const char *path)
{
    char *data = NULL;
    gsize len = 0;
    GError *error = NULL;

    if (!g_file_get_contents(path, &data, &len, &error)) {
        fprintf(stderr, "replay: %s\n", error->message);
        g_error_free(error);
        return 1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    g_free(data);
    return 0;
}

static int
replay_path(const char *path, unsigned *count)
{
    GDir *dir;
    const char *name;
    int rc = 0;

    if (!g_file_test(path, G_FILE_TEST_IS_DIR)) {
        (*count)++;
        return replay_file(path);
    }
    dir = g_dir_open(path, 0, NULL);
    if (dir == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return 1;
    }
    while ((name = g_dir_read_name(dir)) != NULL) {
        char *p = g_build_filename(path, name, NULL);
        rc |= replay_path(p, count);
        g_free(p);
    }
    g_dir_close(dir);
    return rc;
}

int
main(int argc, char **argv)
{
    unsigned count = 0;
    int rc = 0;

    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            rc |= replay_path(argv[i], &count);
    } else {
        const char *top = getenv("top_srcdir");
        char *base = g_path_get_basename(argv[0]);
        const char *name = g_str_has_prefix(base, "fuzz-") ? base + 5 : base;
        char *corpus = g_build_filename(top ? top : ".", "tests", "fuzz", "corpus", name, NULL);
        if (!g_file_test(corpus, G_FILE_TEST_IS_DIR)) {
            fprintf(stderr, "replay: no corpus at %s\n", corpus);
            rc = 1;
        } else {
            rc = replay_path(corpus, &count);
        }
        g_free(corpus);
        g_free(base);
    }
    printf("replayed %u inputs\n", count);
    if (rc == 0 && count == 0) {
        fprintf(stderr, "replay: the corpus is empty\n");
        rc = 1;
    }
    return rc;
}

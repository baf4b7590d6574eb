/*
 * log-env: an exec hook in C (wasm32-wasi, WASI preview 1).
 *
 *   command: ["log-env.wasm", "[file]", "[words]"...]
 *
 * Prints its argv and the WASMHOOK_* environment variables on stdout (captured as the hook's
 * output). With a [file] argument it also appends one line to that file, which must be in a
 * volume mount of the container (hooks see no other files):
 *
 *   <WASMHOOK_HOOK> <WASMHOOK_POD>/<WASMHOOK_CONTAINER> argc=<n>[ <words>...]
 *
 * Exit codes: 0 ok; 2 WASMHOOK_HOOK is not set (not running as a wasmhook hook); 1 the file
 * cannot be opened or written (reason on stderr).
 *
 * Build: clang --target=wasm32-wasi -O2 -s log-env.c -o log-env.wasm
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static const char *env_or(const char *name, const char *fallback) {
    const char *v = getenv(name);
    return v ? v : fallback;
}

int main(int argc, char **argv) {
    for (int i = 0; i < argc; i++) {
        printf("argv[%d]=%s\n", i, argv[i]);
    }
    for (char **e = environ; *e != NULL; e++) {
        if (strncmp(*e, "WASMHOOK_", 9) == 0) {
            printf("%s\n", *e);
        }
    }
    fflush(stdout);

    const char *hook = getenv("WASMHOOK_HOOK");
    if (hook == NULL) {
        fprintf(stderr, "error: WASMHOOK_HOOK is not set: not running as a wasmhook hook\n");
        return 2;
    }
    if (argc < 2) {
        return 0;
    }

    const char *path = argv[1];
    FILE *f = fopen(path, "a");
    if (f == NULL) {
        fprintf(stderr, "error: opening %s: %s (is its directory a volume mount?)\n", path,
                strerror(errno));
        return 1;
    }
    fprintf(f, "%s %s/%s argc=%d", hook, env_or("WASMHOOK_POD", "?"),
            env_or("WASMHOOK_CONTAINER", "?"), argc);
    for (int i = 2; i < argc; i++) {
        fprintf(f, " %s", argv[i]);
    }
    fputc('\n', f);
    if (ferror(f) | fclose(f)) {
        fprintf(stderr, "error: writing %s: %s\n", path, strerror(errno));
        return 1;
    }
    printf("appended a line to %s\n", path);
    return 0;
}

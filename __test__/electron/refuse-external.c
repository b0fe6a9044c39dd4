/*
 * Makes the addon see what Electron's V8 memory cage answers: every request
 * for an ArrayBuffer or Buffer over memory the addon owns is refused with
 * napi_no_external_buffers_allowed, so napi-rs takes its copying fallback.
 * The addon reaches these two through this library (patchelf --add-needed,
 * dlopen with RTLD_DEEPBIND); every other napi_* symbol still comes from Node.
 * Each refusal is counted, and the count written at exit to $SOT_REFUSALS_FILE.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define NAPI_NO_EXTERNAL_BUFFERS_ALLOWED 22

static long refusals;

int napi_create_external_arraybuffer(void *env, void *data, size_t length, void *finalize, void *hint, void **result) {
  (void)env; (void)data; (void)length; (void)finalize; (void)hint; (void)result;
  refusals++;
  return NAPI_NO_EXTERNAL_BUFFERS_ALLOWED;
}

int napi_create_external_buffer(void *env, size_t length, void *data, void *finalize, void *hint, void **result) {
  (void)env; (void)data; (void)length; (void)finalize; (void)hint; (void)result;
  refusals++;
  return NAPI_NO_EXTERNAL_BUFFERS_ALLOWED;
}

__attribute__((destructor)) static void report(void) {
  const char *path = getenv("SOT_REFUSALS_FILE");
  FILE *f = path ? fopen(path, "w") : NULL;
  if (f) {
    fprintf(f, "%ld\n", refusals);
    fclose(f);
  }
}

// Loads the patched addon (see refuse-external.c) with RTLD_DEEPBIND, so that
// its own dependencies, the refusing library first, resolve its symbols before
// Node does. The generated loader requires this file through
// NAPI_RS_NATIVE_LIBRARY_PATH, so the library's whole API goes through it.
const { constants } = require('node:os');
process.dlopen(module, process.env.SOT_PATCHED_ADDON, constants.dlopen.RTLD_NOW | constants.dlopen.RTLD_DEEPBIND);

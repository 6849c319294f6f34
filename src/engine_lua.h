/*
 * engine_lua: the Lua 5.4 sandbox behind script rules: one state per rule,
 * base/string/table/math/utf8 only, an instruction budget and a memory cap.
 * Internal to rules and engine; never logs (script texts may hold row data).
 */
#ifndef PGSENSE_ENGINE_LUA_H_INCLUDED
#define PGSENSE_ENGINE_LUA_H_INCLUDED

#include <stddef.h>

#define ENGINE_LUA_BUDGET      1000000u            /* VM instructions per detect() call */
#define ENGINE_LUA_MEM_CAP     (16u * 1024 * 1024) /* bytes per state */
#define ENGINE_LUA_MAX_RESULTS 10000               /* strings taken from one result */

typedef enum {
    ENGINE_LUA_OK,
    ENGINE_LUA_BUDGET_EXCEEDED, /* "instruction budget exceeded" */
    ENGINE_LUA_MEMORY,          /* "memory limit exceeded" */
    ENGINE_LUA_RUNTIME,         /* "runtime error" (text dropped) */
} engine_lua_status;

const char *engine_lua_status_name(engine_lua_status st);

typedef struct engine_lua engine_lua;

/*
 * Create a sandbox and run the script's chunk; it must define a global
 * function detect. chunkname appears in syntax error messages (script path).
 * Returns NULL with err filled (syntax errors quote the script, never data).
 */
engine_lua *engine_lua_new(const char *chunkname, const char *src, size_t len, char *err, size_t errlen);
void engine_lua_free(engine_lua *l);

/* Called per returned string found in the value: [start, end). Non-zero stops. */
typedef int (*engine_lua_span_cb)(void *ctx, size_t start, size_t end);

/*
 * Call detect(value) and locate each returned string in value (first
 * occurrence at or after the previous match's end; strings not found are
 * ignored). msg (may be NULL) receives Lua's error text: for the dry run only.
 */
engine_lua_status engine_lua_detect(engine_lua *l, const char *value, size_t len, engine_lua_span_cb cb,
                                    void *ctx, char *msg, size_t msglen);

#endif /* PGSENSE_ENGINE_LUA_H_INCLUDED */

/*
 * engine_lua: sandboxed Lua 5.4 states for script rules. Each state has its
 * own allocator with a cap and a count hook enforcing an instruction budget;
 * every call into Lua is protected so a script can never abort the process.
 */
#include "engine_lua.h"

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HOOK_STEP 1000u /* instructions between budget checks */

struct engine_lua {
    lua_State *L;
    size_t mem_used;
    bool mem_refused;     /* the allocator said no during this call */
    size_t budget_left;   /* instructions left in this call */
    bool budget_exceeded; /* sticky until the next call starts */
    char *chunkname;      /* "@path", kept to rebuild the state */
    char *src;
    size_t len;
};

const char *engine_lua_status_name(engine_lua_status st)
{
    switch (st) {
    case ENGINE_LUA_OK:
        return "ok";
    case ENGINE_LUA_BUDGET_EXCEEDED:
        return "instruction budget exceeded";
    case ENGINE_LUA_MEMORY:
        return "memory limit exceeded";
    case ENGINE_LUA_RUNTIME:
        break;
    }
    return "runtime error";
}

static void *sandbox_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    engine_lua *l = ud;
    size_t old = ptr != NULL ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        l->mem_used -= old;
        return NULL;
    }
    if (nsize > old && l->mem_used - old + nsize > ENGINE_LUA_MEM_CAP) {
        l->mem_refused = true;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL) {
        l->mem_refused = true;
        return NULL;
    }
    l->mem_used = l->mem_used - old + nsize;
    return p;
}

/*
 * Count hook. Once the budget is spent it fires on every instruction, so a
 * script that catches the error with pcall cannot keep running: each level
 * it unwinds to errors again at its next instruction.
 */
static void sandbox_hook(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    void *ud = NULL;
    (void)lua_getallocf(L, &ud);
    engine_lua *l = ud;
    if (!l->budget_exceeded && l->budget_left > HOOK_STEP) {
        l->budget_left -= HOOK_STEP;
        return;
    }
    if (!l->budget_exceeded) {
        l->budget_exceeded = true;
        lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, 1);
    }
    luaL_error(L, "instruction budget exceeded");
}

static void budget_start(engine_lua *l)
{
    l->budget_left = ENGINE_LUA_BUDGET;
    l->budget_exceeded = false;
    l->mem_refused = false;
    lua_sethook(l->L, sandbox_hook, LUA_MASKCOUNT, (int)HOOK_STEP);
}

/* Opens the allowed libraries and removes what reaches files or code loading. */
static int sandbox_setup(lua_State *L)
{
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},       {LUA_STRLIBNAME, luaopen_string}, {LUA_TABLIBNAME, luaopen_table},
        {LUA_MATHLIBNAME, luaopen_math}, {LUA_UTF8LIBNAME, luaopen_utf8},
    };
    static const char *const drop[] = {"dofile",         "loadfile", "load", "loadstring", "require",
                                       "collectgarbage", "print",    "warn", "module"};
    for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 1);
        lua_pop(L, 1);
    }
    for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
        lua_pushnil(L);
        lua_setglobal(L, drop[i]);
    }
    lua_getglobal(L, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);
    return 0;
}

static void copy_msg(lua_State *L, char *msg, size_t msglen)
{
    if (msg == NULL || msglen == 0)
        return;
    const char *s = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    snprintf(msg, msglen, "%s", s != NULL ? s : "error object is not a string");
}

/* Whether the global detect is a function; protected (_G may have metamethods). */
static int sandbox_has_detect(lua_State *L)
{
    lua_pushboolean(L, lua_getglobal(L, "detect") == LUA_TFUNCTION);
    return 1;
}

/* Builds l->L from l->src; 0, or -1 with err. */
static int sandbox_build(engine_lua *l, char *err, size_t errlen)
{
    l->mem_used = 0;
    l->L = lua_newstate(sandbox_alloc, l);
    if (l->L == NULL) {
        snprintf(err, errlen, "cannot create a Lua state (out of memory)");
        return -1;
    }
    lua_State *L = l->L;
    budget_start(l);
    lua_pushcfunction(L, sandbox_setup);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
        snprintf(err, errlen, "cannot set up the Lua sandbox");
        goto fail;
    }
    int rc = luaL_loadbufferx(L, l->src, l->len, l->chunkname, "t");
    if (rc != LUA_OK) {
        char m[300];
        copy_msg(L, m, sizeof(m));
        snprintf(err, errlen, "%s",
                 rc == LUA_ERRSYNTAX ? m : "cannot load the script (memory limit exceeded)");
        goto fail;
    }
    rc = lua_pcall(L, 0, 0, 0);
    if (rc != LUA_OK) {
        char m[300];
        copy_msg(L, m, sizeof(m));
        if (l->budget_exceeded)
            snprintf(err, errlen, "instruction budget exceeded while loading the script");
        else if (rc == LUA_ERRMEM || l->mem_refused)
            snprintf(err, errlen, "memory limit exceeded while loading the script");
        else
            snprintf(err, errlen, "%s", m);
        goto fail;
    }
    lua_pushcfunction(L, sandbox_has_detect);
    if (lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_toboolean(L, -1)) {
        snprintf(err, errlen, "the script defines no function detect(value)");
        goto fail;
    }
    lua_settop(L, 0);
    return 0;

fail:
    l->budget_exceeded = true; /* finalizers run by lua_close stop at once */
    lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, 1);
    lua_close(L);
    l->L = NULL;
    return -1;
}

engine_lua *engine_lua_new(const char *chunkname, const char *src, size_t len, char *err, size_t errlen)
{
    engine_lua *l = calloc(1, sizeof(*l));
    if (l == NULL)
        goto oom;
    size_t cl = strlen(chunkname);
    l->chunkname = malloc(cl + 2);
    l->src = malloc(len + 1);
    if (l->chunkname == NULL || l->src == NULL)
        goto oom;
    l->chunkname[0] = '@';
    memcpy(l->chunkname + 1, chunkname, cl + 1);
    memcpy(l->src, src, len);
    l->src[len] = '\0';
    l->len = len;
    if (sandbox_build(l, err, errlen) != 0)
        goto fail;
    return l;

oom:
    snprintf(err, errlen, "out of memory");
fail:
    engine_lua_free(l);
    return NULL;
}

void engine_lua_free(engine_lua *l)
{
    if (l == NULL)
        return;
    if (l->L != NULL) {
        l->budget_exceeded = true;
        lua_sethook(l->L, sandbox_hook, LUA_MASKCOUNT, 1);
        lua_close(l->L);
    }
    free(l->chunkname);
    free(l->src);
    free(l);
}

typedef struct {
    const char *value;
    size_t len;
} call_args;

/* Runs in protected mode: everything here may allocate and so raise. */
static int sandbox_call(lua_State *L)
{
    const call_args *a = lua_touserdata(L, 1);
    lua_getglobal(L, "detect");
    lua_pushlstring(L, a->value, a->len);
    lua_call(L, 1, 1);
    return 1;
}

engine_lua_status engine_lua_detect(engine_lua *l, const char *value, size_t len, engine_lua_span_cb cb,
                                    void *ctx, char *msg, size_t msglen)
{
    engine_lua_status st = ENGINE_LUA_OK;
    if (l->L == NULL) {
        /* rebuilt after a memory error; the script passed its dry run before */
        char err[64];
        if (sandbox_build(l, err, sizeof(err)) != 0)
            return ENGINE_LUA_RUNTIME;
    }
    lua_State *L = l->L;
    call_args a = {value, len};
    budget_start(l);
    lua_settop(L, 0);
    lua_pushcfunction(L, sandbox_call);
    lua_pushlightuserdata(L, &a);
    int rc = lua_pcall(L, 1, 1, 0);
    if (rc != LUA_OK) {
        copy_msg(L, msg, msglen);
        if (l->budget_exceeded)
            st = ENGINE_LUA_BUDGET_EXCEEDED;
        else if (rc == LUA_ERRMEM || l->mem_refused)
            st = ENGINE_LUA_MEMORY;
        else
            st = ENGINE_LUA_RUNTIME;
        goto done;
    }
    int t = lua_type(L, -1);
    if (t == LUA_TNIL)
        goto done;
    if (t != LUA_TTABLE) {
        if (msg != NULL && msglen > 0)
            snprintf(msg, msglen, "detect returned a %s, not a table", lua_typename(L, t));
        st = ENGINE_LUA_RUNTIME;
        goto done;
    }
    /* Only raw reads of strings below: none of them allocates or runs Lua. */
    size_t pos = 0;
    lua_Unsigned n = lua_rawlen(L, -1);
    if (n > ENGINE_LUA_MAX_RESULTS)
        n = ENGINE_LUA_MAX_RESULTS;
    for (lua_Unsigned i = 1; i <= n; i++) {
        if (lua_rawgeti(L, -1, (lua_Integer)i) == LUA_TSTRING) {
            size_t sl = 0;
            const char *s = lua_tolstring(L, -1, &sl);
            const char *hit = sl > 0 && pos < len ? memmem(value + pos, len - pos, s, sl) : NULL;
            if (hit != NULL) {
                size_t start = (size_t)(hit - value);
                pos = start + sl;
                if (cb(ctx, start, pos) != 0) {
                    lua_pop(L, 1);
                    break;
                }
            }
        }
        lua_pop(L, 1);
    }

done:
    lua_settop(L, 0);
    if (st == ENGINE_LUA_MEMORY) {
        /* What the script kept reachable may hold the state at its cap: start afresh. */
        l->budget_exceeded = true;
        lua_sethook(L, sandbox_hook, LUA_MASKCOUNT, 1);
        lua_close(L);
        l->L = NULL;
    }
    return st;
}

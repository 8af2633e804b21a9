/*
 * json.c - the JSON value writer (public lfpool_json_* calls).
 *
 * Owns: a growable text buffer and a nesting stack that make misuse
 * impossible to turn into malformed output.  Invariant: the buffer always
 * holds a prefix of valid JSON that closing the open containers completes
 * (what lfpool_json_hook() does after a hook).
 * Hooks write through lfpool_json_hook(), which isolates them: whatever a
 * hook does (fails, writes nothing, writes two values, leaves containers
 * open, misuses keys), exactly one valid value lands in the output.
 */
#include "internal.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64
enum { K_OBJECT = 1, K_ARRAY = 2 };

void lfpool_json_init(struct lfpool_json *j)
{
    memset(j, 0, sizeof *j);
}

void lfpool_json_fini(struct lfpool_json *j)
{
    free(j->buf);
    j->buf = NULL;
}

static int put(struct lfpool_json *j, const char *s, size_t n)
{
    if (j->nomem)
        return ENOMEM;
    if (j->len + n + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 256;
        while (cap < j->len + n + 1)
            cap *= 2;
        char *b = realloc(j->buf, cap);
        if (!b) {
            j->nomem = true;
            return ENOMEM;
        }
        j->buf = b;
        j->cap = cap;
    }
    memcpy(j->buf + j->len, s, n);
    j->len += n;
    j->buf[j->len] = '\0';
    return 0;
}

static int misuse(struct lfpool_json *j)
{
    if (j->in_hook)
        j->failed = true;
    return EINVAL;
}

/* Before writing a value: check it is allowed here, write a comma. */
static int before_value(struct lfpool_json *j)
{
    if (!j || j->failed)
        return EINVAL;
    int d = j->depth;
    if (j->in_hook && d == j->base) {
        if (j->base_values > 0)
            return misuse(j);
        j->base_values++;
        return 0;
    }
    if (d == 0) {
        if (j->len > 0)
            return misuse(j);
        return 0;
    }
    if (j->kind[d] == K_OBJECT) {
        if (!j->key_pending[d])
            return misuse(j);
        j->key_pending[d] = false;
        return 0;
    }
    if (j->need_comma[d] && put(j, ",", 1))
        return ENOMEM;
    j->need_comma[d] = true;
    return 0;
}

static int put_escaped(struct lfpool_json *j, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int r = put(j, "\"", 1);
    size_t i = 0;
    while (!r && i < n) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            char e[2] = {'\\', (char)ch};
            r = put(j, e, 2);
            i++;
        } else if (ch < 0x20) {
            char e[6] = {'\\', 'u', '0', '0', hex[ch >> 4], hex[ch & 15]};
            if (ch == '\n') r = put(j, "\\n", 2);
            else if (ch == '\t') r = put(j, "\\t", 2);
            else if (ch == '\r') r = put(j, "\\r", 2);
            else r = put(j, e, 6);
            i++;
        } else if (ch < 0x80) {
            size_t k = i;
            while (k < n && (unsigned char)s[k] >= 0x20 && (unsigned char)s[k] < 0x80 &&
                   s[k] != '"' && s[k] != '\\')
                k++;
            r = put(j, s + i, k - i);
            i = k;
        } else {
            /* validate one UTF-8 sequence; replace an invalid byte by U+FFFD */
            size_t len = ch >= 0xf0 && ch <= 0xf4 ? 4 : ch >= 0xe0 ? 3 : ch >= 0xc2 && ch <= 0xdf ? 2 : 0;
            bool ok = len > 0 && i + len <= n;
            for (size_t k = 1; ok && k < len; k++)
                ok = ((unsigned char)s[i + k] & 0xc0) == 0x80;
            if (ok && len == 3) {
                unsigned char c1 = (unsigned char)s[i + 1];
                ok = !(ch == 0xe0 && c1 < 0xa0) && !(ch == 0xed && c1 >= 0xa0);
            }
            if (ok && len == 4) {
                unsigned char c1 = (unsigned char)s[i + 1];
                ok = !(ch == 0xf0 && c1 < 0x90) && !(ch == 0xf4 && c1 >= 0x90);
            }
            if (ok) {
                r = put(j, s + i, len);
                i += len;
            } else {
                r = put(j, "\\ufffd", 6);
                i++;
            }
        }
    }
    return r ? r : put(j, "\"", 1);
}

static int open_c(struct lfpool_json *j, int kind)
{
    int r = before_value(j);
    if (r)
        return r;
    if (j->depth + 1 >= JSON_MAX_DEPTH)
        return misuse(j);
    r = put(j, kind == K_OBJECT ? "{" : "[", 1);
    if (r)
        return r;
    j->depth++;
    j->kind[j->depth] = (uint8_t)kind;
    j->need_comma[j->depth] = false;
    j->key_pending[j->depth] = false;
    return 0;
}

static int close_c(struct lfpool_json *j, int kind)
{
    if (!j || j->failed)
        return EINVAL;
    int d = j->depth;
    if (d == 0 || (j->in_hook && d <= j->base) || j->kind[d] != kind || j->key_pending[d])
        return misuse(j);
    int r = put(j, kind == K_OBJECT ? "}" : "]", 1);
    if (r)
        return r;
    j->depth--;
    return 0;
}

int lfpool_json_begin_object(struct lfpool_json *j) { return j ? open_c(j, K_OBJECT) : EINVAL; }
int lfpool_json_end_object(struct lfpool_json *j) { return close_c(j, K_OBJECT); }
int lfpool_json_begin_array(struct lfpool_json *j) { return j ? open_c(j, K_ARRAY) : EINVAL; }
int lfpool_json_end_array(struct lfpool_json *j) { return close_c(j, K_ARRAY); }

int lfpool_json_key(struct lfpool_json *j, const char *key)
{
    if (!j || j->failed || !key)
        return j && key == NULL ? misuse(j) : EINVAL;
    int d = j->depth;
    if (d == 0 || (j->in_hook && d <= j->base) || j->kind[d] != K_OBJECT || j->key_pending[d])
        return misuse(j);
    if (j->need_comma[d] && put(j, ",", 1))
        return ENOMEM;
    j->need_comma[d] = true;
    int r = put_escaped(j, key, strlen(key));
    if (!r)
        r = put(j, ":", 1);
    if (!r)
        j->key_pending[d] = true;
    return r;
}

int lfpool_json_string_len(struct lfpool_json *j, const char *s, size_t len)
{
    if (j && !s)
        return misuse(j);
    int r = before_value(j);
    return r ? r : put_escaped(j, s, len);
}

int lfpool_json_string(struct lfpool_json *j, const char *s)
{
    return lfpool_json_string_len(j, s, s ? strlen(s) : 0);
}

int lfpool_json_integer(struct lfpool_json *j, int64_t v)
{
    char b[32];
    int r = before_value(j);
    if (r)
        return r;
    int n = snprintf(b, sizeof b, "%" PRId64, v);
    return put(j, b, (size_t)n);
}

int lfpool_json_number(struct lfpool_json *j, double v)
{
    char b[40];
    int r = before_value(j);
    if (r)
        return r;
    if (!isfinite(v))
        return put(j, "null", 4);
    int n = snprintf(b, sizeof b, "%.17g", v);
    return put(j, b, (size_t)n);
}

int lfpool_json_bool(struct lfpool_json *j, bool v)
{
    int r = before_value(j);
    return r ? r : (v ? put(j, "true", 4) : put(j, "false", 5));
}

int lfpool_json_null(struct lfpool_json *j)
{
    int r = before_value(j);
    return r ? r : put(j, "null", 4);
}

/* Let `fn` write one value at the current position.  The position must
 * accept a value (after a key, in an array).  Returns 0, or ENOMEM. */
int lfpool_json_hook(struct lfpool_json *j, lfpool_stats_fn fn, void *ctx, void *obj)
{
    /* consume the outer position ourselves, then give the hook a base level */
    int r = before_value(j);
    if (r)
        return r;
    size_t mark = j->len;
    int depth = j->depth;
    j->in_hook = true;
    j->failed = false;
    j->base = depth;
    j->base_values = 0;
    int hr = fn(ctx, obj, j);
    bool bad = hr != 0 || j->failed || j->base_values == 0;
    if (!bad) {
        /* close whatever the hook left open */
        while (!j->nomem && j->depth > depth) {
            int d = j->depth;
            if (j->kind[d] == K_OBJECT && j->key_pending[d])
                put(j, "null", 4);
            put(j, j->kind[d] == K_OBJECT ? "}" : "]", 1);
            j->depth--;
        }
    }
    j->in_hook = false;
    j->failed = false;
    if (j->nomem)
        return ENOMEM;
    if (bad) {
        j->len = mark;
        if (j->buf)
            j->buf[mark] = '\0';
        j->depth = depth;
        return put(j, "null", 4);
    }
    return 0;
}

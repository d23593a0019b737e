/* grammar_build.c - rules of expressions, lowered to the flat form; the
 * checks every grammar passes; fl_grammar_compile's dispatch (see
 * grammar_build.h and grammar.h). */
#include "grammar/grammar_build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/utf8.h"

void fl_gb_init(fl_gb *b)
{
    memset(b, 0, sizeof *b);
    fl_bytemap_init(&b->by_name, 64);
}

void fl_gb_free(fl_gb *b)
{
    fl_arena_free(&b->arena);
    free(b->names);
    free(b->defs);
    fl_bytemap_free(&b->by_name);
    memset(b, 0, sizeof *b);
}

static int add_rule(fl_gb *b, const char *name, size_t len)
{
    if (b->num_rules == b->cap_rules) {
        b->cap_rules = b->cap_rules ? 2 * b->cap_rules : 64;
        b->names = fl_realloc(b->names, (size_t)b->cap_rules * sizeof *b->names);
        b->defs = fl_realloc(b->defs, (size_t)b->cap_rules * sizeof *b->defs);
    }
    b->names[b->num_rules] = fl_arena_strndup(&b->arena, name, len);
    b->defs[b->num_rules] = NULL;
    return b->num_rules++;
}

int fl_gb_rule(fl_gb *b, const char *name, size_t len)
{
    uint64_t id;
    if (fl_bytemap_get(&b->by_name, name, len, &id))
        return (int)id;
    const int r = add_rule(b, name, len);
    fl_bytemap_put(&b->by_name, name, len, (uint64_t)r);
    return r;
}

int fl_gb_fresh_rule(fl_gb *b, const char *hint)
{
    char name[96];
    const int n = snprintf(name, sizeof name, "%s#%d", hint, b->fresh++);
    return add_rule(b, name, (size_t)n < sizeof name ? (size_t)n : sizeof name - 1);
}

int fl_gb_define(fl_gb *b, int rule, fl_gx *body, fl_error *err)
{
    if (b->defs[rule])
        return fl_fail(err, "rule '%s' is defined twice", b->names[rule]);
    b->defs[rule] = body;
    return 0;
}

/* ---- expressions ---- */

static fl_gx *node(fl_gb *b, fl_gx_kind kind)
{
    fl_gx *e = fl_arena_alloc(&b->arena, sizeof *e);
    e->kind = kind;
    return e;
}

fl_gx *fl_gx_empty(fl_gb *b)
{
    return node(b, FL_GX_EMPTY);
}

fl_gx *fl_gx_byte_range(fl_gb *b, unsigned lo, unsigned hi)
{
    fl_gx *e = node(b, FL_GX_BYTES);
    for (unsigned c = lo; c <= hi && c < 256; c++)
        e->bits[c >> 6] |= (uint64_t)1 << (c & 63);
    return e;
}

fl_gx *fl_gx_seq(fl_gb *b)
{
    return node(b, FL_GX_SEQ);
}

fl_gx *fl_gx_alt(fl_gb *b)
{
    return node(b, FL_GX_ALT);
}

fl_gx *fl_gx_add(fl_gx *parent, fl_gx *kid)
{
    FL_ASSERT(!kid->next && (parent->kind == FL_GX_SEQ || parent->kind == FL_GX_ALT));
    if (parent->last)
        parent->last->next = kid;
    else
        parent->kid = kid;
    parent->last = kid;
    return parent;
}

fl_gx *fl_gx_literal(fl_gb *b, const char *s, size_t n)
{
    fl_gx *seq = fl_gx_seq(b);
    for (size_t i = 0; i < n; i++)
        fl_gx_add(seq, fl_gx_byte_range(b, (unsigned char)s[i], (unsigned char)s[i]));
    return seq;
}

fl_gx *fl_gx_ref(fl_gb *b, int rule)
{
    fl_gx *e = node(b, FL_GX_REF);
    e->rule = rule;
    return e;
}

fl_gx *fl_gx_repeat(fl_gb *b, fl_gx *kid, int min, int max)
{
    FL_ASSERT(min >= 0 && min <= FL_GRAMMAR_MAX_REPEAT && (max == FL_GX_INF || (max >= min && max <= FL_GRAMMAR_MAX_REPEAT)));
    fl_gx *e = node(b, FL_GX_REPEAT);
    e->kid = kid;
    e->min = min;
    e->max = max;
    return e;
}

/* The code points [lo, hi], all of one UTF-8 length, as sequences of byte
 * ranges: split until each piece is a product of per-byte ranges (the
 * bytes after the first vary over whole blocks of 64), then one sequence
 * each. */
static void utf8_span(fl_gb *b, fl_gx *alt, uint32_t lo, uint32_t hi)
{
    char a[4], z[4];
    const int n = fl_utf8_encode(lo, a);
    for (int i = 1; i < n; i++) {
        const uint32_t m = ((uint32_t)1 << (6 * i)) - 1;
        if ((lo & ~m) != (hi & ~m)) {
            if (lo & m) {
                utf8_span(b, alt, lo, lo | m);
                utf8_span(b, alt, (lo | m) + 1, hi);
                return;
            }
            if ((hi & m) != m) {
                utf8_span(b, alt, lo, (hi & ~m) - 1);
                utf8_span(b, alt, hi & ~m, hi);
                return;
            }
        }
    }
    fl_utf8_encode(hi, z);
    fl_gx *seq = fl_gx_seq(b);
    for (int i = 0; i < n; i++)
        fl_gx_add(seq, fl_gx_byte_range(b, (unsigned char)a[i], (unsigned char)z[i]));
    fl_gx_add(alt, seq);
}

static int cmp_range(const void *x, const void *y)
{
    const fl_cp_range *a = x, *b = y;
    return a->lo < b->lo ? -1 : a->lo > b->lo;
}

/* Sorts and merges ranges[n] in place (clamped to FL_CP_MAX); returns the count. */
static int normalize(fl_cp_range *r, int n)
{
    if (n > 1)
        qsort(r, (size_t)n, sizeof *r, cmp_range);
    int m = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].lo > r[i].hi || r[i].lo > FL_CP_MAX)
            continue;
        if (r[i].hi > FL_CP_MAX)
            r[i].hi = FL_CP_MAX;
        if (m && r[i].lo <= r[m - 1].hi + 1) {
            if (r[i].hi > r[m - 1].hi)
                r[m - 1].hi = r[i].hi;
        } else {
            r[m++] = r[i];
        }
    }
    return m;
}

int fl_cp_complement(fl_cp_range *ranges, int n, fl_cp_range *out)
{
    n = normalize(ranges, n);
    int m = 0;
    uint32_t next = 0;
    for (int i = 0; i < n; i++) {
        if (ranges[i].lo > next)
            out[m++] = (fl_cp_range){ next, ranges[i].lo - 1 };
        next = ranges[i].hi + 1;
    }
    if (next <= FL_CP_MAX)
        out[m++] = (fl_cp_range){ next, FL_CP_MAX };
    return m;
}

fl_gx *fl_gx_codepoints(fl_gb *b, const fl_cp_range *ranges, int n)
{
    fl_cp_range *r = fl_malloc(((size_t)n + 1) * sizeof *r);
    if (n)
        memcpy(r, ranges, (size_t)n * sizeof *r);
    n = normalize(r, n);
    fl_gx *alt = fl_gx_alt(b);
    /* single bytes in one set, then each length's spans, surrogates out */
    fl_gx *ascii = fl_gx_byte_range(b, 1, 0);
    static const uint32_t bounds[][2] = { { 0x80, 0x7ff }, { 0x800, 0xd7ff }, { 0xe000, 0xffff }, { 0x10000, FL_CP_MAX } };
    for (int i = 0; i < n; i++) {
        for (uint32_t c = r[i].lo; c <= r[i].hi && c < 0x80; c++)
            ascii->bits[c >> 6] |= (uint64_t)1 << (c & 63);
        for (size_t k = 0; k < sizeof bounds / sizeof bounds[0]; k++) {
            const uint32_t lo = r[i].lo > bounds[k][0] ? r[i].lo : bounds[k][0];
            const uint32_t hi = r[i].hi < bounds[k][1] ? r[i].hi : bounds[k][1];
            if (lo <= hi)
                utf8_span(b, alt, lo, hi);
        }
    }
    free(r);
    if (!alt->kid)
        return ascii;
    if (ascii->bits[0] | ascii->bits[1]) {
        ascii->next = alt->kid; /* first: the common case */
        alt->kid = ascii;
    }
    return alt;
}

/* ---- lowering ---- */

typedef struct lowering {
    fl_gb *b;
    fl_grammar *g;
    int cap_elems, cap_sets, num_alts, cap_alts;
    int *rule_of;        /* [cap_rule_of] the flat rule of a builder rule, or -1 */
    int cap_rule_of;
    fl_gx **bodies;      /* [flat rules] the body to lower */
    int num_flat, cap_flat;
    fl_bytemap sets;     /* 32-byte set -> index */
    fl_error *err;
    int failed;
} lowering;

static int flat_rule(lowering *L, fl_gx *body)
{
    if (L->num_flat == L->cap_flat) {
        L->cap_flat = L->cap_flat ? 2 * L->cap_flat : 64;
        L->bodies = fl_realloc(L->bodies, (size_t)L->cap_flat * sizeof *L->bodies);
    }
    L->bodies[L->num_flat] = body;
    return L->num_flat++;
}

/* The flat rule of builder rule r (queued the first time). */
static int flat_of(lowering *L, int r)
{
    if (r >= L->cap_rule_of) { /* a helper rule made while lowering */
        const int old = L->cap_rule_of;
        L->cap_rule_of = L->b->cap_rules;
        L->rule_of = fl_realloc(L->rule_of, (size_t)L->cap_rule_of * sizeof(int));
        for (int i = old; i < L->cap_rule_of; i++)
            L->rule_of[i] = -1;
    }
    if (L->rule_of[r] < 0) {
        L->rule_of[r] = flat_rule(L, L->b->defs[r]);
        if (!L->b->defs[r] && !L->failed) {
            L->failed = 1;
            fl_fail(L->err, "rule '%s' is used but not defined", L->b->names[r]);
        }
    }
    return L->rule_of[r];
}

static void emit(lowering *L, uint32_t e)
{
    fl_grammar *g = L->g;
    if (g->num_elems >= FL_GRAMMAR_MAX_ELEMS) {
        if (!L->failed)
            fl_fail(L->err, "the grammar is too large (more than %d elements)", FL_GRAMMAR_MAX_ELEMS);
        L->failed = 1;
        return;
    }
    if (g->num_elems == L->cap_elems) {
        L->cap_elems = L->cap_elems ? 2 * L->cap_elems : 1024;
        g->elems = fl_realloc(g->elems, (size_t)L->cap_elems * sizeof *g->elems);
    }
    g->elems[g->num_elems++] = e;
}

static int set_index(lowering *L, const uint64_t bits[4])
{
    uint64_t id;
    if (fl_bytemap_get(&L->sets, bits, 32, &id))
        return (int)id;
    fl_grammar *g = L->g;
    if (g->num_sets == L->cap_sets) {
        L->cap_sets = L->cap_sets ? 2 * L->cap_sets : 64;
        g->sets = fl_realloc(g->sets, (size_t)L->cap_sets * sizeof *g->sets);
    }
    memcpy(g->sets[g->num_sets], bits, 32);
    fl_bytemap_put(&L->sets, bits, 32, (uint64_t)g->num_sets);
    return g->num_sets++;
}

static fl_gx *clone_atom(fl_gb *b, const fl_gx *e)
{
    fl_gx *c = node(b, e->kind);
    memcpy(c->bits, e->bits, sizeof c->bits);
    c->rule = e->rule;
    return c;
}

/* One element standing for e: a byte set or a reference (to e's rule, or
 * to a helper rule whose body is e). */
static fl_gx *as_atom(lowering *L, fl_gx *e)
{
    if (e->kind == FL_GX_BYTES || e->kind == FL_GX_REF)
        return e;
    const int r = fl_gb_fresh_rule(L->b, "group");
    L->b->defs[r] = e;
    return fl_gx_ref(L->b, r);
}

/* x{min,max} as rules: min copies of the atom, then a star rule
 * (s ::= x s | "") or a chain of optionals (o_k ::= x o_(k-1) | "") so the
 * matcher's stacks stay flat (each tail call replaces its frame). */
static fl_gx *lower_repeat(lowering *L, fl_gx *e)
{
    fl_gb *b = L->b;
    fl_gx *x = as_atom(L, e->kid);
    fl_gx *seq = fl_gx_seq(b);
    for (int i = 0; i < e->min; i++)
        fl_gx_add(seq, clone_atom(b, x));
    if (e->max == FL_GX_INF) {
        const int s = fl_gb_fresh_rule(b, "star");
        fl_gx *loop = fl_gx_add(fl_gx_add(fl_gx_seq(b), clone_atom(b, x)), fl_gx_ref(b, s));
        b->defs[s] = fl_gx_add(fl_gx_add(fl_gx_alt(b), loop), fl_gx_empty(b));
        fl_gx_add(seq, fl_gx_ref(b, s));
    } else if (e->max > e->min) {
        int prev = -1;
        for (int k = 1; k <= e->max - e->min; k++) {
            const int o = fl_gb_fresh_rule(b, "upto");
            fl_gx *more = fl_gx_add(fl_gx_seq(b), clone_atom(b, x));
            if (prev >= 0)
                fl_gx_add(more, fl_gx_ref(b, prev));
            b->defs[o] = fl_gx_add(fl_gx_add(fl_gx_alt(b), more), fl_gx_empty(b));
            prev = o;
        }
        fl_gx_add(seq, fl_gx_ref(b, prev));
    }
    return seq;
}

static void lower_item(lowering *L, fl_gx *e)
{
    switch (e->kind) {
    case FL_GX_EMPTY:
        return;
    case FL_GX_BYTES:
        emit(L, FL_G_ELEM(FL_G_BYTES, set_index(L, e->bits)));
        return;
    case FL_GX_REF:
        emit(L, FL_G_ELEM(FL_G_REF, flat_of(L, e->rule)));
        return;
    case FL_GX_SEQ:
        for (fl_gx *k = e->kid; k; k = k->next)
            lower_item(L, k);
        return;
    case FL_GX_ALT:
        emit(L, FL_G_ELEM(FL_G_REF, flat_rule(L, e)));
        return;
    case FL_GX_REPEAT:
        lower_item(L, lower_repeat(L, e));
        return;
    }
}

static void begin_alt(lowering *L)
{
    if (L->num_alts == L->cap_alts) {
        L->cap_alts = L->cap_alts ? 2 * L->cap_alts : 256;
        L->g->alt_start = fl_realloc(L->g->alt_start, (size_t)L->cap_alts * sizeof(int32_t));
    }
    L->g->alt_start[L->num_alts++] = L->g->num_elems;
}

/* A body: each child of an ALT an alternative, anything else one. */
static void lower_body(lowering *L, fl_gx *body)
{
    if (body->kind == FL_GX_ALT) {
        for (fl_gx *k = body->kid; k; k = k->next) {
            begin_alt(L);
            lower_item(L, k);
            emit(L, FL_G_ELEM(FL_G_END, 0));
        }
        return;
    }
    begin_alt(L);
    lower_item(L, body);
    emit(L, FL_G_ELEM(FL_G_END, 0));
}

/* ---- checks on the flat form ---- */

/* Which rules derive the empty string, and which derive any string. */
static void fixpoints(const fl_grammar *g, uint8_t *nullable, uint8_t *productive)
{
    memset(nullable, 0, (size_t)g->num_rules);
    memset(productive, 0, (size_t)g->num_rules);
    /* passes alternate in direction, so a chain of rules in either order
     * settles in one pass */
    for (int changed = 1, pass = 0; changed; pass++) {
        changed = 0;
        for (int i = 0; i < g->num_rules; i++) {
            const int r = pass & 1 ? g->num_rules - 1 - i : i;
            for (int a = g->rule_alts[r]; a < g->rule_alts[r + 1]; a++) {
                int null = 1, prod = 1;
                for (int p = g->alt_start[a]; FL_G_KIND(g->elems[p]) != FL_G_END; p++) {
                    const uint32_t e = g->elems[p];
                    if (FL_G_KIND(e) == FL_G_BYTES) {
                        const uint64_t *s = g->sets[FL_G_ARG(e)];
                        null = 0;
                        prod &= (s[0] | s[1] | s[2] | s[3]) != 0;
                    } else {
                        null &= nullable[FL_G_ARG(e)];
                        prod &= productive[FL_G_ARG(e)];
                    }
                }
                if (null && !nullable[r])
                    nullable[r] = 1, changed = 1;
                if (prod && !productive[r])
                    productive[r] = 1, changed = 1;
            }
        }
    }
}

/* Left recursion: a rule reached again before any byte is consumed, with a
 * frame left to return to on the way (a reference that is not the last of
 * its alternative). Such a cycle grows the stack without bound; a cycle of
 * tail references does not (the matcher replaces the frame). Found as a
 * non-tail edge inside a strongly connected component of the graph "A
 * starts with B, after nullable elements only" (Tarjan's, iterative). */
static int left_recursive(const fl_grammar *g, const uint8_t *nullable)
{
    const int R = g->num_rules;
    /* edges, by rule: (target, is_tail) */
    int *edge_start = fl_calloc((size_t)R + 1, sizeof(int));
    int cap = 256, n = 0;
    int *to = fl_malloc((size_t)cap * sizeof(int));
    uint8_t *tail = fl_malloc((size_t)cap);
    for (int r = 0; r < R; r++) {
        edge_start[r] = n;
        for (int a = g->rule_alts[r]; a < g->rule_alts[r + 1]; a++)
            for (int p = g->alt_start[a]; FL_G_KIND(g->elems[p]) == FL_G_REF; p++) {
                if (n == cap) {
                    cap *= 2;
                    to = fl_realloc(to, (size_t)cap * sizeof(int));
                    tail = fl_realloc(tail, (size_t)cap);
                }
                to[n] = (int)FL_G_ARG(g->elems[p]);
                tail[n++] = FL_G_KIND(g->elems[p + 1]) == FL_G_END;
                if (!nullable[FL_G_ARG(g->elems[p])])
                    break;
            }
    }
    edge_start[R] = n;
    int *index = fl_malloc((size_t)R * sizeof(int)), *low = fl_malloc((size_t)R * sizeof(int));
    int *comp = fl_malloc((size_t)R * sizeof(int)), *stack = fl_malloc((size_t)R * sizeof(int));
    int *call = fl_malloc((size_t)R * sizeof(int)), *next_edge = fl_malloc((size_t)R * sizeof(int));
    uint8_t *on = fl_calloc((size_t)R, 1);
    for (int r = 0; r < R; r++)
        index[r] = -1;
    int counter = 0, sp = 0, ncomp = 0;
    for (int s = 0; s < R; s++) {
        if (index[s] >= 0)
            continue;
        int depth = 0;
        call[depth++] = s;
        index[s] = low[s] = counter++;
        next_edge[s] = edge_start[s];
        stack[sp++] = s;
        on[s] = 1;
        while (depth) {
            const int v = call[depth - 1];
            if (next_edge[v] < edge_start[v + 1]) {
                const int w = to[next_edge[v]++];
                if (index[w] < 0) {
                    index[w] = low[w] = counter++;
                    next_edge[w] = edge_start[w];
                    stack[sp++] = w;
                    on[w] = 1;
                    call[depth++] = w;
                } else if (on[w] && index[w] < low[v]) {
                    low[v] = index[w];
                }
                continue;
            }
            if (low[v] == index[v]) {
                int w;
                do {
                    w = stack[--sp];
                    on[w] = 0;
                    comp[w] = ncomp;
                } while (w != v);
                ncomp++;
            }
            depth--;
            if (depth && low[v] < low[call[depth - 1]])
                low[call[depth - 1]] = low[v];
        }
    }
    int found = -1;
    for (int r = 0; r < R && found < 0; r++)
        for (int k = edge_start[r]; k < edge_start[r + 1]; k++)
            if (!tail[k] && comp[to[k]] == comp[r]) {
                found = r;
                break;
            }
    free(edge_start), free(to), free(tail), free(index), free(low), free(comp), free(stack), free(call),
        free(next_edge), free(on);
    return found;
}

/* The builder rule a flat rule came from, for messages. */
static const char *rule_name(const lowering *L, int flat)
{
    for (int r = 0; r < L->b->num_rules && r < L->cap_rule_of; r++)
        if (L->rule_of[r] == flat)
            return L->b->names[r];
    return "(a group)";
}

int fl_gb_finish(fl_gb *b, int root, fl_grammar *g, fl_error *err)
{
    memset(g, 0, sizeof *g);
    lowering L = { .b = b, .g = g, .err = err };
    fl_bytemap_init(&L.sets, 64);
    flat_of(&L, root);
    int cap_rule_alts = 64;
    g->rule_alts = fl_malloc((size_t)cap_rule_alts * sizeof(int32_t));
    /* helper rules made while lowering join the queue (rule_of grows with them) */
    for (int f = 0; f < L.num_flat && !L.failed; f++) {
        if (f + 1 >= cap_rule_alts) {
            cap_rule_alts *= 2;
            g->rule_alts = fl_realloc(g->rule_alts, (size_t)cap_rule_alts * sizeof(int32_t));
        }
        g->rule_alts[f] = L.num_alts;
        lower_body(&L, L.bodies[f]);
    }
    g->num_rules = L.num_flat;
    g->rule_alts = fl_realloc(g->rule_alts, ((size_t)g->num_rules + 1) * sizeof(int32_t));
    g->rule_alts[g->num_rules] = L.num_alts;
    g->root = 0;
    int rc = L.failed ? -1 : 0;
    if (rc == 0) {
        uint8_t *nullable = fl_malloc((size_t)g->num_rules), *productive = fl_malloc((size_t)g->num_rules);
        fixpoints(g, nullable, productive);
        const int left = left_recursive(g, nullable);
        if (!productive[0])
            rc = fl_fail(err, "the grammar matches no string at all");
        else if (left >= 0)
            rc = fl_fail(err, "rule '%s' is left-recursive (it can reach itself before matching a byte), which "
                         "the matcher does not support: rewrite it with repetition", rule_name(&L, left));
        free(nullable);
        free(productive);
    }
    free(L.rule_of);
    free(L.bodies);
    fl_bytemap_free(&L.sets);
    if (rc != 0)
        fl_grammar_free(g);
    return rc;
}

void fl_grammar_free(fl_grammar *g)
{
    free(g->elems);
    free(g->sets);
    free(g->alt_start);
    free(g->rule_alts);
    memset(g, 0, sizeof *g);
}

/* ---- the kinds of constraint ---- */

/* vLLM's choice: root ::= "a" | "b" | ..., each exactly. */
static int choice_build(fl_gb *b, const fl_grammar_spec *spec, int *root, fl_error *err)
{
    if (spec->num_choices < 1)
        return fl_fail(err, "the choice list is empty");
    fl_gx *alt = fl_gx_alt(b);
    for (int i = 0; i < spec->num_choices; i++)
        fl_gx_add(alt, fl_gx_literal(b, spec->choices[i], spec->choice_lens[i]));
    *root = fl_gb_rule(b, "root", 4);
    return fl_gb_define(b, *root, alt, err);
}

static int regex_root(fl_gb *b, const fl_grammar_spec *spec, int *root, fl_error *err)
{
    fl_gx *e;
    if (fl_regex_build(b, spec->text, spec->len, 0, &e, err) != 0)
        return -1;
    *root = fl_gb_rule(b, "root", 4);
    return fl_gb_define(b, *root, e, err);
}

int fl_grammar_compile(const fl_grammar_spec *spec, fl_grammar *g, fl_error *err)
{
    fl_gb b;
    fl_gb_init(&b);
    int root = -1, rc;
    switch (spec->kind) {
    case FL_GRAMMAR_CHOICE: rc = choice_build(&b, spec, &root, err); break;
    case FL_GRAMMAR_REGEX: rc = regex_root(&b, spec, &root, err); break;
    case FL_GRAMMAR_EBNF: rc = fl_ebnf_build(&b, spec->text, spec->len, &root, err); break;
    default: rc = fl_json_schema_build(&b, spec, &root, err); break;
    }
    if (rc == 0)
        rc = fl_gb_finish(&b, root, g, err);
    else
        memset(g, 0, sizeof *g);
    fl_gb_free(&b);
    return rc;
}

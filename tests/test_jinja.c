/* test_jinja.c GOLDENS - the Jinja subset against real Jinja2 in
 * transformers' chat-template environment (tests/fixtures/jinja_cases.json,
 * made by tools/make_jinja_goldens.py): whitespace rules, literals and str()
 * of values, operators and precedence, filters, tests, methods, slices,
 * loops, scoping, and the cases where Jinja2 raises (flashlm must fail too).
 * Then templates flashlm must refuse at parse time, and hostile templates
 * (deep nesting, integer overflow, huge strings, lists and loops) that must
 * fail with a message at parse or render time instead of crashing. Ends
 * with "N passed, N failed". */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jinja/jinja.h"

static int passed, failed;

static void escape(const char *what, const char *s, size_t n)
{
    fprintf(stderr, "  %s: \"", what);
    for (size_t i = 0; i < n; i++)
        fputs(s[i] == '\n' ? "\\n" : s[i] == '\r' ? "\\r" : (char[]){ s[i], 0 }, stderr);
    fputs("\"\n", stderr);
}

static void check_golden(size_t i, json_t *c)
{
    const char *src = json_string_value(json_object_get(c, "template"));
    json_t *want = json_object_get(c, "text");
    fl_error err = { "" };
    fl_strbuf out = { 0 };
    fl_jinja *t = fl_jinja_parse(src, strlen(src), &err);
    int rc = t ? fl_jinja_render(t, json_object_get(c, "vars"), &out, &err) : -1;
    int ok = want ? rc == 0 && out.len == json_string_length(want) &&
                        memcmp(out.data, json_string_value(want), out.len) == 0
                  : rc != 0;
    if (ok) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "case %zu differs from Jinja2\n", i);
        escape("template", src, strlen(src));
        if (want)
            escape("jinja2", json_string_value(want), json_string_length(want));
        else
            fprintf(stderr, "  jinja2 raised %s\n", json_string_value(json_object_get(c, "message")));
        if (rc == 0)
            escape("flashlm", out.data ? out.data : "", out.len);
        else
            fprintf(stderr, "  flashlm error: %s\n", err.msg);
    }
    fl_strbuf_free(&out);
    fl_jinja_free(t);
}

/* Templates with constructs flashlm does not implement: a parse error that
 * names the line and the construct. */
static void check_refused(const char *src, const char *needle)
{
    fl_error err = { "" };
    fl_jinja *t = fl_jinja_parse(src, strlen(src), &err);
    if (!t && strstr(err.msg, needle)) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "template not refused as expected: %.200s\n  error: %s (wanted '%s')\n", src,
            t ? "(parsed)" : err.msg, needle);
    fl_jinja_free(t);
}

/* ---- limits ---- */

/* head, open n times, core, close n times, tail: a template too big to
 * write out (malloc'd). */
static char *build(const char *head, const char *open, int n, const char *core, const char *close,
                   const char *tail)
{
    fl_strbuf b = { 0 };
    fl_strbuf_append_str(&b, head);
    for (int i = 0; i < n; i++)
        fl_strbuf_append_str(&b, open);
    fl_strbuf_append_str(&b, core);
    for (int i = 0; i < n; i++)
        fl_strbuf_append_str(&b, close);
    fl_strbuf_append_str(&b, tail);
    return fl_strbuf_take(&b);
}

/* Parses src and renders it without variables: rc of the render, -2 if it
 * did not parse; the output in out, the error in err. */
static int render(const char *src, fl_strbuf *out, fl_error *err)
{
    fl_jinja *t = fl_jinja_parse(src, strlen(src), err);
    if (!t)
        return -2;
    json_t *vars = json_object();
    int rc = fl_jinja_render(t, vars, out, err);
    json_decref(vars);
    fl_jinja_free(t);
    return rc;
}

/* src parses, and rendering it fails with needle in the message. */
static void check_render_fails(const char *src, const char *needle)
{
    fl_error err = { "" };
    fl_strbuf out = { 0 };
    int rc = render(src, &out, &err);
    fl_strbuf_free(&out);
    if (rc == -1 && strstr(err.msg, needle)) {
        passed++;
        return;
    }
    failed++;
    fprintf(stderr, "template did not fail to render as expected: %.200s\n  %s: %s (wanted '%s')\n",
            src, rc == 0 ? "rendered" : rc == -2 ? "parse error" : "error", err.msg, needle);
}

static void check_renders(const char *src, const char *want)
{
    fl_error err = { "" };
    fl_strbuf out = { 0 };
    int rc = render(src, &out, &err);
    if (rc == 0 && strcmp(out.data ? out.data : "", want) == 0) {
        passed++;
    } else {
        failed++;
        fprintf(stderr, "template did not render as expected: %.200s\n  got: %.200s (wanted '%s')\n",
                src, rc == 0 ? out.data : err.msg, want);
    }
    fl_strbuf_free(&out);
}

static void check_refused_built(char *src, const char *needle)
{
    check_refused(src, needle);
    free(src);
}

/* Every way to nest: the parser's recursion and chains it reads in a loop
 * (which make a tree as deep as they are long) are refused at load. */
static void test_deep_templates(void)
{
    const char *deep = "the template nests deeper than 256 levels";
    check_refused_built(build("{{ ", "(", 10000, "1", ")", " }}"), deep);
    check_refused_built(build("{{ ", "not ", 100000, "x", "", " }}"), deep);
    check_refused_built(build("{{ ", "-", 100000, "1", "", " }}"), deep);
    check_refused_built(build("{{ ", "[", 10000, "1", "]", " }}"), deep);
    check_refused_built(build("{{ ", "f(", 10000, "1", ")", " }}"), deep);
    check_refused_built(build("{{ x", "", 100000, "", "|lower", " }}"), deep);
    check_refused_built(build("{{ x", "", 100000, "", " is defined", " }}"), deep);
    check_refused_built(build("{{ a", "", 100000, "", ".b", " }}"), deep);
    check_refused_built(build("{{ a", "", 100000, "", "[0]", " }}"), deep);
    check_refused_built(build("{{ a", "", 100000, "", "()", " }}"), deep);
    check_refused_built(build("{{ 1", "", 100000, "", " + 1", " }}"), deep);
    check_refused_built(build("{{ 1", "", 100000, "", " if x else 1", " }}"), deep);
    check_refused_built(build("", "{% if x %}", 50000, "", "{% endif %}", ""), deep);
    check_refused_built(build("", "{% for x in y %}", 50000, "", "{% endfor %}", ""), deep);
    check_refused_built(build("{% if x %}", "{% elif x %}", 50000, "", "", "{% endif %}"), deep);
    /* a long but shallow template is fine, and so is nesting up to the limit */
    char *src = build("", "", 10000, "", "{{ x|lower }}{% if x %}{% endif %}", "");
    check_renders(src, "");
    free(src);
    src = build("{{ ", "(", 200, "7", ")", " }}");
    check_renders(src, "7");
    free(src);
    src = build("", "{% if true %}", 100, "ok", "{% endif %}", "");
    check_renders(src, "ok");
    free(src);
    src = build("{{ 'A'", "", 200, "", "|lower", " }}");
    check_renders(src, "a");
    free(src);
}

/* Values nest at render time without the template nesting: a namespace
 * that holds itself, a list wrapped in a loop. Printing, JSON and equality
 * stop at the same depth. */
static void test_deep_values(void)
{
    const char *deep = "a value nests deeper than 256 levels";
    const char *self = "{% set ns = namespace(a=1) %}{% set ns.me = ns %}";
    const char *uses[] = { "{{ ns }}", "{{ ns|tojson }}", "{{ ns == ns }}", "{{ ns in [ns] }}",
                           "{{ ns|string }}", "{{ [ns]|join }}", "{{ ns is eq(ns) }}" };
    for (size_t i = 0; i < sizeof uses / sizeof uses[0]; i++) {
        char src[256];
        snprintf(src, sizeof src, "%s%s", self, uses[i]);
        check_render_fails(src, deep);
    }
    const char *wrap = "{% set ns = namespace(x=1) %}{% for i in range(1000) %}{% set ns.x = [ns.x] %}"
                       "{% endfor %}";
    char src[256];
    snprintf(src, sizeof src, "%s{{ ns.x|tojson(indent=2) }}", wrap);
    check_render_fails(src, deep);
    snprintf(src, sizeof src, "%s{{ ns.x ~ '' }}", wrap);
    check_render_fails(src, deep);
    check_renders("{% set ns = namespace(x=1) %}{% for i in range(3) %}{% set ns.x = [ns.x] %}"
                  "{% endfor %}{{ ns.x }} {{ ns.x|tojson }} {{ ns.x == [[[1]]] }}",
                  "[[[1]]] [[[1]]] True");
}

/* Python's ints grow; these are 64-bit, and every operator refuses to
 * overflow rather than wrap (UB in C). */
static void test_int_overflow(void)
{
    static const struct { const char *src, *op; } cases[] = {
        { "{{ 9223372036854775807 + 1 }}", "'+'" },
        { "{{ -9223372036854775807 - 2 }}", "'-'" },
        { "{{ 4294967296 * 4294967296 }}", "'*'" },
        { "{{ -3037000500 * 3037000500 }}", "'*'" },
        { "{{ (-9223372036854775807 - 1) // -1 }}", "'//'" },
        { "{{ 2 ** 63 }}", "'**'" },
        { "{{ 3 ** 1000000 }}", "'**'" },
        { "{{ -(-9223372036854775807 - 1) }}", "'-'" },
        { "{{ (-9223372036854775807 - 1)|abs }}", "'abs'" },
        { "{{ '99999999999999999999'|int }}", "'int'" },
        { "{{ '-99999999999999999999'|int }}", "'int'" },
        { "{{ 1e300|int }}", "'int'" },
        { "{{ (-1e19)|int }}", "'int'" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "integer overflow in %s", cases[i].op);
        check_render_fails(cases[i].src, needle);
    }
    check_refused("{{ 9223372036854775808 }}", "the integer 9223372036854775808 does not fit in 64 bits");
    check_refused_built(build("{{ ", "9", 100000, "", "", " }}"), "does not fit in 64 bits");
    /* up to the edges, exact: the old code went through doubles */
    check_renders("{{ 9223372036854775806 + 1 }} {{ -9223372036854775807 - 1 }} {{ (-2) ** 63 }} "
                  "{{ 3 ** 39 }} {{ (-9223372036854775807 - 1) % -1 }} {{ (-9223372036854775807 - 1) // 1 }} "
                  "{{ 9007199254740993 // 1 }} {{ -7 // 2 }} {{ 7 // -2 }} {{ 7 % -3 }} {{ -7 % 3 }} "
                  "{{ 2 ** -1 }} {{ -(-9223372036854775807) }} {{ (-9223372036854775807)|abs }} "
                  "{{ '-9223372036854775808'|int }} {{ 1e18|int }}",
                  "9223372036854775807 -9223372036854775808 -9223372036854775808 4052555153018976267 0 "
                  "-9223372036854775808 9007199254740993 -4 -4 -2 2 0.5 9223372036854775807 "
                  "9223372036854775807 -9223372036854775808 1000000000000000000");
    /* range() and slices at the extremes of int64 */
    check_renders("{{ range(-9223372036854775807 - 1, 9223372036854775807, 4611686018427387904)|list }} "
                  "{{ range(9223372036854775806, 9223372036854775807, 9223372036854775807)|list }} "
                  "{{ range(3, -9223372036854775807 - 1, -9223372036854775807)|list }}",
                  "[-9223372036854775808, -4611686018427387904, 0, 4611686018427387904] "
                  "[9223372036854775806] [3, -9223372036854775804]");
    check_renders("{{ 'abc'[1::9223372036854775807] }} {{ [1, 2, 3][::-9223372036854775807 - 1] }} "
                  "{{ 'abc'[-9223372036854775807 - 1:9223372036854775807] }} {{ 'h\xc3\xa9llo'[::-2] }} "
                  "{{ [1, 2, 3][9223372036854775807:] }} {{ 'abc'[-9223372036854775807 - 1::-1] }}",
                  "b [3] abc olh [] ");
}

/* Strings, lists and the output have a size limit, checked before they
 * grow (the allocator aborts when memory runs out). */
static void test_sizes(void)
{
    const char *text = "the text would be longer than 64 MiB";
    const char *items = "a list would have more than 1048576 items";
    check_render_fails("{{ 'a' * 1000000000 }}", text);
    check_render_fails("{{ 'ab' * 9223372036854775807 }}", text);
    check_render_fails("{% set s = 'a' * 33554433 %}{{ s ~ s }}", text);
    check_render_fails("{{ ('a' * 1000).replace('a', 'b' * 70000) }}", text);
    char *src = build("{% set s = 'a' * 1000000 %}{{ [s", "", 70, "", ", s", "]|join }}");
    check_render_fails(src, text);
    free(src);
    /* escapes make strings longer than they were */
    check_render_fails("{{ ('\n' * 34000000)|tojson }}", text);
    check_render_fails("{{ [('\n' * 34000000)] }}", text);
    check_render_fails("{% set s = 'a' * 1000000 %}{% for i in range(100) %}{{ s }}x{% endfor %}", text);
    check_render_fails("{% for i in range(1000000000) %}{% endfor %}", items);
    check_render_fails("{{ range(-9223372036854775807, 9223372036854775807)|length }}", items);
    check_render_fails("{{ range(0, 10, 0) }}", "range() step must not be zero");
    check_render_fails("{{ range('a') }}", "range() takes one to three integers");
    check_render_fails("{{ range(1.5) }}", "range() takes one to three integers");
    check_render_fails("{{ ('a ' * 2000000).split()|length }}", items);
    check_render_fails("{{ ('a' * 2000000)|list|length }}", items);
    check_render_fails("{% for c in 'a' * 2000000 %}{% endfor %}", items);
    check_render_fails("{{ (range(1000000)|list + range(100000)|list)|length }}", items);
    check_render_fails("{{ [1]|tojson(indent=1000000000) }}", "tojson's indent must be at most 64");
    check_render_fails("{{ [1]|tojson(indent=65) }}", "tojson's indent must be at most 64");
    /* up to the limits */
    check_renders("{{ range(1048576)|length }} {{ ('a' * 67108864)|length }} "
                  "{{ [[1]]|tojson(indent=64)|length }} {{ [1]|tojson(indent=-3) }}|"
                  "{{ ('ab' * 300000)[1::2]|length }} {{ ('a\xc3\xa9' * 300000)|list|length }}",
                  "1048576 67108864 265 [\n1\n]|300000 600000");
}

/* Time and memory of a render: a budget of steps and of the values'
 * memory, so that no loop spins for minutes or runs memory out. */
static void test_budgets(void)
{
    char *src = build("{% for i in range(1000000) %}{{ i", "", 200, "", " + i", " }}{% endfor %}");
    check_render_fails(src, "the template takes more than 16777216 steps");
    free(src);
    /* shared items: 2^100 paths in a value 100 deep */
    check_render_fails("{% set ns = namespace(x=1, y=1) %}{% for i in range(100) %}"
                       "{% set ns.x = [ns.x, ns.x] %}{% set ns.y = [ns.y, ns.y] %}{% endfor %}"
                       "{{ ns.x == ns.y }}", "the template takes more than 16777216 steps");
    check_render_fails("{% for i in range(100) %}{% set s = 'a' * 60000000 %}{% endfor %}",
                       "the template's values take more than 256 MiB");
    /* adjacent string literals join once: pairwise they took quadratic memory */
    src = build("{{ ''", "", 100000, "", " 'abcdefghij'", "|length }}");
    check_renders(src, "1000000");
    free(src);
}


/* Macros may call themselves, so the render bounds its recursion (with
 * the tree's height, which bounds it within one call): a macro that
 * recurses without end, or with a body nested to the tree's limit, or
 * through blocks and filters, is an error with a message, not a stack
 * overflow; and doubling recursion runs into the render's budget (each
 * call's scope and output take memory, which runs out before the steps). */
static void test_macro_recursion(void)
{
    const char *calls = "macros call macros deeper than 64 levels";
    check_render_fails("{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}", calls);
    check_render_fails("{% macro a() %}{{ b() }}{% endmacro %}{% macro b() %}{{ a() }}{% endmacro %}{{ a() }}", calls);
    check_render_fails("{% macro m(n) %}{% set x %}{% filter upper %}{{ m(n + 1) }}{% endfilter %}{% endset %}"
                       "{{ x }}{% endmacro %}{{ m(0) }}", calls);
    check_render_fails("{% macro m(n=m()) %}{% endmacro %}{{ m() }}", calls);
    check_render_fails("{% macro m(x) %}{{ [x]|map('string')|map('upper')|join ~ m(x) }}{% endmacro %}{{ m(1) }}", calls);
    check_render_fails("{% macro m(n) %}{{ m(n) }}{{ m(n) }}{% endmacro %}{{ m(1) }}", calls);
    /* bodies nested near the tree's limit reach the render's depth first */
    char *src = build("{% macro m() %}{{ ", "[", 240, "m()", "]", " }}{% endmacro %}{{ m() }}");
    check_render_fails(src, "the template recurses deeper than 512 levels");
    free(src);
    check_render_fails("{% macro m(n) %}{% if n > 0 %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}"
                       "{{ m(40) }}", "the template's values take more than 256 MiB");
    /* recursion that ends is fine, up to the limit */
    check_renders("{% macro count(n) %}{% if n > 0 %}{{ count(n - 1) }}{{ n % 10 }}{% endif %}{% endmacro %}"
                  "{{ count(63)|length }}", "63");
    check_renders("{% for i in range(10000) %}{% macro m() %}{{ i }}{% endmacro %}{% endfor %}{{ m is defined }}",
                  "False");
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s GOLDENS\n", argv[0]);
        return 2;
    }
    json_error_t jerr;
    json_t *g = json_load_file(argv[1], 0, &jerr);
    if (!g) {
        fprintf(stderr, "%s: %s\n", argv[1], jerr.text);
        return 1;
    }
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(g, "cases"), i, c) {
        check_golden(i, c);
    }
    json_decref(g);
    check_refused("{% macro m() %}{{ caller() }}{% endmacro %}", "line 1: the function 'caller' is not supported");
    check_refused("{% call m() %}x{% endcall %}", "line 1: unsupported or unexpected tag (at 'call')");
    check_refused("{% raw %}x{% endraw %}", "unsupported or unexpected tag (at 'raw')");
    check_refused("a\n{{ x | wordwrap }}", "line 2: the filter 'wordwrap' is not supported");
    check_refused("{{ x is escaped }}", "the test 'escaped' is not supported");
    check_refused("\n\n{{ x|map('wordwrap')|list }}", "line 3: the filter 'wordwrap' is not supported");
    check_refused("{{ x|selectattr('a', 'escaped')|list }}", "the test 'escaped' is not supported");
    check_refused("{{ x|reject('escaped')|list }}", "the test 'escaped' is not supported");
    check_refused("{% macro m() %}{% endmacro %}{{ n() }}", "the function 'n' is not supported");
    check_refused("{{ x[0]() }}", "the call of '(an expression)' is not supported");
    check_refused("{% for x in y %}{% set z %}{% break %}{% endset %}{% endfor %}",
                  "break and continue belong inside a for loop");
    check_refused("{% macro m(a=1, b) %}{% endmacro %}", "a parameter without a default after one with a default");
    check_refused("{% set none = 1 %}", "expected a variable name");
    check_refused("{{ f(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17) }}", "more than 16 arguments");
    check_refused("{{ x.format(1) }}", "the method 'format' is not supported");
    check_refused("{{ cycler(1) }}", "the function 'cycler' is not supported");
    check_refused("{% if x %}a", "a block is not closed");
    check_refused("{{ x ", "never closed");
    check_refused("{% for x in %}{% endfor %}", "expected an expression");
    check_refused("{{ 'abc }}", "never closed");
    check_refused("{% endif %}", "unsupported or unexpected tag (at 'endif')");
    test_deep_templates();
    test_deep_values();
    test_int_overflow();
    test_sizes();
    test_budgets();
    test_macro_recursion();
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

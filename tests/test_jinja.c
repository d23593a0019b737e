/* test_jinja.c GOLDENS - the Jinja subset against real Jinja2 in
 * transformers' chat-template environment (tests/fixtures/jinja_cases.json,
 * made by tools/make_jinja_goldens.py): whitespace rules, literals and str()
 * of values, operators and precedence, filters, tests, methods, slices,
 * loops, scoping, and the cases where Jinja2 raises (flashlm must fail too).
 * Then templates flashlm must refuse at parse time. Ends with
 * "N passed, N failed". */
#include <jansson.h>
#include <stdio.h>
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
    fprintf(stderr, "template not refused as expected: %s\n  error: %s (wanted '%s')\n", src,
            t ? "(parsed)" : err.msg, needle);
    fl_jinja_free(t);
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
    check_refused("{% macro m() %}x{% endmacro %}", "line 1: unsupported or unexpected tag (at 'macro')");
    check_refused("a\n{{ x | wordwrap }}", "line 2: the filter 'wordwrap' is not supported");
    check_refused("{{ x is divisibleby(3) }}", "the test 'divisibleby' is not supported");
    check_refused("{{ x.format(1) }}", "the method 'format' is not supported");
    check_refused("{{ cycler(1) }}", "the function 'cycler' is not supported");
    check_refused("{% if x %}a", "a block is not closed");
    check_refused("{{ x ", "never closed");
    check_refused("{% for x in %}{% endfor %}", "expected an expression");
    check_refused("{{ 'abc }}", "never closed");
    check_refused("{% endif %}", "unsupported or unexpected tag (at 'endif')");
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}

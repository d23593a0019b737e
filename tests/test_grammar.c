/* test_grammar.c - structured output's grammars (src/grammar).
 *
 * Each kind of constraint accepts and rejects strings as its definition
 * says (choices, regexes checked against PCRE2 on random strings, EBNF,
 * JSON schemas whose outputs are checked by a validator written here from
 * the keywords' definitions); refusals name what they refuse; and the
 * token masks equal a brute-force check of every token against the
 * grammar, over a small vocabulary of JSON-ish fragments and broken UTF-8,
 * along random walks that take only allowed tokens. */
#include "test_util.h"

#include <limits.h>
#include <pcre2.h>
#include <stdlib.h>

#include "base/rng.h"
#include "grammar/grammar.h"
#include "grammar/pda.h"
#include "grammar/token_mask.h"

/* ---- whole strings ---- */

/* 1 if g matches s[0..n) whole, 0 if not. */
static int g_accepts(const fl_grammar *g, const char *s, size_t n)
{
    fl_pda p;
    fl_pda_init(&p, g);
    fl_u32buf a = { 0 }, b = { 0 };
    int ok = fl_pda_initial(&p, &a) == FL_PDA_OK;
    for (size_t i = 0; i < n && ok; i++) {
        ok = fl_pda_step(&p, a.data, a.len, (unsigned char)s[i], &b) == FL_PDA_OK;
        fl_u32buf t = a;
        a = b;
        b = t;
    }
    ok = ok && fl_pda_accepting(a.data);
    fl_u32buf_free(&a), fl_u32buf_free(&b);
    fl_pda_free(&p);
    return ok;
}

static fl_grammar_spec spec_of(fl_grammar_kind kind, const char *text)
{
    return (fl_grammar_spec){ .kind = kind, .text = text, .len = text ? strlen(text) : 0, .any_whitespace = 1 };
}

#define SPEC(k, t) (&(fl_grammar_spec){ .kind = (k), .text = (t), .len = strlen(t), .any_whitespace = 1 })

static void compile_ok(const fl_grammar_spec *spec, fl_grammar *g)
{
    fl_error err;
    if (fl_grammar_compile(spec, g, &err) != 0) {
        print_error("compiling '%s': %s\n", spec->text ? spec->text : "(choice)", err.msg);
        fail();
    }
}

static void check_strings(const fl_grammar_spec *spec, const char *const *yes, const char *const *no)
{
    fl_grammar g;
    compile_ok(spec, &g);
    for (; yes && *yes; yes++)
        if (!g_accepts(&g, *yes, strlen(*yes))) {
            print_error("'%s' should match '%s'\n", spec->text ? spec->text : "(choice)", *yes);
            fail();
        }
    for (; no && *no; no++)
        if (g_accepts(&g, *no, strlen(*no))) {
            print_error("'%s' should not match '%s'\n", spec->text ? spec->text : "(choice)", *no);
            fail();
        }
    fl_grammar_free(&g);
}

static void check_refused(fl_grammar_spec spec, const char *needle)
{
    fl_grammar g;
    fl_error err;
    if (fl_grammar_compile(&spec, &g, &err) == 0) {
        print_error("'%s' should be refused\n", spec.text);
        fail();
    }
    assert_msg_contains(err.msg, needle);
}

static void test_choice(void **state)
{
    (void)state;
    const char *choices[] = { "yes", "no", "y\"es\\" };
    const size_t lens[] = { 3, 2, 5 };
    fl_grammar_spec spec = { .kind = FL_GRAMMAR_CHOICE, .choices = choices, .choice_lens = lens, .num_choices = 3 };
    check_strings(&spec, (const char *[]){ "yes", "no", "y\"es\\", NULL },
                  (const char *[]){ "", "ye", "yess", "n", "y\"es", NULL });
    spec.num_choices = 0;
    check_refused(spec, "empty");
}

static void test_ebnf(void **state)
{
    (void)state;
    const char *g = "root ::= \"{\" ws pair (\",\" ws pair)* \"}\"   # a comment\n"
                    "pair ::= [a-z]+ \":\" ws ( num | \"null\" )\n"
                    "num  ::= \"-\"? [0-9]{1,3}\n"
                    "ws   ::= [ \\t\\n]*\n";
    check_strings(&(fl_grammar_spec){ .kind = FL_GRAMMAR_EBNF, .text = g, .len = strlen(g) },
                  (const char *[]){ "{a:1}", "{ab: -12,\n cd:null}", "{x:999}", NULL },
                  (const char *[]){ "{}", "{a:1000}", "{A:1}", "{a:1,}", "{a:nul}", NULL });
    const char *uni = "root ::= [α-ω]+ \"\\u00e9\" [^a-z] .\n";
    check_strings(&(fl_grammar_spec){ .kind = FL_GRAMMAR_EBNF, .text = uni, .len = strlen(uni) },
                  (const char *[]){ "αβé1x", "ωé€€", "αéA\n", NULL },
                  (const char *[]){ "aé1x", "αéax", "αé1"   , NULL });
    /* multi-line alternatives, the next rule found by its ::= */
    const char *multi = "root ::= a\n  | b\n  | \"c\"\na ::= \"a\"\nb ::= \"b\" root?\n";
    check_strings(&(fl_grammar_spec){ .kind = FL_GRAMMAR_EBNF, .text = multi, .len = strlen(multi) },
                  (const char *[]){ "a", "b", "c", "bbba", "bc", NULL }, (const char *[]){ "ab", "", NULL });
    check_refused(spec_of(FL_GRAMMAR_EBNF, "root ::= x\n"), "rule 'x' is used but not defined");
    check_refused(spec_of(FL_GRAMMAR_EBNF, "root ::= root \"a\" | \"b\"\n"), "left-recursive");
    check_refused(spec_of(FL_GRAMMAR_EBNF, "root ::= x\nx ::= y? root \"a\" | \"c\"\ny ::= \"b\"\n"), "left-recursive");
    check_refused(spec_of(FL_GRAMMAR_EBNF, "start ::= \"a\"\n"), "no rule named 'root'");
    check_refused(spec_of(FL_GRAMMAR_EBNF, "start: \"a\"\n"), "Lark");
    check_refused(spec_of(FL_GRAMMAR_EBNF, "root ::= \"a\" (= \"b\")\n"), "lookahead");
    check_refused(spec_of(FL_GRAMMAR_EBNF, "root ::= \"a\nb\"\n"), "not closed");
    check_refused(spec_of(FL_GRAMMAR_EBNF, "root ::= [b-a]\n"), "out of order");
    check_refused(spec_of(FL_GRAMMAR_EBNF, "root ::= \"a\"{3,2}\n"), "out of order");
    check_refused(spec_of(FL_GRAMMAR_EBNF, "root ::= \"a\"\nroot ::= \"b\"\n"), "defined twice");
    check_refused(spec_of(FL_GRAMMAR_EBNF, "root ::= [^\\u0000-\\U0010ffff]\n"), "matches no string");
    /* a nullable item under a star is fine: the stacks stay flat */
    check_strings(SPEC(FL_GRAMMAR_EBNF, "root ::= (\"a\"?)* \"b\"\n"),
                  (const char *[]){ "b", "aab", NULL }, (const char *[]){ "a", NULL });
}

/* ---- regexes against PCRE2 ---- */

static void test_regex_examples(void **state)
{
    (void)state;
    check_strings(SPEC(FL_GRAMMAR_REGEX, "^[a-z]+@[a-z]+\\.com$"),
                  (const char *[]){ "ab@cd.com", NULL }, (const char *[]){ "ab@cd.org", "@c.com", "ab@cd.comx", NULL });
    check_strings(SPEC(FL_GRAMMAR_REGEX, "\\d{3}-\\d{2,}(?:x|y){0,2}"),
                  (const char *[]){ "123-45", "123-456xy", NULL }, (const char *[]){ "12-45", "123-4", "123-45xyx", NULL });
    check_strings(SPEC(FL_GRAMMAR_REGEX, "(?P<w>\\w+) (?<n>[^\\s\\d]+)\\u00e9.\\x41"),
                  (const char *[]){ "a_1 bc\xc3\xa9zA", "x €é\xe2\x82\xac" "A", NULL },
                  (const char *[]){ "a 1é.A", "a b\xc3\xa9\nA", NULL });
    check_strings(SPEC(FL_GRAMMAR_REGEX, "a{,2}b|[\\]\\-^]"), (const char *[]){ "b", "aab", "]", "-", "^", NULL },
                  (const char *[]){ "aaab", "\\", NULL });
    check_refused(spec_of(FL_GRAMMAR_REGEX, "(a)\\1"), "backreferences");
    check_refused(spec_of(FL_GRAMMAR_REGEX, "a(?=b)"), "lookaround");
    check_refused(spec_of(FL_GRAMMAR_REGEX, "\\bword"), "word boundaries");
    check_refused(spec_of(FL_GRAMMAR_REGEX, "a++"), "possessive");
    check_refused(spec_of(FL_GRAMMAR_REGEX, "a{100000}"), "limit");
    check_refused(spec_of(FL_GRAMMAR_REGEX, "(ab"), "not closed");
    check_refused(spec_of(FL_GRAMMAR_REGEX, "ab)"), "unmatched");
    check_refused(spec_of(FL_GRAMMAR_REGEX, "a^b"), "only supported");
}

/* Random patterns over a small alphabet, random strings: the grammar's
 * verdict must be PCRE2's full match. */
static void test_regex_vs_pcre2(void **state)
{
    (void)state;
    static const char *pieces[] = { "a", "b", "c", ".", "[ab]", "[^a]", "\\d", "\\w", "\\s", "(a|bc)", "(?:b|)",
                                    "x", "1", "é", "[a-c1]" };
    static const char *quants[] = { "", "", "", "*", "+", "?", "{2}", "{1,3}", "{0,}", "*?" };
    static const char alphabet[] = "abcx1 \n";
    const uint64_t key = fl_rng_key(17, 3);
    int checked = 0, matched = 0;
    for (int t = 0; t < 300; t++) {
        char pat[256] = "";
        const int parts = 1 + (int)(fl_rng_at(key, (uint64_t)t * 100) % 5);
        for (int k = 0; k < parts; k++) {
            strcat(pat, pieces[fl_rng_at(key, (uint64_t)t * 100 + 1 + 2 * k) % 15]);
            strcat(pat, quants[fl_rng_at(key, (uint64_t)t * 100 + 2 + 2 * k) % 10]);
            if (k + 1 < parts && fl_rng_at(key, (uint64_t)t * 100 + 50 + k) % 7 == 0)
                strcat(pat, "|");
        }
        fl_grammar g;
        compile_ok(SPEC(FL_GRAMMAR_REGEX, pat), &g);
        int ec;
        PCRE2_SIZE eo;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED,
                                       &ec, &eo, NULL);
        assert_non_null(re);
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
        for (int s = 0; s < 200; s++) {
            char str[16];
            const int len = (int)(fl_rng_at(key, (uint64_t)t * 100000 + (uint64_t)s * 20) % 7);
            for (int i = 0; i < len; i++)
                str[i] = alphabet[fl_rng_at(key, (uint64_t)t * 100000 + (uint64_t)s * 20 + 1 + (uint64_t)i) % 7];
            const int want = pcre2_match(re, (PCRE2_SPTR)str, (size_t)len, 0, 0, md, NULL) >= 0;
            const int got = g_accepts(&g, str, (size_t)len);
            if (want != got) {
                print_error("pattern '%s', string '%.*s': pcre2 %d, grammar %d\n", pat, len, str, want, got);
                fail();
            }
            checked++;
            matched += want;
        }
        pcre2_match_data_free(md);
        pcre2_code_free(re);
        fl_grammar_free(&g);
    }
    printf("  %d strings against 300 random patterns, %d matches\n", checked, matched);
    assert_true(matched > checked / 20);
}

/* ---- JSON schemas ---- */

static void test_json_schema(void **state)
{
    (void)state;
    const char *schema = "{\"type\":\"object\",\"properties\":{"
                         "\"name\":{\"type\":\"string\",\"maxLength\":3},"
                         "\"kind\":{\"enum\":[\"a\",\"b c\",1,null]},"
                         "\"n\":{\"type\":\"integer\"},"
                         "\"ok\":{\"type\":\"boolean\"},"
                         "\"at\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\"}},\"required\":[\"x\"]},"
                         "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":2}"
                         "},\"required\":[\"name\",\"n\"]}";
    fl_grammar_spec compact = spec_of(FL_GRAMMAR_JSON_SCHEMA, schema);
    compact.any_whitespace = 0;
    check_strings(&compact,
                  (const char *[]){ "{\"name\": \"abc\", \"n\": 0}",
                                    "{\"name\": \"\\u00e9\\n\", \"kind\": \"b c\", \"n\": -12, \"ok\": true, "
                                    "\"at\": {\"x\": 1.5e-3}, \"tags\": [\"\", \"x\"]}",
                                    "{\"name\": \"é\", \"kind\": null, \"n\": 7, \"tags\": []}", NULL },
                  (const char *[]){ "{\"name\": \"abcd\", \"n\": 0}",              /* maxLength */
                                    "{\"n\": 0}",                                   /* required */
                                    "{\"name\": \"a\", \"n\": 01}",                 /* leading zero */
                                    "{\"name\": \"a\", \"n\": 1.5}",                /* integer */
                                    "{\"name\": \"a\", \"n\": 1, \"kind\": \"c\"}", /* enum; order */
                                    "{\"name\": \"a\", \"n\": 1, \"other\": 1}",    /* additionalProperties */
                                    "{\"name\": \"a\", \"n\": 1, \"tags\": [\"a\", \"b\", \"c\"]}",
                                    "{\"name\": \"a\", \"n\": 1, \"at\": {}}",
                                    "{\"name\":\"a\", \"n\": 1}",                   /* compact separators */
                                    "{\"name\": \"\x01\", \"n\": 1}",               /* control character */
                                    "{\"name\": \"\\x\", \"n\": 1}", NULL });
    fl_grammar_spec loose = spec_of(FL_GRAMMAR_JSON_SCHEMA, schema);
    check_strings(&loose,
                  (const char *[]){ "{ \"name\" :\"abc\",\n\t\"n\":0 }", "{\"name\":\"a\",\"n\":1,\"tags\":[ ]}", NULL },
                  (const char *[]){ " {\"name\":\"a\",\"n\":1}", "{\"name\":\"a\",\"n\":1}\n", NULL });
    fl_grammar_spec ws = loose;
    ws.whitespace_pattern = " ?";
    check_strings(&ws, (const char *[]){ "{ \"name\": \"abc\", \"n\": 0 }", NULL },
                  (const char *[]){ "{  \"name\":\"abc\",\"n\":0}", "{\n\"name\":\"abc\",\"n\":0}", NULL });
    /* json_object: any object, nested */
    check_strings(&(fl_grammar_spec){ .kind = FL_GRAMMAR_JSON_OBJECT, .any_whitespace = 1 },
                  (const char *[]){ "{}", "{\"a\": [1, {\"b\": null}, \"x\"], \"c\": -0.5E+2}", NULL },
                  (const char *[]){ "[]", "1", "{\"a\"}", "{a: 1}", NULL });
    /* anyOf, type lists, const, $ref with recursion, patterns written with JSON escapes */
    const char *rec = "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"const\":\"x\"},"
                      "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"]}},"
                      "\"anyOf\":[{\"$ref\":\"#/$defs/node\"},{\"type\":[\"null\",\"string\"],\"pattern\":\"a\\\"+\\\\\\\\\"}]}";
    fl_grammar_spec r = spec_of(FL_GRAMMAR_JSON_SCHEMA, rec);
    r.any_whitespace = 0;
    check_strings(&r,
                  (const char *[]){ "{\"v\": \"x\", \"kids\": [{\"v\": \"x\"}, {\"v\": \"x\", \"kids\": []}]}", "null",
                                    "\"a\\\"\\\"\\\\\"", NULL },
                  (const char *[]){ "{\"v\": \"y\"}", "\"a\"\\\"", "\"a\"", NULL });
    check_strings(SPEC(FL_GRAMMAR_JSON_SCHEMA, "{\"type\":\"string\",\"format\":\"date\"}"),
                  (const char *[]){ "\"2024-02-29\"", NULL }, (const char *[]){ "\"2024-13-01\"", NULL });
    check_strings(SPEC(FL_GRAMMAR_JSON_SCHEMA, "{\"type\":\"array\",\"prefixItems\":[{\"type\":\"integer\"},"
                                                   "{\"type\":\"boolean\"}]}"),
                  (const char *[]){ "[1,true]", "[ 1 , false ]", NULL }, (const char *[]){ "[1]", "[1,true,2]", NULL });
    check_strings(SPEC(FL_GRAMMAR_JSON_SCHEMA, "{\"type\":\"array\",\"minItems\":2,\"maxItems\":3}"),
                  (const char *[]){ "[1,{}]", "[1,\"a\",[]]", NULL }, (const char *[]){ "[1]", "[1,2,3,4]", NULL });
    /* refusals name what they refuse */
    check_refused(spec_of(FL_GRAMMAR_JSON_SCHEMA, "{\"type\":\"number\",\"minimum\":1}"), "minimum on a number");
    check_refused(spec_of(FL_GRAMMAR_JSON_SCHEMA, "{\"type\":\"integer\",\"minimum\":3,\"maximum\":2}"), "no value");
    check_refused(spec_of(FL_GRAMMAR_JSON_SCHEMA, "{\"properties\":{\"a\":{\"multipleOf\":2}}}"),
                  "keyword 'multipleOf' is not supported (at properties.a)");
    check_refused(spec_of(FL_GRAMMAR_JSON_SCHEMA, "{\"type\":\"array\",\"uniqueItems\":true}"), "'uniqueItems'");
    check_refused(spec_of(FL_GRAMMAR_JSON_SCHEMA, "{\"type\":\"string\",\"format\":\"email\"}"), "format 'email'");
    check_refused(spec_of(FL_GRAMMAR_JSON_SCHEMA, "{\"type\":\"string\",\"pattern\":\"a\",\"maxLength\":2}"),
                  "minLength or maxLength");
    check_refused(spec_of(FL_GRAMMAR_JSON_SCHEMA, "{\"$ref\":\"#/$defs/none\"}"), "does not name");
    check_refused(spec_of(FL_GRAMMAR_JSON_SCHEMA, "{\"type\":\"object\",\"required\":[\"a\"]}"), "required property 'a'");
    check_refused(spec_of(FL_GRAMMAR_JSON_SCHEMA, "{\"type\":\"strin\"}"), "type 'strin'");
    check_refused(spec_of(FL_GRAMMAR_JSON_SCHEMA, "{\"type\":"), "not valid JSON");
    check_refused(spec_of(FL_GRAMMAR_JSON_SCHEMA, "{\"enum\":[]}"), "non-empty");
    check_refused(spec_of(FL_GRAMMAR_JSON_SCHEMA, "{\"type\":\"string\",\"minLength\":3,\"maxLength\":2}"), "below");
}

/* Integer ranges: every value from -1200 to 1200 (and some far ones)
 * against the bounds, for ranges of each shape. */
static void test_integer_ranges(void **state)
{
    (void)state;
    static const char *const bounds[] = {
        "\"minimum\":0,\"maximum\":9", "\"minimum\":-5,\"maximum\":5", "\"minimum\":17,\"maximum\":1003",
        "\"minimum\":-999,\"maximum\":-10", "\"minimum\":100", "\"maximum\":-3", "\"exclusiveMinimum\":-1,\"exclusiveMaximum\":250",
        "\"minimum\":0.5,\"maximum\":99.5", "\"minimum\":1000,\"maximum\":1000", "\"minimum\":-1000000000000,\"maximum\":7",
    };
    static const long long lo[] = { 0, -5, 17, -999, 100, LLONG_MIN, 0, 1, 1000, -1000000000000LL };
    static const long long hi[] = { 9, 5, 1003, -10, LLONG_MAX, -3, 249, 99, 1000, 7 };
    for (size_t k = 0; k < sizeof bounds / sizeof bounds[0]; k++) {
        char schema[256];
        snprintf(schema, sizeof schema, "{\"type\":\"integer\",%s}", bounds[k]);
        fl_grammar g;
        compile_ok(SPEC(FL_GRAMMAR_JSON_SCHEMA, schema), &g);
        for (long long v = -1200; v <= 1200; v++) {
            char text[32];
            snprintf(text, sizeof text, "%lld", v);
            const int want = v >= lo[k] && v <= hi[k];
            if (g_accepts(&g, text, strlen(text)) != want) {
                print_error("%s: %lld should%s match\n", schema, v, want ? "" : " not");
                fail();
            }
        }
        static const char *const odd[] = { "-0", "007", "+1", "1e3", "", "-" };
        for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++)
            assert_false(g_accepts(&g, odd[i], strlen(odd[i])));
        assert_int_equal(g_accepts(&g, "123456789012", 12), 123456789012LL >= lo[k] && 123456789012LL <= hi[k]);
        assert_int_equal(g_accepts(&g, "-999999999999", 13), -999999999999LL >= lo[k] && -999999999999LL <= hi[k]);
        fl_grammar_free(&g);
    }
}

/* ---- token masks against brute force ---- */

/* A tokenizer of the given byte strings (ids in order; id 1 special). */
static void fake_tokenizer(fl_tokenizer *t, const char *const *tokens, int n)
{
    memset(t, 0, sizeof *t);
    t->num_ids = n;
    t->id_bytes = calloc((size_t)n, sizeof(char *));
    t->id_bytes_len = calloc((size_t)n, sizeof(uint32_t));
    t->id_special = calloc((size_t)n, 1);
    for (int i = 0; i < n; i++) {
        t->id_bytes[i] = (char *)tokens[i];
        t->id_bytes_len[i] = (uint32_t)strlen(tokens[i]);
    }
    t->id_special[1] = 1;
}

/* Whether grammar g takes token's bytes from configuration cfg. */
static int brute_allows(fl_pda *p, const fl_u32buf *cfg, const char *tok, size_t n)
{
    if (n == 0)
        return 0;
    fl_u32buf a = { 0 }, b = { 0 };
    fl_u32buf_reserve(&a, cfg->len);
    memcpy(a.data, cfg->data, cfg->len * sizeof(uint32_t));
    a.len = cfg->len;
    int ok = 1;
    for (size_t i = 0; i < n && ok; i++) {
        ok = fl_pda_step(p, a.data, a.len, (unsigned char)tok[i], &b) == FL_PDA_OK;
        fl_u32buf t = a;
        a = b;
        b = t;
    }
    fl_u32buf_free(&a), fl_u32buf_free(&b);
    return ok;
}

static void check_masks(const fl_grammar_spec *spec, const char *const *tokens, int n, int walks, int steps)
{
    fl_tokenizer tok;
    fake_tokenizer(&tok, tokens, n);
    fl_token_vocab v;
    fl_token_vocab_init(&v, &tok, n + 3); /* ids past the tokenizer's: never allowed */
    fl_error err;
    fl_constraint *c = fl_constraint_create(spec, &v, &err);
    if (!c) {
        print_error("%s\n", err.msg);
        fail();
    }
    fl_grammar g;
    compile_ok(spec, &g);
    fl_pda p;
    fl_pda_init(&p, &g);
    const int words = fl_token_mask_words(v.vocab_size);
    uint32_t *mask = calloc((size_t)words, sizeof *mask);
    const uint64_t key = fl_rng_key(5, (uint64_t)n);
    int compared = 0, allowed = 0, ended = 0;
    for (int w = 0; w < walks; w++) {
        fl_constraint_state s;
        fl_constraint_state_init(c, &s);
        for (int step = 0; step < steps; step++) {
            assert_int_equal(fl_constraint_fill_mask(c, &s, mask), 0);
            int count = 0, pick = -1;
            for (int id = 0; id < v.vocab_size; id++) {
                const int want = id < n && id != 1 && brute_allows(&p, &s.cfg, tokens[id], strlen(tokens[id]));
                const int got = (int)(mask[id >> 5] >> (id & 31) & 1);
                if (want != got) {
                    print_error("walk %d step %d token %d '%s': brute force %d, mask %d\n", w, step, id,
                                id < n ? tokens[id] : "(none)", want, got);
                    fail();
                }
                if (got && fl_rng_at(key, (uint64_t)(w * 1000 + step) * 1000 + (uint64_t)id) % (uint64_t)(++count) == 0)
                    pick = id; /* a uniform choice among the allowed, by reservoir */
                compared++;
            }
            allowed += count;
            if (pick < 0) { /* the end, or a dead end of this small vocabulary */
                ended += fl_constraint_can_end(&s);
                break;
            }
            assert_int_equal(fl_constraint_accept(c, &s, pick), 0);
        }
        fl_constraint_state_free(&s);
    }
    fl_constraint_stats st;
    fl_constraint_get_stats(c, &st);
    printf("  %d token checks over %d walks, %d allowed, %d walks at an end; %lld masks computed, %lld reused\n", compared,
           walks, allowed, ended, (long long)st.masks_computed, (long long)st.masks_reused);
    assert_true(st.masks_reused > 0);
    free(mask);
    fl_pda_free(&p);
    fl_grammar_free(&g);
    fl_constraint_unref(c);
    fl_token_vocab_free(&v);
    free(tok.id_bytes), free(tok.id_bytes_len), free(tok.id_special);
}

static const char *const json_tokens[] = {
    "{", "<special>", "}", "{\"", "\"", "\":", "\": ", ", ", ",", ":", " ", "  ", "\n", "a", "ab", "abc", "b",
    "name", "\"name", "\"name\": \"", "n", "\"n\": ", "kind", "\"kind", "1", "12", "0", "-", "-1", ".", "5", "e",
    "E+", "true", "tr", "ue", "false", "null", "nu", "[", "]", "[]", "[\"", "\"]", "\"}", "\"},", "}}", "\\", "\\\"",
    "\\u", "00", "e9", "\xc3", "\xa9", "\xc3\xa9", "\xe2\x82", "\xac", "é\"", "x\"", "\"x", "at", "\"at\": {",
    "tags", "\"tags\": [", "\": [", "\": {", "\"ok\": ", "ok", "\": true", "b c", "\"b", " c\"", "\x01", "\t",
    "\", \"", "\"]}", "]}", "1}", "0,", "7, \"",
};

static void test_masks_json(void **state)
{
    (void)state;
    const char *schema = "{\"type\":\"object\",\"properties\":{"
                         "\"name\":{\"type\":\"string\",\"maxLength\":4},"
                         "\"kind\":{\"enum\":[\"a\",\"b c\"]},"
                         "\"n\":{\"type\":\"integer\"},"
                         "\"ok\":{\"type\":\"boolean\"},"
                         "\"at\":{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\"}}},"
                         "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\",\"maxLength\":2},\"maxItems\":2}"
                         "},\"required\":[\"name\",\"n\"]}";
    const int n = (int)(sizeof json_tokens / sizeof json_tokens[0]);
    fl_grammar_spec compact = spec_of(FL_GRAMMAR_JSON_SCHEMA, schema);
    compact.any_whitespace = 0;
    check_masks(&compact, json_tokens, n, 40, 40);
    check_masks(SPEC(FL_GRAMMAR_JSON_SCHEMA, schema), json_tokens, n, 20, 30);
    check_masks(&(fl_grammar_spec){ .kind = FL_GRAMMAR_JSON_OBJECT, .any_whitespace = 1 }, json_tokens, n, 20, 30);
}

static void test_masks_regex_ebnf(void **state)
{
    (void)state;
    static const char *const toks[] = { "a", "<s>", "b", "ab", "ba", "aab", "x", "é", "\xc3", "\xa9", "€", "\xe2",
                                        "\x82\xac", "1", "12", "-", "a-", "-1", "\n", "" };
    const int n = (int)(sizeof toks / sizeof toks[0]);
    check_masks(SPEC(FL_GRAMMAR_REGEX, "(ab|b)*[é€]{1,3}-?\\d+"), toks, n, 30, 12);
    check_masks(SPEC(FL_GRAMMAR_EBNF, "root ::= x (\"-\" x)*\nx ::= [a-b] x | \"1\" | [^\\x00-\\x7f]\n"), toks, n,
                30, 12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_choice),
        cmocka_unit_test(test_ebnf),
        cmocka_unit_test(test_regex_examples),
        cmocka_unit_test(test_regex_vs_pcre2),
        cmocka_unit_test(test_json_schema),
        cmocka_unit_test(test_integer_ranges),
        cmocka_unit_test(test_masks_json),
        cmocka_unit_test(test_masks_regex_ebnf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

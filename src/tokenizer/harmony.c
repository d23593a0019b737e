/* harmony.c - rendering chat requests in gpt-oss's harmony format and
 * parsing its output (see harmony.h).
 *
 * What a request becomes, as vLLM's gpt-oss chat path builds it:
 * - the system message: harmony's defaults (model identity, knowledge
 *   cutoff 2024-06, the three channels), the request's reasoning effort
 *   (medium when absent, harmony's default, since vLLM leaves it unset) and
 *   today's date;
 * - a leading system or developer message becomes the developer message's
 *   "# Instructions"; one later in the conversation becomes a developer
 *   message of its own;
 * - a user message is rendered as it is, content null as "";
 * - an assistant message becomes an analysis message (its reasoning) and a
 *   final one (its content), each only when not empty;
 * - analysis messages before the conversation's last final message are
 *   left out: harmony's guide says to drop the chain of thought of a turn
 *   that ended in a final answer (vLLM's versions differ on older turns;
 *   this is the documented rule);
 * - the prompt ends with <|start|>assistant.
 * Each piece of text is encoded alone (role, channel, content), as the
 * library does, so the token boundaries are its boundaries too. */
#include "tokenizer/harmony.h"

#include <string.h>

#include "base/alloc.h"

static const char *const effort_names[] = { "low", "medium", "high" };

int fl_harmony_init(fl_harmony *h, const fl_tokenizer *tok, fl_error *err)
{
    static const char *const names[] = { "<|start|>", "<|end|>", "<|message|>", "<|channel|>",
                                         "<|return|>", "<|call|>" };
    int32_t *const slots[] = { &h->start, &h->end, &h->message, &h->channel, &h->ret, &h->call };
    memset(h, 0, sizeof *h);
    h->tok = tok;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        *slots[i] = fl_tokenizer_token_id(tok, names[i]);
        if (*slots[i] < 0)
            return fl_fail(err, "the harmony format needs the special token %s, which the "
                           "tokenizer lacks", names[i]);
    }
    return 0;
}

/* ---- rendering ---- */

/* One message to render: its role, channel (or NULL) and text. */
typedef struct hmsg {
    const char *role, *channel, *text;
    size_t len;
    int instructions;          /* the text follows "# Instructions\n\n" (a developer message) */
} hmsg;

static void text_into(const fl_harmony *h, fl_tok_scratch *s, const char *t, size_t n, fl_ids *out)
{
    fl_tokenizer_encode_ordinary(h->tok, s, t, n, out);
}

static void render_message(const fl_harmony *h, fl_tok_scratch *s, const hmsg *m, fl_ids *out)
{
    fl_ids_push(out, h->start);
    text_into(h, s, m->role, strlen(m->role), out);
    if (m->channel) {
        fl_ids_push(out, h->channel);
        text_into(h, s, m->channel, strlen(m->channel), out);
    }
    fl_ids_push(out, h->message);
    if (m->instructions) {
        fl_strbuf dev = { 0 };
        fl_strbuf_append_str(&dev, "# Instructions\n\n");
        fl_strbuf_append(&dev, m->text, m->len);
        text_into(h, s, dev.data, dev.len, out);
        fl_strbuf_free(&dev);
    } else {
        text_into(h, s, m->text, m->len, out);
    }
    fl_ids_push(out, h->end);
}

/* The members a message of this role may have. */
static int member_allowed(const char *role, const char *key)
{
    if (strcmp(key, "role") == 0 || strcmp(key, "content") == 0)
        return 1;
    return strcmp(role, "assistant") == 0 &&
           (strcmp(key, "reasoning") == 0 || strcmp(key, "reasoning_content") == 0);
}

/* A string or null member; -1 for anything else. */
static int string_member(json_t *m, const char *key, size_t i, const char **text, size_t *len,
                         fl_error *err)
{
    json_t *v = json_object_get(m, key);
    *text = NULL;
    *len = 0;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return fl_fail(err, "'messages'[%zu].%s must be a string", i, key);
    *text = json_string_value(v);
    *len = json_string_length(v);
    return 0;
}

/* Checks message i and turns it into 0, 1 or 2 harmony messages. */
static int convert(json_t *m, size_t i, int leading, hmsg *out, int *n, fl_error *err)
{
    json_t *role_v = json_object_get(m, "role");
    if (!json_is_object(m) || !json_is_string(role_v))
        return fl_fail(err, "'messages'[%zu] needs a string 'role'", i);
    const char *role = json_string_value(role_v);
    if (strcmp(role, "tool") == 0)
        return fl_fail(err, "'messages'[%zu]: tool results are not supported with the harmony "
                       "format yet", i);
    if (strcmp(role, "system") != 0 && strcmp(role, "developer") != 0 && strcmp(role, "user") != 0 &&
        strcmp(role, "assistant") != 0)
        return fl_fail(err, "'messages'[%zu].role '%s' is not one of system, developer, user, "
                       "assistant", i, role);
    const char *key;
    json_t *v;
    json_object_foreach(m, key, v) {
        if (strcmp(key, "tool_calls") == 0 && strcmp(role, "assistant") == 0) {
            if (!json_is_null(v) && !(json_is_array(v) && json_array_size(v) == 0))
                return fl_fail(err, "'messages'[%zu].tool_calls: tool calls are not supported "
                               "with the harmony format yet", i);
        } else if (!member_allowed(role, key)) {
            return fl_fail(err, "'messages'[%zu].%s is not supported with the harmony format", i,
                           key);
        }
    }
    const char *content, *reasoning, *reasoning_alt;
    size_t content_len, reasoning_len, alt_len;
    if (string_member(m, "content", i, &content, &content_len, err) ||
        string_member(m, "reasoning", i, &reasoning, &reasoning_len, err) ||
        string_member(m, "reasoning_content", i, &reasoning_alt, &alt_len, err))
        return -1;
    if (reasoning && reasoning_alt)
        return fl_fail(err, "'messages'[%zu] has both 'reasoning' and 'reasoning_content': give "
                       "one", i);
    if (reasoning_alt) {
        reasoning = reasoning_alt;
        reasoning_len = alt_len;
    }
    *n = 0;
    if (strcmp(role, "user") == 0) {
        out[(*n)++] = (hmsg){ "user", NULL, content ? content : "", content_len, 0 };
    } else if (strcmp(role, "assistant") == 0) {
        if (reasoning_len)
            out[(*n)++] = (hmsg){ "assistant", "analysis", reasoning, reasoning_len, 0 };
        if (content_len)
            out[(*n)++] = (hmsg){ "assistant", "final", content, content_len, 0 };
    } else if (content && !(leading && content_len == 0)) {
        /* system or developer: instructions; a leading empty one says nothing */
        out[(*n)++] = (hmsg){ "developer", NULL, content, content_len, 1 };
    }
    return 0;
}

static const char system_format[] =
    "You are ChatGPT, a large language model trained by OpenAI.\n"
    "Knowledge cutoff: 2024-06\n"
    "Current date: %s\n\n"
    "Reasoning: %s\n\n"
    "# Valid channels: analysis, commentary, final. Channel must be included for every message.";

int fl_harmony_render(const fl_harmony *h, fl_tok_scratch *s, json_t *messages,
                      fl_harmony_effort effort, const char *date, fl_ids *out, fl_error *err)
{
    FL_ASSERT(effort >= FL_HARMONY_LOW && effort <= FL_HARMONY_HIGH);
    if (!json_is_array(messages))
        return fl_fail(err, "'messages' must be a list");
    const size_t n = json_array_size(messages);
    hmsg *list = fl_malloc((2 * n + 1) * sizeof *list);
    int count = 0;
    for (size_t i = 0; i < n; i++) {
        int got = 0;
        if (convert(json_array_get(messages, i), i, i == 0, list + count, &got, err) != 0) {
            free(list);
            return -1;
        }
        count += got;
    }
    int last_final = -1;
    for (int i = 0; i < count; i++)
        if (list[i].channel && strcmp(list[i].channel, "final") == 0)
            last_final = i;
    fl_strbuf sys = { 0 };
    fl_strbuf_appendf(&sys, system_format, date, effort_names[effort]);
    render_message(h, s, &(hmsg){ "system", NULL, sys.data, sys.len, 0 }, out);
    fl_strbuf_free(&sys);
    for (int i = 0; i < count; i++)
        if (!(i < last_final && strcmp(list[i].channel ? list[i].channel : "", "analysis") == 0))
            render_message(h, s, &list[i], out);
    fl_ids_push(out, h->start);
    text_into(h, s, "assistant", strlen("assistant"), out);
    free(list);
    return 0;
}

/* ---- parsing ---- */

enum { IN_HEADER, IN_CONTENT, BETWEEN };

void fl_harmony_parser_init(fl_harmony_parser *p, const fl_harmony *h)
{
    memset(p, 0, sizeof *p);
    p->h = h;
    p->state = IN_HEADER; /* the prompt ended with <|start|>assistant */
    p->role_given = 1;
    fl_detokenizer_init(&p->text, h->tok, 0);
}

void fl_harmony_parser_free(fl_harmony_parser *p)
{
    fl_ids_free(&p->header);
    fl_detokenizer_free(&p->text);
    fl_strbuf_free(&p->piece);
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Splits s at whitespace into at most max parts; returns the count, or -1
 * if there are more. */
static int split_words(char *s, char **parts, int max)
{
    int n = 0;
    for (char *p = s; *p;) {
        while (is_space(*p))
            *p++ = '\0';
        if (!*p)
            break;
        if (n == max)
            return -1;
        parts[n++] = p;
        while (*p && !is_space(*p))
            p++;
    }
    return n;
}

/* Where the message whose header is text goes, after harmony's reading of
 * a header: the channel follows <|channel|> up to a space or '<'; the rest,
 * split at spaces (<|constrain|> starting a word of its own), is the role
 * unless the prompt gave it, then a recipient ("to=..." or a lone word)
 * and a content type. A header that does not read this way is hidden. */
static fl_harmony_dest header_dest(const fl_harmony_parser *p, const char *text)
{
    fl_strbuf rest = { 0 }, channel = { 0 };
    const char *marker = strstr(text, "<|channel|>");
    if (marker) {
        const char *v = marker + strlen("<|channel|>"), *e = v;
        while (*e && !is_space(*e) && *e != '<')
            e++;
        fl_strbuf_append(&rest, text, (size_t)(marker - text));
        fl_strbuf_append_str(&rest, e);
        fl_strbuf_append(&channel, v, (size_t)(e - v));
    } else {
        fl_strbuf_append_str(&rest, text);
    }
    /* a space before each <|constrain|>, so the content type is a word */
    fl_strbuf spaced = { 0 };
    for (const char *c = rest.data ? rest.data : ""; *c;) {
        if (strncmp(c, "<|constrain|>", strlen("<|constrain|>")) == 0)
            fl_strbuf_append_char(&spaced, ' ');
        fl_strbuf_append_char(&spaced, *c++);
    }
    char *parts[4];
    int n = split_words(spaced.data ? spaced.data : (char[]){ 0 }, parts, 4);
    int ok = n >= 0 && (!marker || channel.len > 0);
    int first = 0, has_recipient = 0;
    if (ok && !p->role_given)
        ok = n > 0, first = 1;                   /* the role */
    else if (ok && n > 0 && strcmp(parts[0], "assistant") == 0)
        first = 1;
    if (ok && n > first) {
        const char *last = parts[--n];
        if (strncmp(last, "to=", 3) == 0 || (n == first && strncmp(last, "<|constrain|>", 13) != 0)) {
            has_recipient = 1;                   /* a recipient and no content type */
        } else if (n > first) {
            has_recipient = 1;                   /* a content type after a recipient */
            n--;
        }
        ok = n == first;                         /* nothing left over */
    }
    fl_harmony_dest dest = FL_HARMONY_HIDDEN;
    const char *ch = channel.data ? channel.data : "";
    if (ok && strcmp(ch, "analysis") == 0)
        dest = FL_HARMONY_REASONING;
    else if (ok && (strcmp(ch, "final") == 0 || (strcmp(ch, "commentary") == 0 && !has_recipient)))
        dest = FL_HARMONY_CONTENT;
    fl_strbuf_free(&rest);
    fl_strbuf_free(&channel);
    fl_strbuf_free(&spaced);
    return dest;
}

/* Makes the current message one of its destination's texts (joined to the
 * one before by "\n"), once. */
static void count_message(fl_harmony_parser *p, fl_strbuf *to)
{
    if (p->counted || p->dest == FL_HARMONY_HIDDEN)
        return;
    if (p->count[p->dest]++ > 0)
        fl_strbuf_append_char(to, '\n');
    p->counted = 1;
}

static int is_stop(const fl_harmony *h, int32_t t)
{
    return t == h->end || t == h->ret || t == h->call;
}

void fl_harmony_parser_push(fl_harmony_parser *p, int32_t token, fl_strbuf *reasoning,
                            fl_strbuf *content)
{
    const fl_harmony *h = p->h;
    fl_strbuf *to = p->dest == FL_HARMONY_REASONING ? reasoning : content;
    switch (p->state) {
    case IN_HEADER:
        if (token == h->message) {
            fl_strbuf text = { 0 };
            fl_tokenizer_decode(h->tok, p->header.data, p->header.len, 0, &text);
            p->dest = header_dest(p, text.data ? text.data : "");
            fl_strbuf_free(&text);
            p->counted = 0;
            p->header.len = 0;
            p->state = IN_CONTENT;
        } else if (token == h->start) {          /* a new message: the header read so far is lost */
            p->header.len = 0;
            p->role_given = 0;
        } else if (is_stop(h, token)) {          /* a message without content */
            p->header.len = 0;
            p->state = BETWEEN;
        } else {
            fl_ids_push(&p->header, token);
        }
        return;
    case IN_CONTENT:
        fl_strbuf_clear(&p->piece);
        if (is_stop(h, token)) {
            fl_detokenizer_finish(&p->text, &p->piece);
            p->state = BETWEEN;
        } else {
            fl_detokenizer_push(&p->text, token, &p->piece);
        }
        if (p->dest == FL_HARMONY_HIDDEN)
            return;
        if (p->piece.len || p->state == BETWEEN)
            count_message(p, to);
        fl_strbuf_append(to, p->piece.data, p->piece.len);
        return;
    default:
        if (token == h->start) {
            p->state = IN_HEADER;
            p->role_given = 0;
        }
        return;
    }
}

/* test_util.c - see test_util.h. */
#include "test_util.h"

#include <math.h>

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "attention/backend.h"

char *tu_tempdir(void)
{
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *path = malloc(strlen(tmp) + 32);
    sprintf(path, "%s/flashlm-test-XXXXXX", tmp);
    assert_non_null(mkdtemp(path));
    return path;
}

void tu_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

void tu_write_file(const char *dir, const char *name, const void *data, size_t n)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(*len ? *len : 1);
    assert_int_equal(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

void tu_copy_files(const char *src, const char *dst)
{
    DIR *d = opendir(src);
    assert_non_null(d);
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        snprintf(path, sizeof path, "%s/%s", src, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        size_t len;
        unsigned char *buf = read_all(path, &len);
        tu_write_file(dst, e->d_name, buf, len);
        free(buf);
    }
    closedir(d);
}

const char *tu_fixture(const char *name)
{
    static char path[4096];
    /* the GPU machine runs the tests from another checkout path */
    const char *dir = getenv("FLASHLM_FIXTURES_DIR");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : FIXTURES_DIR, name);
    return path;
}

void tu_safetensors_read(tu_safetensors *st, const char *path)
{
    size_t len;
    unsigned char *buf = read_all(path, &len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | buf[i];
    json_error_t jerr;
    st->header = json_loadb((const char *)buf + 8, hlen, 0, &jerr);
    assert_non_null(st->header);
    st->data_len = len - 8 - hlen;
    st->data = malloc(st->data_len ? st->data_len : 1);
    memcpy(st->data, buf + 8 + hlen, st->data_len);
    free(buf);
}

void tu_safetensors_write(const tu_safetensors *st, const char *dir, const char *name)
{
    char *text = json_dumps(st->header, JSON_COMPACT);
    size_t hlen = strlen(text);
    size_t total = 8 + hlen + st->data_len;
    unsigned char *buf = malloc(total);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    memcpy(buf + 8, text, hlen);
    memcpy(buf + 8 + hlen, st->data, st->data_len);
    tu_write_file(dir, name, buf, total);
    free(buf);
    free(text);
}

void tu_safetensors_free(tu_safetensors *st)
{
    json_decref(st->header);
    free(st->data);
}

void tu_truncated_softmax(const float *logits, int v, float temperature, int top_k, float top_p,
                          float min_p, double *p)
{
    double sum = 0, max = 0;
    for (int i = 0; i < v; i++)
        sum += p[i] = exp(logits[i] / temperature);
    for (int i = 0; i < v; i++)
        if ((p[i] /= sum) > max)
            max = p[i];
    for (int i = 0; i < v; i++)
        if ((min_p > 0 && p[i] < min_p * max) || (top_k > 0 && i >= top_k))
            p[i] = 0;
    double mass = 0, kept = 0;
    for (int i = 0; i < v; i++)
        mass += p[i];
    for (int i = 0; i < v; i++) {
        if (top_p < 1 && kept >= top_p * mass)
            p[i] = 0;
        kept += p[i];
    }
    double total = 0;
    for (int i = 0; i < v; i++)
        total += p[i];
    for (int i = 0; i < v; i++)
        p[i] /= total;
}

void tu_check_draws(const char *what, const double *p, const int *count, int v, int draws)
{
    /* chi-square critical values at alpha = 0.001 for 1..7 degrees of freedom */
    static const double critical[8] = { 0, 10.83, 13.82, 16.27, 18.47, 20.52, 22.46, 24.32 };
    double chi2 = 0;
    int df = -1;
    for (int i = 0; i < v; i++) {
        if (p[i] == 0) {
            if (count[i] != 0) {
                print_error("%s: token %d drawn %d times but truncated away\n", what, i, count[i]);
                fail();
            }
            continue;
        }
        const double e = p[i] * draws;
        chi2 += (count[i] - e) * (count[i] - e) / e;
        df++;
    }
    assert_true(df < 8);
    if (df > 0 && chi2 > critical[df]) {
        print_error("%s: chi-square %.2f over %.2f (df %d)\n", what, chi2, critical[df], df);
        fail();
    }
}

const fl_attn_backend *tu_attention(const char *name)
{
    int count;
    const fl_attn_backend *b = fl_attn_backends(&count);
    for (int i = 0; i < count; i++)
        if (strcmp(b[i].name, name) == 0)
            return &b[i];
    fail_msg("no attention backend '%s' is registered", name);
    return NULL;
}

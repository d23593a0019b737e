/* mapped_file.c - read-only mmap of files, plus small-file helpers. */
#include "base/mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"

int fl_open_regular_file(const char *path, size_t *size_out, fl_error *err)
{
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
     * writer, and a device could block likewise. On a regular file the flag
     * changes nothing, but it is cleared anyway so reads stay plain. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return fl_fail(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return fl_fail(err, "%s: not a regular file", path);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        close(fd);
        return fl_fail(err, "%s: cannot open: %s", path, strerror(errno));
    }
    *size_out = (size_t)st.st_size;
    return fd;
}

int fl_mapped_file_open(fl_mapped_file *f, const char *path, fl_error *err)
{
    memset(f, 0, sizeof *f);
    int fd = fl_open_regular_file(path, &f->size, err);
    if (fd < 0)
        return -1;
    if (f->size > 0) {
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return fl_fail(err, "%s: cannot map: %s", path, strerror(errno));
        }
        f->data = p;
    }
    close(fd);
    f->path = fl_strdup(path);
    return 0;
}

void fl_mapped_file_close(fl_mapped_file *f)
{
    if (f->data)
        munmap((void *)f->data, f->size);
    free(f->path);
    memset(f, 0, sizeof *f);
}

char *fl_read_text_file(const char *path, size_t *len_out, fl_error *err)
{
    size_t size;
    int fd = fl_open_regular_file(path, &size, err);
    if (fd < 0)
        return NULL;
    /* Read to the end rather than trust the size: the file may change
     * under us (and /proc-like files report 0). */
    size_t cap = size + 1 > 4096 ? size + 1 : 4096, len = 0;
    char *buf = fl_malloc(cap);
    for (;;) {
        if (len + 1 >= cap)
            buf = fl_realloc(buf, cap *= 2);
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fl_fail(err, "%s: read error: %s", path, strerror(errno));
            close(fd);
            free(buf);
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}

char *fl_path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = fl_malloc(a + b + 2);
    memcpy(p, dir, a);
    size_t at = a;
    if (a > 0 && dir[a - 1] != '/')
        p[at++] = '/';
    memcpy(p + at, name, b + 1);
    return p;
}

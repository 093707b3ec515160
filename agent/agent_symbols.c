/* Symbolizer: the loaded modules (dl_iterate_phdr in this process; /proc/PID/maps and the
 * files' program headers for the process the helper serves) and, per module, its function
 * symbols read from the ELF file (.symtab, which has static functions, and .dynsym; the
 * /usr/lib/debug/.build-id file when the binary is stripped), dladdr as the last resort.
 * C++ names are demangled with the program's own __cxa_demangle when libstdc++ is loaded
 * (never linked in: a C program keeps mangled-free names and no C++ runtime).
 * One symbolizer per thread: the helper's, and one per fg_agent_heap_pprof call. */
#include "agent_internal.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fg_alloc.h"
#include "fg_hash.h"

struct sym {
    uintptr_t addr, size;
    uint32_t name; /* offset into the module's name pool */
};

struct mod {
    struct fg__module m;
    bool loaded;     /* present in the current module list */
    bool syms_tried; /* symbols read (or failed to) */
    struct sym *syms;
    size_t n_syms;
    char *names;
    size_t names_len;
    char **demangled; /* per symbol: NULL = not tried, demangle_failed, or the name */
};

/* __cxa_demangle's signature (libstdc++, Itanium C++ ABI) */
typedef char *(*demangle_fn)(const char *mangled, char *buf, size_t *len, int *status);
static char demangle_failed[1];

struct cache_ent {
    uintptr_t addr; /* looked-up address + 1; 0 = empty */
    struct fg__frame f;
};

#define CACHE_SLOTS 8192u
#define MAPS_MISS_REREAD_MS 1000

struct fg__symbolizer {
    struct mod **mods; /* every module ever seen (strings must outlive unloads) */
    size_t n_mods, cap_mods;
    struct mod **active; /* loaded ones, sorted by start */
    size_t n_active;
    unsigned long long adds, subs;
    bool listed;
    struct cache_ent *cache;
    char **dl_names; /* names from dladdr, kept until free */
    size_t n_dl_names, cap_dl_names;
    demangle_fn demangle; /* NULL while no C++ runtime is loaded */
    pid_t pid;            /* 0: this process */
    long long maps_read_ms;
};

int fg__sym_new(struct fg__symbolizer **out, pid_t pid)
{
    struct fg__symbolizer *s = fg_calloc(1, sizeof(*s));
    if (!s)
        return FG_ENOMEM;
    s->pid = pid;
    s->cache = fg_calloc(CACHE_SLOTS, sizeof(*s->cache));
    if (!s->cache) {
        fg_free(s);
        return FG_ENOMEM;
    }
    *out = s;
    return 0;
}

void fg__sym_free(struct fg__symbolizer *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n_mods; i++) {
        fg_free(s->mods[i]->m.path);
        fg_free(s->mods[i]->syms);
        fg_free(s->mods[i]->names);
        for (size_t k = 0; s->mods[i]->demangled && k < s->mods[i]->n_syms; k++)
            if (s->mods[i]->demangled[k] != demangle_failed)
                fg_free(s->mods[i]->demangled[k]);
        fg_free(s->mods[i]->demangled);
        fg_free(s->mods[i]);
    }
    for (size_t i = 0; i < s->n_dl_names; i++)
        fg_free(s->dl_names[i]);
    fg_free(s->dl_names);
    fg_free(s->mods);
    fg_free(s->active);
    fg_free(s->cache);
    fg_free(s);
}

/* ---- ELF symbols ---- */

static int sym_cmp(const void *a, const void *b)
{
    const struct sym *x = a, *y = b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static bool in_file(size_t size, uint64_t off, uint64_t len)
{
    return off <= size && len <= size - off;
}

/* Appends the FUNC symbols of every SHT_SYMTAB/SHT_DYNSYM section of the mapped file. */
static int read_syms(struct mod *md, const uint8_t *img, size_t size)
{
    if (size < sizeof(Elf64_Ehdr) || memcmp(img, ELFMAG, SELFMAG) != 0 ||
        img[EI_CLASS] != ELFCLASS64)
        return FG_EINVAL;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
    if (eh->e_shentsize != sizeof(Elf64_Shdr) ||
        !in_file(size, eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr)))
        return FG_EINVAL;
    const Elf64_Shdr *sh = (const Elf64_Shdr *)(img + eh->e_shoff);
    size_t want = 0, names_len = 0;
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        if ((sh[i].sh_type == SHT_SYMTAB || sh[i].sh_type == SHT_DYNSYM) &&
            sh[i].sh_link < eh->e_shnum && in_file(size, sh[i].sh_offset, sh[i].sh_size) &&
            in_file(size, sh[sh[i].sh_link].sh_offset, sh[sh[i].sh_link].sh_size)) {
            want += sh[i].sh_size / sizeof(Elf64_Sym);
            names_len += sh[sh[i].sh_link].sh_size;
        }
    }
    if (!want)
        return FG_ENOTFOUND;
    struct sym *syms = fg_realloc(md->syms, (md->n_syms + want) * sizeof(*syms));
    if (!syms)
        return FG_ENOMEM;
    md->syms = syms;
    size_t old_names = md->names_len;
    char *names = fg_realloc(md->names, old_names + names_len + 1);
    if (!names)
        return FG_ENOMEM;
    md->names = names;
    size_t np = old_names;
    for (unsigned i = 0; i < eh->e_shnum; i++) {
        if (!((sh[i].sh_type == SHT_SYMTAB || sh[i].sh_type == SHT_DYNSYM) &&
              sh[i].sh_link < eh->e_shnum && in_file(size, sh[i].sh_offset, sh[i].sh_size)))
            continue;
        const Elf64_Shdr *strh = &sh[sh[i].sh_link];
        if (!in_file(size, strh->sh_offset, strh->sh_size))
            continue;
        const char *str = (const char *)img + strh->sh_offset;
        const Elf64_Sym *es = (const Elf64_Sym *)(img + sh[i].sh_offset);
        size_t count = sh[i].sh_size / sizeof(Elf64_Sym);
        for (size_t k = 0; k < count; k++) {
            unsigned type = ELF64_ST_TYPE(es[k].st_info);
            if ((type != STT_FUNC && type != STT_GNU_IFUNC) || es[k].st_shndx == SHN_UNDEF ||
                !es[k].st_value || es[k].st_name >= strh->sh_size)
                continue;
            const char *nm = str + es[k].st_name;
            size_t len = strnlen(nm, strh->sh_size - es[k].st_name);
            const char *at = memchr(nm, '@', len); /* "pthread_create@@GLIBC_2.34" */
            if (at && at > nm)
                len = (size_t)(at - nm);
            if (!len || np + len + 1 > old_names + names_len + 1)
                continue;
            memcpy(md->names + np, nm, len);
            md->names[np + len] = '\0';
            md->syms[md->n_syms++] = (struct sym){es[k].st_value, es[k].st_size, (uint32_t)np};
            np += len + 1;
        }
    }
    md->names_len = np;
    return 0;
}

static int load_file_syms(struct mod *md, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return FG_EIO;
    struct stat st;
    int rc = FG_EIO;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        void *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (img != MAP_FAILED) {
            rc = read_syms(md, img, (size_t)st.st_size);
            munmap(img, (size_t)st.st_size);
        }
    }
    close(fd);
    return rc;
}

static bool has_symtab(const char *path)
{
    /* Stripped binaries keep .dynsym only; the debug file then has the static functions. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    bool found = false;
    struct stat st;
    if (fstat(fd, &st) == 0 && (size_t)st.st_size >= sizeof(Elf64_Ehdr)) {
        uint8_t *img = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (img != MAP_FAILED) {
            const Elf64_Ehdr *eh = (const Elf64_Ehdr *)img;
            if (memcmp(img, ELFMAG, SELFMAG) == 0 && img[EI_CLASS] == ELFCLASS64 &&
                eh->e_shentsize == sizeof(Elf64_Shdr) &&
                in_file((size_t)st.st_size, eh->e_shoff,
                        (uint64_t)eh->e_shnum * sizeof(Elf64_Shdr))) {
                const Elf64_Shdr *sh = (const Elf64_Shdr *)(img + eh->e_shoff);
                for (unsigned i = 0; i < eh->e_shnum && !found; i++)
                    found = sh[i].sh_type == SHT_SYMTAB;
            }
            munmap(img, (size_t)st.st_size);
        }
    }
    close(fd);
    return found;
}

static void load_syms(struct mod *md)
{
    md->syms_tried = true;
    if (!md->m.path[0] || md->m.path[0] == '[')
        return;
    load_file_syms(md, md->m.path);
    if (!has_symtab(md->m.path) && strlen(md->m.build_id) > 2) {
        char dbg[128];
        snprintf(dbg, sizeof(dbg), "/usr/lib/debug/.build-id/%.2s/%s.debug", md->m.build_id,
                 md->m.build_id + 2);
        load_file_syms(md, dbg);
    }
    if (md->n_syms)
        qsort(md->syms, md->n_syms, sizeof(*md->syms), sym_cmp);
}

/* The index of the symbol of md that holds addr, or SIZE_MAX. */
static size_t find_sym(struct mod *md, uintptr_t addr)
{
    if (!md->syms_tried)
        load_syms(md);
    size_t lo = 0, hi = md->n_syms;
    while (lo < hi) { /* first symbol with start > addr */
        size_t mid = (lo + hi) / 2;
        if (md->syms[mid].addr <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Among symbols starting at the same address any name will do; take one that covers
     * addr (size 0 = unknown extent: accept up to the next symbol). */
    for (size_t i = lo; i-- > 0;) {
        const struct sym *y = &md->syms[i];
        if (y->size == 0 || addr < y->addr + y->size)
            return i;
        if (i > 0 && md->syms[i - 1].addr != y->addr)
            break;
    }
    return SIZE_MAX;
}

/* ---- modules ---- */

struct list_ctx {
    struct fg__symbolizer *s;
    int rc;
};

/* The GNU build id in a PT_NOTE segment's bytes, as hex ("" when none). */
static void build_id_in_notes(const uint8_t *p, size_t len, char out[41])
{
    const uint8_t *end = p + len;
    while ((size_t)(end - p) >= sizeof(ElfW(Nhdr))) {
        const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
        size_t nsz = (nh->n_namesz + 3) & ~3u, dsz = (nh->n_descsz + 3) & ~3u;
        const uint8_t *name = p + sizeof(*nh), *desc = name + nsz;
        if (nsz > (size_t)(end - name) || dsz > (size_t)(end - desc))
            return;
        if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(name, "GNU", 4) == 0 &&
            nh->n_descsz <= 20) {
            static const char hex[] = "0123456789abcdef";
            for (unsigned k = 0; k < nh->n_descsz; k++) {
                out[2 * k] = hex[desc[k] >> 4];
                out[2 * k + 1] = hex[desc[k] & 15];
            }
            out[2 * nh->n_descsz] = '\0';
            return;
        }
        p = desc + dsz;
    }
}

static void build_id_of(const struct dl_phdr_info *info, char out[41])
{
    out[0] = '\0';
    for (int i = 0; i < info->dlpi_phnum && !out[0]; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_NOTE)
            build_id_in_notes((const uint8_t *)(info->dlpi_addr + ph->p_vaddr), ph->p_memsz, out);
    }
}

/* Marks the module (path, [lo, hi), bias) loaded, adding it when it is new. */
static int note_module(struct fg__symbolizer *s, const char *path, uintptr_t lo, uintptr_t hi,
                       uintptr_t off, uintptr_t bias, const char *build_id)
{
    /* A module seen before at the same place is reused: dlopen/dlclose loops stay bounded. */
    struct mod *md = NULL;
    for (size_t i = 0; i < s->n_mods; i++) {
        struct mod *x = s->mods[i];
        if (x->m.start == lo && x->m.limit == hi && x->m.bias == bias &&
            strcmp(x->m.path, path) == 0) {
            md = x;
            break;
        }
    }
    if (!md) {
        if (s->n_mods == s->cap_mods) {
            size_t nc = s->cap_mods ? s->cap_mods * 2 : 32;
            struct mod **nm = fg_realloc(s->mods, nc * sizeof(*nm));
            if (!nm)
                return FG_ENOMEM;
            s->mods = nm;
            s->cap_mods = nc;
        }
        md = fg_calloc(1, sizeof(*md));
        if (!md)
            return FG_ENOMEM;
        md->m.path = fg_strdup(path);
        if (!md->m.path) {
            fg_free(md);
            return FG_ENOMEM;
        }
        md->m.start = lo;
        md->m.limit = hi;
        md->m.offset = off;
        md->m.bias = bias;
        snprintf(md->m.build_id, sizeof(md->m.build_id), "%s", build_id);
        s->mods[s->n_mods++] = md;
    }
    md->loaded = true;
    return 0;
}

static int list_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    struct list_ctx *c = arg;
    struct fg__symbolizer *s = c->s;
    uintptr_t lo = UINTPTR_MAX, hi = 0, off = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        uintptr_t a = info->dlpi_addr + ph->p_vaddr;
        if (a < lo) {
            lo = a;
            off = ph->p_offset;
        }
        hi = FG_MAX(hi, a + ph->p_memsz);
    }
    if (lo >= hi)
        return 0;
    char path[4096], build_id[41];
    if (info->dlpi_name && info->dlpi_name[0]) {
        snprintf(path, sizeof(path), "%s", info->dlpi_name);
    } else {
        ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
        path[n > 0 ? n : 0] = '\0';
    }
    build_id_of(info, build_id);
    if ((c->rc = note_module(s, path, lo, hi, off, info->dlpi_addr, build_id)))
        return 1;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
        s->adds = info->dlpi_adds;
        s->subs = info->dlpi_subs;
    }
    return 0;
}

/* ---- another process's modules: /proc/PID/maps and the files' program headers ---- */

/* One file's consecutive mappings. */
struct maps_group {
    char path[4096];
    unsigned long inode;
    uintptr_t lo, hi;
    uintptr_t first_off; /* file offset of the lowest mapping */
};

/* The load bias (where the file's vaddr 0 went) and build id of g's file. */
static void file_layout(const struct maps_group *g, uintptr_t *bias, uintptr_t *off,
                        char build_id[41])
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    *bias = g->lo - g->first_off; /* right for the usual layout when the file cannot be read */
    *off = g->first_off;
    build_id[0] = '\0';
    int fd = open(g->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    Elf64_Ehdr eh;
    Elf64_Phdr ph[64];
    if (pread(fd, &eh, sizeof(eh), 0) == (ssize_t)sizeof(eh) &&
        memcmp(eh.e_ident, ELFMAG, SELFMAG) == 0 && eh.e_ident[EI_CLASS] == ELFCLASS64 &&
        eh.e_phentsize == sizeof(Elf64_Phdr) && eh.e_phnum <= 64) {
        size_t len = eh.e_phnum * sizeof(Elf64_Phdr);
        if (pread(fd, ph, len, (off_t)eh.e_phoff) == (ssize_t)len) {
            for (unsigned i = 0; i < eh.e_phnum; i++) {
                /* the segment mapped at the group's lowest address gives the bias */
                if (ph[i].p_type == PT_LOAD && (ph[i].p_offset & ~(page - 1)) == g->first_off) {
                    *bias = g->lo - (ph[i].p_vaddr & ~(page - 1));
                    *off = ph[i].p_offset;
                    break;
                }
            }
            for (unsigned i = 0; i < eh.e_phnum && !build_id[0]; i++) {
                uint8_t note[512];
                if (ph[i].p_type != PT_NOTE || ph[i].p_filesz > sizeof(note))
                    continue;
                if (pread(fd, note, ph[i].p_filesz, (off_t)ph[i].p_offset) ==
                    (ssize_t)ph[i].p_filesz)
                    build_id_in_notes(note, ph[i].p_filesz, build_id);
            }
        }
    }
    close(fd);
}

static int note_group(struct fg__symbolizer *s, const struct maps_group *g)
{
    uintptr_t bias, off;
    char build_id[41];
    file_layout(g, &bias, &off, build_id);
    return note_module(s, g->path, g->lo, g->hi, off, bias, build_id);
}

static void mark_unloaded(struct fg__symbolizer *s)
{
    for (size_t i = 0; i < s->n_mods; i++)
        s->mods[i]->loaded = false;
}

/* Lists the file-backed mappings of s->pid, one module per run of one file's mappings. */
static int list_maps(struct fg__symbolizer *s)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/maps", (int)s->pid);
    FILE *f = fopen(path, "re");
    if (!f)
        return FG_EIO; /* the process is gone: the last list stays */
    mark_unloaded(s);
    struct maps_group *g = fg_calloc(1, sizeof(*g));
    char *line = NULL;
    size_t cap = 0;
    bool open_group = false;
    int rc = g ? 0 : FG_ENOMEM;
    while (!rc && getline(&line, &cap, f) > 0) {
        unsigned long start, end, off, inode;
        int name_at = 0;
        if (sscanf(line, "%lx-%lx %*s %lx %*s %lu %n", &start, &end, &off, &inode,
                   &name_at) < 4 || !name_at)
            continue;
        char *name = line + name_at;
        name[strcspn(name, "\n")] = '\0';
        char *deleted = strstr(name, " (deleted)");
        if (deleted && !deleted[10])
            *deleted = '\0';
        if (name[0] != '/' || !inode)
            continue; /* anonymous, [stack], [vdso]... */
        if (open_group && inode == g->inode && start >= g->hi && off != 0 &&
            strcmp(name, g->path) == 0) {
            g->hi = end;
            continue;
        }
        if (open_group)
            rc = note_group(s, g);
        snprintf(g->path, sizeof(g->path), "%s", name);
        g->inode = inode;
        g->lo = start;
        g->hi = end;
        g->first_off = off;
        open_group = true;
    }
    if (!rc && open_group)
        rc = note_group(s, g);
    free(line); /* getline's: the libc allocator's block */
    fg_free(g);
    fclose(f);
    return rc;
}

static int active_cmp(const void *a, const void *b)
{
    const struct mod *x = *(struct mod *const *)a, *y = *(struct mod *const *)b;
    return x->m.start < y->m.start ? -1 : x->m.start > y->m.start;
}

static int counters_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    unsigned long long *v = arg;
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
        v[0] = info->dlpi_adds;
        v[1] = info->dlpi_subs;
    }
    return 1; /* the counters are the same in every entry */
}

void fg__sym_refresh(struct fg__symbolizer *s)
{
    if (s->pid) {
        s->maps_read_ms = fg__mono_ms();
        if (list_maps(s))
            return;
    } else {
        unsigned long long v[2] = {0, 0};
        dl_iterate_phdr(counters_cb, v);
        if (s->listed && v[0] == s->adds && v[1] == s->subs)
            return;
        mark_unloaded(s);
        struct list_ctx c = {s, 0};
        dl_iterate_phdr(list_cb, &c);
    }
    struct mod **act = fg_realloc(s->active, (s->n_mods ? s->n_mods : 1) * sizeof(*act));
    if (!act)
        return;
    s->active = act;
    s->n_active = 0;
    for (size_t i = 0; i < s->n_mods; i++)
        if (s->mods[i]->loaded)
            act[s->n_active++] = s->mods[i];
    qsort(act, s->n_active, sizeof(*act), active_cmp);
    /* libstdc++ may have come (a C++ plugin) or gone with the modules; names already
     * demangled stay. */
    s->demangle = (demangle_fn)dlsym(RTLD_DEFAULT, "__cxa_demangle");
    memset(s->cache, 0, CACHE_SLOTS * sizeof(*s->cache));
    s->listed = true;
}

/* name demangled into fg_ memory, or NULL (not C++, no C++ runtime, or not demangled).
 * __cxa_demangle mallocs: the callers run with fg__tls_guard set (the helper process, the
 * heap API), so those allocations are never sampled. */
static char *demangle(struct fg__symbolizer *s, const char *name)
{
    if (!s->demangle || name[0] != '_' || name[1] != 'Z')
        return NULL;
    int status = -1;
    char *d = s->demangle(name, NULL, NULL, &status);
    char *copy = status == 0 && d ? fg_strdup(d) : NULL;
    free(d); /* the C++ runtime's malloc: whatever malloc is, free matches it */
    return copy;
}

/* The display name of md's symbol i: demangled when it is a C++ one, kept per symbol. */
static const char *sym_name(struct fg__symbolizer *s, struct mod *md, size_t i)
{
    const char *name = md->names + md->syms[i].name;
    if (!s->demangle || name[0] != '_' || name[1] != 'Z')
        return name;
    if (!md->demangled && !(md->demangled = fg_calloc(md->n_syms, sizeof(char *))))
        return name;
    if (!md->demangled[i]) {
        char *d = demangle(s, name);
        md->demangled[i] = d ? d : demangle_failed;
    }
    return md->demangled[i] != demangle_failed ? md->demangled[i] : name;
}

static const char *keep_dl_name(struct fg__symbolizer *s, const char *name)
{
    for (size_t i = 0; i < s->n_dl_names; i++)
        if (strcmp(s->dl_names[i], name) == 0)
            return s->dl_names[i];
    if (s->n_dl_names == s->cap_dl_names) {
        size_t nc = s->cap_dl_names ? s->cap_dl_names * 2 : 16;
        char **nn = fg_realloc(s->dl_names, nc * sizeof(*nn));
        if (!nn)
            return NULL;
        s->dl_names = nn;
        s->cap_dl_names = nc;
    }
    char *copy = fg_strdup(name);
    if (!copy)
        return NULL;
    s->dl_names[s->n_dl_names++] = copy;
    return copy;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Whether dladdr's answer (here) is about md (in the other process). */
static bool same_file(const Dl_info *di, const struct mod *md)
{
    return (uintptr_t)di->dli_fbase == md->m.start && di->dli_fname &&
           strcmp(base_name(di->dli_fname), base_name(md->m.path)) == 0;
}

static struct mod *find_module(struct fg__symbolizer *s, uintptr_t addr)
{
    size_t lo = 0, hi = s->n_active;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->active[mid]->m.start <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo > 0 && addr < s->active[lo - 1]->m.limit)
        return s->active[lo - 1];
    for (size_t i = s->n_mods; i-- > 0;) {
        /* Sampled just before a dlclose: the newest unloaded module that held the address
         * (its file is normally still there to read symbols from). */
        struct mod *x = s->mods[i];
        if (!x->loaded && addr >= x->m.start && addr < x->m.limit)
            return x;
    }
    return NULL;
}

void fg__sym_lookup(struct fg__symbolizer *s, uintptr_t pc, bool leaf, struct fg__frame *out)
{
    uintptr_t addr = leaf ? pc : pc - 1; /* a return address is just past its call */
    uint32_t h = (uint32_t)fg_hash_mix(0, addr) & (CACHE_SLOTS - 1);
    struct cache_ent *ce = &s->cache[h];
    if (ce->addr == addr + 1) {
        *out = ce->f;
        return;
    }
    out->module = NULL;
    out->func = NULL;
    struct mod *md = find_module(s, addr);
    if (!md && s->pid && fg__mono_ms() - s->maps_read_ms >= MAPS_MISS_REREAD_MS) {
        fg__sym_refresh(s); /* loaded since the last read? */
        md = find_module(s, addr);
    }
    if (md) {
        out->module = &md->m;
        size_t si = find_sym(md, addr - md->m.bias);
        if (si != SIZE_MAX)
            out->func = sym_name(s, md, si);
    }
    /* Another process's module is only at the same place here when it was loaded before the
     * helper was forked from it. */
    if (!out->func && (!s->pid || md)) {
        Dl_info di;
        if (dladdr((void *)addr, &di) && di.dli_sname && (!s->pid || same_file(&di, md))) {
            char *d = demangle(s, di.dli_sname);
            out->func = keep_dl_name(s, d ? d : di.dli_sname);
            fg_free(d);
        }
    }
    ce->addr = addr + 1;
    ce->f = *out;
}

/* Demand paging, THP, stack growth and mprotect -> SIGSEGV, with the program's own smaps:
 * what pagesim-emu must get right page by page. Prints the smaps entries of its own
 * anonymous mappings and the [stack] line after each step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <err.h>

#define MiB (1024UL * 1024)

/* Prints the smaps entry of the VMA containing `addr` (NULL: the [stack]), fields that a
 * model of the process decides. */
static void entry(const char *what, void *addr)
{
    char line[512];
    int on = 0;
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f)
        err(1, "smaps");
    printf("-- %s\n", what);
    while (fgets(line, sizeof line, f)) {
        unsigned long s, e;
        if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, ' ') == line + strcspn(line, " ")) {
            if (addr)
                on = (unsigned long)addr >= s && (unsigned long)addr < e;
            else
                on = strstr(line, "[stack]") != NULL;
            if (on)
                fputs(line, stdout);
            continue;
        }
        if (on && (!strncmp(line, "Rss:", 4) || !strncmp(line, "Anonymous:", 10) ||
                   !strncmp(line, "AnonHugePages:", 14) || !strncmp(line, "Private_Dirty:", 14) ||
                   !strncmp(line, "Referenced:", 11) || !strncmp(line, "THPeligible:", 12) ||
                   !strncmp(line, "VmFlags:", 8)))
            fputs(line, stdout);
    }
    fclose(f);
}

static int deep(int n)
{
    volatile char pad[4096];
    pad[0] = (char)n;
    return n == 0 ? pad[0] : deep(n - 1) + pad[0];
}

int main(void)
{
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);
    /* Demand paging: 8 MiB, every other page written, a page read. */
    char *a = mmap(NULL, 8 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED)
        err(1, "mmap");
    entry("8 MiB mapped", a);
    for (unsigned long off = 0; off < 8 * MiB; off += 2 * 4096)
        a[off] = 1;
    volatile char r = a[4096 + 8 * 4096];
    (void)r;
    entry("every other page written", a);
    /* THP: an aligned 2 MiB run written whole. */
    char *t = mmap(NULL, 6 * MiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    char *aligned = (char *)(((unsigned long)t + 2 * MiB - 1) & ~(2 * MiB - 1));
    memset(aligned, 7, 2 * MiB);
    entry("2 MiB written at a 2 MiB boundary", aligned);
    /* Stack growth: 1 MiB of frames. */
    entry("stack before", NULL);
    printf("deep: %d\n", deep(256) & 1);
    entry("stack after 1 MiB of frames", NULL);
    /* mprotect -> SIGSEGV, in a child. */
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        mprotect(a, 4096, PROT_READ);
        a[0] = 2;
        _exit(0);
    }
    int status;
    waitpid(pid, &status, 0);
    printf("child: %s %d\n", WIFSIGNALED(status) ? "signal" : "exit",
           WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    mprotect(a, 4096, PROT_READ);
    entry("after mprotect of the first page", a);
    entry("the rest", a + 4096);
    return 0;
}

/* The second program of the seed notes, reading its own /proc/self/maps instead of
 * running `cat /proc/PID/maps` through system(): a 100 MiB anonymous mmap adds one rw-p
 * line; touching a page of it and unmapping it are visible in maps and smaps. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <err.h>
#define ALLOC_SIZE (100 * 1024 * 1024)

static void show(const char *file)
{
    char buf[4096];
    FILE *f = fopen(file, "r");
    size_t n;
    if (!f)
        err(EXIT_FAILURE, "fopen %s", file);
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        fwrite(buf, 1, n, stdout);
    fclose(f);
    fflush(stdout);
}

int main(void)
{
    puts("*** memory map before memory allocation ***");
    show("/proc/self/maps");
    char *m = mmap(NULL, ALLOC_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        err(EXIT_FAILURE, "mmap() failed");
    puts("");
    printf("*** succeeded to allocate memory: address = %p; size = 0x%x ***\n", m, ALLOC_SIZE);
    puts("");
    puts("*** memory map after memory allocation ***");
    show("/proc/self/maps");
    memset(m, 1, 3 * 4096);
    if (m[4096] != 1)
        errx(EXIT_FAILURE, "the store did not stick");
    if (munmap(m, ALLOC_SIZE) == -1)
        err(EXIT_FAILURE, "munmap() failed");
    puts("*** memory map after munmap ***");
    show("/proc/self/maps");
    exit(EXIT_SUCCESS);
}

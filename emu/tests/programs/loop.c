/* The memory-bound loop of pagesim-emu's speed bench: a 100 MiB anonymous mapping walked
 * by a store every 64 bytes, PASSES times (argv[1]); the loop is the same three
 * instructions the bench runs on Unicorn's own MMU. */
#include <stdlib.h>
#include <sys/mman.h>

#define SIZE (100UL << 20)

int main(int argc, char **argv)
{
    long passes = argc > 1 ? atol(argv[1]) : 1;
    char *m = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 1;
    for (long p = 0; p < passes; p++) {
        char *q = m, *end = m + SIZE;
        __asm__ volatile("1: str xzr, [%0], #64\n"
                         "   cmp %0, %1\n"
                         "   b.lo 1b\n"
                         : "+r"(q)
                         : "r"(end)
                         : "cc", "memory");
    }
    return 0;
}

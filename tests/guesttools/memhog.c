/* memhog MIB hold|free: allocate MIB MiB, touch every page, say so, then either hold it
 * until killed or free it and exit. Used by the balloon tests to fill and empty guest memory.
 * Prints MEMHOG-TOUCHED <MiB> once the pages are touched, MEMHOG-FREED after a free.
 *
 * Memory is taken one MiB at a time: the kernel's overcommit heuristic judges each request
 * alone, so running out of memory ends in the OOM killer (or a deflating balloon), not in a
 * refused malloc. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MIB (1024UL * 1024UL)
#define PAGE 4096UL

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[2], "hold") && strcmp(argv[2], "free"))) {
        fprintf(stderr, "usage: memhog MIB hold|free\n");
        return 2;
    }
    unsigned long mib = strtoul(argv[1], NULL, 10);
    unsigned char **chunks = calloc(mib ? mib : 1, sizeof *chunks);
    if (chunks == NULL)
        return 1;
    for (unsigned long chunk = 0; chunk < mib; chunk++) {
        chunks[chunk] = malloc(MIB);
        if (chunks[chunk] == NULL) {
            printf("MEMHOG-NOMEM %lu\n", chunk);
            return 1;
        }
        for (unsigned long offset = 0; offset < MIB; offset += PAGE)
            chunks[chunk][offset] = (unsigned char)(offset / PAGE) | 1;
    }
    printf("MEMHOG-TOUCHED %lu\n", mib);
    fflush(stdout);
    if (!strcmp(argv[2], "hold")) {
        for (;;)
            pause();
    }
    for (unsigned long chunk = 0; chunk < mib; chunk++)
        free(chunks[chunk]);
    free(chunks);
    printf("MEMHOG-FREED %lu\n", mib);
    return 0;
}

/* A container that uses ever more memory until its cgroup's limit stops it: the test node's way to make the kernel's
 * out-of-memory killer end a store's container for real. Written for this project; compiled statically into the
 * test node's memory-hog image by scripts/node-images.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    const size_t step = 16u << 20;
    size_t total = 0;
    for (;;) {
        char *block = malloc(step);
        if (block == NULL) {
            sleep(1);
            continue;
        }
        /* Touched, so the pages are really used. */
        memset(block, 1, step);
        total += step;
        printf("using %zu MiB\n", total >> 20);
        fflush(stdout);
    }
}

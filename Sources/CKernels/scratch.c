// Per-thread scratch buffers of the kernels (B packed per call, copied blocks of A, rows of A
// rounded to bf16): one small table of 64-byte-aligned buffers per thread, grown on demand,
// never shrunk, freed when the thread exits.
#include "internal.h"
#include <pthread.h>
#include <stdlib.h>

typedef struct {
    void *bytes[CK_SCRATCH_SLOTS];
    size_t capacity[CK_SCRATCH_SLOTS];
} scratch_table;

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;

static void release_table(void *p) {
    scratch_table *table = p;
    for (int i = 0; i < CK_SCRATCH_SLOTS; i++) free(table->bytes[i]);
    free(table);
}

static void make_scratch_key(void) { pthread_key_create(&scratch_key, release_table); }

void *ck_thread_scratch(int slot, size_t bytes) {
    if (slot < 0 || slot >= CK_SCRATCH_SLOTS) return NULL;
    pthread_once(&scratch_once, make_scratch_key);
    scratch_table *table = pthread_getspecific(scratch_key);
    if (!table) {
        table = calloc(1, sizeof *table);
        if (!table) return NULL;
        if (pthread_setspecific(scratch_key, table) != 0) {
            free(table);
            return NULL;
        }
    }
    if (bytes == 0) bytes = 64;
    if (table->capacity[slot] < bytes) {
        void *p = NULL;
        if (posix_memalign(&p, 64, bytes) != 0) return NULL;
        free(table->bytes[slot]);
        table->bytes[slot] = p;
        table->capacity[slot] = bytes;
    }
    return table->bytes[slot];
}

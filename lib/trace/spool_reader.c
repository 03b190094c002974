/* The spool's consumer: turns the records a traced process writes into its
 * spool (spool.h) into the SQLite trace, while the process runs and after
 * it has ended, however it ended.
 *
 * Chunks are read in whatever order they fill, so the two halves of a
 * lifetime can arrive either way round: an allocation record waits in a
 * table keyed by sequence number until its release record comes; a
 * release that comes first leaves a marker for its allocation.  Whatever
 * allocation is still waiting at the end was live when the process ended:
 * a leak, or, if the process died, a block it held at its death.  The rows
 * of one poll go to SQLite in sequence order (sqlw.h), not in the order
 * the pairs completed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <alloctrace/alloctrace.h>

#include "clock.h"
#include "complete.h"
#include "module_rows.h"
#include "pairs.h"
#include "records.h"
#include "replay.h"
#include "run_protocol.h"
#include "schema.h"
#include "spool.h"
#include "spool_reader.h"
#include "sqlw.h"
#include "tracer_internal.h"
#include "writer.h"

/* The sequence numbers of the halves one chunk left waiting in `live`. */
typedef struct pend_list {
    uint64_t *seq;
    uint32_t n, cap;
} pend_list;

/* A chunk to read in this poll, and where it stands in the run. */
typedef struct chunk_ref {
    uint64_t age;
    uint32_t i;
} chunk_ref;

/* A half of a lifetime a resumed reader found in spool_pending. */
typedef struct loaded_half {
    uint64_t seq;
    uint8_t state; /* AT_PAIR_ALLOC or AT_PAIR_FREE */
} loaded_half;

struct at_spool_reader {
    at_spool spool;
    sqlite3 *db;
    at_sqlw *w;
    at_pending live;      /* allocations waiting for their release */
    size_t waiting_frees; /* releases waiting for their allocation, in live.hash */
    uint64_t *gen;
    uint64_t *off;
    chunk_ref *order; /* the chunks of a poll, oldest first */
    int ended;      /* an END record came: the producer closed properly */
    at_rec_end end;
    int exec_pending; /* an EXEC record came and no EXEC_FAILED since */
    at_rec_end exec;
    uint64_t max_seq; /* the highest sequence number of an event read */
    uint64_t events;  /* allocations and releases read */
    int corrupt;
    int nomem;
    /* Durability (see "Kept until the trace holds it" below). */
    uint32_t *held;    /* FULL chunks read to their end, given back after COMMIT */
    uint32_t nheld;
    int began;         /* a transaction is open: what was read since the last commit */
    uint64_t began_ns; /* when it began */
    pend_list *pend;   /* per chunk: halves it put in `live` in its current gen */
    uint32_t cur;      /* the chunk being read */
    int keep_on_error; /* the producer has ended: chunks not committed stay in the spool */
    sqlite3_stmt *put_pending;
    at_pair *waiting;    /* the halves a commit stores in the waiting file */
    size_t nwaiting, waiting_cap;
    int waiting_fd;      /* SPOOL-waiting, appended; -1 when not open */
    char waiting_path[PATH_MAX + 16];
    /* Resumed over the trace of a reader that died: records already in
     * the trace are recognized and skipped. */
    int resumed;
    int resumed_arguments; /* the trace has the arguments already */
    /* Resumed over an aggregated run's trace (meta aggregating): the dead
     * reader folded lifetimes in memory, so a loaded allocation half may
     * have been released (its record given back, its lifetime folded and
     * lost).  At the end such a half is a leak only if the exit scan saw
     * the block live; the others are counted in `doubtful`. */
    int resumed_aggregating;
    uint64_t doubtful;
    sqlite3_stmt *has_lifetime, *has_finding;
    /* The halves loaded from spool_pending, sorted: the spool may hold
     * their records still (the dead reader committed them, then died
     * before giving their chunk back), read again after the loaded half
     * was paired, when its lifetime is in a batch not yet in the table. */
    loaded_half *loaded;
    size_t nloaded, loaded_cap;
    long die_after_commit; /* AT_ENV_FAULT_DIE_AFTER_COMMIT, counted down */
    int die_after_late;    /* ... "late": after the first commit with rows set aside */
    int die_after_fold;    /* ... "fold": 1, then counts the commits past a fold (4th: die) */
};

static int by_half(const void *a, const void *b)
{
    const loaded_half *x = a, *y = b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return (x->state > y->state) - (x->state < y->state);
}

/* ---- Kept until the trace holds it ------------------------------------------------
 *
 * The reader may die (SIGKILL) at any moment; `alloctrace recover` then
 * resumes from the trace and the spool (at__spool_reader_resume).  So the
 * spool keeps every record the trace does not hold yet: a FULL chunk is
 * given back only after the transaction holding its rows has committed
 * (with a rollback journal, so a kill in the middle of a commit leaves the
 * last committed state); a half of a lifetime waiting for its other half
 * lives only in the reader's memory, so the halves the chunks given back
 * leave waiting are appended to the waiting file (the spool's path and
 * "-waiting": at_pair after at_pair) before that transaction commits; END
 * and EXEC go to `spool_pending` in the transaction.  The waiting halves
 * were rows of spool_pending once, a row a half: 2 M blocks kept live
 * took 0.8 s of the reader's CPU, and their 107 MB stayed in the finished
 * trace as free pages.  A half in the file whose commit never came is
 * harmless: its chunk was not given back, the resumed reader reads its
 * record again and knows it (`seen`).  The resumed reader reads every chunk still in the spool from
 * its start and skips what the trace holds (a lifetime, a finding, a
 * pending half).  spool_pending is dropped when the trace is complete. */

#define PENDING_TABLE                                                                              \
    "CREATE TABLE IF NOT EXISTS spool_pending(seq INTEGER PRIMARY KEY, entry BLOB NOT NULL);"
/* spool_pending's keys for the records of the end, below every event's */
enum { PENDING_END = -1, PENDING_EXEC = -2 };

/* Another process reading the trace (a user's query) holds a lock for a
 * while: the reader waits for it (AT_READER_BUSY_MS at most) rather than
 * failing its commit, which lost the whole trace. */
enum { AT_READER_BUSY_MS = 20000 };

/* Journal and sync as the reader writes: a rollback journal (TRUNCATE:
 * no file created and deleted at each commit), no fsync (the trace must
 * survive its writer's death, not the machine's); the lock wait above.
 * An 8 MiB page cache: the rows append (lifetimes far behind go to
 * lifetimes_late, rows.c), so a larger one only held pages never read
 * again; 64 MiB measured the same times (keep_live 2 M, churn 2 M pairs,
 * clang++ -fsyntax-only) with 50 MB more of the tree's memory, and 8 MiB
 * the same as 16 (alternating 5 times with 924bdb6: clang++ 0.97 of its
 * time, churn 0.99, keep_live 1.02) with keep_live 2 M's reader 8 MB
 * smaller. */
static int db_settings(sqlite3 *db)
{
    sqlite3_busy_timeout(db, AT_READER_BUSY_MS);
    return at__sql_exec(db, "PRAGMA journal_mode=TRUNCATE; PRAGMA synchronous=OFF;"
                            " PRAGMA cache_size=-8192;");
}

static int prepare_pending(at_spool_reader *r)
{
    return sqlite3_prepare_v2(r->db, "INSERT OR REPLACE INTO spool_pending VALUES(?, ?)", -1,
                              &r->put_pending, NULL) == SQLITE_OK
               ? 0
               : AT_E_DB;
}

static void put_pending(at_spool_reader *r, int64_t key, const void *entry, size_t size)
{
    sqlite3_bind_int64(r->put_pending, 1, key);
    sqlite3_bind_blob(r->put_pending, 2, entry, (int)size, SQLITE_STATIC);
    if (sqlite3_step(r->put_pending) != SQLITE_DONE)
        r->nomem = 1; /* counted as a spool error; the trace itself is whole */
    sqlite3_reset(r->put_pending);
}

/* Chunk r->cur left the half `seq` waiting. */
static void note_pending(at_spool_reader *r, uint64_t seq)
{
    pend_list *l = &r->pend[r->cur];
    if (l->n == l->cap) {
        uint32_t cap = l->cap ? l->cap * 2 : 64;
        uint64_t *v = realloc(l->seq, cap * sizeof *v);
        if (!v) {
            r->nomem = 1;
            return;
        }
        l->seq = v;
        l->cap = cap;
    }
    l->seq[l->n++] = seq;
}

/* Before the commit that gives chunk `i` back: the halves it left that
 * still wait, gathered for the waiting file (store_waiting). */
static void store_pending(at_spool_reader *r, uint32_t i)
{
    pend_list *l = &r->pend[i];
    for (uint32_t k = 0; k < l->n; k++) {
        if (r->nwaiting == r->waiting_cap) {
            size_t cap = r->waiting_cap ? r->waiting_cap * 2 : 1024;
            at_pair *v = realloc(r->waiting, cap * sizeof *v);
            if (!v) {
                r->nomem = 1;
                break;
            }
            r->waiting = v;
            r->waiting_cap = cap;
        }
        r->nwaiting += at__pending_peek(&r->live, l->seq[k], &r->waiting[r->nwaiting]);
    }
    l->n = 0;
}

/* The halves store_pending gathered, appended to the waiting file; a
 * failure is counted as a spool error (the trace itself is whole). */
static void store_waiting(at_spool_reader *r)
{
    const char *p = (const char *)r->waiting;
    size_t left = r->nwaiting * sizeof *r->waiting;
    r->nwaiting = 0;
    if (left && r->waiting_fd < 0) {
        r->nomem = 1;
        return;
    }
    while (left) {
        ssize_t n = write(r->waiting_fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            r->nomem = 1;
            return;
        }
        p += n;
        left -= (size_t)n;
    }
}

/* After the commit: the chunks read to their end go back to the producer.
 * `used` is cleared first so that a stale value is never read as data
 * when the chunk is refilled. */
static void give_back(at_spool_reader *r)
{
    for (uint32_t k = 0; k < r->nheld; k++) {
        uint32_t i = r->held[k];
        at_spool_chunk *c = at__spool_chunk(&r->spool, i);
        __atomic_store_n(&at__chunk_buf(c)->used, 0, __ATOMIC_RELAXED);
        r->off[i] = 0;
        __atomic_store_n(&c->state, AT_CHUNK_FREE, __ATOMIC_RELEASE);
    }
    r->nheld = 0;
}

/* The reader's connection is its thread's alone: opened without SQLite's
 * per-connection mutex, which every call took and gave back. */
#define OPEN_FLAGS (SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_NOMUTEX)

static int open_db(at_spool_reader *r, const char *db_path, int overwrite)
{
    int rc = at__create_trace_file(db_path, overwrite);
    if (rc)
        return rc;
    if (sqlite3_open_v2(db_path, &r->db, OPEN_FLAGS, NULL) != SQLITE_OK)
        return AT_E_DB;
    rc = at__sql_exec(r->db, "PRAGMA page_size=16384; PRAGMA user_version=" AT_STRINGIFY(
                                 AT_SCHEMA_VERSION) ";");
    if (!rc)
        rc = db_settings(r->db);
    if (!rc)
        rc = at__sql_exec(r->db, "BEGIN;");
    if (!rc)
        rc = at__schema_create(r->db);
    if (!rc)
        rc = at__sql_exec(r->db, PENDING_TABLE);
    if (rc)
        return rc;
    rc = at__trace_begin(r->db);
    if (!rc) /* tools wait for it */
        rc = at__meta_set_int(r->db, AT_META_WRITER_PID, getpid());
    if (!rc)
        rc = at__sql_exec(r->db, "COMMIT");
    if (rc)
        return rc;
    r->w = at__sqlw_new(r->db);
    if (r->w)
        at__sqlw_keep_replay_log(r->w); /* the replay at completion, without reading back */
    return r->w ? prepare_pending(r) : AT_E_DB;
}

/* Opens and locks the spool (spool.h: the lock is what tells its producer
 * that a consumer is alive), and the reader's per-chunk arrays. */
static int attach_spool(at_spool_reader *r, const char *spool_path)
{
    r->spool.fd = -1;
    const char *die = getenv(AT_ENV_FAULT_DIE_AFTER_COMMIT);
    r->die_after_commit = die ? strtol(die, NULL, 10) : 0;
    r->die_after_late = die && strcmp(die, "late") == 0;
    r->die_after_fold = die && strcmp(die, "fold") == 0;
    r->waiting_fd = -1;
    int rc = at__spool_open(&r->spool, spool_path);
    if (!rc && at__spool_lock(&r->spool) != 0)
        rc = AT_SPOOL_READER_BUSY;
    if (!rc && (size_t)snprintf(r->waiting_path, sizeof r->waiting_path, "%s-waiting",
                                spool_path) >= sizeof r->waiting_path)
        rc = AT_E_INVALID;
    /* A fresh reader starts the file empty; a resumed one reads it first
     * (load_waiting) and appends. */
    if (!rc) {
        r->waiting_fd = open(r->waiting_path,
                             O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW |
                                 (r->resumed ? 0 : O_TRUNC),
                             0600);
        if (r->waiting_fd < 0)
            rc = AT_E_ACCESS;
    }
    if (!rc) {
        uint32_t n = r->spool.h->max_chunks;
        r->gen = calloc(n, sizeof *r->gen);
        r->off = calloc(n, sizeof *r->off);
        r->order = calloc(n, sizeof *r->order);
        r->held = calloc(n, sizeof *r->held);
        r->pend = calloc(n, sizeof *r->pend);
        rc = r->gen && r->off && r->order && r->held && r->pend ? 0 : AT_E_NOMEM;
    }
    return rc;
}

/* The file name of `path`, into the header field `field` (empty when it
 * does not fit). */
static void name_into(char *field, size_t size, const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    size_t n = strlen(base);
    memset(field, 0, size);
    if (n < size)
        memcpy(field, base, n);
}

/* The reader is the spool's consumer from now on. */
static void claim(at_spool_reader *r, const char *db_path)
{
    if (!r->resumed) {
        name_into(r->spool.h->writing, sizeof r->spool.h->writing, db_path);
        if (!r->spool.h->trace_name[0])
            name_into(r->spool.h->trace_name, sizeof r->spool.h->trace_name, db_path);
    }
    __atomic_store_n(&r->spool.h->consumer_pid, (int32_t)getpid(), __ATOMIC_RELEASE);
}

int at__spool_reader_open(const char *spool_path, const char *db_path, int overwrite,
                          at_spool_reader **out)
{
    at_spool_reader *r = calloc(1, sizeof *r);
    if (!r)
        return AT_E_NOMEM;
    int rc = attach_spool(r, spool_path);
    if (!rc) {
        claim(r, db_path); /* first: a reader killed from now on is resumed */
        rc = open_db(r, db_path, overwrite);
    }
    if (rc) {
        at__spool_reader_abandon(r);
        return rc;
    }
    *out = r;
    return 0;
}

void at__spool_reader_set_final(at_spool_reader *r, const char *final_path)
{
    name_into(r->spool.h->trace_name, sizeof r->spool.h->trace_name, final_path);
}

/* ---- resuming: the trace of a reader that died ---------------------------------- */

/* 1 if the statement `st`, bound to `seq`, finds a row. */
static int found(sqlite3_stmt *st, uint64_t seq)
{
    sqlite3_bind_int64(st, 1, (sqlite3_int64)seq);
    int row = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_reset(st);
    return row;
}

static void remember_loaded(at_spool_reader *r, const at_pair *e)
{
    if (r->nloaded == r->loaded_cap) {
        size_t cap = r->loaded_cap ? r->loaded_cap * 2 : 64;
        loaded_half *v = realloc(r->loaded, cap * sizeof *v);
        if (!v) {
            r->nomem = 1;
            return;
        }
        r->loaded = v;
        r->loaded_cap = cap;
    }
    r->loaded[r->nloaded++] = (loaded_half){e->seq, e->state};
}

/* A half the dead reader stored, back into `r` unless its lifetime is in
 * the trace or the half is back already (stored again after a resume). */
static void load_half(at_spool_reader *r, const at_pair *e)
{
    if (found(r->has_lifetime, e->seq))
        return;
    int ok;
    if (e->state == AT_PAIR_ALLOC) {
        at_pair had;
        if (at__pending_peek(&r->live, e->seq, &had))
            return;
        int put = at__pending_put(&r->live, e);
        r->nomem |= put < 0;
        ok = put == 0;
    } else if (e->state == AT_PAIR_FREE) {
        if (at__pairs_find(&r->live.hash, e->seq) != SIZE_MAX)
            return;
        at_pair *p = at__pairs_add(&r->live.hash, e->seq);
        if (p)
            *p = *e;
        else
            r->nomem = 1;
        ok = p != NULL;
        r->waiting_frees += ok;
    } else {
        return;
    }
    if (ok) {
        note_pending(r, e->seq);
        remember_loaded(r, e);
        if (e->seq > r->max_seq)
            r->max_seq = e->seq;
    }
}

/* The END or EXEC the dead reader stored, back into `r`, and the halves
 * an older alloctrace stored there (a row each; now in the waiting file). */
static int load_pending(at_spool_reader *r)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(r->db, "SELECT seq, entry FROM spool_pending", -1, &st, NULL) !=
        SQLITE_OK)
        return AT_E_DB;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        int64_t key = sqlite3_column_int64(st, 0);
        const void *blob = sqlite3_column_blob(st, 1);
        int n = sqlite3_column_bytes(st, 1);
        if (key < 0 && n == (int)sizeof(at_rec_end)) {
            at_rec_end *e = key == PENDING_END ? &r->end : &r->exec;
            memcpy(e, blob, sizeof *e);
            if (key == PENDING_END)
                r->ended = 1;
            else
                r->exec_pending = e->kind == AT_REC_EXEC;
            continue;
        }
        at_pair e;
        if (key < 0 || n != (int)sizeof e)
            continue;
        memcpy(&e, blob, sizeof e);
        load_half(r, &e);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : AT_E_DB;
}

/* The halves of the waiting file back into `r` (load_half); a record cut
 * short by the dead reader's kill is cut off, so that appends stay
 * whole records. */
static int load_waiting(at_spool_reader *r)
{
    char buf[1024 * sizeof(at_pair)];
    off_t whole = 0;
    for (;;) {
        ssize_t n = pread(r->waiting_fd, buf, sizeof buf, whole);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return AT_E_IO;
        size_t records = (size_t)n / sizeof(at_pair);
        for (size_t k = 0; k < records; k++) {
            at_pair e;
            memcpy(&e, buf + k * sizeof e, sizeof e);
            load_half(r, &e);
        }
        whole += (off_t)(records * sizeof(at_pair));
        if ((size_t)n < sizeof buf)
            break;
    }
    if (ftruncate(r->waiting_fd, whole) != 0)
        return AT_E_IO;
    if (r->nloaded)
        qsort(r->loaded, r->nloaded, sizeof *r->loaded, by_half);
    return 0;
}

static int resume_db(at_spool_reader *r, const char *db_path)
{
    if (sqlite3_open_v2(db_path, &r->db, OPEN_FLAGS, NULL) != SQLITE_OK)
        return AT_E_ACCESS;
    int rc = db_settings(r->db); /* a hot journal is rolled back here */
    sqlite3_stmt *st;
    int schema = 0;
    if (!rc && sqlite3_prepare_v2(r->db, "SELECT count(*) FROM sqlite_master WHERE name = 'meta'",
                                  -1, &st, NULL) == SQLITE_OK) {
        schema = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int(st, 0) == 1;
        sqlite3_finalize(st);
    }
    if (!rc && !schema)
        return AT_E_INVALID; /* killed before its first commit: the spool holds it all */
    if (!rc && at__meta_get_int(r->db, AT_META_FINISHED, 0) != 0)
        return AT_E_EXISTS; /* complete already */
    if (!rc)
        rc = at__sql_exec(r->db, PENDING_TABLE);
    if (!rc)
        rc = at__meta_set_int(r->db, AT_META_WRITER_PID, getpid());
    if (!rc)
        r->resumed_aggregating = at__meta_get_int(r->db, AT_META_AGGREGATING, 0) == 1 &&
                                 at__meta_get_int(r->db, AT_META_AGGREGATED, 0) != 1;
    if (!rc && (sqlite3_prepare_v2(r->db, "SELECT 1 FROM lifetimes WHERE seq = ?", -1,
                                   &r->has_lifetime, NULL) != SQLITE_OK ||
                sqlite3_prepare_v2(r->db, "SELECT 1 FROM findings WHERE seq = ?", -1,
                                   &r->has_finding, NULL) != SQLITE_OK))
        rc = AT_E_DB;
    /* The dead reader's lifetimes written aside, where the lookups below
     * (has_lifetime, load_pending's) and the resumed writer find them. */
    if (!rc)
        rc = at__trace_merge_late(r->db);
    if (!rc)
        rc = load_pending(r);
    if (!rc)
        rc = load_waiting(r);
    if (!rc) {
        if (sqlite3_prepare_v2(r->db, "SELECT value != '[]' FROM meta WHERE key = 'arguments'",
                               -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
            r->resumed_arguments = sqlite3_column_int(st, 0);
        sqlite3_finalize(st);
    }
    if (!rc) {
        if (sqlite3_prepare_v2(r->db, "SELECT max(seq + coalesce(free_dseq, 0)) FROM lifetimes",
                               -1, &st, NULL) == SQLITE_OK &&
            sqlite3_step(st) == SQLITE_ROW && (uint64_t)sqlite3_column_int64(st, 0) > r->max_seq)
            r->max_seq = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        r->w = at__sqlw_new(r->db); /* no replay log: completion replays the table */
        rc = r->w ? prepare_pending(r) : AT_E_DB;
    }
    return rc;
}

int at__spool_reader_resume(const char *spool_path, const char *db_dir, at_spool_reader **out)
{
    at_spool_reader *r = calloc(1, sizeof *r);
    if (!r)
        return AT_E_NOMEM;
    r->resumed = 1;
    int rc = attach_spool(r, spool_path);
    char path[PATH_MAX];
    if (!rc) {
        const char *name = r->spool.h->writing;
        if (!name[0] || memchr(name, '\0', sizeof r->spool.h->writing) == NULL ||
            strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
            rc = AT_E_INVALID;
        else
            snprintf(path, sizeof path, "%s/%s", db_dir, name);
    }
    if (!rc)
        rc = resume_db(r, path);
    /* A run killed after its trace was complete, before it removed the
     * spool: the trace holds everything, and the waiting file
     * attach_spool opened has no use (recorder_test's kill trials left it
     * behind once in a while). */
    if (rc == AT_E_EXISTS)
        unlink(r->waiting_path);
    if (rc) {
        at__spool_reader_abandon(r);
        return rc;
    }
    claim(r, path);
    *out = r;
    return 0;
}

int at__spool_reader_aggregate(at_spool_reader *r)
{
    int rc = at__sqlw_aggregate(r->w);
    /* Said at once: a reader resumed after this one's death must know
     * that the lifetimes it folded were only in its memory. */
    return rc ? rc : at__meta_set_int(r->db, AT_META_AGGREGATING, 1);
}

void at__spool_reader_abandon(at_spool_reader *r)
{
    if (!r)
        return;
    if (r->spool.h)
        __atomic_store_n(&r->spool.h->consumer_pid, 0, __ATOMIC_RELEASE);
    at__pending_free(&r->live);
    at__sqlw_free(r->w);
    sqlite3_finalize(r->put_pending);
    free(r->waiting);
    if (r->waiting_fd >= 0)
        close(r->waiting_fd);
    sqlite3_finalize(r->has_lifetime);
    sqlite3_finalize(r->has_finding);
    sqlite3_close(r->db);
    for (uint32_t i = 0; r->pend && i < r->spool.h->max_chunks; i++)
        free(r->pend[i].seq);
    free(r->pend);
    free(r->held);
    free(r->loaded);
    at__spool_close(&r->spool);
    free(r->gen);
    free(r->off);
    free(r->order);
    free(r);
}

/* ---- records ------------------------------------------------------------------- */

/* One row: the allocation `a` (an AT_PAIR_ALLOC entry), and its release
 * unless `f` is NULL (a block still live at the end). */
static void write_pair(at_spool_reader *r, const at_pair *a, const at_rec_free *f)
{
    at_rec_lifetime l = {
        .kind = AT_REC_LIFETIME,
        .family = a->u.a.family,
        .alloc_op = a->u.a.op,
        .align_log2 = a->u.a.align_log2,
        .stack = a->u.a.stack,
        .thread = a->u.a.thread,
        .seq = a->seq,
        .ptr = a->u.a.ptr,
        .size = a->u.a.size,
        .t = a->u.a.t,
    };
    if (f) {
        l.free_op = f->free_op;
        l.free_align_log2 = f->free_align_log2;
        l.free_layout_given = f->free_layout_given;
        l.free_thread = f->free_thread;
        l.free_seq = f->free_seq;
        l.free_t = f->free_t;
        l.free_size = f->free_size;
        l.free_stack = f->free_stack;
    }
    at__sqlw_events_read(r->w, r->events);
    at__sqlw_lifetime(r->w, &l);
}

/* What an AT_PAIR_ALLOC entry keeps of allocation `a`. */
static void set_alloc(at_pair *p, const at_rec_alloc *a)
{
    p->seq = a->seq;
    p->state = AT_PAIR_ALLOC;
    p->u.a.ptr = a->ptr;
    p->u.a.size = a->size;
    p->u.a.t = a->t;
    p->u.a.stack = a->stack;
    p->u.a.thread = a->thread;
    p->u.a.family = a->family;
    p->u.a.op = a->op;
    p->u.a.align_log2 = a->align_log2;
}

static void wait_for_free(at_spool_reader *r, const at_rec_free *f)
{
    at_pair *p = at__pairs_add(&r->live.hash, f->seq);
    if (!p) {
        r->nomem = 1;
        return;
    }
    r->waiting_frees++;
    note_pending(r, f->seq);
    p->state = AT_PAIR_FREE;
    p->u.f.free_seq = f->free_seq;
    p->u.f.free_size = f->free_size;
    p->u.f.free_t = f->free_t;
    p->u.f.free_thread = f->free_thread;
    p->u.f.free_stack = f->free_stack;
    p->u.f.free_op = f->free_op;
    p->u.f.free_align_log2 = f->free_align_log2;
    p->u.f.free_layout_given = f->free_layout_given;
}

/* The release an AT_PAIR_FREE entry holds, as its record. */
static at_rec_free waiting_free(const at_pair *p)
{
    return (at_rec_free){
        .kind = AT_REC_FREE,
        .free_op = p->u.f.free_op,
        .free_align_log2 = p->u.f.free_align_log2,
        .free_layout_given = p->u.f.free_layout_given,
        .free_thread = p->u.f.free_thread,
        .seq = p->seq,
        .free_seq = p->u.f.free_seq,
        .free_t = p->u.f.free_t,
        .free_size = p->u.f.free_size,
        .free_stack = p->u.f.free_stack,
    };
}

/* Resumed: whether the half of lifetime `seq` in state `state` is one the
 * trace holds already (its lifetime, or the same half waiting). */
static int seen(at_spool_reader *r, uint64_t seq, uint8_t state)
{
    if (!r->resumed)
        return 0;
    at_pair e;
    if (at__pending_peek(&r->live, seq, &e) && e.state == state)
        return 1;
    loaded_half key = {seq, state};
    if (r->nloaded && bsearch(&key, r->loaded, r->nloaded, sizeof key, by_half))
        return 1;
    return found(r->has_lifetime, seq);
}

static void on_alloc(at_spool_reader *r, const at_rec_alloc *a)
{
    r->events++;
    if (a->seq > r->max_seq)
        r->max_seq = a->seq;
    if (seen(r, a->seq, AT_PAIR_ALLOC))
        return;
    at__sqlw_events_read(r->w, r->events);
    at__sqlw_alloc_event(r->w, a);
    /* A release read before its allocation is rare (their chunks read out
     * of order); while none waits, the lookup is skipped. */
    size_t slot = r->waiting_frees ? at__pairs_find(&r->live.hash, a->seq) : SIZE_MAX;
    at_pair e;
    set_alloc(&e, a);
    if (slot == SIZE_MAX) {
        int rc = at__pending_put(&r->live, &e);
        if (rc < 0)
            r->nomem = 1;
        else if (rc > 0)
            r->corrupt = 1; /* the same allocation twice */
        else
            note_pending(r, a->seq);
        return;
    }
    at_pair *p = at__pairs_at(&r->live.hash, slot);
    if (p->state == AT_PAIR_FREE) {
        at_rec_free f = waiting_free(p);
        at__pairs_remove(&r->live.hash, slot);
        r->waiting_frees--;
        write_pair(r, &e, &f);
    } else {
        r->corrupt = 1; /* the same allocation twice */
    }
}

static void on_free(at_spool_reader *r, const at_rec_free *f)
{
    r->events++;
    if (f->free_seq > r->max_seq)
        r->max_seq = f->free_seq;
    if (seen(r, f->seq, AT_PAIR_FREE))
        return;
    at_pair a;
    if (at__pending_take(&r->live, f->seq, &a))
        write_pair(r, &a, f);
    else if (r->waiting_frees && at__pairs_find(&r->live.hash, f->seq) != SIZE_MAX)
        r->corrupt = 1; /* the same release twice */
    else
        wait_for_free(r, f);
}

static void on_meta(at_spool_reader *r, const char *text, uint32_t n)
{
    const char *key = text;
    size_t klen = strnlen(key, n);
    if (klen == n)
        return;
    const char *value = key + klen + 1;
    size_t vlen = n - klen - 1;
    if (strcmp(key, "argv") == 0) { /* the producer's name for the arguments */
        if (!r->resumed || !r->resumed_arguments)
            at__meta_append_arguments(r->db, NULL, 0, value, vlen);
        return;
    }
    int k = at__meta_key_named(key, klen);
    if (k < 0)
        return; /* not a key of this version's table */
    char buf[4096];
    snprintf(buf, sizeof buf, "%.*s", (int)vlen, value);
    if (k == AT_META_PID || k == AT_META_STACK_DEPTH || k == AT_META_PARENT_PID)
        at__meta_set_int(r->db, (at_meta_key)k, strtoll(buf, NULL, 10));
    else
        at__meta_set_text(r->db, (at_meta_key)k, buf);
}

static void on_record(at_spool_reader *r, const unsigned char *p)
{
    switch (*p) {
    case AT_REC_ALLOC: {
        at_rec_alloc a;
        memcpy(&a, p, sizeof a);
        if (a.align_log2 >= 64)
            r->corrupt = 1; /* an alignment of 2^64 or more */
        else
            on_alloc(r, &a);
        break;
    }
    case AT_REC_FREE: {
        at_rec_free f;
        memcpy(&f, p, sizeof f);
        if (!at__release_align_ok(f.free_align_log2))
            r->corrupt = 1;
        else
            on_free(r, &f);
        break;
    }
    case AT_REC_END:
        memcpy(&r->end, p, sizeof r->end);
        r->ended = 1;
        put_pending(r, PENDING_END, &r->end, sizeof r->end);
        break;
    case AT_REC_EXEC:
    case AT_REC_EXEC_FAILED:
        memcpy(&r->exec, p, sizeof r->exec);
        r->exec_pending = *p == AT_REC_EXEC;
        if (r->exec.seq > r->max_seq)
            r->max_seq = r->exec.seq;
        put_pending(r, PENDING_EXEC, &r->exec, sizeof r->exec);
        break;
    case AT_REC_FINDING: {
        at_rec_finding f;
        memcpy(&f, p, sizeof f);
        if (r->resumed && found(r->has_finding, f.seq))
            break; /* in the trace already */
        if (at__sqlw_record(r->w, p) < 0)
            r->corrupt = 1;
        break;
    }
    case AT_REC_META: {
        at_rec_var h;
        memcpy(&h, p, sizeof h);
        on_meta(r, (const char *)p + sizeof h, h.count);
        break;
    }
    case AT_REC_LIFETIME:
        r->corrupt = 1; /* the in-process writer's record: never in a spool */
        break;
    default:
        if (at__sqlw_record(r->w, p) < 0)
            r->corrupt = 1;
    }
}

/* What chunk `i` holds for the reader: its state, its buffer, the bytes
 * published so far (`used`, bounded by the chunk) and where the reader's
 * last visit stopped in the current generation (`off`). */
typedef struct chunk_view {
    at_spool_chunk *c;
    at_buf *b;
    uint32_t state;
    uint64_t gen;
    size_t off, used;
} chunk_view;

static chunk_view view_chunk(at_spool_reader *r, uint32_t i)
{
    chunk_view v = {.c = at__spool_chunk(&r->spool, i)};
    v.state = __atomic_load_n(&v.c->state, __ATOMIC_ACQUIRE);
    if (v.state == AT_CHUNK_FREE)
        return v;
    v.gen = __atomic_load_n(&v.c->gen, __ATOMIC_ACQUIRE);
    v.off = v.gen == r->gen[i] ? r->off[i] : 0;
    v.b = at__chunk_buf(v.c);
    uint64_t used = __atomic_load_n(&v.b->used, __ATOMIC_ACQUIRE);
    size_t cap = r->spool.h->chunk_size - sizeof *v.c - sizeof *v.b;
    v.used = used > cap ? cap : used;
    return v;
}

static void begin(at_spool_reader *r)
{
    at__sqlw_exec(r->w, "BEGIN");
    r->began = 1;
    r->began_ns = at__now_ns();
}

/* Reads chunk `i` from where the last visit stopped; returns bytes read. */
static size_t read_chunk(at_spool_reader *r, uint32_t i)
{
    chunk_view v = view_chunk(r, i);
    if (v.state == AT_CHUNK_FREE)
        return 0;
    if (v.gen != r->gen[i])
        r->pend[i].n = 0; /* never: a chunk is given back only once its halves are stored */
    r->gen[i] = v.gen;
    r->cur = i;
    size_t start = v.off, off = start;
    while (off < v.used) {
        size_t n = at__record_size(v.b->data + off, v.used - off);
        if (n == 0) {
            r->corrupt = 1;
            off = v.used;
            break;
        }
        if (!r->began)
            begin(r);
        on_record(r, v.b->data + off);
        off += n;
    }
    r->off[i] = off;
    if (v.state == AT_CHUNK_FULL) /* every byte published: given back after the commit */
        r->held[r->nheld++] = i;
    return off - start;
}

/* Where chunk `i` stands in the run: the sequence number of the first
 * event among its next unread records (0 if none is near the start);
 * returns 0 if the chunk has nothing to read nor to give back. */
static int chunk_age(at_spool_reader *r, uint32_t i, uint64_t *age)
{
    chunk_view v = view_chunk(r, i);
    if (v.state == AT_CHUNK_FREE || (v.off >= v.used && v.state != AT_CHUNK_FULL))
        return 0;
    size_t off = v.off, used = v.used;
    at_buf *b = v.b;
    *age = 0;
    for (int k = 0; k < 64 && off < used; k++) {
        const unsigned char *p = b->data + off;
        size_t n = at__record_size(p, used - off);
        if (n == 0)
            break;
        if (*p == AT_REC_ALLOC || *p == AT_REC_FREE || *p == AT_REC_FINDING) {
            /* the event's own sequence number: the allocation's, the
             * release's, the bad release's */
            size_t at = *p == AT_REC_ALLOC   ? offsetof(at_rec_alloc, seq)
                        : *p == AT_REC_FREE ? offsetof(at_rec_free, free_seq)
                                            : offsetof(at_rec_finding, seq);
            memcpy(age, p + at, sizeof *age);
            break;
        }
        off += n;
    }
    return 1;
}

static int by_age(const void *a, const void *b)
{
    const chunk_ref *x = a, *y = b;
    return x->age != y->age ? (x->age < y->age ? -1 : 1) : (x->i < y->i ? -1 : x->i > y->i);
}

/* Full chunks held at most, read but not yet given back, within a poll. */
enum { GIVE_BACK_EVERY = 8 };

/* How long what was read may wait for its commit when no full chunk
 * waits to go back.  Each commit writes every page it changed twice
 * (journal and trace) and takes the file's locks: a reader that keeps up
 * with a slow program and commits at each poll commits hundreds of times
 * a second (clang++ -fsyntax-only of bench/stl_heavy.cc: 3,129 commits,
 * 101,735 page writes, a third of the recorder's CPU in the kernel).  A
 * full chunk read goes back at the next poll's end, as before: holding
 * chunks longer made keep_live's program wait for them (39 -> 55 chunks,
 * 29 -> 39 waits). */
enum { COMMIT_AFTER_NS = 50 * 1000 * 1000 };

/* Commits what was read (with the waiting halves of the chunks held) and
 * gives those chunks back; after an error, keeps them.  The writer's
 * error, or 0. */
static int commit_and_give_back(at_spool_reader *r)
{
    if (r->nheld && !r->began)
        begin(r);
    for (uint32_t k = 0; k < r->nheld; k++)
        store_pending(r, r->held[k]);
    store_waiting(r);
    if (r->began) {
        at__sqlw_flush(r->w);
        at__sqlw_exec(r->w, "COMMIT");
        r->began = 0;
        if (r->die_after_commit > 0 && --r->die_after_commit == 0)
            raise(SIGKILL);
        /* "fold": the fourth such commit, so that chunks holding the
         * releases of folded lifetimes have gone back */
        if ((r->die_after_late && at__sqlw_late_rows(r->w) > 0) ||
            (r->die_after_fold && at__sqlw_folding(r->w) > 0 && ++r->die_after_fold > 4))
            raise(SIGKILL);
    }
    int err = at__sqlw_error(r->w);
    /* After an error (a full disk) the chunks not committed stay in the
     * spool, for `alloctrace recover` once the cause is gone; while the
     * program runs this reader then lets its lock go, so the program never
     * waits for chunks that would not come back: it goes on as with a dead
     * recorder (spool.c), counting what it cannot spool. */
    if (err) {
        r->nheld = 0;
        if (!r->keep_on_error)
            at__spool_unlock(&r->spool);
    }
    give_back(r);
    return err;
}

/* Whether what was read should be committed now: a full chunk waits to
 * go back (so none is held past its poll), or what was read waited long
 * enough. */
static int commit_due(const at_spool_reader *r)
{
    return r->nheld > 0 || (r->began && at__now_ns() - r->began_ns >= COMMIT_AFTER_NS);
}

/* Reads every chunk with something new, oldest first: chunks are reused
 * lowest index first, so their indexes say nothing of their age, and the
 * lifetimes go to SQLite in sequence order only if the records come
 * roughly in the order they were written. */
long at__spool_reader_poll(at_spool_reader *r)
{
    if (at__sqlw_error(r->w)) /* given up (commit_and_give_back) */
        return at__sqlw_error(r->w);
    uint32_t n = __atomic_load_n(&r->spool.h->nchunks, __ATOMIC_ACQUIRE);
    if (n > r->spool.h->max_chunks)
        n = r->spool.h->max_chunks;
    size_t total = 0;
    uint32_t m = 0;
    for (uint32_t i = 0; i < n; i++)
        if (chunk_age(r, i, &r->order[m].age))
            r->order[m++].i = i;
    qsort(r->order, m, sizeof *r->order, by_age);
    int err = 0;
    for (uint32_t k = 0; k < m; k++) {
        total += read_chunk(r, r->order[k].i);
        /* a reader far behind gives chunks back as it goes, not after
         * the whole poll: the program then needs fewer of them */
        if (r->nheld >= GIVE_BACK_EVERY)
            err |= commit_and_give_back(r);
    }
    if (commit_due(r))
        err |= commit_and_give_back(r);
    err = at__sqlw_error(r->w);
    return err ? err : (long)total;
}

/* ---- the end ----------------------------------------------------------------------- */

/* Events lost, as far as the reader knows them: the spool's drops, or
 * the producer's own count (its END's, or its EXEC's when the image was
 * replaced), which holds them (each is a thread's lost record). */
static uint64_t events_lost(const at_spool_reader *r)
{
    uint64_t lost = r->spool.h->dropped;
    uint64_t own = r->ended ? r->end.lost_events : r->exec_pending ? r->exec.lost_events : 0;
    return own > lost ? own : lost;
}

/* The end as the spool says it: the producer's END record, or, when it
 * died first, only what reached the spool. */
static void spool_end(const at_spool_reader *r, at_trace_end *e)
{
    int exec = !r->ended && r->exec_pending;
    /* The header says the producer closed its tracer even when the END
     * record itself could not be spooled (a dead reader's orphan limit,
     * a full disk): the program ended, it did not die; the totals are the
     * rows' then. */
    int closed = r->ended || __atomic_load_n(&r->spool.h->closed, __ATOMIC_ACQUIRE);
    *e = (at_trace_end){
        .program_end = exec     ? AT_PROGRAM_END_EXEC
                       : closed ? AT_PROGRAM_END_CLOSED
                                : AT_PROGRAM_END_DIED,
        .lost_events = (int64_t)events_lost(r),
        .backpressure_waits = (int64_t)r->spool.h->waits,
        .spooled = 1,
        .spool_chunks = (int64_t)r->spool.h->nchunks,
        .spool_errors = r->corrupt + r->nomem,
    };
    if (r->ended) {
        e->totals_known = 1;
        e->duration_us = (int64_t)(r->end.duration_ns / 1000);
        e->alloc_calls = (int64_t)r->end.alloc_calls;
        e->alloc_bytes = (int64_t)r->end.alloc_bytes;
        e->free_calls = (int64_t)r->end.free_calls;
        e->findings = (int64_t)r->end.findings;
    } else if (exec) {
        e->totals_known = 1;
        e->duration_us = (int64_t)(r->exec.duration_ns / 1000);
        e->alloc_calls = (int64_t)r->exec.alloc_calls;
        e->alloc_bytes = (int64_t)r->exec.alloc_bytes;
        e->free_calls = (int64_t)r->exec.free_calls;
        e->findings = (int64_t)r->exec.findings;
    }
    if (r->resumed_aggregating) {
        /* What the dead reader folded is lost: the allocations the program
         * counted and the trace does not hold, at least the halves it
         * dropped (write_live). */
        int64_t missing = (int64_t)r->doubtful;
        if (e->totals_known) {
            int64_t rows =
                at__sql_int(r->db, "SELECT count(*) FROM lifetimes") +
                at__sql_int(r->db, "SELECT coalesce(sum(rows), 0) FROM late.lifetimes_late_runs");
            if (e->alloc_calls - rows > missing)
                missing = e->alloc_calls - rows;
        }
        e->lost_events += missing;
    }
}

/* A block closed at the end by `op`, with a sequence number of its own
 * after every event read (`nth` of them, in sequence order), at time `t`
 * (not before its allocation): released by an exec that replaced the
 * image, or released unrecorded (write_live). */
static void write_end_release(at_spool_reader *r, const at_pair *a, uint64_t nth, uint8_t op,
                              uint32_t thread, uint64_t t)
{
    at_rec_free f = {
        .kind = AT_REC_FREE,
        .free_op = op,
        .free_thread = thread,
        .seq = a->seq,
        .free_seq = r->max_seq + 1 + nth,
        .free_t = t > a->u.a.t ? t : a->u.a.t,
    };
    write_pair(r, a, &f);
}

/* Resumed over an aggregated run's trace, whose exit scan is done: an
 * allocation half the dead reader left, which the scan did not find live,
 * was released and its lifetime folded by that reader (lost with it). */
static int released_unseen(at_spool_reader *r, const at_pair *a, sqlite3_stmt *verdict)
{
    /* a pool's block is never folded (rows.c, foldable), nor scanned */
    loaded_half key = {a->seq, AT_PAIR_ALLOC};
    if (!r->resumed_aggregating || !verdict || a->u.a.family == AT_FAMILY_POOL || !r->nloaded ||
        !bsearch(&key, r->loaded, r->nloaded, sizeof key, by_half))
        return 0;
    return !found(verdict, a->seq);
}

typedef struct live_walk {
    at_spool_reader *r;
    sqlite3_stmt *verdict; /* the exit scan's rows, when every verdict is in the trace */
    /* a full trace that lost events: a block allocated before the scan,
     * which the scan did not find live, was released unrecorded */
    int unrecorded;
    uint64_t scan_seq;
} live_walk;

static void write_live(const at_pair *a, uint64_t nth, void *arg)
{
    live_walk *lw = arg;
    at_spool_reader *r = lw->r;
    if (released_unseen(r, a, lw->verdict)) {
        r->doubtful++;
        return;
    }
    if (r->exec_pending && !r->ended)
        write_end_release(r, a, nth, AT_OP_EXEC, r->exec.thread, r->exec.t);
    else if (lw->unrecorded && a->u.a.family != AT_FAMILY_POOL && a->seq < lw->scan_seq &&
             !found(lw->verdict, a->seq)) /* a pool's block is never scanned */
        /* a release the program made and the trace never got, of a block
         * the exit scan did not find live: not a leak */
        write_end_release(r, a, nth, AT_OP_VANISHED, 0, r->ended ? r->end.duration_ns : 0);
    else
        write_pair(r, a, NULL);
}

/* The blocks still live at the end, as rows in sequence order: leaks, or,
 * when the image was replaced by exec, blocks released by it.  A release
 * whose allocation never came leaves the spool corrupt.  Empties the
 * table. */
static void write_leaks(at_spool_reader *r)
{
    r->corrupt |= r->waiting_frees != 0;
    live_walk lw = {r, NULL, 0, 0};
    /* the scan done, and every verdict it sent in the trace: a block
     * without one was not live at exit */
    int judge = r->resumed_aggregating || events_lost(r) > 0;
    if (judge &&
        at__sql_int(r->db, "SELECT (SELECT value = 'done' FROM meta WHERE key = 'reach_scan')"
                           " AND (SELECT value FROM meta WHERE key = 'reach_blocks') <="
                           " (SELECT count(*) FROM reachability)") == 1 &&
        sqlite3_prepare_v2(r->db, "SELECT 1 FROM reachability WHERE seq = ?", -1, &lw.verdict,
                           NULL) != SQLITE_OK)
        lw.verdict = NULL;
    if (lw.verdict && !r->resumed_aggregating) {
        lw.unrecorded = 1;
        lw.scan_seq = (uint64_t)at__sql_int(r->db, "SELECT value FROM meta WHERE key = 'reach_seq'");
    }
    if (at__pending_each(&r->live, write_live, &lw) != 0)
        r->nomem = 1;
    sqlite3_finalize(lw.verdict);
    at__pending_free(&r->live);
    r->waiting_frees = 0;
}

/* Reads what is left, writes the blocks still live as leak rows and the
 * timeline, then completes the trace (complete.h). */
int at__spool_reader_finish(at_spool_reader *r, int *closed_properly)
{
    int timing = getenv(AT_ENV_TIMING) != NULL;
    uint64_t t0 = at__now_ns();
    if (at__trace_progress)
        at__trace_progress("finishing the trace: the rest of the spool");
    r->keep_on_error = 1;
    long rc = at__spool_reader_poll(r);
    if (rc >= 0) /* what the last poll read, committed before the leaks */
        rc = commit_and_give_back(r);
    at__sqlw_exec(r->w, "BEGIN");
    write_leaks(r);
    at__sqlw_flush(r->w);
    at__sqlw_events_done(r->w); /* the replay's end; an aggregated trace's (aggregate.h) */
    if (!at__sqlw_error(r->w)) /* the leaks are rows now: what waited is no longer needed */
        at__sqlw_exec(r->w, "DROP TABLE IF EXISTS spool_pending");
    at__sqlw_exec(r->w, at__sqlw_error(r->w) ? "ROLLBACK" : "COMMIT");
    int err = rc < 0 ? (int)rc : at__sqlw_error(r->w);
    if (!at__sqlw_error(r->w)) /* committed: the trace holds what the file did */
        unlink(r->waiting_path);
    at_replay_log *log = at__sqlw_take_replay_log(r->w);
    at__sqlw_free(r->w);
    r->w = NULL;
    if (timing)
        fprintf(stderr, "timing: drain+leaks %.3f\n", (double)(at__now_ns() - t0) / 1e9);
    if (!err) {
        at_trace_end end;
        spool_end(r, &end);
        end.replay_log = log;
        err = at__trace_complete(r->db, &end);
    }
    at__replay_log_free(log);
    if (closed_properly)
        *closed_properly = r->ended;
    sqlite3_finalize(r->put_pending);
    free(r->waiting);
    sqlite3_finalize(r->has_lifetime);
    sqlite3_finalize(r->has_finding);
    r->put_pending = r->has_lifetime = r->has_finding = NULL;
    r->waiting = NULL;
    if (!err) /* one file again: no journal beside the trace */
        err = at__sql_exec(r->db, "PRAGMA journal_mode=DELETE");
    if (sqlite3_close(r->db) != SQLITE_OK && !err)
        err = AT_E_DB;
    r->db = NULL;
    at__spool_reader_abandon(r);
    return err;
}

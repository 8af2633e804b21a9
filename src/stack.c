/*
 * stack.c - the shared available stack and the pending/zombie lists.
 *
 * Owns: every use of Concurrency Kit's ck_stack in the pool.
 *
 * Correctness of the shared stack (lfpool_stack_push / lfpool_stack_pop):
 * - ABA: pop uses ck_stack_pop_mpmc, a double-width CAS on {head,
 *   generation}; the generation is bumped by every pop, so a head that was
 *   popped and pushed back in between makes the CAS fail even though the
 *   pointer is equal.  ck_stack_t is 16-byte aligned for CMPXCHG16B.
 * - Memory ordering: push stores entry->next, then a store fence, then the
 *   CAS publishes the entry (release); pop loads head, then a load fence
 *   before reading head->next (acquire).  Whatever the pusher wrote into a
 *   record before pushing (state AVAIL, last_ret) is visible to the popper.
 * - Reclamation: pop dereferences head->next of an entry that another thread
 *   may pop (and push elsewhere, or release and reuse) concurrently.
 *   Record memory is type-stable (meta.c): a record is never returned to
 *   malloc while its pool lives, so that read may see a stale `next` but
 *   never freed memory, and the generation CAS then fails and retries.
 *   The record free list itself is such a stack, with the same argument.
 *
 * The pending and zombie lists are many-producer / single-consumer: pushers
 * use ck_stack_push_upmc, the housekeeper takes the whole list with one
 * atomic exchange (ck_stack_batch_pop_upmc), which has no ABA window.
 */
#include "internal.h"

void lfpool_stack_push(ck_stack_t *s, struct lfpool_rec *rec)
{
    ck_stack_push_mpmc(s, &rec->entry);
}

struct lfpool_rec *lfpool_stack_pop(ck_stack_t *s)
{
    ck_stack_entry_t *e = ck_stack_pop_mpmc(s);
    return lfpool_rec_of_entry(e);
}

void lfpool_list_push(ck_stack_t *s, struct lfpool_rec *rec)
{
    ck_stack_push_upmc(s, &rec->entry);
}

struct lfpool_rec *lfpool_list_take_all(ck_stack_t *s)
{
    return lfpool_rec_of_entry(ck_stack_batch_pop_upmc(s));
}

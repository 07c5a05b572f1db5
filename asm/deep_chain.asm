; deep_chain.asm — freeing a chain of 10 million records. Each node's slot
; 1 holds the previous node; dropping the head frees the whole chain with
; an explicit work list, so the host stack never grows (CPython needs its
; "trashcan" for this).
    li r0, 0                ; i
    li r1, 10_000_000
build:
    new r3, 2
    store r3, 0, r0
    store r3, 1, r2         ; link to the previous node
    mov r2, r3              ; r2 = the new head
    add r0, r0, 1
    lt r4, r0, r1
    jnz r4, build
    del r3
    load r5, r2, 0
    print r5                ; 9999999: the head's value
    del r2                  ; frees all 10,000,000 nodes, iteratively
    str r6, "freed"
    print r6

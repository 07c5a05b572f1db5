; deep_free: build a 1,000,000-node chain of 2-slot records (value, next),
; then drop the head: the whole chain is freed at once, iteratively.
    li r0, 0                ; i
build:
    new r2, 2
    store r2, 0, r0
    store r2, 1, r1         ; next = the previous head
    mov r1, r2              ; r1 = the new head
    add r0, r0, 1
    lt r3, r0, 1_000_000
    jnz r3, build
    del r2
    load r4, r1, 0          ; 999999: the head's value
    del r1                  ; frees all 1,000,000 nodes
    print r4
